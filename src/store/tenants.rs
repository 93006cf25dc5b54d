//! Tenants: which Entra directory, in which cloud, with which credentials; enabled; full scan flag.

use std::collections::HashMap;

use tokio_postgres::Row;
use uuid::Uuid;

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
}

pub struct NewTenant {
    pub name: String,
    pub entra_tenant_id: Uuid,
    pub cloud: Cloud,
    pub credential_profile_id: Option<i64>,
    pub enabled: bool,
}

const COLUMNS: &str =
    "id, name, entra_tenant_id, cloud, custom_login_url, custom_graph_url, credential_profile_id, enabled, full_scan_next_run";

/// Registers a tenant; a new tenant starts with "perform a full scan on next run" set.
pub async fn create(pool: &Pool, tenant: &NewTenant) -> Result<Tenant, StoreError> {
    let client = pool.get().await?;
    let (login, graph) = match &tenant.cloud {
        Cloud::Custom { login_url, graph_url } => (Some(login_url.as_str()), Some(graph_url.as_str())),
        _ => (None, None),
    };
    let row = client
        .query_one(
            &format!(
                "INSERT INTO tenants (name, entra_tenant_id, cloud, custom_login_url, custom_graph_url, credential_profile_id, enabled)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
            ),
            &[
                &tenant.name,
                &tenant.entra_tenant_id,
                &tenant.cloud.name(),
                &login,
                &graph,
                &tenant.credential_profile_id,
                &tenant.enabled,
            ],
        )
        .await?;
    from_row(&row)
}

/// Registers many tenants in one statement (one transaction: all or none), as [`create`] would one by
/// one: the same columns, everything else from the column defaults. Returns the stored tenants in the
/// order given.
pub async fn create_many(pool: &Pool, tenants: &[NewTenant]) -> Result<Vec<Tenant>, StoreError> {
    if tenants.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
    let entra_ids: Vec<Uuid> = tenants.iter().map(|t| t.entra_tenant_id).collect();
    let clouds: Vec<&str> = tenants.iter().map(|t| t.cloud.name()).collect();
    let (logins, graphs): (Vec<Option<&str>>, Vec<Option<&str>>) = tenants
        .iter()
        .map(|t| match &t.cloud {
            Cloud::Custom { login_url, graph_url } => (Some(login_url.as_str()), Some(graph_url.as_str())),
            _ => (None, None),
        })
        .unzip();
    let profiles: Vec<Option<i64>> = tenants.iter().map(|t| t.credential_profile_id).collect();
    let enabled: Vec<bool> = tenants.iter().map(|t| t.enabled).collect();
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "INSERT INTO tenants (name, entra_tenant_id, cloud, custom_login_url, custom_graph_url, credential_profile_id, enabled)
                 SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::boolean[])
                 RETURNING {COLUMNS}"
            ),
            &[&names, &entra_ids, &clouds, &logins, &graphs, &profiles, &enabled],
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
    let row = client.query_opt(&format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"), &[&id]).await?;
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

fn from_row(row: &Row) -> Result<Tenant, StoreError> {
    let cloud_name: String = row.get(3);
    let cloud = match cloud_name.as_str() {
        "global" => Cloud::Global,
        "us_gov" => Cloud::UsGov,
        "us_gov_dod" => Cloud::UsGovDod,
        "china" => Cloud::China,
        "custom" => Cloud::Custom {
            login_url: row.get::<_, Option<String>>(4).unwrap_or_default(),
            graph_url: row.get::<_, Option<String>>(5).unwrap_or_default(),
        },
        other => return Err(StoreError::Rejected(format!("tenant row has unknown cloud {other:?}"))),
    };
    Ok(Tenant {
        id: row.get(0),
        name: row.get(1),
        entra_tenant_id: row.get(2),
        cloud,
        credential_profile_id: row.get(6),
        enabled: row.get(7),
        full_scan_next_run: row.get(8),
    })
}
