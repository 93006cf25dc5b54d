//! A tenant's directory copy: browse and search users, groups and devices; one object with its
//! attributes, mapped attributes and memberships.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Caller;
use super::page::names::ClassName;
use super::page::{self, Problems};
use super::problem::ApiError;
use super::tenants::no_tenant;
use crate::api::AppState;
use crate::model::ObjectClass;
use crate::store::directory::{self, ObjectDetail, ObjectSummary};
use crate::store::tenants;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants/{id}/objects", web::get().to(list))
        .route("/tenants/{id}/objects/{class}/{object_id}", web::get().to(get));
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ObjectQuery {
    /// Default `user`.
    pub class: Option<ClassName>,
    /// Search display name, user principal name or mail (case-insensitive).
    pub q: Option<String>,
    /// Include soft-deleted objects.
    #[serde(default)]
    pub deleted: bool,
    /// 50, 100 or 1000 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct ObjectRow {
    pub object_id: Uuid,
    pub class: String,
    pub display_name: Option<String>,
    /// userPrincipalName, mail or deviceId.
    pub principal: Option<String>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl From<ObjectSummary> for ObjectRow {
    fn from(o: ObjectSummary) -> Self {
        ObjectRow {
            object_id: o.object_id,
            class: o.class.as_str().to_owned(),
            display_name: o.display_name,
            principal: o.principal,
            deleted_at: o.deleted_at,
            updated_at: o.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ObjectPage {
    pub items: Vec<ObjectRow>,
    pub next_cursor: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct Member {
    pub object_id: Uuid,
    pub class: String,
}

#[derive(Serialize, ToSchema)]
pub struct ObjectView {
    pub object_id: Uuid,
    pub class: String,
    /// The attributes as Graph reported them.
    #[schema(value_type = Object)]
    pub attrs: serde_json::Value,
    /// The mapped attributes (attribute mappings), when configured.
    #[schema(value_type = Option<Object>)]
    pub mapped: Option<serde_json::Value>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub delete_reason: Option<String>,
    /// Groups this object is a direct member of (at most 1,000).
    pub member_of: Vec<Uuid>,
    /// For a group: its direct members' count and the first 100.
    pub members_count: Option<i64>,
    pub members_first: Vec<Member>,
}

impl From<ObjectDetail> for ObjectView {
    fn from(o: ObjectDetail) -> Self {
        ObjectView {
            object_id: o.object_id,
            class: o.class.as_str().to_owned(),
            attrs: o.attrs,
            mapped: o.mapped,
            deleted_at: o.deleted_at,
            delete_reason: o.delete_reason,
            member_of: o.member_of,
            members_count: o.members_count,
            members_first: o.members_first.into_iter().map(|(object_id, class)| Member { object_id, class }).collect(),
        }
    }
}

fn class(text: &str) -> Result<ObjectClass, ApiError> {
    text.parse().map_err(|_| ApiError::invalid("class", "class is \"user\", \"group\" or \"device\""))
}

async fn known_tenant(state: &AppState, id: i64) -> Result<(), ApiError> {
    tenants::get(&state.pool, id).await?.map(|_| ()).ok_or_else(|| no_tenant(id))
}

/// A page of a tenant's stored objects of one class, by object id.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/objects", tag = "directory", params(("id" = i64, Path), ObjectQuery),
    responses((status = 200, body = ObjectPage), Problems))]
pub async fn list(
    _caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<ObjectQuery>,
) -> Result<web::Json<ObjectPage>, ApiError> {
    let limit = page::page_size(query.limit)?;
    let class = query.class.map_or(ObjectClass::User, ObjectClass::from);
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::invalid("q", "the search is at most 200 characters"));
    }
    known_tenant(&state, *id).await?;
    let items = directory::list_objects(&state.pool, *id, class, q, query.deleted, limit, query.cursor).await?;
    let next_cursor = if items.len() as i64 == limit { items.last().map(|o| o.object_id) } else { None };
    Ok(web::Json(ObjectPage { items: items.into_iter().map(ObjectRow::from).collect(), next_cursor }))
}

/// One stored object.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/objects/{class}/{object_id}", tag = "directory",
    params(("id" = i64, Path), ("class" = String, Path), ("object_id" = Uuid, Path)),
    responses((status = 200, body = ObjectView), Problems))]
pub async fn get(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, String, Uuid)>,
) -> Result<web::Json<ObjectView>, ApiError> {
    let (id, class_name, object_id) = path.into_inner();
    let class = class(&class_name)?;
    known_tenant(&state, id).await?;
    directory::get_object(&state.pool, id, class, object_id)
        .await?
        .map(|o| web::Json(ObjectView::from(o)))
        .ok_or_else(|| ApiError::not_found(format!("tenant {id} has no stored {class_name} {object_id}")))
}
