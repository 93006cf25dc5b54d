//! Errors of a sync round: the cases a worker acts on (retry later, fix configuration, do not ack).

use crate::graph::GraphError;
use crate::store::StoreError;

use super::recorder::RecorderError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("tenant {0} does not exist")]
    TenantNotFound(i64),
    /// Graph failed; the checkpoint is kept, so the next round resumes where this one stopped.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Postgres failed; the page in flight was rolled back and will be fetched again.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The run's history could not be written (its job must not be acknowledged).
    #[error("run history: {0}")]
    History(#[from] RecorderError),
    /// Another writer advanced this run (e.g. a killed worker's last commit landed late): this round
    /// wrote nothing; the next one resumes from the newer checkpoint.
    #[error("run {run_id} moved past this round's checkpoint elsewhere; nothing was written")]
    RunMovedOn { run_id: uuid::Uuid },
    #[error("no deletions of run {run_id} are held for tenant {tenant_id} {class}")]
    NothingHeld { tenant_id: i64, class: crate::model::ObjectClass, run_id: uuid::Uuid },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl SyncError {
    /// True when only an operator can fix it (credentials, consent, tenant id): retrying will not help.
    pub fn is_configuration_error(&self) -> bool {
        matches!(self, SyncError::Graph(e) if e.is_configuration_error())
    }
}

impl From<tokio_postgres::Error> for SyncError {
    fn from(e: tokio_postgres::Error) -> Self {
        SyncError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for SyncError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        SyncError::Store(e.into())
    }
}
