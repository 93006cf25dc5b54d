//! Run history as events. The round driver reports through [`RunRecorder`]; the history-recorder actor
//! implements it (forwarding to its mailbox), and [`PgRunRecorder`] writes `sync_runs` directly.

use std::future::Future;
use std::time::Duration;

pub use crate::model::{RunFinished, RunProgress, RunStarted};
use crate::store::runs;
use crate::store::{Pool, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// One write did not finish within its deadline (a hung connection, a row lock held elsewhere).
    #[error("the history write did not finish within {0:?}")]
    Late(Duration),
    /// The recorder (an actor's mailbox) is gone, e.g. while it is being restarted.
    #[error("the history recorder is gone: {0}")]
    Gone(String),
    /// The recorder did not answer within the caller's deadline.
    #[error("the history recorder did not answer within {0:?}")]
    NoAnswer(Duration),
    /// The write panicked: a bug, not worth repeating.
    #[error("the history write panicked: {0}")]
    Panicked(String),
}

impl RecorderError {
    /// Whether the same write may succeed later (Postgres or the recorder unavailable or slow).
    pub fn is_transient(&self) -> bool {
        match self {
            RecorderError::Store(error) => error.is_transient(),
            RecorderError::Late(_) | RecorderError::Gone(_) | RecorderError::NoAnswer(_) => true,
            RecorderError::Panicked(_) => false,
        }
    }
}

impl crate::backoff::Transient for RecorderError {
    fn is_transient(&self) -> bool {
        RecorderError::is_transient(self)
    }
}

/// Receives a run's history. `finished` must be durable when it returns Ok: the job is acknowledged
/// after it. `progress` failures are logged by the driver and do not stop the round.
///
/// A recorder that stores `sync_runs` itself may let the round write a run's start and end rows in the
/// round's own transactions ([`RunRecorder::rows_in_round`]): the start with the run's checkpoint, the
/// end with the last batch (issue 16, target 5: no transactions of their own). The round then tells it
/// with `started_in_round` / `finished_in_round`, which write nothing (metrics, buffered progress).
pub trait RunRecorder: Send + Sync {
    fn started(&self, event: &RunStarted) -> impl Future<Output = Result<(), RecorderError>> + Send;
    fn progress(&self, event: &RunProgress) -> impl Future<Output = Result<(), RecorderError>> + Send;
    fn finished(&self, event: &RunFinished) -> impl Future<Output = Result<(), RecorderError>> + Send;

    /// Whether the round writes the start and end rows itself (`sync_runs` is where this recorder would
    /// write them). A recorder that watches or delays the writes keeps the default, `false`.
    fn rows_in_round(&self) -> bool {
        false
    }

    /// The round wrote the start row in its transaction (only when [`RunRecorder::rows_in_round`]).
    fn started_in_round(&self, _event: &RunStarted) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The round wrote the end row in its last transaction (only when [`RunRecorder::rows_in_round`]).
    fn finished_in_round(&self, _event: &RunFinished) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Writes `sync_runs` directly (tests, the CLI, and the recorder actor's storage). With a deadline
/// ([`PgRunRecorder::with_deadline`]) a write that takes longer fails as [`RecorderError::Late`].
#[derive(Clone)]
pub struct PgRunRecorder {
    pool: Pool,
    deadline: Option<Duration>,
}

impl PgRunRecorder {
    pub fn new(pool: Pool) -> Self {
        Self { pool, deadline: None }
    }

    /// Each write (taking a connection included) gets at most `deadline`.
    pub fn with_deadline(pool: Pool, deadline: Duration) -> Self {
        Self { pool, deadline: Some(deadline) }
    }

    async fn connection(&self) -> Result<deadpool_postgres::Client, RecorderError> {
        let Some(deadline) = self.deadline else { return Ok(self.pool.get().await.map_err(StoreError::from)?) };
        let got = tokio::time::timeout(deadline, self.pool.get()).await.map_err(|_| RecorderError::Late(deadline))?;
        Ok(got.map_err(StoreError::from)?)
    }

    /// Runs one statement within the deadline; `None` when it was late.
    async fn timed(&self, statement: impl Future<Output = Result<(), StoreError>>) -> Option<Result<(), StoreError>> {
        match self.deadline {
            Some(deadline) => tokio::time::timeout(deadline, statement).await.ok(),
            None => Some(statement.await),
        }
    }

    /// A late statement's connection is taken out of the pool (and so closed): returned, deadpool would
    /// hand it to the next caller, who would queue behind the statement still waiting on the server.
    fn settle(
        &self,
        client: deadpool_postgres::Client,
        outcome: Option<Result<(), StoreError>>,
    ) -> Result<(), RecorderError> {
        match outcome {
            Some(outcome) => Ok(outcome?),
            None => {
                drop(deadpool_postgres::Object::take(client));
                Err(RecorderError::Late(self.deadline.unwrap_or_default()))
            }
        }
    }
}

impl RunRecorder for PgRunRecorder {
    async fn started(&self, event: &RunStarted) -> Result<(), RecorderError> {
        let client = self.connection().await?;
        let outcome = self.timed(runs::insert_started(&client, event)).await;
        self.settle(client, outcome)
    }

    async fn progress(&self, event: &RunProgress) -> Result<(), RecorderError> {
        let client = self.connection().await?;
        let outcome = self
            .timed(runs::update_progress(&client, event.run_id, event.mode, event.reason.as_deref(), &event.counts))
            .await;
        self.settle(client, outcome)
    }

    async fn finished(&self, event: &RunFinished) -> Result<(), RecorderError> {
        let client = self.connection().await?;
        let outcome = self.timed(runs::finish(&client, event)).await;
        self.settle(client, outcome)
    }

    fn rows_in_round(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_gone_and_unanswered_writes_are_retried_and_panics_and_permanent_store_errors_are_not() {
        let transient = [
            RecorderError::Late(Duration::from_secs(15)),
            RecorderError::Gone("mailbox closed".into()),
            RecorderError::NoAnswer(Duration::from_secs(50)),
            RecorderError::Store(StoreError::Unavailable("connection refused".into())),
        ];
        for error in &transient {
            assert!(error.is_transient(), "{error} should be retried");
        }
        let permanent = [
            RecorderError::Panicked("bug".into()),
            RecorderError::Store(StoreError::Rejected("violates a check".into())),
        ];
        for error in &permanent {
            assert!(!error.is_transient(), "{error} must not be retried");
        }
        assert_eq!(
            RecorderError::Late(Duration::from_secs(15)).to_string(),
            "the history write did not finish within 15s"
        );
    }
}
