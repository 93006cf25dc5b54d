//! Evaluations per second of `Join(".", [givenName], [surname])` on one thread: parse once, evaluate for
//! about two seconds, five times; prints each run and the median.
//!
//! `cargo run --release -p entra-expr --example throughput` (or `… -- 'OTHER EXPRESSION'` to time another
//! expression against the same user object).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use entra_expr::{Context, Expression, Value};

fn main() {
    let text = std::env::args().nth(1).unwrap_or_else(|| r#"Join(".", [givenName], [surname])"#.to_owned());
    let expression = Expression::parse(&text).expect("parses");
    let object = serde_json::json!({
        "id": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
        "displayName": "Ada Lovelace",
        "givenName": "Ada",
        "surname": "Lovelace",
        "mail": "ada@contoso.com",
        "mobile": "+44 (20) 7946-0958",
        "userPrincipalName": "ada@contoso.com",
        "jobTitle": "Analyst",
        "department": "Engineering",
        "accountEnabled": true,
        "proxyAddresses": ["SMTP:ada@contoso.com", "smtp:ada.lovelace@contoso.com"]
    });
    let object = object.as_object().expect("an object");
    let ctx = Context::at(chrono::Utc::now());
    let first = expression.evaluate(object, &ctx).unwrap();
    if std::env::args().len() == 1 {
        assert_eq!(first, Value::Str("Ada.Lovelace".into()));
    }
    println!("{text} = {}", first.to_json());

    let mut rates = Vec::new();
    for run in 1..=5 {
        let start = Instant::now();
        let mut count: u64 = 0;
        while start.elapsed() < Duration::from_secs(2) {
            for _ in 0..10_000 {
                black_box(expression.evaluate(black_box(object), &ctx).unwrap());
            }
            count += 10_000;
        }
        let rate = count as f64 / start.elapsed().as_secs_f64();
        println!("run {run}: {rate:.0} evaluations/s");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!("median: {:.0} evaluations/s (one thread)", rates[2]);
}
