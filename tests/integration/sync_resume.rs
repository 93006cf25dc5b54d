//! Resume: a round stopped after page k of n — its future dropped, or the process running it killed —
//! is resumed by the next round, which converges with final counts equal to an uninterrupted run's.

use std::process::Stdio;
use std::time::Duration;

use entrasync::model::{ObjectClass, RunStatus, SyncMode};
use entrasync::store::cursors;
use entrasync::sync::{
    run_round, PassThrough, PgRunRecorder, RoundDeps, RoundReport, RoundRequest, RunCounts, SyncError,
};
use graph_sim::faults::{FaultKind, FaultRule, FaultTrigger};
use rand::Rng;

use crate::sync_support::{spec, StopAfterBatch, SyncTenant, SyncWorld};

/// Runs a round and drops its future right after page `k` committed.
async fn round_dropped_after_page(world: &SyncWorld, tenant: &SyncTenant, class: ObjectClass, k: u64) {
    let recorder = StopAfterBatch::new(world.recorder.clone(), k);
    let deps = RoundDeps {
        pool: &world.pool,
        graph: &world.graph,
        policy: std::sync::Arc::new(PassThrough),
        recorder: &recorder,
    };
    let request = world.request(tenant, class);
    tokio::select! {
        report = run_round(&deps, &request) => panic!("the round should have been stopped after page {k}: {report:?}"),
        _ = recorder.reached.notified() => {}
    }
}

fn same_counts(resumed: &RunCounts, uninterrupted: &RunCounts) -> bool {
    // Graph requests and waits are the client's business; what the run did must match exactly.
    (resumed.total, resumed.changed, resumed.deleted, resumed.filtered, resumed.pages)
        == (
            uninterrupted.total,
            uninterrupted.changed,
            uninterrupted.deleted,
            uninterrupted.filtered,
            uninterrupted.pages,
        )
}

async fn resumed_round(world: &SyncWorld, tenant: &SyncTenant, class: ObjectClass, twin: &RoundReport) {
    let mut rng = rand::rng();
    assert!(twin.counts.pages >= 3, "{class}: the scenario needs several pages: {twin:?}");
    let k = rng.random_range(1..twin.counts.pages);
    round_dropped_after_page(world, tenant, class, k).await;
    let report = world.round(tenant, class).await;
    assert!(report.resumed, "{class}: the next round resumes the stopped run (k = {k})");
    assert_eq!(report.status, RunStatus::Success, "{class}: expected the resumed round to succeed: {report:?}");
    assert_eq!(report.mode, twin.mode, "{class}: expected the resumed round in the stopped round's mode");
    assert!(
        same_counts(&report.counts, &twin.counts),
        "{class}, stopped after page {k}: resumed {:?} vs uninterrupted {:?}",
        report.counts,
        twin.counts
    );
    world.assert_converged(tenant, class, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_dropped_after_a_random_page_resumes_with_the_same_counts() {
    let world = SyncWorld::start().await;
    // Twins: the same seed gives the same directory, ids and pages.
    let stopped = world.tenant(spec(41, 150, 30, 40), 15).await;
    let twin = world.tenant(spec(41, 150, 30, 40), 15).await;

    for class in ObjectClass::ALL {
        let uninterrupted = world.round(&twin, class).await;
        assert_eq!(uninterrupted.mode, SyncMode::Full, "{class}: expected the twin's first round to be full");
        resumed_round(&world, &stopped, class, &uninterrupted).await;
    }
    for tenant in [&stopped, &twin] {
        world.mutate(tenant, 41);
    }
    for class in ObjectClass::ALL {
        let uninterrupted = world.round(&twin, class).await;
        assert_eq!(uninterrupted.mode, SyncMode::Delta, "{class}: expected the twin's second round to be a delta");
        if uninterrupted.counts.pages >= 3 {
            resumed_round(&world, &stopped, class, &uninterrupted).await;
        } else {
            world.round(&stopped, class).await;
            world.assert_converged(&stopped, class, true).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_written_in_batches_count_the_same_and_resume_after_a_batch() {
    let world = SyncWorld::start().await;
    let batched = world.tenant(spec(43, 150, 30, 40), 15).await;
    let twin = world.tenant(spec(43, 150, 30, 40), 15).await;
    let batched_request = |class| RoundRequest { batch_objects: 40, ..world.request(&batched, class) };

    // Users: 10 pages of 15 in batches of 3 pages; stopped after the first batch, then resumed.
    let per_page = world.round(&twin, ObjectClass::User).await;
    let recorder = StopAfterBatch::new(world.recorder.clone(), 1);
    let deps = RoundDeps {
        pool: &world.pool,
        graph: &world.graph,
        policy: std::sync::Arc::new(PassThrough),
        recorder: &recorder,
    };
    let request = batched_request(ObjectClass::User);
    tokio::select! {
        report = run_round(&deps, &request) => panic!("not stopped: {report:?}"),
        _ = recorder.reached.notified() => {}
    }
    let checkpointed = checkpointed_pages(&world, &batched).await;
    assert_eq!(checkpointed, 3, "the first batch is three pages, committed together");
    let resumed = world.try_round(&batched_request(ObjectClass::User)).await.expect("resumed round");
    assert!(resumed.resumed, "expected the next round to resume the stopped batched run: {resumed:?}");
    assert!(same_counts(&resumed.counts, &per_page.counts), "{:?} vs {:?}", resumed.counts, per_page.counts);
    world.assert_converged(&batched, ObjectClass::User, true).await;

    // Every class, full then delta: batches count exactly what pages do.
    for class in [ObjectClass::Group, ObjectClass::Device] {
        let per_page = world.round(&twin, class).await;
        let report = world.try_round(&batched_request(class)).await.expect("batched round");
        assert!(same_counts(&report.counts, &per_page.counts), "{class}: {:?} vs {:?}", report.counts, per_page.counts);
    }
    for tenant in [&batched, &twin] {
        world.mutate(tenant, 43);
    }
    for class in ObjectClass::ALL {
        let per_page = world.round(&twin, class).await;
        let report = world.try_round(&batched_request(class)).await.expect("batched delta round");
        assert_eq!(
            (report.mode, report.status),
            (SyncMode::Delta, RunStatus::Success),
            "{class}: expected a successful batched delta round: {report:?}"
        );
        assert_eq!(
            (report.counts.changed, report.counts.deleted, report.counts.pages),
            (per_page.counts.changed, per_page.counts.deleted, per_page.counts.pages),
            "{class}"
        );
        world.assert_converged(&batched, class, true).await;
    }
}

const CHILD_ENV: &str = "ENTRASYNC_SYNC_TEST_CHILD";

/// Entry point of the child process that `killing_the_process_running_a_round_loses_nothing` kills.
#[tokio::test]
#[ignore = "entry point of a child process, started by killing_the_process_running_a_round_loses_nothing"]
async fn child_process_runs_a_round() {
    let Ok(config) = std::env::var(CHILD_ENV) else { return };
    let config: serde_json::Value = serde_json::from_str(&config).expect("child configuration");
    let text = |key: &str| config[key].as_str().expect(key).to_owned();
    let settings = crate::support::settings_with(&[("ENTRASYNC_DATABASE_URL", &text("database_url"))]);
    let pool = entrasync::store::pool(&settings.database).expect("pool");
    let graph = entrasync::graph::GraphClient::new(Default::default()).expect("graph client");
    let cloud = entrasync::model::Cloud::Custom { login_url: text("sim_url"), graph_url: text("sim_url") };
    let graph_tenant = entrasync::graph::GraphTenant {
        cloud,
        tenant_id: text("sim_tenant"),
        credentials: std::sync::Arc::new(entrasync::graph::AppCredentials::with_secret(
            text("app_id"),
            crate::support::secret(crate::sync_support::SECRET),
        )),
        size: entrasync::graph::TenantSize::Small,
    };
    let request = entrasync::sync::RoundRequest {
        tenant_id: config["tenant_id"].as_i64().expect("tenant_id"),
        graph_tenant,
        class: ObjectClass::User,
        trigger: entrasync::model::Trigger::Manual,
        force_full: false,
        guard: crate::sync_support::NO_GUARD,
        priority: Default::default(),
        instance_id: Some("child".to_owned()),
        batch_objects: 1,
        job_id: None,
    };
    let recorder = PgRunRecorder::new(pool.clone());
    let deps = RoundDeps { pool: &pool, graph: &graph, policy: std::sync::Arc::new(PassThrough), recorder: &recorder };
    run_round(&deps, &request).await.expect("child round");
}

async fn checkpointed_pages(world: &SyncWorld, tenant: &SyncTenant) -> u64 {
    let client = world.pool.get().await.expect("connection");
    let cursor = cursors::load(&client, tenant.tenant_id, ObjectClass::User).await.expect("cursor").expect("tenant");
    cursor.in_progress.map_or(0, |run| run.counts.pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_process_running_a_round_loses_nothing() {
    let world = SyncWorld::start().await;
    let killed = world.tenant(spec(43, 200, 0, 0), 10).await;
    let twin = world.tenant(spec(43, 200, 0, 0), 10).await;
    let uninterrupted = world.round(&twin, ObjectClass::User).await;
    let n = uninterrupted.counts.pages;
    let k = rand::rng().random_range(1..n - 1);
    // Slow pages, so the kill lands while the child is mid-round.
    world
        .sim
        .state()
        .add_fault(FaultRule {
            tenant: Some(killed.sim_tenant.clone()),
            kind: FaultKind::Slow { delay_ms: 60 },
            trigger: FaultTrigger::Always,
            path_contains: Some("users/delta".to_owned()),
            limit: None,
        })
        .expect("slow fault");

    let config = serde_json::json!({
        "database_url": world.db.url,
        "sim_url": world.sim.base_url(),
        "sim_tenant": killed.sim_tenant,
        "app_id": world.app_id,
        "tenant_id": killed.tenant_id,
    });
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "sync_resume::child_process_runs_a_round", "--test-threads=1"])
        .env(CHILD_ENV, config.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the child");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while checkpointed_pages(&world, &killed).await < k {
        assert!(tokio::time::Instant::now() < deadline, "the child never reached page {k}");
        assert!(child.try_wait().expect("child status").is_none(), "the child ended before page {k}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().await.expect("kill the child");
    // The killed child's backend may still be finishing a COMMIT it received; let it end first (the
    // round would otherwise stop with RunMovedOn, which is right, but not this test's point).
    let client = world.pool.get().await.expect("connection");
    let settled = crate::support::eventually(Duration::from_secs(10), || async {
        let busy: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'",
                &[],
            )
            .await
            .expect("activity")
            .get(0);
        busy == 0
    })
    .await;
    assert!(settled, "the killed child's connections went away");
    let at_kill = checkpointed_pages(&world, &killed).await;
    assert!(at_kill >= k && at_kill < n, "killed mid-round: {at_kill} of {n} pages checkpointed");

    world.sim.state().clear_faults(Some(&killed.sim_tenant));
    let report = world.round(&killed, ObjectClass::User).await;
    assert!(report.resumed, "the next round resumes the killed run");
    assert!(
        same_counts(&report.counts, &uninterrupted.counts),
        "killed after {at_kill} of {n} pages: resumed {:?} vs uninterrupted {:?}",
        report.counts,
        uninterrupted.counts
    );
    world.assert_converged(&killed, ObjectClass::User, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_of_the_same_run_writes_nothing() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(44, 120, 0, 0), 10).await;
    round_dropped_after_page(&world, &tenant, ObjectClass::User, 3).await;
    // Two rounds resume the same checkpoint at once (what a lost lock or a late commit looks like):
    // exactly one applies each page; the other stops without writing.
    let request = world.request(&tenant, ObjectClass::User);
    let (a, b) = tokio::join!(world.try_round(&request), world.try_round(&request));
    let outcomes = [&a, &b];
    let finished: Vec<_> = outcomes.iter().filter_map(|r| r.as_ref().ok()).collect();
    let stopped = outcomes.iter().filter(|r| matches!(r, Err(SyncError::RunMovedOn { .. }))).count();
    assert_eq!((finished.len(), stopped), (1, 1), "{a:?} / {b:?}");
    let client = world.pool.get().await.expect("connection");
    let recorded = entrasync::store::runs::get(&client, finished[0].run_id).await.expect("run").expect("row");
    assert_eq!(recorded.status, "success", "the stopped round did not overwrite the history");
    world.assert_converged(&tenant, ObjectClass::User, true).await;
}

/// Objects a run created count as listed through `created_run`. When the run restarts as a full scan,
/// that must be forgotten: an object the first attempt created and Entra then deleted is absent from the
/// new listing, and the sweep must delete it (`run_scratch::forget_created`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_created_before_a_restart_as_full_is_swept_when_the_new_listing_lacks_it() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(44, 150, 0, 0), 15).await;
    // The first full round creates the first page's 15 users, then stops.
    round_dropped_after_page(&world, &tenant, ObjectClass::User, 1).await;
    let client = world.pool.get().await.expect("connection");
    let created: uuid::Uuid = client
        .query_one(
            "SELECT object_id FROM directory_objects WHERE tenant_id = $1 AND created_run IS NOT NULL LIMIT 1",
            &[&tenant.tenant_id],
        )
        .await
        .expect("an object the stopped run created")
        .get(0);
    world.sim.state().delete_object(&tenant.sim_tenant, &created.to_string(), true).expect("delete in Entra");
    // Every delta state token issued so far expires (the emulator's clock passes their seven-day
    // lifetime), so the resumed run's next page is refused and it restarts as a full listing, without the
    // object. Expiry, not a one-shot fault: the dropped round's prefetch may still have a request in
    // flight, and a one-shot fault would be spent on that request instead of the resumed run's.
    world.sim.state().advance_clock(chrono::Duration::days(8));
    let report = world.round(&tenant, ObjectClass::User).await;
    assert!(
        report.resumed && report.reason.as_deref().is_some_and(|r| r.contains("restarted as a full scan")),
        "expected the stopped run to resume and restart as a full scan: {report:?}"
    );
    assert_eq!((report.status, report.counts.deleted), (RunStatus::Success, 1), "{report:?}");
    let live: bool = client
        .query_one(
            "SELECT deleted_at IS NULL FROM directory_objects WHERE tenant_id = $1 AND object_id = $2",
            &[&tenant.tenant_id, &created],
        )
        .await
        .expect("the row")
        .get(0);
    assert!(!live, "the object Entra deleted is no longer live");
    world.assert_converged(&tenant, ObjectClass::User, false).await;
}

/// A full scan requested while a delta run sits interrupted is not satisfied by finishing that delta
/// run: the delta run is cancelled in the history ("superseded") and a new full run lists everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_delta_run_gives_way_to_a_requested_full_scan() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(44, 150, 0, 0), 15).await;
    world.round(&tenant, ObjectClass::User).await;
    world.mutate(&tenant, 44);
    round_dropped_after_page(&world, &tenant, ObjectClass::User, 1).await;
    let client = world.pool.get().await.expect("connection");
    let cursor = cursors::load(&client, tenant.tenant_id, ObjectClass::User).await.expect("cursor").expect("row");
    let interrupted = cursor.in_progress.expect("an interrupted delta run").run_id;
    // The operator's "full scan on next run", stamped now (only users were synced, so the flag of the
    // tenant's creation is still set and would not restamp).
    client
        .execute(
            "UPDATE tenants SET full_scan_next_run = true, full_scan_requested_at = now() WHERE id = $1",
            &[&tenant.tenant_id],
        )
        .await
        .expect("request a full scan");

    let report = world.round(&tenant, ObjectClass::User).await;
    assert_eq!((report.mode, report.status, report.resumed), (SyncMode::Full, RunStatus::Success, false), "{report:?}");
    assert_ne!(report.run_id, interrupted, "expected a new run, not the delta run resumed");
    let old = entrasync::store::runs::get(&client, interrupted).await.expect("run").expect("row");
    assert_eq!((old.mode.as_str(), old.status.as_str()), ("delta", "cancelled"), "{old:?}");
    assert!(old.reason.as_deref().unwrap_or_default().contains("superseded by a full scan"), "{old:?}");
    world.assert_converged(&tenant, ObjectClass::User, false).await;
}
