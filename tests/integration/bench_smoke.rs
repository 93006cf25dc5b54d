//! `entrasync bench` at a tiny size through the real binary, so the benchmark cannot rot: a child
//! emulator, a fresh database (dropped afterwards), a full round, the COPY limit, an unchanged re-scan
//! (no row writes) and a delta round — for users, for groups with their memberships, and for devices.

use std::process::Command;

use crate::support::POSTGRES_ADMIN_URL;

/// Runs `entrasync bench … --runs 1 --json` and returns its summary.
fn bench(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_entrasync"))
        .arg("bench")
        .args(args)
        .args(["--runs", "1", "--page-size", "50", "--json"])
        .env("ENTRASYNC_DATABASE_URL", POSTGRES_ADMIN_URL)
        .env("ENTRASYNC_LOG_FILTER", "warn")
        .output()
        .expect("run entrasync bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench {args:?} failed: {stderr}");
    serde_json::from_slice(&output.stdout).expect("a JSON summary on stdout")
}

/// What every class must show: the listed objects, nothing written by the re-scan, a delta round that
/// received changes, a timed COPY.
fn assert_round_figures(summary: &serde_json::Value, objects: u64) {
    assert_eq!(summary["full_objects"], objects, "{summary}");
    assert_eq!(summary["rescan_rows_written"], 0, "{summary}");
    assert_eq!(summary["rescan_row_versions"], 0, "{summary}");
    assert!(summary["delta_changes"].as_u64().is_some_and(|n| n > 0), "{summary}");
    assert!(summary["copy_s"].as_f64().is_some_and(|s| s > 0.0), "{summary}");
    // CPU-seconds over the round's window ÷ cores cannot exceed its wall time (but for tick rounding).
    let (floor, rescan) = (summary["rescan_cpu_floor_s"].as_f64(), summary["rescan_s"].as_f64());
    assert!(floor.zip(rescan).is_some_and(|(f, r)| f >= 0.0 && f <= r + 0.05), "{summary}");
    // A tiny tenant's re-scan uses a clock tick or two: no ratio rather than a meaningless one.
    let own = &summary["rescan_own_cpu_speedup"];
    assert!(own.is_null() || own.as_f64().is_some_and(|r| r.is_finite() && r < 1000.0), "{summary}");
}

#[test]
fn bench_runs_the_whole_pipeline_at_a_tiny_size() {
    let summary = bench(&["--users", "500", "--delta-mutations", "200"]);
    assert_eq!(summary["class"], "user", "{summary}");
    assert_round_figures(&summary, 500);
}

#[test]
fn bench_runs_groups_with_their_memberships() {
    let summary = bench(&["--class", "group", "--users", "300", "--groups", "40", "--delta-mutations", "200"]);
    assert_eq!(summary["class"], "group", "{summary}");
    assert_round_figures(&summary, 40);
    // Group 0 alone holds every user: the memberships were stored, COPYed, and left alone by the re-scan.
    assert!(summary["memberships"].as_u64().is_some_and(|n| n >= 300), "{summary}");
    assert!(summary["copy_members_s"].as_f64().is_some_and(|s| s > 0.0), "{summary}");
    assert_eq!(summary["rescan_member_row_versions"], 0, "{summary}");
    // The batch adds and removes members; the delta round writes those rows.
    assert!(summary["delta_member_rows"].as_u64().is_some_and(|n| n > 0), "{summary}");
}

#[test]
fn bench_runs_devices() {
    let summary = bench(&["--class", "device", "--devices", "400", "--delta-mutations", "1000"]);
    assert_eq!(summary["class"], "device", "{summary}");
    assert_eq!(summary["users"], 0, "{summary}");
    assert_round_figures(&summary, 400);
    assert_eq!(summary["memberships"], 0, "{summary}");
}
