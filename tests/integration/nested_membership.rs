//! Nested-group membership (issue 17): a tenant with nested groups, a cycle among them and a
//! soft-deleted member is synced from the emulator; the store's transitive members of every group and
//! transitive groups of every object equal the emulator's own `transitiveMembers` /
//! `transitiveMemberOf` (read over HTTP, page by page), and the operator API answers the same, with
//! RFC 9457 problems for bad input.

use std::collections::BTreeSet;

use entrasync::model::{ObjectClass, RunStatus};
use entrasync::store::nesting::{self, Scope};
use graph_sim::state::DeleteOutcome;
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::support::app::spawn_app;
use crate::support::browser::{Browser, DEFAULT_WAIT};
use crate::support::{settings_with, TestAmqp};
use crate::sync_support::{spec, SyncTenant, SyncWorld, SECRET};

const ADMIN: &str = "es_admin-token-for-the-nesting-tests-0123456789abc";

/// A Graph token of the test app for the tenant, for the requests the sync client does not make.
async fn graph_token(world: &SyncWorld, tenant: &SyncTenant) -> String {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", world.app_id.as_str()),
        ("client_secret", SECRET),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let url = format!("{}/{}/oauth2/v2.0/token", world.sim.base_url(), tenant.sim_tenant);
    let body: Value =
        reqwest::Client::new().post(url).form(&form).send().await.expect("token").json().await.expect("json");
    body["access_token"].as_str().expect("access_token").to_owned()
}

/// Every id of a Graph listing, following `@odata.nextLink` (pages of `top`).
async fn graph_ids(http: &reqwest::Client, token: &str, first: String) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut next = Some(first);
    let mut pages = 0;
    while let Some(url) = next.take() {
        let response = http.get(&url).bearer_auth(token).send().await.expect("graph request");
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let body: Value = response.json().await.expect("graph json");
        for item in body["value"].as_array().expect("value") {
            assert!(item["@odata.type"].as_str().is_some_and(|t| t.starts_with("#microsoft.graph.")), "{item}");
            assert!(ids.insert(item["id"].as_str().expect("id").to_owned()), "{url}: an id listed twice");
        }
        next = body["@odata.nextLink"].as_str().map(str::to_owned);
        pages += 1;
        assert!(pages < 1000, "{url}: the listing does not end");
    }
    ids
}

/// Every row of a store answer, page by page (pages of 50).
async fn store_ids(world: &SyncWorld, tenant: i64, id: Uuid, members: bool, scope: Scope) -> BTreeSet<String> {
    let client = world.pool.get().await.expect("connection");
    let mut ids = BTreeSet::new();
    let mut after = None;
    loop {
        let page = if members {
            nesting::group_members(&client, tenant, id, scope, 50, after).await.expect("group members")
        } else {
            nesting::member_of(&client, tenant, id, scope, 50, after).await.expect("member of")
        };
        for row in &page.items {
            assert!(ids.insert(row.object_id.to_string()), "{id}: {} listed twice", row.object_id);
        }
        assert!(page.total as usize >= ids.len(), "{id}: total {} below the rows listed", page.total);
        if page.items.len() < 50 {
            assert_eq!(page.total as usize, ids.len(), "{id}: the total is the number of rows");
            return ids;
        }
        after = page.items.last().map(|r| r.object_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitive_membership_equals_the_emulators_expansion_including_a_cycle() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(171, 150, 30, 12), 40).await;
    let state = world.sim.state();
    let sim = &tenant.sim_tenant;
    // Five new groups (no generated members): a cycle g5 ⊃ g6 ⊃ g7 ⊃ g5, entered from g8 and leading
    // on to g9, which holds a device and a generated group; g7 holds a user that is soft-deleted after
    // the first sync (nobody's member any more, but its stored membership stays).
    // A Microsoft 365 group inside g6 (holding a user and a generated group) is soft-deleted after the
    // first sync too: it is neither listed nor walked through any more.
    let new_group = || state.create_object(sim, ObjectClass::Group, &serde_json::Map::new()).expect("create group");
    let (g5, g6, g7, g8, g9) = (new_group(), new_group(), new_group(), new_group(), new_group());
    let unified = serde_json::json!({ "groupTypes": ["Unified"] });
    let m365 = state.create_object(sim, ObjectClass::Group, unified.as_object().unwrap()).expect("create m365 group");
    let groups = state.ids(sim, ObjectClass::Group, true).expect("groups");
    let users = state.ids(sim, ObjectClass::User, true).expect("users");
    let devices = state.ids(sim, ObjectClass::Device, true).expect("devices");
    let (g5, g6, g7, g8, g9) = (&g5, &g6, &g7, &g8, &g9);
    let nested = &groups[3];
    for (group, member) in
        [(g5, g6), (g6, g7), (g7, g5), (g8, g5), (g7, g9), (g9, &devices[0]), (g9, nested), (g7, &users[3])]
            .into_iter()
            .chain([(g6, &m365), (&m365, &users[7]), (&m365, &groups[4])])
    {
        assert!(state.add_member(sim, group, member).expect("add member"), "{group} ⊃ {member}");
    }
    for report in world.round_all(&tenant).await {
        assert_eq!(report.status, RunStatus::Success, "{report:?}");
    }
    let soft = &users[3];
    state.delete_object(sim, soft, false).expect("soft-delete a user");
    assert_eq!(state.delete_object(sim, &m365, false).expect("soft-delete"), DeleteOutcome::SoftDeleted);
    for report in world.round_all(&tenant).await {
        assert_eq!(report.status, RunStatus::Success, "{report:?}");
    }
    let groups = state.ids(sim, ObjectClass::Group, true).expect("live groups");
    assert!(!groups.contains(&m365));
    let http = reqwest::Client::new();
    let token = graph_token(&world, &tenant).await;
    let base = world.sim.base_url();

    // Every group's transitive members, and its direct ones.
    let mut nested_somewhere = 0;
    for group in &groups {
        let id = Uuid::parse_str(group).expect("group id");
        let expected = graph_ids(&http, &token, format!("{base}/v1.0/groups/{group}/transitiveMembers?$top=7")).await;
        let stored = store_ids(&world, tenant.tenant_id, id, true, Scope::Transitive).await;
        assert_eq!(stored, expected, "group {group}: transitive members differ from the emulator's");
        let direct_expected = graph_ids(&http, &token, format!("{base}/v1.0/groups/{group}/members?$top=7")).await;
        let direct = store_ids(&world, tenant.tenant_id, id, true, Scope::Direct).await;
        assert_eq!(direct, direct_expected, "group {group}: direct members differ from the emulator's");
        assert!(!stored.contains(group), "group {group} is not its own member");
        assert!(!stored.contains(soft), "a soft-deleted user is nobody's member");
        if stored.len() > direct.len() {
            nested_somewhere += 1;
        }
    }
    assert!(nested_somewhere >= 4, "the tenant has nesting to expand ({nested_somewhere} groups)");
    // The cycle: each of its groups holds the other two (never itself) and what hangs below.
    let g8_members = store_ids(&world, tenant.tenant_id, Uuid::parse_str(g8).unwrap(), true, Scope::Transitive).await;
    for expected in [g5, g6, g7, g9, &devices[0], nested] {
        assert!(g8_members.contains(expected), "g8 reaches {expected} through the cycle");
    }

    // Every group's, some users' and every device's transitive groups.
    let mut objects: Vec<(&str, &String)> = groups.iter().map(|g| ("groups", g)).collect();
    objects.extend(users.iter().filter(|u| *u != soft).take(40).map(|u| ("users", u)));
    objects.extend(devices.iter().map(|d| ("devices", d)));
    for (collection, object) in objects {
        let id = Uuid::parse_str(object).expect("object id");
        let url = format!("{base}/v1.0/{collection}/{object}/transitiveMemberOf?$top=3");
        let expected = graph_ids(&http, &token, url).await;
        let stored = store_ids(&world, tenant.tenant_id, id, false, Scope::Transitive).await;
        assert_eq!(stored, expected, "{collection} {object}: transitive groups differ from the emulator's");
        let direct = store_ids(&world, tenant.tenant_id, id, false, Scope::Direct).await;
        assert!(direct.is_subset(&stored), "{object}: direct groups are transitive groups too");
    }
    let device_groups =
        store_ids(&world, tenant.tenant_id, Uuid::parse_str(&devices[0]).unwrap(), false, Scope::Transitive).await;
    for expected in [g5, g6, g7, g8, g9] {
        assert!(device_groups.contains(expected), "the device is in {expected} through g9 and the cycle");
    }
    // The soft-deleted group: no members, in no group, and not walked through (g6 does not list it).
    let m365_id = Uuid::parse_str(&m365).unwrap();
    assert!(store_ids(&world, tenant.tenant_id, m365_id, true, Scope::Transitive).await.is_empty());
    assert!(store_ids(&world, tenant.tenant_id, m365_id, false, Scope::Transitive).await.is_empty());
    let g6_members = store_ids(&world, tenant.tenant_id, Uuid::parse_str(g6).unwrap(), true, Scope::Transitive).await;
    assert!(!g6_members.contains(&m365), "a soft-deleted group is nobody's member");
    let soft_id = Uuid::parse_str(soft).unwrap();
    assert!(store_ids(&world, tenant.tenant_id, soft_id, false, Scope::Transitive).await.is_empty());
    let client = world.pool.get().await.expect("connection");
    let kept = nesting::stored_object(&client, tenant.tenant_id, soft_id).await.expect("stored").expect("kept");
    assert!(kept.deleted(), "the soft-deleted user is stored as deleted");
    assert!(
        entrasync::store::members::list(&client, tenant.tenant_id)
            .await
            .expect("members")
            .contains(&(Uuid::parse_str(g7).unwrap(), soft_id)),
        "the soft-deleted user's membership stays stored"
    );

    // "Is X a member of G" with its chain, through the store.
    let device = Uuid::parse_str(&devices[0]).unwrap();
    let u = |s: &String| Uuid::parse_str(s).unwrap();
    let m = nesting::is_member(&client, tenant.tenant_id, u(g8), device).await.expect("is member");
    assert_eq!((m.direct, m.transitive), (false, true));
    assert_eq!(m.path, Some(vec![u(g8), u(g5), u(g6), u(g7), u(g9), device]), "the shortest chain");
    let m = nesting::is_member(&client, tenant.tenant_id, u(g9), device).await.expect("is member");
    assert_eq!((m.direct, m.transitive, m.path), (true, true, Some(vec![u(g9), device])));
    let m = nesting::is_member(&client, tenant.tenant_id, u(g5), u(g5)).await.expect("is member");
    assert!(!m.transitive, "a group in a cycle is not its own member");
    let m = nesting::is_member(&client, tenant.tenant_id, u(g7), soft_id).await.expect("is member");
    assert_eq!((m.direct, m.transitive), (false, false), "a soft-deleted user is nobody's member");

    // The same through the operator API of a running service.
    let amqp = TestAmqp::new();
    let settings = settings_with(&[
        ("ENTRASYNC_DATABASE_URL", world.db.url.as_str()),
        ("ENTRASYNC_AMQP_PREFIX", amqp.prefix.as_str()),
        ("ENTRASYNC_ADMIN_TOKEN", ADMIN),
        ("ENTRASYNC_SERVE_ROLES", "api"),
    ]);
    let app = spawn_app(&settings).await;
    let api = |path: String| {
        let http = http.clone();
        let url = format!("{}/api/v1/tenants/{}{path}", app.address, tenant.tenant_id);
        async move {
            let response = http.get(url).bearer_auth(ADMIN).send().await.expect("api request");
            let status = response.status();
            let content_type =
                response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            (status, content_type, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, _, body) = api(format!("/groups/{g8}/members?transitive=true&limit=1000")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: BTreeSet<String> =
        body["items"].as_array().unwrap().iter().map(|i| i["object_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed, g8_members, "the API lists the store's transitive members");
    assert_eq!(body["total"].as_i64(), Some(g8_members.len() as i64));
    assert!(body["items"].as_array().unwrap().iter().any(|i| i["object_id"] == g5.as_str() && i["direct"] == true));
    assert!(body["items"].as_array().unwrap().iter().any(|i| i["object_id"] == g6.as_str() && i["direct"] == false));
    // Pages of 50 with a cursor add up to the same.
    let mut paged = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let (status, _, body) = api(format!("/groups/{}/members?transitive=true&limit=50{cursor}", groups[0])).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        paged.extend(body["items"].as_array().unwrap().iter().map(|i| i["object_id"].as_str().unwrap().to_owned()));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let all = store_ids(&world, tenant.tenant_id, u(&groups[0]), true, Scope::Transitive).await;
    assert_eq!(paged, all, "the API's pages add up to the whole answer");
    let (status, _, body) = api(format!("/groups/{g8}/members?transitive=false")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 1, "g8 holds g5 only, directly: {body}");

    let (status, _, body) = api(format!("/objects/{}/member-of?transitive=true", devices[0])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: BTreeSet<String> =
        body["items"].as_array().unwrap().iter().map(|i| i["object_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed, device_groups);
    let (status, _, body) = api(format!("/objects/{soft}/member-of?transitive=true")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["deleted_at"].is_string() && body["items"].as_array().unwrap().is_empty(), "{body}");

    let (status, _, body) = api(format!("/groups/{g8}/members/{}", devices[0])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["direct"].as_bool(), body["transitive"].as_bool()), (Some(false), Some(true)), "{body}");
    assert_eq!(body["path"].as_array().map(Vec::len), Some(6), "{body}");
    let g9_members = store_ids(&world, tenant.tenant_id, u(g9), true, Scope::Transitive).await;
    let outsider = users.iter().find(|x| !g9_members.contains(*x)).expect("a user outside g9");
    let (status, _, body) = api(format!("/groups/{g9}/members/{outsider}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["direct"].as_bool(), body["transitive"].as_bool()), (Some(false), Some(false)), "{body}");

    // Bad input: RFC 9457 problems, never a 500.
    let problems = [
        ("/groups/not-a-guid/members".to_owned(), StatusCode::NOT_FOUND, "group_id"),
        (format!("/groups/{g8}/members/12345"), StatusCode::NOT_FOUND, "object_id"),
        ("/objects/zzz/member-of".to_owned(), StatusCode::NOT_FOUND, "object_id"),
        (format!("/groups/{g8}/members?transitive=maybe"), StatusCode::BAD_REQUEST, "query"),
        (format!("/groups/{g8}/members?limit=7"), StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        (format!("/groups/{}/members", users[0]), StatusCode::NOT_FOUND, "not a group"),
        (format!("/groups/{}/members", Uuid::new_v4()), StatusCode::NOT_FOUND, "no stored group"),
        (format!("/objects/{}/member-of", Uuid::new_v4()), StatusCode::NOT_FOUND, "no stored object"),
    ];
    for (path, expected, mentions) in problems {
        let (status, content_type, body) = api(path.clone()).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert_eq!(content_type, "application/problem+json", "{path}");
        assert!(body["detail"].as_str().is_some_and(|d| d.contains(mentions)), "{path}: {body}");
    }
    let url = format!("{}/api/v1/tenants/999999/groups/{g8}/members", app.address);
    let response = http.get(url).bearer_auth(ADMIN).send().await.expect("api request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.expect("problem");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("no tenant")), "{body}");
    let url = format!("{}/api/v1/tenants/{}/groups/{g8}/members", app.address, tenant.tenant_id);
    assert_eq!(http.get(url).send().await.expect("api request").status(), StatusCode::UNAUTHORIZED);

    // The console: a group's members with the Transitive switch, "is it a member?", an object's groups.
    if let Some(browser) = Browser::start(1400, 1000).await {
        browser.goto(&format!("{}/", app.address)).await;
        browser.fill("#signin-token", ADMIN).await;
        browser.click("#signin-submit").await;
        browser.wait_until("the signed-in shell", "!document.getElementById('shell').hidden", DEFAULT_WAIT).await;
        let page =
            |class: &str, id: &str| format!("{}/#/tenants/{}/objects/{class}/{id}", app.address, tenant.tenant_id);
        browser.goto(&page("group", g8)).await;
        browser.wait_text_is("#object-members-total", "1 direct").await;
        browser.click("#object-members-transitive").await;
        browser.wait_text_is("#object-members-total", &format!("{} direct and nested", g8_members.len())).await;
        browser.wait_text("#object-members-rows", "nested").await;
        browser.fill("#membership-check-id", &devices[0]).await;
        browser.click("#membership-check-submit").await;
        browser.wait_text("#membership-check-answer", "member through nesting").await;
        browser.screenshot("nested-membership-group").await;
        browser.goto(&page("device", &devices[0])).await;
        let direct_groups = store_ids(&world, tenant.tenant_id, device, false, Scope::Direct).await;
        browser.wait_text_is("#object-member-of-total", &format!("{} direct", direct_groups.len())).await;
        browser.click("#object-member-of-transitive").await;
        browser.wait_text_is("#object-member-of-total", &format!("{} direct and nested", device_groups.len())).await;
        browser.screenshot("nested-membership-device").await;
    }
    app.handle.stop(true).await;
}
