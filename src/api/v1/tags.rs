//! External tag mappings, tag sync, tag values, manual tags and asset groups (docs/mappings.md, "Tag
//! mappings"). Viewers read; admins write, and every write records its audit row in its transaction
//! (`store::tags`). A tag sync is published as a `tag_sync` job (docs/queue.md).

use actix_web::{web, HttpResponse};
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
use crate::model::Trigger;
use crate::queue::{Job, TagSyncJob};
use crate::store::tags::{
    self, Assign, CreateMapping, CreateTag, DeleteMapping, DeleteTag, ObjectTag, TagKind, TagMapping, TagTarget,
    TagValue, TaggedObject,
};
use crate::store::{audit, tenants, StoreError};
use crate::tags::TagSource;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants/{id}/tag-mappings", web::get().to(list_mappings))
        .route("/tenants/{id}/tag-mappings", web::post().to(create_mapping))
        .route("/tenants/{id}/tag-mappings/{mapping_id}", web::delete().to(delete_mapping))
        .route("/tenants/{id}/tag-sync", web::post().to(sync))
        .route("/tenants/{id}/tags", web::get().to(list_tags))
        .route("/tenants/{id}/tags", web::post().to(create_tag))
        .route("/tenants/{id}/tags/{tag_id}", web::delete().to(delete_tag))
        .route("/tenants/{id}/tags/{tag_id}/objects", web::get().to(tag_objects))
        .route("/tenants/{id}/tags/{tag_id}/objects", web::post().to(assign))
        .route("/tenants/{id}/tags/{tag_id}/objects/{object_id}", web::delete().to(unassign))
        .route("/tenants/{id}/asset-groups", web::get().to(list_asset_groups))
        .route("/tenants/{id}/asset-groups", web::post().to(create_asset_group))
        .route("/tenants/{id}/asset-groups/{group_id}", web::delete().to(delete_asset_group))
        .route("/tenants/{id}/asset-groups/{group_id}/members", web::get().to(asset_group_members))
        .route("/tenants/{id}/asset-groups/{group_id}/members", web::post().to(add_asset_group_members))
        .route("/tenants/{id}/asset-groups/{group_id}/members/{object_id}", web::delete().to(remove_asset_group_member))
        .route("/tenants/{id}/objects/{class}/{object_id}/tags", web::get().to(object_tags));
}

/// The platform tag property a mapping writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetName {
    /// A custom tag key (give `key`).
    Custom,
    /// The Asset group tag: each value is an asset group (merged by name with an existing one).
    AssetGroup,
}

#[derive(Serialize, ToSchema)]
pub struct MappingView {
    pub id: i64,
    /// The third-party property: an attribute (`department`, `extensionAttribute3`,
    /// `extension_<appid>_<name>`, …) or `group_membership`.
    pub source: String,
    pub target: TargetName,
    /// The custom tag key; absent for `asset_group`.
    pub key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// When a tag sync last applied it; absent: never.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Deleted after it synced: its values go at the next tag sync.
    pub pending_deletion: bool,
    pub pending_deletion_at: Option<DateTime<Utc>>,
    /// Failed attempts to delete it (each retried at the next tag sync) and the last error.
    pub deletion_attempts: i32,
    pub deletion_error: Option<String>,
    /// Tag values it synced.
    pub values: i64,
}

impl From<TagMapping> for MappingView {
    fn from(m: TagMapping) -> Self {
        let (target, key) = target_view(&m.target);
        MappingView {
            id: m.id,
            source: m.source,
            target,
            key,
            created_at: m.created_at,
            created_by: m.created_by,
            last_synced_at: m.last_synced_at,
            pending_deletion: m.pending_deletion_at.is_some(),
            pending_deletion_at: m.pending_deletion_at,
            deletion_attempts: m.deletion_attempts,
            deletion_error: m.deletion_error,
            values: m.values,
        }
    }
}

fn target_view(target: &TagTarget) -> (TargetName, Option<String>) {
    match target {
        TagTarget::Custom(key) => (TargetName::Custom, Some(key.clone())),
        TagTarget::AssetGroup => (TargetName::AssetGroup, None),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMapping {
    /// `department`, `companyName`, `officeLocation`, `city`, `country`, `jobTitle`, `employeeType`,
    /// `extensionAttribute1`…`extensionAttribute15`, `extension_<appid>_<name>` or `group_membership`.
    #[schema(min_length = 1, max_length = 200)]
    pub source: String,
    pub target: TargetName,
    /// The custom tag key (`custom` only).
    #[schema(min_length = 1, max_length = 100)]
    pub key: Option<String>,
}

/// A tag key or value: trimmed, 1 to `max` characters, no control characters.
fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max || trimmed.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

fn mapping_target(target: TargetName, key: Option<&str>) -> Result<TagTarget, ApiError> {
    match (target, key) {
        (TargetName::Custom, Some(key)) => Ok(TagTarget::Custom(text("key", key, 100)?)),
        (TargetName::Custom, None) => Err(ApiError::invalid("key", "a custom tag target needs its \"key\"")),
        (TargetName::AssetGroup, None) => Ok(TagTarget::AssetGroup),
        (TargetName::AssetGroup, Some(_)) => {
            Err(ApiError::invalid("key", "the asset_group target has no key; leave \"key\" out"))
        }
    }
}

fn describe(source: &str, target: &TagTarget) -> String {
    match target {
        TagTarget::Custom(key) => format!("{source} to the custom tag {key:?}"),
        TagTarget::AssetGroup => format!("{source} to the Asset group tag"),
    }
}

async fn tenant_exists(state: &AppState, id: i64) -> Result<tenants::Tenant, ApiError> {
    tenants::get(&state.pool, id).await?.ok_or_else(|| no_tenant(id))
}

/// A tenant's tag mappings and how many live ones it may have.
#[derive(Serialize, ToSchema)]
pub struct MappingList {
    /// Live mappings and mappings pending deletion.
    pub items: Vec<MappingView>,
    /// Live mappings allowed per tenant (setting `tags.max_mappings`); pending deletions do not count.
    pub limit: u32,
}

/// The tenant's tag mappings, live and pending deletion, with the limit.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/tag-mappings", tag = "tags", params(("id" = i64, Path)),
    responses((status = 200, body = MappingList), Problems))]
pub async fn list_mappings(
    _caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<MappingList>, ApiError> {
    tenant_exists(&state, *id).await?;
    let items = tags::list_mappings(&state.pool, *id).await?.into_iter().map(MappingView::from).collect();
    Ok(web::Json(MappingList { items, limit: state.tags.max_mappings }))
}

/// Creates a mapping. 409 when a live mapping has the same source and the same target; 422 when the
/// tenant has `tags.max_mappings` live mappings (pending deletions do not count).
#[utoipa::path(post, path = "/api/v1/tenants/{id}/tag-mappings", tag = "tags", params(("id" = i64, Path)),
    request_body = NewMapping, responses((status = 201, body = MappingView), Problems))]
pub async fn create_mapping(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<NewMapping>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    let source = TagSource::parse(&body.source).map_err(|e| ApiError::invalid("source", e.to_string()))?.name();
    let target = mapping_target(body.target, body.key.as_deref())?;
    let max = state.tags.max_mappings;
    match tags::create_mapping(&state.pool, *id, &source, &target, max, &actor).await? {
        None => Err(no_tenant(*id)),
        Some(CreateMapping::Created(mapping)) => Ok(HttpResponse::Created().json(MappingView::from(mapping))),
        Some(CreateMapping::Duplicate(existing)) => Err(ApiError::conflict(format!(
            "tag mapping {} already maps {}; a mapping may share its source or its target with another, not both",
            existing.id,
            describe(&existing.source, &existing.target)
        ))),
        Some(CreateMapping::LimitReached { live }) => Err(StoreError::Rejected(format!(
            "tenant {id} has {live} tag mappings, the limit (setting tags.max_mappings, ENTRASYNC_TAGS_MAX_MAPPINGS, \
             is {max}); delete one first (mappings pending deletion do not count)"
        ))
        .into()),
    }
}

/// Deletes a mapping: at once (204) when it synced nothing; otherwise it is marked pending deletion
/// (202) and the values it synced — except those added manually or also synced by another mapping —
/// are deleted at the next tag sync.
#[utoipa::path(delete, path = "/api/v1/tenants/{id}/tag-mappings/{mapping_id}", tag = "tags",
    params(("id" = i64, Path), ("mapping_id" = i64, Path)),
    responses((status = 202, body = MappingView, description = "pending deletion until the next tag sync"),
              (status = 204, description = "deleted"), Problems))]
pub async fn delete_mapping(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    let (tenant_id, mapping_id) = path.into_inner();
    tenant_exists(&state, tenant_id).await?;
    let no_mapping = || ApiError::not_found(format!("tenant {tenant_id} has no tag mapping {mapping_id}"));
    match tags::delete_mapping(&state.pool, tenant_id, mapping_id, &actor).await?.ok_or_else(no_mapping)? {
        DeleteMapping::Deleted => Ok(HttpResponse::NoContent().finish()),
        DeleteMapping::Pending | DeleteMapping::AlreadyPending => {
            let mapping = tags::get_mapping(&state.pool, tenant_id, mapping_id).await?.ok_or_else(no_mapping)?;
            Ok(HttpResponse::Accepted().json(MappingView::from(mapping)))
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct QueuedTagSync {
    pub job_id: Uuid,
}

/// Queues a tag sync of the tenant now (a `tag_sync` job, trigger `api`); its run appears in the history.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/tag-sync", tag = "tags", params(("id" = i64, Path)),
    responses((status = 202, body = QueuedTagSync), Problems))]
pub async fn sync(caller: Caller, state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    let tenant = tenant_exists(&state, *id).await?;
    if !tenant.enabled || tenant.blocked {
        return Err(ApiError::conflict(format!(
            "tenant {:?} is {}; enable it (or reset it) before syncing its tags",
            tenant.name,
            if tenant.blocked { "blocked" } else { "disabled" }
        )));
    }
    let job = TagSyncJob::new(tenant.entra_tenant_id, Trigger::Api);
    let job_id = job.job_id;
    state
        .broker
        .publish_job(&Job::TagSync(job))
        .await
        .map_err(|e| ApiError::upstream(format!("RabbitMQ did not accept the tag sync job: {e}; try again")))?;
    let client = state.pool.get().await.map_err(StoreError::from)?;
    let after = serde_json::json!({ "job": job_id });
    audit::record(&client, &actor, "tenant.tag_sync", "tenant", &id.to_string(), None, Some(after)).await?;
    Ok(HttpResponse::Accepted().json(QueuedTagSync { job_id }))
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Manual,
    Synced,
    ManualAndSynced,
}

fn origin(manual: bool, mappings: &[i64]) -> Origin {
    match (manual, mappings.is_empty()) {
        (true, true) => Origin::Manual,
        (true, false) => Origin::ManualAndSynced,
        (false, _) => Origin::Synced,
    }
}

#[derive(Serialize, ToSchema)]
pub struct TagView {
    pub id: i64,
    pub kind: TargetName,
    /// The custom tag key; absent for asset groups.
    pub key: Option<String>,
    pub value: String,
    pub origin: Origin,
    /// Mappings that synced it.
    pub mappings: Vec<i64>,
    /// Objects carrying it.
    pub objects: i64,
    pub created_at: DateTime<Utc>,
}

impl From<TagValue> for TagView {
    fn from(t: TagValue) -> Self {
        let (kind, key) = target_view(&t.target);
        TagView {
            id: t.id,
            kind,
            key,
            origin: origin(t.manual, &t.mappings),
            value: t.value,
            mappings: t.mappings,
            objects: t.objects,
            created_at: t.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TagPage {
    pub items: Vec<TagView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TagQuery {
    /// `custom` or `asset_group`; both when absent.
    pub kind: Option<TargetName>,
    /// 50, 100 or 1000 (default 50).
    pub limit: Option<i64>,
    /// `next_after` of the previous page.
    pub after: Option<i64>,
}

fn kind_of(name: TargetName) -> TagKind {
    match name {
        TargetName::Custom => TagKind::Custom,
        TargetName::AssetGroup => TagKind::AssetGroup,
    }
}

/// Tag values (custom tags and asset groups) with their origin and object counts, by id.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/tags", tag = "tags", params(("id" = i64, Path), TagQuery),
    responses((status = 200, body = TagPage), Problems))]
pub async fn list_tags(
    _caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<TagQuery>,
) -> Result<web::Json<TagPage>, ApiError> {
    tenant_exists(&state, *id).await?;
    let limit = page::page_size(query.limit)?;
    let items = tags::list_tags(&state.pool, *id, query.kind.map(kind_of), limit, query.after).await?;
    let next_after = (items.len() as i64 == limit).then(|| items.last().map(|t| t.id)).flatten();
    Ok(web::Json(TagPage { items: items.into_iter().map(TagView::from).collect(), next_after }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTag {
    #[schema(min_length = 1, max_length = 100)]
    pub key: String,
    #[schema(min_length = 1, max_length = 256)]
    pub value: String,
}

fn created(outcome: CreateTag, what: &str) -> Result<HttpResponse, ApiError> {
    match outcome {
        CreateTag::Created(tag) => Ok(HttpResponse::Created().json(TagView::from(tag))),
        CreateTag::Adopted(tag) => Ok(HttpResponse::Ok().json(TagView::from(tag))),
        CreateTag::Exists(tag) => Err(ApiError::conflict(format!("{what} {:?} exists (id {})", tag.value, tag.id))),
    }
}

/// Creates a manual tag value (kept whatever the mappings do). 200 when a synced value with this key
/// and value existed: it is now manual too.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/tags", tag = "tags", params(("id" = i64, Path)),
    request_body = NewTag, responses((status = 201, body = TagView), (status = 200, body = TagView), Problems))]
pub async fn create_tag(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<NewTag>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    let target = TagTarget::Custom(text("key", &body.key, 100)?);
    let value = text("value", &body.value, 256)?;
    let outcome = tags::create_tag(&state.pool, *id, &target, &value, &actor).await?.ok_or_else(|| no_tenant(*id))?;
    created(outcome, "the tag value")
}

async fn delete_value(
    state: &AppState,
    caller: &Caller,
    tenant_id: i64,
    id: i64,
    kind: TagKind,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    tenant_exists(state, tenant_id).await?;
    match tags::delete_tag(&state.pool, tenant_id, id, kind, &actor).await? {
        None => Err(ApiError::not_found(format!("tenant {tenant_id} has no such {} {id}", kind_name(kind)))),
        Some(DeleteTag::Deleted) => Ok(HttpResponse::NoContent().finish()),
        Some(DeleteTag::SyncedBy(mappings)) => Err(ApiError::conflict(format!(
            "{} {id} is synced by tag mapping(s) {mappings:?} and would come back; delete those mappings instead",
            kind_name(kind)
        ))),
    }
}

fn kind_name(kind: TagKind) -> &'static str {
    match kind {
        TagKind::Custom => "tag value",
        TagKind::AssetGroup => "asset group",
    }
}

/// Deletes a tag value and its assignments. 409 while a live mapping syncs it.
#[utoipa::path(delete, path = "/api/v1/tenants/{id}/tags/{tag_id}", tag = "tags",
    params(("id" = i64, Path), ("tag_id" = i64, Path)), responses((status = 204, description = "deleted"), Problems))]
pub async fn delete_tag(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_id, id) = path.into_inner();
    delete_value(&state, &caller, tenant_id, id, TagKind::Custom).await
}

#[derive(Serialize, ToSchema)]
pub struct TaggedObjectView {
    pub object_id: Uuid,
    pub class: String,
    pub display_name: Option<String>,
    /// Assigned by an operator.
    pub manual: bool,
    /// Mappings that assigned it.
    pub mappings: Vec<i64>,
}

impl From<TaggedObject> for TaggedObjectView {
    fn from(o: TaggedObject) -> Self {
        TaggedObjectView {
            object_id: o.object_id,
            class: o.class,
            display_name: o.display_name,
            manual: o.manual,
            mappings: o.mappings,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TaggedObjectPage {
    pub items: Vec<TaggedObjectView>,
    pub next_cursor: Option<Uuid>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ObjectsQuery {
    /// 50, 100 or 1000 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

async fn members(
    state: &AppState,
    tenant_id: i64,
    id: i64,
    kind: TagKind,
    query: &ObjectsQuery,
) -> Result<web::Json<TaggedObjectPage>, ApiError> {
    tenant_exists(state, tenant_id).await?;
    let limit = page::page_size(query.limit)?;
    match tags::get_tag(&state.pool, tenant_id, id).await? {
        Some(tag) if kind_of(target_view(&tag.target).0) == kind => {}
        _ => return Err(ApiError::not_found(format!("tenant {tenant_id} has no such {} {id}", kind_name(kind)))),
    }
    let items = tags::tag_objects(&state.pool, tenant_id, id, limit, query.cursor).await?;
    let next_cursor = (items.len() as i64 == limit).then(|| items.last().map(|o| o.object_id)).flatten();
    Ok(web::Json(TaggedObjectPage { items: items.into_iter().map(TaggedObjectView::from).collect(), next_cursor }))
}

/// Objects carrying a tag value, and why (manual, mappings).
#[utoipa::path(get, path = "/api/v1/tenants/{id}/tags/{tag_id}/objects", tag = "tags",
    params(("id" = i64, Path), ("tag_id" = i64, Path), ObjectsQuery),
    responses((status = 200, body = TaggedObjectPage), Problems))]
pub async fn tag_objects(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, i64)>,
    query: web::Query<ObjectsQuery>,
) -> Result<web::Json<TaggedObjectPage>, ApiError> {
    let (tenant_id, id) = path.into_inner();
    members(&state, tenant_id, id, TagKind::Custom, &query).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectIds {
    /// Stored objects of the tenant (any class).
    #[schema(min_items = 1, max_items = 1000)]
    pub object_ids: Vec<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct Assigned {
    /// Assignments written (objects that already had it manually are not counted).
    pub assigned: u64,
}

async fn assign_objects(
    state: &AppState,
    caller: &Caller,
    tenant_id: i64,
    id: i64,
    kind: TagKind,
    body: &ObjectIds,
) -> Result<web::Json<Assigned>, ApiError> {
    let actor = caller.admin()?;
    if body.object_ids.is_empty() || body.object_ids.len() > 1000 {
        return Err(ApiError::invalid("object_ids", "give 1 to 1000 object ids"));
    }
    tenant_exists(state, tenant_id).await?;
    match tags::assign(&state.pool, tenant_id, id, kind, &body.object_ids, &actor).await? {
        None => Err(ApiError::not_found(format!("tenant {tenant_id} has no such {} {id}", kind_name(kind)))),
        Some(Assign::Assigned(assigned)) => Ok(web::Json(Assigned { assigned })),
        Some(Assign::Unknown(ids)) => Err(ApiError::invalid(
            "object_ids",
            format!("not stored for tenant {tenant_id} (or deleted): {ids:?}; nothing was assigned"),
        )),
    }
}

/// Assigns a tag value to objects manually (kept whatever the mappings do).
#[utoipa::path(post, path = "/api/v1/tenants/{id}/tags/{tag_id}/objects", tag = "tags",
    params(("id" = i64, Path), ("tag_id" = i64, Path)), request_body = ObjectIds,
    responses((status = 200, body = Assigned), Problems))]
pub async fn assign(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, i64)>,
    body: web::Json<ObjectIds>,
) -> Result<web::Json<Assigned>, ApiError> {
    let (tenant_id, id) = path.into_inner();
    assign_objects(&state, &caller, tenant_id, id, TagKind::Custom, &body).await
}

async fn unassign_object(
    state: &AppState,
    caller: &Caller,
    tenant_id: i64,
    id: i64,
    kind: TagKind,
    object_id: Uuid,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    tenant_exists(state, tenant_id).await?;
    match tags::unassign(&state.pool, tenant_id, id, kind, object_id, &actor).await? {
        None => Err(ApiError::not_found(format!("tenant {tenant_id} has no such {} {id}", kind_name(kind)))),
        Some(true) => Ok(HttpResponse::NoContent().finish()),
        Some(false) => Err(ApiError::not_found(format!(
            "object {object_id} has no manual assignment of {} {id} (a mapping's assignment goes with the mapping)",
            kind_name(kind)
        ))),
    }
}

/// Removes a manual assignment.
#[utoipa::path(delete, path = "/api/v1/tenants/{id}/tags/{tag_id}/objects/{object_id}", tag = "tags",
    params(("id" = i64, Path), ("tag_id" = i64, Path), ("object_id" = Uuid, Path)),
    responses((status = 204, description = "removed"), Problems))]
pub async fn unassign(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, i64, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_id, id, object_id) = path.into_inner();
    unassign_object(&state, &caller, tenant_id, id, TagKind::Custom, object_id).await
}

#[derive(Serialize, ToSchema)]
pub struct AssetGroupView {
    pub id: i64,
    pub name: String,
    pub origin: Origin,
    /// Mappings that synced it (a synced value with its name joined it).
    pub mappings: Vec<i64>,
    pub members: i64,
    pub created_at: DateTime<Utc>,
}

impl From<TagValue> for AssetGroupView {
    fn from(t: TagValue) -> Self {
        AssetGroupView {
            id: t.id,
            origin: origin(t.manual, &t.mappings),
            name: t.value,
            mappings: t.mappings,
            members: t.objects,
            created_at: t.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AssetGroupPage {
    pub items: Vec<AssetGroupView>,
    pub next_after: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GroupQuery {
    /// 50, 100 or 1000 (default 50).
    pub limit: Option<i64>,
    /// `next_after` of the previous page.
    pub after: Option<i64>,
}

/// Asset groups with their member counts, by id.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/asset-groups", tag = "tags", params(("id" = i64, Path), GroupQuery),
    responses((status = 200, body = AssetGroupPage), Problems))]
pub async fn list_asset_groups(
    _caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<GroupQuery>,
) -> Result<web::Json<AssetGroupPage>, ApiError> {
    tenant_exists(&state, *id).await?;
    let limit = page::page_size(query.limit)?;
    let items = tags::list_tags(&state.pool, *id, Some(TagKind::AssetGroup), limit, query.after).await?;
    let next_after = (items.len() as i64 == limit).then(|| items.last().map(|t| t.id)).flatten();
    Ok(web::Json(AssetGroupPage { items: items.into_iter().map(AssetGroupView::from).collect(), next_after }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAssetGroup {
    #[schema(min_length = 1, max_length = 256)]
    pub name: String,
}

/// Creates an asset group (names compare case-insensitively). 200 when a synced group of that name
/// existed: it is now manual too.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/asset-groups", tag = "tags", params(("id" = i64, Path)),
    request_body = NewAssetGroup,
    responses((status = 201, body = AssetGroupView), (status = 200, body = AssetGroupView), Problems))]
pub async fn create_asset_group(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<NewAssetGroup>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    let name = text("name", &body.name, 256)?;
    let outcome = tags::create_tag(&state.pool, *id, &TagTarget::AssetGroup, &name, &actor)
        .await?
        .ok_or_else(|| no_tenant(*id))?;
    match outcome {
        CreateTag::Created(group) => Ok(HttpResponse::Created().json(AssetGroupView::from(group))),
        CreateTag::Adopted(group) => Ok(HttpResponse::Ok().json(AssetGroupView::from(group))),
        CreateTag::Exists(group) => {
            Err(ApiError::conflict(format!("asset group {:?} exists (id {})", group.value, group.id)))
        }
    }
}

/// Deletes an asset group and its memberships. 409 while a live mapping syncs it.
#[utoipa::path(delete, path = "/api/v1/tenants/{id}/asset-groups/{group_id}", tag = "tags",
    params(("id" = i64, Path), ("group_id" = i64, Path)), responses((status = 204, description = "deleted"), Problems))]
pub async fn delete_asset_group(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_id, id) = path.into_inner();
    delete_value(&state, &caller, tenant_id, id, TagKind::AssetGroup).await
}

/// An asset group's members, and why each is one (manual, mappings).
#[utoipa::path(get, path = "/api/v1/tenants/{id}/asset-groups/{group_id}/members", tag = "tags",
    params(("id" = i64, Path), ("group_id" = i64, Path), ObjectsQuery),
    responses((status = 200, body = TaggedObjectPage), Problems))]
pub async fn asset_group_members(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, i64)>,
    query: web::Query<ObjectsQuery>,
) -> Result<web::Json<TaggedObjectPage>, ApiError> {
    let (tenant_id, id) = path.into_inner();
    members(&state, tenant_id, id, TagKind::AssetGroup, &query).await
}

/// Adds objects to an asset group manually.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/asset-groups/{group_id}/members", tag = "tags",
    params(("id" = i64, Path), ("group_id" = i64, Path)), request_body = ObjectIds,
    responses((status = 200, body = Assigned), Problems))]
pub async fn add_asset_group_members(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, i64)>,
    body: web::Json<ObjectIds>,
) -> Result<web::Json<Assigned>, ApiError> {
    let (tenant_id, id) = path.into_inner();
    assign_objects(&state, &caller, tenant_id, id, TagKind::AssetGroup, &body).await
}

/// Removes an object's manual membership of an asset group.
#[utoipa::path(delete, path = "/api/v1/tenants/{id}/asset-groups/{group_id}/members/{object_id}", tag = "tags",
    params(("id" = i64, Path), ("group_id" = i64, Path), ("object_id" = Uuid, Path)),
    responses((status = 204, description = "removed"), Problems))]
pub async fn remove_asset_group_member(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, i64, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant_id, id, object_id) = path.into_inner();
    unassign_object(&state, &caller, tenant_id, id, TagKind::AssetGroup, object_id).await
}

#[derive(Serialize, ToSchema)]
pub struct ObjectTagView {
    pub tag_id: i64,
    pub kind: TargetName,
    pub key: Option<String>,
    /// The value, or the asset group's name.
    pub value: String,
    /// Assigned by an operator.
    pub manual: bool,
    /// Mappings that assigned it.
    pub mappings: Vec<i64>,
}

impl From<ObjectTag> for ObjectTagView {
    fn from(t: ObjectTag) -> Self {
        let (kind, key) = target_view(&t.target);
        ObjectTagView { tag_id: t.tag_id, kind, key, value: t.value, manual: t.manual, mappings: t.mappings }
    }
}

/// The tags and asset groups of one stored object.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/objects/{class}/{object_id}/tags", tag = "tags",
    params(("id" = i64, Path), ("class" = ClassName, Path), ("object_id" = Uuid, Path)),
    responses((status = 200, body = Vec<ObjectTagView>), Problems))]
pub async fn object_tags(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, ClassName, Uuid)>,
) -> Result<web::Json<Vec<ObjectTagView>>, ApiError> {
    let (tenant_id, _class, object_id) = path.into_inner();
    tenant_exists(&state, tenant_id).await?;
    Ok(web::Json(
        tags::object_tags(&state.pool, tenant_id, object_id).await?.into_iter().map(ObjectTagView::from).collect(),
    ))
}
