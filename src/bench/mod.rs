//! `entrasync bench`: the whole pipeline at scale — the Graph emulator (a child process), the Graph
//! client, the sync round and a fresh Postgres database per run — with the figures of
//! docs/benchmarks.md ("Sync round: memory" and "Sync round: throughput"):
//!
//! 1. a full round of `--users` users: time, objects/s, peak RSS of this (the syncing) process, and the
//!    time Postgres takes to COPY the same rows into an identical scratch table, as a ratio;
//! 2. an unchanged re-scan (a full round again): object-row writes and time;
//! 3. a delta round after the emulator's seeded random mutation batch: time end to end.
//!
//! ```sh
//! entrasync bench --users 100000 --runs 3
//! ```

mod analyzer;
mod copy_limit;
mod database;
mod emulator;
mod report;
mod rss;
mod scenario;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::config::Settings;
pub use emulator::EmulatorSpec;
pub use report::Summary;
pub use scenario::{RunFigures, RunPlan};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Users in the generated tenant.
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    /// Runs (each with a fresh database and emulator); the figures are their medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Size of the emulator's seeded random mutation batch before the delta round. The batch spreads
    /// over users, groups, devices and memberships: 28,000 give about 10,000 user changes.
    #[arg(long, default_value_t = 28_000)]
    pub delta_mutations: usize,
    /// Seed of the generated directory and of the mutation batch.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Objects per delta page (Graph's own size is 200).
    #[arg(long, default_value_t = 200)]
    pub page_size: usize,
    /// HTTP worker threads of the emulator.
    #[arg(long, default_value_t = 2)]
    pub emulator_workers: usize,
    /// Run ANALYZE on the benchmark database every this many seconds (0: never), standing in for
    /// autovacuum where the server has it off; without statistics the marker lookup scans the tenant.
    #[arg(long, default_value_t = 0)]
    pub analyze_every_secs: u64,
    /// The binary that runs `graph-sim`; this executable by default.
    #[arg(long)]
    pub emulator_bin: Option<PathBuf>,
    /// Print the summary as one JSON object instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark and prints its summary on stdout.
pub async fn run(args: BenchArgs, settings: Settings) -> anyhow::Result<()> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let exe = match &args.emulator_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("locating this executable to start the emulator")?,
    };
    let plan = RunPlan {
        emulator: EmulatorSpec {
            users: args.users,
            seed: args.seed,
            page_size: args.page_size,
            workers: args.emulator_workers,
        },
        delta_mutations: args.delta_mutations,
        analyze_every: (args.analyze_every_secs > 0).then(|| Duration::from_secs(args.analyze_every_secs)),
    };
    let mut runs = Vec::with_capacity(args.runs);
    for index in 0..args.runs {
        tracing::info!(run = index + 1, of = args.runs, users = args.users, "benchmark run");
        let figures = scenario::run_once(&exe, &settings.database, &plan)
            .await
            .with_context(|| format!("benchmark run {}", index + 1))?;
        runs.push(figures);
    }
    let summary = Summary::of(args.users, &runs);
    if args.json {
        println!("{}", serde_json::to_string(&summary).context("the JSON summary")?);
    } else {
        print!("{}", report::markdown(&runs, &summary));
    }
    Ok(())
}
