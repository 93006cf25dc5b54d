//! `entrasync bench-history`: the sync history view at scale (docs/benchmarks.md, "History pages").
//! A scratch database gets `--tenants` tenants and `--runs` generated runs (COPY, no ANALYZE: the
//! server's autovacuum may be off), then each request kind is timed `--requests` times through
//! `store::history::page` with pages of 1,000, the total included.
//!
//! ```sh
//! entrasync bench-history --runs 1000000
//! ```

use std::fmt::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::database::ScratchDatabase;
use crate::config::Settings;
use crate::model::{Cloud, ObjectClass};
use crate::store::bench::history as sql;
use crate::store::history::{self, HistoryCursor, HistoryFilter};
use crate::store::tenants::{self, NewTenant};
use crate::store::Pool;

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryBenchArgs {
    /// Runs in the generated history.
    #[arg(long, default_value_t = 1_000_000)]
    pub runs: u64,
    /// Tenants the runs are spread over.
    #[arg(long, default_value_t = 1_000)]
    pub tenants: usize,
    /// Timed requests per request kind.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
}

/// Builds one request's filter from the generator and the tenant ids.
type MakeFilter = fn(&mut StdRng, &[i64]) -> HistoryFilter;

const PAGE: i64 = 1_000;
/// Rows per COPY chunk.
const CHUNK: u64 = 10_000;

pub async fn run(args: HistoryBenchArgs, settings: Settings) -> anyhow::Result<String> {
    let db = ScratchDatabase::create(&settings.database).await?;
    let outcome = measure(&db.pool, &args).await;
    db.drop_or_warn().await;
    outcome
}

async fn measure(pool: &Pool, args: &HistoryBenchArgs) -> anyhow::Result<String> {
    let new: Vec<NewTenant> = (0..args.tenants.max(1))
        .map(|i| NewTenant {
            name: format!("tenant {i:04}"),
            entra_tenant_id: Uuid::new_v4(),
            cloud: Cloud::Global,
            credential_profile_id: None,
            enabled: true,
            full_scan_next_run: false,
        })
        .collect();
    let ids: Vec<i64> =
        tenants::create_many(pool, &new).await.context("registering tenants")?.iter().map(|t| t.id).collect();
    let started = Instant::now();
    let loaded = sql::copy_runs(pool, chunks(&ids, args.runs)).await.context("loading the runs")?;
    let load = started.elapsed();
    tracing::info!(runs = loaded, seconds = load.as_secs_f64(), "history loaded");

    let deep = sql::key_at_depth(pool, i64::try_from(loaded / 2).unwrap_or(0))
        .await?
        .map(|(started_at, id)| HistoryCursor { started_at, id });
    let mut rng = StdRng::seed_from_u64(7);
    let mut report = format!(
        "history: {loaded} runs over {} tenants, loaded by COPY in {:.1} s; {} requests per kind, pages of {PAGE}, no ANALYZE\n\
         {:<28} {:>9} {:>9} {:>9} {:>10}\n",
        ids.len(),
        load.as_secs_f64(),
        args.requests,
        "request",
        "p50 ms",
        "p95 ms",
        "max ms",
        "total"
    );
    let kinds: [(&str, MakeFilter, bool); 6] = [
        ("page 1, no filter", |_, _| HistoryFilter::default(), false),
        ("deep page (middle)", |_, _| HistoryFilter::default(), true),
        (
            "one tenant",
            |rng, ids| HistoryFilter {
                tenant_id: Some(ids[rng.random_range(0..ids.len())]),
                ..HistoryFilter::default()
            },
            false,
        ),
        (
            "failed users",
            |_, _| HistoryFilter {
                status: Some("failed".into()),
                class: Some(ObjectClass::User),
                ..HistoryFilter::default()
            },
            false,
        ),
        (
            "search tenant name",
            |rng, ids| HistoryFilter {
                q: Some(format!("tenant {:04}", rng.random_range(0..ids.len()))),
                ..HistoryFilter::default()
            },
            false,
        ),
        ("search error text", |_, _| HistoryFilter { q: Some("throttled".into()), ..HistoryFilter::default() }, false),
    ];
    for (name, make, deep_page) in kinds {
        let mut times = Vec::with_capacity(args.requests);
        let mut total = 0;
        for _ in 0..args.requests.max(1) {
            let filter = make(&mut rng, &ids);
            let after = if deep_page { deep.as_ref() } else { None };
            let started = Instant::now();
            let page = history::page(pool, &filter, PAGE, after).await?;
            times.push(started.elapsed());
            total = page.total;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
        let max = times.last().copied().unwrap_or_default();
        writeln!(report, "{name:<28} {:>9.1} {:>9.1} {:>9.1} {total:>10}", ms(at(0.5)), ms(at(0.95)), ms(max))
            .unwrap_or_default();
    }
    Ok(report)
}

/// The generated history as COPY text chunks, newest first spread over a year: classes round-robin,
/// 10 % full rounds, 90 % success, 5 % warning, 3 % failed (with an error), 1 % held, 1 % cancelled.
fn chunks(tenant_ids: &[i64], runs: u64) -> impl Iterator<Item = Bytes> + '_ {
    let now = Utc::now();
    let step = 365 * 24 * 3600 * 1_000_000 / runs.max(1) as i64;
    let mut rng = StdRng::seed_from_u64(42);
    (0..runs.div_ceil(CHUNK)).map(move |chunk| {
        let mut text = String::with_capacity(CHUNK as usize * 160);
        for i in chunk * CHUNK..((chunk + 1) * CHUNK).min(runs) {
            let tenant = tenant_ids[rng.random_range(0..tenant_ids.len())];
            let class = ["user", "group", "device"][(i % 3) as usize];
            let mode = if rng.random_range(0..10) == 0 { "full" } else { "delta" };
            let roll = rng.random_range(0..100);
            let (status, error) = match roll {
                0..=89 => ("success", "\\N"),
                90..=94 => ("warning", "\\N"),
                95..=97 => ("failed", "Graph request failed: 429 throttled too long"),
                98 => ("held", "\\N"),
                _ => ("cancelled", "\\N"),
            };
            let started = now - chrono::Duration::microseconds(i as i64 * step + rng.random_range(0..step.max(1)));
            let finished = started + chrono::Duration::seconds(rng.random_range(1..600));
            let total = rng.random_range(0..100_000);
            writeln!(
                text,
                "{}\t{tenant}\t{class}\t{mode}\tschedule\t{status}\t{}\t{}\t{total}\t{}\t{}\t0\t{error}",
                Uuid::from_u128(rng.random()),
                started.to_rfc3339(),
                finished.to_rfc3339(),
                total / 100,
                total / 1000,
            )
            .unwrap_or_default();
        }
        Bytes::from(text)
    })
}
