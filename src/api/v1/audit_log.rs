//! `/audit`: every change made through the API or the CLI, newest first.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::page::{self, Problems};
use super::problem::ApiError;
use crate::api::AppState;
use crate::store::audit::{self, AuditEntry, AuditQuery};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(list));
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// 50, 100 or 1000 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// `tenant`, `credential_profile`, `token` or `held_deletions`.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `token:<name>`, `cli` or `system`.
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// The state before the change (secrets shown as "[redacted]").
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        AuditView {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            before: e.before,
            after: e.after,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditView>,
    pub next_cursor: Option<i64>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditPage), Problems))]
pub async fn list(
    _caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<AuditParams>,
) -> Result<web::Json<AuditPage>, ApiError> {
    let limit = page::page_size(query.limit)?;
    for (field, value) in [("target_type", &query.target_type), ("target_id", &query.target_id)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 200) {
            return Err(ApiError::invalid(field, format!("{field} is at most 200 characters")));
        }
    }
    let entries = audit::list(
        &state.pool,
        &AuditQuery {
            limit,
            before_id: query.cursor,
            target_type: query.target_type.clone(),
            target_id: query.target_id.clone(),
        },
    )
    .await?;
    let next_cursor = if entries.len() as i64 == limit { entries.last().map(|e| e.id) } else { None };
    Ok(web::Json(AuditPage { items: entries.into_iter().map(AuditView::from).collect(), next_cursor }))
}
