//! Graph emulator: plain listings — `$top` limits, `$select`, paging, `/groups/{id}/members`.

use std::collections::BTreeSet;

use entrasync::model::ObjectClass;

use crate::graph_sim_harness::{ids_of, objects, start};

#[tokio::test]
async fn users_list_pages_by_top_and_rejects_1000() {
    let sim = start(250, 0, 0).await;
    let first = sim.get(&sim.url("/v1.0/users")).await;
    assert_eq!(first.status, 200, "expected GET /v1.0/users to answer 200: {}", first.body);
    assert_eq!(first.value().len(), 100, "default page of 100");
    let mut pages = vec![sim.get(&sim.url("/v1.0/users?$top=999&$select=displayName,accountEnabled")).await];
    assert_eq!(pages[0].value().len(), 250, "expected $top=999 to return all 250 users on one page");
    assert!(pages[0].next().is_none(), "expected no nextLink after the only page: {:?}", pages[0].next());
    let obj = &pages[0].value()[0];
    assert!(obj.get("accountEnabled").is_some() && obj.get("mail").is_none(), "{obj}");
    pages.clear();
    let mut url = sim.url("/v1.0/users?$top=60");
    loop {
        let page = sim.get(&url).await;
        assert_eq!(page.status, 200, "expected {url} to answer 200: {}", page.body);
        let next = page.next();
        pages.push(page);
        match next {
            // Tools like AzureHound re-apply their query onto nextLinks; that must be tolerated.
            Some(next) => url = format!("{next}&$top=60"),
            None => break,
        }
    }
    assert_eq!(
        pages.iter().map(|p| p.value().len()).collect::<Vec<_>>(),
        vec![60, 60, 60, 60, 10],
        "expected 250 users in pages of $top=60"
    );
    assert_eq!(
        ids_of(&objects(&pages)).into_iter().collect::<BTreeSet<_>>().len(),
        250,
        "expected the pages to hold 250 distinct users"
    );
    let page = sim.get(&sim.url("/v1.0/users?$top=1000")).await;
    assert_eq!(page.status, 400, "expected $top=1000 to be refused: {}", page.body);
    assert_eq!(page.body["error"]["code"], "Request_UnsupportedQuery", "expected Graph's error code: {}", page.body);
    assert_eq!(
        page.body["error"]["message"], "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.",
        "expected Graph's error message verbatim"
    );
}

#[tokio::test]
async fn deleted_objects_are_not_listed() {
    let sim = start(10, 0, 5).await;
    let devices = sim.state().ids(&sim.tenant, ObjectClass::Device, true).expect("ids");
    sim.state().delete_object(&sim.tenant, &devices[0], false).expect("delete");
    let page = sim.get(&sim.url("/v1.0/devices")).await;
    assert_eq!(page.value().len(), 4, "expected 5 devices less the deleted one: {}", page.body);
    assert!(!ids_of(page.value()).contains(&devices[0]), "expected the deleted device {} not listed", devices[0]);
    let page = sim.get(&sim.url("/v1.0/groups")).await;
    assert_eq!(page.status, 200, "expected GET /v1.0/groups to answer 200: {}", page.body);
    assert!(page.value().is_empty(), "expected no groups in a tenant generated without any: {}", page.body);
}

#[tokio::test]
async fn group_members_list_pages_and_types_members() {
    let sim = start(150, 1, 0).await;
    let group = sim.state().ids(&sim.tenant, ObjectClass::Group, true).expect("ids")[0].clone();
    let mut url = sim.url(&format!("/v1.0/groups/{group}/members?$top=40&$select=displayName"));
    let mut all = Vec::new();
    loop {
        let page = sim.get(&url).await;
        assert_eq!(page.status, 200, "{}", page.body);
        all.extend(page.value().iter().cloned());
        match page.next() {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(all.len(), 150, "expected every one of the 150 users as a member");
    assert_eq!(all[0]["@odata.type"], "#microsoft.graph.user", "expected members typed: {}", all[0]);
    assert!(
        all[0].get("displayName").is_some() && all[0].get("mail").is_none(),
        "expected $select=displayName to keep displayName and drop mail: {}",
        all[0]
    );
    let page = sim.get(&sim.url("/v1.0/groups/00000000-0000-4000-8000-000000000000/members")).await;
    assert_eq!(page.status, 404, "expected an unknown group to answer 404: {}", page.body);
    assert_eq!(page.body["error"]["code"], "Request_ResourceNotFound", "expected Graph's error code: {}", page.body);
}
