//! `/tenants`: list with last sync and permission status, create (by GUID or domain), edit what may
//! change, delete with confirmation, block, reset, lift a quarantine.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Caller;
use super::connection::{cloud_from, directory_of, CloudFields};
use super::page::{self, Problems};
use super::problem::ApiError;
use crate::api::AppState;
use crate::model::Cloud;
use crate::store::tenants::{self, FirstRound, NewTenant, TenantChanges, TenantOverview};
use crate::store::{credentials, schedule, StoreError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants", web::get().to(list))
        .route("/tenants", web::post().to(create))
        .route("/tenants/{id}", web::get().to(get))
        .route("/tenants/{id}", web::patch().to(update))
        .route("/tenants/{id}", web::delete().to(delete))
        .route("/tenants/{id}/block", web::post().to(block))
        .route("/tenants/{id}/reset", web::post().to(reset))
        .route("/tenants/{id}/quarantine", web::delete().to(lift_quarantine));
}

#[derive(Serialize, ToSchema)]
pub struct ClassRun {
    pub run_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct LastSync {
    pub started_at: Option<DateTime<Utc>>,
    /// The worst of the classes' latest runs: failed > held > warning > running > success.
    pub status: Option<String>,
    /// Keyed by class: `user`, `group`, `device`.
    pub classes: BTreeMap<String, ClassRun>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    pub id: i64,
    pub name: String,
    pub entra_tenant_id: Uuid,
    /// `global`, `us_gov`, `us_gov_dod`, `china` or `custom`.
    pub cloud: String,
    /// Only for the custom cloud.
    pub login_url: Option<String>,
    pub graph_url: Option<String>,
    pub credential_profile_id: Option<i64>,
    pub credential_profile_name: Option<String>,
    pub enabled: bool,
    pub full_scan_next_run: bool,
    pub blocked: bool,
    /// Every change a round commits is published as an event (docs/events.md).
    pub change_events: bool,
    /// `objects` or `snapshot`: what the first full round of an empty class emits while events are on.
    pub change_events_first_round: String,
    /// `unknown`, `granted`, `granted_needs_settings`, `needs_additional_permissions` or `error`.
    pub permission_status: String,
    pub permissions_checked_at: Option<DateTime<Utc>>,
    /// `granted` or `refused`: the last admin consent, with the identity platform's error.
    pub consent_state: Option<String>,
    pub consent_error: Option<String>,
    pub consented_at: Option<DateTime<Utc>>,
    pub quarantined_at: Option<DateTime<Utc>>,
    pub quarantine_reason: Option<String>,
    pub verified_domains: Vec<String>,
    pub last_sync: LastSync,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<TenantOverview> for TenantView {
    fn from(o: TenantOverview) -> Self {
        let (login_url, graph_url) = match &o.tenant.cloud {
            Cloud::Custom { login_url, graph_url } => (Some(login_url.clone()), Some(graph_url.clone())),
            _ => (None, None),
        };
        TenantView {
            id: o.tenant.id,
            name: o.tenant.name,
            entra_tenant_id: o.tenant.entra_tenant_id,
            cloud: o.tenant.cloud.name().to_owned(),
            login_url,
            graph_url,
            credential_profile_id: o.tenant.credential_profile_id,
            credential_profile_name: o.credential_profile_name,
            enabled: o.tenant.enabled,
            full_scan_next_run: o.tenant.full_scan_next_run,
            blocked: o.tenant.blocked,
            change_events: o.events.change_events,
            change_events_first_round: o.events.change_events_first_round.as_str().to_owned(),
            permission_status: o.permission_status,
            permissions_checked_at: o.permissions_checked_at,
            consent_state: o.consent_state,
            consent_error: o.consent_error,
            consented_at: o.consented_at,
            quarantined_at: o.quarantined_at,
            quarantine_reason: o.quarantine_reason,
            verified_domains: o.verified_domains,
            last_sync: LastSync {
                started_at: o.last_sync.started_at,
                status: o.last_sync.status,
                classes: o
                    .last_sync
                    .classes
                    .into_iter()
                    .map(|(class, run)| {
                        (class, ClassRun { run_id: run.run_id, started_at: run.started_at, status: run.status })
                    })
                    .collect(),
            },
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantBody {
    /// Defaults to the directory's display name in Entra.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// The directory: its tenant id (GUID) or one of its domains (`contoso.onmicrosoft.com`).
    #[schema(min_length = 1, max_length = 253)]
    pub tenant: String,
    #[serde(flatten)]
    pub cloud: CloudFields,
    pub credential_profile_id: i64,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// "Perform a full scan on next run".
    #[serde(default = "yes")]
    pub full_scan_next_run: bool,
}

fn yes() -> bool {
    true
}

/// What may change. The directory and the cloud are fixed: naming them is a 422.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub credential_profile_id: Option<i64>,
    pub enabled: Option<bool>,
    pub full_scan_next_run: Option<bool>,
    /// Publish every change as an event (off by default). Switching on emits one `snapshot` event per
    /// class that holds objects: the consumers' baseline.
    pub change_events: Option<bool>,
    /// `objects` (a `created` event per object) or `snapshot` (one event per class): what the first full
    /// round of an empty class emits.
    #[schema(pattern = "^(objects|snapshot)$")]
    pub change_events_first_round: Option<String>,
    /// Read-only: present only to answer with a clear 422.
    #[schema(read_only)]
    pub tenant: Option<serde_json::Value>,
    #[schema(read_only)]
    pub entra_tenant_id: Option<serde_json::Value>,
    #[schema(read_only)]
    pub cloud: Option<serde_json::Value>,
    #[schema(read_only)]
    pub login_url: Option<serde_json::Value>,
    #[schema(read_only)]
    pub graph_url: Option<serde_json::Value>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// The tenant's name, typed by the operator: a deletion cannot happen by accident.
    pub confirm: Option<String>,
}

pub async fn overview(state: &AppState, id: i64) -> Result<TenantView, ApiError> {
    tenants::get_overview(&state.pool, id).await?.map(TenantView::from).ok_or_else(|| no_tenant(id))
}

pub fn no_tenant(id: i64) -> ApiError {
    ApiError::not_found(format!("no tenant with id {id}"))
}

async fn profile_exists(state: &AppState, id: i64) -> Result<(), ApiError> {
    match credentials::get_summary(&state.pool, id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(
            "credential_profile_id",
            format!("no credential profile with id {id}; create one under /api/v1/credential-profiles first"),
        )),
    }
}

/// Every tenant, by name, with its last sync and permission status.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    responses((status = 200, body = Vec<TenantView>), Problems))]
pub async fn list(_caller: Caller, state: web::Data<AppState>) -> Result<web::Json<Vec<TenantView>>, ApiError> {
    Ok(web::Json(tenants::list_overview(&state.pool).await?.into_iter().map(TenantView::from).collect()))
}

/// Registers a directory. A domain is resolved to the tenant id through the cloud's OpenID discovery
/// document; without a name, the directory's display name is read from Graph.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = NewTenantBody,
    responses((status = 201, body = TenantView), Problems))]
pub async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<NewTenantBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    let body = body.into_inner();
    let cloud = cloud_from(&body.cloud, &state.custom_cloud_hosts)?;
    let name = body.name.as_deref().map(|n| page::name("name", n)).transpose()?;
    profile_exists(&state, body.credential_profile_id).await?;
    let directory = directory_of(&state, &cloud, &body.tenant, body.credential_profile_id).await?;
    let name = match name.or_else(|| directory.display_name.clone()) {
        Some(name) => name,
        None => body.tenant.trim().to_owned(),
    };
    let new = NewTenant {
        name: page::name("name", &name)?,
        entra_tenant_id: directory.entra_tenant_id,
        cloud,
        credential_profile_id: Some(body.credential_profile_id),
        enabled: body.enabled,
        full_scan_next_run: body.full_scan_next_run,
    };
    let tenant = match tenants::create(&state.pool, &new, &actor).await {
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(format!(
                "the directory {} is already registered; edit that tenant instead",
                new.entra_tenant_id
            )))
        }
        created => created?,
    };
    if !directory.verified_domains.is_empty() || directory.display_name.is_some() {
        tenants::set_directory_info(
            &state.pool,
            tenant.id,
            directory.display_name.as_deref(),
            &directory.verified_domains,
        )
        .await?;
    }
    Ok(HttpResponse::Created().json(overview(&state, tenant.id).await?))
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants",
    params(("id" = i64, Path)), responses((status = 200, body = TenantView), Problems))]
pub async fn get(
    _caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<TenantView>, ApiError> {
    Ok(web::Json(overview(&state, *id).await?))
}

/// Changes the name, credential profile, enabled, "perform a full scan on next run", or the change-event
/// switch and first-round choice.
#[utoipa::path(patch, path = "/api/v1/tenants/{id}", tag = "tenants", params(("id" = i64, Path)),
    request_body = TenantPatch, responses((status = 200, body = TenantView), Problems))]
pub async fn update(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<TenantPatch>,
) -> Result<web::Json<TenantView>, ApiError> {
    let actor = caller.admin()?;
    let body = body.into_inner();
    for (field, value) in [
        ("tenant", &body.tenant),
        ("entra_tenant_id", &body.entra_tenant_id),
        ("cloud", &body.cloud),
        ("login_url", &body.login_url),
        ("graph_url", &body.graph_url),
    ] {
        if value.is_some() {
            return Err(ApiError::read_only(
                field,
                "a tenant's directory and cloud are fixed when it is created; to sync another directory or \
                 cloud, add a new tenant",
            ));
        }
    }
    if let Some(profile) = body.credential_profile_id {
        profile_exists(&state, profile).await?;
    }
    let changes = TenantChanges {
        name: body.name.as_deref().map(|n| page::name("name", n)).transpose()?,
        credential_profile_id: body.credential_profile_id,
        enabled: body.enabled,
        full_scan_next_run: body.full_scan_next_run,
        change_events: body.change_events,
        change_events_first_round: body
            .change_events_first_round
            .as_deref()
            .map(|text| {
                FirstRound::parse(text.trim()).ok_or_else(|| {
                    ApiError::invalid("change_events_first_round", "must be \"objects\" or \"snapshot\"")
                })
            })
            .transpose()?,
    };
    match tenants::update(&state.pool, *id, &changes, &actor).await? {
        Some(_) => Ok(web::Json(overview(&state, *id).await?)),
        None => Err(no_tenant(*id)),
    }
}

/// Deletes the tenant and everything stored for it; `confirm` must be its name. Jobs still queued for it
/// are dropped by the workers.
#[utoipa::path(delete, path = "/api/v1/tenants/{id}", tag = "tenants", params(("id" = i64, Path), DeleteQuery),
    responses((status = 204, description = "deleted with its objects, memberships, cursors and history"), Problems))]
pub async fn delete(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    let tenant = tenants::get(&state.pool, *id).await?.ok_or_else(|| no_tenant(*id))?;
    if query.confirm.as_deref().map(str::trim) != Some(tenant.name.as_str()) {
        return Err(ApiError::conflict(format!(
            "deleting tenant {:?} removes all its stored objects and history; repeat the request with \
             ?confirm= set to its name",
            tenant.name
        )));
    }
    if tenants::delete(&state.pool, *id, &actor).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(no_tenant(*id))
    }
}

/// Stops syncing the tenant; its data and credentials stay.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/block", tag = "tenants", params(("id" = i64, Path)),
    responses((status = 200, body = TenantView), Problems))]
pub async fn block(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<TenantView>, ApiError> {
    let actor = caller.admin()?;
    if !tenants::set_blocked(&state.pool, *id, true, &actor).await? {
        return Err(no_tenant(*id));
    }
    Ok(web::Json(overview(&state, *id).await?))
}

/// Clears the block, the last errors, the failure counts and the quarantine.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/reset", tag = "tenants", params(("id" = i64, Path)),
    responses((status = 200, body = TenantView), Problems))]
pub async fn reset(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<TenantView>, ApiError> {
    let actor = caller.admin()?;
    if !tenants::reset(&state.pool, *id, &actor).await? {
        return Err(no_tenant(*id));
    }
    Ok(web::Json(overview(&state, *id).await?))
}

/// Lifts the quarantine only (failures in a row start again from zero).
#[utoipa::path(delete, path = "/api/v1/tenants/{id}/quarantine", tag = "tenants", params(("id" = i64, Path)),
    responses((status = 200, body = TenantView), Problems))]
pub async fn lift_quarantine(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<TenantView>, ApiError> {
    let actor = caller.admin()?;
    if !schedule::lift_quarantine(&state.pool, *id, &actor).await? {
        return Err(no_tenant(*id));
    }
    Ok(web::Json(overview(&state, *id).await?))
}
