//! Tenant supervisors publish the runs that are due: a full scan first, then deltas every interval, never
//! a second full while one is pending; the run lock, coalesced reruns and the quarantine in Postgres.

use std::collections::BTreeMap;
use std::time::Duration;

use entrasync::model::{ObjectClass, RunStatus, SyncMode, Trigger};
use entrasync::queue::{Broker, SyncJob};
use entrasync::store::run_lock::{self, RunLocks};
use entrasync::store::{cursors, runs, schedule, tenants};
use lapin::options::BasicAckOptions;

use crate::service_support::{create_tenants, start_service};
use crate::support::{settings_with, TestAmqp, TestDb};

/// Jobs consumed from every class queue during `window`, by (entra tenant, class).
async fn collect_jobs(broker: &Broker, window: Duration) -> BTreeMap<(uuid::Uuid, ObjectClass), Vec<SyncMode>> {
    let mut jobs: BTreeMap<(uuid::Uuid, ObjectClass), Vec<SyncMode>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + window;
    let mut consumers = Vec::new();
    for class in ObjectClass::ALL {
        consumers.push(broker.consume(class, &format!("test-{class}")).await.expect("consumer"));
    }
    loop {
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
            return jobs;
        }
    }
}

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

    // No cursor yet: one full job per tenant and class, not repeated while it has no outcome.
    let jobs = collect_jobs(&broker, Duration::from_secs(7)).await;
    assert_eq!(jobs.len(), 6, "{jobs:?}");
    assert!(jobs.values().all(|modes| modes == &[SyncMode::Full]), "{jobs:?}");

    // The full rounds completed: from now on deltas, one per interval.
    let client = pool.get().await.unwrap();
    for id in &ids {
        for class in ObjectClass::ALL {
            cursors::complete(&client, *id, class, "https://graph.example/delta?token=1", true).await.unwrap();
        }
    }
    let jobs = collect_jobs(&broker, Duration::from_secs(7)).await;
    assert_eq!(jobs.len(), 6, "{jobs:?}");
    for modes in jobs.values() {
        assert!(modes.iter().all(|m| *m == SyncMode::Delta), "{jobs:?}");
        assert!((2..=5).contains(&modes.len()), "about one delta per 2 s interval in 7 s: {jobs:?}");
    }

    // An operator asks for a full scan: the next job of every class is full.
    tenants::request_full_scan(&pool, ids[0]).await.unwrap();
    let jobs = collect_jobs(&broker, Duration::from_secs(4)).await;
    let entra = tenants::get(&pool, ids[0]).await.unwrap().unwrap().entra_tenant_id;
    for class in ObjectClass::ALL {
        assert!(jobs[&(entra, class)].contains(&SyncMode::Full), "{class}: {jobs:?}");
    }
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
    assert!(locks.try_acquire(tenant, ObjectClass::User).await.unwrap().is_none());
    let other_class = locks.try_acquire(tenant, ObjectClass::Group).await.unwrap();
    assert!(other_class.is_some(), "classes lock independently");
    let state = schedule::load(&pool, tenant).await.unwrap().unwrap();
    let running: Vec<bool> = state.classes.iter().map(|c| c.running).collect();
    assert_eq!(running, vec![true, true, false]);

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
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(run_lock::close_orphaned_runs(&pool).await.unwrap(), 1);
    let orphan_row = runs::get(&client, orphan.run_id).await.unwrap().unwrap();
    assert_eq!((orphan_row.status.as_str(), orphan_row.error.as_deref()), ("failed", Some("interrupted")));
    assert_eq!(runs::get(&client, held_run.run_id).await.unwrap().unwrap().status, RunStatus::Running.as_str());

    // Its holder dies: the next holder closes the leftover run.
    drop(lock);
    let next = locks.try_acquire(tenant, ObjectClass::User).await.unwrap();
    let next = match next {
        Some(lock) => lock,
        // The server notices the closed session asynchronously.
        None => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            locks.try_acquire(tenant, ObjectClass::User).await.unwrap().expect("released")
        }
    };
    assert_eq!(run_lock::close_interrupted(&next, tenant, ObjectClass::User).await.unwrap(), 1);
}

#[tokio::test]
async fn reruns_coalesce_and_repeated_failures_quarantine_until_a_success() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenant = create_tenants(&pool, 1).await[0];

    schedule::request_rerun(&pool, tenant, ObjectClass::Group, SyncMode::Delta).await.unwrap();
    schedule::request_rerun(&pool, tenant, ObjectClass::Group, SyncMode::Full).await.unwrap();
    schedule::request_rerun(&pool, tenant, ObjectClass::Group, SyncMode::Delta).await.unwrap();
    assert_eq!(schedule::take_rerun(&pool, tenant, ObjectClass::Group).await.unwrap(), Some(SyncMode::Full));
    assert_eq!(schedule::take_rerun(&pool, tenant, ObjectClass::Group).await.unwrap(), None, "taken once");

    for n in 1..=4 {
        assert_eq!(schedule::record_failure(&pool, tenant, ObjectClass::User, "consent missing", 5).await.unwrap(), n);
    }
    assert!(schedule::quarantined(&pool).await.unwrap().is_empty(), "four failures do not quarantine");
    schedule::record_failure(&pool, tenant, ObjectClass::User, "consent missing", 5).await.unwrap();
    let quarantined = schedule::quarantined(&pool).await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert!(quarantined[0].reason.contains("user runs failed 5 times") && quarantined[0].reason.contains("consent"));

    // Another class succeeding does not lift it; the failing class succeeding does.
    schedule::record_success(&pool, tenant, ObjectClass::Device, 5).await.unwrap();
    assert_eq!(schedule::quarantined(&pool).await.unwrap().len(), 1);
    schedule::record_success(&pool, tenant, ObjectClass::User, 5).await.unwrap();
    assert!(schedule::quarantined(&pool).await.unwrap().is_empty());
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
    assert!(!again.is_lost());
    assert!(theirs.try_acquire(tenant, ObjectClass::User).await.unwrap().is_none(), "held on the fresh session");
}
