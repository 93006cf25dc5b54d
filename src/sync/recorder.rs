//! Run history as events. The round driver reports through [`RunRecorder`]; the history-recorder actor
//! implements it (forwarding to its mailbox), and [`PgRunRecorder`] writes `sync_runs` directly.

use std::future::Future;

pub use crate::model::{RunFinished, RunProgress, RunStarted};
use crate::store::runs;
use crate::store::{Pool, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The recorder (e.g. an actor's mailbox) is gone or did not answer.
    #[error("the history recorder is unavailable: {0}")]
    Unavailable(String),
}

impl crate::backoff::Transient for RecorderError {
    fn is_transient(&self) -> bool {
        match self {
            RecorderError::Store(error) => error.is_transient(),
            RecorderError::Unavailable(_) => true,
        }
    }
}

/// Receives a run's history. `finished` must be durable when it returns Ok: the job is acknowledged
/// after it. `progress` failures are logged by the driver and do not stop the round.
pub trait RunRecorder: Send + Sync {
    fn started(&self, event: &RunStarted) -> impl Future<Output = Result<(), RecorderError>> + Send;
    fn progress(&self, event: &RunProgress) -> impl Future<Output = Result<(), RecorderError>> + Send;
    fn finished(&self, event: &RunFinished) -> impl Future<Output = Result<(), RecorderError>> + Send;
}

/// Writes `sync_runs` directly (tests, the CLI, and the recorder actor's storage).
#[derive(Clone)]
pub struct PgRunRecorder {
    pool: Pool,
}

impl PgRunRecorder {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

impl RunRecorder for PgRunRecorder {
    async fn started(&self, event: &RunStarted) -> Result<(), RecorderError> {
        let client = self.pool.get().await.map_err(StoreError::from)?;
        runs::insert_started(&client, event).await?;
        Ok(())
    }

    async fn progress(&self, event: &RunProgress) -> Result<(), RecorderError> {
        let client = self.pool.get().await.map_err(StoreError::from)?;
        runs::update_progress(&client, event.run_id, event.mode, event.reason.as_deref(), &event.counts).await?;
        Ok(())
    }

    async fn finished(&self, event: &RunFinished) -> Result<(), RecorderError> {
        let client = self.pool.get().await.map_err(StoreError::from)?;
        runs::finish(&client, event).await?;
        Ok(())
    }
}
