//! Hostile jobs: oversized bodies, wrong types, unknown kinds and tenants are dead-lettered with a
//! reason that names the problem, the worker keeps consuming, and stored data is untouched.

use std::time::Duration;

use entrasync::model::{ObjectClass, SyncMode, Trigger};
use entrasync::queue::{SyncJob, MAX_JOB_BYTES};

use crate::service_support::{start_service, stored_counts, stored_runs, true_counts, World};
use crate::service_worker::{dead_letter_reasons, publish_raw};
use crate::support::eventually;

const JOB_ID: &str = "6f1c2a9e-3b7d-4c55-9a39-2f0d8f4b7a11";

#[tokio::test]
async fn hostile_jobs_are_dead_lettered_with_their_reason_and_change_nothing() {
    let world = World::start().await;
    let tenant = world.tenant(23, 20, 6).await;
    let settings = world.settings(&[("ENTRASYNC_SERVE_ROLES", "worker"), ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1")]);
    let (service, broker) = start_service(&settings);
    broker.connection(Duration::from_secs(10)).await.expect("connected");
    let users = SyncJob::new(tenant.entra_tenant_id, ObjectClass::User, SyncMode::Full, Trigger::Queue);
    broker.publish(&users).await.expect("publish");
    let pool = world.pool.clone();
    let first_run_done = || {
        let pool = pool.clone();
        async move { stored_runs(&pool).await.iter().any(|r| r.status == "success") }
    };
    assert!(eventually(Duration::from_secs(60), first_run_done).await, "the first run did not succeed");
    let before = stored_counts(&pool, tenant.tenant_id).await;

    let tenant_id = tenant.entra_tenant_id;
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("larger than", format!(r#"{{"schema_version":1,"pad":"{}"}}"#, "x".repeat(MAX_JOB_BYTES)).into_bytes()),
        ("invalid type", format!(r#"{{"schema_version":1,"job_id":"{JOB_ID}","tenant":"{tenant_id}","object_class":7}}"#).into_bytes()),
        ("invalid type", format!(r#"{{"schema_version":1,"job_id":"{JOB_ID}","tenant":"{tenant_id}","object_class":"user","mode":["full"]}}"#).into_bytes()),
        ("unsupported schema_version", format!(r#"{{"schema_version":"1","job_id":"{JOB_ID}","tenant":"{tenant_id}"}}"#).into_bytes()),
        ("unknown job kind", br#"{"kind":"drop_tables","schema_version":1}"#.to_vec()),
        ("not a JSON object", b"\x00\x01\x02".to_vec()),
        ("unknown tenant", format!(r#"{{"schema_version":1,"job_id":"{JOB_ID}","tenant":"{}","object_class":"user","mode":"full"}}"#, uuid::Uuid::new_v4()).into_bytes()),
    ];
    let prefix = world.amqp.prefix.clone();
    for (_, body) in &hostile {
        publish_raw(&prefix, "sync.user", body).await;
    }
    // Behind them on the same queue: a good job still runs.
    broker.publish(&SyncJob::new(tenant_id, ObjectClass::User, SyncMode::Full, Trigger::Queue)).await.expect("publish");
    let second_run_done = || {
        let pool = pool.clone();
        async move { stored_runs(&pool).await.iter().filter(|r| r.status == "success").count() == 2 }
    };
    assert!(eventually(Duration::from_secs(60), second_run_done).await, "the worker stopped consuming");

    let mut reasons = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while reasons.len() < hostile.len() && tokio::time::Instant::now() < deadline {
        reasons.extend(dead_letter_reasons(&prefix).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (expected, body) in &hostile {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no dead-letter reason contains {expected:?} (body of {} bytes): {reasons:?}",
            body.len()
        );
    }
    assert_eq!(reasons.len(), hostile.len(), "{reasons:?}");
    assert_eq!(stored_counts(&pool, tenant.tenant_id).await, before, "hostile jobs changed stored objects");
    // Users only: the jobs here sync no other class.
    assert_eq!(before[0], true_counts(&world.sim, &tenant.sim_tenant)[0], "the good runs did not converge");
    service.shutdown().await;
    broker.close().await;
}
