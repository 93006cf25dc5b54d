//! A job's start and its run's start are one transaction (issue 16, target 5): the job start leaves its
//! transaction open on the run-lock session when it took the lock, the run's start writes in it and
//! commits both; anything else a job does first commits it, and a run start abandoned half-way is rolled
//! back, never committed.

use entrasync::model::{Cloud, ObjectClass, RunCounts, SyncMode};
use entrasync::store::run_lock::{Begun, RunLock, RunLocks, RunStart, StartRead};
use entrasync::store::{audit, cursors, held_deletions, remap, schedule, tenants, Pool};
use uuid::Uuid;

use crate::support::TestDb;

/// The `application_name` of run-lock sessions (`store::connect`).
const RUN_LOCK_SESSION: &str = "entrasync run lock";

async fn tenant(pool: &Pool) -> (i64, Uuid) {
    let entra = Uuid::new_v4();
    let new = tenants::NewTenant {
        name: "run start".to_owned(),
        entra_tenant_id: entra,
        cloud: Cloud::Global,
        credential_profile_id: None,
        enabled: true,
        full_scan_next_run: true,
    };
    (tenants::create(pool, &new, &audit::Actor::new("test")).await.expect("create tenant").id, entra)
}

async fn locked(locks: &RunLocks, entra: Uuid) -> (RunLock, RunStart) {
    match locks.begin(entra, ObjectClass::User, Uuid::new_v4(), true, 501).await.expect("job start") {
        Begun::Found { locked: Some(locked), .. } => *locked,
        Begun::Found { locked: None, .. } => panic!("expected the free lock to be taken"),
        Begun::UnknownTenant => panic!("expected the tenant to be found"),
    }
}

/// The run checkpointed by the start, as another connection sees it.
async fn checkpointed(pool: &Pool, tenant_id: i64) -> Option<Uuid> {
    let client = pool.get().await.expect("connection");
    let cursor = cursors::load(&client, tenant_id, ObjectClass::User).await.expect("cursor").expect("tenant");
    cursor.in_progress.map(|checkpoint| checkpoint.run_id)
}

async fn checkpoint_in(lock: &RunLock, tenant_id: i64, run_id: Uuid) {
    let open = lock.open_start().expect("the job start's transaction is open after the lock was taken");
    cursors::checkpoint(&open, tenant_id, ObjectClass::User, run_id, SyncMode::Full, None, &RunCounts::default())
        .await
        .expect("checkpoint in the open start");
    open.commit().await.expect("commit");
}

#[tokio::test]
async fn a_runs_start_commits_with_its_jobs_start_and_an_abandoned_one_is_rolled_back() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let (tenant_id, entra) = tenant(&pool).await;
    let locks = RunLocks::new(db.settings().database);

    // Written in the open start: invisible elsewhere until the commit, then there.
    let (lock, _) = locked(&locks, entra).await;
    let run_id = Uuid::new_v4();
    let open = lock.open_start().expect("open start");
    cursors::checkpoint(&open, tenant_id, ObjectClass::User, run_id, SyncMode::Full, None, &RunCounts::default())
        .await
        .expect("checkpoint");
    assert_eq!(checkpointed(&pool, tenant_id).await, None, "expected nothing visible before the commit");
    open.commit().await.expect("commit");
    assert_eq!(checkpointed(&pool, tenant_id).await, Some(run_id), "expected the start committed");
    assert!(lock.open_start().is_none(), "a committed start cannot be joined again");
    lock.release().await;

    // Abandoned half-way (its round was cancelled): the release rolls it back.
    let (lock, _) = locked(&locks, entra).await;
    let abandoned = Uuid::new_v4();
    let open = lock.open_start().expect("open start");
    cursors::checkpoint(&open, tenant_id, ObjectClass::User, abandoned, SyncMode::Full, None, &RunCounts::default())
        .await
        .expect("checkpoint");
    drop(open);
    lock.release().await;
    assert_eq!(checkpointed(&pool, tenant_id).await, Some(run_id), "expected the abandoned start rolled back");

    // The released session is reused with no transaction left over: the next start commits normally.
    let (lock, _) = locked(&locks, entra).await;
    let next = Uuid::new_v4();
    checkpoint_in(&lock, tenant_id, next).await;
    assert_eq!(checkpointed(&pool, tenant_id).await, Some(next), "expected the reused session's start committed");
    lock.release().await;

    // Work of the job other than a run's start commits the job's start first.
    let (lock, _) = locked(&locks, entra).await;
    lock.commit_start().await.expect("commit the job start");
    assert!(lock.open_start().is_none(), "expected no open start after it committed");
    lock.release().await;
}

/// What the job start read for the run's start, and what the run's start would read itself.
async fn read_and_loaded(locks: &RunLocks, pool: &Pool, tenant_id: i64, entra: Uuid) -> (StartRead, StartRead) {
    let (lock, _) = locked(locks, entra).await;
    let read = lock.open_start().expect("open start").read().expect("read by the job start").clone();
    lock.release().await;
    let client = pool.get().await.expect("connection");
    let cursor = cursors::load(&client, tenant_id, ObjectClass::User).await.expect("load").expect("tenant");
    let held_deletions = held_deletions::any_held(&client, tenant_id, ObjectClass::User).await.expect("held");
    (read, StartRead { cursor, held_deletions })
}

#[tokio::test]
async fn the_job_start_reads_the_cursor_and_held_deletions_as_the_runs_start_would() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let (tenant_id, entra) = tenant(&pool).await;
    let locks = RunLocks::new(db.settings().database);
    let same = |(read, loaded): (StartRead, StartRead)| {
        assert_eq!(read.cursor, loaded.cursor);
        assert_eq!(read.held_deletions, loaded.held_deletions);
        read
    };

    // A new tenant: no cursor yet, a full scan asked for, nothing held.
    let read = same(read_and_loaded(&locks, &pool, tenant_id, entra).await);
    assert!(read.cursor.full_scan_requested && read.cursor.delta_link.is_none() && !read.held_deletions);

    // A run in progress (with its counts), then a completed full round with a held deletion.
    let client = pool.get().await.expect("connection");
    let run_id = Uuid::new_v4();
    let counts = RunCounts { pages: 3, total: 17, ..RunCounts::default() };
    cursors::checkpoint(&client, tenant_id, ObjectClass::User, run_id, SyncMode::Full, Some("https://next"), &counts)
        .await
        .expect("checkpoint");
    let read = same(read_and_loaded(&locks, &pool, tenant_id, entra).await);
    let in_progress = read.cursor.in_progress.expect("a run in progress");
    assert_eq!((in_progress.run_id, in_progress.counts.pages), (run_id, 3));
    cursors::complete(&client, tenant_id, ObjectClass::User, "https://delta", true).await.expect("complete");
    client
        .execute(
            "INSERT INTO held_deletions (tenant_id, object_class, run_id, object_id, permanent, reason)
             VALUES ($1, 'user', $2, $3, false, 'test')",
            &[&tenant_id, &run_id, &Uuid::new_v4()],
        )
        .await
        .expect("hold a deletion");
    let read = same(read_and_loaded(&locks, &pool, tenant_id, entra).await);
    assert_eq!(read.cursor.delta_link.as_deref(), Some("https://delta"));
    assert!(read.cursor.in_progress.is_none() && read.held_deletions);
}

/// A tenant whose user lock one of two run-lock registries holds, its job start committed.
struct Held {
    pool: Pool,
    tenant_id: i64,
    entra: Uuid,
    /// The registry that does not hold the lock.
    other: RunLocks,
    lock: RunLock,
}

async fn held_by_one_of_two(db: &TestDb) -> Held {
    let pool = db.pool();
    let (tenant_id, entra) = tenant(&pool).await;
    let (holder, other) = (RunLocks::new(db.settings().database), RunLocks::new(db.settings().database));
    let (lock, _) = locked(&holder, entra).await;
    lock.commit_start().await.expect("commit the holder's start");
    Held { pool, tenant_id, entra, other, lock }
}

#[tokio::test]
async fn a_job_start_that_takes_no_lock_commits_at_once() {
    let db = TestDb::migrated().await;
    let Held { pool, tenant_id, entra, other, lock } = held_by_one_of_two(&db).await;
    match other.begin(entra, ObjectClass::User, Uuid::new_v4(), true, 501).await.expect("job start") {
        Begun::Found { locked: None, .. } => {}
        _ => panic!("expected the held lock not to be taken twice"),
    }
    let client = pool.get().await.expect("connection");
    let open: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1 AND state <> 'idle'",
            &[&RUN_LOCK_SESSION],
        )
        .await
        .expect("sessions")
        .get(0);
    assert_eq!(open, 0, "expected every run-lock session idle, none left in a transaction");
    // The other's next start takes the lock and commits its run's start.
    lock.release().await;
    let (lock, _) = locked(&other, entra).await;
    let run_id = Uuid::new_v4();
    checkpoint_in(&lock, tenant_id, run_id).await;
    assert_eq!(checkpointed(&pool, tenant_id).await, Some(run_id));
    lock.release().await;
}

#[tokio::test]
async fn a_job_start_finds_its_pairs_running_runs_by_their_own_index_whatever_the_history() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let (tenant_id, entra) = tenant(&pool).await;
    let client = pool.get().await.expect("connection");
    // Runs as the service writes them: inserted running, then finished (no ANALYZE, as on a fresh server).
    client
        .batch_execute(&format!(
            "INSERT INTO sync_runs (id, tenant_id, object_class, mode, trigger, status, started_at) \
             SELECT gen_random_uuid(), {tenant_id}, 'user', 'delta', 'schedule', 'running', \
                    now() - i * interval '5 minutes' FROM generate_series(1, 2000) i; \
             UPDATE sync_runs SET status = 'success', finished_at = now() WHERE tenant_id = {tenant_id}"
        ))
        .await
        .expect("history");
    let state = include_str!("../../src/store/sql/run_start_state.sql");
    let plan = client
        .query(&format!("EXPLAIN {state}"), &[&entra, &"user", &0x5359_4e00_i32, &true, &501_i64])
        .await
        .expect("plan");
    let plan: Vec<String> = plan.iter().map(|row| row.get(0)).collect();
    let plan = plan.join("\n");
    // sync_runs_by_kind (status, class, …) would visit an entry of every run of the class that finished
    // since the table was last vacuumed, whichever its tenant.
    assert!(plan.contains("sync_runs_running_by_pair"), "the pair's running runs by their own index:\n{plan}");
    assert!(!plan.contains("sync_runs_by_kind"), "no scan of the class's runs across tenants:\n{plan}");
}

#[tokio::test]
async fn a_job_end_releases_the_lock_and_takes_the_requests_stored_while_it_was_held() {
    let db = TestDb::migrated().await;
    let Held { pool, tenant_id, entra, other, lock } = held_by_one_of_two(&db).await;
    // Jobs coalesced into the running one: each stored its request, then found the lock taken.
    schedule::request_rerun(&pool, tenant_id, ObjectClass::User, SyncMode::Full).await.expect("rerun request");
    remap::request(&pool, tenant_id, ObjectClass::User).await.expect("remap request");
    assert!(matches!(
        other.begin(entra, ObjectClass::User, Uuid::new_v4(), false, 501).await.expect("job start"),
        Begun::Found { locked: None, .. }
    ));

    let requests = lock.release_taking_requests(tenant_id, ObjectClass::User).await.expect("released");
    assert_eq!((requests.rerun, requests.remap), (Some(SyncMode::Full), true));
    // Taken once: nothing is left for the usual takes, and the lock is free for the next job.
    assert_eq!(schedule::take_rerun(&pool, tenant_id, ObjectClass::User).await.expect("take rerun"), None);
    assert!(!remap::take_request(&pool, tenant_id, ObjectClass::User).await.expect("take remap"));
    let (lock, _) = locked(&other, entra).await;
    let requests = lock.release_taking_requests(tenant_id, ObjectClass::User).await.expect("released again");
    assert_eq!((requests.rerun, requests.remap), (None, false));
}
