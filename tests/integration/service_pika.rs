//! Any AMQP client can trigger a resync: a SyncJob published by Python's pika starts a run.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::service_support::{start_service, stored_runs, World};
use crate::support::{eventually, AMQP_URL};

/// A virtualenv with pika, created once per machine and reused.
fn python_with_pika() -> PathBuf {
    let venv = std::env::temp_dir().join("entrasync-test-pika-venv");
    let python = venv.join("bin/python");
    let has_pika =
        |python: &PathBuf| Command::new(python).args(["-c", "import pika"]).status().is_ok_and(|s| s.success());
    if !has_pika(&python) {
        let created = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3 -m venv");
        assert!(created.success(), "cannot create a virtualenv");
        let installed =
            Command::new(venv.join("bin/pip")).args(["install", "--quiet", "pika"]).status().expect("pip install pika");
        assert!(installed.success(), "pip install pika failed");
    }
    python
}

#[tokio::test]
async fn a_job_published_with_pika_triggers_a_resync() {
    let python = tokio::task::spawn_blocking(python_with_pika).await.expect("venv");
    let world = World::start().await;
    let tenant = world.tenant(21, 20, 50).await;
    let settings = world.settings(&[("ENTRASYNC_SERVE_ROLES", "worker"), ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1")]);
    let (service, broker) = start_service(&settings);
    broker.connection(Duration::from_secs(10)).await.expect("connected");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/publish_sync_job.py");
    let output = Command::new(&python)
        .args([script, AMQP_URL, &world.amqp.prefix, &tenant.entra_tenant_id.to_string(), "group", "full"])
        .output()
        .expect("run the pika script");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let pool = world.pool.clone();
    let group_run_succeeded = || {
        let pool = pool.clone();
        async move { stored_runs(&pool).await.iter().any(|r| r.class == "group" && r.status == "success") }
    };
    assert!(eventually(Duration::from_secs(30), group_run_succeeded).await, "the pika job ran a group round");
    service.shutdown().await;
    broker.close().await;
}
