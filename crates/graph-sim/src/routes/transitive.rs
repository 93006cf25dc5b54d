//! Graph's transitive membership endpoints (docs/graph-sim.md): `GET /groups/{id}/transitiveMembers` and
//! `GET /{users|groups|devices}/{id}/transitiveMemberOf`, computed from the emulator's own membership.
//!
//! As in Entra: only live objects are listed, a soft-deleted group is not expanded, the object asked
//! about is never in its own answer (a cycle leads back to it), and cycles terminate (each group is
//! expanded once). Pages of `$top` (default 100) in ascending packed order, continued by a
//! `$skiptoken` nextLink.

use std::collections::{BTreeSet, HashSet};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::body::{append, append_json};
use crate::directory::{Directory, Life};
use crate::error::GraphError;
use crate::ids::ObjectRef;
use crate::props::{default_props, odata_type, prop_name};
use crate::query::{bad_request, parse_top, GraphQuery};
use crate::routes::context::{begin, Cost};
use crate::routes::respond::envelope;
use crate::state::{read, SimState};
use crate::token;
use entrasync_model::ObjectClass;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/groups/{id}/transitiveMembers", web::get().to(transitive_members))
        .route("/{collection}/{id}/transitiveMemberOf", web::get().to(transitive_member_of));
}

/// Where a transitive listing is: the object asked about and the last packed ref served.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WalkState {
    tenant: String,
    subject: u32,
    /// `true`: members (down); `false`: member-of (up).
    down: bool,
    top: u32,
    after: Option<u32>,
}

fn is_live(dir: &Directory, obj: ObjectRef) -> bool {
    dir.record(obj).is_some_and(|r| r.life == Life::Live)
}

/// The live transitive members of a live group, packed and ascending; the group itself excluded.
pub fn members_of_group(dir: &Directory, group: ObjectRef) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    let mut expanded: HashSet<u32> = HashSet::from([group.index]);
    let mut stack = vec![group.index];
    while let Some(index) = stack.pop() {
        let Some(membership) = dir.members.get(index as usize) else { continue };
        for packed in membership.current_after(None) {
            let member = ObjectRef::unpack(packed);
            if !is_live(dir, member) {
                continue;
            }
            if member != group {
                found.insert(packed);
            }
            if member.class == ObjectClass::Group && expanded.insert(member.index) {
                stack.push(member.index);
            }
        }
    }
    found
}

/// The live groups an object belongs to directly or through nesting, packed and ascending; the object
/// itself excluded.
pub fn groups_of_object(dir: &Directory, obj: ObjectRef) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    let mut frontier = vec![obj.pack()];
    let mut seen: HashSet<u32> = HashSet::from([obj.pack()]);
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for (index, membership) in dir.members.iter().enumerate() {
            let group = ObjectRef::new(ObjectClass::Group, index as u32);
            if !is_live(dir, group) || !frontier.iter().any(|m| membership.contains(*m)) {
                continue;
            }
            if group != obj {
                found.insert(group.pack());
            }
            if seen.insert(group.pack()) {
                next.push(group.pack());
            }
        }
        frontier = next;
    }
    found
}

fn write_object(out: &mut Vec<u8>, dir: &Directory, obj: ObjectRef) {
    if !out.is_empty() {
        out.push(b',');
    }
    append(out, format_args!("{{\"@odata.type\":\"{}\",\"id\":\"{}\"", odata_type(obj.class), dir.codec.encode(obj)));
    let values = dir.attributes(obj);
    for prop in default_props(obj.class) {
        if let Some(value) = &values[usize::from(prop)] {
            append(out, format_args!(",\"{}\":", prop_name(obj.class, prop)));
            append_json(out, value);
        }
    }
    out.push(b'}');
}

fn not_found(id: &str) -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

fn expired() -> GraphError {
    bad_request(
        "Directory_ExpiredPageToken",
        "The specified page token value has expired and can no longer be included in your request.",
    )
}

async fn transitive_members(req: HttpRequest, state: web::Data<SimState>, path: web::Path<String>) -> HttpResponse {
    walk(req, state, ObjectClass::Group, path.into_inner(), true).await
}

async fn transitive_member_of(
    req: HttpRequest,
    state: web::Data<SimState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (collection, id) = path.into_inner();
    let class = match collection.as_str() {
        "users" => ObjectClass::User,
        "groups" => ObjectClass::Group,
        "devices" => ObjectClass::Device,
        other => {
            let err = GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("Resource not found for the segment '{other}'."),
            );
            return crate::routes::respond::error(&req, &err, state.clock.now());
        }
    };
    walk(req, state, class, id, false).await
}

async fn walk(
    req: HttpRequest,
    state: web::Data<SimState>,
    class: ObjectClass,
    id: String,
    down: bool,
) -> HttpResponse {
    let q = GraphQuery::parse(req.query_string());
    let small_top = q.top.as_deref().and_then(|t| t.parse::<u32>().ok()).is_some_and(|t| t < 20);
    let (endpoint, segment) = if down {
        ("groups/transitiveMembers".to_owned(), "transitiveMembers")
    } else {
        (format!("{}/transitiveMemberOf", class.graph_collection()), "transitiveMemberOf")
    };
    let cost = Cost { base: 3, has_select: q.select.is_some(), small_top };
    let graph = match begin(&req, &state, class, false, &endpoint, cost).await {
        Ok(g) => g,
        Err(response) => return response,
    };
    let result = (|| -> Result<HttpResponse, GraphError> {
        let dir = read(&graph.tenant.directory);
        let subject = dir.resolve(&id, Some(class)).map_err(|_| not_found(&id))?;
        if !is_live(&dir, subject) {
            return Err(not_found(&id));
        }
        let walk = match q.skiptoken.as_deref() {
            Some(skip) => {
                let s: WalkState = token::decode(skip).map_err(|_| expired())?;
                if s.tenant != graph.tenant.id || s.subject != subject.pack() || s.down != down {
                    return Err(expired());
                }
                s
            }
            None => WalkState {
                tenant: graph.tenant.id.clone(),
                subject: subject.pack(),
                down,
                top: parse_top(q.top.as_deref(), 100)?,
                after: None,
            },
        };
        let all = if down { members_of_group(&dir, subject) } else { groups_of_object(&dir, subject) };
        let lower = walk.after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let mut rest = all.range((lower, std::ops::Bound::Unbounded));
        let mut value = Vec::new();
        let mut served = 0usize;
        let mut last = None;
        for &packed in rest.by_ref().take(walk.top as usize) {
            write_object(&mut value, &dir, ObjectRef::unpack(packed));
            served += 1;
            last = Some(packed);
        }
        let more = rest.next().is_some();
        drop(dir);
        let collection = class.graph_collection();
        let next = more.then(|| {
            let state = WalkState { after: last, ..walk.clone() };
            format!(
                "{}/v1.0/{collection}/{id}/{segment}?$top={}&$skiptoken={}",
                graph.link_root,
                walk.top,
                token::encode(&state)
            )
        });
        let context = format!("{}/v1.0/$metadata#directoryObjects", graph.link_root);
        let body = envelope(&context, next.as_deref().map(|n| ("@odata.nextLink", n)), &value);
        Ok(graph.finish(&state, &req, body, served, &[]))
    })();
    result.unwrap_or_else(|e| graph.fail(&state, &req, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_with_a_cycle_terminates_and_skips_deleted_objects() {
        let mut dir = Directory::new("t", "t.example", 1);
        dir.push_generated(ObjectClass::User, 3).expect("users");
        dir.push_generated(ObjectClass::Group, 4).expect("groups");
        let user = |i| ObjectRef::new(ObjectClass::User, i);
        let group = |i| ObjectRef::new(ObjectClass::Group, i);
        // g0 ⊃ g1 ⊃ g2 ⊃ g0 (a cycle); g0 ⊃ u0; g2 ⊃ u1; g3 ⊃ u2, g3 ⊃ g1.
        for (g, m) in
            [(0, group(1)), (1, group(2)), (2, group(0)), (0, user(0)), (2, user(1)), (3, user(2)), (3, group(1))]
        {
            assert!(dir.set_member(group(g), m, true).expect("member"));
        }
        let packed = |objs: &[ObjectRef]| objs.iter().map(|o| o.pack()).collect::<BTreeSet<_>>();
        assert_eq!(members_of_group(&dir, group(1)), packed(&[group(0), group(2), user(0), user(1)]));
        assert_eq!(
            members_of_group(&dir, group(3)),
            packed(&[group(0), group(1), group(2), user(0), user(1), user(2)])
        );
        assert_eq!(groups_of_object(&dir, user(1)), packed(&[group(0), group(1), group(2), group(3)]));
        assert_eq!(groups_of_object(&dir, group(0)), packed(&[group(1), group(2), group(3)]));
        // A soft-deleted user is nobody's member.
        dir.delete(user(1), false).expect("soft delete");
        assert!(!members_of_group(&dir, group(1)).contains(&user(1).pack()));
    }
}
