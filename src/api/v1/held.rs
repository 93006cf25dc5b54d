//! Held deletions: what the deletion guard stopped, per tenant and run; allow applies exactly those
//! rows, reject discards them (`sync::allow_held_deletions` / `reject_held_deletions`).

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Caller;
use super::page::Problems;
use super::problem::ApiError;
use super::tenants::no_tenant;
use crate::api::AppState;
use crate::store::held_deletions::{self, HeldRun};
use crate::store::{audit, tenants, StoreError};
use crate::sync::{self, SyncError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants/{id}/held-deletions", web::get().to(list))
        .route("/tenants/{id}/held-deletions/{run_id}/allow", web::post().to(allow))
        .route("/tenants/{id}/held-deletions/{run_id}/reject", web::post().to(reject));
}

#[derive(Serialize, ToSchema)]
pub struct HeldView {
    pub run_id: Uuid,
    pub class: String,
    /// Deletions this run holds.
    pub count: i64,
    pub held_at: DateTime<Utc>,
    /// The first 20 object ids.
    pub sample: Vec<Uuid>,
}

impl From<HeldRun> for HeldView {
    fn from(h: HeldRun) -> Self {
        HeldView {
            run_id: h.run_id,
            class: h.class.as_str().to_owned(),
            count: h.count,
            held_at: h.held_at,
            sample: h.sample,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Decision {
    /// Held rows the decision resolved.
    pub resolved: u64,
    /// Objects deleted (allow only).
    pub deleted: u64,
}

async fn held_run(state: &AppState, tenant_id: i64, run_id: Uuid) -> Result<HeldRun, ApiError> {
    tenants::get(&state.pool, tenant_id).await?.ok_or_else(|| no_tenant(tenant_id))?;
    held_deletions::summary(&state.pool, tenant_id)
        .await?
        .into_iter()
        .find(|h| h.run_id == run_id)
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} of tenant {tenant_id} holds no deletions now")))
}

fn sync_error(e: SyncError) -> ApiError {
    match e {
        SyncError::NothingHeld { run_id, .. } => {
            ApiError::conflict(format!("run {run_id} holds nothing any more (already decided, or superseded)"))
        }
        SyncError::Store(e) => e.into(),
        other => ApiError::internal(&other),
    }
}

async fn audited(
    state: &AppState,
    caller: &Caller,
    action: &str,
    held: &HeldRun,
    decision: &Decision,
) -> Result<(), ApiError> {
    let client = state.pool.get().await.map_err(StoreError::from)?;
    let before = serde_json::json!({ "run_id": held.run_id, "class": held.class.as_str(), "held": held.count });
    let after = serde_json::json!({ "resolved": decision.resolved, "deleted": decision.deleted });
    audit::record(
        &client,
        &caller.actor(),
        action,
        "held_deletions",
        &held.run_id.to_string(),
        Some(before),
        Some(after),
    )
    .await?;
    Ok(())
}

/// Runs with deletions held for the tenant, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/held-deletions", tag = "held deletions", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<HeldView>), Problems))]
pub async fn list(
    _caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<Vec<HeldView>>, ApiError> {
    tenants::get(&state.pool, *id).await?.ok_or_else(|| no_tenant(*id))?;
    Ok(web::Json(held_deletions::summary(&state.pool, *id).await?.into_iter().map(HeldView::from).collect()))
}

/// Allow or reject: the operator's decision on one run's holds.
#[derive(Clone, Copy)]
enum Verdict {
    Allow,
    Reject,
}

async fn decide(
    caller: Caller,
    state: &AppState,
    path: web::Path<(i64, Uuid)>,
    verdict: Verdict,
) -> Result<web::Json<Decision>, ApiError> {
    caller.admin()?;
    let (tenant_id, run_id) = path.into_inner();
    let held = held_run(state, tenant_id, run_id).await?;
    let operator = caller.actor().name;
    let (resolution, action) = match verdict {
        Verdict::Allow => (
            sync::allow_held_deletions(&state.pool, tenant_id, held.class, run_id, &operator).await,
            "held_deletions.allow",
        ),
        Verdict::Reject => (
            sync::reject_held_deletions(&state.pool, tenant_id, held.class, run_id, &operator).await,
            "held_deletions.reject",
        ),
    };
    let r = resolution.map_err(sync_error)?;
    let decision = Decision { resolved: r.resolved, deleted: r.deleted };
    audited(state, &caller, action, &held, &decision).await?;
    Ok(web::Json(decision))
}

/// Applies exactly the deletions the run held.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/held-deletions/{run_id}/allow", tag = "held deletions",
    params(("id" = i64, Path), ("run_id" = Uuid, Path)), responses((status = 200, body = Decision), Problems))]
pub async fn allow(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, Uuid)>,
) -> Result<web::Json<Decision>, ApiError> {
    decide(caller, &state, path, Verdict::Allow).await
}

/// Discards the deletions the run held; nothing is deleted.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/held-deletions/{run_id}/reject", tag = "held deletions",
    params(("id" = i64, Path), ("run_id" = Uuid, Path)), responses((status = 200, body = Decision), Problems))]
pub async fn reject(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, Uuid)>,
) -> Result<web::Json<Decision>, ApiError> {
    decide(caller, &state, path, Verdict::Reject).await
}
