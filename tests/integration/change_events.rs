//! Issue 17, the write side of change events (docs/events.md): real rounds against the Graph emulator,
//! and the rows they leave in `change_outbox`. Every kind with its fields, the changed attribute names,
//! order per object, nothing for replays, unchanged re-scans or a tenant with the switch off, the
//! first-round choice, the snapshot at switch-on, and idempotency keys that survive a resumed round.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use entrasync::model::{ObjectClass, RunStatus, SyncMode};
use entrasync::store::audit::Actor;
use entrasync::store::tenants::{self, FirstRound, TenantChanges};
use entrasync::store::{members, objects};
use entrasync::sync::{run_round, PassThrough, RoundDeps, RoundRequest};
use graph_sim::settings::SettingsPatch;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::sync_support::{spec, StopAfterBatch, SyncTenant, SyncWorld};

/// One outbox row.
#[derive(Debug, Clone)]
struct Event {
    seq: i64,
    event_id: Uuid,
    routing_key: String,
    body: Value,
}

impl Event {
    fn kind(&self) -> &str {
        self.body["kind"].as_str().unwrap_or_default()
    }

    fn class(&self) -> &str {
        self.body["class"].as_str().unwrap_or_default()
    }

    fn object_id(&self) -> &str {
        self.body["object_id"].as_str().unwrap_or_default()
    }

    fn run_id(&self) -> Option<Uuid> {
        self.body["run_id"].as_str().map(|r| r.parse().expect("run id"))
    }
}

async fn switch_on(world: &SyncWorld, tenant: &SyncTenant, first_round: FirstRound) {
    let changes = TenantChanges {
        change_events: Some(true),
        change_events_first_round: Some(first_round),
        ..TenantChanges::default()
    };
    tenants::update(&world.pool, tenant.tenant_id, &changes, &Actor::new("test"))
        .await
        .expect("switch events on")
        .expect("tenant");
    let stored = tenants::change_events(&world.pool, tenant.tenant_id).await.expect("read").expect("tenant");
    assert!(stored.change_events);
    assert_eq!(stored.change_events_first_round, first_round);
}

/// The tenant's outbox rows in `seq` order.
async fn outbox(world: &SyncWorld, tenant: &SyncTenant) -> Vec<Event> {
    let client = world.pool.get().await.expect("connection");
    let rows = client
        .query(
            "SELECT seq, event_id, routing_key, body FROM change_outbox WHERE tenant_id = $1 ORDER BY seq",
            &[&tenant.tenant_id],
        )
        .await
        .expect("outbox");
    rows.iter().map(|r| Event { seq: r.get(0), event_id: r.get(1), routing_key: r.get(2), body: r.get(3) }).collect()
}

/// Events after `seq`.
async fn outbox_after(world: &SyncWorld, tenant: &SyncTenant, seq: i64) -> Vec<Event> {
    outbox(world, tenant).await.into_iter().filter(|e| e.seq > seq).collect()
}

fn last_seq(events: &[Event]) -> i64 {
    events.last().map_or(0, |e| e.seq)
}

fn of_kind<'a>(events: &'a [Event], class: &str, kind: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.class() == class && e.kind() == kind).collect()
}

/// The fields every event carries, and its routing key.
fn assert_head(event: &Event, tenant: &SyncTenant) {
    let body = &event.body;
    assert_eq!(body["schema_version"], json!(1), "{body}");
    assert_eq!(body["event_id"], json!(event.event_id.to_string()), "the body names the row's key: {body}");
    assert_eq!(body["tenant"], json!(tenant.sim_tenant), "{body}");
    assert_eq!(body["tenant_id"], json!(tenant.tenant_id), "{body}");
    assert_eq!(event.routing_key, format!("{}.{}.{}", tenant.sim_tenant, event.class(), event.kind()));
    let at = body["occurred_at"].as_str().expect("occurred_at");
    chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("occurred_at {at:?} is RFC 3339: {e}"));
    assert!(["user", "group", "device"].contains(&event.class()), "{body}");
}

fn stored_attrs(stored: &[objects::StoredObject]) -> BTreeMap<String, Value> {
    stored.iter().filter(|o| !o.deleted).map(|o| (o.object_id.to_string(), o.attrs.clone())).collect()
}

fn attrs(pairs: &[(&str, Value)]) -> serde_json::Map<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_carries_its_fields_in_order_per_object() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(171, 60, 8, 10), 10).await;
    switch_on(&world, &tenant, FirstRound::Objects).await;
    assert!(outbox(&world, &tenant).await.is_empty(), "an empty tenant gets no snapshot when switched on");

    // First full rounds, objects mode: a `created` per object and a `member_added` per membership.
    let mut runs = BTreeMap::new();
    for class in ObjectClass::ALL {
        runs.insert(class, world.round(&tenant, class).await.run_id);
    }
    let first = outbox(&world, &tenant).await;
    let client = world.pool.get().await.expect("connection");
    for class in ObjectClass::ALL {
        let stored = stored_attrs(&objects::list(&client, tenant.tenant_id, class).await.expect("stored"));
        let created = of_kind(&first, class.as_str(), "created");
        assert_eq!(created.len(), stored.len(), "{class}: one created event per stored object");
        for event in created {
            assert_head(event, &tenant);
            assert_eq!(event.run_id(), Some(runs[&class]), "{class}: the run that created it");
            assert_eq!(event.body["object"]["attrs"], stored[event.object_id()], "{class}: the stored state");
            assert!(event.body["object"].get("mapped").is_some(), "mapped is present (null without mappings)");
        }
    }
    let memberships = members::list(&client, tenant.tenant_id).await.expect("memberships");
    let added = of_kind(&first, "group", "member_added");
    assert_eq!(added.len(), memberships.len(), "one member_added per stored membership");
    let announced: BTreeSet<(String, String)> = added
        .iter()
        .map(|e| (e.object_id().to_owned(), e.body["member"]["id"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let stored: BTreeSet<(String, String)> = memberships.iter().map(|(g, m)| (g.to_string(), m.to_string())).collect();
    assert_eq!(announced, stored, "member_added names the group (object_id) and the member");
    // A group's `created` comes before its memberships, those its own batch wrote included.
    let created_seq: BTreeMap<&str, i64> =
        of_kind(&first, "group", "created").iter().map(|e| (e.object_id(), e.seq)).collect();
    for event in &added {
        assert_head(event, &tenant);
        assert!(["user", "group", "device"].contains(&event.body["member"]["class"].as_str().unwrap_or_default()));
        let created = created_seq[event.object_id()];
        assert!(
            created < event.seq,
            "group {}: created (seq {created}) after a member_added (seq {})",
            event.object_id(),
            event.seq
        );
    }
    let same_transaction: i64 = client
        .query_one(
            "SELECT count(*) FROM change_outbox c JOIN change_outbox m
               ON m.tenant_id = c.tenant_id AND m.body->>'object_id' = c.body->>'object_id' AND m.created_at = c.created_at
             WHERE c.tenant_id = $1 AND c.body->>'kind' = 'created' AND c.body->>'class' = 'group'
               AND m.body->>'kind' = 'member_added'",
            &[&tenant.tenant_id],
        )
        .await
        .expect("memberships written with their group")
        .get(0);
    assert!(same_transaction > 0, "no group had members in its own batch: the order above proves nothing");
    assert_eq!(first.len(), first.iter().map(|e| e.event_id).collect::<HashSet<_>>().len(), "keys are distinct");

    // Changes in the directory: an update, soft deletions, a permanent deletion of a member, memberships.
    let sim = world.sim.state();
    let truth = sim.truth(&tenant.sim_tenant, ObjectClass::Group).expect("truth");
    // The smallest group with members: it leaves users to add.
    let (group, group_members) = truth
        .memberships
        .iter()
        .filter(|(_, m)| m.len() >= 2)
        .min_by_key(|(_, m)| m.len())
        .expect("a group with members");
    let users = sim.ids(&tenant.sim_tenant, ObjectClass::User, true).expect("users");
    let member_users: Vec<&String> = users.iter().filter(|u| group_members.contains(u)).collect();
    let purged = member_users.first().copied().expect("a user member").clone();
    let others: Vec<&String> = users.iter().filter(|u| **u != purged).collect();
    let (renamed, soft, restored) = (others[0].clone(), others[1].clone(), others[2].clone());
    sim.update_object(&tenant.sim_tenant, &renamed, &attrs(&[("displayName", json!("Renamed Person"))]))
        .expect("rename");
    sim.delete_object(&tenant.sim_tenant, &soft, false).expect("soft delete");
    sim.delete_object(&tenant.sim_tenant, &restored, false).expect("soft delete");
    sim.delete_object(&tenant.sim_tenant, &purged, true).expect("permanent delete");
    let newcomer =
        others.iter().find(|u| !group_members.contains(u) && ***u != soft && ***u != restored).expect("a non-member");
    assert!(sim.add_member(&tenant.sim_tenant, group, newcomer).expect("add member"));
    let leaver = group_members
        .iter()
        .find(|m| ![&purged, &soft, &restored, &renamed].contains(m))
        .expect("another member")
        .clone();
    assert!(sim.remove_member(&tenant.sim_tenant, group, &leaver).expect("remove member"));

    let mark = last_seq(&first);
    let mut delta_runs = BTreeMap::new();
    for class in ObjectClass::ALL {
        let report = world.round(&tenant, class).await;
        assert_eq!(report.mode, SyncMode::Delta, "{class}");
        delta_runs.insert(class.as_str(), report.run_id);
    }
    let second = outbox_after(&world, &tenant, mark).await;
    for event in &second {
        assert_head(event, &tenant);
    }
    let by_object = |events: &[Event], id: &str, kind: &str| -> Vec<Event> {
        events.iter().filter(|e| e.object_id() == id && e.kind() == kind).cloned().collect()
    };
    let update = by_object(&second, &renamed, "updated");
    assert_eq!(update.len(), 1, "one updated event: {second:#?}");
    assert_eq!(update[0].body["changed"], json!(["displayName"]), "exactly the changed attribute");
    assert_eq!(update[0].body["object"]["attrs"]["displayName"], json!("Renamed Person"), "the new state");
    assert_eq!(update[0].run_id(), Some(delta_runs["user"]));
    for id in [&soft, &restored] {
        let deleted = by_object(&second, id, "soft_deleted");
        assert_eq!(deleted.len(), 1, "{id}: soft_deleted");
        assert_eq!(deleted[0].body["reason"], json!("deleted in Entra ID (restorable)"));
        assert_eq!(deleted[0].run_id(), Some(delta_runs["user"]), "applied at the end of the user round");
        assert!(deleted[0].body.get("object").is_none(), "a deletion carries no state");
    }
    let gone = by_object(&second, &purged, "deleted");
    assert_eq!(gone.len(), 1, "deleted: {second:#?}");
    assert_eq!(gone[0].body["reason"], json!("permanently deleted in Entra ID"));
    let left: Vec<&Event> = of_kind(&second, "group", "member_removed");
    assert!(
        left.iter().any(|e| e.object_id() == group.as_str() && e.body["member"]["id"] == json!(purged)),
        "the purged user left its group: {left:#?}"
    );
    assert!(
        left.iter().any(|e| e.object_id() == group.as_str() && e.body["member"]["id"] == json!(leaver)),
        "the removed member: {left:#?}"
    );
    let joined = of_kind(&second, "group", "member_added");
    assert!(
        joined.iter().any(|e| e.object_id() == group.as_str() && e.body["member"]["id"] == json!(newcomer)),
        "the added member: {joined:#?}"
    );
    let purged_left = left.iter().find(|e| e.body["member"]["id"] == json!(purged)).expect("purged member event");
    assert_eq!(purged_left.run_id(), Some(delta_runs["user"]), "a member's purge belongs to its own round");
    assert!(of_kind(&second, "user", "created").is_empty(), "nothing is created again");

    // A restore: the full state again, with what differs from the state before the deletion.
    sim.restore_object(&tenant.sim_tenant, &restored).expect("restore");
    let mark = last_seq(&second);
    world.round(&tenant, ObjectClass::User).await;
    let third = outbox_after(&world, &tenant, mark).await;
    assert_eq!(third.len(), 1, "only the restore: {third:#?}");
    assert_eq!(third[0].kind(), "restored");
    assert_eq!(third[0].object_id(), restored);
    assert_head(&third[0], &tenant);
    assert!(third[0].body["changed"].is_array(), "{}", third[0].body);
    let stored = stored_attrs(&objects::list(&client, tenant.tenant_id, ObjectClass::User).await.expect("stored"));
    assert_eq!(third[0].body["object"]["attrs"], stored[&restored]);

    // Order per object follows seq: created, soft_deleted, restored.
    let all = outbox(&world, &tenant).await;
    let history: Vec<&str> = all.iter().filter(|e| e.object_id() == restored).map(Event::kind).collect();
    assert_eq!(history, ["created", "soft_deleted", "restored"]);
    let history: Vec<&str> = all.iter().filter(|e| e.object_id() == renamed).map(Event::kind).collect();
    assert_eq!(history, ["created", "updated"]);
    let history: Vec<&str> = all.iter().filter(|e| e.object_id() == purged).map(Event::kind).collect();
    assert_eq!(history, ["created", "deleted"]);
    assert_eq!(all.len(), all.iter().map(|e| e.event_id).collect::<HashSet<_>>().len(), "keys are distinct");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_for_a_tenant_with_the_switch_off() {
    let world = SyncWorld::start().await;
    let on = world.tenant(spec(172, 30, 6, 8), 10).await;
    let off = world.tenant(spec(172, 30, 6, 8), 10).await;
    switch_on(&world, &on, FirstRound::Objects).await;
    for tenant in [&on, &off] {
        world.round_all(tenant).await;
        world.mutate(tenant, 172);
        world.round_all(tenant).await;
    }
    let published = outbox(&world, &on).await;
    assert!(published.len() > 30, "the tenant with events on has its events: {}", published.len());
    assert!(outbox(&world, &off).await.is_empty(), "the tenant with the switch off has none");

    // Deleting a tenant with events on does not flood the outbox with its objects' removal.
    let before = published.len();
    assert!(tenants::delete(&world.pool, on.tenant_id, &Actor::new("test")).await.expect("delete"));
    assert_eq!(outbox(&world, &on).await.len(), before, "no event for a tenant's deletion");
}

async fn switch_off(world: &SyncWorld, tenant: &SyncTenant) {
    let changes = TenantChanges { change_events: Some(false), ..TenantChanges::default() };
    tenants::update(&world.pool, tenant.tenant_id, &changes, &Actor::new("test"))
        .await
        .expect("switch events off")
        .expect("tenant");
}

/// How many of the change-event triggers copy the rows a statement writes (migrations/V60): 5 while some
/// tenant has events on, 0 otherwise.
async fn capturing_triggers(world: &SyncWorld) -> i64 {
    let client = world.pool.get().await.expect("connection");
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_trigger
             WHERE tgrelid IN ('directory_objects'::regclass, 'group_members'::regclass)
               AND tgname LIKE 'change\\_events\\_%' AND (tgnewtable IS NOT NULL OR tgoldtable IS NOT NULL)",
            &[],
        )
        .await
        .expect("triggers");
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_triggers_copy_written_rows_only_while_some_tenant_has_events_on() {
    let world = SyncWorld::start().await;
    let first = world.tenant(spec(174, 30, 6, 8), 10).await;
    let second = world.tenant(spec(175, 30, 6, 8), 10).await;
    assert_eq!(capturing_triggers(&world).await, 0, "dormant while every tenant is off");
    world.round_all(&first).await;
    assert!(outbox(&world, &first).await.is_empty());

    switch_on(&world, &first, FirstRound::Objects).await;
    assert_eq!(capturing_triggers(&world).await, 5, "the first switch on makes them capture");
    switch_on(&world, &second, FirstRound::Objects).await;
    switch_off(&world, &first).await;
    assert_eq!(capturing_triggers(&world).await, 5, "still capturing: the second tenant has events on");
    world.round_all(&second).await;
    let second_events = outbox(&world, &second).await;
    assert!(
        of_kind(&second_events, "user", "created").len() == 30,
        "the tenant still on has its events: {}",
        second_events.len()
    );

    switch_off(&world, &second).await;
    assert_eq!(capturing_triggers(&world).await, 0, "the last switch off makes them dormant");
    world.mutate(&second, 175);
    world.round_all(&second).await;
    assert_eq!(outbox(&world, &second).await.len(), second_events.len(), "nothing written while dormant");

    // A switch made in SQL, and a tenant deleted with events on, are followed too.
    let client = world.pool.get().await.expect("connection");
    client
        .execute("UPDATE tenants SET change_events = true WHERE id = $1", &[&first.tenant_id])
        .await
        .expect("switch in SQL");
    assert_eq!(capturing_triggers(&world).await, 5);
    client.execute("DELETE FROM tenants WHERE id = $1", &[&first.tenant_id]).await.expect("delete in SQL");
    assert_eq!(capturing_triggers(&world).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_pages_and_unchanged_rescans_emit_nothing() {
    let world = SyncWorld::start().await;
    let noisy = world.tenant(spec(173, 120, 12, 20), 15).await;
    let quirks = SettingsPatch { replay_rate: Some(0.5), empty_page_rate: Some(0.2), ..SettingsPatch::default() };
    world.sim.state().update_settings(&noisy.sim_tenant, &quirks).expect("quirks");
    switch_on(&world, &noisy, FirstRound::Objects).await;
    world.round_all(&noisy).await;
    let first = outbox(&world, &noisy).await;
    let client = world.pool.get().await.expect("connection");
    for class in ObjectClass::ALL {
        let stored = objects::list(&client, noisy.tenant_id, class).await.expect("stored");
        let created: Vec<&str> = of_kind(&first, class.as_str(), "created").iter().map(|e| e.object_id()).collect();
        let distinct: BTreeSet<&str> = created.iter().copied().collect();
        assert_eq!(created.len(), stored.len(), "{class}: replays create no duplicate event");
        assert_eq!(distinct.len(), created.len(), "{class}: one event per object");
    }
    let memberships = members::list(&client, noisy.tenant_id).await.expect("memberships");
    assert_eq!(of_kind(&first, "group", "member_added").len(), memberships.len());

    // Delta rounds that only replay, then forced full rounds of unchanged objects: nothing at all.
    for class in ObjectClass::ALL {
        world.round(&noisy, class).await;
        let mut request = world.request(&noisy, class);
        request.force_full = true;
        let report = world.try_round(&request).await.expect("full round");
        assert_eq!((report.mode, report.counts.changed), (SyncMode::Full, 0), "{class}: {report:?}");
    }
    let after = outbox(&world, &noisy).await;
    assert_eq!(after.len(), first.len(), "no event: {:#?}", &after[first.len().min(after.len())..]);

    // A changed directory with replays: each change once.
    world.mutate(&noisy, 173);
    world.round_all(&noisy).await;
    let changes = outbox_after(&world, &noisy, last_seq(&after)).await;
    assert!(!changes.is_empty(), "the mutations are announced");
    let mut seen = HashSet::new();
    for event in &changes {
        let key = (event.kind().to_owned(), event.object_id().to_owned(), event.body["member"]["id"].to_string());
        assert!(seen.insert(key.clone()), "one event per change, replays or not: {key:?} twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_first_round_emits_one_event_per_class_then_changes() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(174, 40, 8, 10), 10).await;
    switch_on(&world, &tenant, FirstRound::Snapshot).await;
    let mut runs = BTreeMap::new();
    for class in ObjectClass::ALL {
        let report = world.round(&tenant, class).await;
        assert_eq!((report.mode, report.status), (SyncMode::Full, RunStatus::Success));
        runs.insert(class.as_str(), report.run_id);
    }
    let first = outbox(&world, &tenant).await;
    assert_eq!(first.len(), 3, "one snapshot per class, no per-object event: {first:#?}");
    let client = world.pool.get().await.expect("connection");
    for (event, class) in first.iter().zip(ObjectClass::ALL) {
        assert_head(event, &tenant);
        assert_eq!((event.class(), event.kind()), (class.as_str(), "snapshot"));
        assert!(event.body.get("object_id").is_none(), "a snapshot names no object");
        assert_eq!(event.run_id(), Some(runs[class.as_str()]), "the run whose end it marks");
        let stored = objects::list(&client, tenant.tenant_id, class).await.expect("stored");
        assert_eq!(event.body["snapshot"]["objects"], json!(stored.iter().filter(|o| !o.deleted).count()));
        let memberships = if class == ObjectClass::Group {
            members::list(&client, tenant.tenant_id).await.expect("m").len()
        } else {
            0
        };
        assert_eq!(event.body["snapshot"]["memberships"], json!(memberships), "{class}");
    }

    // After the baseline: per-object events, and no snapshot.
    world.mutate(&tenant, 174);
    world.round_all(&tenant).await;
    let changes = outbox_after(&world, &tenant, last_seq(&first)).await;
    assert!(!changes.is_empty(), "changes after the first round are announced one by one");
    assert!(changes.iter().all(|e| e.kind() != "snapshot"), "{changes:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_on_over_stored_data_emits_a_snapshot_per_class() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(175, 30, 6, 0), 10).await;
    world.round_all(&tenant).await;
    assert!(outbox(&world, &tenant).await.is_empty(), "off: nothing");

    // Objects mode does not matter here: the tenant has data, so the baseline is a snapshot, at once.
    switch_on(&world, &tenant, FirstRound::Objects).await;
    let baseline = outbox(&world, &tenant).await;
    let classes: Vec<(&str, &str)> = baseline.iter().map(|e| (e.class(), e.kind())).collect();
    assert_eq!(classes, [("user", "snapshot"), ("group", "snapshot")], "devices: none stored, no snapshot");
    for event in &baseline {
        assert_head(event, &tenant);
        assert_eq!(event.run_id(), None, "no run: the switch");
    }
    // Switching on again (already on) changes nothing.
    switch_on(&world, &tenant, FirstRound::Objects).await;
    assert_eq!(outbox(&world, &tenant).await.len(), baseline.len());

    world.mutate(&tenant, 175);
    world.round_all(&tenant).await;
    let changes = outbox_after(&world, &tenant, last_seq(&baseline)).await;
    assert!(!changes.is_empty() && changes.iter().all(|e| e.kind() != "snapshot"), "{changes:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_stay_fixed_across_a_resumed_round() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(176, 150, 60, 0), 15).await;
    switch_on(&world, &tenant, FirstRound::Objects).await;
    for (class, batch_objects) in [(ObjectClass::User, 20), (ObjectClass::Group, 1)] {
        // Stopped after its second batch (users: two pages each; groups: one page), the future dropped.
        let recorder = StopAfterBatch::new(world.recorder.clone(), 2);
        let deps = RoundDeps {
            pool: &world.pool,
            graph: &world.graph,
            policy: std::sync::Arc::new(PassThrough),
            recorder: &recorder,
        };
        let request = RoundRequest { batch_objects, ..world.request(&tenant, class) };
        tokio::select! {
            report = run_round(&deps, &request) => panic!("{class}: the round should have been stopped: {report:?}"),
            _ = recorder.reached.notified() => {}
        }
        let committed: Vec<(i64, Uuid)> = outbox(&world, &tenant)
            .await
            .iter()
            .filter(|e| e.class() == class.as_str())
            .map(|e| (e.seq, e.event_id))
            .collect();
        assert!(!committed.is_empty(), "{class}: the committed batches have their events");

        let report = world.try_round(&request).await.expect("resumed round");
        assert!(report.resumed, "{class}: {report:?}");
        let events: Vec<Event> =
            outbox(&world, &tenant).await.into_iter().filter(|e| e.class() == class.as_str()).collect();
        let keys: BTreeMap<i64, Uuid> = events.iter().map(|e| (e.seq, e.event_id)).collect();
        for (seq, key) in &committed {
            assert_eq!(keys.get(seq), Some(key), "{class}: a committed event keeps its row and its key");
        }
        assert_eq!(keys.values().collect::<HashSet<_>>().len(), keys.len(), "{class}: keys are distinct");
        for event in &events {
            assert_eq!(event.body["event_id"], json!(event.event_id.to_string()));
            assert_eq!(event.run_id(), Some(report.run_id), "{class}: one run, resumed");
        }
        // Exactly one event per change: nothing the stopped round committed is announced again.
        let client = world.pool.get().await.expect("connection");
        let stored = objects::list(&client, tenant.tenant_id, class).await.expect("stored");
        let created: Vec<&str> = of_kind(&events, class.as_str(), "created").iter().map(|e| e.object_id()).collect();
        assert_eq!(created.len(), stored.len(), "{class}: one created event per object");
        assert_eq!(created.iter().collect::<BTreeSet<_>>().len(), created.len(), "{class}: no duplicate");
        if class == ObjectClass::Group {
            let memberships = members::list(&client, tenant.tenant_id).await.expect("memberships");
            let added: BTreeSet<(String, String)> = of_kind(&events, "group", "member_added")
                .iter()
                .map(|e| (e.object_id().to_owned(), e.body["member"]["id"].to_string()))
                .collect();
            assert_eq!(added.len(), of_kind(&events, "group", "member_added").len(), "no duplicate membership event");
            assert_eq!(added.len(), memberships.len(), "one member_added per membership");
        }
    }
}

/// The console's tenant settings switch events on and choose the first round, through the same PATCH
/// the API documents; the switch shows in the tenant JSON and the audit log. Screenshot:
/// `target/console-screenshots/40-tenant-change-events.png`.
#[tokio::test]
async fn the_console_switches_events_on_for_a_tenant() {
    use crate::support::app::spawn_app;
    use crate::support::browser::Browser;
    use crate::support::{settings_with, TestAmqp, TestDb};
    use base64::Engine;

    const ADMIN_TOKEN: &str = "es_changeEventsConsoleAdminToken0123456789abcdefXYZ";
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let db = TestDb::migrated().await;
    let amqp = TestAmqp::new();
    let secrets_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let app = spawn_app(&settings_with(&[
        ("ENTRASYNC_DATABASE_URL", db.url.as_str()),
        ("ENTRASYNC_AMQP_PREFIX", amqp.prefix.as_str()),
        ("ENTRASYNC_SECRETS_KEY", secrets_key.as_str()),
        ("ENTRASYNC_ADMIN_TOKEN", ADMIN_TOKEN),
    ]))
    .await;
    let pool = db.pool();
    let tenant = tenants::create(
        &pool,
        &tenants::NewTenant {
            name: "Contoso events".to_owned(),
            entra_tenant_id: Uuid::new_v4(),
            cloud: entrasync::model::Cloud::Global,
            credential_profile_id: None,
            enabled: false,
            full_scan_next_run: true,
        },
        &Actor::new("test"),
    )
    .await
    .expect("tenant");

    browser.goto(&format!("{}/", app.address)).await;
    browser.fill("#signin-token", ADMIN_TOKEN).await;
    browser.click("#signin-submit").await;
    browser.wait_for("#nav-tenants").await;
    browser.execute(&format!("location.hash = '#/tenants/{}/config';", tenant.id), vec![]).await;
    browser.wait_for("#config-change-events").await;
    assert_eq!(browser.property("#config-change-events", "checked").await, json!(false), "off by default");
    assert_eq!(browser.property("#config-first-round", "value").await, json!("snapshot"));
    browser.click("#config-change-events").await;
    browser.choose("#config-first-round", "objects").await;
    browser.screenshot("40-tenant-change-events").await;
    browser.click("#config-save").await;
    browser.wait_text("#announcer", "Tenant saved").await;

    let stored = tenants::change_events(&pool, tenant.id).await.expect("read").expect("tenant");
    assert_eq!((stored.change_events, stored.change_events_first_round), (true, FirstRound::Objects));
    let overview = tenants::get_overview(&pool, tenant.id).await.expect("overview").expect("tenant");
    let shown = serde_json::to_value(&overview).expect("json");
    assert_eq!((&shown["change_events"], &shown["change_events_first_round"]), (&json!(true), &json!("objects")));
    let client = pool.get().await.expect("connection");
    let audit = client
        .query_one(
            "SELECT before->>'change_events', after->>'change_events', after->>'change_events_first_round' \
             FROM audit_log WHERE action = 'tenant.update' AND target_id = $1 ORDER BY id DESC LIMIT 1",
            &[&tenant.id.to_string()],
        )
        .await
        .expect("audit row");
    let row: (Option<String>, Option<String>, Option<String>) = (audit.get(0), audit.get(1), audit.get(2));
    assert_eq!(row, (Some("false".into()), Some("true".into()), Some("objects".into())), "audited");
    browser.execute("location.reload();", vec![]).await;
    browser.wait_for("#config-change-events").await;
    assert_eq!(browser.property("#config-change-events", "checked").await, json!(true), "the console shows it");
    browser.screenshot("41-tenant-change-events-saved").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remap_announces_changed_mapped_attributes_and_allowed_deletions_carry_the_held_run() {
    use entrasync::mapping::load_policy;
    use entrasync::model::mapping::{ApplyWhen, AttributeMapping, MappingSet, MappingSource};
    use entrasync::model::Trigger;
    use entrasync::store::mappings;
    use entrasync::sync::{allow_held_deletions, run_remap, DeletionGuard, RemapDeps, RemapRequest};

    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(177, 30, 0, 0), 10).await;
    let class = ObjectClass::User;
    switch_on(&world, &tenant, FirstRound::Objects).await;
    world.round(&tenant, class).await;
    let mark = last_seq(&outbox(&world, &tenant).await);

    // A mapping added, then applied to the stored objects by a re-map: one `updated` per object, naming
    // only the mapped attribute.
    let constant = |value: &str| MappingSet {
        mappings: vec![AttributeMapping {
            target: "costCenter".to_owned(),
            source: MappingSource::Constant { value: value.to_owned() },
            default_if_null: None,
            apply: ApplyWhen::Always,
        }],
        scoping: vec![],
    };
    let actor = Actor::new("test");
    mappings::put(&world.pool, &actor, tenant.tenant_id, class, &constant("CC-1"), None).await.expect("mappings");
    let policy = load_policy(&world.pool, tenant.tenant_id, class).await.expect("policy");
    let deps = RemapDeps { pool: &world.pool, policy: policy.as_ref(), recorder: &world.recorder };
    let request = RemapRequest {
        tenant_id: tenant.tenant_id,
        class,
        trigger: Trigger::Manual,
        guard: crate::sync_support::NO_GUARD,
        instance_id: None,
        batch_objects: 7,
        job_id: None,
    };
    let report = run_remap(&deps, &request).await.expect("remap");
    let remapped = outbox_after(&world, &tenant, mark).await;
    assert_eq!(remapped.len() as u64, report.counts.changed, "one event per rewritten object: {report:?}");
    assert_eq!(remapped.len(), 30);
    for event in &remapped {
        assert_head(event, &tenant);
        assert_eq!(event.kind(), "updated");
        assert_eq!(event.body["changed"], json!(["mapped.costCenter"]));
        assert_eq!(event.body["object"]["mapped"], json!({"costCenter": "CC-1"}));
        assert_eq!(event.run_id(), Some(report.run_id), "the re-map run");
    }
    // The same mappings again: nothing changes, nothing is announced.
    run_remap(&deps, &request).await.expect("remap again");
    assert_eq!(outbox_after(&world, &tenant, last_seq(&remapped)).await.len(), 0);

    // Deletions held by the guard emit nothing until an operator allows them; then they carry the
    // held run's id.
    let mark = last_seq(&outbox(&world, &tenant).await);
    let sim = world.sim.state();
    let users = sim.ids(&tenant.sim_tenant, class, true).expect("users");
    for id in &users[..5] {
        sim.delete_object(&tenant.sim_tenant, id, false).expect("soft delete");
    }
    let guarded =
        RoundRequest { guard: DeletionGuard { max_deletions: 3, max_percent: 100 }, ..world.request(&tenant, class) };
    let held = world.try_round(&guarded).await.expect("round");
    assert_eq!(held.status, RunStatus::Held, "{held:?}");
    assert!(outbox_after(&world, &tenant, mark).await.is_empty(), "held: nothing deleted, nothing announced");
    allow_held_deletions(&world.pool, tenant.tenant_id, class, held.run_id, "operator").await.expect("allow");
    let allowed = outbox_after(&world, &tenant, mark).await;
    assert_eq!(allowed.len(), 5, "{allowed:#?}");
    for event in &allowed {
        assert_eq!(event.kind(), "soft_deleted");
        assert_eq!(event.run_id(), Some(held.run_id), "the run that held them");
    }
}
