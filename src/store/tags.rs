//! External tag mappings, tag values, object tags and asset groups (docs/mappings.md, "Tag mappings";
//! schema in migrations/V54__tags.sql). Mapping and manual writes record their audit row in the same
//! transaction. The tag sync's statements are set-based and run per batch of users
//! ([`sync_batch`]); the order of the steps is `crate::tags`'.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::{json, Value};
use uuid::Uuid;

use super::audit::{self, Actor};
use super::{During, Pool, StoreError};

/// A platform tag property: a custom tag key, or the Asset group tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagTarget {
    Custom(String),
    AssetGroup,
}

impl TagTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            TagTarget::Custom(_) => "custom",
            TagTarget::AssetGroup => "asset_group",
        }
    }

    pub fn key(&self) -> Option<&str> {
        match self {
            TagTarget::Custom(key) => Some(key),
            TagTarget::AssetGroup => None,
        }
    }

    fn from_columns(kind: &str, key: Option<String>) -> TagTarget {
        match (kind, key) {
            ("custom", Some(key)) => TagTarget::Custom(key),
            _ => TagTarget::AssetGroup,
        }
    }
}

/// Where a mapping's values come from, as the store reads them (built by `crate::tags::TagSource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A user attribute: the effective mapped attribute `mapped_key` when the object has it, else the
    /// raw attribute at `path` in `attrs`.
    Attribute { path: Vec<String>, mapped_key: String },
    /// The display names of the stored groups the user is a direct member of.
    GroupMembership,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagMapping {
    pub id: i64,
    pub tenant_id: i64,
    pub source: String,
    pub target: TagTarget,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub pending_deletion_at: Option<DateTime<Utc>>,
    pub deletion_attempts: i32,
    pub deletion_error: Option<String>,
    /// Tag values this mapping synced (kept or shared ones included).
    pub values: i64,
}

impl TagMapping {
    fn audit_view(&self) -> Value {
        json!({ "source": self.source, "target_kind": self.target.kind(), "target_key": self.target.key(),
                "pending_deletion": self.pending_deletion_at.is_some() })
    }
}

const MAPPING_COLUMNS: &str = "m.id, m.tenant_id, m.source, m.target_kind, m.target_key, m.created_at, m.created_by, \
     m.last_synced_at, m.pending_deletion_at, m.deletion_attempts, m.deletion_error, \
     (SELECT count(*) FROM tag_sources s WHERE s.mapping_id = m.id)";

fn mapping_from(r: &tokio_postgres::Row) -> Result<TagMapping, StoreError> {
    Ok(TagMapping {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        source: r.try_get(2)?,
        target: TagTarget::from_columns(r.try_get(3)?, r.try_get(4)?),
        created_at: r.try_get(5)?,
        created_by: r.try_get(6)?,
        last_synced_at: r.try_get(7)?,
        pending_deletion_at: r.try_get(8)?,
        deletion_attempts: r.try_get(9)?,
        deletion_error: r.try_get(10)?,
        values: r.try_get(11)?,
    })
}

/// What creating a mapping did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateMapping {
    Created(TagMapping),
    /// A live mapping with the same source and the same target exists.
    Duplicate(TagMapping),
    /// The tenant has `live` mappings, the limit.
    LimitReached {
        live: i64,
    },
}

/// Creates a mapping unless it duplicates a live one or the tenant has `max` live mappings (those
/// pending deletion do not count). `None`: no such tenant. The tenant row lock serialises concurrent
/// creations, so the limit holds.
pub async fn create_mapping(
    pool: &Pool,
    tenant_id: i64,
    source: &str,
    target: &TagTarget,
    max: u32,
    actor: &Actor,
) -> Result<Option<CreateMapping>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if tx.query_opt("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", &[&tenant_id]).await?.is_none() {
        return Ok(None);
    }
    let duplicate = tx
        .query_opt(
            &format!(
                "SELECT {MAPPING_COLUMNS} FROM tag_mappings m
                 WHERE m.tenant_id = $1 AND m.pending_deletion_at IS NULL AND lower(m.source) = lower($2)
                   AND m.target_kind = $3 AND lower(coalesce(m.target_key, '')) = lower(coalesce($4, ''))"
            ),
            &[&tenant_id, &source, &target.kind(), &target.key()],
        )
        .await?;
    if let Some(row) = duplicate {
        return Ok(Some(CreateMapping::Duplicate(mapping_from(&row)?)));
    }
    let live: i64 = tx
        .query_one(
            "SELECT count(*) FROM tag_mappings WHERE tenant_id = $1 AND pending_deletion_at IS NULL",
            &[&tenant_id],
        )
        .await?
        .try_get(0)?;
    if live >= i64::from(max) {
        return Ok(Some(CreateMapping::LimitReached { live }));
    }
    let id: i64 = tx
        .query_one(
            "INSERT INTO tag_mappings (tenant_id, source, target_kind, target_key, created_by)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&tenant_id, &source, &target.kind(), &target.key(), &actor.name],
        )
        .await?
        .try_get(0)?;
    let created = get_mapping_in(&tx, tenant_id, id).await?.ok_or_else(|| missing_row("tag mapping", id))?;
    audit::record(&tx, actor, "tag_mapping.create", "tag_mapping", &id.to_string(), None, Some(created.audit_view()))
        .await?;
    tx.commit().await?;
    Ok(Some(CreateMapping::Created(created)))
}

fn missing_row(what: &str, id: i64) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("{what} {id} vanished inside its own transaction"))
}

async fn get_mapping_in(db: &impl GenericClient, tenant_id: i64, id: i64) -> Result<Option<TagMapping>, StoreError> {
    let row = db
        .query_opt(
            &format!("SELECT {MAPPING_COLUMNS} FROM tag_mappings m WHERE m.tenant_id = $1 AND m.id = $2"),
            &[&tenant_id, &id],
        )
        .await?;
    row.as_ref().map(mapping_from).transpose()
}

pub async fn get_mapping(pool: &Pool, tenant_id: i64, id: i64) -> Result<Option<TagMapping>, StoreError> {
    let client = pool.get().await?;
    get_mapping_in(&client, tenant_id, id).await
}

/// The tenant's mappings, live and pending deletion, oldest first.
pub async fn list_mappings(pool: &Pool, tenant_id: i64) -> Result<Vec<TagMapping>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {MAPPING_COLUMNS} FROM tag_mappings m WHERE m.tenant_id = $1 ORDER BY m.id"),
            &[&tenant_id],
        )
        .await?;
    rows.iter().map(mapping_from).collect()
}

/// What deleting a mapping did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMapping {
    /// It had synced nothing: gone at once.
    Deleted,
    /// It had synced values: they go at the next tag sync, then the mapping.
    Pending,
    /// It was already pending deletion.
    AlreadyPending,
}

/// Deletes a mapping that synced nothing, or marks it pending deletion. `None`: no such mapping of the
/// tenant. The mapping's row lock waits for a tag sync batch using it, so "synced nothing" is exact.
pub async fn delete_mapping(
    pool: &Pool,
    tenant_id: i64,
    id: i64,
    actor: &Actor,
) -> Result<Option<DeleteMapping>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let locked = tx
        .query_opt("SELECT 1 FROM tag_mappings WHERE tenant_id = $1 AND id = $2 FOR UPDATE", &[&tenant_id, &id])
        .await?;
    if locked.is_none() {
        return Ok(None);
    }
    let before = get_mapping_in(&tx, tenant_id, id).await?.ok_or_else(|| missing_row("tag mapping", id))?;
    if before.pending_deletion_at.is_some() {
        return Ok(Some(DeleteMapping::AlreadyPending));
    }
    let synced: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM tag_sources WHERE mapping_id = $1)
                 OR EXISTS (SELECT 1 FROM object_tags WHERE mapping_id = $1)",
            &[&id],
        )
        .await?
        .try_get(0)?;
    let outcome = if synced {
        tx.execute("UPDATE tag_mappings SET pending_deletion_at = now() WHERE id = $1", &[&id]).await?;
        DeleteMapping::Pending
    } else {
        tx.execute("DELETE FROM tag_mappings WHERE id = $1", &[&id]).await?;
        DeleteMapping::Deleted
    };
    let after = match outcome {
        DeleteMapping::Pending => Some(json!({ "pending_deletion": true })),
        _ => None,
    };
    audit::record(&tx, actor, "tag_mapping.delete", "tag_mapping", &id.to_string(), Some(before.audit_view()), after)
        .await?;
    tx.commit().await?;
    Ok(Some(outcome))
}

// ---------------------------------------------------------------------------------------------------
// Tag sync

/// One run of a tenant's tag sync at a time, across instances: a session advisory lock on a connection
/// taken out of the pool (closed, not returned, when the lock is released or dropped), so the lock never
/// outlives its holder nor stays on a pooled session.
pub struct TagSyncLock {
    client: deadpool_postgres::ClientWrapper,
}

/// First key of the two-key advisory lock: "TAG", clear of the run locks ("SYN…").
const TAG_SYNC_LOCK_KEY: i32 = 0x5441_4700;

pub async fn try_lock_tag_sync(pool: &Pool, tenant_id: i64) -> Result<Option<TagSyncLock>, StoreError> {
    let client = deadpool_postgres::Object::take(pool.get().await?);
    let tenant_key = (tenant_id & 0x7fff_ffff) as i32;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&TAG_SYNC_LOCK_KEY, &tenant_key])
        .await?
        .try_get(0)?;
    Ok(locked.then_some(TagSyncLock { client }))
}

impl TagSyncLock {
    /// Releases the lock (closing its connection does too).
    pub async fn release(self) {
        if let Err(error) = self.client.simple_query("SELECT pg_advisory_unlock_all()").await {
            tracing::debug!(%error, "unlocking the tag sync failed; closing its connection releases it");
        }
    }
}

/// A live mapping as a tag sync batch applies it.
#[derive(Debug, Clone)]
pub struct SyncMapping {
    pub id: i64,
    pub source: SourceSpec,
    pub target: TagTarget,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The last user id of the batch; `None`: it was the last batch.
    pub upper: Option<Uuid>,
    /// Live users in the batch.
    pub users: u64,
    /// Users whose tags changed.
    pub changed: u64,
    /// Tag values that did not exist before.
    pub values_added: u64,
    pub assigned: u64,
    pub unassigned: u64,
    /// The mappings still live when the batch ran (the others were deleted meanwhile).
    pub live: Vec<i64>,
}

/// Applies `mappings` to the users after `after` (up to `batch_users` of them) in one transaction:
/// brings new values in, records which mapping synced them, assigns them, and removes the assignments
/// these mappings made in the range that they no longer produce. Memory is the batch's, in Postgres.
pub async fn sync_batch(
    pool: &Pool,
    tenant_id: i64,
    mappings: &[SyncMapping],
    after: Option<Uuid>,
    batch_users: i64,
) -> Result<BatchOutcome, StoreError> {
    let mut client = pool.get().await.during("syncing a batch of tags")?;
    let tx = client.transaction().await.during("syncing a batch of tags")?;
    tx.batch_execute(&super::set_local_statement_timeout(super::BATCH_STATEMENT_TIMEOUT)).await?;
    let ids: Vec<i64> = mappings.iter().map(|m| m.id).collect();
    // FOR SHARE: deleting a mapping waits for the batch, so it sees what the batch synced.
    let live: Vec<i64> = tx
        .query(
            "SELECT id FROM tag_mappings WHERE tenant_id = $1 AND id = ANY($2) AND pending_deletion_at IS NULL
             ORDER BY id FOR SHARE",
            &[&tenant_id, &ids],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let offset = batch_users.max(1) - 1;
    let upper: Option<Uuid> = tx
        .query_opt(
            "SELECT object_id FROM directory_objects
             WHERE tenant_id = $1 AND object_class = 'user' AND ($2::uuid IS NULL OR object_id > $2)
             ORDER BY object_id OFFSET $3 LIMIT 1",
            &[&tenant_id, &after, &offset],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let users: i64 = tx
        .query_one(
            "SELECT count(*) FROM directory_objects
             WHERE tenant_id = $1 AND object_class = 'user' AND deleted_at IS NULL
               AND ($2::uuid IS NULL OR object_id > $2) AND ($3::uuid IS NULL OR object_id <= $3)",
            &[&tenant_id, &after, &upper],
        )
        .await?
        .try_get(0)?;
    tx.batch_execute(
        "CREATE TEMP TABLE tag_desired (mapping_id bigint NOT NULL, kind text NOT NULL, key text, \
         key_norm text NOT NULL, value text NOT NULL, value_norm text NOT NULL, object_id uuid NOT NULL, \
         tag_id bigint) ON COMMIT DROP",
    )
    .await?;
    for mapping in mappings.iter().filter(|m| live.contains(&m.id)) {
        let (kind, key) = (mapping.target.kind(), mapping.target.key());
        match &mapping.source {
            SourceSpec::Attribute { path, mapped_key } => {
                tx.execute(
                    include_str!("sql/tags_desired_attribute.sql"),
                    &[&tenant_id, &after, &upper, &mapping.id, &kind, &key, path, mapped_key],
                )
                .await?
            }
            SourceSpec::GroupMembership => {
                tx.execute(
                    include_str!("sql/tags_desired_membership.sql"),
                    &[&tenant_id, &after, &upper, &mapping.id, &kind, &key],
                )
                .await?
            }
        };
    }
    tx.batch_execute("ANALYZE tag_desired").await?;
    let values_added = tx
        .execute(
            "INSERT INTO tags (tenant_id, kind, key, value, created_by)
             SELECT DISTINCT ON (kind, key_norm, value_norm) $1::bigint, kind, key, value, 'tag_sync'
             FROM tag_desired ORDER BY kind, key_norm, value_norm, value, mapping_id
             ON CONFLICT (tenant_id, kind, key_norm, value_norm) DO NOTHING",
            &[&tenant_id],
        )
        .await?;
    tx.execute(
        "UPDATE tag_desired d SET tag_id = t.id FROM tags t
         WHERE t.tenant_id = $1 AND t.kind = d.kind AND t.key_norm = d.key_norm AND t.value_norm = d.value_norm",
        &[&tenant_id],
    )
    .await?;
    tx.execute(
        "INSERT INTO tag_sources (tag_id, mapping_id) SELECT DISTINCT tag_id, mapping_id FROM tag_desired
         ON CONFLICT DO NOTHING",
        &[],
    )
    .await?;
    let counts = tx.query_one(include_str!("sql/tags_batch_assign.sql"), &[&tenant_id, &live, &after, &upper]).await?;
    let count = |i: usize| -> Result<u64, StoreError> { Ok(u64::try_from(counts.try_get::<_, i64>(i)?).unwrap_or(0)) };
    let outcome = BatchOutcome {
        upper,
        users: u64::try_from(users).unwrap_or(0),
        changed: count(2)?,
        values_added,
        assigned: count(0)?,
        unassigned: count(1)?,
        live,
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Stamps the mappings a finished tag sync applied (those still live).
pub async fn mark_synced(pool: &Pool, ids: &[i64]) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE tag_mappings SET last_synced_at = now() WHERE id = ANY($1) AND pending_deletion_at IS NULL",
            &[&ids],
        )
        .await?;
    Ok(())
}

/// Mappings pending deletion, oldest first.
pub async fn pending_deletions(pool: &Pool, tenant_id: i64) -> Result<Vec<i64>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id FROM tag_mappings WHERE tenant_id = $1 AND pending_deletion_at IS NOT NULL ORDER BY id",
            &[&tenant_id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
}

/// Deletes a pending mapping's values that nothing else keeps (operator-created, assigned by an
/// operator, or synced by another live mapping), then the mapping with its assignments; one
/// transaction, waiting at most `lock_timeout` for any row lock. Returns the values deleted; `None`
/// when the mapping is no longer pending (deleted meanwhile).
pub async fn delete_pending_mapping(
    pool: &Pool,
    tenant_id: i64,
    id: i64,
    lock_timeout: Duration,
) -> Result<Option<u64>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // An integer of milliseconds: nothing from outside reaches this text.
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{}ms'", lock_timeout.as_millis().max(1))).await?;
    let pending = tx
        .query_opt(
            "SELECT 1 FROM tag_mappings WHERE tenant_id = $1 AND id = $2 AND pending_deletion_at IS NOT NULL
             FOR UPDATE",
            &[&tenant_id, &id],
        )
        .await?;
    if pending.is_none() {
        return Ok(None);
    }
    let deleted = tx.execute(include_str!("sql/tags_delete_mapping_values.sql"), &[&id, &tenant_id]).await?;
    tx.execute("DELETE FROM tag_mappings WHERE id = $1", &[&id]).await?;
    tx.commit().await?;
    Ok(Some(deleted))
}

/// Keeps why the deletion of a pending mapping failed; it is retried at the next tag sync.
pub async fn record_deletion_failure(pool: &Pool, id: i64, error: &str) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE tag_mappings SET deletion_attempts = deletion_attempts + 1, deletion_error = $2 WHERE id = $1",
            &[&id, &error],
        )
        .await?;
    Ok(())
}

/// Records that the tenant's tag sync ran (the daily rule counts from here).
pub async fn record_tag_sync(pool: &Pool, tenant_id: i64, run_id: Uuid) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO tag_sync_state (tenant_id, last_run_id, last_finished_at) VALUES ($1, $2, now())
             ON CONFLICT (tenant_id) DO UPDATE SET last_run_id = EXCLUDED.last_run_id, last_finished_at = now()",
            &[&tenant_id, &run_id],
        )
        .await?;
    Ok(())
}

/// A tenant's inputs to the daily tag sync rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSyncState {
    /// Database time, so every instance decides on the same clock.
    pub now: DateTime<Utc>,
    pub entra_tenant_id: Uuid,
    pub enabled: bool,
    pub blocked: bool,
    /// Mappings, live or pending deletion.
    pub mappings: i64,
    pub last_finished_at: Option<DateTime<Utc>>,
}

/// `None` when the tenant does not exist.
pub async fn tag_sync_state(pool: &Pool, tenant_id: i64) -> Result<Option<TagSyncState>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT now(), t.entra_tenant_id, t.enabled, t.blocked,
                    (SELECT count(*) FROM tag_mappings m WHERE m.tenant_id = t.id),
                    (SELECT s.last_finished_at FROM tag_sync_state s WHERE s.tenant_id = t.id)
             FROM tenants t WHERE t.id = $1",
            &[&tenant_id],
        )
        .await?;
    row.map(|r| {
        Ok(TagSyncState {
            now: r.try_get(0)?,
            entra_tenant_id: r.try_get(1)?,
            enabled: r.try_get(2)?,
            blocked: r.try_get(3)?,
            mappings: r.try_get(4)?,
            last_finished_at: r.try_get(5)?,
        })
    })
    .transpose()
}

// ---------------------------------------------------------------------------------------------------
// Tag values, manual tags, asset groups and assignments

/// A tag value with where it came from and how many objects carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagValue {
    pub id: i64,
    pub target: TagTarget,
    pub value: String,
    /// Created by an operator.
    pub manual: bool,
    /// Mappings that synced it (live or pending deletion).
    pub mappings: Vec<i64>,
    /// Distinct objects carrying it (for any reason).
    pub objects: i64,
    pub created_at: DateTime<Utc>,
}

const TAG_COLUMNS: &str = "t.id, t.kind, t.key, t.value, t.manual, \
     ARRAY(SELECT s.mapping_id FROM tag_sources s WHERE s.tag_id = t.id ORDER BY 1), \
     (SELECT count(DISTINCT ot.object_id) FROM object_tags ot WHERE ot.tag_id = t.id), t.created_at";

fn tag_from(r: &tokio_postgres::Row) -> Result<TagValue, StoreError> {
    Ok(TagValue {
        id: r.try_get(0)?,
        target: TagTarget::from_columns(r.try_get(1)?, r.try_get(2)?),
        value: r.try_get(3)?,
        manual: r.try_get(4)?,
        mappings: r.try_get(5)?,
        objects: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}

/// Which values a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Custom,
    AssetGroup,
}

impl TagKind {
    fn as_str(self) -> &'static str {
        match self {
            TagKind::Custom => "custom",
            TagKind::AssetGroup => "asset_group",
        }
    }
}

/// Up to `limit` (1..=1000) values of `kind` (both when `None`) after id `after`, by id.
pub async fn list_tags(
    pool: &Pool,
    tenant_id: i64,
    kind: Option<TagKind>,
    limit: i64,
    after: Option<i64>,
) -> Result<Vec<TagValue>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {TAG_COLUMNS} FROM tags t
                 WHERE t.tenant_id = $1 AND ($2::text IS NULL OR t.kind = $2) AND ($3::bigint IS NULL OR t.id > $3)
                 ORDER BY t.id LIMIT $4"
            ),
            &[&tenant_id, &kind.map(TagKind::as_str), &after, &limit.clamp(1, 1000)],
        )
        .await?;
    rows.iter().map(tag_from).collect()
}

async fn get_tag_in(db: &impl GenericClient, tenant_id: i64, id: i64) -> Result<Option<TagValue>, StoreError> {
    let row = db
        .query_opt(
            &format!("SELECT {TAG_COLUMNS} FROM tags t WHERE t.tenant_id = $1 AND t.id = $2"),
            &[&tenant_id, &id],
        )
        .await?;
    row.as_ref().map(tag_from).transpose()
}

pub async fn get_tag(pool: &Pool, tenant_id: i64, id: i64) -> Result<Option<TagValue>, StoreError> {
    let client = pool.get().await?;
    get_tag_in(&client, tenant_id, id).await
}

fn tag_audit_view(tag: &TagValue) -> Value {
    json!({ "kind": tag.target.kind(), "key": tag.target.key(), "value": tag.value, "manual": tag.manual })
}

/// What creating a manual value did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateTag {
    Created(TagValue),
    /// A synced value with this identity existed: it is now manual too (kept when its mappings go).
    Adopted(TagValue),
    /// An operator already created it.
    Exists(TagValue),
}

/// Creates a manual tag value (an asset group for [`TagTarget::AssetGroup`]). `None`: no such tenant.
pub async fn create_tag(
    pool: &Pool,
    tenant_id: i64,
    target: &TagTarget,
    value: &str,
    actor: &Actor,
) -> Result<Option<CreateTag>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if tx.query_opt("SELECT 1 FROM tenants WHERE id = $1", &[&tenant_id]).await?.is_none() {
        return Ok(None);
    }
    let existing = tx
        .query_opt(
            "SELECT id, manual FROM tags WHERE tenant_id = $1 AND kind = $2 AND key_norm = lower(coalesce($3, ''))
             AND value_norm = CASE WHEN $2 = 'asset_group' THEN lower($4) ELSE $4 END FOR UPDATE",
            &[&tenant_id, &target.kind(), &target.key(), &value],
        )
        .await?;
    let (id, action, adopted) = match existing {
        Some(row) if row.try_get::<_, bool>(1)? => {
            let id: i64 = row.try_get(0)?;
            let tag = get_tag_in(&tx, tenant_id, id).await?.ok_or_else(|| missing_row("tag", id))?;
            return Ok(Some(CreateTag::Exists(tag)));
        }
        Some(row) => {
            let id: i64 = row.try_get(0)?;
            tx.execute("UPDATE tags SET manual = true WHERE id = $1", &[&id]).await?;
            (id, "tag.adopt", true)
        }
        None => {
            let row = tx
                .query_one(
                    "INSERT INTO tags (tenant_id, kind, key, value, manual, created_by)
                     VALUES ($1, $2, $3, $4, true, $5) RETURNING id",
                    &[&tenant_id, &target.kind(), &target.key(), &value, &actor.name],
                )
                .await?;
            (row.try_get(0)?, "tag.create", false)
        }
    };
    let tag = get_tag_in(&tx, tenant_id, id).await?.ok_or_else(|| missing_row("tag", id))?;
    audit::record(&tx, actor, action, "tag", &id.to_string(), None, Some(tag_audit_view(&tag))).await?;
    tx.commit().await?;
    Ok(Some(if adopted { CreateTag::Adopted(tag) } else { CreateTag::Created(tag) }))
}

/// What deleting a value did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteTag {
    Deleted,
    /// Live mappings sync it (it would come back): delete those mappings instead.
    SyncedBy(Vec<i64>),
}

/// Deletes a value and every assignment of it, unless a live mapping syncs it. `None`: no such value.
pub async fn delete_tag(
    pool: &Pool,
    tenant_id: i64,
    id: i64,
    kind: TagKind,
    actor: &Actor,
) -> Result<Option<DeleteTag>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let locked = tx
        .query_opt(
            "SELECT 1 FROM tags WHERE tenant_id = $1 AND id = $2 AND kind = $3 FOR UPDATE",
            &[&tenant_id, &id, &kind.as_str()],
        )
        .await?;
    if locked.is_none() {
        return Ok(None);
    }
    let before = get_tag_in(&tx, tenant_id, id).await?.ok_or_else(|| missing_row("tag", id))?;
    let live: Vec<i64> = tx
        .query(
            "SELECT s.mapping_id FROM tag_sources s JOIN tag_mappings m ON m.id = s.mapping_id
             WHERE s.tag_id = $1 AND m.pending_deletion_at IS NULL ORDER BY 1",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    if !live.is_empty() {
        return Ok(Some(DeleteTag::SyncedBy(live)));
    }
    tx.execute("DELETE FROM tags WHERE id = $1", &[&id]).await?;
    audit::record(&tx, actor, "tag.delete", "tag", &id.to_string(), Some(tag_audit_view(&before)), None).await?;
    tx.commit().await?;
    Ok(Some(DeleteTag::Deleted))
}

/// What a manual assignment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assign {
    /// Assignments written (objects that already had it manually are not counted).
    Assigned(u64),
    /// These objects are not stored (live) for the tenant: nothing was written.
    Unknown(Vec<Uuid>),
}

/// Assigns value `tag_id` to stored live objects of any class, as an operator (kept whatever the
/// mappings do). `None`: no such value.
pub async fn assign(
    pool: &Pool,
    tenant_id: i64,
    tag_id: i64,
    kind: TagKind,
    objects: &[Uuid],
    actor: &Actor,
) -> Result<Option<Assign>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let locked = tx
        .query_opt(
            "SELECT 1 FROM tags WHERE tenant_id = $1 AND id = $2 AND kind = $3 FOR SHARE",
            &[&tenant_id, &tag_id, &kind.as_str()],
        )
        .await?;
    if locked.is_none() {
        return Ok(None);
    }
    let unknown: Vec<Uuid> = tx
        .query(
            "SELECT id FROM unnest($2::uuid[]) AS id
             WHERE NOT EXISTS (SELECT 1 FROM directory_objects o
                               WHERE o.tenant_id = $1 AND o.object_id = id AND o.deleted_at IS NULL)
             ORDER BY 1",
            &[&tenant_id, &objects],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    if !unknown.is_empty() {
        return Ok(Some(Assign::Unknown(unknown)));
    }
    let assigned = tx
        .execute(
            "INSERT INTO object_tags (tenant_id, tag_id, object_class, object_id, mapping_id)
             SELECT DISTINCT $1::bigint, $2::bigint, o.object_class, o.object_id, NULL::bigint
             FROM directory_objects o WHERE o.tenant_id = $1 AND o.object_id = ANY($3) AND o.deleted_at IS NULL
             ON CONFLICT (tag_id, object_id, (coalesce(mapping_id, 0))) DO NOTHING",
            &[&tenant_id, &tag_id, &objects],
        )
        .await?;
    let after = json!({ "objects": objects, "assigned": assigned });
    audit::record(&tx, actor, "tag.assign", "tag", &tag_id.to_string(), None, Some(after)).await?;
    tx.commit().await?;
    Ok(Some(Assign::Assigned(assigned)))
}

/// Removes an operator's assignment of `tag_id` to `object_id` (a mapping's assignment stays: it is
/// the mapping's to remove). `None`: no such value; `Some(false)`: the object had no manual assignment.
pub async fn unassign(
    pool: &Pool,
    tenant_id: i64,
    tag_id: i64,
    kind: TagKind,
    object_id: Uuid,
    actor: &Actor,
) -> Result<Option<bool>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let exists = tx
        .query_opt(
            "SELECT 1 FROM tags WHERE tenant_id = $1 AND id = $2 AND kind = $3",
            &[&tenant_id, &tag_id, &kind.as_str()],
        )
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let removed = tx
        .execute(
            "DELETE FROM object_tags WHERE tag_id = $1 AND object_id = $2 AND mapping_id IS NULL",
            &[&tag_id, &object_id],
        )
        .await?;
    if removed > 0 {
        let before = json!({ "object": object_id });
        audit::record(&tx, actor, "tag.unassign", "tag", &tag_id.to_string(), Some(before), None).await?;
    }
    tx.commit().await?;
    Ok(Some(removed > 0))
}

/// An object carrying a value, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedObject {
    pub object_id: Uuid,
    pub class: String,
    pub display_name: Option<String>,
    pub manual: bool,
    /// Mappings that assigned it.
    pub mappings: Vec<i64>,
}

/// Up to `limit` (1..=1000) objects carrying `tag_id`, after `after`, by object id.
pub async fn tag_objects(
    pool: &Pool,
    tenant_id: i64,
    tag_id: i64,
    limit: i64,
    after: Option<Uuid>,
) -> Result<Vec<TaggedObject>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT ot.object_id, min(ot.object_class::text), min(o.attrs ->> 'displayName'),
                    bool_or(ot.mapping_id IS NULL),
                    coalesce(array_agg(ot.mapping_id ORDER BY ot.mapping_id) FILTER (WHERE ot.mapping_id IS NOT NULL),
                             '{}')
             FROM object_tags ot
             LEFT JOIN directory_objects o ON o.tenant_id = ot.tenant_id AND o.object_class = ot.object_class
                                          AND o.object_id = ot.object_id
             WHERE ot.tenant_id = $1 AND ot.tag_id = $2 AND ($3::uuid IS NULL OR ot.object_id > $3)
             GROUP BY ot.object_id ORDER BY ot.object_id LIMIT $4",
            &[&tenant_id, &tag_id, &after, &limit.clamp(1, 1000)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TaggedObject {
                object_id: r.try_get(0)?,
                class: r.try_get(1)?,
                display_name: r.try_get(2)?,
                manual: r.try_get(3)?,
                mappings: r.try_get(4)?,
            })
        })
        .collect()
}

/// A value on one object, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectTag {
    pub tag_id: i64,
    pub target: TagTarget,
    pub value: String,
    pub manual: bool,
    pub mappings: Vec<i64>,
}

/// The values object `object_id` carries, by kind, key and value.
pub async fn object_tags(pool: &Pool, tenant_id: i64, object_id: Uuid) -> Result<Vec<ObjectTag>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT t.id, t.kind, t.key, t.value, bool_or(ot.mapping_id IS NULL),
                    coalesce(array_agg(ot.mapping_id ORDER BY ot.mapping_id) FILTER (WHERE ot.mapping_id IS NOT NULL),
                             '{}')
             FROM object_tags ot JOIN tags t ON t.id = ot.tag_id
             WHERE ot.tenant_id = $1 AND ot.object_id = $2
             GROUP BY t.id ORDER BY t.kind, t.key_norm, t.value",
            &[&tenant_id, &object_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ObjectTag {
                tag_id: r.try_get(0)?,
                target: TagTarget::from_columns(r.try_get(1)?, r.try_get(2)?),
                value: r.try_get(3)?,
                manual: r.try_get(4)?,
                mappings: r.try_get(5)?,
            })
        })
        .collect()
}
