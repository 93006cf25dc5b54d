//! API tokens (`api_tokens`): a name, a role and the SHA-256 of the token. Generating and hashing
//! tokens is the API's job; the store only sees hashes.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_postgres::Row;

use super::audit::{self, Actor};
use super::{Pool, StoreError};

/// The name of the token `ENTRASYNC_ADMIN_TOKEN` stands for; reserved (the API refuses it for new tokens).
pub const BOOTSTRAP_NAME: &str = "bootstrap";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

impl FromStr for Role {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Role, StoreError> {
        match s {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            other => Err(StoreError::Rejected(format!("unknown role {other:?}: expected admin or viewer"))),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, role, created_at, last_used_at, revoked_at";

fn from_row(row: &Row) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        role: row.try_get::<_, String>(2)?.parse()?,
        created_at: row.try_get(3)?,
        last_used_at: row.try_get(4)?,
        revoked_at: row.try_get(5)?,
    })
}

fn audit_view(token: &ApiToken) -> serde_json::Value {
    json!({"id": token.id, "name": token.name, "role": token.role, "revoked_at": token.revoked_at})
}

/// Stores a new token; `Conflict` when a token in use already has the name.
pub async fn create(
    pool: &Pool,
    name: &str,
    role: Role,
    token_hash: &[u8; 32],
    actor: &Actor,
) -> Result<ApiToken, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let row = transaction
        .query_one(
            &format!(
                "INSERT INTO api_tokens (name, role, token_hash, created_by) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
            ),
            &[&name, &role.as_str(), &token_hash.as_slice(), &actor.name],
        )
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("a token named {name:?} already exists")),
            other => other,
        })?;
    let token = from_row(&row)?;
    let id = token.id.to_string();
    audit::record(&transaction, actor, "token.create", "token", &id, None, Some(audit_view(&token))).await?;
    transaction.commit().await?;
    Ok(token)
}

/// The token in use with this hash: one lookup on the unique index.
pub async fn find_active_by_hash(pool: &Pool, token_hash: &[u8; 32]) -> Result<Option<ApiToken>, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"))
        .await?;
    let row = client.query_opt(&statement, &[&token_hash.as_slice()]).await?;
    row.as_ref().map(from_row).transpose()
}

/// Every token, revoked ones too, newest first.
pub async fn list(pool: &Pool) -> Result<Vec<ApiToken>, StoreError> {
    let client = pool.get().await?;
    let rows = client.query(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY id DESC"), &[]).await?;
    rows.iter().map(from_row).collect()
}

/// Revokes a token in use; false when there is none with this id (or it was revoked already).
pub async fn revoke(pool: &Pool, id: i64, actor: &Actor) -> Result<bool, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let row = transaction
        .query_opt(
            &format!(
                "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING {COLUMNS}"
            ),
            &[&id],
        )
        .await?;
    let Some(row) = row else { return Ok(false) };
    let token = from_row(&row)?;
    let before = json!({"id": token.id, "name": token.name, "role": token.role, "revoked_at": null});
    audit::record(
        &transaction,
        actor,
        "token.revoke",
        "token",
        &id.to_string(),
        Some(before),
        Some(audit_view(&token)),
    )
    .await?;
    transaction.commit().await?;
    Ok(true)
}

/// Stamps `last_used_at`, at most about once a minute per token: no write on every request.
pub async fn touch(pool: &Pool, id: i64) -> Result<(), StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE api_tokens SET last_used_at = now() \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .await?;
    client.execute(&statement, &[&id]).await?;
    Ok(())
}

/// Makes `token_hash` the admin token named `bootstrap` (`ENTRASYNC_ADMIN_TOKEN`): inserts it, or
/// replaces the hash of the bootstrap token in use when the variable changed. Audited only on a change.
pub async fn upsert_bootstrap(pool: &Pool, token_hash: &[u8; 32]) -> Result<ApiToken, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let changed = transaction
        .query_opt(
            &format!(
                "INSERT INTO api_tokens AS t (name, role, token_hash, created_by) VALUES ($1, 'admin', $2, 'system')
                 ON CONFLICT (name) WHERE revoked_at IS NULL DO UPDATE
                     SET token_hash = EXCLUDED.token_hash, role = 'admin'
                     WHERE t.token_hash <> EXCLUDED.token_hash OR t.role <> 'admin'
                 RETURNING {COLUMNS}"
            ),
            &[&BOOTSTRAP_NAME, &token_hash.as_slice()],
        )
        .await?;
    let token = match changed {
        Some(row) => {
            let token = from_row(&row)?;
            let id = token.id.to_string();
            let after = json!({"id": token.id, "name": token.name, "role": token.role, "token": audit::REDACTED});
            audit::record(&transaction, &Actor::system(), "token.bootstrap", "token", &id, None, Some(after)).await?;
            token
        }
        None => {
            let row = transaction
                .query_one(
                    &format!("SELECT {COLUMNS} FROM api_tokens WHERE name = $1 AND revoked_at IS NULL"),
                    &[&BOOTSTRAP_NAME],
                )
                .await?;
            from_row(&row)?
        }
    };
    transaction.commit().await?;
    Ok(token)
}

/// Whether any admin token is in use (else `serve` generates one).
pub async fn any_active_admin(pool: &Pool) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_one("SELECT EXISTS (SELECT 1 FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL)", &[])
        .await?;
    Ok(row.try_get(0)?)
}
