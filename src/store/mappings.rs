//! Attribute mappings and scoping filters per (tenant, class) (docs/mappings.md): one `MappingSet`
//! document per row of `mapping_sets` (V52), with a version for optimistic concurrency. The set is
//! validated by `crate::mapping` before it gets here; this module only stores it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::audit::{self, Actor};
use super::{Pool, StoreError};
use crate::model::mapping::MappingSet;
use crate::model::ObjectClass;

/// A stored set with its version (1 for the first write, one more per change).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMappingSet {
    pub set: MappingSet,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// The audit log's target type for a mapping set; the target id is `{tenant_id}/{class}`.
pub const AUDIT_TARGET: &str = "mapping_set";

pub fn audit_target_id(tenant_id: i64, class: ObjectClass) -> String {
    format!("{tenant_id}/{class}")
}

/// The set stored for (tenant, class); `None` when nothing was ever stored.
pub async fn get(pool: &Pool, tenant_id: i64, class: ObjectClass) -> Result<Option<StoredMappingSet>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT definition, version, updated_at FROM mapping_sets \
             WHERE tenant_id = $1 AND object_class = $2::text::object_class",
            &[&tenant_id, &class.as_str()],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let definition: Value = row.try_get(0)?;
    Ok(Some(StoredMappingSet {
        set: decode(tenant_id, class, definition)?,
        version: row.try_get(1)?,
        updated_at: row.try_get(2)?,
    }))
}

fn decode(tenant_id: i64, class: ObjectClass, definition: Value) -> Result<MappingSet, StoreError> {
    serde_json::from_value(definition).map_err(|e| {
        StoreError::Unexpected(anyhow::anyhow!(
            "the stored mapping set of tenant {tenant_id} ({class}) does not read: {e}"
        ))
    })
}

fn audit_view(set: &MappingSet, version: i64) -> Value {
    serde_json::json!({ "version": version, "mappings": set.mappings, "scoping": set.scoping })
}

/// Stores `set` for (tenant, class) and returns its new version, with its audit row
/// (`mapping_set.update`) in the same transaction. `expected_version`: the version the writer read (0:
/// nothing stored yet); when the stored version differs, nothing is written and the answer is
/// [`StoreError::Conflict`]. `None` writes unconditionally. When the scoping changed, the tenant's
/// "full scan on next run" flag is set (and restamped) in the same transaction: objects that a narrower
/// filter kept out were never stored, so only a full listing brings them in. A tenant that does not
/// exist is [`StoreError::Rejected`] (its foreign key).
pub async fn put(
    pool: &Pool,
    actor: &Actor,
    tenant_id: i64,
    class: ObjectClass,
    set: &MappingSet,
    expected_version: Option<i64>,
) -> Result<i64, StoreError> {
    let definition = serde_json::to_value(set)
        .map_err(|e| StoreError::Unexpected(anyhow::anyhow!("mapping set does not serialise: {e}")))?;
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let current = transaction
        .query_opt(
            "SELECT definition, version FROM mapping_sets \
             WHERE tenant_id = $1 AND object_class = $2::text::object_class FOR UPDATE",
            &[&tenant_id, &class.as_str()],
        )
        .await?;
    let before = match current {
        Some(row) => {
            let definition: Value = row.try_get(0)?;
            Some((decode(tenant_id, class, definition)?, row.try_get::<_, i64>(1)?))
        }
        None => None,
    };
    let stored_version = before.as_ref().map_or(0, |(_, v)| *v);
    if let Some(expected) = expected_version {
        if expected != stored_version {
            return Err(version_conflict(tenant_id, class, expected, stored_version));
        }
    }
    let version = match before {
        Some(_) => {
            let row = transaction
                .query_one(
                    "UPDATE mapping_sets SET definition = $3, version = version + 1, updated_at = now() \
                     WHERE tenant_id = $1 AND object_class = $2::text::object_class RETURNING version",
                    &[&tenant_id, &class.as_str(), &definition],
                )
                .await?;
            row.try_get::<_, i64>(0)?
        }
        None => {
            // Two first writers at once: the loser inserts nothing and is told the set changed.
            let row = transaction
                .query_opt(
                    "INSERT INTO mapping_sets (tenant_id, object_class, definition, version) \
                     VALUES ($1, $2::text::object_class, $3, 1) ON CONFLICT DO NOTHING RETURNING version",
                    &[&tenant_id, &class.as_str(), &definition],
                )
                .await?;
            match row {
                Some(row) => row.try_get::<_, i64>(0)?,
                None => return Err(version_conflict(tenant_id, class, expected_version.unwrap_or(0), 1)),
            }
        }
    };
    let empty = MappingSet::default();
    let old_set = before.as_ref().map_or(&empty, |(s, _)| s);
    if old_set.scoping != set.scoping {
        transaction
            .execute(
                "UPDATE tenants SET full_scan_next_run = true, full_scan_requested_at = now(), updated_at = now() \
                 WHERE id = $1",
                &[&tenant_id],
            )
            .await?;
    }
    audit::record(
        &transaction,
        actor,
        "mapping_set.update",
        AUDIT_TARGET,
        &audit_target_id(tenant_id, class),
        before.as_ref().map(|(s, v)| audit_view(s, *v)),
        Some(audit_view(set, version)),
    )
    .await?;
    transaction.commit().await?;
    Ok(version)
}

fn version_conflict(tenant_id: i64, class: ObjectClass, expected: i64, stored: i64) -> StoreError {
    StoreError::Conflict(format!(
        "the {class} mappings of tenant {tenant_id} changed meanwhile: you sent version {expected}, the stored \
         version is {stored}; read them again and reapply your change"
    ))
}

/// The domain `DefaultDomain()` gives in the tenant's expressions: the first of its verified domains as
/// Entra last reported them (test connection, consent), `None` before that.
pub async fn default_domain(pool: &Pool, tenant_id: i64) -> Result<Option<String>, StoreError> {
    let client = pool.get().await?;
    let row = client.query_opt("SELECT verified_domains[1] FROM tenants WHERE id = $1", &[&tenant_id]).await?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => None,
    })
}
