//! Group membership (`group_members`), merged from `members@delta` slices.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{copy_in_binary, StoreError};

/// Membership entries as parallel columns (bound as arrays).
#[derive(Debug, Default)]
pub struct MemberEntries {
    pub group_ids: Vec<Uuid>,
    pub member_ids: Vec<Uuid>,
    /// `user`, `group`, `device`, … (`directoryObject` when Graph did not say).
    pub member_classes: Vec<String>,
}

impl MemberEntries {
    pub fn push(&mut self, group_id: Uuid, member_id: Uuid, member_class: &str) {
        self.group_ids.push(group_id);
        self.member_ids.push(member_id);
        self.member_classes.push(member_class.to_owned());
    }

    pub fn len(&self) -> usize {
        self.group_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.group_ids.is_empty()
    }
}

/// Adds memberships not stored yet; returns the groups that gained a member (one entry per row written).
/// `fresh[i]`: entry `i`'s group has no membership stored before this run (it was created by it), so
/// the entry is inserted without looking for it first; the result is the same either way.
pub async fn add(
    db: &impl GenericClient,
    tenant_id: i64,
    entries: &MemberEntries,
    fresh: &[bool],
) -> Result<Vec<Uuid>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let statement = db.prepare_cached(include_str!("sql/members_add.sql")).await?;
    let rows = db
        .query(&statement, &[&tenant_id, &entries.group_ids, &entries.member_ids, &entries.member_classes, &fresh])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Inserts memberships the caller knows are not stored (of groups its run created, never written by it)
/// by binary `COPY`: no probe, no conflict check. Returns the rows inserted. Should one exist after all,
/// the primary key refuses the COPY and the transaction fails; nothing is overwritten.
pub async fn insert_new(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant_id: i64,
    entries: &MemberEntries,
) -> Result<u64, StoreError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let rows = (0..entries.len()).map(|i| -> [&(dyn ToSql + Sync); 4] {
        [&tenant_id, &entries.group_ids[i], &entries.member_ids[i], &entries.member_classes[i]]
    });
    copy_in_binary(
        tx,
        "COPY group_members (tenant_id, group_id, member_id, member_class) FROM STDIN (FORMAT binary)",
        "SELECT $1::bigint, $2::uuid, $3::uuid, $4::text",
        "inserting a batch of new memberships",
        rows,
    )
    .await
}

/// The removal statement (`$1` tenant, `$2` groups, `$3` members), public for the test of its plan.
pub const REMOVE_SQL: &str = include_str!("sql/members_remove.sql");

/// Removes memberships; returns the groups that lost a member (one entry per row deleted).
pub async fn remove(db: &impl GenericClient, tenant_id: i64, entries: &MemberEntries) -> Result<Vec<Uuid>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let statement = db.prepare_cached(REMOVE_SQL).await?;
    let rows = db.query(&statement, &[&tenant_id, &entries.group_ids, &entries.member_ids]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Every stored (group, member) pair of a tenant, ordered. Meant for small tenants and tests.
pub async fn list(db: &impl GenericClient, tenant_id: i64) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    let statement =
        db.prepare_cached("SELECT group_id, member_id FROM group_members WHERE tenant_id = $1 ORDER BY 1, 2").await?;
    let rows = db.query(&statement, &[&tenant_id]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
