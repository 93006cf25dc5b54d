//! Tenants: which Entra directory, in which cloud, with which credentials; enabled, blocked; full scan
//! flag; permission and consent state; the overview the API lists; deletion with everything stored.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::audit::{self, Actor};
use super::{Pool, StoreError};
use crate::model::Cloud;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Tenant {
    pub id: i64,
    pub name: String,
    pub entra_tenant_id: Uuid,
    pub cloud: Cloud,
    pub credential_profile_id: Option<i64>,
    pub enabled: bool,
    pub full_scan_next_run: bool,
    /// Stopped by an operator: never scheduled, data and credentials kept.
    pub blocked: bool,
}

/// The tenant's change-event switch (docs/events.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChangeEvents {
    /// Every change a run commits becomes an event in `change_outbox`.
    pub change_events: bool,
    /// What the first full round of an empty class emits while events are on.
    pub change_events_first_round: FirstRound,
}

/// What the first full round of an empty (tenant, class) emits while change events are on
/// (`tenants.change_events_first_round`; docs/events.md "First round").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirstRound {
    /// A `created` event per object and a `member_added` per membership.
    Objects,
    /// One `snapshot` event per class when the round ends; consumers then read the store.
    Snapshot,
}

impl FirstRound {
    pub fn as_str(self) -> &'static str {
        match self {
            FirstRound::Objects => "objects",
            FirstRound::Snapshot => "snapshot",
        }
    }

    /// `objects` or `snapshot`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "objects" => Some(FirstRound::Objects),
            "snapshot" => Some(FirstRound::Snapshot),
            _ => None,
        }
    }
}

pub struct NewTenant {
    pub name: String,
    pub entra_tenant_id: Uuid,
    pub cloud: Cloud,
    pub credential_profile_id: Option<i64>,
    pub enabled: bool,
    pub full_scan_next_run: bool,
}

/// What an operator may change; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct TenantChanges {
    pub name: Option<String>,
    pub credential_profile_id: Option<i64>,
    pub enabled: Option<bool>,
    pub full_scan_next_run: Option<bool>,
    /// Switching events on emits a `snapshot` event per class that holds objects (migrations/V57).
    pub change_events: Option<bool>,
    pub change_events_first_round: Option<FirstRound>,
}

const COLUMNS: &str = "id, name, entra_tenant_id, cloud, custom_login_url, custom_graph_url, credential_profile_id, \
     enabled, full_scan_next_run, blocked";

/// How long switching events waits for the directory writes in flight (see [`lock_directory_for_switch`]).
const SWITCH_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '30s'";

/// Taken before a tenant's event switch changes, and before the tenant row, in the order writers take
/// them. Switching on emits a snapshot per class (migrations/V57) that consumers take as their baseline:
/// a batch already writing without events must commit before it, or its change would be neither in an
/// event nor, perhaps, in the store when a consumer reads it. And the first switch on or the last off
/// changes the form of the change-event triggers (migrations/V60), which needs this lock anyway. It waits
/// for the writes in flight and holds new ones for the few milliseconds of the switch; readers never wait.
async fn lock_directory_for_switch(db: &impl GenericClient) -> Result<(), StoreError> {
    db.batch_execute(SWITCH_LOCK_TIMEOUT).await?;
    db.batch_execute("LOCK TABLE directory_objects, group_members IN SHARE ROW EXCLUSIVE MODE").await?;
    Ok(())
}

fn custom_urls(cloud: &Cloud) -> (Option<&str>, Option<&str>) {
    match cloud {
        Cloud::Custom { login_url, graph_url } => (Some(login_url.as_str()), Some(graph_url.as_str())),
        _ => (None, None),
    }
}

fn audit_view(tenant: &Tenant) -> Value {
    serde_json::to_value(tenant).unwrap_or(Value::Null)
}

/// Registers a tenant.
pub async fn create(pool: &Pool, tenant: &NewTenant, actor: &Actor) -> Result<Tenant, StoreError> {
    let (login, graph) = custom_urls(&tenant.cloud);
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let row = transaction
        .query_one(
            &format!(
                "INSERT INTO tenants (name, entra_tenant_id, cloud, custom_login_url, custom_graph_url, credential_profile_id, enabled, full_scan_next_run)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
            ),
            &[
                &tenant.name,
                &tenant.entra_tenant_id,
                &tenant.cloud.name(),
                &login,
                &graph,
                &tenant.credential_profile_id,
                &tenant.enabled,
                &tenant.full_scan_next_run,
            ],
        )
        .await?;
    let stored = from_row(&row)?;
    audit::record(
        &transaction,
        actor,
        "tenant.create",
        "tenant",
        &stored.id.to_string(),
        None,
        Some(audit_view(&stored)),
    )
    .await?;
    transaction.commit().await?;
    Ok(stored)
}

/// Registers many tenants in one statement (one transaction: all or none), as [`create`] would one by
/// one (without audit rows: the fleet benchmark's registry). Returns the stored tenants in the order given.
pub async fn create_many(pool: &Pool, tenants: &[NewTenant]) -> Result<Vec<Tenant>, StoreError> {
    if tenants.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
    let entra_ids: Vec<Uuid> = tenants.iter().map(|t| t.entra_tenant_id).collect();
    let clouds: Vec<&str> = tenants.iter().map(|t| t.cloud.name()).collect();
    let (logins, graphs): (Vec<Option<&str>>, Vec<Option<&str>>) =
        tenants.iter().map(|t| custom_urls(&t.cloud)).unzip();
    let profiles: Vec<Option<i64>> = tenants.iter().map(|t| t.credential_profile_id).collect();
    let enabled: Vec<bool> = tenants.iter().map(|t| t.enabled).collect();
    let full: Vec<bool> = tenants.iter().map(|t| t.full_scan_next_run).collect();
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "INSERT INTO tenants (name, entra_tenant_id, cloud, custom_login_url, custom_graph_url, credential_profile_id, enabled, full_scan_next_run)
                 SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::boolean[], $8::boolean[])
                 RETURNING {COLUMNS}"
            ),
            &[&names, &entra_ids, &clouds, &logins, &graphs, &profiles, &enabled, &full],
        )
        .await?;
    // The Entra tenant id is unique, so it puts the rows back in the order given.
    let mut stored: HashMap<Uuid, Tenant> =
        rows.iter().map(from_row).map(|t| t.map(|t| (t.entra_tenant_id, t))).collect::<Result<_, _>>()?;
    entra_ids
        .iter()
        .map(|id| {
            stored
                .remove(id)
                .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("tenant {id} was not returned by the insert")))
        })
        .collect()
}

pub async fn get(pool: &Pool, id: i64) -> Result<Option<Tenant>, StoreError> {
    let client = pool.get().await?;
    get_in(&client, id, "").await
}

async fn get_in(db: &impl GenericClient, id: i64, lock: &str) -> Result<Option<Tenant>, StoreError> {
    let row = db.query_opt(&format!("SELECT {COLUMNS} FROM tenants WHERE id = $1 {lock}"), &[&id]).await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn find_by_entra_id(pool: &Pool, entra_tenant_id: Uuid) -> Result<Option<Tenant>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(&format!("SELECT {COLUMNS} FROM tenants WHERE entra_tenant_id = $1"), &[&entra_tenant_id])
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(pool: &Pool) -> Result<Vec<Tenant>, StoreError> {
    let client = pool.get().await?;
    let rows = client.query(&format!("SELECT {COLUMNS} FROM tenants ORDER BY id"), &[]).await?;
    rows.iter().map(from_row).collect()
}

/// "Perform a full scan on next run", as operators set it.
pub async fn request_full_scan(pool: &Pool, id: i64) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let updated = client
        .execute("UPDATE tenants SET full_scan_next_run = true, updated_at = now() WHERE id = $1", &[&id])
        .await?;
    Ok(updated == 1)
}

/// Applies an operator's changes; `None` when the tenant does not exist. Setting the full-scan flag
/// (even when already set) restamps the request, so every class runs a full round after it.
pub async fn update(
    pool: &Pool,
    id: i64,
    changes: &TenantChanges,
    actor: &Actor,
) -> Result<Option<Tenant>, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let switching = match changes.change_events {
        Some(wanted) => events_in(&transaction, id).await?.is_some_and(|e| e.change_events != wanted),
        None => false,
    };
    if switching {
        lock_directory_for_switch(&transaction).await?;
    }
    let Some(before) = get_in(&transaction, id, "FOR UPDATE").await? else { return Ok(None) };
    let Some(before_events) = events_in(&transaction, id).await? else { return Ok(None) };
    let first_round = changes.change_events_first_round.map(FirstRound::as_str);
    let row = transaction
        .query_one(
            &format!(
                "UPDATE tenants SET name = COALESCE($2, name),
                     credential_profile_id = COALESCE($3, credential_profile_id),
                     enabled = COALESCE($4, enabled),
                     full_scan_next_run = COALESCE($5, full_scan_next_run),
                     full_scan_requested_at = CASE WHEN $5 THEN now() ELSE full_scan_requested_at END,
                     change_events = COALESCE($6, change_events),
                     change_events_first_round = COALESCE($7, change_events_first_round),
                     updated_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}, change_events, change_events_first_round"
            ),
            &[
                &id,
                &changes.name,
                &changes.credential_profile_id,
                &changes.enabled,
                &changes.full_scan_next_run,
                &changes.change_events,
                &first_round,
            ],
        )
        .await?;
    let after = from_row(&row)?;
    let after_events = events_from_row(&row)?;
    audit::record(
        &transaction,
        actor,
        "tenant.update",
        "tenant",
        &id.to_string(),
        Some(audit_view_with(&before, &before_events)),
        Some(audit_view_with(&after, &after_events)),
    )
    .await?;
    transaction.commit().await?;
    Ok(Some(after))
}

/// Deletes the tenant and everything stored for it, in one transaction, and leaves a tombstone
/// ([`was_deleted`]). False when it does not exist.
pub async fn delete(pool: &Pool, id: i64, actor: &Actor) -> Result<bool, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    if events_in(&transaction, id).await?.is_some_and(|e| e.change_events) {
        lock_directory_for_switch(&transaction).await?;
    }
    // The row lock makes a concurrent history insert (its foreign key check) wait, then fail.
    let Some(before) = get_in(&transaction, id, "FOR UPDATE").await? else { return Ok(false) };
    // Its objects and memberships go without an event each (docs/events.md "Tenant deletion").
    transaction.execute("UPDATE tenants SET change_events = false WHERE id = $1", &[&id]).await?;
    transaction.execute(include_str!("sql/tenants_delete.sql"), &[&id]).await?;
    transaction.execute("DELETE FROM sync_runs WHERE tenant_id = $1", &[&id]).await?;
    transaction.execute("DELETE FROM sync_run_counts WHERE tenant_id = $1", &[&id]).await?;
    transaction.execute("DELETE FROM tenants WHERE id = $1", &[&id]).await?;
    transaction
        .execute(
            "INSERT INTO deleted_tenants (id, entra_tenant_id, name) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET deleted_at = now()",
            &[&id, &before.entra_tenant_id, &before.name],
        )
        .await?;
    audit::record(&transaction, actor, "tenant.delete", "tenant", &id.to_string(), Some(audit_view(&before)), None)
        .await?;
    transaction.commit().await?;
    tracing::info!(tenant_id = id, "tenant deleted with everything stored for it");
    Ok(true)
}

/// Whether tenant `id` was deleted (a queued job of it is dropped, not dead-lettered).
pub async fn was_deleted(pool: &Pool, id: i64) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let row = client.query_one("SELECT EXISTS (SELECT 1 FROM deleted_tenants WHERE id = $1)", &[&id]).await?;
    Ok(row.try_get(0)?)
}

/// Runs an audited single-row update of tenant `id`: `set` is the SET list (params from $2), `view`
/// the columns shown before and after (a JSON object expression). False when the tenant does not exist.
async fn audited_update(
    pool: &Pool,
    id: i64,
    action: &str,
    set: &str,
    view: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    actor: &Actor,
) -> Result<bool, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let before = transaction.query_opt(&format!("SELECT {view} FROM tenants WHERE id = $1 FOR UPDATE"), &[&id]).await?;
    let Some(before) = before else { return Ok(false) };
    let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&id];
    all.extend_from_slice(params);
    let after = transaction
        .query_one(&format!("UPDATE tenants SET {set}, updated_at = now() WHERE id = $1 RETURNING {view}"), &all)
        .await?;
    let (before, after): (Value, Value) = (before.try_get(0)?, after.try_get(0)?);
    audit::record(&transaction, actor, action, "tenant", &id.to_string(), Some(before), Some(after)).await?;
    transaction.commit().await?;
    Ok(true)
}

/// Block (stop syncing, keep data and credentials) or unblock.
pub async fn set_blocked(pool: &Pool, id: i64, blocked: bool, actor: &Actor) -> Result<bool, StoreError> {
    let action = if blocked { "tenant.block" } else { "tenant.unblock" };
    audited_update(pool, id, action, "blocked = $2", "jsonb_build_object('blocked', blocked)", &[&blocked], actor).await
}

/// Clears block, quarantine, and each class's failures and last error.
pub async fn reset(pool: &Pool, id: i64, actor: &Actor) -> Result<bool, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let view = "jsonb_build_object('blocked', t.blocked, 'quarantined_at', t.quarantined_at, 'quarantine_reason', \
        t.quarantine_reason, 'failures', (SELECT jsonb_object_agg(s.object_class, jsonb_build_object( \
        'consecutive_failures', s.consecutive_failures, 'last_error', s.last_error)) \
        FROM sync_schedules s WHERE s.tenant_id = t.id))";
    let select = format!("SELECT {view} FROM tenants t WHERE t.id = $1");
    let Some(before) = transaction.query_opt(&format!("{select} FOR UPDATE OF t"), &[&id]).await? else {
        return Ok(false);
    };
    transaction
        .execute(
            "UPDATE sync_schedules SET consecutive_failures = 0, last_failure_at = NULL, last_error = NULL
             WHERE tenant_id = $1",
            &[&id],
        )
        .await?;
    transaction
        .execute(
            "UPDATE tenants SET blocked = false, quarantined_at = NULL, quarantine_reason = NULL, updated_at = now()
             WHERE id = $1",
            &[&id],
        )
        .await?;
    let after = transaction.query_one(&select, &[&id]).await?;
    let (before, after): (Value, Value) = (before.try_get(0)?, after.try_get(0)?);
    audit::record(&transaction, actor, "tenant.reset", "tenant", &id.to_string(), Some(before), Some(after)).await?;
    transaction.commit().await?;
    Ok(true)
}

/// The outcome of a permission check (a system write: not audited). `status` is one of unknown,
/// granted, granted_needs_settings, needs_additional_permissions, error (else `Rejected`).
pub async fn record_permissions(pool: &Pool, id: i64, status: &str, details: Value) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let updated = client
        .execute(
            "UPDATE tenants SET permission_status = $2, permission_details = $3, permissions_checked_at = now()
             WHERE id = $1",
            &[&id, &status, &details],
        )
        .await?;
    Ok(updated == 1)
}

/// The outcome of an admin consent for the tenant.
pub async fn record_consent(
    pool: &Pool,
    id: i64,
    granted: bool,
    error: Option<&str>,
    actor: &Actor,
) -> Result<bool, StoreError> {
    let state = if granted { "granted" } else { "refused" };
    let view = "jsonb_build_object('consent_state', consent_state, 'consent_error', consent_error)";
    audited_update(
        pool,
        id,
        "tenant.consent",
        "consent_state = $2, consent_error = $3, consented_at = now()",
        view,
        &[&state, &error],
        actor,
    )
    .await
}

/// What Entra reports about the directory (`GET /organization`): a system write, not audited.
pub async fn set_directory_info(
    pool: &Pool,
    id: i64,
    display_name: Option<&str>,
    verified_domains: &[String],
) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let updated = client
        .execute(
            "UPDATE tenants SET display_name_from_entra = $2, verified_domains = $3 WHERE id = $1",
            &[&id, &display_name, &verified_domains],
        )
        .await?;
    Ok(updated == 1)
}

/// A tenant from a row whose first ten columns are [`COLUMNS`] (also the run start's claim).
pub(crate) fn from_row(row: &Row) -> Result<Tenant, StoreError> {
    let cloud_name: String = row.try_get(3)?;
    let cloud = match cloud_name.as_str() {
        "global" => Cloud::Global,
        "us_gov" => Cloud::UsGov,
        "us_gov_dod" => Cloud::UsGovDod,
        "china" => Cloud::China,
        "custom" => Cloud::Custom {
            login_url: row.try_get::<_, Option<String>>(4)?.unwrap_or_default(),
            graph_url: row.try_get::<_, Option<String>>(5)?.unwrap_or_default(),
        },
        other => return Err(StoreError::Rejected(format!("tenant row has unknown cloud {other:?}"))),
    };
    Ok(Tenant {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        entra_tenant_id: row.try_get(2)?,
        cloud,
        credential_profile_id: row.try_get(6)?,
        enabled: row.try_get(7)?,
        full_scan_next_run: row.try_get(8)?,
        blocked: row.try_get(9)?,
    })
}

/// The change-event columns, read by name (the overview query lists them last).
fn events_from_row(row: &Row) -> Result<ChangeEvents, StoreError> {
    let text: String = row.try_get("change_events_first_round")?;
    let first_round = FirstRound::parse(&text)
        .ok_or_else(|| StoreError::Rejected(format!("tenant row has unknown first round {text:?}")))?;
    Ok(ChangeEvents { change_events: row.try_get("change_events")?, change_events_first_round: first_round })
}

/// The tenant's change-event switch; `None` when it does not exist.
pub async fn change_events(pool: &Pool, id: i64) -> Result<Option<ChangeEvents>, StoreError> {
    let client = pool.get().await?;
    events_in(&client, id).await
}

async fn events_in(db: &impl GenericClient, id: i64) -> Result<Option<ChangeEvents>, StoreError> {
    let row =
        db.query_opt("SELECT change_events, change_events_first_round FROM tenants WHERE id = $1", &[&id]).await?;
    row.as_ref().map(events_from_row).transpose()
}

/// What the audit log shows of a tenant: its row and its event switch.
fn audit_view_with(tenant: &Tenant, events: &ChangeEvents) -> Value {
    let mut view = audit_view(tenant);
    if let (Value::Object(view), Ok(Value::Object(events))) = (&mut view, serde_json::to_value(events)) {
        view.extend(events);
    }
    view
}

/// The latest run of one class.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClassLastRun {
    pub run_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub status: String,
}

/// The latest start and the worst status of the classes' latest runs.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LastSync {
    pub started_at: Option<DateTime<Utc>>,
    pub status: Option<String>,
    /// By class name (`user`, `group`, `device`); a class that never ran is absent.
    pub classes: BTreeMap<String, ClassLastRun>,
}

/// A tenant as the API lists and reads it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantOverview {
    #[serde(flatten)]
    pub tenant: Tenant,
    #[serde(flatten)]
    pub events: ChangeEvents,
    pub credential_profile_name: Option<String>,
    pub permission_status: String,
    pub permissions_checked_at: Option<DateTime<Utc>>,
    pub quarantined_at: Option<DateTime<Utc>>,
    pub quarantine_reason: Option<String>,
    pub verified_domains: Vec<String>,
    pub display_name_from_entra: Option<String>,
    /// `granted` or `refused`, from the last admin consent.
    pub consent_state: Option<String>,
    pub consent_error: Option<String>,
    pub consented_at: Option<DateTime<Utc>>,
    pub last_sync: LastSync,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Worse statuses rank higher: failed > held > warning > cancelled > running > success.
fn severity(status: &str) -> u8 {
    match status {
        "failed" => 5,
        "held" => 4,
        "warning" => 3,
        "cancelled" => 2,
        "running" => 1,
        _ => 0,
    }
}

/// Every tenant by name, with its latest run per class: one query.
pub async fn list_overview(pool: &Pool) -> Result<Vec<TenantOverview>, StoreError> {
    overview(pool, None).await
}

pub async fn get_overview(pool: &Pool, id: i64) -> Result<Option<TenantOverview>, StoreError> {
    Ok(overview(pool, Some(id)).await?.into_iter().next())
}

async fn overview(pool: &Pool, id: Option<i64>) -> Result<Vec<TenantOverview>, StoreError> {
    let client = pool.get().await?;
    let rows = client.query(include_str!("sql/tenants_overview.sql"), &[&id]).await?;
    let mut out: Vec<TenantOverview> = Vec::new();
    for row in &rows {
        let tenant_id: i64 = row.try_get(0)?;
        if out.last().is_none_or(|o| o.tenant.id != tenant_id) {
            out.push(TenantOverview {
                tenant: from_row(row)?,
                events: events_from_row(row)?,
                credential_profile_name: row.try_get(10)?,
                permission_status: row.try_get(11)?,
                permissions_checked_at: row.try_get(12)?,
                quarantined_at: row.try_get(13)?,
                quarantine_reason: row.try_get(14)?,
                verified_domains: row.try_get(15)?,
                display_name_from_entra: row.try_get(16)?,
                consent_state: row.try_get(17)?,
                consent_error: row.try_get(18)?,
                consented_at: row.try_get(19)?,
                created_at: row.try_get(20)?,
                updated_at: row.try_get(21)?,
                last_sync: LastSync::default(),
            });
        }
        let (Some(run_id), Some(started_at), Some(status)) =
            (row.try_get::<_, Option<Uuid>>(23)?, row.try_get(24)?, row.try_get::<_, Option<String>>(25)?)
        else {
            continue;
        };
        let Some(last) = out.last_mut().map(|o| &mut o.last_sync) else { continue };
        if last.started_at.is_none_or(|s| s < started_at) {
            last.started_at = Some(started_at);
        }
        if last.status.as_deref().is_none_or(|s| severity(&status) > severity(s)) {
            last.status = Some(status.clone());
        }
        last.classes.insert(row.try_get(22)?, ClassLastRun { run_id, started_at, status });
    }
    Ok(out)
}
