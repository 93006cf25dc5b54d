//! Re-map jobs: a mapping change reaches the stored mapped attributes through a `remap` job that reads
//! the store and never Graph (the emulator counts no request, and the worker cannot even decrypt the
//! tenant's credential), records a history run of mode `remap` with its counts, and a second re-map with
//! the same mappings writes no row. Create-time values are written when an object is first stored and
//! kept by later rounds and re-maps.

use std::time::Duration;

use entrasync::mapping::load_policy;
use entrasync::model::mapping::{
    ApplyWhen, AttributeMapping, MappingSet, MappingSource, ScopeClause, ScopeGroup, ScopeOperator,
};
use entrasync::model::{ObjectClass, SyncMode, Trigger};
use entrasync::queue::{publish_remap, SyncJob};
use entrasync::store::audit::Actor;
use entrasync::store::runs::{self, RunRecord};
use entrasync::store::{directory, mappings, objects, Pool};
use entrasync::sync::{run_remap, run_round, PgRunRecorder, RemapDeps, RemapRequest, RoundDeps};
use serde_json::{json, Value};

use crate::service_support::{start_observed_service, World};
use crate::support::eventually_some;
use crate::sync_support::{spec, StopAfterBatch, SyncTenant, SyncWorld, NO_GUARD};

pub fn mapping(target: &str, source: MappingSource, apply: ApplyWhen) -> AttributeMapping {
    AttributeMapping { target: target.to_owned(), source, default_if_null: None, apply }
}

pub fn expression(text: &str) -> MappingSource {
    MappingSource::Expression { expression: text.to_owned() }
}

/// The runs of a tenant and class, oldest first.
pub async fn runs_of(pool: &Pool, tenant_id: i64, class: ObjectClass) -> Vec<RunRecord> {
    let client = pool.get().await.expect("connection");
    let ids = client
        .query(
            "SELECT id FROM sync_runs WHERE tenant_id = $1 AND object_class = $2::text::object_class ORDER BY started_at",
            &[&tenant_id, &class.as_str()],
        )
        .await
        .expect("runs");
    let mut out = Vec::new();
    for row in ids {
        out.push(runs::get(&client, row.get(0)).await.expect("run").expect("stored"));
    }
    out
}

/// (object id, row version) of every stored object of the tenant.
pub async fn object_versions(pool: &Pool, tenant_id: i64) -> Vec<(uuid::Uuid, String)> {
    let client = pool.get().await.expect("connection");
    let rows = client
        .query(
            "SELECT object_id, xmin::text FROM directory_objects WHERE tenant_id = $1 ORDER BY object_id",
            &[&tenant_id],
        )
        .await
        .expect("versions");
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Stored (object id, mapped, mapped_on_create) of live objects of a class.
pub async fn mapped_columns(
    pool: &Pool,
    tenant_id: i64,
    class: ObjectClass,
) -> Vec<(uuid::Uuid, Option<Value>, Option<Value>)> {
    let client = pool.get().await.expect("connection");
    let rows = client
        .query(
            "SELECT object_id, mapped, mapped_on_create FROM directory_objects
             WHERE tenant_id = $1 AND object_class = $2::text::object_class AND deleted_at IS NULL ORDER BY object_id",
            &[&tenant_id, &class.as_str()],
        )
        .await
        .expect("mapped");
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

/// A manual re-map of (tenant, class) in batches of 7, without a deletion guard.
fn manual_remap(tenant_id: i64, class: ObjectClass) -> RemapRequest {
    RemapRequest {
        tenant_id,
        class,
        trigger: Trigger::Manual,
        guard: NO_GUARD,
        instance_id: None,
        batch_objects: 7,
        job_id: None,
    }
}

/// A round with the tenant's stored policy.
async fn mapped_round(world: &SyncWorld, tenant: &SyncTenant, class: ObjectClass) {
    let policy = load_policy(&world.pool, tenant.tenant_id, class).await.expect("policy");
    let deps = RoundDeps { pool: &world.pool, graph: &world.graph, policy, recorder: &world.recorder };
    run_round(&deps, &world.request(tenant, class)).await.expect("round");
}

fn text<'a>(attrs: &'a Value, name: &str) -> Option<&'a str> {
    attrs.get(name).and_then(Value::as_str)
}

#[tokio::test]
async fn a_mapping_change_reaches_the_stored_objects_through_a_remap_job_with_no_graph_call() {
    let world = World::start().await;
    let tenant = world.tenant(1401, 40, 10).await;
    let settings = world.settings(&[("ENTRASYNC_SERVE_ROLES", "worker"), ("ENTRASYNC_DATABASE_POOL_SIZE", "10")]);
    let (service, broker, _metrics) = start_observed_service(&settings);
    broker.connection(Duration::from_secs(10)).await.expect("connected");
    let class = ObjectClass::User;

    broker.publish(&SyncJob::new(tenant.entra_tenant_id, class, SyncMode::Full, Trigger::Manual)).await.expect("sync");
    let pool = world.pool.clone();
    let synced = eventually_some(Duration::from_secs(60), || {
        let pool = pool.clone();
        async move { runs_of(&pool, tenant.tenant_id, class).await.into_iter().find(|r| r.status == "success") }
    })
    .await
    .expect("the first sync succeeds");
    let client = world.pool.get().await.expect("connection");
    let live = objects::live_count(&client, tenant.tenant_id, class).await.expect("live");
    assert_eq!(synced.counts.total, live);
    assert!(mapped_columns(&world.pool, tenant.tenant_id, class)
        .await
        .iter()
        .all(|(_, m, c)| m.is_none() && c.is_none()));

    let set = MappingSet {
        mappings: vec![
            mapping("alias", expression(r#"Join(".", [givenName], [surname])"#), ApplyWhen::Always),
            mapping("team", MappingSource::Direct { attribute: "department".into() }, ApplyWhen::Always),
        ],
        scoping: vec![],
    };
    mappings::put(&world.pool, &Actor::new("test"), tenant.tenant_id, class, &set, None).await.expect("store mappings");
    let before = object_versions(&world.pool, tenant.tenant_id).await;
    let graph_before = world.sim.state().global_counters();

    publish_remap(&broker, tenant.entra_tenant_id, class, Trigger::Api).await.expect("publish the remap");
    let remapped = eventually_some(Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            runs_of(&pool, tenant.tenant_id, class)
                .await
                .into_iter()
                .find(|r| r.mode == "remap" && r.finished_at.is_some())
        }
    })
    .await
    .expect("the re-map finishes");
    assert_eq!(remapped.status, "success", "{remapped:?}");
    assert_eq!(remapped.trigger, "api");
    assert_eq!((remapped.counts.total, remapped.counts.changed), (live, live), "{remapped:?}");
    assert_eq!((remapped.counts.filtered, remapped.counts.deleted), (0, 0));
    assert_eq!(remapped.counts.graph_requests, 0);
    assert_eq!(world.sim.state().global_counters(), graph_before, "the re-map made a Graph request");

    // Every stored user now carries the mapped attributes, computed from its stored attributes.
    for (id, mapped, on_create) in mapped_columns(&world.pool, tenant.tenant_id, class).await {
        let detail =
            directory::get_object(&world.pool, tenant.tenant_id, class, id).await.expect("get").expect("stored");
        let mapped = mapped.expect("mapped written");
        let expected = format!(
            "{}.{}",
            text(&detail.attrs, "givenName").unwrap_or_default(),
            text(&detail.attrs, "surname").unwrap_or_default()
        );
        assert_eq!(text(&mapped, "alias"), Some(expected.as_str()), "{id}: {mapped}");
        assert_eq!(mapped.get("team"), detail.attrs.get("department"), "{id}: {mapped}");
        assert_eq!(on_create, None, "a re-map never writes create-time values");
        assert_eq!(detail.mapped, Some(mapped), "the directory shows the effective mapped attributes");
    }
    let after_first = object_versions(&world.pool, tenant.tenant_id).await;
    assert_eq!(after_first.len(), before.len());
    assert!(after_first.iter().zip(&before).all(|(a, b)| a.1 != b.1), "every row was rewritten once");

    // The same mappings again: nothing to write.
    publish_remap(&broker, tenant.entra_tenant_id, class, Trigger::Api).await.expect("publish again");
    let second = eventually_some(Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let remaps: Vec<RunRecord> = runs_of(&pool, tenant.tenant_id, class)
                .await
                .into_iter()
                .filter(|r| r.mode == "remap" && r.finished_at.is_some())
                .collect();
            remaps.get(1).cloned()
        }
    })
    .await
    .expect("the second re-map finishes");
    assert_eq!(second.status, "success");
    assert_eq!((second.counts.total, second.counts.changed), (live, 0), "{second:?}");
    assert_eq!(object_versions(&world.pool, tenant.tenant_id).await, after_first, "the second re-map wrote rows");
    assert_eq!(world.sim.state().global_counters(), graph_before, "a re-map made a Graph request");
    service.shutdown().await;
    broker.delete_topology(Duration::from_secs(5)).await.expect("delete topology");
    broker.close().await;
}

#[tokio::test]
async fn create_time_values_are_written_at_insertion_and_kept_by_later_rounds_and_remaps() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(1402, 25, 0, 0), 10).await;
    let class = ObjectClass::User;
    let set = |stamp: &str| MappingSet {
        mappings: vec![
            mapping("alias", expression(r#"Join(".", [givenName], [surname])"#), ApplyWhen::Always),
            mapping("firstSeen", MappingSource::Constant { value: stamp.to_owned() }, ApplyWhen::OnCreate),
        ],
        scoping: vec![],
    };
    let actor = Actor::new("test");
    mappings::put(&world.pool, &actor, tenant.tenant_id, class, &set("v1"), None).await.expect("mappings");

    mapped_round(&world, &tenant, class).await;
    let first = mapped_columns(&world.pool, tenant.tenant_id, class).await;
    assert!(!first.is_empty());
    for (id, mapped, on_create) in &first {
        assert_eq!(on_create.as_ref(), Some(&json!({"firstSeen": "v1"})), "{id}");
        assert!(mapped.as_ref().is_some_and(|m| m.get("alias").is_some() && m.get("firstSeen").is_none()), "{id}");
        let detail =
            directory::get_object(&world.pool, tenant.tenant_id, class, *id).await.expect("get").expect("stored");
        let effective = detail.mapped.expect("effective mapped");
        assert_eq!(effective.get("firstSeen"), Some(&json!("v1")));
        assert_eq!(effective.get("alias"), mapped.as_ref().and_then(|m| m.get("alias")));
    }

    // The create-time constant changes and the directory changes: updates and re-maps keep "v1".
    mappings::put(&world.pool, &actor, tenant.tenant_id, class, &set("v2"), None).await.expect("mappings v2");
    world.mutate(&tenant, 7);
    mapped_round(&world, &tenant, class).await;
    let policy = load_policy(&world.pool, tenant.tenant_id, class).await.expect("policy");
    let recorder = PgRunRecorder::new(world.pool.clone());
    let deps = RemapDeps { pool: &world.pool, policy: policy.as_ref(), recorder: &recorder };
    let request = manual_remap(tenant.tenant_id, class);
    let report = run_remap(&deps, &request).await.expect("remap");
    assert_eq!(report.mode, SyncMode::Remap);
    let after = mapped_columns(&world.pool, tenant.tenant_id, class).await;
    let kept = after.iter().filter(|(id, _, _)| first.iter().any(|(f, _, _)| f == id)).count();
    assert!(kept > 0, "expected some of the first objects still live");
    for (id, _, on_create) in &after {
        let was_there = first.iter().any(|(f, _, _)| f == id);
        let expected = if was_there { json!({"firstSeen": "v1"}) } else { json!({"firstSeen": "v2"}) };
        assert_eq!(on_create.as_ref(), Some(&expected), "{id} (stored before the change: {was_there})");
    }
    // Idempotent: a second re-map writes nothing.
    let versions = object_versions(&world.pool, tenant.tenant_id).await;
    let again = run_remap(&deps, &request).await.expect("remap again");
    assert_eq!(again.counts.changed, 0, "{again:?}");
    assert_eq!(object_versions(&world.pool, tenant.tenant_id).await, versions);
}

/// With no second connection in the pool the re-map cannot read ahead: it reads each batch in that
/// batch's own transaction instead, and ends with the same rows.
#[tokio::test]
async fn a_remap_on_a_one_connection_pool_reads_in_each_batch_and_writes_the_same() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(1403, 30, 0, 0), 10).await;
    let class = ObjectClass::User;
    let set = |separator: &str| MappingSet {
        mappings: vec![mapping(
            "alias",
            expression(&format!(r#"Join("{separator}", [givenName], [surname])"#)),
            ApplyWhen::Always,
        )],
        scoping: vec![],
    };
    let actor = Actor::new("test");
    mappings::put(&world.pool, &actor, tenant.tenant_id, class, &set("."), None).await.expect("mappings");
    mapped_round(&world, &tenant, class).await;
    mappings::put(&world.pool, &actor, tenant.tenant_id, class, &set("-"), None).await.expect("new mappings");

    let single = entrasync::store::pool(&entrasync::config::DatabaseSettings {
        url: world.db.url.clone().into(),
        pool_size: 1,
        connect_timeout: Duration::from_millis(500),
        session: Default::default(),
    })
    .expect("a one-connection pool");
    let policy = load_policy(&single, tenant.tenant_id, class).await.expect("policy");
    // The history goes through the service's recorder, which has connections of its own.
    let recorder = PgRunRecorder::new(world.pool.clone());
    let deps = RemapDeps { pool: &single, policy: policy.as_ref(), recorder: &recorder };
    let request = manual_remap(tenant.tenant_id, class);
    let report = run_remap(&deps, &request).await.expect("remap");
    let live = mapped_columns(&world.pool, tenant.tenant_id, class).await;
    assert_eq!(report.counts.total, live.len() as u64, "{:?}", report.counts);
    assert_eq!(report.counts.changed, live.len() as u64, "every alias changed: {:?}", report.counts);
    let client = world.pool.get().await.expect("connection");
    let rows = client
        .query(
            "SELECT attrs, mapped FROM directory_objects
             WHERE tenant_id = $1 AND object_class = 'user' AND deleted_at IS NULL",
            &[&tenant.tenant_id],
        )
        .await
        .expect("objects");
    for row in &rows {
        let (attrs, mapped): (Value, Value) = (row.get(0), row.get(1));
        let alias = [text(&attrs, "givenName"), text(&attrs, "surname")].into_iter().flatten().collect::<Vec<_>>();
        assert_eq!(mapped["alias"], json!(alias.join("-")), "{attrs}");
    }
}

/// A re-map stopped after two committed batches (a worker that dies mid-run) resumes from its checkpoint
/// as the same run: no object is written twice, the filtered ones are staged and deleted once, and the
/// resumed run's counts are exact.
#[tokio::test]
async fn an_interrupted_remap_resumes_with_exact_counts_and_writes_no_object_twice() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(1404, 60, 0, 0), 10).await;
    let class = ObjectClass::User;
    let actor = Actor::new("test");
    let alias = |separator: &str| {
        mapping("alias", expression(&format!(r#"Join("{separator}", [givenName], [surname])"#)), ApplyWhen::Always)
    };
    let first = MappingSet { mappings: vec![alias(".")], scoping: vec![] };
    mappings::put(&world.pool, &actor, tenant.tenant_id, class, &first, None).await.expect("mappings");
    mapped_round(&world, &tenant, class).await;

    // Keep one department in scope: the others' objects are filtered out (and deleted: no guard here).
    let client = world.pool.get().await.expect("connection");
    let departments: Vec<Option<String>> = client
        .query(
            "SELECT attrs->>'department' FROM directory_objects
             WHERE tenant_id = $1 AND object_class = 'user' AND deleted_at IS NULL",
            &[&tenant.tenant_id],
        )
        .await
        .expect("departments")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let in_department = |kept: &str| departments.iter().filter(|d| d.as_deref() == Some(kept)).count() as u64;
    let kept = departments.iter().flatten().max_by_key(|d| in_department(d)).cloned().expect("a department");
    let in_scope = in_department(&kept);
    let live = departments.len() as u64;
    assert!(in_scope > 0 && in_scope < live, "{in_scope} of {live} in scope");
    let second = MappingSet {
        mappings: vec![alias("-")],
        scoping: vec![ScopeGroup {
            clauses: vec![ScopeClause {
                attribute: "department".into(),
                operator: ScopeOperator::Equals,
                value: Some(kept.clone()),
            }],
        }],
    };
    mappings::put(&world.pool, &actor, tenant.tenant_id, class, &second, None).await.expect("new mappings");

    let policy = load_policy(&world.pool, tenant.tenant_id, class).await.expect("policy");
    let request = manual_remap(tenant.tenant_id, class);
    let stopping = StopAfterBatch::new(PgRunRecorder::new(world.pool.clone()), 2);
    let deps = RemapDeps { pool: &world.pool, policy: policy.as_ref(), recorder: &stopping };
    tokio::select! {
        outcome = run_remap(&deps, &request) => panic!("the re-map ended before its second batch: {outcome:?}"),
        () = stopping.reached.notified() => {}
    }
    let rewritten: i64 = client
        .query_one(
            "SELECT count(*) FROM directory_objects WHERE tenant_id = $1 AND mapped->>'alias' LIKE '%-%'",
            &[&tenant.tenant_id],
        )
        .await
        .expect("rewritten")
        .get(0);
    assert!(rewritten > 0 && (rewritten as u64) < in_scope, "two batches of 7 rewrote {rewritten} of {in_scope}");

    let recorder = PgRunRecorder::new(world.pool.clone());
    let deps = RemapDeps { pool: &world.pool, policy: policy.as_ref(), recorder: &recorder };
    let report = run_remap(&deps, &request).await.expect("resumed re-map");
    assert!(report.resumed, "{report:?}");
    let counts = report.counts;
    assert_eq!(counts.total, live, "every object examined once by the run that finished: {counts:?}");
    assert_eq!(counts.changed, in_scope, "every object in scope written exactly once: {counts:?}");
    assert_eq!(counts.filtered, live - in_scope, "{counts:?}");
    assert_eq!(counts.deleted, live - in_scope, "{counts:?}");
    let stored = mapped_columns(&world.pool, tenant.tenant_id, class).await;
    assert_eq!(stored.len() as u64, in_scope);
    for (id, mapped, _) in &stored {
        let alias = mapped.as_ref().and_then(|m| m.get("alias")).and_then(Value::as_str).unwrap_or_default();
        assert!(alias.contains('-') || alias.is_empty(), "{id}: {mapped:?}");
    }
    let history = runs_of(&world.pool, tenant.tenant_id, class).await;
    let remaps: Vec<_> = history.iter().filter(|r| r.mode == "remap").collect();
    assert_eq!(remaps.len(), 1, "one run, resumed: {remaps:?}");
    assert_eq!(remaps[0].status, "success", "{:?}", remaps[0]);
}
