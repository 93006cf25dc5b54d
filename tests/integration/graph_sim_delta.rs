//! Graph emulator: users/devices delta rounds — paging, links, tokens, $select, $filter,
//! `Prefer: return=minimal`, `$deltatoken=latest`, expiry, replays, empty pages, deletions.

use std::collections::HashSet;

use graph_sim::settings::SettingsPatch;
use serde_json::{json, Map, Value};

use crate::graph_sim_harness::{ids_of, objects, start};

fn attrs(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("object")
}

#[tokio::test]
async fn initial_users_walk_pages_at_200_and_ends_with_a_delta_link() {
    let sim = start(450, 0, 0).await;
    let (pages, delta) = sim.walk(&sim.url("/v1.0/users/delta")).await;
    assert_eq!(
        pages.iter().map(|p| p.value().len()).collect::<Vec<_>>(),
        vec![200, 200, 50],
        "expected 450 users in delta pages of 200"
    );
    let ids: HashSet<String> = ids_of(&objects(&pages)).into_iter().collect();
    assert_eq!(ids.len(), 450, "expected 450 distinct users");
    let first = &pages[0].value()[0];
    for prop in ["displayName", "userPrincipalName", "givenName", "surname"] {
        assert!(first.get(prop).is_some(), "default property {prop} missing: {first}");
    }
    assert!(first.get("department").is_none(), "department is returned only on $select");
    // Links are absolute, opaque, on the emulator's own address.
    let next = pages[0].next().expect("next");
    assert!(next.starts_with(&sim.url("/v1.0/users/delta?$skiptoken=")), "{next}");
    assert!(delta.starts_with(&sim.url("/v1.0/users/delta?$deltatoken=")), "{delta}");
    // Nothing changed: an empty round with a fresh deltaLink.
    let (again, _) = sim.walk(&delta).await;
    assert_eq!(again.len(), 1, "expected one page when nothing changed");
    assert!(again[0].value().is_empty(), "expected no object when nothing changed: {}", again[0].body);
}

#[tokio::test]
async fn fully_qualified_delta_spelling_is_served_and_kept_in_links() {
    let sim = start(5, 0, 3).await;
    let page = sim.get(&sim.url("/v1.0/users/microsoft.graph.delta")).await;
    assert_eq!(page.status, 200, "expected the fully qualified spelling to be served: {}", page.body);
    assert_eq!(page.value().len(), 5, "expected all 5 users");
    let delta = page.delta().expect("delta");
    assert!(
        delta.contains("/v1.0/users/microsoft.graph.delta?$deltatoken="),
        "expected the deltaLink to keep the spelling: {delta}"
    );
    let page = sim.get(&sim.url("/v1.0/users/delta()")).await;
    assert_eq!(page.status, 200, "the SDK's delta() spelling");
    assert_eq!(page.value().len(), 5, "expected all 5 users with the delta() spelling");
    let page = sim.get(&sim.url("/v1.0/devices/microsoft.graph.delta")).await;
    assert_eq!(page.value().len(), 3, "expected all 3 devices: {}", page.body);
    let device = &page.value()[0];
    for prop in ["deviceId", "operatingSystem", "trustType", "approximateLastSignInDateTime", "accountEnabled"] {
        assert!(device.get(prop).is_some(), "device property {prop}: {device}");
    }
}

#[tokio::test]
async fn select_is_carried_in_tokens_and_only_selected_changes_show() {
    let sim = start(250, 0, 0).await;
    let (pages, delta) = sim.walk(&sim.url("/v1.0/users/delta?$select=displayName,department")).await;
    assert!(
        pages[0].body["@odata.context"].as_str().unwrap_or_default().ends_with("#users(displayName,department)"),
        "expected the first page's context to name the projection: {}",
        pages[0].body["@odata.context"]
    );
    assert!(
        pages[1].body["@odata.context"].as_str().unwrap_or_default().ends_with("#users"),
        "projection only on the first page"
    );
    for object in objects(&pages) {
        let keys: HashSet<&str> = object.as_object().expect("object").keys().map(String::as_str).collect();
        assert!(keys.is_subset(&HashSet::from(["id", "displayName", "department"])), "{object}");
    }
    let users = sim.state().ids(&sim.tenant, entrasync::model::ObjectClass::User, true).expect("ids");
    sim.state()
        .update_object(&sim.tenant, &users[3], &attrs(json!({"jobTitle": "Unselected Change"})))
        .expect("update");
    sim.state()
        .update_object(&sim.tenant, &users[4], &attrs(json!({"department": "Selected Change"})))
        .expect("update");
    let (round, _) = sim.walk(&delta).await;
    let changed = objects(&round);
    assert_eq!(
        ids_of(&changed),
        vec![users[4].clone()],
        "a change to an unselected property does not make the object appear"
    );
    assert_eq!(changed[0]["department"], "Selected Change", "expected the selected change: {}", changed[0]);
    assert!(changed[0].get("displayName").is_some(), "default mode returns unchanged selected properties too");
}

#[tokio::test]
async fn select_with_skiptoken_is_rejected_and_unknown_properties_are_errors() {
    let sim = start(300, 0, 0).await;
    let page = sim.get(&sim.url("/v1.0/users/delta")).await;
    let next = page.next().expect("next");
    let page = sim.get(&format!("{next}&$select=displayName")).await;
    assert_eq!(page.status, 400, "expected $select on a skiptoken link to be refused: {}", page.body);
    assert_eq!(page.body["error"]["code"], "Request_UnsupportedQuery", "expected Graph's error code: {}", page.body);
    let page = sim.get(&sim.url("/v1.0/users/delta?$select=shoeSize")).await;
    assert_eq!(page.status, 400, "expected an unknown property to be refused: {}", page.body);
    assert_eq!(page.body["error"]["code"], "Request_BadRequest", "expected Graph's error code: {}", page.body);
    let page = sim.get(&sim.url("/v1.0/users/delta?$select=skills")).await;
    assert_eq!(page.status, 501, "expected a property delta cannot serve to be 501: {}", page.body);
    assert_eq!(page.body["error"]["code"], "NotImplemented", "expected Graph's error code: {}", page.body);
    assert!(
        page.body["error"]["innerError"]["request-id"].is_string(),
        "expected the error to carry a request-id: {}",
        page.body
    );
}

#[tokio::test]
async fn return_minimal_emits_only_changed_properties_and_explicit_nulls() {
    let sim = start(20, 0, 0).await;
    let (_, delta) = sim.walk(&sim.url("/v1.0/users/delta?$select=displayName,jobTitle,mobilePhone")).await;
    let users = sim.state().ids(&sim.tenant, entrasync::model::ObjectClass::User, true).expect("ids");
    sim.state()
        .update_object(&sim.tenant, &users[0], &attrs(json!({"jobTitle": null, "mobilePhone": "+1 555 0100"})))
        .expect("update");
    let minimal = [("Prefer", "return=minimal")];
    let (round, next_delta) = sim.walk_with(&delta, &minimal).await;
    assert_eq!(
        round[0].headers.get("preference-applied").and_then(|v| v.to_str().ok()),
        Some("return=minimal"),
        "expected the emulator to confirm the preference"
    );
    let changed = objects(&round);
    assert_eq!(changed.len(), 1, "expected only the changed user: {changed:?}");
    assert_eq!(
        changed[0],
        json!({"id": users[0], "jobTitle": null, "mobilePhone": "+1 555 0100"}),
        "expected only the changed properties, the removed one as an explicit null"
    );
    // The same change without the header: the unchanged displayName comes along.
    let (round, _) = sim.walk(&delta).await;
    let full = objects(&round);
    assert!(full[0].get("displayName").is_some(), "expected the unchanged displayName without the header: {}", full[0]);
    assert_eq!(full[0]["jobTitle"], Value::Null, "expected the removed jobTitle as null: {}", full[0]);
    let (round, _) = sim.walk_with(&next_delta, &minimal).await;
    assert!(objects(&round).is_empty(), "expected nothing after the change was delivered: {:?}", objects(&round));
}

#[tokio::test]
async fn deltatoken_latest_returns_only_a_delta_link_that_sees_later_changes() {
    let sim = start(50, 0, 0).await;
    let page = sim.get(&sim.url("/v1.0/users/delta?$deltaToken=latest")).await;
    assert_eq!(page.status, 200, "expected $deltaToken=latest to be served: {}", page.body);
    assert!(page.value().is_empty(), "expected no object with $deltaToken=latest: {}", page.body);
    let delta = page.delta().expect("deltaLink");
    let id = sim
        .state()
        .create_object(&sim.tenant, entrasync::model::ObjectClass::User, &attrs(json!({"displayName": "New Hire"})))
        .expect("create");
    let (round, _) = sim.walk(&delta).await;
    let created = objects(&round);
    assert_eq!(ids_of(&created), vec![id], "expected exactly the user created after the latest token");
    assert_eq!(created[0]["displayName"], "New Hire", "expected the new user's properties: {}", created[0]);
    assert!(created[0].get("@removed").is_none(), "expected a created user, not a removal: {}", created[0]);
}

#[tokio::test]
async fn id_filters_are_limited_to_50_for_users_but_not_devices() {
    let sim = start(60, 0, 60).await;
    let users = sim.state().ids(&sim.tenant, entrasync::model::ObjectClass::User, true).expect("ids");
    let filter = |ids: &[String]| ids.iter().map(|id| format!("id eq '{id}'")).collect::<Vec<_>>().join(" or ");
    let page = sim.get(&sim.url(&format!("/v1.0/users/delta?$filter={}", filter(&users[..2])))).await;
    assert_eq!(page.status, 200, "expected a filter on 2 ids to be served: {}", page.body);
    let got: HashSet<String> = ids_of(page.value()).into_iter().collect();
    assert_eq!(got, users[..2].iter().cloned().collect(), "expected exactly the 2 filtered users");
    let page = sim.get(&sim.url(&format!("/v1.0/users/delta?$filter={}", filter(&users[..51])))).await;
    assert_eq!(page.status, 400, "expected a filter on 51 user ids to be refused: {}", page.body);
    assert_eq!(page.body["error"]["code"], "Request_UnsupportedQuery", "expected Graph's error code: {}", page.body);
    let devices = sim.state().ids(&sim.tenant, entrasync::model::ObjectClass::Device, true).expect("ids");
    let page = sim.get(&sim.url(&format!("/v1.0/devices/delta?$filter={}", filter(&devices)))).await;
    assert_eq!(page.status, 200, "expected a filter on 60 device ids to be served: {}", page.body);
    assert_eq!(page.value().len(), 60, "expected all 60 filtered devices");
    let page = sim.get(&sim.url("/v1.0/users/delta?$filter=displayName eq 'x'")).await;
    assert_eq!(page.status, 400, "expected a filter on anything but id to be refused: {}", page.body);
}

#[tokio::test]
async fn delta_tokens_expire_after_the_configured_lifetime() {
    let mut sim = start(10, 0, 0).await;
    let (_, delta) = sim.walk(&sim.url("/v1.0/users/delta")).await;
    sim.state().advance_clock(chrono::Duration::days(6));
    sim.renew_token().await;
    assert_eq!(sim.get(&delta).await.status, 200, "six days old still works");
    sim.state().advance_clock(chrono::Duration::days(2));
    sim.renew_token().await;
    let page = sim.get(&delta).await;
    assert_eq!(page.status, 400, "expected an eight-day-old token to be expired: {}", page.body);
    assert_eq!(page.body["error"]["code"], "syncStateNotFound", "expected Graph's error code: {}", page.body);
    // A shorter configured lifetime.
    sim.state()
        .update_settings(&sim.tenant, &SettingsPatch { token_lifetime_secs: Some(60), ..Default::default() })
        .expect("settings");
    let (_, delta) = sim.walk(&sim.url("/v1.0/users/delta")).await;
    sim.state().advance_clock(chrono::Duration::seconds(61));
    let page = sim.get(&delta).await;
    assert_eq!(page.status, 400, "expected a token past a 60 s lifetime to be expired: {}", page.body);
    // A tampered token is not a sync state either.
    let page = sim.get(&sim.url("/v1.0/users/delta?$deltatoken=bm90LWEtdG9rZW4")).await;
    assert_eq!(page.body["error"]["code"], "syncStateNotFound", "expected a tampered token refused: {}", page.body);
}

#[tokio::test]
async fn deletions_and_restores_show_as_removed_changed_deleted_and_plain() {
    let sim = start(10, 0, 0).await;
    let (_, delta) = sim.walk(&sim.url("/v1.0/users/delta")).await;
    let users = sim.state().ids(&sim.tenant, entrasync::model::ObjectClass::User, true).expect("ids");
    let st = sim.state();
    assert_eq!(
        st.delete_object(&sim.tenant, &users[0], false).expect("soft"),
        graph_sim::state::DeleteOutcome::SoftDeleted,
        "expected a soft delete of a user to keep it restorable"
    );
    st.delete_object(&sim.tenant, &users[1], true).expect("permanent");
    st.delete_object(&sim.tenant, &users[2], false).expect("soft");
    let (round, delta) = sim.walk(&delta).await;
    let got = objects(&round);
    assert!(got.contains(&json!({"id": users[0], "@removed": {"reason": "changed"}})), "{got:?}");
    assert!(got.contains(&json!({"id": users[1], "@removed": {"reason": "deleted"}})), "{got:?}");
    st.restore_object(&sim.tenant, &users[0]).expect("restore");
    st.delete_object(&sim.tenant, &users[2], true).expect("purge soft-deleted");
    let (round, _) = sim.walk(&delta).await;
    let got = objects(&round);
    let restored = got.iter().find(|o| o["id"] == users[0].as_str()).expect("restored user");
    assert!(
        restored.get("@removed").is_none() && restored.get("displayName").is_some(),
        "restored objects reappear plain: {restored}"
    );
    assert!(
        got.contains(&json!({"id": users[2], "@removed": {"reason": "deleted"}})),
        "expected the purged soft-deleted user as removed (deleted): {got:?}"
    );
    // An initial round lists only what exists.
    let (pages, _) = sim.walk(&sim.url("/v1.0/users/delta")).await;
    assert_eq!(objects(&pages).len(), 8, "expected 10 users less the two deleted for good");
}

#[tokio::test]
async fn replays_duplicate_objects_and_empty_pages_still_carry_next_links() {
    let sim = start(1000, 0, 0).await;
    let patch = SettingsPatch {
        replay_rate: Some(0.2),
        empty_page_rate: Some(0.5),
        page_size: Some(100),
        ..Default::default()
    };
    sim.state().update_settings(&sim.tenant, &patch).expect("settings");
    let (pages, _) = sim.walk(&sim.url("/v1.0/users/delta")).await;
    let all = ids_of(&objects(&pages));
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 1000, "every user still arrives");
    assert!(all.len() > 1000, "some users are repeated");
    assert!(pages.iter().any(|p| p.value().is_empty() && p.next().is_some()), "an empty page with a nextLink");
}

#[tokio::test]
async fn page_size_is_configurable_per_tenant() {
    let sim = start(30, 0, 0).await;
    sim.state()
        .update_settings(&sim.tenant, &SettingsPatch { page_size: Some(7), ..Default::default() })
        .expect("settings");
    let (pages, _) = sim.walk(&sim.url("/v1.0/users/delta")).await;
    assert_eq!(
        pages.iter().map(|p| p.value().len()).collect::<Vec<_>>(),
        vec![7, 7, 7, 7, 2],
        "expected 30 users in pages of the configured 7"
    );
}
