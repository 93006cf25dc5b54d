//! The job envelope on RabbitMQ: a job id is an idempotency key (republishing a settled job never starts
//! a second run; a job given back after an outage runs again), and a job of a kind this entrasync does
//! not know is dead-lettered with a reason.

use std::time::Duration;

use entrasync::metrics::Metrics;
use entrasync::model::{ObjectClass, RunFinished, RunStarted, RunStatus, SyncMode, Trigger};
use entrasync::queue::SyncJob;
use entrasync::store::runs::{self, JobRun};

use crate::observability::sample;
use crate::service_support::{start_observed_service, stored_runs, World};
use crate::service_worker::{dead_letter_reasons, publish_raw};
use crate::support::eventually;

/// Deliveries of user jobs this instance settled with `outcome`.
fn settled(metrics: &Metrics, outcome: &str) -> u64 {
    let labels = [("class", "user"), ("outcome", outcome)];
    sample(&metrics.render(), "entrasync_worker_jobs_total", &labels).unwrap_or(0.0) as u64
}

#[tokio::test]
async fn a_republished_job_id_never_starts_a_second_run() {
    let world = World::start().await;
    let tenant = world.tenant(21, 30, 10).await;
    let settings = world.settings(&[("ENTRASYNC_SERVE_ROLES", "worker"), ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1")]);
    let (service, broker, metrics) = start_observed_service(&settings);
    broker.connection(Duration::from_secs(10)).await.expect("connected");

    let job = SyncJob::new(tenant.entra_tenant_id, ObjectClass::User, SyncMode::Full, Trigger::Queue);
    broker.publish(&job).await.expect("publish the job");
    let pool = world.pool.clone();
    let finished = || {
        let pool = pool.clone();
        async move { stored_runs(&pool).await.iter().any(|r| r.status == "success") }
    };
    assert!(eventually(Duration::from_secs(60), finished).await, "expected the job's run to succeed within 60 s");

    // The same message again, twice: both are acknowledged as duplicates, no run starts.
    broker.publish(&job).await.expect("republish the job");
    broker.publish(&job).await.expect("republish the job again");
    let metrics_seen = metrics.clone();
    let both_settled = || {
        let metrics = metrics_seen.clone();
        async move { settled(&metrics, "duplicate") == 2 }
    };
    assert!(
        eventually(Duration::from_secs(30), both_settled).await,
        "expected both republished copies to be settled as duplicates; duplicates: {}",
        settled(&metrics, "duplicate")
    );
    let runs = stored_runs(&world.pool).await;
    assert_eq!(runs.len(), 1, "expected one run for one job id, found {}", runs.len());
    assert_eq!(settled(&metrics, "acked"), 1, "expected only the first delivery to run and be acked");

    // A fresh job id for the same tenant and class runs as usual.
    broker
        .publish(&SyncJob::new(tenant.entra_tenant_id, ObjectClass::User, SyncMode::Delta, Trigger::Queue))
        .await
        .expect("publish a new job");
    let two_runs = || {
        let pool = pool.clone();
        async move { stored_runs(&pool).await.iter().filter(|r| r.status == "success").count() == 2 }
    };
    assert!(eventually(Duration::from_secs(60), two_runs).await, "expected a new job id to start a second run");
    service.shutdown().await;
    broker.close().await;
}

#[tokio::test]
async fn a_job_of_an_unknown_kind_is_dead_lettered_with_the_kinds_we_handle() {
    let world = World::start().await;
    let tenant = world.tenant(22, 10, 10).await;
    let settings = world.settings(&[("ENTRASYNC_SERVE_ROLES", "worker"), ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1")]);
    let (service, broker, metrics) = start_observed_service(&settings);
    broker.connection(Duration::from_secs(10)).await.expect("connected");

    let prefix = world.amqp.prefix.clone();
    let body = format!(
        r#"{{"kind":"reindex","schema_version":1,"job_id":"{}","tenant":"{}"}}"#,
        uuid::Uuid::new_v4(),
        tenant.entra_tenant_id
    );
    publish_raw(&prefix, "sync.user", body.as_bytes()).await;
    let metrics_seen = metrics.clone();
    let dead_lettered = || {
        let metrics = metrics_seen.clone();
        async move { settled(&metrics, "dead_lettered") == 1 }
    };
    assert!(eventually(Duration::from_secs(30), dead_lettered).await, "expected the unknown kind to be dead-lettered");
    let reasons = dead_letter_reasons(&prefix).await;
    assert_eq!(reasons.len(), 1, "expected one dead letter: {reasons:?}");
    assert!(
        reasons[0].contains("unknown job kind \"reindex\"") && reasons[0].contains("sync"),
        "expected the reason to name the kind and the kinds handled: {reasons:?}"
    );
    assert!(stored_runs(&world.pool).await.is_empty(), "expected no run from a job of an unknown kind");
    service.shutdown().await;
    broker.close().await;
}

/// A job given back to the queue after its run ended without it (an outage failed the run, or the
/// orphan sweep closed it) is not a duplicate when it comes back: it runs, and only then is settled.
#[tokio::test]
async fn a_job_given_back_after_its_run_failed_runs_again() {
    let world = World::start().await;
    let tenant = world.tenant(23, 20, 10).await;
    let job = SyncJob::new(tenant.entra_tenant_id, ObjectClass::User, SyncMode::Full, Trigger::Queue);
    // What an outage leaves behind: the job's run recorded, then failed, the job not acknowledged.
    let started = RunStarted {
        run_id: uuid::Uuid::new_v4(),
        tenant_id: tenant.tenant_id,
        class: ObjectClass::User,
        mode: SyncMode::Full,
        trigger: Trigger::Queue,
        started_at: chrono::Utc::now(),
        resumed: false,
        reason: None,
        counts: Default::default(),
        instance_id: None,
        job_id: Some(job.job_id),
    };
    let client = world.pool.get().await.expect("connection");
    runs::insert_started(&client, &started).await.expect("run started");
    assert_eq!(runs::job_run(&world.pool, job.job_id).await.expect("job run"), JobRun::Running);
    let failed = RunFinished {
        run_id: started.run_id,
        tenant_id: tenant.tenant_id,
        class: ObjectClass::User,
        mode: SyncMode::Full,
        status: RunStatus::Failed,
        counts: Default::default(),
        reason: None,
        error: Some("store: Postgres is unreachable: connection closed".to_owned()),
        finished_at: chrono::Utc::now(),
    };
    runs::finish(&client, &failed).await.expect("run failed");
    assert_eq!(
        runs::job_run(&world.pool, job.job_id).await.expect("job run"),
        JobRun::GivenBack,
        "expected a failed run whose job was not acknowledged to leave the job to run again"
    );

    let settings = world.settings(&[("ENTRASYNC_SERVE_ROLES", "worker"), ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1")]);
    let (service, broker, _) = start_observed_service(&settings);
    broker.connection(Duration::from_secs(10)).await.expect("connected");
    broker.publish(&job).await.expect("redeliver the job");
    let pool = world.pool.clone();
    let succeeded = || {
        let pool = pool.clone();
        async move { stored_runs(&pool).await.iter().any(|r| r.status == "success") }
    };
    assert!(eventually(Duration::from_secs(60), succeeded).await, "expected the given-back job to run and succeed");
    let settled = || {
        let pool = pool.clone();
        async move { runs::job_run(&pool, job.job_id).await.ok() == Some(JobRun::Settled) }
    };
    assert!(eventually(Duration::from_secs(10), settled).await, "expected the job to be settled after its run");
    service.shutdown().await;
    broker.close().await;
}
