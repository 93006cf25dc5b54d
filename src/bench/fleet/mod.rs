//! `entrasync bench-fleet`: many small tenants through the whole service — RabbitMQ jobs, the worker
//! actors of `entrasync serve` (child processes of this binary), the Graph emulator (a child process
//! serving every tenant), Postgres — against one big tenant of the same total size through the same
//! path (issue 7, figures 5 and 6; docs/benchmarks.md, "Many tenants through actors and RabbitMQ").
//!
//! Each measurement has its own database, emulator, queue prefix and service instances. The clock runs
//! from publishing the first job until the last run's `finished_at` in `sync_runs`; afterwards the runs
//! are audited: one full, successful run per tenant, none missing, none duplicated, no two runs of a
//! tenant overlapping in time (on one instance or across instances).
//!
//! ```sh
//! entrasync bench-fleet --tenants 1000 --users-per-tenant 100 --big-tenant-users 100000 --instances 1
//! entrasync bench-fleet --instances 2 --big-tenant-users 0
//! ```

mod cpu;
mod db_activity;
mod history;
mod instances;
mod jobs;
mod registry;
mod scenario;
mod sim_tenants;
mod summary;
mod unchanged;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::config::Settings;
use scenario::{Setup, Shape};
pub use summary::FleetSummary;

#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Tenants in the fleet (0: measure the big tenant only).
    #[arg(long, default_value_t = 1000)]
    pub tenants: usize,
    /// Users in each fleet tenant.
    #[arg(long, default_value_t = 100)]
    pub users_per_tenant: usize,
    /// Users in the one big tenant measured after the fleet in each run (0: skip it).
    #[arg(long, default_value_t = 100_000)]
    pub big_tenant_users: usize,
    /// `entrasync serve` processes (worker role) sharing the jobs.
    #[arg(long, default_value_t = 1)]
    pub instances: usize,
    /// Runs; each measures the fleet, then the big tenant, and the figures are their medians.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Sync workers per object class in each instance (ENTRASYNC_SYNC_WORKERS_PER_CLASS).
    #[arg(long, default_value_t = 2)]
    pub workers_per_class: usize,
    /// Jobs each worker runs at once (ENTRASYNC_AMQP_PREFETCH); the instances' pool is sized to fit.
    #[arg(long, default_value_t = 2)]
    pub prefetch: u16,
    /// Objects per delta page (Graph's own size is 200).
    #[arg(long, default_value_t = 200)]
    pub page_size: usize,
    /// HTTP worker threads of the emulator.
    #[arg(long, default_value_t = 2)]
    pub emulator_workers: usize,
    /// Seed of the generated directories (tenant i uses seed + i).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Give up on a measurement after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub timeout_secs: u64,
    /// The binary that runs `graph-sim` and `serve`; this executable by default.
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// After each measurement, start the instances again and measure one delta job per tenant that
    /// changes nothing (the fixed cost of a small run: transactions and Postgres CPU per run).
    #[arg(long)]
    pub unchanged_pass: bool,
    /// Before the measured unchanged pass, run one unmeasured with the same instances: the measured runs
    /// find their sessions open and the per-process caches filled, as in a long-running fleet (implies
    /// `--unchanged-pass`).
    #[arg(long)]
    pub warm_unchanged_pass: bool,
    /// Print the summary as one JSON object instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

/// What a fleet benchmark found: the summary to print (Markdown, or JSON with `--json`), and whether
/// every tenant ran exactly once, successfully, without overlapping runs.
pub struct FleetReport {
    pub text: String,
    pub clean: bool,
}

/// Runs the measurements and returns their summary; the caller prints it and fails when it is not clean.
pub async fn run(args: FleetArgs, settings: Settings) -> anyhow::Result<FleetReport> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    anyhow::ensure!(args.instances > 0, "--instances must be at least 1");
    anyhow::ensure!(
        args.tenants + args.big_tenant_users > 0,
        "nothing to measure: --tenants and --big-tenant-users are 0"
    );
    let exe = match &args.bin {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("locating this executable to start the emulator and the service")?,
    };
    let setup = Setup {
        exe,
        database: settings.database.clone(),
        amqp: settings.amqp.clone(),
        instances: args.instances,
        workers_per_class: args.workers_per_class,
        prefetch: args.prefetch,
        page_size: args.page_size,
        emulator_workers: args.emulator_workers,
        seed: args.seed,
        timeout: Duration::from_secs(args.timeout_secs),
        unchanged_pass: args.unchanged_pass || args.warm_unchanged_pass,
        warm_unchanged_pass: args.warm_unchanged_pass,
    };
    let shapes = [
        Shape { label: summary::FLEET, tenants: args.tenants, users_per_tenant: args.users_per_tenant },
        Shape { label: summary::BIG, tenants: 1, users_per_tenant: args.big_tenant_users },
    ];
    let measured: Vec<Shape> = shapes.into_iter().filter(|s| s.tenants > 0 && s.users_per_tenant > 0).collect();
    let mut measurements = Vec::new();
    for run in 1..=args.runs {
        for shape in &measured {
            tracing::info!(
                run,
                of = args.runs,
                scenario = shape.label,
                tenants = shape.tenants,
                users = shape.users_per_tenant,
                instances = args.instances,
                "fleet benchmark measurement"
            );
            let mut figures = scenario::run_once(&setup, *shape).await.with_context(|| {
                format!("run {run}, {} ({} × {} users)", shape.label, shape.tenants, shape.users_per_tenant)
            })?;
            figures.run = run;
            tracing::info!(
                run,
                scenario = shape.label,
                wall_s = figures.wall_s,
                clean = figures.clean(),
                "fleet benchmark measured"
            );
            measurements.push(figures);
        }
    }
    let summary = FleetSummary::of(measurements);
    let text = if args.json {
        serde_json::to_string(&summary).context("the JSON summary")? + "\n"
    } else {
        summary::markdown(&summary)
    };
    Ok(FleetReport { text, clean: summary.clean() })
}
