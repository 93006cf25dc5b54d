//! Run history as events. The round driver reports through [`RunRecorder`]; the history-recorder actor
//! implements it (forwarding to its mailbox), and [`PgRunRecorder`] writes `sync_runs` directly.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::model::{ObjectClass, RunStatus, SyncMode, Trigger};
use crate::store::runs::{self, RunCounts};
use crate::store::{Pool, StoreError};

/// A run started, or a checkpointed run resumed (same `run_id`, counts carried over).
#[derive(Debug, Clone, Serialize)]
pub struct RunStarted {
    pub run_id: Uuid,
    pub tenant_id: i64,
    pub class: ObjectClass,
    pub mode: SyncMode,
    pub trigger: Trigger,
    pub started_at: DateTime<Utc>,
    pub resumed: bool,
    /// Why the mode was chosen when it is not the default (e.g. "full scan requested").
    pub reason: Option<String>,
    pub counts: RunCounts,
    pub instance_id: Option<String>,
}

/// Sent after every committed page (and when a round restarts as full).
#[derive(Debug, Clone, Serialize)]
pub struct RunProgress {
    pub run_id: Uuid,
    pub tenant_id: i64,
    pub class: ObjectClass,
    pub mode: SyncMode,
    pub reason: Option<String>,
    pub counts: RunCounts,
}

/// The final state, sent once per round.
#[derive(Debug, Clone, Serialize)]
pub struct RunFinished {
    pub run_id: Uuid,
    pub tenant_id: i64,
    pub class: ObjectClass,
    pub mode: SyncMode,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub finished_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The recorder (e.g. an actor's mailbox) is gone or did not answer.
    #[error("the history recorder is unavailable: {0}")]
    Unavailable(String),
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
        let start = runs::RunStart {
            run_id: event.run_id,
            tenant_id: event.tenant_id,
            class: event.class,
            mode: event.mode,
            trigger: event.trigger,
            started_at: event.started_at,
            instance_id: event.instance_id.clone(),
        };
        runs::insert_started(&client, &start, &event.counts).await?;
        if event.reason.is_some() {
            runs::update_progress(&client, event.run_id, event.mode, event.reason.as_deref(), &event.counts).await?;
        }
        Ok(())
    }

    async fn progress(&self, event: &RunProgress) -> Result<(), RecorderError> {
        let client = self.pool.get().await.map_err(StoreError::from)?;
        runs::update_progress(&client, event.run_id, event.mode, event.reason.as_deref(), &event.counts).await?;
        Ok(())
    }

    async fn finished(&self, event: &RunFinished) -> Result<(), RecorderError> {
        let client = self.pool.get().await.map_err(StoreError::from)?;
        let end = runs::RunEnd {
            run_id: event.run_id,
            mode: event.mode,
            status: event.status,
            counts: event.counts,
            reason: event.reason.clone(),
            error: event.error.clone(),
            finished_at: event.finished_at,
        };
        runs::finish(&client, &end).await?;
        Ok(())
    }
}
