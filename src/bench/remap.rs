//! `entrasync bench-remap`: a re-map of many stored objects (docs/benchmarks.md, "Re-map"). A fresh
//! database is seeded by `COPY` with `--objects` users (stored by `PassThrough`, as a first round would
//! store them), then a re-map applies five Expression mappings and a two-group scoping filter that keeps
//! every seeded user (so every object is rewritten once: the worst case), then the same re-map again
//! (nothing changes: the read-and-compare cost alone). Reported: objects/s of each, rows written, and
//! the peak resident memory of this process during each, which stays flat as `--objects` grows.
//!
//! ```sh
//! entrasync bench-remap --objects 1000000 --runs 3
//! ```

use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use uuid::Uuid;

use super::database::ScratchDatabase;
use super::rss;
use crate::config::Settings;
use crate::model::mapping::{
    ApplyWhen, AttributeMapping, MappingSet, MappingSource, ScopeClause, ScopeGroup, ScopeOperator,
};
use crate::model::{Cloud, ObjectClass, Trigger};
use crate::store::objects::{self, ObjectWrites};
use crate::store::tenants::{self, NewTenant};
use crate::store::wire::JsonText;
use crate::store::Pool;
use crate::sync::marker::{canonical_attrs, canonicalize};
use crate::sync::{run_remap, DeletionGuard, PgRunRecorder, RemapDeps, RemapRequest, RoundReport};

#[derive(Debug, Clone, clap::Args)]
pub struct RemapBenchArgs {
    /// Stored users to re-map.
    #[arg(long, default_value_t = 1_000_000)]
    pub objects: usize,
    /// Runs (each with a fresh database); the figures are their medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Objects per re-map batch (default: `sync.batch_objects` of the configuration).
    #[arg(long)]
    pub batch_objects: Option<usize>,
    /// Print the summary as one JSON object instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

/// One re-map, timed.
#[derive(Debug, Clone, Serialize)]
pub struct TimedRemap {
    pub seconds: f64,
    pub objects_per_second: f64,
    pub examined: u64,
    pub changed: u64,
    pub filtered: u64,
    pub peak_rss_mb: Option<f64>,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RemapRun {
    pub seed_seconds: f64,
    pub rss_at_start_mb: Option<f64>,
    /// Every object gains its mapped attributes.
    pub remap: TimedRemap,
    /// The same mappings again: nothing to write.
    pub unchanged: TimedRemap,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemapSummary {
    pub objects: usize,
    pub runs: usize,
    pub batch_objects: usize,
    pub median_objects_per_second: f64,
    pub median_unchanged_objects_per_second: f64,
    pub max_peak_rss_mb: Option<f64>,
    pub all: Vec<RemapRun>,
}

/// The benchmark's mapping set: five Expression mappings and two scoping groups that every seeded user
/// satisfies (the first group for most, the second for the rest).
pub fn benchmark_mappings() -> MappingSet {
    let expression = |target: &str, text: &str| AttributeMapping {
        target: target.to_owned(),
        source: MappingSource::Expression { expression: text.to_owned() },
        default_if_null: None,
        apply: ApplyWhen::Always,
    };
    let clause = |attribute: &str, operator, value: Option<&str>| ScopeClause {
        attribute: attribute.to_owned(),
        operator,
        value: value.map(str::to_owned),
    };
    MappingSet {
        mappings: vec![
            expression("alias", r#"Join(".", [givenName], [surname])"#),
            expression("upnPrefix", r#"Item(Split([userPrincipalName], "@"), 1)"#),
            expression("displayUpper", "ToUpper([displayName])"),
            expression("team", r#"Switch([department], "Other", "Sales", "S", "Engineering", "E")"#),
            expression("mailLower", r#"ToLower(Coalesce([mail], [userPrincipalName]))"#),
        ],
        scoping: vec![
            ScopeGroup {
                clauses: vec![
                    clause("accountEnabled", ScopeOperator::IsTrue, None),
                    clause("userPrincipalName", ScopeOperator::EndsWith, Some("@bench.example")),
                ],
            },
            ScopeGroup { clauses: vec![clause("accountEnabled", ScopeOperator::IsFalse, None)] },
        ],
    }
}

const DEPARTMENTS: [&str; 5] = ["Sales", "Engineering", "Finance", "Support", "Legal"];

/// A seeded user's attributes (canonical), as a round would store them.
fn user_attrs(i: usize) -> serde_json::Map<String, serde_json::Value> {
    let attrs = serde_json::json!({
        "accountEnabled": !i.is_multiple_of(10),
        "businessPhones": [format!("+1 555 {:07}", i % 10_000_000)],
        "department": DEPARTMENTS[i % DEPARTMENTS.len()],
        "displayName": format!("Bench User {i}"),
        "givenName": format!("Given{i}"),
        "jobTitle": "Engineer",
        "mail": format!("user{i}@bench.example"),
        "officeLocation": format!("Building {}", i % 40),
        "surname": format!("Surname{}", i % 5000),
        "userPrincipalName": format!("user{i}@bench.example"),
    });
    match attrs {
        serde_json::Value::Object(map) => canonical_attrs(map),
        _ => serde_json::Map::new(),
    }
}

/// Copies `count` users into the store in transactions of 20,000 (the insert path of a first round).
async fn seed(pool: &Pool, tenant_id: i64, count: usize) -> anyhow::Result<()> {
    const CHUNK: usize = 20_000;
    let run_id = Uuid::new_v4();
    let mut client = pool.get().await?;
    let mut start = 0;
    while start < count {
        let end = (start + CHUNK).min(count);
        let rows: Vec<(Uuid, i64, JsonText)> = (start..end)
            .map(|i| {
                let canonical = canonicalize(&user_attrs(i), None);
                (Uuid::new_v4(), canonical.marker, JsonText::from_json_bytes(canonical.attrs_json))
            })
            .collect();
        let mut writes = ObjectWrites::default();
        for (id, marker, attrs) in &rows {
            writes.push(*id, *marker, attrs, None);
        }
        let transaction = client.transaction().await?;
        objects::insert_new(&transaction, tenant_id, ObjectClass::User, run_id, &writes).await?;
        transaction.commit().await?;
        start = end;
    }
    Ok(())
}

fn mb(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| b as f64 / f64::from(1 << 20))
}

async fn timed(deps: &RemapDeps<'_, PgRunRecorder>, request: &RemapRequest) -> anyhow::Result<TimedRemap> {
    let reset = rss::reset_peak();
    let started = Instant::now();
    let report: RoundReport = run_remap(deps, request).await?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = if reset { rss::own_peak() } else { None };
    tracing::info!(seconds, examined = report.counts.total, changed = report.counts.changed, "benchmark re-map");
    Ok(TimedRemap {
        seconds,
        objects_per_second: report.counts.total as f64 / seconds.max(1e-9),
        examined: report.counts.total,
        changed: report.counts.changed,
        filtered: report.counts.filtered,
        peak_rss_mb: mb(peak),
    })
}

async fn run_once(settings: &Settings, args: &RemapBenchArgs, batch_objects: usize) -> anyhow::Result<RemapRun> {
    let db = ScratchDatabase::create(&settings.database).await?;
    let outcome = measure(&db.pool, args, batch_objects).await;
    if let Err(error) = db.drop_database().await {
        tracing::warn!(error = format!("{error:#}"), "could not drop the benchmark database");
    }
    outcome
}

async fn measure(pool: &Pool, args: &RemapBenchArgs, batch_objects: usize) -> anyhow::Result<RemapRun> {
    let tenant = tenants::create(
        pool,
        &NewTenant {
            name: "bench-remap".to_owned(),
            entra_tenant_id: Uuid::new_v4(),
            cloud: Cloud::Global,
            credential_profile_id: None,
            enabled: true,
            full_scan_next_run: false,
        },
        &crate::store::audit::Actor::new("bench"),
    )
    .await
    .context("registering the benchmark tenant")?;
    let started = Instant::now();
    seed(pool, tenant.id, args.objects).await.context("seeding the stored users")?;
    let seed_seconds = started.elapsed().as_secs_f64();
    let policy = crate::mapping::compile(ObjectClass::User, &benchmark_mappings()).map_err(|problems| {
        anyhow::anyhow!(
            "the benchmark's mappings do not compile: {}",
            problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        )
    })?;
    let recorder = PgRunRecorder::new(pool.clone());
    let deps = RemapDeps { pool, policy: &policy, recorder: &recorder };
    let request = RemapRequest {
        tenant_id: tenant.id,
        class: ObjectClass::User,
        trigger: Trigger::Manual,
        guard: DeletionGuard::default(),
        instance_id: Some("bench".to_owned()),
        batch_objects,
        job_id: None,
    };
    let rss_at_start_mb = mb(rss::own_current());
    let remap = timed(&deps, &request).await.context("the re-map")?;
    anyhow::ensure!(remap.filtered == 0, "the benchmark's scoping filter left {} users out", remap.filtered);
    let unchanged = timed(&deps, &request).await.context("the unchanged re-map")?;
    Ok(RemapRun { seed_seconds, rss_at_start_mb, remap, unchanged })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the benchmark and returns its summary (Markdown, or JSON with `--json`) for the caller to print.
pub async fn run(args: RemapBenchArgs, settings: Settings) -> anyhow::Result<String> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let batch_objects = args.batch_objects.unwrap_or(settings.sync.batch_objects).max(1);
    let mut all = Vec::with_capacity(args.runs);
    for index in 0..args.runs {
        tracing::info!(run = index + 1, of = args.runs, objects = args.objects, "re-map benchmark run");
        all.push(run_once(&settings, &args, batch_objects).await.with_context(|| format!("run {}", index + 1))?);
    }
    let summary = RemapSummary {
        objects: args.objects,
        runs: args.runs,
        batch_objects,
        median_objects_per_second: median(all.iter().map(|r| r.remap.objects_per_second).collect()),
        median_unchanged_objects_per_second: median(all.iter().map(|r| r.unchanged.objects_per_second).collect()),
        max_peak_rss_mb: all
            .iter()
            .flat_map(|r| [r.remap.peak_rss_mb, r.unchanged.peak_rss_mb])
            .flatten()
            .reduce(f64::max),
        all,
    };
    if args.json {
        return Ok(serde_json::to_string(&summary).context("the JSON summary")? + "\n");
    }
    let mut out = format!(
        "re-map of {} stored users, batches of {}, {} run(s)\n\n\
         | run | seed s | re-map s | objects/s | changed | peak RSS MB | unchanged re-map s | objects/s | peak RSS MB |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        summary.objects, summary.batch_objects, summary.runs
    );
    let show = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.0}"));
    for (i, r) in summary.all.iter().enumerate() {
        out.push_str(&format!(
            "| {} | {:.1} | {:.2} | {:.0} | {} | {} | {:.2} | {:.0} | {} |\n",
            i + 1,
            r.seed_seconds,
            r.remap.seconds,
            r.remap.objects_per_second,
            r.remap.changed,
            show(r.remap.peak_rss_mb),
            r.unchanged.seconds,
            r.unchanged.objects_per_second,
            show(r.unchanged.peak_rss_mb),
        ));
    }
    out.push_str(&format!(
        "\nmedian: {:.0} objects/s (every object rewritten), {:.0} objects/s (nothing to write); peak RSS {} MB\n",
        summary.median_objects_per_second,
        summary.median_unchanged_objects_per_second,
        show(summary.max_peak_rss_mb)
    ));
    Ok(out)
}
