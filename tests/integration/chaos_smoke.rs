//! The chaos convergence run's CI profile (`entrasync chaos`, docs/reliability.md) through the library
//! function: 20 emulated tenants, two `entrasync serve` child processes behind fault proxies, two
//! minutes of random mutations, Graph faults of every kind and one outage of each kind (kill -9,
//! RabbitMQ restart, Postgres restart, Postgres stall). The report must be clean: every tenant equals
//! the emulator's truth, no run stuck or recorded twice, nothing dead-lettered.

use entrasync::chaos::faults::Fault;
use entrasync::chaos::{self, ChaosArgs};

use crate::support::{settings_with, AMQP_URL, POSTGRES_ADMIN_URL};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_minutes_of_chaos_lose_nothing_and_inject_every_fault_kind() {
    let args = ChaosArgs {
        seed: 15,
        tenants: 20,
        minutes: 2.0,
        instances: 2,
        delta_interval_secs: 10,
        graph_fault_every_secs: 0.5,
        // Every outage kind once within two minutes.
        outage_every_secs: 10.0,
        mutate_every_secs: 1.0,
        final_sync_timeout_secs: 90,
        bin: Some(env!("CARGO_BIN_EXE_entrasync").into()),
        log_dir: None,
        keep: false,
    };
    let settings = settings_with(&[("ENTRASYNC_DATABASE_URL", POSTGRES_ADMIN_URL), ("ENTRASYNC_AMQP_URL", AMQP_URL)]);
    let started = std::time::Instant::now();
    let report = chaos::run(args, settings).await.expect("the chaos run starts and finishes");
    let json = serde_json::to_string_pretty(&report).expect("report");
    eprintln!("chaos CI profile in {:?}:\n{json}", started.elapsed());

    assert!(report.clean, "failed checks {:?}:\n{json}", report.failed_checks);
    for fault in Fault::all() {
        let count = report.faults.0[fault.name()];
        assert!(count.injected > 0, "{} was never injected:\n{json}", fault.name());
        assert_ne!(count.fired, Some(0), "{} never answered a request:\n{json}", fault.name());
    }
    for fault in Fault::OUTAGES {
        assert!(report.recovery[fault.name()].outages > 0, "no {} outage:\n{json}", fault.name());
    }
    assert!(report.mutations.total > 0, "{json}");
    assert!(report.runs.runs >= 60, "every (tenant, class) ran at least once: {json}");
    assert_eq!(report.objects_lost + report.duplicate_history_rows + report.stuck_runs, 0, "{json}");
}
