//! `entrasync bench`: the whole pipeline at scale — the Graph emulator (a child process), the Graph
//! client, the sync round and a fresh Postgres database per run — with the figures of
//! docs/benchmarks.md ("Sync round: memory" and "Sync round: throughput"):
//!
//! 1. a full round of one object class (`--class`: users, groups with their memberships, or devices):
//!    time, objects/s, peak RSS of this (the syncing) process, and the time Postgres takes to COPY the
//!    same rows (a group round's memberships included) into identical scratch tables, as a ratio;
//! 2. an unchanged re-scan (a full round again): object- and membership-row writes and time;
//! 3. a delta round after the emulator's seeded random mutation batch: time end to end.
//!
//! ```sh
//! entrasync bench --users 100000 --runs 3
//! entrasync bench --class group --runs 3    # 100,000 users, 5,000 groups, ~1.2M memberships
//! entrasync bench --class device --runs 3   # 100,000 devices
//! ```

mod analyzer;
mod copy_limit;
mod cpu;
mod database;
mod emulator;
pub mod events;
mod events_backlog;
mod events_child;
mod events_cpu;
mod events_queues;
pub mod events_rounds;
mod events_rounds_report;
pub mod fleet;
pub mod history;
pub mod nesting;
pub mod remap;
mod report;
mod row_versions;
mod rss;
mod scenario;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::config::Settings;
use crate::model::ObjectClass;
pub use emulator::{ChildEmulator, EmulatedApp, EmulatorSpec, GroupsAndDevices};
pub use report::Summary;
pub use scenario::{RunFigures, RunPlan};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The object class the rounds sync: user, group (with memberships) or device. It sets the default
    /// tenant: user 100,000 users; group 100,000 users and 5,000 groups; device 100,000 devices.
    #[arg(long, default_value = "user")]
    pub class: ObjectClass,
    /// Users in the generated tenant (default: by class).
    #[arg(long)]
    pub users: Option<usize>,
    /// Groups in the generated tenant (default: by class); members are drawn from the users.
    #[arg(long)]
    pub groups: Option<usize>,
    /// Devices in the generated tenant (default: by class).
    #[arg(long)]
    pub devices: Option<usize>,
    /// Runs (each with a fresh database and emulator); the figures are their medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Size of the emulator's seeded random mutation batch before the delta round. The batch spreads
    /// over users, groups, devices and memberships, skipping classes the tenant lacks; the default (by
    /// class: user 28,000, group 20,000, device 170,000) gives about 10,000 changes of the class.
    #[arg(long)]
    pub delta_mutations: Option<usize>,
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
    /// Run every run twice, with `PassThrough` and with five Expression mappings and a two-group scoping
    /// filter that admits everyone (alternating which goes first), and report what the mappings add to
    /// the full round.
    #[arg(long)]
    pub compare_mappings: bool,
}

/// The generated tenant and mutation batch of a class, unless the flags say otherwise.
struct ClassDefaults {
    users: usize,
    groups: usize,
    devices: usize,
    delta_mutations: usize,
}

impl ClassDefaults {
    /// A demanding customer's large tenant, per class (docs/benchmarks.md explains the sizes).
    fn of(class: ObjectClass) -> ClassDefaults {
        match class {
            ObjectClass::User => ClassDefaults { users: 100_000, groups: 0, devices: 0, delta_mutations: 28_000 },
            ObjectClass::Group => ClassDefaults { users: 100_000, groups: 5_000, devices: 0, delta_mutations: 20_000 },
            ObjectClass::Device => ClassDefaults { users: 0, groups: 0, devices: 100_000, delta_mutations: 170_000 },
        }
    }
}

/// Runs the benchmark and returns its summary (Markdown, or JSON with `--json`) for the caller to print.
pub async fn run(args: BenchArgs, settings: Settings) -> anyhow::Result<String> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let exe = match &args.emulator_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("locating this executable to start the emulator")?,
    };
    // The rounds run in this process: its snapshot budget is the configuration's, as in the service.
    crate::sync::SnapshotBudget::instance().set_limit_mb(settings.sync.snapshot_budget_mb);
    let defaults = ClassDefaults::of(args.class);
    let plan = RunPlan {
        class: args.class,
        emulator: EmulatorSpec {
            users: args.users.unwrap_or(defaults.users),
            seed: args.seed,
            page_size: args.page_size,
            workers: args.emulator_workers,
        },
        groups_and_devices: GroupsAndDevices {
            groups: args.groups.unwrap_or(defaults.groups),
            devices: args.devices.unwrap_or(defaults.devices),
        },
        delta_mutations: args.delta_mutations.unwrap_or(defaults.delta_mutations),
        analyze_every: (args.analyze_every_secs > 0).then(|| Duration::from_secs(args.analyze_every_secs)),
        batch_objects: settings.sync.batch_objects,
        mapped: false,
    };
    let mut runs = Vec::with_capacity(args.runs);
    let mut mapped_runs = Vec::new();
    for index in 0..args.runs {
        tracing::info!(
            run = index + 1,
            of = args.runs,
            class = %plan.class,
            users = plan.emulator.users,
            groups = plan.groups_and_devices.groups,
            devices = plan.groups_and_devices.devices,
            "benchmark run"
        );
        let mapped_plan = RunPlan { mapped: true, ..plan.clone() };
        // With --compare-mappings every other run starts with the mapped one, so drift on a shared
        // machine does not favour one side.
        let order: Vec<&RunPlan> = match (args.compare_mappings, index % 2) {
            (false, _) => vec![&plan],
            (true, 0) => vec![&plan, &mapped_plan],
            (true, _) => vec![&mapped_plan, &plan],
        };
        for each in order {
            let figures = scenario::run_once(&exe, &settings.database, each)
                .await
                .with_context(|| format!("benchmark run {}", index + 1))?;
            if each.mapped {
                mapped_runs.push(figures);
            } else {
                runs.push(figures);
            }
        }
    }
    let summary = Summary::of(&plan, &runs);
    let comparison = args.compare_mappings.then(|| report::MappingCost::of(&runs, &mapped_runs));
    Ok(if args.json {
        let json = match comparison {
            Some(cost) => serde_json::json!({ "summary": summary, "mappings": cost }),
            None => serde_json::to_value(&summary).context("the JSON summary")?,
        };
        json.to_string() + "\n"
    } else {
        let mut text = report::markdown(&runs, &summary);
        if let Some(cost) = comparison {
            text.push_str(&cost.markdown());
        }
        text
    })
}
