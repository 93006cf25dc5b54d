//! The sync history: `/runs` (pages, newest first, by keyset) and `/runs.csv` (the same filtered view,
//! every row, streamed with flat memory).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Caller;
use super::page::names::{ClassName, ModeName, StatusName};
use super::page::{self, Problems};
use super::problem::ApiError;
use crate::api::AppState;
use crate::model::{ObjectClass, SyncMode};
use crate::store::history::{self, HistoryCursor, HistoryFilter, HistoryRow};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/runs", web::get().to(list)).route("/runs.csv", web::get().to(csv));
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub tenant_id: Option<i64>,
    pub class: Option<ClassName>,
    pub status: Option<StatusName>,
    pub mode: Option<ModeName>,
    /// Runs started at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Runs started before this time.
    pub to: Option<DateTime<Utc>>,
    /// Search: tenant name, status or error text (case-insensitive).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// 50, 100 or 1000 (default 50). Not for the CSV export, which has every row.
    #[param(minimum = 50, maximum = 1000)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RunView {
    pub id: Uuid,
    pub tenant_id: i64,
    pub tenant_name: String,
    pub class: String,
    /// `full` or `delta`.
    pub mode: String,
    pub trigger: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub total: i64,
    pub changed: i64,
    pub deleted: i64,
    pub filtered: i64,
    pub reason: Option<String>,
    pub error: Option<String>,
}

impl From<HistoryRow> for RunView {
    fn from(r: HistoryRow) -> Self {
        RunView {
            id: r.id,
            tenant_id: r.tenant_id,
            tenant_name: r.tenant_name,
            class: r.class,
            mode: r.mode,
            trigger: r.trigger,
            status: r.status,
            started_at: r.started_at,
            finished_at: r.finished_at,
            total: r.total,
            changed: r.changed,
            deleted: r.deleted,
            filtered: r.filtered,
            reason: r.reason,
            error: r.error,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<RunView>,
    /// Runs matching the filters.
    pub total: i64,
    /// False when `total` is a lower bound (a search or time range over very many runs).
    pub total_exact: bool,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn filter(query: &HistoryQuery) -> Result<HistoryFilter, ApiError> {
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::invalid("q", "the search is at most 200 characters"));
    }
    if let (Some(from), Some(to)) = (query.from, query.to) {
        if from > to {
            return Err(ApiError::invalid("from", "from is after to"));
        }
    }
    Ok(HistoryFilter {
        tenant_id: query.tenant_id,
        class: query.class.map(ObjectClass::from),
        status: query.status.map(|s| s.as_str().to_owned()),
        mode: query.mode.map(SyncMode::from),
        from: query.from,
        to: query.to,
        q: q.map(str::to_owned),
    })
}

/// One page of the history, newest first, with the total count.
#[utoipa::path(get, path = "/api/v1/runs", tag = "history", params(HistoryQuery),
    responses((status = 200, body = RunPage), Problems))]
pub async fn list(
    _caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<HistoryQuery>,
) -> Result<web::Json<RunPage>, ApiError> {
    let limit = page::page_size(query.limit)?;
    let filter = filter(&query)?;
    let after = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => Some(HistoryCursor::decode(text).ok_or_else(|| {
            ApiError::invalid("cursor", "the cursor is not one this API gave out; start again from the first page")
        })?),
    };
    let page = history::page(&state.pool, &filter, limit, after.as_ref()).await?;
    Ok(web::Json(RunPage {
        items: page.items.into_iter().map(RunView::from).collect(),
        total: page.total,
        total_exact: page.total_exact,
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// The CSV columns, as operators know them from the history table.
const CSV_HEADER: [&str; 13] = [
    "run_id", "tenant", "class", "type", "trigger", "status", "start", "end", "total", "changed", "deleted",
    "filtered", "error",
];

fn csv_line(fields: &[String]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::with_capacity(256));
    writer.write_record(fields)?;
    writer.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

fn csv_fields(r: &HistoryRow) -> Vec<String> {
    let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    vec![
        r.id.to_string(),
        r.tenant_name.clone(),
        r.class.clone(),
        r.mode.clone(),
        r.trigger.clone(),
        r.status.clone(),
        time(&r.started_at),
        r.finished_at.as_ref().map(time).unwrap_or_default(),
        r.total.to_string(),
        r.changed.to_string(),
        r.deleted.to_string(),
        r.filtered.to_string(),
        r.error.clone().unwrap_or_default(),
    ]
}

/// The filtered history as RFC 4180 CSV, every row, newest first.
#[utoipa::path(get, path = "/api/v1/runs.csv", tag = "history", params(HistoryQuery),
    responses((status = 200, content_type = "text/csv", body = String, description = "RFC 4180, header row first"), Problems))]
pub async fn csv(
    _caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    if query.limit.is_some() || query.cursor.is_some() {
        return Err(ApiError::invalid("limit", "the CSV export has every row: leave out limit and cursor"));
    }
    let filter = filter(&query)?;
    let header_line = csv_line(&CSV_HEADER.map(str::to_owned)).map_err(|e| ApiError::internal(&e))?;
    let rows = history::stream(state.pool.clone(), filter).map(|row| {
        let row = row.map_err(|e| {
            tracing::warn!(error = %e, "history CSV export stopped");
            std::io::Error::other(e.to_string())
        })?;
        csv_line(&csv_fields(&row)).map(web::Bytes::from).map_err(std::io::Error::other)
    });
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(web::Bytes::from(header_line)) }).chain(rows);
    let name = format!("entrasync-history-{}.csv", Utc::now().format("%Y%m%d-%H%M%S"));
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8; header=present")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")))
        .streaming(body))
}
