//! Rows a round wrote, counted independently of its own report: rows of the tenant whose row version
//! (`xmin`) is newer than a transaction id taken before the round, plus rows that vanished. Covers the
//! object rows and the membership rows.

use anyhow::Context;
use serde::Serialize;

use crate::store::bench::row_versions;
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
    before: row_versions::Snapshot,
}

impl RowVersions {
    pub async fn snapshot(pool: &Pool, tenant_id: i64) -> anyhow::Result<RowVersions> {
        let before = row_versions::snapshot(pool, tenant_id).await.context("snapshotting row versions")?;
        Ok(RowVersions { tenant_id, before })
    }

    /// Rows written by transactions after the snapshot, plus rows that disappeared. Assumes no xid
    /// wraparound during one round.
    pub async fn writes_since(&self, pool: &Pool) -> anyhow::Result<RowWrites> {
        let now = row_versions::newer_than(pool, self.tenant_id, self.before.xid)
            .await
            .context("counting row versions of directory_objects and group_members")?;
        let written = |now: row_versions::Versions, before: i64| (now.newer + (before - now.rows).max(0)) as u64;
        Ok(RowWrites {
            objects: written(now.objects, self.before.objects),
            members: written(now.members, self.before.members),
        })
    }
}
