//! Schedule state of each (tenant, class): when jobs were last enqueued, failures in a row, coalesced
//! "one more run" requests, and the tenant quarantine. The decisions are in `crate::schedule`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::audit::{self, Actor};
use super::run_lock::lock_keys;
use super::{During, Pool, StoreError};
use crate::model::{ObjectClass, SyncMode};

/// What the supervisor knows about one class of one tenant, read in one query for all classes.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassState {
    pub class: ObjectClass,
    pub has_delta_link: bool,
    pub delta_link_at: Option<DateTime<Utc>>,
    pub last_full_scan_at: Option<DateTime<Utc>>,
    pub last_enqueued_at: Option<DateTime<Utc>>,
    pub last_full_enqueued_at: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// A worker holds the class's run lock right now.
    pub running: bool,
    /// When the class's latest run started, and whether it has ended (any outcome, `interrupted`
    /// included): a job enqueued before that start has been taken and is no longer pending.
    pub latest_run_started_at: Option<DateTime<Utc>>,
    pub latest_run_ended: bool,
    /// The latest run's last write (start, resume, progress, end): a resumed run keeps its first start.
    pub latest_run_touched_at: Option<DateTime<Utc>>,
    /// A run recorded the last job enqueued as its own: taken, even when that run's start (the worker's
    /// clock) is earlier than `last_enqueued_at` (stamped after the broker's confirm).
    pub last_job_taken: bool,
}

/// A tenant's schedule inputs; `None` from [`load`] when the tenant no longer exists.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSchedule {
    /// Database time, so every instance decides on the same clock.
    pub now: DateTime<Utc>,
    pub entra_tenant_id: uuid::Uuid,
    pub enabled: bool,
    /// "Perform a full scan on next run" and when it was last set.
    pub full_scan_next_run: bool,
    pub full_scan_requested_at: DateTime<Utc>,
    pub quarantined_at: Option<DateTime<Utc>>,
    pub classes: Vec<ClassState>,
}

pub async fn load(pool: &Pool, tenant_id: i64) -> Result<Option<TenantSchedule>, StoreError> {
    let client = pool.get().await.during("loading a tenant's schedule")?;
    let (classes, class_keys, tenant_key) = lock_keys(tenant_id);
    let rows = client
        .query(include_str!("sql/schedule_load.sql"), &[&tenant_id, &classes, &class_keys, &tenant_key])
        .await
        .during("loading a tenant's schedule")?;
    let Some(first) = rows.first() else { return Ok(None) };
    Ok(Some(TenantSchedule {
        now: first.try_get(13)?,
        entra_tenant_id: first.try_get(14)?,
        enabled: first.try_get(1)?,
        full_scan_next_run: first.try_get(2)?,
        full_scan_requested_at: first.try_get(3)?,
        quarantined_at: first.try_get(4)?,
        classes: rows.iter().map(class_state).collect::<Result<_, _>>()?,
    }))
}

fn class_state(row: &Row) -> Result<ClassState, StoreError> {
    let class: String = row.try_get(0)?;
    Ok(ClassState {
        class: class.parse().map_err(|e| StoreError::Unexpected(anyhow::Error::new(e)))?,
        has_delta_link: row.try_get::<_, Option<bool>>(5)?.unwrap_or(false),
        delta_link_at: row.try_get(6)?,
        last_full_scan_at: row.try_get(7)?,
        last_enqueued_at: row.try_get(8)?,
        last_full_enqueued_at: row.try_get(9)?,
        consecutive_failures: u32::try_from(row.try_get::<_, i32>(10)?).unwrap_or_default(),
        last_failure_at: row.try_get(11)?,
        running: row.try_get(12)?,
        latest_run_started_at: row.try_get(15)?,
        latest_run_ended: row.try_get(16)?,
        latest_run_touched_at: row.try_get(17)?,
        last_job_taken: row.try_get(18)?,
    })
}

/// Remembers that the job `job_id` of `mode` was just published for (tenant, class).
pub async fn mark_enqueued(
    pool: &Pool,
    tenant_id: i64,
    class: ObjectClass,
    mode: SyncMode,
    job_id: uuid::Uuid,
) -> Result<(), StoreError> {
    let client = pool.get().await.during("marking a job enqueued")?;
    let full = mode == SyncMode::Full;
    client
        .execute(
            "INSERT INTO sync_schedules AS s
                 (tenant_id, object_class, last_enqueued_at, last_full_enqueued_at, last_enqueued_job_id)
             VALUES ($1, $2::text::object_class, now(), CASE WHEN $3 THEN now() END, $4)
             ON CONFLICT (tenant_id, object_class) DO UPDATE
                 SET last_enqueued_at = now(),
                     last_full_enqueued_at = CASE WHEN $3 THEN now() ELSE s.last_full_enqueued_at END,
                     last_enqueued_job_id = $4",
            &[&tenant_id, &class.as_str(), &full, &job_id],
        )
        .await
        .during("marking a job enqueued")?;
    Ok(())
}

/// Records a successful run: the failure count restarts, and the quarantine lifts once no class of the
/// tenant is failing repeatedly any more.
pub async fn record_success(
    pool: &Pool,
    tenant_id: i64,
    class: ObjectClass,
    quarantine_after: u32,
) -> Result<(), StoreError> {
    let mut client = pool.get().await.during("recording a successful run")?;
    let transaction = client.transaction().await.during("recording a successful run")?;
    transaction
        .execute(
            "INSERT INTO sync_schedules (tenant_id, object_class) VALUES ($1, $2::text::object_class)
             ON CONFLICT (tenant_id, object_class) DO UPDATE SET consecutive_failures = 0, last_error = NULL",
            &[&tenant_id, &class.as_str()],
        )
        .await
        .during("recording a successful run")?;
    transaction
        .execute(
            "UPDATE tenants SET quarantined_at = NULL, quarantine_reason = NULL, updated_at = now()
             WHERE id = $1 AND quarantined_at IS NOT NULL AND NOT EXISTS (
                 SELECT 1 FROM sync_schedules WHERE tenant_id = $1 AND consecutive_failures >= $2)",
            &[&tenant_id, &(quarantine_after as i32)],
        )
        .await
        .during("recording a successful run")?;
    transaction.commit().await.during("recording a successful run")?;
    Ok(())
}

/// How long a tenant may stay quarantined: the failure recorded after that disables it, which operators
/// see as `blocked` (`entrasync_tenant_state`, alert `EntrasyncTenantBlocked`). `FailurePolicy` names it.
pub const QUARANTINE_CUTOFF: Duration = Duration::from_secs(28 * 24 * 3600);

/// Records a failed run; from `quarantine_after` failures in a row the tenant is quarantined with
/// the error as the reason, and once quarantined longer than [`QUARANTINE_CUTOFF`] it is disabled (the
/// cut-off is recorded in the reason and the audit log). Returns the failures in a row.
pub async fn record_failure(
    pool: &Pool,
    tenant_id: i64,
    class: ObjectClass,
    error: &str,
    quarantine_after: u32,
) -> Result<u32, StoreError> {
    const OPERATION: &str = "recording a failed run";
    let mut client = pool.get().await.during(OPERATION)?;
    let transaction = client.transaction().await.during(OPERATION)?;
    let row = transaction
        .query_one(include_str!("sql/schedule_record_failure.sql"), &[&tenant_id, &class.as_str(), &error])
        .await
        .during(OPERATION)?;
    let failures: i32 = row.try_get(0)?;
    if failures >= quarantine_after as i32 {
        let reason = format!("{class} runs failed {failures} times in a row; last error: {error}");
        transaction
            .execute(
                "UPDATE tenants SET quarantined_at = COALESCE(quarantined_at, now()), quarantine_reason = $2,
                     updated_at = now() WHERE id = $1",
                &[&tenant_id, &reason],
            )
            .await
            .during(OPERATION)?;
        disable_after_cutoff(&transaction, tenant_id, &reason).await?;
    }
    transaction.commit().await.during(OPERATION)?;
    Ok(u32::try_from(failures).unwrap_or_default())
}

/// The quarantine ran out: the tenant is disabled, and stays quarantined, so it shows as blocked.
async fn disable_after_cutoff(
    transaction: &deadpool_postgres::Transaction<'_>,
    tenant_id: i64,
    reason: &str,
) -> Result<(), StoreError> {
    let days = QUARANTINE_CUTOFF.as_secs() / 86_400;
    let reason = format!("disabled after {days} days in quarantine; {reason}");
    let cutoff = QUARANTINE_CUTOFF.as_secs_f64();
    let disabled = transaction
        .query_opt(
            "UPDATE tenants SET enabled = false, quarantine_reason = $2, updated_at = now()
             WHERE id = $1 AND enabled AND quarantined_at <= now() - make_interval(secs => $3)
             RETURNING quarantined_at",
            &[&tenant_id, &reason, &cutoff],
        )
        .await
        .during("disabling a tenant whose quarantine ran out")?;
    let Some(row) = disabled else { return Ok(()) };
    let since: DateTime<Utc> = row.try_get(0)?;
    tracing::warn!(tenant_id, %since, %reason, "quarantine ran out; tenant disabled (blocked)");
    let before = serde_json::json!({"enabled": true, "quarantined_at": since});
    let after = serde_json::json!({"enabled": false, "quarantined_at": since, "quarantine_reason": reason});
    let id = tenant_id.to_string();
    audit::record(transaction, &Actor::system(), "tenant.quarantine_cutoff", "tenant", &id, Some(before), Some(after))
        .await
        .during("auditing a quarantine cut-off")?;
    Ok(())
}

/// A quarantined tenant, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quarantine {
    pub tenant_id: i64,
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// Quarantined tenants, longest quarantined first.
pub async fn quarantined(pool: &Pool) -> Result<Vec<Quarantine>, StoreError> {
    let client = pool.get().await.during("listing quarantined tenants")?;
    let rows = client
        .query(
            "SELECT id, quarantined_at, COALESCE(quarantine_reason, '') FROM tenants
             WHERE quarantined_at IS NOT NULL ORDER BY quarantined_at, id",
            &[],
        )
        .await
        .during("listing quarantined tenants")?;
    rows.iter()
        .map(|r| Ok(Quarantine { tenant_id: r.try_get(0)?, since: r.try_get(1)?, reason: r.try_get(2)? }))
        .collect()
}

/// An operator's "try again now": clears the quarantine and the failure counts (audited when lifted).
pub async fn lift_quarantine(pool: &Pool, tenant_id: i64, actor: &Actor) -> Result<bool, StoreError> {
    let mut client = pool.get().await.during("lifting a quarantine")?;
    let transaction = client.transaction().await.during("lifting a quarantine")?;
    let before = transaction
        .query_opt(
            "SELECT jsonb_build_object('quarantined_at', quarantined_at, 'quarantine_reason', quarantine_reason)
             FROM tenants WHERE id = $1 FOR UPDATE",
            &[&tenant_id],
        )
        .await
        .during("lifting a quarantine")?;
    let Some(before) = before else { return Ok(false) };
    transaction
        .execute(
            "UPDATE sync_schedules SET consecutive_failures = 0, last_failure_at = NULL WHERE tenant_id = $1",
            &[&tenant_id],
        )
        .await
        .during("lifting a quarantine")?;
    let lifted = transaction
        .execute(
            "UPDATE tenants SET quarantined_at = NULL, quarantine_reason = NULL, updated_at = now()
             WHERE id = $1 AND quarantined_at IS NOT NULL",
            &[&tenant_id],
        )
        .await
        .during("lifting a quarantine")?;
    if lifted == 1 {
        let after = serde_json::json!({"quarantined_at": null, "quarantine_reason": null});
        let before: serde_json::Value = before.try_get(0)?;
        let id = tenant_id.to_string();
        audit::record(&transaction, actor, "tenant.lift_quarantine", "tenant", &id, Some(before), Some(after))
            .await
            .during("lifting a quarantine")?;
    }
    transaction.commit().await.during("lifting a quarantine")?;
    Ok(lifted == 1)
}

/// Asks for one more run of (tenant, class) after the current one; a full request wins over delta.
pub async fn request_rerun(pool: &Pool, tenant_id: i64, class: ObjectClass, mode: SyncMode) -> Result<(), StoreError> {
    let client = pool.get().await.during("requesting a rerun")?;
    client
        .execute(
            "INSERT INTO sync_schedules AS s (tenant_id, object_class, rerun_mode)
             VALUES ($1, $2::text::object_class, $3::text::sync_mode)
             ON CONFLICT (tenant_id, object_class) DO UPDATE
                 SET rerun_mode = CASE WHEN s.rerun_mode = 'full' THEN 'full'::sync_mode ELSE EXCLUDED.rerun_mode END",
            &[&tenant_id, &class.as_str(), &mode.as_str()],
        )
        .await
        .during("requesting a rerun")?;
    Ok(())
}

/// Takes and clears the coalesced rerun request, if any.
pub async fn take_rerun(pool: &Pool, tenant_id: i64, class: ObjectClass) -> Result<Option<SyncMode>, StoreError> {
    let client = pool.get().await.during("taking a rerun request")?;
    let row = client
        .query_opt(include_str!("sql/schedule_take_rerun.sql"), &[&tenant_id, &class.as_str()])
        .await
        .during("taking a rerun request")?;
    Ok(row.map(|r| r.try_get::<_, String>(0)).transpose()?.map(|mode| match mode.as_str() {
        "full" => SyncMode::Full,
        _ => SyncMode::Delta,
    }))
}
