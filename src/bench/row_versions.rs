//! Rows a round wrote, counted independently of its own report: rows of the tenant whose row version
//! (`xmin`) is newer than a transaction id taken before the round, plus rows that vanished. Covers the
//! object rows and the membership rows.

use anyhow::Context;
use serde::Serialize;

use crate::store::Pool;

/// Rows written per table.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RowWrites {
    pub objects: u64,
    pub members: u64,
}

impl RowWrites {
    pub fn total(&self) -> u64 {
        self.objects + self.members
    }
}

/// The tenant's rows before a round: a transaction id and the live row counts.
pub struct RowVersions {
    tenant_id: i64,
    xid: i64,
    objects: i64,
    members: i64,
}

const SNAPSHOT: &str = "SELECT txid_current() % 4294967296, \
                        (SELECT count(*) FROM directory_objects WHERE tenant_id = $1), \
                        (SELECT count(*) FROM group_members WHERE tenant_id = $1)";

impl RowVersions {
    pub async fn snapshot(pool: &Pool, tenant_id: i64) -> anyhow::Result<RowVersions> {
        let client = pool.get().await?;
        let row = client.query_one(SNAPSHOT, &[&tenant_id]).await.context("snapshotting row versions")?;
        Ok(RowVersions { tenant_id, xid: row.get(0), objects: row.get(1), members: row.get(2) })
    }

    /// Rows written by transactions after the snapshot, plus rows that disappeared. Assumes no xid
    /// wraparound during one round.
    pub async fn writes_since(&self, pool: &Pool) -> anyhow::Result<RowWrites> {
        let client = pool.get().await?;
        let newer = |table: &str| {
            format!(
                "SELECT count(*) FILTER (WHERE xmin::text::bigint > $2), count(*) FROM {table} WHERE tenant_id = $1"
            )
        };
        let mut writes = RowWrites::default();
        for (table, before, written) in [
            ("directory_objects", self.objects, &mut writes.objects),
            ("group_members", self.members, &mut writes.members),
        ] {
            let row = client
                .query_one(&newer(table), &[&self.tenant_id, &self.xid])
                .await
                .with_context(|| format!("counting row versions of {table}"))?;
            let (newer, rows): (i64, i64) = (row.get(0), row.get(1));
            *written = (newer + (before - rows).max(0)) as u64;
        }
        Ok(writes)
    }
}
