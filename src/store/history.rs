//! The sync history view: filtered pages of `sync_runs`, newest first, by keyset on (started_at, id),
//! with a total; and the same view streamed for the CSV export.
//!
//! Why it stays fast at a million runs without statistics (docs/benchmarks.md, "History pages"):
//! - each page reads an index in page order and stops after `limit` rows: `sync_runs_by_tenant`,
//!   `sync_runs_by_tenant_class` or `sync_runs_by_start`; a filter on status, class or mode (without a
//!   tenant) reads one range of `sync_runs_by_kind` per (status, class, mode) cell it allows and merges
//!   them in page order, so a sparse combination costs what a dense one does;
//! - the total of a filter without time range or search is a sum over `sync_run_counts` (kept exact by
//!   triggers); with a time range or search it is counted up to [`COUNT_CAP`] runs, and beyond that
//!   reported as a lower bound (`total_exact = false`);
//! - the search (`q`, case-insensitive substring) is a union of three ordered branches: runs of the
//!   tenants whose name matches (the tenant list is searched first), runs whose status is `q`, and runs
//!   whose error text matches, read from the narrow `sync_run_errors` (lower-cased texts, kept by
//!   triggers) newest first; its statements run with sequential and bitmap scans off, so each branch
//!   is read in page order and stops at its limit.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use deadpool_postgres::GenericClient;

use super::{Pool, StoreError};
use crate::model::{ObjectClass, SyncMode};

/// Counting past this many runs (time range or search) reports a lower bound instead.
pub const COUNT_CAP: i64 = 10_000;
/// Rows per statement of the CSV stream.
const STREAM_BATCH: i64 = 5_000;
/// Above this many matching tenants the name branch of a search reads the runs in time order and
/// filters, instead of reading each tenant's runs and sorting them.
const FEW_TENANTS: usize = 64;
/// Set for the statements of a search: without statistics the planner takes a text match for rare and
/// reads the whole error table (or the runs of the matching tenants) and sorts, when reading it in page
/// order stops after `limit` matches for a common word and costs the same for a rare one.
const INDEXES_ONLY: &str = "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off";
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
    status: Option<&'static str>,
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
    let status = status_literal(&q.to_lowercase());
    Ok(Search { tenant_ids, status, pattern })
}

/// The literal of a status: the entry of [`STATUSES`] (never the caller's text), so it can be inlined.
fn status_literal(status: &str) -> Option<&'static str> {
    STATUSES.iter().copied().find(|s| *s == status)
}

/// The filter's conditions on the run's status, class and mode, as literals of the closed vocabularies
/// (inlined rather than bound, so every statement uses each parameter it binds).
fn kind_conditions(filter: &HistoryFilter) -> String {
    let mut sql = String::new();
    if let Some(status) = filter.status.as_deref().and_then(status_literal) {
        sql.push_str(&format!(" AND r.status = '{status}'"));
    }
    if let Some(class) = filter.class {
        sql.push_str(&format!(" AND r.object_class = '{}'", class.as_str()));
    }
    if let Some(mode) = filter.mode {
        sql.push_str(&format!(" AND r.mode = '{}'", mode.as_str()));
    }
    sql
}

/// The placeholders of the page-key conditions (time range and cursor), bound once and written on
/// whichever `started_at` and `id` columns a branch reads.
struct KeyBounds {
    from: Option<String>,
    to: Option<String>,
    after: Option<(String, String)>,
}

impl KeyBounds {
    fn bind(query: &mut Query, filter: &HistoryFilter, after: Option<&HistoryCursor>) -> KeyBounds {
        KeyBounds {
            from: filter.from.map(|from| query.bind(from)),
            to: filter.to.map(|to| query.bind(to)),
            after: after.map(|after| (query.bind(after.started_at), query.bind(after.id))),
        }
    }

    fn on(&self, started_at: &str, id: &str) -> String {
        let mut sql = String::new();
        if let Some(from) = &self.from {
            sql.push_str(&format!(" AND {started_at} >= {from}"));
        }
        if let Some(to) = &self.to {
            sql.push_str(&format!(" AND {started_at} <= {to}"));
        }
        if let Some((at, key)) = &self.after {
            sql.push_str(&format!(" AND ({started_at}, {id}) < ({at}, {key})"));
        }
        sql
    }
}

const ORDER: &str = "ORDER BY started_at DESC, id DESC";

/// The (status, class, mode) cells of `sync_runs_by_kind` a branch reads, as conditions on `r`, when
/// the filter has no tenant and restricts at least one of the three (`status` also restricts it: the
/// status branch of a search). None: read the other indexes. Empty: nothing can match.
fn cells(filter: &HistoryFilter, status: Option<&'static str>) -> Option<Vec<String>> {
    let filter_status = filter.status.as_deref().and_then(status_literal);
    if filter.tenant_id.is_some()
        || (filter_status.is_none() && status.is_none() && filter.class.is_none() && filter.mode.is_none())
    {
        return None;
    }
    let statuses: Vec<&str> = match (filter_status, status) {
        (Some(a), Some(b)) if a != b => Vec::new(),
        (Some(one), _) | (None, Some(one)) => vec![one],
        (None, None) => STATUSES.to_vec(),
    };
    let classes: Vec<&str> = match filter.class {
        Some(class) => vec![class.as_str()],
        None => ObjectClass::ALL.iter().map(|c| c.as_str()).collect(),
    };
    let modes: Vec<&str> = match filter.mode {
        Some(mode) => vec![mode.as_str()],
        None => SyncMode::ALL.iter().map(|m| m.as_str()).collect(),
    };
    let mut out = Vec::new();
    for status in &statuses {
        for class in &classes {
            for mode in &modes {
                out.push(format!(" AND r.status = '{status}' AND r.object_class = '{class}' AND r.mode = '{mode}'"));
            }
        }
    }
    Some(out)
}

/// The ids and keys of the first `limit` matching runs in page order (a union of ordered branches
/// when searching).
fn matching(
    query: &mut Query,
    filter: &HistoryFilter,
    search: Option<&Search>,
    after: Option<&HistoryCursor>,
    limit: i64,
) -> String {
    let tenant = filter.tenant_id.map(|id| format!(" AND r.tenant_id = {}", query.bind(id))).unwrap_or_default();
    let bounds = KeyBounds::bind(query, filter, after);
    let keys = bounds.on("r.started_at", "r.id");
    let kinds = kind_conditions(filter);
    let limit = query.bind(limit);
    let select = |extra: &str| {
        format!("(SELECT r.id, r.started_at FROM sync_runs r WHERE true{tenant}{keys}{extra} {ORDER} LIMIT {limit})")
    };
    // One ordered branch: a merge of the cells of `sync_runs_by_kind` it allows, or one index range.
    let branch = |extra: &str, status: Option<&'static str>| match cells(filter, status) {
        Some(cells) if cells.is_empty() => None,
        Some(cells) => {
            let parts: Vec<String> = cells.iter().map(|cell| select(&format!("{cell}{extra}"))).collect();
            Some(format!("(SELECT id, started_at FROM ({}) AS c {ORDER} LIMIT {limit})", parts.join(" UNION ALL ")))
        }
        None => {
            let status = status.map(|s| format!(" AND r.status = '{s}'")).unwrap_or_default();
            Some(select(&format!("{kinds}{status}{extra}")))
        }
    };
    let Some(search) = search else {
        return branch("", None)
            .unwrap_or_else(|| String::from("SELECT NULL::uuid AS id, NULL::timestamptz AS started_at WHERE false"));
    };
    let mut branches = Vec::new();
    if !search.tenant_ids.is_empty() {
        // `+ 0` hides the tenant index when many tenants match: their runs are dense in time order.
        let condition = match search.tenant_ids.as_slice() {
            // One tenant: a range of `sync_runs_by_tenant` in page order, no sort.
            [one] => format!(" AND r.tenant_id = {}", query.bind(*one)),
            ids => {
                let column = if ids.len() > FEW_TENANTS { "r.tenant_id + 0" } else { "r.tenant_id" };
                format!(" AND {column} = ANY({}::bigint[])", query.bind(ids.to_vec()))
            }
        };
        branches.extend(branch(&condition, None));
    }
    if let Some(status) = search.status {
        branches.extend(branch("", Some(status)));
    }
    // Error texts: `sync_run_errors` newest first, joined to the runs only for the filter's conditions.
    let pattern = query.bind(search.pattern.clone());
    let keys = bounds.on("e.started_at", "e.run_id");
    let join = if tenant.is_empty() && kinds.is_empty() { "" } else { " JOIN sync_runs r ON r.id = e.run_id" };
    branches.push(format!(
        "(SELECT e.run_id AS id, e.started_at FROM sync_run_errors e{join} \
         WHERE e.error_lower LIKE lower({pattern}){tenant}{kinds}{keys} \
         ORDER BY e.started_at DESC, e.run_id DESC LIMIT {limit})"
    ));
    format!("SELECT id, started_at FROM ({}) AS m {ORDER} LIMIT {limit}", branches.join(" UNION "))
}

const ROW: &str = "r.id, r.tenant_id, t.name, r.object_class::text, r.mode::text, r.trigger, r.status::text, \
     r.started_at, r.finished_at, r.total, r.changed, r.deleted, r.filtered, r.reason, r.error";

async fn rows(
    client: &impl GenericClient,
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

/// The first page of a filter whose total is counted (search or time range) and that total, from one
/// read of the matching keys: the page is the head of the runs counted, so a search scans its error
/// texts once, not once for the page and again for the count.
async fn first_page_counted(
    client: &impl GenericClient,
    filter: &HistoryFilter,
    search: Option<&Search>,
    limit: i64,
) -> Result<(Vec<HistoryRow>, (i64, bool)), StoreError> {
    let mut query = Query::default();
    let matching = matching(&mut query, filter, search, None, COUNT_CAP + 1);
    let limit = query.bind(limit);
    let sql = format!(
        "WITH k AS MATERIALIZED ({matching}) \
         SELECT {ROW}, (SELECT count(*) FROM k) FROM (SELECT id FROM k {ORDER} LIMIT {limit}) AS m \
         JOIN sync_runs r ON r.id = m.id JOIN tenants t ON t.id = r.tenant_id ORDER BY r.started_at DESC, r.id DESC"
    );
    let rows = client.query(&sql, &query.refs()).await?;
    // No row: nothing matches at all (the page is the head of what was counted).
    let counted: i64 = match rows.first() {
        Some(row) => row.try_get(15)?,
        None => 0,
    };
    let items = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok((items, (counted.min(COUNT_CAP), counted <= COUNT_CAP)))
}

/// The total: exact from the counters, or counted up to the cap.
async fn total(
    client: &impl GenericClient,
    filter: &HistoryFilter,
    search: Option<&Search>,
) -> Result<(i64, bool), StoreError> {
    let mut query = Query::default();
    if search.is_none() && filter.from.is_none() && filter.to.is_none() {
        let tenant = filter.tenant_id.map(|id| format!(" AND r.tenant_id = {}", query.bind(id))).unwrap_or_default();
        let kinds = kind_conditions(filter);
        let sql = format!("SELECT COALESCE(sum(runs), 0)::bigint FROM sync_run_counts r WHERE true{tenant}{kinds}");
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
    let mut client = pool.get().await?;
    let search = match search_text(filter) {
        Some(q) => Some(resolve_search(&client, q).await?),
        None => None,
    };
    let transaction = client.transaction().await?;
    if search.is_some() {
        transaction.batch_execute(INDEXES_ONLY).await?;
    }
    let counted = search.is_some() || filter.from.is_some() || filter.to.is_some();
    let (mut items, first_total) = if after.is_none() && counted {
        let (items, total) = first_page_counted(&transaction, filter, search.as_ref(), limit + 1).await?;
        (items, Some(total))
    } else {
        (rows(&transaction, filter, search.as_ref(), after, limit + 1).await?, None)
    };
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|r| HistoryCursor { started_at: r.started_at, id: r.id })
    } else {
        None
    };
    let (total, total_exact) = match first_total {
        Some(total) => total,
        None => total(&transaction, filter, search.as_ref()).await?,
    };
    transaction.commit().await?;
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
        let mut client = pool.get().await?;
        let search = match search_text(&filter) {
            Some(q) => Some(resolve_search(&client, q).await?),
            None => None,
        };
        let transaction = client.transaction().await?;
        if search.is_some() {
            transaction.batch_execute(INDEXES_ONLY).await?;
        }
        let batch = rows(&transaction, &filter, search.as_ref(), after.as_ref(), STREAM_BATCH).await?;
        transaction.commit().await?;
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
