//! Scoping filters over the stored directory: a narrower filter moves objects out (counted as Filtered,
//! deleted with reason "out of scope") through a re-map and through a full round, a wider one brings them
//! back with the full round the scoping change asks for, and a filter that would remove more than the
//! deletion guard allows holds the run (nothing deleted) — through a re-map and through a round.

use entrasync::mapping::load_policy;
use entrasync::model::mapping::{MappingSet, ScopeClause, ScopeGroup, ScopeOperator};
use entrasync::model::{ObjectClass, RunStatus, Trigger};
use entrasync::store::audit::Actor;
use entrasync::store::{held_deletions, mappings, objects};
use entrasync::sync::{
    run_remap, run_round, DeletionGuard, PgRunRecorder, RemapDeps, RemapRequest, RoundDeps, RoundReport,
};
use serde_json::Value;

use crate::sync_support::{spec, SyncTenant, SyncWorld, NO_GUARD};

const CLASS: ObjectClass = ObjectClass::User;

fn department_is(department: &str) -> MappingSet {
    MappingSet {
        mappings: vec![],
        scoping: vec![ScopeGroup {
            clauses: vec![ScopeClause {
                attribute: "department".into(),
                operator: ScopeOperator::Equals,
                value: Some(department.to_owned()),
            }],
        }],
    }
}

async fn put(world: &SyncWorld, tenant: &SyncTenant, set: &MappingSet) {
    mappings::put(&world.pool, &Actor::new("test"), tenant.tenant_id, CLASS, set, None).await.expect("mappings");
}

async fn remap(world: &SyncWorld, tenant: &SyncTenant, guard: DeletionGuard) -> RoundReport {
    let policy = load_policy(&world.pool, tenant.tenant_id, CLASS).await.expect("policy");
    let recorder = PgRunRecorder::new(world.pool.clone());
    let deps = RemapDeps { pool: &world.pool, policy: policy.as_ref(), recorder: &recorder };
    let request = RemapRequest {
        tenant_id: tenant.tenant_id,
        class: CLASS,
        trigger: Trigger::Manual,
        guard,
        instance_id: None,
        batch_objects: 4,
        job_id: None,
    };
    run_remap(&deps, &request).await.expect("remap")
}

async fn round(world: &SyncWorld, tenant: &SyncTenant, guard: DeletionGuard) -> RoundReport {
    let policy = load_policy(&world.pool, tenant.tenant_id, CLASS).await.expect("policy");
    let deps = RoundDeps { pool: &world.pool, graph: &world.graph, policy, recorder: &world.recorder };
    let request = entrasync::sync::RoundRequest { guard, ..world.request(tenant, CLASS) };
    run_round(&deps, &request).await.expect("round")
}

/// Live users stored: (id, department).
async fn live(world: &SyncWorld, tenant: &SyncTenant) -> Vec<(uuid::Uuid, Option<String>)> {
    let client = world.pool.get().await.expect("connection");
    objects::list(&client, tenant.tenant_id, CLASS)
        .await
        .expect("list")
        .into_iter()
        .filter(|o| !o.deleted)
        .map(|o| (o.object_id, o.attrs.get("department").and_then(Value::as_str).map(str::to_owned)))
        .collect()
}

/// Stored users deleted with `reason`.
async fn deleted_with(world: &SyncWorld, tenant: &SyncTenant, reason: &str) -> usize {
    let client = world.pool.get().await.expect("connection");
    let stored = objects::list(&client, tenant.tenant_id, CLASS).await.expect("list");
    stored.iter().filter(|o| o.deleted && o.delete_reason.as_deref() == Some(reason)).count()
}

/// The most common department of the stored users, and how many users are outside it.
fn commonest_department(users: &[(uuid::Uuid, Option<String>)]) -> (String, u64) {
    let mut counts = std::collections::BTreeMap::<&str, u64>::new();
    for (_, department) in users {
        if let Some(department) = department {
            *counts.entry(department.as_str()).or_default() += 1;
        }
    }
    let (department, inside) = counts.into_iter().max_by_key(|(_, n)| *n).expect("a department");
    (department.to_owned(), users.len() as u64 - inside)
}

#[tokio::test]
async fn a_scoping_change_moves_objects_out_through_a_remap_and_back_in_through_the_full_round_it_asks_for() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(1411, 60, 0, 0), 10).await;
    round(&world, &tenant, NO_GUARD).await;
    let users = live(&world, &tenant).await;
    let (department, outside) = commonest_department(&users);
    assert!(outside > 0 && outside < users.len() as u64, "the seed must give several departments");

    put(&world, &tenant, &department_is(&department)).await;
    let report = remap(&world, &tenant, NO_GUARD).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(report.counts.total, users.len() as u64);
    assert_eq!((report.counts.filtered, report.counts.deleted), (outside, outside), "{report:?}");
    assert_eq!(report.counts.changed, 0, "a scoping filter alone maps nothing");
    let remaining = live(&world, &tenant).await;
    assert_eq!(remaining.len() as u64, users.len() as u64 - outside);
    assert!(remaining.iter().all(|(_, d)| d.as_deref() == Some(department.as_str())));
    assert_eq!(deleted_with(&world, &tenant, "out of scope").await as u64, outside);
    // Nothing left to filter: a second re-map examines only what is in scope.
    let again = remap(&world, &tenant, NO_GUARD).await;
    assert_eq!((again.counts.total, again.counts.filtered, again.counts.deleted), (users.len() as u64 - outside, 0, 0));

    // Everything in scope again: the scoping change asked for a full scan, which brings them back.
    put(&world, &tenant, &MappingSet { mappings: vec![], scoping: vec![] }).await;
    let back = round(&world, &tenant, NO_GUARD).await;
    assert_eq!(back.mode, entrasync::model::SyncMode::Full, "a scoping change asks for a full scan: {back:?}");
    assert_eq!(back.counts.filtered, 0);
    assert!(back.counts.changed >= outside, "the restored objects are written: {back:?}");
    assert_eq!(live(&world, &tenant).await.len(), users.len());
    assert_eq!(deleted_with(&world, &tenant, "out of scope").await, 0);

    // The same filter through the full round it asks for: the same objects leave, counted as Filtered.
    put(&world, &tenant, &department_is(&department)).await;
    let out = round(&world, &tenant, NO_GUARD).await;
    assert_eq!(out.mode, entrasync::model::SyncMode::Full);
    assert_eq!((out.counts.filtered, out.counts.deleted), (outside, outside), "{out:?}");
    assert_eq!(deleted_with(&world, &tenant, "out of scope").await as u64, outside);
}

#[tokio::test]
async fn a_filter_that_would_remove_more_than_the_guard_allows_holds_the_run() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(1412, 60, 0, 0), 10).await;
    round(&world, &tenant, NO_GUARD).await;
    let users = live(&world, &tenant).await;
    let (department, outside) = commonest_department(&users);
    let guard = DeletionGuard { max_deletions: 5, max_percent: 10 };
    assert!(guard.holds(outside, users.len() as u64), "the test needs a filter the guard refuses");

    put(&world, &tenant, &department_is(&department)).await;
    let held = remap(&world, &tenant, guard).await;
    assert_eq!(held.status, RunStatus::Held, "{held:?}");
    assert_eq!((held.counts.filtered, held.counts.deleted), (outside, outside), "{held:?}");
    assert!(held.reason.as_deref().is_some_and(|r| r.contains("held")), "{held:?}");
    assert_eq!(live(&world, &tenant).await.len(), users.len(), "nothing is deleted while held");
    let client = world.pool.get().await.expect("connection");
    let rows = held_deletions::list_for_run(&client, held.run_id).await.expect("held rows");
    assert_eq!(rows.len() as u64, outside);
    assert!(rows.iter().all(|h| h.reason == "out of scope"), "{rows:?}");

    // The full round the scoping change asked for finds those deletions already held: it holds nothing
    // more and deletes nothing.
    let after_hold = round(&world, &tenant, guard).await;
    assert_eq!(after_hold.mode, entrasync::model::SyncMode::Full);
    assert_eq!((after_hold.counts.filtered, after_hold.counts.deleted), (outside, 0), "{after_hold:?}");
    assert_eq!(live(&world, &tenant).await.len(), users.len(), "nothing is deleted while held");

    // Through a full round alone (another tenant, same filter): held, nothing deleted.
    let other = world.tenant(spec(1413, 60, 0, 0), 10).await;
    round(&world, &other, NO_GUARD).await;
    let users = live(&world, &other).await;
    let (department, outside) = commonest_department(&users);
    assert!(guard.holds(outside, users.len() as u64));
    put(&world, &other, &department_is(&department)).await;
    let by_round = round(&world, &other, guard).await;
    assert_eq!(by_round.mode, entrasync::model::SyncMode::Full);
    assert_eq!(by_round.status, RunStatus::Held, "{by_round:?}");
    assert_eq!((by_round.counts.filtered, by_round.counts.deleted), (outside, outside), "{by_round:?}");
    assert_eq!(live(&world, &other).await.len(), users.len(), "nothing is deleted while held");
    let rows = held_deletions::list_for_run(&client, by_round.run_id).await.expect("held rows");
    assert!(rows.len() as u64 == outside && rows.iter().all(|h| h.reason == "out of scope"), "{rows:?}");
}
