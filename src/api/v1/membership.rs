//! Nested-group membership (docs/api.md, "Group membership"): a group's members and an object's groups,
//! direct or transitive, and "is X a member of G" in one call. The semantics (soft-deleted objects,
//! cycles) are `store::nesting`'s.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Caller;
use super::page::{self, Problems};
use super::problem::ApiError;
use super::tenants::no_tenant;
use crate::api::AppState;
use crate::model::ObjectClass;
use crate::store::nesting::{self, Related, RelatedPage, Scope, StoredObject};
use crate::store::tenants;

/// Registered before `objects::configure`: `/objects/{object_id}/member-of` must not be taken for
/// `/objects/{class}/{object_id}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants/{id}/groups/{group_id}/members", web::get().to(members))
        .route("/tenants/{id}/groups/{group_id}/members/{object_id}", web::get().to(is_member))
        .route("/tenants/{id}/objects/{object_id}/member-of", web::get().to(member_of));
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MembershipQuery {
    /// `true`: also through nested groups (recursively). Default `false`: direct only.
    #[serde(default)]
    pub transitive: bool,
    /// 50, 100 or 1000 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct RelatedRow {
    pub object_id: Uuid,
    /// `user`, `group`, `device`, or Graph's type name for other members (`directoryObject` when unknown).
    pub class: String,
    pub display_name: Option<String>,
    /// Also a direct membership (always true in a direct answer).
    pub direct: bool,
}

impl From<Related> for RelatedRow {
    fn from(r: Related) -> Self {
        RelatedRow { object_id: r.object_id, class: r.class, display_name: r.display_name, direct: r.direct }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RelatedPageView {
    /// The group (members) or the object (member-of) asked about.
    pub object_id: Uuid,
    pub transitive: bool,
    /// When the object asked about is soft-deleted: its stored memberships are kept, but it has no
    /// members and belongs to no group (as in Entra), so `items` is empty.
    pub deleted_at: Option<DateTime<Utc>>,
    pub items: Vec<RelatedRow>,
    /// Rows in the whole answer.
    pub total: i64,
    pub next_cursor: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct MembershipView {
    pub group_id: Uuid,
    pub object_id: Uuid,
    /// The object is a member of the group itself.
    pub direct: bool,
    /// The object is a member directly or through nested groups.
    pub transitive: bool,
    /// When `transitive`: a shortest chain from the group down to the object (group, nested groups…, object).
    pub path: Option<Vec<Uuid>>,
}

/// A path id that must be a GUID: 404 naming it when it is not (nothing can have that id).
fn guid(field: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("{field} {raw:?} is not a GUID, so nothing has it")))
}

async fn known_tenant(state: &AppState, id: i64) -> Result<(), ApiError> {
    tenants::get(&state.pool, id).await?.map(|_| ()).ok_or_else(|| no_tenant(id))
}

async fn stored(state: &AppState, tenant_id: i64, object_id: Uuid) -> Result<Option<StoredObject>, ApiError> {
    let client = state.pool.get().await.map_err(crate::store::StoreError::from)?;
    Ok(nesting::stored_object(&client, tenant_id, object_id).await?)
}

/// The stored group `group_id`, or the problem that says it is unknown or not a group.
async fn stored_group(state: &AppState, tenant_id: i64, group_id: Uuid) -> Result<StoredObject, ApiError> {
    match stored(state, tenant_id, group_id).await? {
        Some(o) if o.class == ObjectClass::Group => Ok(o),
        Some(o) => Err(ApiError::not_found(format!("{group_id} is a {} of tenant {tenant_id}, not a group", o.class))),
        None => Err(ApiError::not_found(format!("tenant {tenant_id} has no stored group {group_id}"))),
    }
}

fn page_view(
    object_id: Uuid,
    transitive: bool,
    deleted_at: Option<DateTime<Utc>>,
    page: RelatedPage,
    limit: i64,
) -> RelatedPageView {
    let next_cursor = if page.items.len() as i64 == limit { page.items.last().map(|r| r.object_id) } else { None };
    RelatedPageView {
        object_id,
        transitive,
        deleted_at,
        items: page.items.into_iter().map(RelatedRow::from).collect(),
        total: page.total,
        next_cursor,
    }
}

fn scope(transitive: bool) -> Scope {
    if transitive {
        Scope::Transitive
    } else {
        Scope::Direct
    }
}

/// A group's members, direct or (`transitive=true`) through nested groups, by object id.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/groups/{group_id}/members", tag = "directory",
    params(("id" = i64, Path), ("group_id" = Uuid, Path), MembershipQuery),
    responses((status = 200, body = RelatedPageView), Problems))]
pub async fn members(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, String)>,
    query: web::Query<MembershipQuery>,
) -> Result<web::Json<RelatedPageView>, ApiError> {
    let (tenant_id, raw) = path.into_inner();
    let group_id = guid("group_id", &raw)?;
    let limit = page::page_size(query.limit)?;
    known_tenant(&state, tenant_id).await?;
    let group = stored_group(&state, tenant_id, group_id).await?;
    let client = state.pool.get().await.map_err(crate::store::StoreError::from)?;
    let page =
        nesting::group_members(&client, tenant_id, group_id, scope(query.transitive), limit, query.cursor).await?;
    Ok(web::Json(page_view(group_id, query.transitive, group.deleted_at, page, limit)))
}

/// The groups an object is a member of, direct or (`transitive=true`) through nesting, by group id.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/objects/{object_id}/member-of", tag = "directory",
    params(("id" = i64, Path), ("object_id" = Uuid, Path), MembershipQuery),
    responses((status = 200, body = RelatedPageView), Problems))]
pub async fn member_of(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, String)>,
    query: web::Query<MembershipQuery>,
) -> Result<web::Json<RelatedPageView>, ApiError> {
    let (tenant_id, raw) = path.into_inner();
    let object_id = guid("object_id", &raw)?;
    let limit = page::page_size(query.limit)?;
    known_tenant(&state, tenant_id).await?;
    let Some(o) = stored(&state, tenant_id, object_id).await? else {
        return Err(ApiError::not_found(format!("tenant {tenant_id} has no stored object {object_id}")));
    };
    let client = state.pool.get().await.map_err(crate::store::StoreError::from)?;
    let page = nesting::member_of(&client, tenant_id, object_id, scope(query.transitive), limit, query.cursor).await?;
    Ok(web::Json(page_view(object_id, query.transitive, o.deleted_at, page, limit)))
}

/// Is the object a member of the group: directly, through nesting, and a shortest chain.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/groups/{group_id}/members/{object_id}", tag = "directory",
    params(("id" = i64, Path), ("group_id" = Uuid, Path), ("object_id" = Uuid, Path)),
    responses((status = 200, body = MembershipView), Problems))]
pub async fn is_member(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, String, String)>,
) -> Result<web::Json<MembershipView>, ApiError> {
    let (tenant_id, raw_group, raw_object) = path.into_inner();
    let group_id = guid("group_id", &raw_group)?;
    let object_id = guid("object_id", &raw_object)?;
    known_tenant(&state, tenant_id).await?;
    stored_group(&state, tenant_id, group_id).await?;
    let client = state.pool.get().await.map_err(crate::store::StoreError::from)?;
    let m = nesting::is_member(&client, tenant_id, group_id, object_id).await?;
    Ok(web::Json(MembershipView { group_id, object_id, direct: m.direct, transitive: m.transitive, path: m.path }))
}
