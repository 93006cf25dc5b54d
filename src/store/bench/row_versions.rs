//! A tenant's object and membership rows by row version (`xmin`): how many were written by transactions
//! after a given transaction id.

use deadpool_postgres::Client;

use super::super::{Pool, StoreError};

const SNAPSHOT: &str = "SELECT txid_current() % 4294967296, \
                        (SELECT count(*) FROM directory_objects WHERE tenant_id = $1), \
                        (SELECT count(*) FROM group_members WHERE tenant_id = $1)";

const NEWER_OBJECTS: &str =
    "SELECT count(*) FILTER (WHERE xmin::text::bigint > $2), count(*) FROM directory_objects WHERE tenant_id = $1";

const NEWER_MEMBERS: &str =
    "SELECT count(*) FILTER (WHERE xmin::text::bigint > $2), count(*) FROM group_members WHERE tenant_id = $1";

/// A transaction id (32 bits, as `xmin` holds it) and the tenant's live row counts at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub xid: i64,
    pub objects: i64,
    pub members: i64,
}

/// One table's rows of the tenant: those whose version is newer than the snapshot's transaction id,
/// and all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub newer: i64,
    pub rows: i64,
}

/// [`Versions`] of the tenant's object rows and membership rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantVersions {
    pub objects: Versions,
    pub members: Versions,
}

/// Takes a transaction id and counts the tenant's rows, in one statement.
pub async fn snapshot(pool: &Pool, tenant_id: i64) -> Result<Snapshot, StoreError> {
    let client = pool.get().await?;
    let row = client.query_one(SNAPSHOT, &[&tenant_id]).await?;
    Ok(Snapshot { xid: row.try_get(0)?, objects: row.try_get(1)?, members: row.try_get(2)? })
}

/// Counts the tenant's rows written after transaction `xid` (`directory_objects`, then `group_members`,
/// on one connection). Assumes no xid wraparound since `xid`.
pub async fn newer_than(pool: &Pool, tenant_id: i64, xid: i64) -> Result<TenantVersions, StoreError> {
    let client = pool.get().await?;
    let objects = versions(&client, NEWER_OBJECTS, tenant_id, xid).await?;
    let members = versions(&client, NEWER_MEMBERS, tenant_id, xid).await?;
    Ok(TenantVersions { objects, members })
}

async fn versions(client: &Client, statement: &str, tenant_id: i64, xid: i64) -> Result<Versions, StoreError> {
    let row = client.query_one(statement, &[&tenant_id, &xid]).await?;
    Ok(Versions { newer: row.try_get(0)?, rows: row.try_get(1)? })
}
