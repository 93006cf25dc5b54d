//! Delta rounds against the emulator: full round, delta round, resuming from a nextLink, membership
//! slices, and the errors that restart a round.

use std::collections::BTreeSet;

use entrasync::graph::{DeltaItem, DeltaRequest, GraphError, PageLink};
use entrasync::model::ObjectClass;
use graph_sim::faults::FaultKind;
use graph_sim::settings::SettingsPatch;
use serde_json::{json, Map, Value};

use super::sim::{quick_client, round, start, upserted_ids, SimTenant};
use crate::support::{eventually, holds_for};

fn small_pages(env: &SimTenant, page_size: usize) {
    let patch =
        SettingsPatch { page_size: Some(page_size), member_page_size: Some(page_size), ..SettingsPatch::default() };
    env.sim.state().update_settings(&env.tenant_id, &patch).expect("settings");
}

#[tokio::test]
async fn a_full_round_then_a_delta_round_report_changes_and_removals() {
    let env = start(30, 0, 0, &["User.Read.All"]);
    small_pages(&env, 7);
    let client = quick_client();
    let tenant = env.secret_tenant();
    let full = round(&client, tenant.clone(), DeltaRequest::full(ObjectClass::User)).await.expect("full round");
    assert!(full.len() >= 5, "30 users in pages of 7: {} pages", full.len());
    assert!(
        full[..full.len() - 1].iter().all(|p| matches!(p.next, PageLink::Next(_))),
        "expected a nextLink on every page but the last: {:?}",
        full.iter().map(|p| &p.next).collect::<Vec<_>>()
    );
    let PageLink::Delta(delta_link) = &full.last().expect("last page").next else {
        panic!("round must end with a deltaLink")
    };
    let ids: Vec<String> = upserted_ids(&full).into_iter().collect();
    assert_eq!(ids.len(), 30, "expected every one of the 30 users upserted");

    let mut changed = Map::new();
    changed.insert("jobTitle".to_owned(), json!("Chief Emulation Officer"));
    env.sim.state().update_object(&env.tenant_id, &ids[0], &changed).expect("update");
    env.sim.state().delete_object(&env.tenant_id, &ids[1], false).expect("soft delete");
    env.sim.state().delete_object(&env.tenant_id, &ids[2], true).expect("permanent delete");

    let delta =
        round(&client, tenant, DeltaRequest::resume(ObjectClass::User, delta_link.clone())).await.expect("delta");
    let items: Vec<&DeltaItem> = delta.iter().flat_map(|p| p.items.iter()).collect();
    let updated = items.iter().rev().find_map(|i| match i {
        DeltaItem::Upsert { id, attrs, .. } if *id == ids[0] => Some(attrs),
        _ => None,
    });
    assert_eq!(
        updated.and_then(|a| a.get("jobTitle")),
        Some(&Value::from("Chief Emulation Officer")),
        "expected the delta round to carry user {}'s new jobTitle",
        ids[0]
    );
    assert!(items.contains(&&DeltaItem::Removed { id: ids[1].clone(), permanent: false }), "{items:?}");
    assert!(items.contains(&&DeltaItem::Removed { id: ids[2].clone(), permanent: true }), "{items:?}");
    assert!(
        delta.last().expect("pages").next.is_delta(),
        "expected the delta round to end with a new deltaLink: {:?}",
        delta.last().map(|p| &p.next)
    );
}

#[tokio::test]
async fn a_stored_next_link_resumes_the_round() {
    let env = start(20, 0, 0, &["User.Read.All"]);
    small_pages(&env, 5);
    let client = quick_client();
    let tenant = env.secret_tenant();
    let all = round(&client, tenant.clone(), DeltaRequest::full(ObjectClass::User)).await.expect("round");
    let PageLink::Next(second_page) = &all[0].next else { panic!("several pages expected") };
    let rest =
        round(&client, tenant, DeltaRequest::resume(ObjectClass::User, second_page.clone())).await.expect("resume");
    let mut resumed = upserted_ids(&all[..1]);
    resumed.extend(upserted_ids(&rest));
    assert_eq!(resumed, upserted_ids(&all), "expected page 1 plus the resumed rest to be the whole round");
}

#[tokio::test]
async fn group_membership_slices_add_up_to_the_true_membership() {
    let env = start(40, 6, 0, &["GroupMember.Read.All"]);
    small_pages(&env, 3);
    let pages =
        round(&quick_client(), env.secret_tenant(), DeltaRequest::full(ObjectClass::Group)).await.expect("groups");
    let mut members: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for item in pages.iter().flat_map(|p| p.items.iter()) {
        if let DeltaItem::Upsert { id, members_added, members_removed, .. } = item {
            let entry = members.entry(id.clone()).or_default();
            entry.extend(members_added.iter().map(|m| m.id.clone()));
            for removed in members_removed {
                entry.remove(&removed.id);
            }
        }
    }
    let truth = env.sim.state().truth(&env.tenant_id, ObjectClass::Group).expect("truth");
    assert_eq!(members.len(), truth.objects.len(), "expected every group of the tenant in the round");
    for (group, expected) in &truth.memberships {
        let expected: BTreeSet<String> = expected.iter().cloned().collect();
        assert_eq!(members.get(group).cloned().unwrap_or_default(), expected, "group {group}");
    }
}

#[tokio::test]
async fn a_malformed_page_is_a_typed_error() {
    let env = start(3, 0, 0, &["User.Read.All"]);
    env.fault(FaultKind::MalformedJson, "users/delta", 1);
    let err =
        round(&quick_client(), env.secret_tenant(), DeltaRequest::full(ObjectClass::User)).await.expect_err("bad json");
    assert!(matches!(err, GraphError::MalformedResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn a_sync_reset_410_means_a_full_resync() {
    let env = start(3, 0, 0, &["User.Read.All"]);
    let client = quick_client();
    let tenant = env.secret_tenant();
    let full = round(&client, tenant.clone(), DeltaRequest::full(ObjectClass::User)).await.expect("full");
    let delta_link = full.last().expect("page").next.url().to_owned();
    env.fault(FaultKind::SyncReset, "users/delta", 1);
    let err = round(&client, tenant, DeltaRequest::resume(ObjectClass::User, delta_link)).await.expect_err("410");
    assert!(err.requires_full_resync(), "{err:?}");
    assert_eq!(env.responses(410), 1, "expected exactly the one injected 410 answered");
}

#[tokio::test]
async fn an_expired_delta_token_means_a_full_resync() {
    let env = start(3, 0, 0, &["User.Read.All"]);
    let client = quick_client();
    let tenant = env.secret_tenant();
    let full = round(&client, tenant.clone(), DeltaRequest::full(ObjectClass::User)).await.expect("full");
    let delta_link = full.last().expect("page").next.url().to_owned();
    // Delta tokens live 7 days; the access token expires too and is refreshed on the way.
    env.sim.state().advance_clock(chrono::Duration::days(8));
    let err = round(&client, tenant, DeltaRequest::resume(ObjectClass::User, delta_link)).await.expect_err("expired");
    match &err {
        GraphError::DeltaTokenExpired { reason } => {
            assert!(reason.to_ascii_lowercase().contains("syncstatenotfound"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_link_to_another_host_is_refused_before_the_token_is_sent() {
    let env = start(1, 0, 0, &["User.Read.All"]);
    let err = round(
        &quick_client(),
        env.secret_tenant(),
        DeltaRequest::resume(ObjectClass::User, "http://127.0.0.1:9/v1.0/users/delta?$deltatoken=x"),
    )
    .await
    .expect_err("foreign host");
    assert!(matches!(err, GraphError::MalformedResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn the_stream_prefetches_one_page_and_no_more() {
    let env = start(10, 0, 0, &["User.Read.All"]);
    small_pages(&env, 1);
    let delta_requests = || env.sim.state().tenant_counters(&env.tenant_id).expect("counters").requests;
    let mut pages = quick_client().delta_pages(env.secret_tenant(), DeltaRequest::full(ObjectClass::User));
    use futures::StreamExt;
    let first = pages.next().await.expect("a page").expect("page 1");
    assert!(matches!(first.next, PageLink::Next(_)), "expected page 1 of 10 to have a nextLink: {:?}", first.next);
    // While we hold page 1, the client fetches page 2 and then waits for us: no third request. That one
    // must never come, so it is watched for; the watch starts once page 2 was fetched.
    let no_more_than_two = || async { delta_requests() <= 2 };
    let prefetched = || async { delta_requests() == 2 };
    let watch = std::time::Duration::from_millis(500);
    assert!(
        eventually(std::time::Duration::from_secs(30), prefetched).await,
        "expected page 2 to be prefetched while page 1 is held: {} requests",
        delta_requests()
    );
    assert!(
        holds_for(watch, no_more_than_two).await,
        "one page held plus one prefetched: {} requests",
        delta_requests()
    );
    drop(pages);
    assert!(
        holds_for(watch, no_more_than_two).await,
        "a dropped stream fetches nothing more: {} requests",
        delta_requests()
    );
}

#[tokio::test]
async fn a_page_larger_than_the_limit_fails_the_round_without_being_retried_or_read_whole() {
    let env = start(40, 0, 0, &["User.Read.All"]);
    small_pages(&env, 20);
    let limit = 2048;
    let client = entrasync::graph::GraphClient::new(entrasync::graph::GraphClientOptions {
        max_body_bytes: limit,
        ..entrasync::graph::GraphClientOptions::default()
    })
    .expect("client");
    let error = round(&client, env.secret_tenant(), DeltaRequest::full(ObjectClass::User))
        .await
        .expect_err("a page of 20 users is larger than 2 KiB");
    let GraphError::MalformedResponse { url, detail } = &error else { panic!("expected a malformed page: {error}") };
    assert!(url.contains("/users/delta"), "expected the page's URL: {url}");
    assert!(detail.contains("2048 bytes"), "expected the limit named: {detail}");
    assert_eq!(env.responses(200), 1, "expected one request, not retried: {error}");
    // The same pages under the default limit are fine.
    assert!(round(&quick_client(), env.secret_tenant(), DeltaRequest::full(ObjectClass::User)).await.is_ok());
}
