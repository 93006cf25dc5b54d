//! The relay's side of `change_outbox` (V56; docs/events-relay.md): one session of its own that holds the
//! cluster-wide relay lock, reads the next rows in `seq` order with `seq` merged into each body, and
//! deletes rows once RabbitMQ confirmed them; and the backlog figures for the metrics.
//!
//! The lock is a session advisory lock, as the run locks are ([`super::run_lock`]): Postgres releases it
//! when the session ends, so no relay outlives its connection. Reads and deletes go through the same
//! session, so a relay whose session died cannot delete anything, and a frozen session is given up by
//! the relay (each statement has a deadline) before the server ends it and lets another relay in.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use super::connect::{self, Purpose};
use super::{During, Pool, StoreError};
use crate::config::DatabaseSettings;

/// The relay lock's keys: "EVN" and partition 0 (one relay for the whole outbox), clear of the run
/// locks' "SYN" keys.
const LOCK_KEYS: (i32, i32) = (0x4556_4e00, 0);

/// One statement of the relay session may take this long; a slower one counts as a lost session (the
/// server ends it after `idle_session_timeout`, 30 s by default, later than this).
const STATEMENT_DEADLINE: Duration = Duration::from_secs(10);

/// One outbox row as the relay publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    pub event_id: Uuid,
    pub routing_key: String,
    /// The event document with `"seq"` merged in, as JSON text.
    pub body: Vec<u8>,
}

/// A session of its own for the relay: connected, maybe holding the relay lock.
pub struct RelaySession {
    client: Client,
    driver: JoinHandle<Result<(), tokio_postgres::Error>>,
    locked: bool,
    /// The read and the delete, prepared once per session (not once per batch).
    next: Statement,
    delete: Statement,
}

impl RelaySession {
    /// Opens a session (server-side keepalives and idle limit as a run-lock session).
    pub async fn open(settings: &DatabaseSettings) -> Result<RelaySession, StoreError> {
        let config = connect::session_config(settings, Purpose::RunLock)?;
        let (client, driver) = tokio::time::timeout(STATEMENT_DEADLINE + settings.connect_timeout, config.open())
            .await
            .map_err(|_| StoreError::Timeout(STATEMENT_DEADLINE + settings.connect_timeout))??;
        // Named for what it is in pg_stat_activity (the connection settings are a run-lock session's).
        within(client.batch_execute("SET application_name = 'entrasync events relay'"))
            .await
            .during("naming the relay session")?;
        let next = within(client.prepare(include_str!("sql/outbox_relay_next.sql")))
            .await
            .during("preparing the relay's statements")?;
        let delete = within(client.prepare(include_str!("sql/outbox_relay_delete.sql")))
            .await
            .during("preparing the relay's statements")?;
        Ok(RelaySession { client, driver, locked: false, next, delete })
    }

    /// Whether the session's connection has ended (and with it any lock it held).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed() || self.driver.is_finished()
    }

    /// Whether this session holds the relay lock.
    pub fn holds_lock(&self) -> bool {
        self.locked && !self.is_closed()
    }

    /// Takes the relay lock if no other session holds it; true when this session holds it now.
    pub async fn try_lock(&mut self) -> Result<bool, StoreError> {
        if self.holds_lock() {
            return Ok(true);
        }
        let row = within(self.client.query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_KEYS.0, &LOCK_KEYS.1]))
            .await
            .during("taking the relay lock")?;
        self.locked = row.try_get(0)?;
        Ok(self.locked)
    }

    /// Up to `limit` rows with a `seq` above `after`, in `seq` order.
    pub async fn next_batch(&self, after: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows =
            within(self.client.query(&self.next, &[&after, &limit])).await.during("reading the next outbox rows")?;
        rows.into_iter()
            .map(|row| {
                let seq: i64 = row.try_get(0)?;
                let body: &str = row.try_get(3)?;
                Ok(OutboxRow {
                    seq,
                    event_id: row.try_get(1)?,
                    routing_key: row.try_get(2)?,
                    body: with_seq(body, seq),
                })
            })
            .collect()
    }

    /// Deletes the rows RabbitMQ confirmed (`seqs` ascending, as read); returns how many went.
    pub async fn delete(&self, seqs: &[i64]) -> Result<u64, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let (starts, ends) = ranges(seqs);
        within(self.client.execute(&self.delete, &[&starts, &ends])).await.during("deleting relayed outbox rows")
    }

    /// Closes the session, releasing the lock.
    pub fn close(self) {
        drop(self.client);
        self.driver.abort();
    }
}

/// The event document's text (`jsonb` output: `{"key": value, …}`) with `"seq"` added as its first
/// field, as `body || jsonb_build_object('seq', seq)` gave it (a consumer reads fields by name, so
/// their order is no part of the contract). Bodies are objects (the triggers build them so); anything
/// else is passed on as it is.
fn with_seq(body: &str, seq: i64) -> Vec<u8> {
    let Some(rest) = body.strip_prefix('{') else { return body.as_bytes().to_vec() };
    let mut merged = Vec::with_capacity(body.len() + 32);
    merged.extend_from_slice(b"{\"seq\": ");
    merged.extend_from_slice(seq.to_string().as_bytes());
    if !rest.trim_start().starts_with('}') {
        merged.extend_from_slice(b", ");
    }
    merged.extend_from_slice(rest.as_bytes());
    merged
}

/// Ascending `seqs` as inclusive ranges of consecutive values (starts, ends).
fn ranges(seqs: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let (mut starts, mut ends) = (Vec::new(), Vec::<i64>::new());
    for &seq in seqs {
        match ends.last_mut() {
            Some(end) if seq == *end + 1 => *end = seq,
            _ => {
                starts.push(seq);
                ends.push(seq);
            }
        }
    }
    (starts, ends)
}

async fn within<T>(
    statement: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(STATEMENT_DEADLINE, statement).await {
        Ok(result) => result.map_err(StoreError::from),
        Err(_) => Err(StoreError::Timeout(STATEMENT_DEADLINE)),
    }
}

/// What waits in the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    pub rows: i64,
    /// Seconds since the next row to go out was written; 0 when the outbox is empty.
    pub oldest_age_seconds: f64,
    /// The table's size on disk (with its index and TOAST).
    pub bytes: i64,
}

/// The outbox's backlog (one count over the table: tens of milliseconds per 100,000 rows).
pub async fn backlog(pool: &Pool) -> Result<Backlog, StoreError> {
    let client = pool.get().await.during("reading the outbox backlog")?;
    let row = client
        .query_one(include_str!("sql/outbox_relay_backlog.sql"), &[])
        .await
        .during("reading the outbox backlog")?;
    Ok(Backlog { rows: row.try_get(0)?, oldest_age_seconds: row.try_get(1)?, bytes: row.try_get(2)? })
}

/// A row to write straight into the outbox (tests, and tools that replay events).
#[derive(Debug, Clone)]
pub struct NewRow {
    pub tenant_id: i64,
    pub event_id: Uuid,
    pub routing_key: String,
    pub body: serde_json::Value,
}

/// Writes rows into the outbox in one transaction, in the order given; returns their seqs.
pub async fn insert(pool: &Pool, rows: &[NewRow]) -> Result<Vec<i64>, StoreError> {
    let mut client = pool.get().await.during("writing outbox rows")?;
    let transaction = client.transaction().await.during("writing outbox rows")?;
    let statement = transaction
        .prepare(
            "INSERT INTO change_outbox (tenant_id, event_id, routing_key, body) VALUES ($1, $2, $3, $4) RETURNING seq",
        )
        .await
        .during("writing outbox rows")?;
    let mut seqs = Vec::with_capacity(rows.len());
    for row in rows {
        let inserted = transaction
            .query_one(&statement, &[&row.tenant_id, &row.event_id, &row.routing_key, &row.body])
            .await
            .during("writing outbox rows")?;
        seqs.push(inserted.try_get(0)?);
    }
    transaction.commit().await.during("writing outbox rows")?;
    Ok(seqs)
}

/// Fills the outbox with `events` user `updated` events of about 600 bytes over `tenants` tenants, for
/// `entrasync bench-events`.
pub async fn fill_for_bench(pool: &Pool, events: i64, tenants: i64) -> Result<u64, StoreError> {
    let client = pool.get().await.during("filling the outbox")?;
    client
        .batch_execute(&format!("SET statement_timeout = {}", super::BATCH_STATEMENT_TIMEOUT.as_millis()))
        .await
        .during("filling the outbox")?;
    let filled = client
        .execute(include_str!("sql/outbox_relay_fill_bench.sql"), &[&events, &tenants.max(1)])
        .await
        .during("filling the outbox")?;
    client.batch_execute("RESET statement_timeout").await.during("filling the outbox")?;
    // Its own statement: VACUUM refuses to run in the implicit transaction of a multi-statement string.
    client.batch_execute("VACUUM ANALYZE change_outbox").await.during("filling the outbox")?;
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::{ranges, with_seq};

    #[test]
    fn seq_becomes_the_first_field() {
        let merged = with_seq(r#"{"kind": "updated", "object": {"a": 1}}"#, 42);
        assert_eq!(String::from_utf8(merged).expect("utf-8"), r#"{"seq": 42, "kind": "updated", "object": {"a": 1}}"#);
        let value: serde_json::Value = serde_json::from_slice(&with_seq("{}", 7)).expect("json");
        assert_eq!(value, serde_json::json!({"seq": 7}));
    }

    #[test]
    fn consecutive_seqs_make_one_range() {
        assert_eq!(ranges(&[3, 4, 5, 9, 10, 12]), (vec![3, 9, 12], vec![5, 10, 12]));
        assert_eq!(ranges(&[]), (vec![], vec![]));
    }
}
