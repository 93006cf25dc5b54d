//! Graph v1.0 directory endpoints: `/{users,groups,devices}/delta` (also `/microsoft.graph.delta`),
//! the plain collections, `/groups/{id}/members` and `/organization`. Served under `/v1.0` and
//! `/{cloud graph host}/v1.0`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::delta::{delta_page, next_round, PagePlan};
use crate::directory::Directory;
use crate::error::GraphError;
use crate::listing::list_page;
use crate::props::prop_name;
use crate::query::{bad_request, parse_id_filter, parse_select, parse_top, unsupported_query, GraphQuery};
use crate::routes::context::{begin, Cost, GraphRequest};
use crate::routes::respond::envelope;
use crate::state::{read, SimState};
use crate::token::{self, DeltaState, ListState, Selection};
use entrasync_model::ObjectClass;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/v1.0").configure(graph_routes))
        .service(web::scope("/{cloud}/v1.0").configure(graph_routes));
}

fn graph_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/{collection}/delta", web::get().to(delta))
        .route("/{collection}/microsoft.graph.delta", web::get().to(delta))
        // The Python SDK (kiota) spells the function call with parentheses.
        .route("/{collection}/delta()", web::get().to(delta))
        .route("/groups/{id}/members", web::get().to(members))
        .configure(crate::routes::transitive::configure)
        .route("/organization", web::get().to(crate::routes::organization::organization))
        .route("/{collection}", web::get().to(list));
}

fn collection_class(req: &HttpRequest) -> Result<ObjectClass, GraphError> {
    let segment = req.match_info().get("collection").unwrap_or_default();
    match segment {
        "users" => Ok(ObjectClass::User),
        "groups" => Ok(ObjectClass::Group),
        "devices" => Ok(ObjectClass::Device),
        _ => Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )),
    }
}

fn sync_state_not_found() -> GraphError {
    bad_request(
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )
}

fn context_url(root: &str, class: ObjectClass, dir_select: Option<&Selection>) -> String {
    let collection = class.graph_collection();
    match dir_select.filter(|s| s.explicit) {
        Some(sel) => {
            let mut names: Vec<&str> = sel.props.iter().map(|p| prop_name(class, *p)).collect();
            if sel.members {
                names.push("members");
            }
            format!("{root}/v1.0/$metadata#{collection}({})", names.join(","))
        }
        None => format!("{root}/v1.0/$metadata#{collection}"),
    }
}

fn select_query(class: ObjectClass, sel: &Selection) -> Option<String> {
    sel.explicit.then(|| {
        let mut names: Vec<&str> = sel.props.iter().map(|p| prop_name(class, *p)).collect();
        if sel.members {
            names.push("members");
        }
        names.join(",")
    })
}

fn wants_minimal(req: &HttpRequest) -> bool {
    req.headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
}

/// Resolves `$filter` ids to indexes (unknown ids match nothing), enforcing the per-class limit.
fn filter_indexes(dir: &Directory, class: ObjectClass, filter: &str) -> Result<Vec<u32>, GraphError> {
    let ids = parse_id_filter(filter)?;
    // Users and groups take at most 50 ids; devices are limited only by the URL length.
    if class != ObjectClass::Device && ids.len() > 50 {
        return Err(unsupported_query(format!("Too many ids in the filter: {} (at most 50).", ids.len())));
    }
    let mut indexes: Vec<u32> = ids
        .iter()
        .filter_map(|id| dir.codec.parse(id))
        .filter(|r| r.class == class)
        .filter(|r| dir.record(*r).is_some())
        .map(|r| r.index)
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    Ok(indexes)
}

async fn delta(req: HttpRequest, state: web::Data<SimState>) -> HttpResponse {
    let now = state.clock.now();
    let class = match collection_class(&req) {
        Ok(c) => c,
        Err(e) => return crate::routes::respond::error(&req, &e, now),
    };
    let q = GraphQuery::parse(req.query_string());
    let endpoint = format!("{}/delta", class.graph_collection());
    let cost = Cost { base: 1, has_select: q.select.is_some(), small_top: false };
    let graph = match begin(&req, &state, class, true, &endpoint, cost).await {
        Ok(g) => g,
        Err(response) => return response,
    };
    match delta_response(&req, &state, &graph, class, &q) {
        Ok(response) => response,
        Err(e) => graph.fail(&state, &req, &e),
    }
}

fn delta_response(
    req: &HttpRequest,
    state: &SimState,
    graph: &GraphRequest,
    class: ObjectClass,
    q: &GraphQuery,
) -> Result<HttpResponse, GraphError> {
    if q.expand.is_some() || q.orderby.is_some() {
        return Err(unsupported_query("$expand and $orderby are not supported on delta queries."));
    }
    let settings = read(&graph.tenant.settings).clone();
    let now_ms = state.clock.now().timestamp_millis();
    let segment = if req.path().ends_with("microsoft.graph.delta") { "microsoft.graph.delta" } else { "delta" };
    let collection = class.graph_collection();
    let link = |param: &str, token: &str| format!("{}/v1.0/{collection}/{segment}?{param}={token}", graph.link_root);
    let dir = read(&graph.tenant.directory);
    let decode_state = |raw: &str| -> Result<DeltaState, GraphError> {
        let state: DeltaState = token::decode(raw).map_err(|_| sync_state_not_found())?;
        if state.tenant != graph.tenant.id || state.class != class {
            return Err(sync_state_not_found());
        }
        if now_ms - state.issued_ms > settings.token_lifetime_secs.saturating_mul(1000) {
            return Err(sync_state_not_found());
        }
        Ok(state)
    };
    let delta_token = q.deltatoken.as_deref().filter(|t| !t.is_empty());
    let has_token = q.skiptoken.is_some() || delta_token.is_some_and(|t| !t.eq_ignore_ascii_case("latest"));
    if graph.sync_reset && has_token {
        // Synchronization reset: 410 with the initial query in Location.
        let raw = q.skiptoken.as_deref().or(delta_token).unwrap_or_default();
        let select = token::decode::<DeltaState>(raw).ok().and_then(|s| select_query(class, &s.select));
        let mut location = format!("{}/v1.0/{collection}/{segment}?", graph.link_root);
        if let Some(select) = select {
            location.push_str(&format!("$select={select}&"));
        }
        location.push_str("$deltatoken=");
        let err = GraphError::new(
            StatusCode::GONE,
            "resyncRequired",
            "The delta token is no longer valid, and the app must reset the sync state.",
        );
        let mut response = graph.fail(state, req, &err);
        crate::routes::context::insert_header(&mut response, "location", &location);
        return Ok(response);
    }
    let mut first_request = false;
    let mut round = if let Some(skip) = q.skiptoken.as_deref() {
        if q.select.is_some() || q.filter.is_some() {
            return Err(unsupported_query(
                "$select and $filter are not supported together with $skiptoken; follow the nextLink as returned.",
            ));
        }
        decode_state(skip)?
    } else if let Some(raw) = delta_token.filter(|t| !t.eq_ignore_ascii_case("latest")) {
        let mut round = decode_state(raw)?;
        // $select with a deltatoken changes the tracked properties of the deltaLink.
        if q.select.is_some() {
            round.select = parse_select(class, q.select.as_deref(), true)?;
        }
        round.upto = dir.current_usn();
        first_request = true;
        round
    } else {
        let select = parse_select(class, q.select.as_deref(), true)?;
        let filter = q.filter.as_deref().map(|f| filter_indexes(&dir, class, f)).transpose()?;
        let latest = delta_token.is_some();
        first_request = true;
        DeltaState {
            tenant: graph.tenant.id.clone(),
            class,
            select,
            filter,
            initial: !latest,
            since: 0,
            upto: dir.current_usn(),
            cursor: 0,
            member_after: None,
            page: 0,
            issued_ms: now_ms,
        }
    };
    let context = context_url(&graph.link_root, class, first_request.then_some(&round.select));
    let minimal = wants_minimal(req) && class != ObjectClass::Device;
    let mut extra = Vec::new();
    if minimal {
        extra.push(("preference-applied", "return=minimal".to_owned()));
    }
    // "Sync from now": only a deltaLink, no resource data.
    if delta_token.is_some_and(|t| t.eq_ignore_ascii_case("latest")) {
        round.initial = false;
        let next = next_round(&round, 0.0, now_ms);
        let body = envelope(&context, Some(("@odata.deltaLink", &link("$deltatoken", &token::encode(&next)))), b"");
        return Ok(graph.finish(state, req, body, 0, &extra));
    }
    let plan = PagePlan {
        page_size: settings.page_size,
        member_page_size: settings.member_page_size,
        minimal,
        replay_rate: settings.replay_rate,
        empty: settings.empty_page_rate > 0.0 && rand::random::<f64>() < settings.empty_page_rate,
    };
    let page = delta_page(&dir, &round, &plan);
    drop(dir);
    let body = match page.next {
        Some(mut next) => {
            next.issued_ms = now_ms;
            envelope(&context, Some(("@odata.nextLink", &link("$skiptoken", &token::encode(&next)))), &page.value)
        }
        None => {
            let next = next_round(&round, settings.replay_rate, now_ms);
            envelope(&context, Some(("@odata.deltaLink", &link("$deltatoken", &token::encode(&next)))), &page.value)
        }
    };
    Ok(graph.finish(state, req, body, page.objects, &extra))
}

fn list_link(root: &str, path: &str, state: &ListState) -> String {
    format!("{root}/v1.0/{path}?$top={}&$skiptoken={}", state.top, token::encode(state))
}

async fn list(req: HttpRequest, state: web::Data<SimState>) -> HttpResponse {
    let now = state.clock.now();
    let class = match collection_class(&req) {
        Ok(c) => c,
        Err(e) => return crate::routes::respond::error(&req, &e, now),
    };
    let q = GraphQuery::parse(req.query_string());
    let small_top = q.top.as_deref().and_then(|t| t.parse::<u32>().ok()).is_some_and(|t| t < 20);
    let base = if class == ObjectClass::User { 2 } else { 1 };
    let endpoint = format!("{}/list", class.graph_collection());
    let graph =
        match begin(&req, &state, class, false, &endpoint, Cost { base, has_select: q.select.is_some(), small_top })
            .await
        {
            Ok(g) => g,
            Err(response) => return response,
        };
    let result = (|| -> Result<HttpResponse, GraphError> {
        let list_state = match q.skiptoken.as_deref() {
            // Re-applied query parameters on a nextLink are tolerated: the token carries the query.
            Some(skip) => {
                let s: ListState = token::decode(skip).map_err(|_| {
                    bad_request(
                        "Directory_ExpiredPageToken",
                        "The specified page token value has expired and can no longer be included in your request.",
                    )
                })?;
                if s.tenant != graph.tenant.id || s.class != class || s.group.is_some() {
                    return Err(bad_request(
                        "Directory_ExpiredPageToken",
                        "The specified page token value has expired and can no longer be included in your request.",
                    ));
                }
                s
            }
            None => ListState {
                tenant: graph.tenant.id.clone(),
                class,
                select: parse_select(class, q.select.as_deref(), false)?,
                top: parse_top(q.top.as_deref(), 100)?,
                cursor: 0,
                group: None,
                member_after: None,
                member_select: None,
            },
        };
        let dir = read(&graph.tenant.directory);
        let page = list_page(&dir, &list_state);
        drop(dir);
        let objects = page.objects;
        let context = context_url(&graph.link_root, class, q.skiptoken.is_none().then_some(&list_state.select));
        let next = page.next.as_ref().map(|n| list_link(&graph.link_root, class.graph_collection(), n));
        let body = envelope(&context, next.as_deref().map(|n| ("@odata.nextLink", n)), &page.value);
        Ok(graph.finish(&state, &req, body, objects, &[]))
    })();
    result.unwrap_or_else(|e| graph.fail(&state, &req, &e))
}

async fn members(req: HttpRequest, state: web::Data<SimState>, path: web::Path<(String,)>) -> HttpResponse {
    let q = GraphQuery::parse(req.query_string());
    let small_top = q.top.as_deref().and_then(|t| t.parse::<u32>().ok()).is_some_and(|t| t < 20);
    let graph = match begin(
        &req,
        &state,
        ObjectClass::Group,
        false,
        "groups/members",
        Cost { base: 3, has_select: q.select.is_some(), small_top },
    )
    .await
    {
        Ok(g) => g,
        Err(response) => return response,
    };
    let group_id = path.into_inner().0;
    let result = (|| -> Result<HttpResponse, GraphError> {
        let dir = read(&graph.tenant.directory);
        let not_found = || {
            GraphError::new(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                format!("Resource '{group_id}' does not exist or one of its queried reference-property objects are not present."),
            )
        };
        let group = dir.resolve(&group_id, Some(ObjectClass::Group)).map_err(|_| not_found())?;
        if dir.record(group).is_none_or(|r| r.life != crate::directory::Life::Live) {
            return Err(not_found());
        }
        let list_state = match q.skiptoken.as_deref() {
            Some(skip) => {
                let s: ListState = token::decode(skip).map_err(|_| {
                    bad_request(
                        "Directory_ExpiredPageToken",
                        "The specified page token value has expired and can no longer be included in your request.",
                    )
                })?;
                if s.tenant != graph.tenant.id || s.group != Some(group.index) {
                    return Err(bad_request(
                        "Directory_ExpiredPageToken",
                        "The specified page token value has expired and can no longer be included in your request.",
                    ));
                }
                s
            }
            None => {
                let names: Option<Vec<String>> = q.select.as_deref().map(|s| {
                    s.split(',')
                        .map(|n| n.trim().to_owned())
                        .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("id"))
                        .collect()
                });
                for name in names.iter().flatten() {
                    if ObjectClass::ALL.iter().all(|c| crate::props::prop_id(*c, name).is_none()) {
                        return Err(bad_request(
                            "Request_BadRequest",
                            format!(
                                "Could not find a property named '{name}' on type 'microsoft.graph.directoryObject'."
                            ),
                        ));
                    }
                }
                ListState {
                    tenant: graph.tenant.id.clone(),
                    class: ObjectClass::Group,
                    select: Selection { props: Vec::new(), members: false, explicit: false },
                    top: parse_top(q.top.as_deref(), 100)?,
                    cursor: 0,
                    group: Some(group.index),
                    member_after: None,
                    member_select: names,
                }
            }
        };
        let page = list_page(&dir, &list_state);
        drop(dir);
        let objects = page.objects;
        let context = format!("{}/v1.0/$metadata#directoryObjects", graph.link_root);
        let next = page.next.as_ref().map(|n| list_link(&graph.link_root, &format!("groups/{group_id}/members"), n));
        let body = envelope(&context, next.as_deref().map(|n| ("@odata.nextLink", n)), &page.value);
        Ok(graph.finish(&state, &req, body, objects, &[]))
    })();
    result.unwrap_or_else(|e| graph.fail(&state, &req, &e))
}
