//! Sync workers on RabbitMQ: queued jobs run sync rounds to convergence; bad messages are dead-lettered
//! with their reason while the worker keeps consuming; duplicates are coalesced, never run concurrently.

use std::time::Duration;

use entrasync::model::{ObjectClass, SyncMode, Trigger};
use entrasync::queue::SyncJob;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};
use lapin::types::AMQPValue;
use lapin::BasicProperties;

use crate::service_support::{overlapping_runs, start_service, stored_counts, stored_runs, true_counts, World};
use crate::support::{eventually, AMQP_URL};

async fn publish_raw(prefix: &str, routing_key: &str, body: &[u8]) {
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
async fn dead_letter_reasons(prefix: &str) -> Vec<String> {
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
    assert_eq!(stored_counts(&pool, tenant.tenant_id).await, true_counts(&world.sim, &tenant.sim_tenant));

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
    let settings = world.settings(&[
        ("ENTRASYNC_SERVE_ROLES", "worker"),
        ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "2"),
        ("ENTRASYNC_DATABASE_POOL_SIZE", "16"),
    ]);
    let (service, broker) = start_service(&settings);
    broker.connection(Duration::from_secs(10)).await.expect("connected");

    let job = || SyncJob::new(tenant.entra_tenant_id, ObjectClass::User, SyncMode::Full, Trigger::Queue);
    broker.publish(&job()).await.unwrap();
    // The duplicates arrive while the first run runs: a holder's run covers every request made before it
    // started, so duplicates sent all at once may rightly collapse into that one run.
    let pool = world.pool.clone();
    let running = || {
        let pool = pool.clone();
        async move { stored_runs(&pool).await.iter().any(|r| r.status == "running") }
    };
    assert!(eventually(Duration::from_secs(30), running).await, "the first run never started");
    for _ in 0..5 {
        broker.publish(&job()).await.unwrap();
    }
    let settled = || {
        let pool = pool.clone();
        async move {
            let runs = stored_runs(&pool).await;
            runs.len() >= 2 && runs.iter().all(|r| r.status != "running")
        }
    };
    assert!(eventually(Duration::from_secs(60), settled).await);
    // Let any further (wrongly duplicated) run show up before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs = stored_runs(&pool).await;
    assert!(overlapping_runs(&runs).is_empty(), "{:?}", overlapping_runs(&runs));
    assert!(runs.iter().all(|r| r.status == "success"), "{:?}", runs.iter().map(|r| &r.error).collect::<Vec<_>>());
    assert!((2..=3).contains(&runs.len()), "6 jobs while running coalesce into one more run: {} runs", runs.len());
    service.shutdown().await;
    broker.close().await;
}
