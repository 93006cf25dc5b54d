//! The per-page apply against real Postgres: markers decide what is written, membership slices merge,
//! deletions are staged for the round's end, soft deletions are restorable, permanent ones take the
//! object's memberships along.

use entrasync::graph::{DeltaItem, MemberRef};
use entrasync::model::{Cloud, ObjectClass, SyncMode};
use entrasync::store::tenants::{self, NewTenant};
use entrasync::store::{members, objects, run_scratch, Pool};
use entrasync::sync::{apply_page, prepare, PageOutcome, PageTarget, PassThrough};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::TestDb;

struct Env {
    _db: TestDb,
    pool: Pool,
    tenant_id: i64,
}

async fn env() -> Env {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let cloud = Cloud::Custom { login_url: "http://127.0.0.1:1".into(), graph_url: "http://127.0.0.1:1".into() };
    let tenant = tenants::create(
        &pool,
        &NewTenant {
            name: "store test".into(),
            entra_tenant_id: Uuid::new_v4(),
            cloud,
            credential_profile_id: None,
            enabled: true,
            full_scan_next_run: true,
        },
        &entrasync::store::audit::Actor::new("test"),
    )
    .await
    .expect("tenant");
    Env { _db: db, pool, tenant_id: tenant.id }
}

fn id(n: u8) -> String {
    format!("00000000-0000-4000-8000-0000000000{n:02x}")
}

fn user(n: u8, attrs: Value) -> DeltaItem {
    let Value::Object(attrs) = attrs else { panic!("object") };
    DeltaItem::Upsert { id: id(n), attrs, members_added: vec![], members_removed: vec![] }
}

fn group(n: u8, added: &[u8], removed: &[u8]) -> DeltaItem {
    let refs = |ids: &[u8]| ids.iter().map(|m| MemberRef { id: id(*m), kind: Some("user".into()) }).collect();
    let Value::Object(attrs) = json!({"displayName": format!("group {n}")}) else { panic!("object") };
    DeltaItem::Upsert { id: id(n), attrs, members_added: refs(added), members_removed: refs(removed) }
}

impl Env {
    async fn apply(&self, class: ObjectClass, run_id: Uuid, items: Vec<DeltaItem>) -> PageOutcome {
        let page = prepare(class, items, &PassThrough);
        let mut client = self.pool.get().await.expect("connection");
        let transaction = client.transaction().await.expect("transaction");
        let target = PageTarget { tenant_id: self.tenant_id, class, run_id, mode: SyncMode::Delta };
        let outcome = apply_page(&transaction, target, &page).await.expect("apply");
        transaction.commit().await.expect("commit");
        outcome
    }

    async fn end_of_round(&self, class: ObjectClass, run_id: Uuid) -> u64 {
        let client = self.pool.get().await.expect("connection");
        let applied =
            run_scratch::apply_pending_deletions(&client, run_id, self.tenant_id, class).await.expect("deletions");
        run_scratch::clear(&client, run_id).await.expect("clear");
        applied.objects
    }

    async fn user_state(&self, n: u8) -> Option<(Value, bool)> {
        let client = self.pool.get().await.expect("connection");
        let all = objects::list(&client, self.tenant_id, ObjectClass::User).await.expect("list");
        all.into_iter().find(|o| o.object_id.to_string() == id(n)).map(|o| (o.attrs, o.deleted))
    }

    async fn members(&self) -> Vec<(String, String)> {
        let client = self.pool.get().await.expect("connection");
        let all = members::list(&client, self.tenant_id).await.expect("members");
        all.into_iter().map(|(g, m)| (g.to_string(), m.to_string())).collect()
    }
}

#[tokio::test]
async fn a_replayed_page_writes_nothing_and_only_real_changes_are_written() {
    let env = env().await;
    let page = || vec![user(1, json!({"displayName": "A", "mail": "a@x"})), user(2, json!({"displayName": "B"}))];
    let first = env.apply(ObjectClass::User, Uuid::new_v4(), page()).await;
    assert_eq!((first.object_rows, first.newly_changed), (2, 2), "expected both new users written and changed");

    let replay = env.apply(ObjectClass::User, Uuid::new_v4(), page()).await;
    assert_eq!(replay, PageOutcome::default(), "a replay writes nothing");

    // Property order and explicit nulls are not changes; a new value is.
    let reordered = vec![
        user(1, json!({"mail": "a@x", "displayName": "A", "jobTitle": null})),
        user(2, json!({"displayName": "B2"})),
    ];
    let outcome = env.apply(ObjectClass::User, Uuid::new_v4(), reordered).await;
    assert_eq!(
        (outcome.object_rows, outcome.newly_changed),
        (1, 1),
        "expected only user 2's new value written: {outcome:?}"
    );
    assert_eq!(
        env.user_state(2).await,
        Some((json!({"displayName": "B2"}), false)),
        "expected user 2 stored with its new value"
    );
}

#[tokio::test]
async fn membership_slices_merge_across_pages_and_replays_add_nothing() {
    let env = env().await;
    let run = Uuid::new_v4();
    let first = env.apply(ObjectClass::Group, run, vec![group(10, &[1, 2], &[])]).await;
    assert_eq!(
        (first.object_rows, first.member_rows, first.newly_changed),
        (1, 2, 1),
        "expected the group and its 2 members written, the group changed"
    );
    // The same group again on the next page: the same properties, another slice.
    let second = env.apply(ObjectClass::Group, run, vec![group(10, &[3], &[1])]).await;
    assert_eq!((second.object_rows, second.member_rows, second.newly_changed), (0, 2, 0), "counted once per run");
    assert_eq!(
        env.members().await,
        vec![(id(10), id(2)), (id(10), id(3))],
        "expected 1 and 2 added, 3 added and 1 removed: members 2 and 3"
    );

    let replay = env.apply(ObjectClass::Group, Uuid::new_v4(), vec![group(10, &[3], &[1])]).await;
    assert_eq!(replay, PageOutcome::default(), "expected a replayed slice to write nothing");
    // Membership alone makes a group changed.
    let only_members = env.apply(ObjectClass::Group, Uuid::new_v4(), vec![group(10, &[4], &[])]).await;
    assert_eq!(
        (only_members.object_rows, only_members.member_rows, only_members.newly_changed),
        (0, 1, 1),
        "expected one membership written and the group counted changed, its row untouched"
    );
}

/// The references of a group the run created skip the existence probe (`members_add.sql`): a page the
/// same run applies again (a resumed batch) must still write no membership a second time.
#[tokio::test]
async fn a_page_replayed_by_the_run_that_created_its_group_writes_no_membership_twice() {
    let env = env().await;
    let run = Uuid::new_v4();
    let first = env.apply(ObjectClass::Group, run, vec![group(11, &[1, 2, 3], &[])]).await;
    assert_eq!(first.member_rows, 3, "{first:?}");
    let versions = || async {
        let client = env.pool.get().await.expect("connection");
        let rows = client
            .query("SELECT member_id, xmin::text FROM group_members WHERE tenant_id = $1 ORDER BY 1", &[&env.tenant_id])
            .await
            .expect("memberships");
        rows.iter().map(|r| (r.get::<_, Uuid>(0), r.get::<_, String>(1))).collect::<Vec<_>>()
    };
    let before = versions().await;
    let replay = env.apply(ObjectClass::Group, run, vec![group(11, &[1, 2, 3, 4], &[])]).await;
    assert_eq!(replay.member_rows, 1, "only the new member is written: {replay:?}");
    let after = versions().await;
    assert_eq!(after.len(), 4);
    assert_eq!(&after[..3], &before[..], "the three memberships already written keep their row versions");
}

/// A first round copies the memberships of the groups it created in without a check
/// (`members::insert_new`); should one be stored after all, the primary key refuses the whole COPY and its
/// transaction writes nothing.
#[tokio::test]
async fn copied_memberships_are_refused_whole_when_one_is_stored() {
    let env = env().await;
    env.apply(ObjectClass::Group, Uuid::new_v4(), vec![group(12, &[1], &[])]).await;
    let entries = |members: &[u8]| {
        let mut entries = members::MemberEntries::default();
        for member in members {
            entries.push(Uuid::parse_str(&id(12)).expect("id"), Uuid::parse_str(&id(*member)).expect("id"), "user");
        }
        entries
    };
    let mut client = env.pool.get().await.expect("connection");
    let tx = client.transaction().await.expect("transaction");
    assert_eq!(members::insert_new(&tx, env.tenant_id, &entries(&[2, 3])).await.expect("copy"), 2);
    tx.commit().await.expect("commit");

    let tx = client.transaction().await.expect("transaction");
    let refused = members::insert_new(&tx, env.tenant_id, &entries(&[4, 1])).await;
    assert!(refused.is_err(), "member 1 is stored: the COPY must fail, not skip it: {refused:?}");
    drop(tx);
    let stored = env.members().await;
    let expected: Vec<(String, String)> = [1, 2, 3].iter().map(|m| (id(12), id(*m))).collect();
    assert_eq!(stored, expected, "member 4 was not written");
}

/// A removal slice of thousands of pairs, on a partition without statistics, is still a probe per pair:
/// as a plain `DELETE … USING unnest(…)` it was planned as a merge join that sorted every membership of the
/// tenant (a second per statement at 1,000,000 memberships).
#[tokio::test]
async fn a_large_removal_slice_is_planned_as_a_probe_per_pair() {
    let env = env().await;
    let client = env.pool.get().await.expect("connection");
    client
        .execute(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_class) \
             SELECT $1, md5('g' || g)::uuid, md5('m' || m)::uuid, 'user' \
             FROM generate_series(1, 200) g, generate_series(1, 200) m",
            &[&env.tenant_id],
        )
        .await
        .expect("memberships");
    let rows = client
        .query("SELECT group_id, member_id FROM group_members WHERE tenant_id = $1 LIMIT 5000", &[&env.tenant_id])
        .await
        .expect("pairs");
    let groups: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let members: Vec<Uuid> = rows.iter().map(|r| r.get(1)).collect();
    let plan = client
        .query(&format!("EXPLAIN {}", members::REMOVE_SQL), &[&env.tenant_id, &groups, &members])
        .await
        .expect("plan");
    let plan: Vec<String> = plan.iter().map(|r| r.get(0)).collect();
    let plan = plan.join("\n");
    assert!(plan.contains("Tid Scan"), "each pair's row is deleted by its ctid:\n{plan}");
    assert!(!plan.contains("Join") && !plan.contains("Seq Scan"), "no join over the tenant's memberships:\n{plan}");
}

#[tokio::test]
async fn a_soft_deletion_waits_for_the_round_end_and_a_plain_object_restores_it() {
    let env = env().await;
    env.apply(ObjectClass::User, Uuid::new_v4(), vec![user(1, json!({"displayName": "A"}))]).await;

    let run = Uuid::new_v4();
    let removed = env.apply(ObjectClass::User, run, vec![DeltaItem::Removed { id: id(1), permanent: false }]).await;
    assert_eq!((removed.staged_deletions, removed.object_rows), (1, 0), "expected the removal staged, no row written");
    assert_eq!(env.user_state(1).await, Some((json!({"displayName": "A"}), false)), "nothing deleted mid-round");
    assert_eq!(env.end_of_round(ObjectClass::User, run).await, 1, "expected the round end to apply the removal");
    assert_eq!(
        env.user_state(1).await,
        Some((json!({"displayName": "A"}), true)),
        "expected user 1 kept, marked deleted (restorable)"
    );

    // A replayed removal changes nothing; the restore arrives as a plain object.
    let run = Uuid::new_v4();
    let replay = env.apply(ObjectClass::User, run, vec![DeltaItem::Removed { id: id(1), permanent: false }]).await;
    assert_eq!(replay, PageOutcome::default(), "expected a replayed removal to write nothing");
    let restored = env.apply(ObjectClass::User, run, vec![user(1, json!({"displayName": "A"}))]).await;
    assert_eq!(restored.object_rows, 1, "expected the restore written");
    assert_eq!(env.end_of_round(ObjectClass::User, run).await, 0, "expected no deletion left to apply");
    assert_eq!(env.user_state(1).await, Some((json!({"displayName": "A"}), false)), "expected user 1 live again");

    // Deleted then seen again later in the same run: the last event wins.
    let run = Uuid::new_v4();
    env.apply(ObjectClass::User, run, vec![DeltaItem::Removed { id: id(1), permanent: true }]).await;
    env.apply(ObjectClass::User, run, vec![user(1, json!({"displayName": "A"}))]).await;
    assert_eq!(env.end_of_round(ObjectClass::User, run).await, 0, "expected the later upsert to cancel the deletion");
    let state = env.user_state(1).await;
    assert!(state.as_ref().is_some_and(|(_, deleted)| !deleted), "expected user 1 live: {state:?}");
}

#[tokio::test]
async fn a_permanent_deletion_takes_the_objects_memberships_along() {
    let env = env().await;
    env.apply(ObjectClass::User, Uuid::new_v4(), vec![user(1, json!({})), user(2, json!({}))]).await;
    env.apply(ObjectClass::Group, Uuid::new_v4(), vec![group(10, &[1, 2], &[]), group(11, &[1], &[])]).await;

    let run = Uuid::new_v4();
    env.apply(ObjectClass::User, run, vec![DeltaItem::Removed { id: id(1), permanent: true }]).await;
    assert_eq!(env.end_of_round(ObjectClass::User, run).await, 1, "expected the permanent deletion applied");
    assert_eq!(env.user_state(1).await, None, "expected user 1 gone for good");
    assert_eq!(
        env.members().await,
        vec![(id(10), id(2))],
        "expected user 1's memberships in groups 10 and 11 gone with it"
    );

    let run = Uuid::new_v4();
    env.apply(ObjectClass::Group, run, vec![DeltaItem::Removed { id: id(10), permanent: true }]).await;
    assert_eq!(env.end_of_round(ObjectClass::Group, run).await, 1, "expected the group's deletion applied");
    let left = env.members().await;
    assert!(left.is_empty(), "expected group 10's memberships gone with it: {left:?}");
}

#[tokio::test]
async fn an_object_known_only_as_soft_deleted_is_kept_as_a_tombstone() {
    let env = env().await;
    let outcome =
        env.apply(ObjectClass::User, Uuid::new_v4(), vec![DeltaItem::Removed { id: id(7), permanent: false }]).await;
    assert_eq!(
        (outcome.object_rows, outcome.staged_deletions),
        (1, 0),
        "expected a tombstone row written at once, nothing staged"
    );
    assert_eq!(env.user_state(7).await, Some((json!({}), true)), "expected an empty, deleted tombstone");
    let replay =
        env.apply(ObjectClass::User, Uuid::new_v4(), vec![DeltaItem::Removed { id: id(7), permanent: false }]).await;
    assert_eq!(replay, PageOutcome::default(), "expected a replayed removal of a tombstone to write nothing");
}

#[tokio::test]
async fn the_full_scan_flag_clears_once_every_class_has_done_a_full_round() {
    use entrasync::store::cursors;
    let env = env().await;
    let client = env.pool.get().await.expect("connection");
    let requested = |class| {
        let client = &client;
        async move { cursors::load(client, env.tenant_id, class).await.expect("load").expect("tenant").full_scan_requested }
    };
    assert!(requested(ObjectClass::User).await, "a new tenant starts with a full scan");
    cursors::complete(&client, env.tenant_id, ObjectClass::User, "https://g/users/delta?$deltatoken=1", true)
        .await
        .expect("complete");
    assert!(!requested(ObjectClass::User).await, "users are done");
    assert!(requested(ObjectClass::Group).await, "groups still owe their full scan");
    let flag =
        || async { tenants::get(&env.pool, env.tenant_id).await.expect("tenant").expect("exists").full_scan_next_run };
    assert!(flag().await, "expected the tenant's flag to stay set while groups and devices owe a full scan");
    for class in [ObjectClass::Group, ObjectClass::Device] {
        cursors::complete(&client, env.tenant_id, class, "https://g/x/delta?$deltatoken=1", true)
            .await
            .expect("complete");
    }
    assert!(!flag().await, "cleared after the last class");

    // An operator sets it again: every class owes a new full scan.
    assert!(
        tenants::request_full_scan(&env.pool, env.tenant_id).await.expect("request"),
        "expected the request to find the tenant"
    );
    for class in ObjectClass::ALL {
        assert!(requested(class).await, "{class}");
    }
}

/// A start event held up in a stalled connection and delivered after the run was resumed and finished
/// elsewhere does not reopen it (the chaos run found such a run closed again as "interrupted"); a real
/// resume, later than the row's start, does.
#[tokio::test]
async fn a_late_start_event_does_not_reopen_a_finished_run_but_a_resume_does() {
    use entrasync::model::{RunCounts, RunFinished, RunStarted, RunStatus, Trigger};
    use entrasync::store::runs;

    let env = env().await;
    let client = env.pool.get().await.expect("connection");
    let at = |secs: i64| chrono::Utc::now() + chrono::Duration::seconds(secs);
    let start = |started_at| RunStarted {
        run_id: Uuid::from_u128(7),
        tenant_id: env.tenant_id,
        class: ObjectClass::User,
        mode: SyncMode::Delta,
        trigger: Trigger::Queue,
        started_at,
        resumed: false,
        reason: None,
        counts: RunCounts::default(),
        instance_id: Some("a".into()),
        job_id: None,
    };
    let finish = |finished_at| RunFinished {
        run_id: Uuid::from_u128(7),
        tenant_id: env.tenant_id,
        class: ObjectClass::User,
        mode: SyncMode::Delta,
        status: RunStatus::Success,
        counts: RunCounts::default(),
        reason: None,
        error: None,
        finished_at,
    };
    // The resume's start lands first (the first attempt's is stuck), then the run finishes.
    runs::insert_started(&client, &start(at(0))).await.expect("start");
    runs::finish(&client, &finish(at(1))).await.expect("finish");
    // The first attempt's start arrives late, and so does a copy of the start that opened the row (its
    // first try, held in a stalled connection, after the retry landed): nothing changes.
    let row = runs::get(&client, Uuid::from_u128(7)).await.expect("run").expect("row");
    runs::insert_started(&client, &start(at(-10))).await.expect("late start");
    runs::insert_started(&client, &start(row.started_at)).await.expect("replayed start");
    let row = runs::get(&client, Uuid::from_u128(7)).await.expect("run").expect("row");
    assert_eq!(row.status, "success", "a late start reopened a finished run: {row:?}");
    // A real resume later on reopens it.
    runs::insert_started(&client, &start(at(5))).await.expect("resume");
    let row = runs::get(&client, Uuid::from_u128(7)).await.expect("run").expect("row");
    assert_eq!((row.status.as_str(), row.finished_at), ("running", None), "{row:?}");
}
