//! "Sync now": per tenant, per class or all, full or delta. Published as jobs like any other trigger
//! (trigger `api`), so whichever worker is free runs them; the API instance need not own the tenant.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Caller;
use super::page::names::{ClassName, ModeName};
use super::page::Problems;
use super::problem::ApiError;
use super::tenants::no_tenant;
use crate::api::AppState;
use crate::model::{ObjectClass, SyncMode, Trigger};
use crate::queue::SyncJob;
use crate::store::{audit, schedule, tenants, StoreError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants/{id}/sync", web::post().to(sync));
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// All three when absent.
    #[schema(min_items = 1, max_items = 3)]
    pub classes: Option<Vec<ClassName>>,
    pub mode: ModeName,
}

#[derive(Serialize, ToSchema)]
pub struct QueuedJob {
    pub job_id: Uuid,
    pub class: String,
    pub mode: String,
}

#[derive(Serialize, ToSchema)]
pub struct Queued {
    pub jobs: Vec<QueuedJob>,
}

/// Queues one sync job per class (`full`, `delta`, or `remap`: the stored objects re-mapped without
/// Graph). A tag sync has its own endpoint.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/sync", tag = "sync", params(("id" = i64, Path)),
    request_body = SyncRequest, responses((status = 202, body = Queued), Problems))]
pub async fn sync(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<SyncRequest>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    let mode = SyncMode::from(body.mode);
    if mode == SyncMode::TagSync {
        return Err(ApiError::invalid(
            "mode",
            "a tag sync covers the whole tenant, not classes; queue it with POST /api/v1/tenants/{id}/tag-sync",
        ));
    }
    let classes: Vec<ObjectClass> = match &body.classes {
        None => ObjectClass::ALL.to_vec(),
        Some(names) if names.is_empty() || names.len() > 3 => {
            return Err(ApiError::invalid("classes", "name one to three of \"user\", \"group\", \"device\""))
        }
        Some(names) => {
            let mut classes: Vec<ObjectClass> = names.iter().map(|&n| n.into()).collect();
            classes.dedup();
            classes
        }
    };
    let tenant = tenants::get(&state.pool, *id).await?.ok_or_else(|| no_tenant(*id))?;
    if !tenant.enabled || tenant.blocked {
        return Err(ApiError::conflict(format!(
            "tenant {:?} is {}; enable it (or reset it) before syncing",
            tenant.name,
            if tenant.blocked { "blocked" } else { "disabled" }
        )));
    }
    let mut jobs = Vec::new();
    for class in classes {
        let job = SyncJob::new(tenant.entra_tenant_id, class, mode, Trigger::Api);
        state.broker.publish(&job).await.map_err(|e| {
            ApiError::upstream(format!("RabbitMQ did not accept the sync job for {class}: {e}; try again"))
        })?;
        schedule::mark_enqueued(&state.pool, tenant.id, class, mode, job.job_id).await?;
        jobs.push(QueuedJob { job_id: job.job_id, class: class.as_str().to_owned(), mode: mode.as_str().to_owned() });
    }
    let client = state.pool.get().await.map_err(StoreError::from)?;
    let after =
        serde_json::json!({ "jobs": jobs.iter().map(|j| &j.job_id).collect::<Vec<_>>(), "mode": mode.as_str() });
    audit::record(&client, &actor, "tenant.sync", "tenant", &id.to_string(), None, Some(after)).await?;
    Ok(HttpResponse::Accepted().json(Queued { jobs }))
}
