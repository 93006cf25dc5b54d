//! Graph emulator: groups/delta — `members@delta` add/remove slices, large groups spread over pages,
//! group deletion semantics (security → deleted, Microsoft 365 → changed), member deletions.

use std::collections::{BTreeMap, BTreeSet};

use entrasync::model::ObjectClass;
use graph_sim::settings::SettingsPatch;
use graph_sim::state::DeleteOutcome;
use serde_json::{json, Map, Value};

use crate::graph_sim_harness::{objects, start, Sim};

/// Merges members@delta over a walk: group id → member ids (adds minus removals).
fn merge_members(objects: &[Value], into: &mut BTreeMap<String, BTreeSet<String>>) {
    for group in objects {
        let Some(id) = group["id"].as_str() else { continue };
        let members = into.entry(id.to_owned()).or_default();
        for entry in group["members@delta"].as_array().into_iter().flatten() {
            let member = entry["id"].as_str().expect("member id").to_owned();
            if entry.get("@removed").is_some() {
                members.remove(&member);
            } else {
                members.insert(member);
            }
        }
    }
}

fn truth_members(sim: &Sim) -> BTreeMap<String, BTreeSet<String>> {
    let truth = sim.state().truth(&sim.tenant, ObjectClass::Group).expect("truth");
    truth.memberships.into_iter().map(|(g, m)| (g, m.into_iter().collect())).collect()
}

fn empty() -> Map<String, Value> {
    Map::new()
}

#[tokio::test]
async fn initial_groups_walk_lists_members_and_merging_equals_the_truth() {
    let sim = start(300, 40, 20).await;
    let (pages, _) = sim.walk(&sim.url("/v1.0/groups/delta")).await;
    let all = objects(&pages);
    let mut merged = BTreeMap::new();
    merge_members(&all, &mut merged);
    merged.retain(|_, m| !m.is_empty());
    let mut truth = truth_members(&sim);
    truth.retain(|_, m| !m.is_empty());
    assert_eq!(merged, truth, "expected the merged members@delta slices to equal the true memberships");
    let all_company = all.iter().find(|g| g["displayName"] == "All Company").expect("All Company");
    assert_eq!(all_company["groupTypes"], json!(["Unified"]), "expected All Company to be a Microsoft 365 group");
    assert_eq!(
        all_company["members@delta"][0]["@odata.type"], "#microsoft.graph.user",
        "expected typed member entries: {}",
        all_company["members@delta"][0]
    );
    let kinds: BTreeSet<(bool, bool, bool)> = all
        .iter()
        .map(|g| (g["securityEnabled"] == true, g["mailEnabled"] == true, g["groupTypes"] == json!(["Unified"])))
        .collect();
    assert!(kinds.len() >= 3, "security, Microsoft 365 and mail-enabled groups: {kinds:?}");
    // A group without members carries no members@delta at all.
    let id = sim.state().create_object(&sim.tenant, ObjectClass::Group, &empty()).expect("create");
    let (_, delta) = sim.walk(&sim.url("/v1.0/groups/delta")).await;
    let _ = delta;
    let (pages, _) = sim.walk(&sim.url(&format!("/v1.0/groups/delta?$filter=id eq '{id}'"))).await;
    assert!(
        objects(&pages)[0].get("members@delta").is_none(),
        "expected a group without members to carry no members@delta: {}",
        objects(&pages)[0]
    );
}

#[tokio::test]
async fn a_large_group_spreads_over_pages_repeating_the_group() {
    let sim = start(1200, 1, 0).await; // group 0 is "All Company" with all 1200 users
    sim.state()
        .update_settings(&sim.tenant, &SettingsPatch { member_page_size: Some(500), ..Default::default() })
        .expect("settings");
    let (pages, _) = sim.walk(&sim.url("/v1.0/groups/delta")).await;
    assert_eq!(pages.len(), 3, "expected 1,200 members in slices of 500 to take 3 pages");
    let group_ids: BTreeSet<&str> = pages.iter().map(|p| p.value()[0]["id"].as_str().expect("id")).collect();
    assert_eq!(group_ids.len(), 1, "the same group on every page");
    for page in &pages {
        assert_eq!(page.value()[0]["displayName"], "All Company", "same properties each time");
    }
    let sizes: Vec<usize> =
        pages.iter().map(|p| p.value()[0]["members@delta"].as_array().map_or(0, Vec::len)).collect();
    assert_eq!(sizes, vec![500, 500, 200], "expected member slices of the configured 500");
    let mut merged = BTreeMap::new();
    merge_members(&objects(&pages), &mut merged);
    assert_eq!(merged, truth_members(&sim), "expected the merged slices to equal the true membership");
}

#[tokio::test]
async fn membership_changes_arrive_as_add_and_remove_slices() {
    let sim = start(50, 3, 0).await;
    let (pages, delta) = sim.walk(&sim.url("/v1.0/groups/delta?$select=displayName,members")).await;
    let mut merged = BTreeMap::new();
    merge_members(&objects(&pages), &mut merged);
    let groups = sim.state().ids(&sim.tenant, ObjectClass::Group, true).expect("groups");
    let users = sim.state().ids(&sim.tenant, ObjectClass::User, true).expect("users");
    let group = &groups[1];
    let current = truth_members(&sim)[group].clone();
    let outsider = users.iter().find(|u| !current.contains(*u)).expect("a non-member").clone();
    let insider = current.iter().next().expect("a member").clone();
    assert!(
        sim.state().add_member(&sim.tenant, group, &outsider).expect("add"),
        "expected {outsider} not to be a member of {group} yet"
    );
    assert!(
        sim.state().remove_member(&sim.tenant, group, &insider).expect("remove"),
        "expected {insider} to be a member of {group}"
    );
    let (round, _) = sim.walk(&delta).await;
    let changed = objects(&round);
    assert_eq!(changed.len(), 1, "expected only the changed group: {changed:?}");
    let entries = changed[0]["members@delta"].as_array().expect("members@delta");
    assert_eq!(entries.len(), 2, "only the changes: {entries:?}");
    assert!(
        entries.contains(&json!({"@odata.type": "#microsoft.graph.user", "id": outsider})),
        "expected the added member {outsider} as an addition: {entries:?}"
    );
    assert!(
        entries.contains(
            &json!({"@odata.type": "#microsoft.graph.user", "id": insider, "@removed": {"reason": "deleted"}})
        ),
        "expected the removed member {insider} as a removal: {entries:?}"
    );
    merge_members(&changed, &mut merged);
    assert_eq!(merged[group], truth_members(&sim)[group], "expected the merged membership of {group} to be true");
}

#[tokio::test]
async fn permanently_deleted_users_leave_their_groups_soft_deleted_ones_stay() {
    let sim = start(30, 2, 0).await;
    let (_, delta) = sim.walk(&sim.url("/v1.0/groups/delta")).await;
    let users = sim.state().ids(&sim.tenant, ObjectClass::User, true).expect("users");
    let all_company = sim.state().ids(&sim.tenant, ObjectClass::Group, true).expect("groups")[0].clone();
    sim.state().delete_object(&sim.tenant, &users[0], false).expect("soft delete");
    let (round, delta) = sim.walk(&delta).await;
    assert!(objects(&round).is_empty(), "a soft-deleted member does not show in members@delta");
    assert!(
        truth_members(&sim)[&all_company].contains(&users[0]),
        "expected the soft-deleted user {} to stay a member of All Company",
        users[0]
    );
    sim.state().delete_object(&sim.tenant, &users[0], true).expect("permanent delete");
    sim.state().delete_object(&sim.tenant, &users[1], true).expect("permanent delete");
    let (round, _) = sim.walk(&delta).await;
    let changed = objects(&round);
    let group = changed.iter().find(|g| g["id"] == all_company.as_str()).expect("All Company changed");
    let removed: BTreeSet<&str> = group["members@delta"]
        .as_array()
        .expect("members@delta")
        .iter()
        .filter(|e| e["@removed"]["reason"] == "deleted")
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(
        removed,
        BTreeSet::from([users[0].as_str(), users[1].as_str()]),
        "expected both permanently deleted users removed from All Company"
    );
}

#[tokio::test]
async fn security_groups_are_deleted_permanently_microsoft_365_groups_softly() {
    let sim = start(5, 0, 0).await;
    let st = sim.state();
    let security = st
        .create_object(
            &sim.tenant,
            ObjectClass::Group,
            &json!({"displayName": "SG", "groupTypes": [], "securityEnabled": true, "mailEnabled": false})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("create");
    let unified = st
        .create_object(
            &sim.tenant,
            ObjectClass::Group,
            &json!({"displayName": "Team", "groupTypes": ["Unified"], "mailEnabled": true})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
        .expect("create");
    let (_, delta) = sim.walk(&sim.url("/v1.0/groups/delta")).await;
    assert_eq!(
        st.delete_object(&sim.tenant, &security, false).expect("delete"),
        DeleteOutcome::PermanentlyDeleted,
        "expected a security group to be deleted for good"
    );
    assert_eq!(
        st.delete_object(&sim.tenant, &unified, false).expect("delete"),
        DeleteOutcome::SoftDeleted,
        "expected a Microsoft 365 group to be soft-deleted"
    );
    let (round, delta) = sim.walk(&delta).await;
    let got = objects(&round);
    assert!(got.contains(&json!({"id": security, "@removed": {"reason": "deleted"}})), "{got:?}");
    assert!(got.contains(&json!({"id": unified, "@removed": {"reason": "changed"}})), "{got:?}");
    assert!(st.restore_object(&sim.tenant, &security).is_err(), "a security group cannot be restored");
    st.restore_object(&sim.tenant, &unified).expect("restore");
    let (round, _) = sim.walk(&delta).await;
    let restored = objects(&round);
    assert_eq!(restored.len(), 1, "expected only the restored group: {restored:?}");
    assert_eq!(restored[0]["displayName"], "Team", "expected the restored group's properties: {}", restored[0]);
    assert!(restored[0].get("@removed").is_none(), "expected the restored group plain: {}", restored[0]);
}

#[tokio::test]
async fn random_mutations_converge_when_merging_every_round() {
    let sim = start(400, 30, 50).await;
    sim.state()
        .update_settings(
            &sim.tenant,
            &SettingsPatch {
                replay_rate: Some(0.1),
                page_size: Some(50),
                member_page_size: Some(60),
                ..Default::default()
            },
        )
        .expect("settings");
    let (pages, mut delta) = sim.walk(&sim.url("/v1.0/groups/delta")).await;
    let mut members = BTreeMap::new();
    let mut live: BTreeSet<String> = BTreeSet::new();
    let apply = |objs: &[Value], members: &mut BTreeMap<String, BTreeSet<String>>, live: &mut BTreeSet<String>| {
        for o in objs {
            let id = o["id"].as_str().expect("id").to_owned();
            if o.get("@removed").is_some() {
                live.remove(&id);
                members.remove(&id);
            } else {
                live.insert(id);
            }
        }
        merge_members(objs, members);
    };
    apply(&objects(&pages), &mut members, &mut live);
    for round in 0..5u64 {
        let batch = graph_sim::mutate::MutationBatch { seed: round, count: 200 };
        sim.state().random_mutations(&sim.tenant, &batch).expect("mutations");
        let (pages, next) = sim.walk(&delta).await;
        apply(&objects(&pages), &mut members, &mut live);
        delta = next;
    }
    let truth = sim.state().truth(&sim.tenant, ObjectClass::Group).expect("truth");
    assert_eq!(
        live,
        truth.objects.keys().cloned().collect::<BTreeSet<_>>(),
        "expected the groups live after merging every round to be the true groups"
    );
    let expected: BTreeMap<String, BTreeSet<String>> = truth
        .memberships
        .into_iter()
        .filter(|(_, m)| !m.is_empty())
        .map(|(g, m)| (g, m.into_iter().collect()))
        .collect();
    members.retain(|_, m| !m.is_empty());
    for (group, want) in &expected {
        let got = members.get(group).cloned().unwrap_or_default();
        assert_eq!(got.difference(want).collect::<Vec<_>>(), Vec::<&String>::new(), "extra members in {group}");
        assert_eq!(want.difference(&got).collect::<Vec<_>>(), Vec::<&String>::new(), "missing members in {group}");
    }
    assert_eq!(members, expected, "expected the merged memberships to equal the truth");
}
