//! Tenant supervisors publish the runs that are due: a full scan first, then deltas every interval, never
//! a second full while one is pending; the run lock, coalesced reruns and the quarantine in Postgres.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use entrasync::model::{ObjectClass, RunStatus, SyncMode, Trigger};
use entrasync::queue::{Broker, SyncJob};
use entrasync::store::run_lock::{self, RunLocks};
use entrasync::store::{cursors, runs, schedule, tenants};
use lapin::options::BasicAckOptions;

use crate::service_support::{create_tenants, start_service};
use crate::support::{eventually_some, settings_with, TestAmqp, TestDb};

/// The modes of the jobs consumed, by (entra tenant, class), in the order they came.
type Jobs = BTreeMap<(uuid::Uuid, ObjectClass), Vec<SyncMode>>;

/// Consumes the jobs of every class queue into `jobs` until `done(jobs)` holds (true) or `timeout` has
/// passed and the queues are drained (false). With a `done` that never holds, it watches for `timeout`.
async fn collect_jobs_until(broker: &Broker, jobs: &mut Jobs, timeout: Duration, done: impl Fn(&Jobs) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut consumers = Vec::new();
    for class in ObjectClass::ALL {
        consumers.push(broker.consume(class, &format!("test-{class}")).await.expect("consumer"));
    }
    loop {
        if done(jobs) {
            return true;
        }
        let mut got_any = false;
        for consumer in &mut consumers {
            if let Ok(Some(Ok(delivery))) =
                tokio::time::timeout(Duration::from_millis(50), consumer.next_delivery()).await
            {
                let job = SyncJob::from_bytes(&delivery.data).expect("valid job");
                jobs.entry((job.tenant, job.object_class)).or_default().push(job.mode);
                delivery.ack(BasicAckOptions::default()).await.expect("ack");
                got_any = true;
            }
        }
        if !got_any && tokio::time::Instant::now() >= deadline {
            return done(jobs);
        }
    }
}

/// The delta interval the scheduler of these tests runs with.
const INTERVAL: Duration = Duration::from_secs(2);

#[tokio::test]
async fn supervisors_publish_one_full_scan_then_deltas_every_interval() {
    let db = TestDb::migrated().await;
    let amqp = TestAmqp::new();
    let pool = db.pool();
    let ids = create_tenants(&pool, 2).await;
    let settings = settings_with(&[
        ("ENTRASYNC_DATABASE_URL", &db.url),
        ("ENTRASYNC_AMQP_PREFIX", &amqp.prefix),
        ("ENTRASYNC_SERVE_ROLES", "scheduler"),
        ("ENTRASYNC_SYNC_DELTA_INTERVAL_SECS", "2"),
    ]);
    let (service, broker) = start_service(&settings);

    // No cursor yet: one full job per tenant and class, not repeated while it has no outcome. Repeats are
    // watched for two more intervals: a slow machine can make that watch miss one, never fail it.
    let mut jobs = Jobs::new();
    let all_six = |jobs: &Jobs| jobs.len() == 6;
    assert!(
        collect_jobs_until(&broker, &mut jobs, Duration::from_secs(60), all_six).await,
        "expected a full job for each of 2 tenants × 3 classes within 60 s: {jobs:?}"
    );
    collect_jobs_until(&broker, &mut jobs, 2 * INTERVAL, |_| false).await;
    assert_eq!(jobs.len(), 6, "expected jobs of the 2 tenants × 3 classes only: {jobs:?}");
    assert!(
        jobs.values().all(|modes| modes == &[SyncMode::Full]),
        "expected one full job each, never repeated: {jobs:?}"
    );

    // The full rounds completed: from now on deltas, one per interval. Every publication falls between
    // `completed` and the end of the collection, so the interval bounds how many there can be.
    let completed = Instant::now();
    let client = pool.get().await.unwrap();
    for id in &ids {
        for class in ObjectClass::ALL {
            cursors::complete(&client, *id, class, "https://graph.example/delta?token=1", true).await.unwrap();
        }
    }
    let mut jobs = Jobs::new();
    let three_each = |jobs: &Jobs| jobs.len() == 6 && jobs.values().all(|modes| modes.len() >= 3);
    assert!(
        collect_jobs_until(&broker, &mut jobs, Duration::from_secs(60), three_each).await,
        "expected deltas to repeat, 3 per tenant and class within 60 s: {jobs:?}"
    );
    let window = completed.elapsed().as_secs_f64();
    // n deltas at least one interval apart span (n − 1) intervals; half an interval of slack.
    let at_most = window / INTERVAL.as_secs_f64() + 1.5;
    for modes in jobs.values() {
        assert!(modes.iter().all(|m| *m == SyncMode::Delta), "expected only deltas once cursors exist: {jobs:?}");
        assert!(
            modes.len() as f64 <= at_most,
            "expected at most one delta per 2 s interval: at most {at_most:.1} in {window:.1} s, got {jobs:?}"
        );
    }

    // An operator asks for a full scan: the next job of every class is full.
    let entra = tenants::get(&pool, ids[0]).await.unwrap().unwrap().entra_tenant_id;
    tenants::request_full_scan(&pool, ids[0]).await.unwrap();
    let mut jobs = Jobs::new();
    let full_each = |jobs: &Jobs| {
        ObjectClass::ALL.iter().all(|class| jobs.get(&(entra, *class)).is_some_and(|m| m.contains(&SyncMode::Full)))
    };
    assert!(
        collect_jobs_until(&broker, &mut jobs, Duration::from_secs(60), full_each).await,
        "expected a full job of every class of tenant {entra} within 60 s of the request: {jobs:?}"
    );
    service.shutdown().await;
    broker.close().await;
}

#[tokio::test]
async fn the_run_lock_is_exclusive_shows_as_running_and_orphaned_runs_are_closed() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenant = create_tenants(&pool, 1).await[0];
    let locks = RunLocks::new(db.settings().database);

    let lock = locks.try_acquire(tenant, ObjectClass::User).await.unwrap().expect("free");
    assert!(
        locks.try_acquire(tenant, ObjectClass::User).await.unwrap().is_none(),
        "expected a held lock not to be taken twice"
    );
    let other_class = locks.try_acquire(tenant, ObjectClass::Group).await.unwrap();
    assert!(other_class.is_some(), "classes lock independently");
    let state = schedule::load(&pool, tenant).await.unwrap().unwrap();
    let running: Vec<bool> = state.classes.iter().map(|c| c.running).collect();
    assert_eq!(running, vec![true, true, false], "expected user and group shown running (locked), device not");

    // A running row whose lock is held stays; one of a class nobody holds is closed as interrupted.
    let client = pool.get().await.unwrap();
    let started = |class| entrasync::model::RunStarted {
        run_id: uuid::Uuid::new_v4(),
        tenant_id: tenant,
        class,
        mode: SyncMode::Full,
        trigger: Trigger::Schedule,
        started_at: chrono::Utc::now() - chrono::TimeDelta::seconds(10),
        resumed: false,
        reason: None,
        counts: Default::default(),
        instance_id: None,
        job_id: None,
    };
    let held_run = started(ObjectClass::User);
    let orphan = started(ObjectClass::Device);
    runs::insert_started(&client, &held_run).await.unwrap();
    runs::insert_started(&client, &orphan).await.unwrap();
    // The orphan check leaves rows written in the last 2 s alone. Both rows last moved when their runs
    // started, 10 s ago: set in the database instead of waited for.
    let backdated = client
        .execute(
            "UPDATE sync_runs SET updated_at = now() - interval '10 seconds' WHERE id = ANY($1)",
            &[&vec![held_run.run_id, orphan.run_id]],
        )
        .await
        .unwrap();
    assert_eq!(backdated, 2, "expected both runs' rows to be backdated");
    assert_eq!(
        run_lock::close_orphaned_runs(&pool).await.unwrap(),
        1,
        "expected only the device run, whose lock nobody holds, closed"
    );
    let orphan_row = runs::get(&client, orphan.run_id).await.unwrap().unwrap();
    assert_eq!(
        (orphan_row.status.as_str(), orphan_row.error.as_deref()),
        ("failed", Some("interrupted")),
        "expected the orphan closed as interrupted"
    );
    assert_eq!(
        runs::get(&client, held_run.run_id).await.unwrap().unwrap().status,
        RunStatus::Running.as_str(),
        "expected the run whose lock is held to stay running"
    );

    // Its holder dies: the next holder closes the leftover run. The server notices the closed session
    // asynchronously: the lock is free once it has.
    drop(lock);
    let next = eventually_some(Duration::from_secs(30), || async {
        locks.try_acquire(tenant, ObjectClass::User).await.unwrap()
    })
    .await
    .expect("expected the dropped lock to be free within 30 s");
    assert_eq!(
        run_lock::close_interrupted(&next, tenant, ObjectClass::User).await.unwrap(),
        1,
        "expected the next holder to close the dead holder's running user run"
    );
}

#[tokio::test]
async fn reruns_coalesce_and_repeated_failures_quarantine_until_a_success() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenant = create_tenants(&pool, 1).await[0];

    schedule::request_rerun(&pool, tenant, ObjectClass::Group, SyncMode::Delta).await.unwrap();
    schedule::request_rerun(&pool, tenant, ObjectClass::Group, SyncMode::Full).await.unwrap();
    schedule::request_rerun(&pool, tenant, ObjectClass::Group, SyncMode::Delta).await.unwrap();
    assert_eq!(
        schedule::take_rerun(&pool, tenant, ObjectClass::Group).await.unwrap(),
        Some(SyncMode::Full),
        "expected delta, full, delta requests to coalesce into one full rerun"
    );
    assert_eq!(schedule::take_rerun(&pool, tenant, ObjectClass::Group).await.unwrap(), None, "taken once");

    for n in 1..=4 {
        assert_eq!(
            schedule::record_failure(&pool, tenant, ObjectClass::User, "consent missing", 5).await.unwrap(),
            n,
            "expected failure {n} in a row counted"
        );
    }
    assert!(schedule::quarantined(&pool).await.unwrap().is_empty(), "four failures do not quarantine");
    schedule::record_failure(&pool, tenant, ObjectClass::User, "consent missing", 5).await.unwrap();
    let quarantined = schedule::quarantined(&pool).await.unwrap();
    assert_eq!(quarantined.len(), 1, "expected the fifth failure to quarantine the tenant");
    assert!(
        quarantined[0].reason.contains("user runs failed 5 times") && quarantined[0].reason.contains("consent"),
        "expected the reason to name the class, the count and the last error: {}",
        quarantined[0].reason
    );

    // Another class succeeding does not lift it; the failing class succeeding does.
    schedule::record_success(&pool, tenant, ObjectClass::Device, 5).await.unwrap();
    assert_eq!(
        schedule::quarantined(&pool).await.unwrap().len(),
        1,
        "expected another class's success not to lift the quarantine"
    );
    schedule::record_success(&pool, tenant, ObjectClass::User, 5).await.unwrap();
    assert!(
        schedule::quarantined(&pool).await.unwrap().is_empty(),
        "expected the failing class's success to lift the quarantine"
    );
}

/// Sessions of run locks in this test's database.
async fn lock_sessions(pool: &entrasync::store::Pool) -> i64 {
    let client = pool.get().await.unwrap();
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'entrasync run lock'";
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_released_lock_is_free_at_once_and_its_session_is_reused() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenant = create_tenants(&pool, 1).await[0];
    // Two instances' lock takers.
    let (ours, theirs) = (RunLocks::new(db.settings().database), RunLocks::new(db.settings().database));

    let held = ours.try_acquire(tenant, ObjectClass::User).await.unwrap().expect("free");
    assert!(theirs.try_acquire(tenant, ObjectClass::User).await.unwrap().is_none(), "exclusive across instances");
    held.release().await;
    // The session stays open, but holds nothing: the other instance takes the lock right away.
    let theirs_held = theirs.try_acquire(tenant, ObjectClass::User).await.unwrap().expect("released at once");
    assert!(ours.try_acquire(tenant, ObjectClass::User).await.unwrap().is_none(), "a reused session is no holder");
    theirs_held.release().await;
    assert_eq!(lock_sessions(&pool).await, 2, "one session per taker");

    // A thousand runs one after another on one session, not a thousand sessions.
    for _ in 0..1000 {
        ours.try_acquire(tenant, ObjectClass::User).await.unwrap().expect("free").release().await;
    }
    assert_eq!(lock_sessions(&pool).await, 2, "released sessions are reused");

    // A session whose connection was killed is not reused: the next lock opens a new one.
    let client = pool.get().await.unwrap();
    let killed = "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                  WHERE datname = current_database() AND application_name = 'entrasync run lock') t";
    let _: i64 = client.query_one(killed, &[]).await.unwrap().get(0);
    let again = ours.try_acquire(tenant, ObjectClass::User).await.unwrap().expect("a fresh session");
    assert!(!again.is_lost(), "expected the lock on the fresh session to be alive");
    assert!(theirs.try_acquire(tenant, ObjectClass::User).await.unwrap().is_none(), "held on the fresh session");
}

/// The race behind `service_fairness`'s 9 s gaps: a worker can start the run of a job before the
/// supervisor stamps the enqueue (after the broker's confirm). The job the run recorded counts as taken,
/// whatever the two timestamps say; a newer job does not.
#[tokio::test]
async fn the_last_job_counts_as_taken_once_a_run_recorded_it_even_if_that_run_started_before_the_stamp() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenant = create_tenants(&pool, 1).await[0];
    let user = |state: &schedule::TenantSchedule| {
        state.classes.iter().find(|c| c.class == ObjectClass::User).cloned().expect("user class")
    };
    let taken_job = uuid::Uuid::new_v4();
    schedule::mark_enqueued(&pool, tenant, ObjectClass::User, SyncMode::Delta, taken_job).await.unwrap();
    let before = user(&schedule::load(&pool, tenant).await.unwrap().unwrap());
    assert!(!before.last_job_taken, "no run has recorded the job yet");

    let client = pool.get().await.unwrap();
    let run = entrasync::model::RunStarted {
        run_id: uuid::Uuid::new_v4(),
        tenant_id: tenant,
        class: ObjectClass::User,
        mode: SyncMode::Delta,
        trigger: Trigger::Schedule,
        // Earlier than the enqueue stamp, as a worker that beat the supervisor's stamp writes it.
        started_at: chrono::Utc::now() - chrono::TimeDelta::seconds(5),
        resumed: false,
        reason: None,
        counts: Default::default(),
        instance_id: None,
        job_id: Some(taken_job),
    };
    runs::insert_started(&client, &run).await.unwrap();
    let after = user(&schedule::load(&pool, tenant).await.unwrap().unwrap());
    assert!(
        after.latest_run_started_at < after.last_enqueued_at,
        "the run's start is before the stamp: {:?} vs {:?}",
        after.latest_run_started_at,
        after.last_enqueued_at
    );
    assert!(after.last_job_taken, "the run recorded the last job enqueued");

    schedule::mark_enqueued(&pool, tenant, ObjectClass::User, SyncMode::Delta, uuid::Uuid::new_v4()).await.unwrap();
    let newer = user(&schedule::load(&pool, tenant).await.unwrap().unwrap());
    assert!(!newer.last_job_taken, "a newer job no run has recorded is not taken");
}
