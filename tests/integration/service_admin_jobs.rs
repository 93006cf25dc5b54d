//! The worker's operator-facing jobs: a deleted tenant's queued jobs are dropped (a blocked tenant's
//! acknowledged), a credential the secrets key cannot open fails its run with the fix in the history
//! (and `entrasync credential reencrypt` is that fix), and `permission_check` jobs store the tenant's
//! permission status, lift a quarantine that missing consent caused, and are scheduled daily.

use std::time::Duration;

use entrasync::metrics::Metrics;
use entrasync::model::{ObjectClass, SyncMode, Trigger};
use entrasync::queue::{publish_permission_check, Broker, SyncJob};
use entrasync::store::audit::Actor;
use entrasync::store::{schedule, tenants, Pool};

use crate::observability::sample;
use crate::service_support::{start_observed_service, stored_runs, World};
use crate::service_worker::{dead_letter_reasons, publish_raw};
use crate::support::app::binary;
use crate::support::{eventually, holds_for};

/// Deliveries of a queue (`user`, `checks`, …) this instance settled with `outcome`.
fn settled(metrics: &Metrics, queue: &str, outcome: &str) -> u64 {
    let labels = [("class", queue), ("outcome", outcome)];
    sample(&metrics.render(), "entrasync_worker_jobs_total", &labels).unwrap_or(0.0) as u64
}

/// Waits until `metrics` counts `count` deliveries of `queue` settled with `outcome`.
async fn settles(metrics: &Metrics, queue: &str, outcome: &str, count: u64) -> bool {
    let metrics = metrics.clone();
    let (queue, outcome) = (queue.to_owned(), outcome.to_owned());
    eventually(Duration::from_secs(60), move || {
        let (metrics, queue, outcome) = (metrics.clone(), queue.clone(), outcome.clone());
        async move { settled(&metrics, &queue, &outcome) >= count }
    })
    .await
}

/// A worker-only instance of the world with `secrets_key` (the world's own when `None`).
async fn worker(world: &World, secrets_key: Option<&str>) -> (entrasync::actors::Service, Broker, Metrics) {
    let key = secrets_key.unwrap_or(&world.secrets_key).to_owned();
    let settings = world.settings(&[("ENTRASYNC_SERVE_ROLES", "worker"), ("ENTRASYNC_SECRETS_KEY", &key)]);
    let (service, broker, metrics) = start_observed_service(&settings);
    broker.connection(Duration::from_secs(10)).await.expect("connected");
    (service, broker, metrics)
}

fn new_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// (permission status, checked at, quarantine reason) of a tenant.
async fn permission_state(
    pool: &Pool,
    tenant_id: i64,
) -> (String, Option<chrono::DateTime<chrono::Utc>>, Option<String>) {
    let overview = tenants::get_overview(pool, tenant_id).await.expect("overview").expect("tenant exists");
    (overview.permission_status, overview.permissions_checked_at, overview.quarantine_reason)
}

/// Waits for a permission check stored after `after` and returns its status.
async fn checked_after(pool: &Pool, tenant_id: i64, after: chrono::DateTime<chrono::Utc>) -> Option<String> {
    crate::support::eventually_some(Duration::from_secs(60), || async move {
        let (status, checked_at, _) = permission_state(pool, tenant_id).await;
        checked_at.is_some_and(|at| at > after).then_some(status)
    })
    .await
}

#[tokio::test]
async fn a_deleted_tenants_queued_job_is_dropped_and_a_blocked_tenants_is_acknowledged() {
    let world = World::start().await;
    let deleted = world.tenant(61, 10, 10).await;
    let blocked = world.tenant(62, 10, 10).await;
    assert!(tenants::delete(&world.pool, deleted.tenant_id, &Actor::new("test")).await.expect("delete"));
    assert!(tenants::set_blocked(&world.pool, blocked.tenant_id, true, &Actor::new("test")).await.expect("block"));
    let (service, broker, metrics) = worker(&world, None).await;

    for tenant in [deleted.entra_tenant_id, blocked.entra_tenant_id, uuid::Uuid::new_v4()] {
        let job = SyncJob::new(tenant, ObjectClass::User, SyncMode::Delta, Trigger::Queue);
        broker.publish(&job).await.expect("publish");
    }
    publish_permission_check(&broker, deleted.entra_tenant_id).await.expect("publish a check");

    assert!(settles(&metrics, "user", "dropped_deleted_tenant", 1).await, "expected the deleted tenant's job dropped");
    assert!(settles(&metrics, "checks", "dropped_deleted_tenant", 1).await, "expected its check dropped too");
    assert!(settles(&metrics, "user", "acked", 1).await, "expected the blocked tenant's job acknowledged");
    assert!(settles(&metrics, "user", "dead_lettered", 1).await, "expected the never-known tenant's job dead-lettered");
    let reasons = dead_letter_reasons(&world.amqp.prefix).await;
    assert_eq!(reasons.len(), 1, "expected only the unknown tenant's job in the dead-letter queue: {reasons:?}");
    assert!(reasons[0].contains("unknown tenant"), "{reasons:?}");
    assert!(stored_runs(&world.pool).await.is_empty(), "expected no run for a deleted or blocked tenant");
    service.shutdown().await;
    broker.delete_topology(Duration::from_secs(5)).await.expect("delete topology");
    broker.close().await;
}

/// The key-rotation story: credentials stored with key A, a worker running with key B. The run fails
/// visibly naming the fix and the job is not redelivered; `entrasync credential reencrypt` with the old
/// key is the fix, after which the next job syncs.
#[tokio::test]
async fn an_undecryptable_credential_fails_the_run_with_the_fix_until_reencrypted() {
    let world = World::start().await;
    let tenant = world.tenant(63, 20, 10).await;
    let key_b = new_key();
    let (service, broker, metrics) = worker(&world, Some(&key_b)).await;

    let job = SyncJob::new(tenant.entra_tenant_id, ObjectClass::User, SyncMode::Delta, Trigger::Queue);
    broker.publish(&job).await.expect("publish");
    assert!(settles(&metrics, "user", "acked", 1).await, "expected the job acknowledged, not requeued");
    let runs = stored_runs(&world.pool).await;
    assert_eq!(runs.len(), 1, "expected one failed run");
    assert_eq!(runs[0].status, "failed");
    let error = runs[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("ENTRASYNC_SECRETS_KEY") && error.contains("entrasync credential reencrypt"),
        "expected the run's error to name the key and the fix: {error}"
    );
    let failures = schedule::load(&world.pool, tenant.tenant_id).await.expect("schedule").expect("tenant");
    let user = failures.classes.iter().find(|c| c.class == ObjectClass::User).expect("user class");
    assert_eq!(user.consecutive_failures, 1, "expected the failure counted for the schedule");
    let (pool, metrics_seen) = (world.pool.clone(), metrics.clone());
    let quiet = holds_for(Duration::from_secs(3), || {
        let (pool, metrics) = (pool.clone(), metrics_seen.clone());
        async move { stored_runs(&pool).await.len() == 1 && settled(&metrics, "user", "requeued") == 0 }
    })
    .await;
    assert!(quiet, "expected the job neither requeued nor run again");

    // The fix: re-encrypt from the old key (A) to the current one (B), through the real binary.
    let old_key_file = std::env::temp_dir().join(format!("entrasync-old-key-{}", uuid::Uuid::new_v4()));
    std::fs::write(&old_key_file, format!("{}\n", world.secrets_key)).expect("write the old key");
    let vars = [("ENTRASYNC_DATABASE_URL", world.db.url.as_str()), ("ENTRASYNC_SECRETS_KEY", key_b.as_str())];
    let old_key_path = old_key_file.to_str().expect("utf-8 path");
    let output =
        binary(&["credential", "reencrypt", "--old-key-file", old_key_path], &vars).output().expect("run entrasync");
    let _ = std::fs::remove_file(&old_key_file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "expected reencrypt to succeed: {stderr}");
    assert!(stderr.contains("1 credential profile(s) re-encrypted"), "expected the count: {stderr}");
    assert!(!stderr.contains(&world.secrets_key) && !stderr.contains(&key_b), "a key was printed: {stderr}");

    broker
        .publish(&SyncJob::new(tenant.entra_tenant_id, ObjectClass::User, SyncMode::Delta, Trigger::Queue))
        .await
        .unwrap();
    let pool = world.pool.clone();
    let succeeded = || {
        let pool = pool.clone();
        async move { stored_runs(&pool).await.iter().any(|r| r.status == "success") }
    };
    assert!(eventually(Duration::from_secs(60), succeeded).await, "expected the next job to sync with the new key");
    service.shutdown().await;
    broker.delete_topology(Duration::from_secs(5)).await.expect("delete topology");
    broker.close().await;
}

#[tokio::test]
async fn reencrypt_refuses_an_old_key_that_does_not_open_the_credentials() {
    let world = World::start().await;
    let key_b = new_key();
    let vars = [
        ("ENTRASYNC_DATABASE_URL", world.db.url.as_str()),
        ("ENTRASYNC_SECRETS_KEY", key_b.as_str()),
        ("OLD_SECRETS_KEY", "not a key"),
    ];
    let wrong = new_key();
    let mut vars_wrong = vars.to_vec();
    vars_wrong[2].1 = &wrong;
    let output = binary(&["credential", "reencrypt", "--old-key-env", "OLD_SECRETS_KEY"], &vars_wrong)
        .output()
        .expect("run entrasync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "expected a failure: {stderr}");
    assert!(
        stderr.contains("does not open credential profile \"emulated app\"") && stderr.contains("nothing was changed"),
        "expected the message to name the profile and say nothing changed: {stderr}"
    );
    assert!(!stderr.contains(&wrong) && !stderr.contains(&key_b), "a key was printed: {stderr}");

    let output = binary(&["credential", "reencrypt", "--old-key-env", "OLD_SECRETS_KEY"], &vars)
        .output()
        .expect("run entrasync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "expected a failure: {stderr}");
    assert!(stderr.contains("does not hold a secrets key"), "{stderr}");
    assert!(!stderr.contains("not a key"), "the variable's value was printed: {stderr}");

    let output = binary(&["credential", "reencrypt"], &vars).output().expect("run entrasync");
    assert_eq!(output.status.code(), Some(2), "expected a usage error without an old key");

    // The stored profile still opens with the old key: nothing was changed.
    let old = entrasync::store::secret_box::SecretBox::from_setting(&crate::support::secret(&world.secrets_key))
        .expect("old key");
    let profile = entrasync::store::credentials::get(&world.pool, &old, world.app.profile_id).await;
    assert!(matches!(profile, Ok(Some(_))), "expected the profile unchanged");
}

#[tokio::test]
async fn a_permission_check_follows_consent_and_lifts_a_quarantine_that_missing_consent_caused() {
    let world = World::start().await;
    let tenant = world.tenant(64, 10, 10).await;
    let identity = &world.sim.state().identity;
    let without_devices = vec!["User.Read.All".to_owned(), "GroupMember.Read.All".to_owned()];
    identity.grant_consent(&tenant.sim_tenant, &world.app.app_id, &without_devices).expect("consent");
    // What five device runs refused for missing consent leave behind.
    let refused = entrasync::graph::GraphError::ConsentMissing {
        client_id: world.app.app_id.clone(),
        tenant_id: tenant.sim_tenant.clone(),
        class: ObjectClass::Device,
        permissions: &["Device.Read.All"],
    };
    for _ in 0..5 {
        schedule::record_failure(&world.pool, tenant.tenant_id, ObjectClass::Device, &refused.to_string(), 5)
            .await
            .expect("record failure");
    }
    assert!(permission_state(&world.pool, tenant.tenant_id).await.2.is_some(), "expected the tenant quarantined");
    let (service, broker, metrics) = worker(&world, None).await;

    let before = chrono::Utc::now();
    let job_id = publish_permission_check(&broker, tenant.entra_tenant_id).await.expect("publish a check");
    assert!(!job_id.is_nil());
    let status = checked_after(&world.pool, tenant.tenant_id, before).await.expect("a check stored");
    assert_eq!(status, "needs_additional_permissions");
    assert!(permission_state(&world.pool, tenant.tenant_id).await.2.is_some(), "expected the quarantine kept");
    let details = tenants::get_overview(&world.pool, tenant.tenant_id).await.unwrap().unwrap();
    assert_eq!(details.permission_status, "needs_additional_permissions");

    let all: Vec<String> = entrasync::demo::emulated::READ_ROLES.iter().map(|r| (*r).to_owned()).collect();
    identity.grant_consent(&tenant.sim_tenant, &world.app.app_id, &all).expect("consent");
    let before = chrono::Utc::now();
    publish_permission_check(&broker, tenant.entra_tenant_id).await.expect("publish a check");
    let status = checked_after(&world.pool, tenant.tenant_id, before).await.expect("a check stored");
    assert_eq!(status, "granted");
    let (_, _, quarantine) = permission_state(&world.pool, tenant.tenant_id).await;
    assert_eq!(quarantine, None, "expected the consent quarantine lifted");
    let query = entrasync::store::audit::AuditQuery {
        limit: 100,
        before_id: None,
        target_type: Some("tenant".to_owned()),
        target_id: Some(tenant.tenant_id.to_string()),
    };
    let audit = entrasync::store::audit::list(&world.pool, &query).await.expect("audit");
    assert!(
        audit.iter().any(|e| e.action == "tenant.lift_quarantine" && e.actor == "system"),
        "expected the lift audited as the system"
    );
    assert!(settles(&metrics, "checks", "acked", 2).await, "expected both checks acknowledged");

    // A kind nobody handles is dead-lettered from the checks queue too, and a check sent to a sync queue
    // is told where it belongs.
    let prefix = world.amqp.prefix.clone();
    let unknown = format!(r#"{{"kind":"reindex","schema_version":1,"job_id":"{}"}}"#, uuid::Uuid::new_v4());
    publish_raw(&prefix, "check.permissions", unknown.as_bytes()).await;
    let misrouted = format!(
        r#"{{"kind":"permission_check","schema_version":1,"job_id":"{}","tenant":"{}"}}"#,
        uuid::Uuid::new_v4(),
        tenant.entra_tenant_id
    );
    publish_raw(&prefix, "sync.user", misrouted.as_bytes()).await;
    assert!(settles(&metrics, "checks", "dead_lettered", 1).await, "expected the unknown kind dead-lettered");
    assert!(settles(&metrics, "user", "dead_lettered", 1).await, "expected the misrouted check dead-lettered");
    let mut reasons = dead_letter_reasons(&prefix).await;
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("a permission_check job arrived on the user queue")
            && reasons[0].contains("check.permissions"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("unknown job kind \"reindex\"") && reasons[1].contains("permission_check"),
        "{reasons:?}"
    );
    service.shutdown().await;
    broker.delete_topology(Duration::from_secs(5)).await.expect("delete topology");
    broker.close().await;
}

/// The scheduler publishes a check for a tenant whose status is a day old, and leaves a fresh one alone.
#[tokio::test]
async fn the_scheduler_checks_permissions_a_day_after_the_last_check() {
    let world = World::start().await;
    let stale = world.tenant(65, 10, 10).await;
    let fresh = world.tenant(66, 10, 10).await;
    let client = world.pool.get().await.expect("connection");
    for (tenant, age) in [(stale.tenant_id, "25 hours"), (fresh.tenant_id, "1 hour")] {
        client
            .execute(
                "UPDATE tenants SET permission_status = 'error', permissions_checked_at = now() - $2::text::interval
                 WHERE id = $1",
                &[&tenant, &age],
            )
            .await
            .expect("age the check");
    }
    let settings = world.settings(&[("ENTRASYNC_SERVE_ROLES", "scheduler,worker")]);
    let (service, broker, metrics) = start_observed_service(&settings);

    let before = chrono::Utc::now() - chrono::TimeDelta::minutes(1);
    let status = checked_after(&world.pool, stale.tenant_id, before).await.expect("the stale tenant checked");
    assert_eq!(status, "granted");
    assert!(settles(&metrics, "checks", "acked", 1).await);
    let (status, checked_at, _) = permission_state(&world.pool, fresh.tenant_id).await;
    assert_eq!(status, "error", "expected the fresh tenant's status untouched");
    assert!(checked_at.is_some_and(|at| at < before), "expected the fresh tenant not checked again");
    assert_eq!(settled(&metrics, "checks", "acked"), 1, "expected one check, published once");
    service.shutdown().await;
    broker.delete_topology(Duration::from_secs(5)).await.expect("delete topology");
    broker.close().await;
}
