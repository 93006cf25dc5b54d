//! The history recorder: persists run events (started, progress, finished) through the sync's
//! `PgRunRecorder`. Progress is batched (the latest counts per run, written every second); `started`
//! and `finished` are written at once and answered only when durable, so a worker acknowledges its job
//! after the final event is in Postgres. Workers reach it through [`RecorderHandle`], which implements
//! `sync::RunRecorder` with `send().await` and a deadline (bounded mailbox: slow storage pushes back).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use uuid::Uuid;

use crate::backoff::{retry_transient, Patience};
use crate::metrics::{ActorKind, WorkerMetrics};
use crate::sync::{PgRunRecorder, RecorderError, RunFinished, RunProgress, RunRecorder, RunStarted};

const MAILBOX: usize = 256;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How long a durable write is retried (Postgres restarting) before the worker is told it failed.
const DURABLE_RETRY_FOR: Duration = Duration::from_secs(30);
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(200);
const RETRY_LONGEST_WAIT: Duration = Duration::from_secs(5);
/// How long a worker waits for the recorder to answer a durable event.
const ANSWER_DEADLINE: Duration = Duration::from_secs(45);
/// How long a worker waits for mailbox room for a progress event before dropping it.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(5);

pub struct HistoryRecorder {
    store: PgRunRecorder,
    /// The latest progress of each running run, not yet written.
    pending: HashMap<Uuid, RunProgress>,
}

impl HistoryRecorder {
    pub fn new(store: PgRunRecorder) -> Self {
        HistoryRecorder { store, pending: HashMap::new() }
    }
}

impl Actor for HistoryRecorder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        ctx.run_interval(FLUSH_EVERY, |_, ctx| ctx.notify(Flush));
    }
}

/// Retries a durable write while Postgres is unavailable, up to [`DURABLE_RETRY_FOR`]; a permanent
/// error is answered at once.
async fn durably<F, Fut>(what: &str, run_id: Uuid, write: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), RecorderError>>,
{
    let patience =
        Patience { give_up_after: DURABLE_RETRY_FOR, first_wait: RETRY_FIRST_WAIT, longest_wait: RETRY_LONGEST_WAIT };
    retry_transient(what, patience, None, write).await.map_err(|error| {
        tracing::warn!(%run_id, event = what, %error, "history write failed");
        error.to_string()
    })
}

#[derive(Message)]
#[rtype(result = "Result<(), String>")]
struct Started(RunStarted);

impl Handler<Started> for HistoryRecorder {
    type Result = AtomicResponse<Self, Result<(), String>>;

    fn handle(&mut self, Started(event): Started, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let write = async move { durably("started", event.run_id, || store.started(&event)).await };
        AtomicResponse::new(Box::pin(write.into_actor(self)))
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Progress(RunProgress);

impl Handler<Progress> for HistoryRecorder {
    type Result = ();

    fn handle(&mut self, Progress(event): Progress, _: &mut Self::Context) {
        // Only the latest counts matter: a run's progress rows are overwritten, never appended.
        self.pending.insert(event.run_id, event);
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), String>")]
struct Finished(RunFinished);

impl Handler<Finished> for HistoryRecorder {
    type Result = AtomicResponse<Self, Result<(), String>>;

    fn handle(&mut self, Finished(event): Finished, _: &mut Self::Context) -> Self::Result {
        // The final state supersedes any progress still buffered for the run.
        self.pending.remove(&event.run_id);
        let store = self.store.clone();
        let write = async move { durably("finished", event.run_id, || store.finished(&event)).await };
        AtomicResponse::new(Box::pin(write.into_actor(self)))
    }
}

/// Writes all buffered progress now (every second, and in the shutdown order).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

impl Handler<Flush> for HistoryRecorder {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        let batch: Vec<RunProgress> = self.pending.drain().map(|(_, event)| event).collect();
        let store = self.store.clone();
        let write = async move {
            for event in batch {
                // Progress is advisory (the checkpoint is the truth); a failed write waits for the next.
                if let Err(error) = store.progress(&event).await {
                    tracing::warn!(run_id = %event.run_id, %error, "run progress not recorded");
                }
            }
        };
        AtomicResponse::new(Box::pin(write.into_actor(self)))
    }
}

/// The recorder as the sync round sees it.
#[derive(Clone)]
pub struct RecorderHandle {
    addr: Addr<HistoryRecorder>,
    metrics: WorkerMetrics,
}

impl RecorderHandle {
    pub fn new(addr: Addr<HistoryRecorder>, metrics: WorkerMetrics) -> Self {
        RecorderHandle { addr, metrics }
    }

    async fn ask<M>(&self, message: M, deadline: Duration) -> Result<M::Result, RecorderError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        HistoryRecorder: Handler<M>,
    {
        let asked = Instant::now();
        let answer = tokio::time::timeout(deadline, self.addr.send(message)).await;
        self.metrics.mailbox_waited(ActorKind::HistoryRecorder, asked.elapsed());
        match answer {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(mailbox)) => Err(RecorderError::Unavailable(mailbox.to_string())),
            Err(_) => Err(RecorderError::Unavailable(format!("no answer within {deadline:?}"))),
        }
    }
}

impl RunRecorder for RecorderHandle {
    async fn started(&self, event: &RunStarted) -> Result<(), RecorderError> {
        self.ask(Started(event.clone()), ANSWER_DEADLINE).await?.map_err(RecorderError::Unavailable)
    }

    async fn progress(&self, event: &RunProgress) -> Result<(), RecorderError> {
        self.ask(Progress(event.clone()), PROGRESS_DEADLINE).await
    }

    async fn finished(&self, event: &RunFinished) -> Result<(), RecorderError> {
        self.ask(Finished(event.clone()), ANSWER_DEADLINE).await?.map_err(RecorderError::Unavailable)
    }
}
