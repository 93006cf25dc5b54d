//! The audit log (`audit_log`): who changed what, when, with the state before and after. Written by each
//! store write in the change's own transaction, so a change and its audit row commit together.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;

use super::{Pool, StoreError};

/// Shown instead of secret material in `before`/`after`.
pub const REDACTED: &str = "[redacted]";

/// Who makes a change: an API token's name, `cli`, or `system`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
}

impl Actor {
    pub fn new(name: impl Into<String>) -> Actor {
        Actor { name: name.into() }
    }

    /// Changes the service makes on its own (the bootstrap token).
    pub fn system() -> Actor {
        Actor::new("system")
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub limit: i64,
    /// Keyset: entries older than this id.
    pub before_id: Option<i64>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
}

/// Writes one audit row; pass the transaction of the change.
pub async fn record(
    db: &impl GenericClient,
    actor: &Actor,
    action: &str,
    target_type: &str,
    target_id: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), StoreError> {
    let statement = db
        .prepare_cached(
            "INSERT INTO audit_log (actor, action, target_type, target_id, before, after) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    db.execute(&statement, &[&actor.name, &action, &target_type, &target_id, &before, &after]).await?;
    Ok(())
}

/// Newest first, `limit` entries (1..=1000) older than `before_id`, optionally of one target.
pub async fn list(pool: &Pool, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    let client = pool.get().await?;
    let limit = query.limit.clamp(1, 1000);
    let rows = client
        .query(
            "SELECT id, at, actor, action, target_type, target_id, before, after FROM audit_log
             WHERE ($1::bigint IS NULL OR id < $1)
               AND ($2::text IS NULL OR target_type = $2)
               AND ($3::text IS NULL OR target_id = $3)
             ORDER BY id DESC LIMIT $4",
            &[&query.before_id, &query.target_type, &query.target_id, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get(0)?,
                at: r.try_get(1)?,
                actor: r.try_get(2)?,
                action: r.try_get(3)?,
                target_type: r.try_get(4)?,
                target_id: r.try_get(5)?,
                before: r.try_get(6)?,
                after: r.try_get(7)?,
            })
        })
        .collect()
}
