//! The sync history view: filtered pages of `sync_runs`, newest first, by keyset on (started_at, id),
//! with a total; and the same view streamed for the CSV export.
//!
//! Why it stays fast at a million runs without statistics:
//! - each page reads an index in page order and stops after `limit` rows: `sync_runs_by_tenant`,
//!   `sync_runs_by_tenant_class`, `sync_runs_by_status` or `sync_runs_by_start`, chosen by the filter;
//! - the total of a filter without time range or search is a sum over `sync_run_counts` (kept exact by
//!   triggers); with a time range or search it is counted up to [`COUNT_CAP`] runs, and beyond that
//!   reported as a lower bound (`total_exact = false`);
//! - the search (`q`, case-insensitive substring) is a union of three ordered branches: runs of the
//!   tenants whose name matches (the tenant list is searched first), runs whose status is `q`, and runs
//!   whose error text matches (read through the partial index of runs that have an error).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{Pool, StoreError};
use crate::model::{ObjectClass, SyncMode};

/// Counting past this many runs (time range or search) reports a lower bound instead.
pub const COUNT_CAP: i64 = 10_000;
/// Rows per statement of the CSV stream.
const STREAM_BATCH: i64 = 5_000;
/// Above this many matching tenants the name branch of a search reads the runs in time order and
/// filters, instead of reading each tenant's runs and sorting them.
const FEW_TENANTS: usize = 64;
const STATUSES: [&str; 6] = ["running", "success", "warning", "failed", "held", "cancelled"];

#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub tenant_id: Option<i64>,
    pub class: Option<ObjectClass>,
    /// One of running, success, warning, failed, held, cancelled (else `Rejected`).
    pub status: Option<String>,
    pub mode: Option<SyncMode>,
    /// On `started_at`, both ends inclusive.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub q: Option<String>,
}

/// Where the next page starts: the last row of this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub started_at: DateTime<Utc>,
    pub id: Uuid,
}

impl HistoryCursor {
    /// Opaque base64url of "microseconds.uuid".
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.started_at.timestamp_micros(), self.id.simple()))
    }

    pub fn decode(text: &str) -> Option<HistoryCursor> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let (micros, id) = raw.split_once('.')?;
        Some(HistoryCursor {
            started_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryRow {
    pub id: Uuid,
    pub tenant_id: i64,
    pub tenant_name: String,
    pub class: String,
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

#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub items: Vec<HistoryRow>,
    pub total: i64,
    pub total_exact: bool,
    pub next: Option<HistoryCursor>,
}

type Param = Box<dyn ToSql + Sync + Send>;

/// A statement under construction: its text and its parameters.
#[derive(Default)]
struct Query {
    params: Vec<Param>,
}

impl Query {
    /// Adds a parameter; returns its placeholder.
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
    }
}

/// What a search matches, resolved before the runs are read.
struct Search {
    tenant_ids: Vec<i64>,
    status: Option<String>,
    pattern: String,
}

/// `%q%` for ILIKE, with the pattern characters escaped.
fn like_pattern(q: &str) -> String {
    let mut out = String::from("%");
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

async fn resolve_search(client: &deadpool_postgres::Object, q: &str) -> Result<Search, StoreError> {
    let pattern = like_pattern(q);
    let rows = client.query("SELECT id FROM tenants WHERE name ILIKE $1", &[&pattern]).await?;
    let tenant_ids = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
    let lower = q.to_lowercase();
    let status = STATUSES.contains(&lower.as_str()).then_some(lower);
    Ok(Search { tenant_ids, status, pattern })
}

/// The conditions of the filter (without search), on `sync_runs r`.
fn conditions(query: &mut Query, filter: &HistoryFilter, after: Option<&HistoryCursor>) -> String {
    let mut sql = String::from("true");
    if let Some(id) = filter.tenant_id {
        sql.push_str(&format!(" AND r.tenant_id = {}", query.bind(id)));
    }
    if let Some(class) = filter.class {
        sql.push_str(&format!(" AND r.object_class = {}::text::object_class", query.bind(class.as_str())));
    }
    if let Some(status) = &filter.status {
        sql.push_str(&format!(" AND r.status = {}::text::run_status", query.bind(status.clone())));
    }
    if let Some(mode) = filter.mode {
        sql.push_str(&format!(" AND r.mode = {}::text::sync_mode", query.bind(mode.as_str())));
    }
    if let Some(from) = filter.from {
        sql.push_str(&format!(" AND r.started_at >= {}", query.bind(from)));
    }
    if let Some(to) = filter.to {
        sql.push_str(&format!(" AND r.started_at <= {}", query.bind(to)));
    }
    if let Some(after) = after {
        let (at, id) = (query.bind(after.started_at), query.bind(after.id));
        sql.push_str(&format!(" AND (r.started_at, r.id) < ({at}, {id})"));
    }
    sql
}

const ORDER: &str = "ORDER BY started_at DESC, id DESC";

/// The ids and keys of the first `limit` matching runs in page order (a union of ordered branches
/// when searching).
fn matching(
    query: &mut Query,
    filter: &HistoryFilter,
    search: Option<&Search>,
    after: Option<&HistoryCursor>,
    limit: i64,
) -> String {
    let base = conditions(query, filter, after);
    let limit = query.bind(limit);
    let branch =
        |extra: &str| format!("(SELECT r.id, r.started_at FROM sync_runs r WHERE {base}{extra} {ORDER} LIMIT {limit})");
    let Some(search) = search else { return branch("") };
    let mut branches = Vec::new();
    if !search.tenant_ids.is_empty() {
        // `+ 0` hides the tenant index when many tenants match: their runs are dense in time order.
        let column = if search.tenant_ids.len() > FEW_TENANTS { "r.tenant_id + 0" } else { "r.tenant_id" };
        let ids = query.bind(search.tenant_ids.clone());
        branches.push(branch(&format!(" AND {column} = ANY({ids}::bigint[])")));
    }
    if let Some(status) = &search.status {
        let status = query.bind(status.clone());
        branches.push(branch(&format!(" AND r.status = {status}::text::run_status")));
    }
    let pattern = query.bind(search.pattern.clone());
    branches.push(branch(&format!(" AND r.error IS NOT NULL AND r.error ILIKE {pattern}")));
    format!("SELECT id, started_at FROM ({}) AS m {ORDER} LIMIT {limit}", branches.join(" UNION "))
}

const ROW: &str = "r.id, r.tenant_id, t.name, r.object_class::text, r.mode::text, r.trigger, r.status::text, \
     r.started_at, r.finished_at, r.total, r.changed, r.deleted, r.filtered, r.reason, r.error";

async fn rows(
    client: &deadpool_postgres::Object,
    filter: &HistoryFilter,
    search: Option<&Search>,
    after: Option<&HistoryCursor>,
    limit: i64,
) -> Result<Vec<HistoryRow>, StoreError> {
    let mut query = Query::default();
    let matching = matching(&mut query, filter, search, after, limit);
    let sql = format!(
        "SELECT {ROW} FROM ({matching}) AS m JOIN sync_runs r ON r.id = m.id JOIN tenants t ON t.id = r.tenant_id \
         ORDER BY r.started_at DESC, r.id DESC"
    );
    let rows = client.query(&sql, &query.refs()).await?;
    rows.iter().map(from_row).collect()
}

/// The total: exact from the counters, or counted up to the cap.
async fn total(
    client: &deadpool_postgres::Object,
    filter: &HistoryFilter,
    search: Option<&Search>,
) -> Result<(i64, bool), StoreError> {
    let mut query = Query::default();
    if search.is_none() && filter.from.is_none() && filter.to.is_none() {
        let conditions = conditions(&mut query, filter, None);
        let sql = format!("SELECT COALESCE(sum(runs), 0)::bigint FROM sync_run_counts r WHERE {conditions}");
        let row = client.query_one(&sql, &query.refs()).await?;
        return Ok((row.try_get(0)?, true));
    }
    let matching = matching(&mut query, filter, search, None, COUNT_CAP + 1);
    let row = client.query_one(&format!("SELECT count(*) FROM ({matching}) AS m"), &query.refs()).await?;
    let counted: i64 = row.try_get(0)?;
    Ok((counted.min(COUNT_CAP), counted <= COUNT_CAP))
}

fn validate(filter: &HistoryFilter) -> Result<(), StoreError> {
    match &filter.status {
        Some(status) if !STATUSES.contains(&status.as_str()) => {
            Err(StoreError::Rejected(format!("status is one of {}", STATUSES.join(", "))))
        }
        _ => Ok(()),
    }
}

fn search_text(filter: &HistoryFilter) -> Option<&str> {
    filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
}

/// One page, newest first: `limit` (1..=1000) runs after `after`, the total of the filter, and the
/// cursor of the next page when there is one.
pub async fn page(
    pool: &Pool,
    filter: &HistoryFilter,
    limit: i64,
    after: Option<&HistoryCursor>,
) -> Result<HistoryPage, StoreError> {
    validate(filter)?;
    let limit = limit.clamp(1, 1000);
    let client = pool.get().await?;
    let search = match search_text(filter) {
        Some(q) => Some(resolve_search(&client, q).await?),
        None => None,
    };
    let mut items = rows(&client, filter, search.as_ref(), after, limit + 1).await?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|r| HistoryCursor { started_at: r.started_at, id: r.id })
    } else {
        None
    };
    let (total, total_exact) = total(&client, filter, search.as_ref()).await?;
    Ok(HistoryPage { items, total, total_exact, next })
}

/// Every run of the filter, newest first, read in keyset batches: memory stays flat however long the
/// history, and no connection is held between batches.
pub fn stream(
    pool: Pool,
    filter: HistoryFilter,
) -> impl Stream<Item = Result<HistoryRow, StoreError>> + Send + 'static {
    let start = (pool, filter, None::<HistoryCursor>, false);
    futures::stream::try_unfold(start, |(pool, filter, after, done)| async move {
        if done {
            return Ok::<_, StoreError>(None);
        }
        validate(&filter)?;
        let client = pool.get().await?;
        let search = match search_text(&filter) {
            Some(q) => Some(resolve_search(&client, q).await?),
            None => None,
        };
        let batch = rows(&client, &filter, search.as_ref(), after.as_ref(), STREAM_BATCH).await?;
        drop(client);
        let done = (batch.len() as i64) < STREAM_BATCH;
        let next = batch.last().map(|r| HistoryCursor { started_at: r.started_at, id: r.id }).or(after);
        Ok(Some((futures::stream::iter(batch.into_iter().map(Ok)), (pool, filter, next, done))))
    })
    .try_flatten()
    .boxed()
}

fn from_row(r: &Row) -> Result<HistoryRow, StoreError> {
    Ok(HistoryRow {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        tenant_name: r.try_get(2)?,
        class: r.try_get(3)?,
        mode: r.try_get(4)?,
        trigger: r.try_get(5)?,
        status: r.try_get(6)?,
        started_at: r.try_get(7)?,
        finished_at: r.try_get(8)?,
        total: r.try_get(9)?,
        changed: r.try_get(10)?,
        deleted: r.try_get(11)?,
        filtered: r.try_get(12)?,
        reason: r.try_get(13)?,
        error: r.try_get(14)?,
    })
}
