//! Re-scans (issue 16): a full round over an already synced tenant compares with a snapshot of the stored
//! markers and keeps its seen set as a bitmap, persisted per batch. Each test runs twins (same seed, same
//! ids and pages) through the snapshot path and the streaming path (a budget of 0) and expects the same
//! store, also when a re-scan is stopped mid-round, the directory changes meanwhile, and the run is resumed
//! by another pool on either path.

use std::collections::BTreeMap;

use entrasync::model::{ObjectClass, RunStatus, SyncMode};
use entrasync::store::{objects, Pool};
use entrasync::sync::{
    run_round_with, PassThrough, PgRunRecorder, RoundDeps, RoundReport, RoundRequest, SnapshotBudget,
};
use serde_json::json;

use crate::sync_support::{row_writes, spec, StopAfterBatch, SyncTenant, SyncWorld};

/// Plenty for a test tenant: the snapshot path.
const SNAPSHOT: u64 = 64 << 20;
/// Less than one block of the snapshot: the round streams.
const STREAM: u64 = 0;
const TINY: u64 = 1_000;

fn rescan_request(world: &SyncWorld, tenant: &SyncTenant, class: ObjectClass) -> RoundRequest {
    RoundRequest { force_full: true, batch_objects: 20, ..world.request(tenant, class) }
}

async fn round_on(pool: &Pool, world: &SyncWorld, request: &RoundRequest, budget: &SnapshotBudget) -> RoundReport {
    let recorder = PgRunRecorder::new(pool.clone());
    let deps = RoundDeps { pool, graph: &world.graph, policy: std::sync::Arc::new(PassThrough), recorder: &recorder };
    run_round_with(&deps, request, budget).await.expect("round")
}

/// Runs the round until `k` batches have committed, then drops it.
async fn stopped_after(world: &SyncWorld, request: &RoundRequest, budget: &SnapshotBudget, k: u64) {
    let recorder = StopAfterBatch::new(world.recorder.clone(), k);
    let deps = RoundDeps {
        pool: &world.pool,
        graph: &world.graph,
        policy: std::sync::Arc::new(PassThrough),
        recorder: &recorder,
    };
    tokio::select! {
        report = run_round_with(&deps, request, budget) => panic!("the round should have stopped after batch {k}: {report:?}"),
        _ = recorder.reached.notified() => {}
    }
}

/// What the store holds of a tenant's class: id → (deleted, reason). Attributes are checked against the
/// directory (twins' new objects carry their creation times).
async fn stored(
    world: &SyncWorld,
    tenant: &SyncTenant,
    class: ObjectClass,
) -> BTreeMap<String, (bool, Option<String>)> {
    let client = world.pool.get().await.expect("connection");
    let rows = objects::list(&client, tenant.tenant_id, class).await.expect("stored objects");
    rows.into_iter().map(|o| (o.object_id.to_string(), (o.deleted, o.delete_reason))).collect()
}

/// Live ids of the emulator's truth, in id order.
fn live_ids(world: &SyncWorld, tenant: &SyncTenant, class: ObjectClass) -> Vec<String> {
    world.sim.state().truth(&tenant.sim_tenant, class).expect("truth").objects.keys().cloned().collect()
}

/// The same changes in each twin: soft and permanent deletions, attribute changes and new objects, chosen
/// by position in id order (twins have the same ids).
fn mutate(world: &SyncWorld, tenants: &[&SyncTenant], class: ObjectClass, salt: usize) {
    let state = world.sim.state();
    for tenant in tenants {
        let ids = live_ids(world, tenant, class);
        for (n, id) in ids.iter().enumerate().filter(|(n, _)| (n + salt).is_multiple_of(11)) {
            state.delete_object(&tenant.sim_tenant, id, n % 2 == 0).expect("delete");
        }
        for id in ids.iter().skip(salt % 5 + 1).step_by(17) {
            let attrs = json!({"displayName": format!("renamed {salt}")});
            // An object deleted just now cannot change; that is fine.
            let _ = state.update_object(&tenant.sim_tenant, id, attrs.as_object().expect("object"));
        }
        for n in 0..3 {
            let attrs = json!({"displayName": format!("new {salt} {n}")});
            state.create_object(&tenant.sim_tenant, class, attrs.as_object().expect("object")).expect("create");
        }
    }
}

/// One twin per path combination; each is synced, changed, re-scanned (stopped after batch `k`, changed
/// again, resumed in another pool on the second path), and the stores must be equal, and equal to the
/// directory after a delta round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescan_stopped_mid_round_and_resumed_sweeps_exactly_what_was_not_listed() {
    let world = SyncWorld::start().await;
    for class in [ObjectClass::User, ObjectClass::Device] {
        let seed = if class == ObjectClass::User { 61 } else { 62 };
        let (users, devices) = if class == ObjectClass::User { (240, 0) } else { (0, 240) };
        // (path of the stopped part, path of the resumed part)
        let paths = [(STREAM, STREAM), (SNAPSHOT, SNAPSHOT), (SNAPSHOT, STREAM), (STREAM, SNAPSHOT)];
        let mut twins = Vec::new();
        for _ in paths {
            twins.push(world.tenant(spec(seed, users, 0, devices), 10).await);
        }
        let twin_refs: Vec<&SyncTenant> = twins.iter().collect();
        for (tenant, (first, _)) in twins.iter().zip(paths) {
            let report =
                round_on(&world.pool, &world, &world.request(tenant, class), &SnapshotBudget::new(first)).await;
            assert_eq!((report.mode, report.status), (SyncMode::Full, RunStatus::Success), "{report:?}");
        }
        mutate(&world, &twin_refs, class, 1);
        let k = 1 + rand::random::<u64>() % 10;
        for (tenant, (first, _)) in twins.iter().zip(paths) {
            stopped_after(&world, &rescan_request(&world, tenant, class), &SnapshotBudget::new(first), k).await;
        }
        // Objects deleted now are swept if their page is still to come, kept (listed) otherwise.
        mutate(&world, &twin_refs, class, 2);
        let other_process = world.db.pool();
        let mut reports = Vec::new();
        for (tenant, (_, second)) in twins.iter().zip(paths) {
            let report =
                round_on(&other_process, &world, &rescan_request(&world, tenant, class), &SnapshotBudget::new(second))
                    .await;
            assert!(report.resumed, "{class}: the stopped run is resumed: {report:?}");
            assert_eq!((report.mode, report.status), (SyncMode::Full, RunStatus::Success), "{report:?}");
            reports.push(report);
        }
        let reference = stored(&world, &twins[0], class).await;
        let swept =
            reference.values().filter(|(_, reason)| reason.as_deref() == Some("absent from a full listing")).count();
        assert!(swept >= 10, "{class}: the objects deleted before the re-scan are swept ({swept})");
        for (index, (tenant, report)) in twins.iter().zip(&reports).enumerate().skip(1) {
            assert_eq!(
                stored(&world, tenant, class).await,
                reference,
                "{class}: paths {:?} store differently",
                paths[index]
            );
            let (a, b) = (&report.counts, &reports[0].counts);
            assert_eq!(
                (a.total, a.changed, a.deleted, a.pages),
                (b.total, b.changed, b.deleted, b.pages),
                "{class}: paths {:?} count differently",
                paths[index]
            );
        }
        for tenant in &twins {
            let delta =
                round_on(&world.pool, &world, &world.request(tenant, class), &SnapshotBudget::new(SNAPSHOT)).await;
            assert_eq!(delta.mode, SyncMode::Delta);
            world.assert_converged(tenant, class, false).await;
        }
    }
}

/// Objects deleted before a re-scan, on the snapshot path with one page per batch: swept, and nothing
/// else is; the run's seen marks are one chunk row per batch, not a row per object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_path_marks_chunks_and_sweeps_the_set_difference() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(63, 150, 0, 0), 10).await;
    let budget = SnapshotBudget::new(SNAPSHOT);
    round_on(&world.pool, &world, &world.request(&tenant, ObjectClass::User), &budget).await;
    let ids = live_ids(&world, &tenant, ObjectClass::User);
    let gone: Vec<&String> = ids.iter().step_by(13).collect();
    for id in &gone {
        world.sim.state().delete_object(&tenant.sim_tenant, id, true).expect("delete");
    }
    let request = RoundRequest { force_full: true, ..world.request(&tenant, ObjectClass::User) };
    stopped_after(&world, &request, &budget, 4).await;
    assert_eq!(budget.in_use_bytes(), 0, "a dropped round gives its snapshot's memory back");
    let client = world.pool.get().await.expect("connection");
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.expect("count").get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM sync_run_seen_objects").await, 0, "no seen rows on the snapshot path");
    assert_eq!(count("SELECT count(*) FROM sync_run_seen_chunks").await, 4, "one chunk per batch");
    let report = round_on(&world.pool, &world, &request, &budget).await;
    assert!(report.resumed);
    assert_eq!(report.counts.deleted, gone.len() as u64, "{report:?}");
    assert_eq!(report.counts.total, (ids.len() - gone.len()) as u64, "{report:?}");
    let after = stored(&world, &tenant, ObjectClass::User).await;
    for (id, (deleted, reason)) in &after {
        let expected = gone.contains(&id);
        assert_eq!(*deleted, expected, "{id}");
        if expected {
            assert_eq!(reason.as_deref(), Some("absent from a full listing"));
        }
    }
    assert_eq!(count("SELECT count(*) FROM sync_run_seen_chunks").await, 0, "the run's chunks are cleared");
    world.assert_converged(&tenant, ObjectClass::User, false).await;
}

/// A budget below the snapshot's size: the round streams (seen rows, no chunks, nothing reserved) and
/// stores exactly what the snapshot path stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_over_the_budget_streams_with_the_same_result() {
    let world = SyncWorld::start().await;
    let small = world.tenant(spec(64, 120, 0, 0), 10).await;
    let large = world.tenant(spec(64, 120, 0, 0), 10).await;
    let tiny = SnapshotBudget::new(TINY);
    let ample = SnapshotBudget::new(SNAPSHOT);
    round_on(&world.pool, &world, &world.request(&small, ObjectClass::User), &tiny).await;
    round_on(&world.pool, &world, &world.request(&large, ObjectClass::User), &ample).await;
    mutate(&world, &[&small, &large], ObjectClass::User, 3);
    stopped_after(&world, &rescan_request(&world, &small, ObjectClass::User), &tiny, 2).await;
    let client = world.pool.get().await.expect("connection");
    let seen: i64 = client.query_one("SELECT count(*) FROM sync_run_seen_objects", &[]).await.expect("count").get(0);
    let chunks: i64 = client.query_one("SELECT count(*) FROM sync_run_seen_chunks", &[]).await.expect("count").get(0);
    assert!(seen > 0 && chunks == 0, "over the budget the round streams: {seen} seen rows, {chunks} chunks");
    assert_eq!(tiny.in_use_bytes(), 0);
    let streamed = round_on(&world.pool, &world, &rescan_request(&world, &small, ObjectClass::User), &tiny).await;
    let snapshot = round_on(&world.pool, &world, &rescan_request(&world, &large, ObjectClass::User), &ample).await;
    assert_eq!(ample.in_use_bytes(), 0, "a finished round gives its snapshot's memory back");
    assert_eq!(stored(&world, &small, ObjectClass::User).await, stored(&world, &large, ObjectClass::User).await);
    let (a, b) = (&streamed.counts, &snapshot.counts);
    assert_eq!((a.total, a.changed, a.deleted), (b.total, b.changed, b.deleted));
}

/// An unchanged tenant re-scanned writes no object or membership row, on the snapshot path (users,
/// devices) and the streaming one (groups).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_rescan_writes_no_row() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(65, 120, 25, 60), 15).await;
    let budget = SnapshotBudget::new(SNAPSHOT);
    for class in ObjectClass::ALL {
        round_on(&world.pool, &world, &world.request(&tenant, class), &budget).await;
    }
    let before = world.row_versions(&tenant).await;
    for class in ObjectClass::ALL {
        let report = round_on(&world.pool, &world, &rescan_request(&world, &tenant, class), &budget).await;
        assert_eq!((report.mode, report.status), (SyncMode::Full, RunStatus::Success), "{class}: {report:?}");
        assert_eq!((report.counts.rows_written, report.counts.changed, report.counts.deleted), (0, 0, 0), "{class}");
        assert!(report.counts.total > 0, "{class}: everything was listed");
    }
    assert_eq!(row_writes(&before, &world.row_versions(&tenant).await), 0, "row versions changed");
}

/// Objects restored in the directory after their soft deletion was stored: a re-scan on the snapshot
/// path restores them and counts them live for its guards, also across a stop and resumption. The
/// snapshot path counts live objects without the store (debug builds check that count against the
/// store's own at the end of every full round, so a miscount fails the round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescan_restores_soft_deleted_objects_and_counts_them_live() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(66, 150, 0, 0), 10).await;
    let budget = SnapshotBudget::new(SNAPSHOT);
    round_on(&world.pool, &world, &world.request(&tenant, ObjectClass::User), &budget).await;
    let ids = live_ids(&world, &tenant, ObjectClass::User);
    let state = world.sim.state();
    let restored: Vec<&String> = ids.iter().step_by(25).collect();
    for id in &restored {
        state.delete_object(&tenant.sim_tenant, id, false).expect("soft delete");
    }
    let delta = round_on(&world.pool, &world, &world.request(&tenant, ObjectClass::User), &budget).await;
    assert_eq!((delta.mode, delta.counts.deleted), (SyncMode::Delta, restored.len() as u64), "{delta:?}");
    for id in &restored {
        state.restore_object(&tenant.sim_tenant, id).expect("restore");
    }
    stopped_after(&world, &rescan_request(&world, &tenant, ObjectClass::User), &budget, 2).await;
    let report = round_on(&world.pool, &world, &rescan_request(&world, &tenant, ObjectClass::User), &budget).await;
    assert!(report.resumed, "{report:?}");
    assert_eq!((report.mode, report.status, report.counts.deleted), (SyncMode::Full, RunStatus::Success, 0));
    let after = stored(&world, &tenant, ObjectClass::User).await;
    assert_eq!(after.len(), ids.len());
    assert!(after.values().all(|(deleted, _)| !deleted), "every object is live again");
    world.assert_converged(&tenant, ObjectClass::User, false).await;
}
