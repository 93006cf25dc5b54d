//! `entrasync bench-events` at a tiny size through the real binary, so the benchmark cannot rot: the
//! relay's throughput run, and the `--rounds` run (events off, a drained consumer, a stopped consumer
//! with a backlog) with its relay child, its backlog and its report.

use std::process::Command;

use serde_json::Value;

use crate::support::POSTGRES_ADMIN_URL;

fn bench_events(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_entrasync"))
        .arg("bench-events")
        .args(args)
        .arg("--json")
        .env("ENTRASYNC_DATABASE_URL", POSTGRES_ADMIN_URL)
        .env("ENTRASYNC_LOG_FILTER", "warn")
        .output()
        .expect("run entrasync bench-events");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench-events {args:?} failed: {stderr}");
    serde_json::from_slice(&output.stdout).expect("a JSON report on stdout")
}

fn positive(value: &Value) -> bool {
    value.as_f64().is_some_and(|v| v > 0.0 && v.is_finite())
}

#[test]
fn bench_events_relays_a_small_outbox() {
    let report = bench_events(&["--events", "3000", "--batch", "500", "--per-message", "10"]);
    assert_eq!(report["events"], 3000, "{report}");
    // Envelopes of up to 10 events: 300 messages, a few more where a tenant's run or a batch of 500
    // ends inside one.
    assert!(report["queued"].as_u64().is_some_and(|n| (300..=312).contains(&n)), "{report}");
    assert!(positive(&report["events_per_s"]), "{report}");
    assert!(report["rss_peak_mib"].as_f64() >= report["rss_before_mib"].as_f64(), "{report}");
}

#[test]
fn bench_events_rounds_compares_off_drained_and_stopped() {
    let users = 300;
    let report = bench_events(&[
        "--rounds",
        "--users",
        "300",
        "--delta-mutations",
        "200",
        "--repeats",
        "1",
        "--backlog",
        "2000",
        "--per-message",
        "10",
        "--page-size",
        "50",
    ]);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3, "{report}");
    let run = |condition: &str| runs.iter().find(|r| r["condition"] == condition).expect(condition);
    // Off: the triggers write nothing. On: one `created` per user in the full round, some in the delta.
    assert_eq!(run("off")["full"]["events"], 0, "{report}");
    for condition in ["drained", "stopped"] {
        let r = run(condition);
        assert_eq!(r["full"]["events"], users, "{report}");
        assert!(r["delta"]["events"].as_i64().is_some_and(|n| n > 0), "{report}");
        // The relay child ran and its process was measured.
        assert!(r["full"]["cpu"]["relay_s"].as_f64().is_some_and(|s| s >= 0.0), "{report}");
    }
    // The backlog went into the stopped queue before its run, which then added its own events to it.
    assert_eq!(report["backlog"]["events"], 2000, "{report}");
    assert_eq!(report["backlog"]["messages"], 200, "{report}");
    let stopped = run("stopped");
    assert!(stopped["stopped_queue_before"].as_u64() >= Some(200), "{report}");
    assert!(stopped["stopped_queue_after"].as_u64() > stopped["stopped_queue_before"].as_u64(), "{report}");
    // The drained run's events reached its consumer, not the stopped queue.
    assert_eq!(run("drained")["stopped_queue_after"], run("drained")["stopped_queue_before"], "{report}");
    for round in ["full", "delta"] {
        for r in runs {
            assert!(positive(&r[round]["wall_s"]), "{report}");
        }
    }
    for ratio in ["full_stopped_over_drained", "delta_stopped_over_drained", "full_drained_over_off"] {
        assert!(positive(&report["ratios"][ratio]), "{ratio}: {report}");
    }
}
