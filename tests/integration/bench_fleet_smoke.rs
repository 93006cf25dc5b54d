//! `entrasync bench-fleet` at a tiny size through the real binary, so the fleet benchmark cannot rot:
//! a child emulator serving several tenants, two `entrasync serve` worker instances sharing the jobs
//! through RabbitMQ, a fresh database (dropped afterwards), and the audit of `sync_runs` — every tenant
//! ran exactly once, in full, successfully, and no two runs of a tenant overlapped.

use crate::support::app::binary;
use crate::support::{AMQP_URL, POSTGRES_ADMIN_URL};

const TENANTS: u64 = 5;

#[test]
fn bench_fleet_runs_every_tenant_once_on_two_instances() {
    let output = binary(
        &[
            "bench-fleet",
            "--tenants",
            &TENANTS.to_string(),
            "--users-per-tenant",
            "10",
            "--big-tenant-users",
            "50",
            "--instances",
            "2",
            "--workers-per-class",
            "1",
            "--timeout-secs",
            "120",
            "--json",
        ],
        &[
            ("ENTRASYNC_DATABASE_URL", POSTGRES_ADMIN_URL),
            ("ENTRASYNC_AMQP_URL", AMQP_URL),
            ("ENTRASYNC_LOG_FILTER", "warn"),
            // The benchmark's own pool: small, the suite shares one Postgres.
            ("ENTRASYNC_DATABASE_POOL_SIZE", "4"),
            ("ENTRASYNC_SERVE_ROLES", "api"),
        ],
    )
    .output()
    .expect("run entrasync bench-fleet");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench-fleet failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON summary on stdout");

    let fleet = &summary["fleet"];
    assert_eq!(fleet["tenants"], TENANTS, "{summary}");
    assert_eq!(fleet["instances"], 2, "{summary}");
    assert_eq!(fleet["clean"], true, "{summary}");
    assert_eq!(fleet["objects"], TENANTS * 10, "{summary}");
    assert_eq!(fleet["duplicated_pairs"], 0, "{summary}");
    assert_eq!(fleet["overlapping_runs"], 0, "{summary}");
    assert!(fleet["wall_s"].as_f64().is_some_and(|s| s > 0.0), "{summary}");
    assert_eq!(summary["big"]["objects"], 50, "{summary}");
    assert_eq!(summary["big"]["clean"], true, "{summary}");
    assert!(summary["fleet_to_big"].as_f64().is_some_and(|r| r > 0.0), "{summary}");

    let measured = summary["measurements"].as_array().expect("measurements");
    assert_eq!(measured.len(), 2, "{summary}");
    let audit = &measured[0]["audit"];
    assert_eq!(audit["runs"], TENANTS, "{summary}");
    assert_eq!(audit["by_status"]["success"], TENANTS, "{summary}");
    assert_eq!(audit["missing_tenants"], 0, "{summary}");
    let per_instance: u64 = audit["by_instance"]
        .as_object()
        .expect("runs by instance")
        .values()
        .map(|s| s["runs"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(per_instance, TENANTS, "every run names the instance that ran it: {summary}");
}
