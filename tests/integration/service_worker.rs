//! Sync workers on RabbitMQ: queued jobs run sync rounds to convergence; bad messages are dead-lettered
//! with their reason while the worker keeps consuming; duplicates are coalesced, never run concurrently.

use std::time::Duration;

use entrasync::model::{ObjectClass, SyncMode, Trigger};
use entrasync::queue::SyncJob;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};
use lapin::types::AMQPValue;
use lapin::BasicProperties;

use entrasync::metrics::Metrics;
use graph_sim::faults::{FaultKind, FaultRule, FaultTrigger};

use crate::observability::sample;
use crate::service_support::{
    overlapping_runs, start_observed_service, start_service, stored_counts, stored_runs, true_counts, World,
};
use crate::support::{eventually, AMQP_URL};

pub async fn publish_raw(prefix: &str, routing_key: &str, body: &[u8]) {
    let conn = lapin::Connection::connect(AMQP_URL, Default::default()).await.expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .basic_publish(
            format!("{prefix}.jobs").into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let _ = conn.close(200, "done".into()).await;
}

/// Reasons of the messages in the dead-letter queue (consumed).
pub async fn dead_letter_reasons(prefix: &str) -> Vec<String> {
    let conn = lapin::Connection::connect(AMQP_URL, Default::default()).await.expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    let mut reasons = Vec::new();
    while let Some(message) =
        channel.basic_get(format!("{prefix}.dead").into(), BasicGetOptions::default()).await.expect("get")
    {
        let headers = message.delivery.properties.headers().clone().unwrap_or_default();
        let reason = match headers.inner().get("x-entrasync-reason") {
            Some(AMQPValue::LongString(text)) => text.to_string(),
            other => format!("no reason header: {other:?}"),
        };
        reasons.push(reason);
        message.delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let _ = conn.close(200, "done".into()).await;
    reasons
}

#[tokio::test]
async fn queued_jobs_converge_and_bad_messages_are_dead_lettered_while_the_worker_lives_on() {
    let world = World::start().await;
    let tenant = world.tenant(11, 30, 10).await;
    let settings = world.settings(&[("ENTRASYNC_SERVE_ROLES", "worker"), ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1")]);
    let (service, broker) = start_service(&settings);
    broker.connection(Duration::from_secs(10)).await.expect("connected");

    let prefix = world.amqp.prefix.clone();
    publish_raw(&prefix, "sync.user", b"this is not json").await;
    publish_raw(&prefix, "sync.user", br#"{"schema_version":2,"job_id":"x"}"#).await;
    let stranger = SyncJob::new(uuid::Uuid::new_v4(), ObjectClass::User, SyncMode::Delta, Trigger::Queue);
    broker.publish(&stranger).await.expect("publish");
    // After the bad ones, on the same queue: the worker must still be consuming.
    for class in ObjectClass::ALL {
        broker.publish(&SyncJob::new(tenant.entra_tenant_id, class, SyncMode::Full, Trigger::Queue)).await.unwrap();
    }

    let pool = world.pool.clone();
    let three_succeeded = || {
        let pool = pool.clone();
        async move { stored_runs(&pool).await.iter().filter(|r| r.status == "success").count() == 3 }
    };
    assert!(eventually(Duration::from_secs(60), three_succeeded).await, "runs: {:?}", stored_runs(&pool).await.len());
    assert_eq!(
        stored_counts(&pool, tenant.tenant_id).await,
        true_counts(&world.sim, &tenant.sim_tenant),
        "expected the stored live objects per class to match the emulator's truth"
    );

    let reasons = dead_letter_reasons(&prefix).await;
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not a JSON object")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("schema_version")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("unknown tenant")), "{reasons:?}");
    service.shutdown().await;
    broker.close().await;
}

#[tokio::test]
async fn duplicate_jobs_are_coalesced_into_one_more_run_never_run_concurrently() {
    let world = World::start().await;
    let tenant = world.tenant(12, 200, 5).await;
    // Every Graph response is slowed, so the first round (40 user pages) runs for seconds and the
    // duplicates below arrive while it runs.
    world
        .sim
        .state()
        .add_fault(FaultRule {
            tenant: Some(tenant.sim_tenant.clone()),
            kind: FaultKind::Slow { delay_ms: 100 },
            trigger: FaultTrigger::Always,
            path_contains: None,
            limit: None,
        })
        .expect("slow fault");
    let settings = world.settings(&[
        ("ENTRASYNC_SERVE_ROLES", "worker"),
        ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "2"),
        ("ENTRASYNC_DATABASE_POOL_SIZE", "16"),
    ]);
    let (service, broker, metrics) = start_observed_service(&settings);
    broker.connection(Duration::from_secs(10)).await.expect("connected");

    let job = || SyncJob::new(tenant.entra_tenant_id, ObjectClass::User, SyncMode::Full, Trigger::Queue);
    broker.publish(&job()).await.expect("publish the first job");
    // Wait for the run to exist (a state that stays true), not for the transient `running` status.
    let pool = world.pool.clone();
    let started = || {
        let pool = pool.clone();
        async move { !stored_runs(&pool).await.is_empty() }
    };
    assert!(eventually(Duration::from_secs(30), started).await, "expected the first job to start a run within 30 s");
    for _ in 0..5 {
        broker.publish(&job()).await.expect("publish a duplicate");
    }
    // Quiet means: no run running, no rerun requested, nothing ready in the queue, nothing held by a
    // worker — three polls in a row, so a rerun on its way from publish to a worker is not missed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut quiet_polls = 0;
    while quiet_polls < 3 && tokio::time::Instant::now() < deadline {
        quiet_polls = if is_quiet(&pool, &broker, &metrics).await { quiet_polls + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled = quiet_polls >= 3;
    let runs = stored_runs(&pool).await;
    assert!(
        settled,
        "expected the jobs to settle within 90 s; runs: {:?}",
        runs.iter().map(|r| &r.status).collect::<Vec<_>>()
    );
    assert!(overlapping_runs(&runs).is_empty(), "runs of one (tenant, class) overlap: {:?}", overlapping_runs(&runs));
    assert!(
        runs.iter().all(|r| r.status == "success"),
        "expected every run to succeed: {:?}",
        runs.iter().map(|r| &r.error).collect::<Vec<_>>()
    );
    assert!((2..=3).contains(&runs.len()), "6 jobs while running coalesce into one more run: {} runs", runs.len());
    service.shutdown().await;
    broker.close().await;
}

/// No run running or requested, no user job ready in the queue or held by this instance's workers.
async fn is_quiet(pool: &entrasync::store::Pool, broker: &entrasync::queue::Broker, metrics: &Metrics) -> bool {
    let runs = stored_runs(pool).await;
    if runs.len() < 2 || runs.iter().any(|r| r.status == "running") {
        return false;
    }
    let client = pool.get().await.expect("connection");
    let requested: i64 = client
        .query_one("SELECT count(*) FROM sync_schedules WHERE rerun_mode IS NOT NULL", &[])
        .await
        .expect("rerun requests")
        .get(0);
    let Ok(depths) = broker.queue_depths(Duration::from_secs(5)).await else { return false };
    let ready: u32 = depths.iter().map(|d| d.messages).sum();
    let none_held = sample(&metrics.render(), "entrasync_worker_jobs_in_flight", &[("class", "user")]) == Some(0.0);
    requested == 0 && ready == 0 && none_held
}
