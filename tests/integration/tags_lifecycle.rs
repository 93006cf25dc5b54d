//! External tag mappings, end to end against Postgres (and RabbitMQ for the job): the five-mapping
//! limit, the duplicate rule, a tag sync that assigns values and records a history run, deletion
//! semantics (never synced: at once; synced: at the next sync; manual and shared values kept), the
//! asset-group merge by name, a failed deletion retried at the following sync while new mappings can
//! still be created, and the `tag_sync` job through the checks queue, scheduled and published.
//! Objects are seeded with the store functions the sync round writes with.

use std::collections::BTreeSet;
use std::time::Duration;

use entrasync::model::{ObjectClass, Trigger};
use entrasync::queue::{Job, TagSyncJob};
use entrasync::store::audit::Actor;
use entrasync::store::members::{self, MemberEntries};
use entrasync::store::objects::{self, ObjectWrites};
use entrasync::store::tags::{self, CreateMapping, CreateTag, DeleteMapping, TagKind, TagTarget};
use entrasync::store::wire::JsonText;
use entrasync::store::Pool;
use entrasync::sync::marker::canonical_json;
use entrasync::sync::PgRunRecorder;
use entrasync::tags::{run_tag_sync, TagSyncOptions, TagSyncReport, TagSyncRequest};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::service_support::{create_tenants, start_observed_service, World};
use crate::support::{eventually_some, TestDb};

fn actor() -> Actor {
    Actor::new("test")
}

fn custom(key: &str) -> TagTarget {
    TagTarget::Custom(key.to_owned())
}

/// Stores objects of `class` as a sync round does (upsert), each with its attributes and, optionally,
/// mapped attributes.
async fn store_objects(pool: &Pool, tenant_id: i64, class: ObjectClass, objects: &[(Uuid, Value, Option<Value>)]) {
    let texts: Vec<JsonText> =
        objects.iter().map(|(_, attrs, _)| JsonText::from_json_bytes(serde_json::to_vec(attrs).unwrap())).collect();
    let mapped: Vec<Option<JsonText>> =
        objects.iter().map(|(_, _, mapped)| mapped.as_ref().map(canonical_json)).collect();
    let mut writes = ObjectWrites::default();
    for (i, (id, _, _)) in objects.iter().enumerate() {
        // A fresh marker: the store writes only objects whose marker changed.
        writes.push(*id, rand::random::<i64>(), &texts[i], mapped[i].as_ref());
    }
    let client = pool.get().await.unwrap();
    objects::upsert(&client, tenant_id, class, &writes).await.expect("store objects");
}

async fn store_user(pool: &Pool, tenant_id: i64, id: Uuid, attrs: Value) {
    store_objects(pool, tenant_id, ObjectClass::User, &[(id, attrs, None)]).await;
}

fn user(name: &str, extra: Value) -> Value {
    let mut attrs = json!({ "displayName": name, "userPrincipalName": format!("{name}@example.com") });
    attrs.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    attrs
}

async fn sync_with(pool: &Pool, tenant_id: i64, options: TagSyncOptions) -> TagSyncReport {
    let request = TagSyncRequest { tenant_id, trigger: Trigger::Manual, job_id: None, instance_id: None, options };
    run_tag_sync(pool, &PgRunRecorder::new(pool.clone()), &request).await.expect("tag sync")
}

async fn sync(pool: &Pool, tenant_id: i64) -> TagSyncReport {
    sync_with(pool, tenant_id, TagSyncOptions { batch_users: 2, ..TagSyncOptions::default() }).await
}

/// (key or "asset_group", value, manual?, mappings) of the tags an object carries.
async fn tags_of(pool: &Pool, tenant_id: i64, object: Uuid) -> BTreeSet<(String, String)> {
    tags::object_tags(pool, tenant_id, object)
        .await
        .expect("object tags")
        .into_iter()
        .map(|t| (t.target.key().unwrap_or("asset_group").to_owned(), t.value))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// (key or "asset_group", value) of every value stored for the tenant.
async fn values(pool: &Pool, tenant_id: i64) -> BTreeSet<(String, String)> {
    tags::list_tags(pool, tenant_id, None, 1000, None)
        .await
        .expect("values")
        .into_iter()
        .map(|t| (t.target.key().unwrap_or("asset_group").to_owned(), t.value))
        .collect()
}

async fn mapping(pool: &Pool, tenant_id: i64, source: &str, target: TagTarget) -> i64 {
    match tags::create_mapping(pool, tenant_id, source, &target, 5, &actor()).await.expect("create") {
        Some(CreateMapping::Created(m)) => m.id,
        other => panic!("expected {source} created: {other:?}"),
    }
}

/// (mode, class, status, trigger, total, changed, deleted, error) of the tenant's runs, oldest first.
async fn runs(pool: &Pool, tenant_id: i64) -> Vec<(String, String, String, String, i64, i64, i64, Option<String>)> {
    let client = pool.get().await.unwrap();
    client
        .query(
            "SELECT mode::text, object_class::text, status::text, trigger, total, changed, deleted, error
             FROM sync_runs WHERE tenant_id = $1 ORDER BY started_at, id",
            &[&tenant_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7)))
        .collect()
}

#[tokio::test]
async fn at_most_five_mappings_and_a_duplicate_only_when_both_properties_match() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenant = create_tenants(&pool, 1).await[0];
    let first = mapping(&pool, tenant, "department", custom("Dept")).await;
    // Same source, another target; same target, another source: both allowed.
    mapping(&pool, tenant, "department", TagTarget::AssetGroup).await;
    mapping(&pool, tenant, "companyName", custom("Dept")).await;
    // Same in both (case does not matter): refused, naming the existing mapping.
    let duplicate = tags::create_mapping(&pool, tenant, "department", &custom("dept"), 5, &actor()).await.unwrap();
    assert!(matches!(duplicate, Some(CreateMapping::Duplicate(ref m)) if m.id == first), "{duplicate:?}");
    mapping(&pool, tenant, "group_membership", custom("Groups")).await;
    mapping(&pool, tenant, "extensionAttribute3", TagTarget::AssetGroup).await;
    let sixth = tags::create_mapping(&pool, tenant, "city", &custom("City"), 5, &actor()).await.unwrap();
    assert_eq!(sixth, Some(CreateMapping::LimitReached { live: 5 }));
    // The limit is the caller's (the setting): a larger one admits the sixth.
    let larger = tags::create_mapping(&pool, tenant, "city", &custom("City"), 6, &actor()).await.unwrap();
    assert!(matches!(larger, Some(CreateMapping::Created(_))), "{larger:?}");
    assert_eq!(tags::list_mappings(&pool, tenant).await.unwrap().len(), 6);
    assert_eq!(tags::create_mapping(&pool, 999_999, "city", &custom("City"), 5, &actor()).await.unwrap(), None);
}

#[tokio::test]
async fn a_tag_sync_assigns_values_from_attributes_and_groups_and_records_a_history_run() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenant = create_tenants(&pool, 1).await[0];
    let (ada, bob, cy, dee, gone) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let engineers = Uuid::new_v4();
    store_objects(
        &pool,
        tenant,
        ObjectClass::User,
        &[
            (
                ada,
                user(
                    "ada",
                    json!({ "department": " Engineering ", "city": "Oslo",
            "onPremisesExtensionAttributes": { "extensionAttribute2": "Tier1" } }),
                ),
                None,
            ),
            // The tenant's attribute mappings produced another department: the mapped value wins.
            (bob, user("bob", json!({ "department": "engineering" })), Some(json!({ "department": "Platform" }))),
            (cy, user("cy", json!({ "department": "Sales" })), None),
            (dee, user("dee", json!({ "department": "" })), None),
            (gone, user("gone", json!({ "department": "Sales" })), None),
        ],
    )
    .await;
    store_objects(&pool, tenant, ObjectClass::Group, &[(engineers, json!({ "displayName": "Engineers" }), None)]).await;
    let mut entries = MemberEntries::default();
    entries.push(engineers, ada, "user");
    entries.push(engineers, bob, "user");
    members::add(&pool.get().await.unwrap(), tenant, &entries, &[false, false]).await.unwrap();
    let client = pool.get().await.unwrap();
    client
        .execute(
            "UPDATE directory_objects SET deleted_at = now() WHERE tenant_id = $1 AND object_id = $2",
            &[&tenant, &gone],
        )
        .await
        .unwrap();
    let department = mapping(&pool, tenant, "department", custom("Dept")).await;
    mapping(&pool, tenant, "group_membership", custom("Team")).await;
    mapping(&pool, tenant, "extensionAttribute2", custom("Tier")).await;

    let report = sync(&pool, tenant).await;
    assert_eq!(report.users, 4, "live users only: {report:?}");
    assert_eq!(report.changed, 3, "ada, bob and cy got tags; dee's empty department gives none: {report:?}");
    assert_eq!(report.mappings, 3);
    assert_eq!(
        tags_of(&pool, tenant, ada).await,
        pairs(&[("Dept", "Engineering"), ("Team", "Engineers"), ("Tier", "Tier1")])
    );
    assert_eq!(tags_of(&pool, tenant, bob).await, pairs(&[("Dept", "Platform"), ("Team", "Engineers")]));
    assert_eq!(tags_of(&pool, tenant, cy).await, pairs(&[("Dept", "Sales")]));
    assert!(tags_of(&pool, tenant, dee).await.is_empty());
    assert!(tags_of(&pool, tenant, gone).await.is_empty(), "a deleted user gets no tags");
    let stored = tags::get_mapping(&pool, tenant, department).await.unwrap().unwrap();
    assert!(stored.last_synced_at.is_some());
    assert_eq!(stored.values, 3, "Engineering, Platform, Sales");
    let history = runs(&pool, tenant).await;
    assert_eq!(history.len(), 1, "{history:?}");
    let (mode, class, status, trigger, total, changed, deleted, error) = history[0].clone();
    assert_eq!(
        (mode.as_str(), class.as_str(), status.as_str(), trigger.as_str()),
        ("tag_sync", "user", "success", "manual")
    );
    assert_eq!((total, changed, deleted, error), (4, 3, 0, None));

    // Nothing changed: nothing written. Then cy moves to Engineering: its old assignment goes, the value
    // stays in the catalogue.
    assert_eq!(sync(&pool, tenant).await.changed, 0);
    store_user(&pool, tenant, cy, user("cy", json!({ "department": "Engineering" }))).await;
    let report = sync(&pool, tenant).await;
    assert_eq!((report.changed, report.assigned, report.unassigned), (1, 1, 1), "{report:?}");
    assert_eq!(tags_of(&pool, tenant, cy).await, pairs(&[("Dept", "Engineering")]));
    assert!(values(&pool, tenant).await.contains(&("Dept".to_owned(), "Sales".to_owned())));
    assert_eq!(runs(&pool, tenant).await.len(), 3);
}

#[tokio::test]
async fn deleting_a_mapping_deletes_its_values_but_keeps_manual_and_shared_ones() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenant = create_tenants(&pool, 1).await[0];
    let (ada, bob, cy, dee) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    store_objects(
        &pool,
        tenant,
        ObjectClass::User,
        &[
            (ada, user("ada", json!({ "department": "Engineering" })), None),
            (bob, user("bob", json!({ "department": "Sales", "officeLocation": "Sales" })), None),
            (cy, user("cy", json!({ "department": "Legal" })), None),
            (dee, user("dee", json!({ "department": "Ops" })), None),
        ],
    )
    .await;

    // Never synced: gone at once.
    let unsynced = mapping(&pool, tenant, "city", custom("City")).await;
    assert_eq!(tags::delete_mapping(&pool, tenant, unsynced, &actor()).await.unwrap(), Some(DeleteMapping::Deleted));
    assert_eq!(tags::get_mapping(&pool, tenant, unsynced).await.unwrap(), None);

    let department = mapping(&pool, tenant, "department", custom("Dept")).await;
    let office = mapping(&pool, tenant, "officeLocation", custom("Dept")).await;
    // An operator made "Legal" by hand before any sync.
    let legal = tags::create_tag(&pool, tenant, &custom("Dept"), "Legal", &actor()).await.unwrap();
    assert!(matches!(legal, Some(CreateTag::Created(_))), "{legal:?}");
    sync(&pool, tenant).await;
    assert_eq!(
        values(&pool, tenant).await,
        pairs(&[("Dept", "Engineering"), ("Dept", "Sales"), ("Dept", "Legal"), ("Dept", "Ops")])
    );
    // "Ops" was synced, then an operator assigned it by hand to ada.
    let ops = tags::list_tags(&pool, tenant, Some(TagKind::Custom), 1000, None)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.value == "Ops")
        .unwrap();
    tags::assign(&pool, tenant, ops.id, TagKind::Custom, &[ada], &actor()).await.unwrap();

    // Synced: pending until the next sync, which deletes "Engineering" only.
    assert_eq!(tags::delete_mapping(&pool, tenant, department, &actor()).await.unwrap(), Some(DeleteMapping::Pending));
    assert_eq!(
        tags::delete_mapping(&pool, tenant, department, &actor()).await.unwrap(),
        Some(DeleteMapping::AlreadyPending)
    );
    assert_eq!(values(&pool, tenant).await.len(), 4, "nothing deleted before the next sync");
    let report = sync(&pool, tenant).await;
    assert_eq!((report.mappings_deleted, report.values_deleted), (1, 1), "{report:?}");
    assert_eq!(
        values(&pool, tenant).await,
        pairs(&[("Dept", "Sales"), ("Dept", "Legal"), ("Dept", "Ops")]),
        "Sales is also synced by officeLocation, Legal was made by hand, Ops assigned by hand"
    );
    assert_eq!(tags::get_mapping(&pool, tenant, department).await.unwrap(), None);
    // The deleted mapping's assignments went; the others stay.
    assert!(tags_of(&pool, tenant, cy).await.is_empty(), "cy's Legal came from the deleted mapping");
    assert_eq!(tags_of(&pool, tenant, ada).await, pairs(&[("Dept", "Ops")]), "ada keeps the manual assignment");
    assert_eq!(tags_of(&pool, tenant, bob).await, pairs(&[("Dept", "Sales")]), "bob's Sales via officeLocation");
    assert!(tags_of(&pool, tenant, dee).await.is_empty());
    let last = runs(&pool, tenant).await.pop().unwrap();
    assert_eq!((last.2.as_str(), last.6), ("success", 1), "the run counts the deleted value: {last:?}");
    let _ = office;
}

#[tokio::test]
async fn a_synced_asset_group_named_like_an_existing_one_joins_it() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenant = create_tenants(&pool, 1).await[0];
    let (ada, bob, cy) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    store_objects(
        &pool,
        tenant,
        ObjectClass::User,
        &[
            (ada, user("ada", json!({ "department": "finance team" })), None),
            (bob, user("bob", json!({ "department": "FINANCE TEAM" })), None),
            (cy, user("cy", json!({ "department": "Sales" })), None),
        ],
    )
    .await;
    let Some(CreateTag::Created(existing)) =
        tags::create_tag(&pool, tenant, &TagTarget::AssetGroup, "Finance Team", &actor()).await.unwrap()
    else {
        panic!("asset group created")
    };
    mapping(&pool, tenant, "department", TagTarget::AssetGroup).await;
    let report = sync(&pool, tenant).await;
    assert_eq!(report.values_added, 1, "only Sales is a new group: {report:?}");
    let groups = tags::list_tags(&pool, tenant, Some(TagKind::AssetGroup), 1000, None).await.unwrap();
    let names: Vec<&str> = groups.iter().map(|g| g.value.as_str()).collect();
    assert_eq!(names, vec!["Finance Team", "Sales"], "merged by name, keeping the existing group's name");
    let finance = groups.iter().find(|g| g.id == existing.id).expect("the existing group");
    assert_eq!(finance.objects, 2, "ada and bob joined it");
    assert!(finance.manual && finance.mappings.len() == 1, "{finance:?}");
    assert_eq!(tags_of(&pool, tenant, bob).await, pairs(&[("asset_group", "Finance Team")]));
    assert_eq!(tags_of(&pool, tenant, cy).await, pairs(&[("asset_group", "Sales")]));
}

#[tokio::test]
async fn a_failed_deletion_is_retried_at_the_next_sync_while_new_mappings_can_be_created() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenant = create_tenants(&pool, 1).await[0];
    let ada = Uuid::new_v4();
    store_user(&pool, tenant, ada, user("ada", json!({ "department": "Engineering", "city": "Oslo" }))).await;
    let doomed = mapping(&pool, tenant, "department", custom("Dept")).await;
    for source in ["companyName", "officeLocation", "city", "country"] {
        mapping(&pool, tenant, source, custom(source)).await;
    }
    sync(&pool, tenant).await;
    assert_eq!(tags::delete_mapping(&pool, tenant, doomed, &actor()).await.unwrap(), Some(DeleteMapping::Pending));

    // Someone holds the row of the value the deletion must remove: the deletion fails on its lock
    // timeout, the sync goes on, and the mapping stays pending with the error.
    let mut holder = pool.get().await.unwrap();
    let held = holder.transaction().await.unwrap();
    held.execute("SELECT 1 FROM tags WHERE tenant_id = $1 AND value = 'Engineering' FOR UPDATE", &[&tenant])
        .await
        .unwrap();
    let options = TagSyncOptions { deletion_lock_timeout: Duration::from_millis(300), ..TagSyncOptions::default() };
    let report = sync_with(&pool, tenant, options).await;
    assert_eq!(report.deletion_failures.len(), 1, "{report:?}");
    assert_eq!(report.deletion_failures[0].0, doomed);
    let pending = tags::get_mapping(&pool, tenant, doomed).await.unwrap().expect("still there");
    assert!(pending.pending_deletion_at.is_some());
    assert_eq!(pending.deletion_attempts, 1);
    assert!(pending.deletion_error.as_deref().unwrap_or_default().contains("lock"), "{pending:?}");
    let last = runs(&pool, tenant).await.pop().unwrap();
    assert_eq!(last.2, "warning");
    assert!(last.7.as_deref().unwrap_or_default().contains(&format!("tag mapping {doomed}")), "{last:?}");
    assert!(values(&pool, tenant).await.contains(&("Dept".to_owned(), "Engineering".to_owned())));

    // Meanwhile a new mapping can be created: the pending one is out of the limit (4 live of 5) — even
    // the same mapping again.
    let again = tags::create_mapping(&pool, tenant, "department", &custom("Dept"), 5, &actor()).await.unwrap();
    let Some(CreateMapping::Created(again)) = again else { panic!("expected a new mapping: {again:?}") };
    held.rollback().await.unwrap();
    drop(holder);

    // The following sync retries and succeeds. The recreated mapping synced "Engineering" first, so the
    // value stays, now the new mapping's.
    let report = sync(&pool, tenant).await;
    assert!(report.deletion_failures.is_empty(), "{report:?}");
    assert_eq!(report.mappings_deleted, 1);
    assert_eq!(tags::get_mapping(&pool, tenant, doomed).await.unwrap(), None);
    let engineering = tags::list_tags(&pool, tenant, Some(TagKind::Custom), 1000, None)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.value == "Engineering")
        .expect("kept");
    assert_eq!(engineering.mappings, vec![again.id]);
    assert_eq!(runs(&pool, tenant).await.pop().unwrap().2, "success");

    // Without the replacement, the value goes: delete the new one too and sync.
    assert_eq!(tags::delete_mapping(&pool, tenant, again.id, &actor()).await.unwrap(), Some(DeleteMapping::Pending));
    let report = sync(&pool, tenant).await;
    assert_eq!(report.values_deleted, 1, "{report:?}");
    assert!(!values(&pool, tenant).await.contains(&("Dept".to_owned(), "Engineering".to_owned())));
}

/// The `tag_sync` job through RabbitMQ: the scheduler publishes one for a tenant whose mappings never
/// synced, a worker runs it from the checks queue, and a job published by hand runs too.
#[tokio::test]
async fn the_scheduler_and_a_publisher_reach_the_tag_sync_through_the_checks_queue() {
    let world = World::start().await;
    let tenant = create_tenants(&world.pool, 1).await[0];
    let entra = entrasync::store::tenants::get(&world.pool, tenant).await.unwrap().unwrap().entra_tenant_id;
    let ada = Uuid::new_v4();
    store_user(&world.pool, tenant, ada, user("ada", json!({ "jobTitle": "Engineer" }))).await;
    mapping(&world.pool, tenant, "jobTitle", custom("Title")).await;
    let settings = world.settings(&[("ENTRASYNC_SERVE_ROLES", "scheduler,worker")]);
    let (service, broker, _metrics) = start_observed_service(&settings);

    let pool = world.pool.clone();
    let tag_runs = |count: usize| {
        let pool = pool.clone();
        eventually_some(Duration::from_secs(60), move || {
            let pool = pool.clone();
            async move {
                // Recorded when it ends: started, then finished.
                let runs: Vec<_> =
                    runs(&pool, tenant).await.into_iter().filter(|r| r.0 == "tag_sync" && r.2 != "running").collect();
                (runs.len() >= count).then_some(runs)
            }
        })
    };
    let scheduled = tag_runs(1).await.expect("the scheduler's tag sync ran");
    assert_eq!((scheduled[0].2.as_str(), scheduled[0].3.as_str()), ("success", "schedule"), "{scheduled:?}");
    assert_eq!(tags_of(&world.pool, tenant, ada).await, pairs(&[("Title", "Engineer")]));

    store_user(&world.pool, tenant, ada, user("ada", json!({ "jobTitle": "Architect" }))).await;
    broker.publish_job(&Job::TagSync(TagSyncJob::new(entra, Trigger::Queue))).await.expect("publish");
    let both = tag_runs(2).await.expect("the published tag sync ran");
    assert_eq!((both[1].2.as_str(), both[1].3.as_str(), both[1].5), ("success", "queue", 1), "{both:?}");
    assert_eq!(tags_of(&world.pool, tenant, ada).await, pairs(&[("Title", "Architect")]));
    service.shutdown().await;
    broker.delete_topology(Duration::from_secs(5)).await.expect("delete topology");
    broker.close().await;
}
