//! The property checks of reference §6.7 (non-deterministic or context-dependent results), each run
//! many times.

// In tests a panic is a failed assertion and a print is a diagnostic; library code is held to the workspace lints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use chrono::{DateTime, Utc};
use entra_expr::{Context, EvalError, Expression, Value};
use serde_json::json;

const RUNS: usize = 300;

fn eval_with(expr: &str, object: serde_json::Value, ctx: &Context) -> Result<Value, EvalError> {
    Expression::parse(expr).unwrap().evaluate(object.as_object().unwrap(), ctx)
}

fn text(expr: &str, now: DateTime<Utc>) -> String {
    match eval_with(expr, json!({}), &Context::at(now)).unwrap() {
        Value::Str(s) => s,
        other => other.as_text().unwrap().into_owned(),
    }
}

const SPECIALS: &str = "~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/";

#[test]
fn p01_guid_shape() {
    let now = Utc::now();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..RUNS {
        let g = text("Guid()", now);
        let groups: Vec<&str> = g.split('-').collect();
        assert_eq!(groups.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{g}");
        assert!(g.chars().all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)), "{g}");
        assert!(seen.insert(g));
    }
}

#[test]
fn p02_now_shape() {
    let cases = [
        ("2021-07-02T15:33:38Z", "7/2/2021 3:33:38 PM"),
        ("2025-12-31T00:05:09Z", "12/31/2025 12:05:09 AM"),
        ("2025-01-01T12:00:00Z", "1/1/2025 12:00:00 PM"),
    ];
    for (now, want) in cases {
        assert_eq!(text("Now()", now.parse().unwrap()), want);
    }
    let now = Utc::now();
    let shown = text("Now()", now);
    let (date, rest) = shown.split_once(' ').unwrap();
    let parts: Vec<&str> = date.split('/').collect();
    assert_eq!(parts.len(), 3);
    assert!(parts[0].len() <= 2 && parts[1].len() <= 2 && parts[2].len() == 4, "{shown}");
    assert!(rest.ends_with(" AM") || rest.ends_with(" PM"), "{shown}");
    let time: Vec<&str> = rest[..rest.len() - 3].split(':').collect();
    assert!(time.len() == 3 && time[0].len() <= 2 && time[1].len() == 2 && time[2].len() == 2, "{shown}");
}

#[test]
fn p03_p04_random_string_constraints() {
    let now = Utc::now();
    for _ in 0..RUNS {
        let s = text("RandomString(6,3,0,0,3)", now);
        assert_eq!(s.chars().count(), 6);
        assert!(s.chars().filter(char::is_ascii_digit).count() >= 3, "{s}");
        assert!(s.chars().filter(char::is_ascii_lowercase).count() >= 3, "{s}");

        let s = text(r#"RandomString(10,2,2,2,1,"?,")"#, now);
        assert_eq!(s.chars().count(), 10);
        assert!(s.chars().filter(char::is_ascii_digit).count() >= 2, "{s}");
        assert!(s.chars().filter(|c| SPECIALS.contains(*c)).count() >= 2, "{s}");
        assert!(s.chars().filter(char::is_ascii_uppercase).count() >= 2, "{s}");
        assert!(s.chars().filter(char::is_ascii_lowercase).count() >= 1, "{s}");
        assert!(!s.contains('?') && !s.contains(','), "{s}");
    }
}

#[test]
fn p05_redact_flows_the_value() {
    let now = Utc::now();
    assert_eq!(text(r#"Redact("StringToBeRedacted")"#, now), "StringToBeRedacted");
    assert_eq!(text("Redact(RandomString(6,3,0,0,3))", now).chars().count(), 6);
}

#[test]
fn p06_p07_guid_through_base64_and_regex() {
    let now = Utc::now();
    for _ in 0..RUNS {
        let s = text(r#"Replace(Mid(ConvertToBase64(Guid()), 1, 5 ), ,"[0-9]", ,"A", , )"#, now);
        assert_eq!(s.chars().count(), 5, "{s}");
        assert!(!s.chars().any(|c| c.is_ascii_digit()), "{s}");

        let s =
            text(r#"ToUpper(Replace(ConvertToBase64(Guid()), , "(.*?)(?<id>[a-zA-Z]{4})(.*)", , "D${id}", ,))"#, now);
        assert_eq!(s.len(), 5, "{s}");
        assert!(s.starts_with('D') && s[1..].chars().all(|c| c.is_ascii_uppercase()), "{s}");
    }
}

#[test]
fn p08_default_domain() {
    let expr = r#"Join("@", [mailNickname], DefaultDomain())"#;
    let ctx = Context { default_domain: Some("contoso.onmicrosoft.com"), ..Context::at(Utc::now()) };
    assert_eq!(
        eval_with(expr, json!({"mailNickname": "ada"}), &ctx).unwrap(),
        Value::Str("ada@contoso.onmicrosoft.com".into())
    );
    assert_eq!(
        eval_with(expr, json!({"mailNickname": "ada"}), &Context::at(Utc::now())).unwrap_err(),
        EvalError::NoDefaultDomain
    );
}

#[test]
fn p09_single_app_role_assignment() {
    let ctx = Context::at(Utc::now());
    assert_eq!(
        eval_with(
            "SingleAppRoleAssignment([appRoleAssignments])",
            json!({"appRoleAssignments": ["Default Assignment"]}),
            &ctx
        )
        .unwrap(),
        Value::Str("Default Assignment".into())
    );
}
