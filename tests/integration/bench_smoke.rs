//! `entrasync bench` at a tiny size through the real binary, so the benchmark cannot rot: a child
//! emulator, a fresh database (dropped afterwards), a full round, the COPY limit, an unchanged re-scan
//! (no row writes) and a delta round.

use std::process::Command;

use crate::support::POSTGRES_ADMIN_URL;

#[test]
fn bench_runs_the_whole_pipeline_at_a_tiny_size() {
    let output = Command::new(env!("CARGO_BIN_EXE_entrasync"))
        .args(["bench", "--users", "500", "--runs", "1", "--delta-mutations", "200", "--page-size", "50", "--json"])
        .env("ENTRASYNC_DATABASE_URL", POSTGRES_ADMIN_URL)
        .env("ENTRASYNC_LOG_FILTER", "warn")
        .output()
        .expect("run entrasync bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON summary on stdout");
    assert_eq!(summary["full_objects"], 500, "{summary}");
    assert_eq!(summary["rescan_rows_written"], 0, "{summary}");
    assert_eq!(summary["rescan_row_versions"], 0, "{summary}");
    assert!(summary["delta_changes"].as_u64().is_some_and(|n| n > 0), "{summary}");
    assert!(summary["copy_s"].as_f64().is_some_and(|s| s > 0.0), "{summary}");
}
