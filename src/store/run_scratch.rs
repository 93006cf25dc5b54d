//! Per-run scratch state kept in Postgres (never in memory, so memory stays O(page) and a resumed run
//! keeps it): objects and memberships seen by a full round, deletions staged until the round's end,
//! objects changed so far.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{copy_in_binary, count_cached, execute_cached, StoreError};
use crate::model::ObjectClass;

/// Marks objects as listed by this (full) run; returns how many no earlier page had listed. Duplicates
/// in `ids` are fine: `ON CONFLICT DO NOTHING` skips the second one too, so no `DISTINCT` sort is needed.
pub async fn mark_seen(db: &impl GenericClient, run_id: Uuid, ids: &[Uuid]) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    execute_cached(
        db,
        "INSERT INTO sync_run_seen_objects (run_id, object_id) SELECT $1::uuid, unnest($2::uuid[]) \
         ON CONFLICT DO NOTHING",
        &[&run_id, &ids],
    )
    .await
}

/// Marks memberships as listed by this (full) run.
pub async fn mark_members_seen(
    db: &impl GenericClient,
    run_id: Uuid,
    group_ids: &[Uuid],
    member_ids: &[Uuid],
) -> Result<(), StoreError> {
    if group_ids.is_empty() {
        return Ok(());
    }
    execute_cached(
        db,
        "INSERT INTO sync_run_seen_members (run_id, group_id, member_id) \
         SELECT $1::uuid, g, m FROM unnest($2::uuid[], $3::uuid[]) AS s (g, m) ON CONFLICT DO NOTHING",
        &[&run_id, &group_ids, &member_ids],
    )
    .await?;
    Ok(())
}

/// Marks memberships the caller knows this run has not marked yet, by binary `COPY` (no conflict check).
/// Should one be marked after all, the primary key refuses the COPY and the transaction fails.
pub async fn copy_members_seen(
    tx: &deadpool_postgres::Transaction<'_>,
    run_id: Uuid,
    group_ids: &[Uuid],
    member_ids: &[Uuid],
) -> Result<u64, StoreError> {
    if group_ids.is_empty() {
        return Ok(0);
    }
    let rows = group_ids
        .iter()
        .zip(member_ids)
        .map(|(group_id, member_id)| -> [&(dyn ToSql + Sync); 3] { [&run_id, group_id, member_id] });
    copy_in_binary(
        tx,
        "COPY sync_run_seen_members (run_id, group_id, member_id) FROM STDIN (FORMAT binary)",
        "SELECT $1::uuid, $2::uuid, $3::uuid",
        "marking a batch of memberships seen",
        rows,
    )
    .await
}

/// Objects listed by this (full) run so far: those it marked seen and those it created. `may_have_created`
/// false (the run changed nothing, and every object it creates counts as changed) skips counting the
/// created ones, which scans the tenant's rows.
pub async fn listed_count(
    db: &impl GenericClient,
    run_id: Uuid,
    tenant_id: i64,
    class: ObjectClass,
    may_have_created: bool,
) -> Result<u64, StoreError> {
    let seen = count_cached(db, "SELECT count(*) FROM sync_run_seen_objects WHERE run_id = $1", &[&run_id]).await?;
    let created = if may_have_created { created_count(db, run_id, tenant_id, class).await? } else { 0 };
    Ok(seen + created)
}

/// Records objects as changed by this run; returns how many were not recorded before (duplicates in
/// `ids` count once, as in [`mark_seen`]).
pub async fn record_changed(db: &impl GenericClient, run_id: Uuid, ids: &[Uuid]) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    execute_cached(
        db,
        "INSERT INTO sync_run_changed_objects (run_id, object_id) SELECT $1::uuid, unnest($2::uuid[]) \
         ON CONFLICT DO NOTHING",
        &[&run_id, &ids],
    )
    .await
}

/// Stages deletions for the end of the run; a later deletion of the same object replaces the earlier.
pub async fn stage_deletions(
    db: &impl GenericClient,
    run_id: Uuid,
    ids: &[Uuid],
    permanent: &[bool],
    reasons: &[String],
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    execute_cached(
        db,
        "INSERT INTO sync_run_pending_deletions (run_id, object_id, permanent, reason) \
         SELECT $1::uuid, i, p, r FROM unnest($2::uuid[], $3::boolean[], $4::text[]) AS s (i, p, r) \
         ON CONFLICT (run_id, object_id) DO UPDATE SET permanent = EXCLUDED.permanent, reason = EXCLUDED.reason",
        &[&run_id, &ids, &permanent, &reasons],
    )
    .await?;
    Ok(())
}

/// Whether the run has staged any deletion (a page need not unstage anything otherwise).
pub async fn has_staged_deletions(db: &impl super::Db, run_id: Uuid) -> Result<bool, StoreError> {
    let statement =
        db.prepare_cached("SELECT EXISTS (SELECT 1 FROM sync_run_pending_deletions WHERE run_id = $1)").await?;
    Ok(db.query_one(&statement, &[&run_id]).await?.get(0))
}

/// Whether the run marked any object seen: in a delta round, only groups it restored are marked.
pub async fn has_seen(db: &impl super::Db, run_id: Uuid) -> Result<bool, StoreError> {
    let statement = db.prepare_cached("SELECT EXISTS (SELECT 1 FROM sync_run_seen_objects WHERE run_id = $1)").await?;
    Ok(db.query_one(&statement, &[&run_id]).await?.get(0))
}

/// Which of `ids` the run marked seen (one primary-key probe per id).
pub async fn seen_among(
    db: &impl GenericClient,
    run_id: Uuid,
    ids: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, StoreError> {
    if ids.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let statement = db
        .prepare_cached(
            "SELECT s.object_id FROM unnest($2::uuid[]) AS i (id) \
             CROSS JOIN LATERAL (SELECT object_id FROM sync_run_seen_objects \
                                 WHERE run_id = $1 AND object_id = i.id LIMIT 1) AS s",
        )
        .await?;
    let rows = db.query(&statement, &[&run_id, &ids]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Objects that reappeared later in the run are no longer to be deleted.
pub async fn unstage_deletions(db: &impl GenericClient, run_id: Uuid, ids: &[Uuid]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    execute_cached(
        db,
        "DELETE FROM sync_run_pending_deletions WHERE run_id = $1 AND object_id = ANY($2::uuid[])",
        &[&run_id, &ids],
    )
    .await?;
    Ok(())
}

/// Full round end: stages a restorable deletion of every live stored object the listing missed.
pub async fn stage_sweep(
    db: &impl GenericClient,
    run_id: Uuid,
    tenant_id: i64,
    class: ObjectClass,
    reason: &str,
) -> Result<u64, StoreError> {
    // A function of its own (migrations/V42) so the anti-join's plan holds without statistics.
    let sql = "SELECT stage_unlisted_deletions($1, $2, $3::text::object_class, $4)";
    count_cached(db, sql, &[&run_id, &tenant_id, &class.as_str(), &reason]).await
}

/// Staged deletions of this run that are not already held for an operator.
pub async fn pending_deletion_count(
    db: &impl GenericClient,
    run_id: Uuid,
    tenant_id: i64,
    class: ObjectClass,
) -> Result<u64, StoreError> {
    let sql = "SELECT count(*) FROM sync_run_pending_deletions p WHERE p.run_id = $1 AND NOT EXISTS ( \
                 SELECT 1 FROM held_deletions h WHERE h.tenant_id = $2 AND h.object_class = $3::text::object_class \
                 AND h.object_id = p.object_id AND h.status = 'held')";
    count_cached(db, sql, &[&run_id, &tenant_id, &class.as_str()]).await
}

/// What applying the staged deletions did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppliedDeletions {
    pub objects: u64,
    pub memberships: u64,
}

/// Applies the run's staged deletions (those not held).
pub async fn apply_pending_deletions(
    db: &impl GenericClient,
    run_id: Uuid,
    tenant_id: i64,
    class: ObjectClass,
) -> Result<AppliedDeletions, StoreError> {
    let statement = db.prepare_cached(include_str!("sql/deletions_apply_pending.sql")).await?;
    let row = db.query_one(&statement, &[&run_id, &tenant_id, &class.as_str()]).await?;
    let (objects, memberships): (i64, i64) = (row.get(0), row.get(1));
    Ok(AppliedDeletions {
        objects: u64::try_from(objects).unwrap_or(0),
        memberships: u64::try_from(memberships).unwrap_or(0),
    })
}

/// Full group round end: removes memberships of listed groups that the listing did not contain;
/// returns the affected groups (one entry per membership removed).
pub async fn sweep_members(db: &impl GenericClient, run_id: Uuid, tenant_id: i64) -> Result<Vec<Uuid>, StoreError> {
    let statement = db.prepare_cached(include_str!("sql/members_sweep.sql")).await?;
    let rows = db.query(&statement, &[&run_id, &tenant_id]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Forgets what a full listing saw (it restarts from the beginning): seen rows and seen chunks.
pub async fn forget_seen(db: &impl GenericClient, run_id: Uuid) -> Result<(), StoreError> {
    execute_cached(db, include_str!("sql/run_scratch_forget_seen.sql"), &[&run_id]).await?;
    Ok(())
}

/// A restarted listing must see again what the run created before: those objects become ordinary
/// stored ones (no longer implicitly listed), recorded as changed so they still count once.
pub async fn forget_created(
    db: &impl GenericClient,
    run_id: Uuid,
    tenant_id: i64,
    class: ObjectClass,
) -> Result<(), StoreError> {
    execute_cached(
        db,
        "WITH created AS ( \
             UPDATE directory_objects SET created_run = NULL \
             WHERE tenant_id = $2 AND object_class = $3::text::object_class AND created_run = $1 \
             RETURNING object_id) \
         INSERT INTO sync_run_changed_objects (run_id, object_id) SELECT $1, object_id FROM created \
         ON CONFLICT DO NOTHING",
        &[&run_id, &tenant_id, &class.as_str()],
    )
    .await?;
    Ok(())
}

/// Removes every scratch row of a finished run.
pub async fn clear(db: &impl GenericClient, run_id: Uuid) -> Result<(), StoreError> {
    execute_cached(db, include_str!("sql/run_scratch_clear.sql"), &[&run_id]).await?;
    Ok(())
}

/// Objects this run created (they carry `created_run`; a scan of the tenant's rows).
pub async fn created_count(
    db: &impl GenericClient,
    run_id: Uuid,
    tenant_id: i64,
    class: ObjectClass,
) -> Result<u64, StoreError> {
    let sql = "SELECT count(*) FROM directory_objects \
               WHERE tenant_id = $2 AND object_class = $3::text::object_class AND created_run = $1";
    count_cached(db, sql, &[&run_id, &tenant_id, &class.as_str()]).await
}

/// Snapshot path: the ids a batch saw first (16 bytes each, concatenated), one row per batch, written in
/// the batch's transaction (migrations/V55).
pub async fn record_seen_chunk(db: &impl GenericClient, run_id: Uuid, ids: &[Uuid]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let bytes: Vec<u8> = ids.iter().flat_map(|id| *id.as_bytes()).collect();
    execute_cached(db, "INSERT INTO sync_run_seen_chunks (run_id, ids) VALUES ($1, $2)", &[&run_id, &bytes]).await?;
    Ok(())
}

/// The seen chunks of a run, as written.
pub async fn seen_chunks(db: &impl GenericClient, run_id: Uuid) -> Result<Vec<Vec<u8>>, StoreError> {
    let statement = db.prepare_cached("SELECT ids FROM sync_run_seen_chunks WHERE run_id = $1").await?;
    let rows = db.query(&statement, &[&run_id]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The ids a run marked in `sync_run_seen_objects` (streaming path).
pub async fn seen_ids(db: &impl GenericClient, run_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let statement = db.prepare_cached("SELECT object_id FROM sync_run_seen_objects WHERE run_id = $1").await?;
    let rows = db.query(&statement, &[&run_id]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A run continuing on the streaming path turns the chunks of its snapshot-path batches into seen rows.
pub async fn seen_chunks_to_rows(db: &impl GenericClient, run_id: Uuid) -> Result<u64, StoreError> {
    execute_cached(db, include_str!("sql/rescan_chunks_to_rows.sql"), &[&run_id]).await
}

/// Snapshot path, full round end: stages a restorable deletion of each of `ids` (the snapshot's live
/// objects the listing missed) that is still live and not created by the run. Returns the rows staged.
pub async fn stage_unlisted(
    db: &impl GenericClient,
    run_id: Uuid,
    tenant_id: i64,
    class: ObjectClass,
    ids: &[Uuid],
    reason: &str,
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    execute_cached(
        db,
        include_str!("sql/rescan_stage_unlisted.sql"),
        &[&run_id, &tenant_id, &class.as_str(), &ids, &reason],
    )
    .await
}
