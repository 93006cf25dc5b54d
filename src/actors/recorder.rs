//! The history recorder: persists run events (started, progress, finished) through the sync's
//! `PgRunRecorder`. Progress is batched (the latest counts per run, written every second); `started`
//! and `finished` are written at once and answered only when durable, so a worker acknowledges its job
//! after the final event is in Postgres. Workers reach it through [`RecorderHandle`], which implements
//! `sync::RunRecorder` with `send().await` and a deadline (bounded mailbox: slow storage pushes back).
//!
//! Writes run concurrently, at most half the pool at once, each in a task of its own (a panic is
//! an error, not a dead recorder) and each within [`WRITE_DEADLINE`]: one hung connection or a row lock
//! held elsewhere delays that run's history, never everyone's. Only transient errors are retried. Every
//! flush beats the recorder's heart; the service's watchdog restarts a recorder that stops beating.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::liveness::{FaultPoint, Faults, Heart, Liveness, Unit};
use crate::backoff::{retry_transient, Patience};
use crate::metrics::{ActorKind, WorkerMetrics};
use crate::store::Pool;
use crate::sync::{PgRunRecorder, RecorderError, RunFinished, RunProgress, RunRecorder, RunStarted};

const MAILBOX: usize = 256;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Durable and progress writes in flight at once (each holds a pooled connection): half the pool, so a
/// few hung writes leave connections for the rounds, and at least two, so one hung write never stops all.
fn concurrent_writes(pool: &Pool) -> usize {
    (pool.status().max_size / 2).clamp(2, 8)
}
/// One write (taking a connection included); a late one is retried on a fresh connection.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(15);
/// How long a durable write is retried (Postgres restarting) before the worker is told it failed.
const DURABLE_RETRY_FOR: Duration = Duration::from_secs(30);
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(200);
const RETRY_LONGEST_WAIT: Duration = Duration::from_secs(5);
/// How long a worker waits for the recorder to answer a durable event: the retries plus one late write.
const ANSWER_DEADLINE: Duration = Duration::from_secs(50);
/// How long a worker waits for mailbox room for a progress event before dropping it.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(5);
/// A recorder whose flush timer has not fired for this long is wedged.
pub const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(15);

pub struct HistoryRecorder {
    store: PgRunRecorder,
    /// The latest progress of each running run, not yet written.
    pending: HashMap<Uuid, RunProgress>,
    writes: Arc<Semaphore>,
    /// A flush is under way: the next tick leaves the pending progress for the one after.
    flushing: bool,
    liveness: Liveness,
    faults: Faults,
    heart: Option<Heart>,
}

impl HistoryRecorder {
    pub fn new(pool: Pool, liveness: Liveness, faults: Faults) -> Self {
        HistoryRecorder {
            writes: Arc::new(Semaphore::new(concurrent_writes(&pool))),
            store: PgRunRecorder::with_deadline(pool, WRITE_DEADLINE),
            pending: HashMap::new(),
            flushing: false,
            liveness,
            faults,
            heart: None,
        }
    }
}

impl Actor for HistoryRecorder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        self.heart = Some(self.liveness.register("history_recorder", Unit::HistoryRecorder, HEARTBEAT_DEADLINE));
        ctx.run_interval(FLUSH_EVERY, |act, ctx| {
            if let Some(heart) = &act.heart {
                heart.beat();
            }
            act.faults.hit(FaultPoint::RecorderFlush);
            ctx.notify(Flush);
        });
    }
}

/// One write in a task of its own, holding one of the recorder's write permits. A panic comes back as
/// [`RecorderError::Panicked`].
async fn write_once<F, Fut>(writes: Arc<Semaphore>, write: F) -> Result<(), RecorderError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), RecorderError>> + 'static,
{
    let permit = writes.acquire_owned().await.map_err(|closed| RecorderError::Gone(closed.to_string()))?;
    let task = actix_rt::spawn(write());
    let joined = task.await;
    drop(permit);
    joined.unwrap_or_else(|panic| Err(RecorderError::Panicked(panic.to_string())))
}

/// Retries a durable write while Postgres is unavailable or slow, up to [`DURABLE_RETRY_FOR`]; a
/// permanent error is answered at once.
async fn durably<F, Fut>(what: &str, run_id: Uuid, writes: Arc<Semaphore>, write: F) -> Result<(), RecorderError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), RecorderError>> + 'static,
{
    let patience =
        Patience { give_up_after: DURABLE_RETRY_FOR, first_wait: RETRY_FIRST_WAIT, longest_wait: RETRY_LONGEST_WAIT };
    retry_transient(what, patience, None, || write_once(writes.clone(), &write)).await.inspect_err(|error| {
        tracing::warn!(%run_id, event = what, %error, transient = error.is_transient(), "history write failed");
    })
}

#[derive(Message)]
#[rtype(result = "Result<(), RecorderError>")]
struct Started(RunStarted);

impl Handler<Started> for HistoryRecorder {
    type Result = ResponseFuture<Result<(), RecorderError>>;

    fn handle(&mut self, Started(event): Started, _: &mut Self::Context) -> Self::Result {
        let (store, writes, run_id) = (self.store.clone(), self.writes.clone(), event.run_id);
        let event = Arc::new(event);
        Box::pin(durably("started", run_id, writes, move || {
            let (store, event) = (store.clone(), event.clone());
            async move { store.started(&event).await }
        }))
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
#[rtype(result = "Result<(), RecorderError>")]
struct Finished(RunFinished);

impl Handler<Finished> for HistoryRecorder {
    type Result = ResponseFuture<Result<(), RecorderError>>;

    fn handle(&mut self, Finished(event): Finished, _: &mut Self::Context) -> Self::Result {
        // The final state supersedes any progress still buffered for the run (and a progress write in
        // flight changes only a `running` row).
        self.pending.remove(&event.run_id);
        let (store, writes, run_id) = (self.store.clone(), self.writes.clone(), event.run_id);
        let event = Arc::new(event);
        Box::pin(durably("finished", run_id, writes, move || {
            let (store, event) = (store.clone(), event.clone());
            async move { store.finished(&event).await }
        }))
    }
}

/// A run's end row was written by its round (in its last transaction): its buffered progress is stale.
#[derive(Message)]
#[rtype(result = "()")]
struct Forget(Uuid);

impl Handler<Forget> for HistoryRecorder {
    type Result = ();

    fn handle(&mut self, Forget(run_id): Forget, _: &mut Self::Context) {
        self.pending.remove(&run_id);
    }
}

/// Writes all buffered progress now (every second, and in the shutdown order).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

impl Handler<Flush> for HistoryRecorder {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        if self.flushing {
            return Box::pin(fut::ready(()));
        }
        self.flushing = true;
        let batch: Vec<RunProgress> = self.pending.drain().map(|(_, event)| event).collect();
        let (store, writes) = (self.store.clone(), self.writes.clone());
        let write = async move {
            let writes = batch.into_iter().map(|event| {
                let (store, writes) = (store.clone(), writes.clone());
                async move {
                    let run_id = event.run_id;
                    let event = Arc::new(event);
                    let outcome = write_once(writes, move || async move { store.progress(&event).await }).await;
                    // Progress is advisory (the checkpoint is the truth); a failed write waits for the next.
                    if let Err(error) = outcome {
                        tracing::warn!(%run_id, %error, "run progress not recorded");
                    }
                }
            });
            futures::future::join_all(writes).await;
        };
        Box::pin(write.into_actor(self).map(|(), act, _| act.flushing = false))
    }
}

/// The recorder as the sync round sees it. Its address is swapped when the watchdog restarts the
/// recorder, so handles held by workers keep working.
#[derive(Clone)]
pub struct RecorderHandle {
    addr: Arc<RwLock<Addr<HistoryRecorder>>>,
    metrics: WorkerMetrics,
}

impl RecorderHandle {
    pub fn new(addr: Addr<HistoryRecorder>, metrics: WorkerMetrics) -> Self {
        RecorderHandle { addr: Arc::new(RwLock::new(addr)), metrics }
    }

    /// The recorder was restarted: from now on events go to `addr`.
    pub fn replace(&self, addr: Addr<HistoryRecorder>) {
        *self.addr.write().unwrap_or_else(std::sync::PoisonError::into_inner) = addr;
    }

    pub fn addr(&self) -> Addr<HistoryRecorder> {
        self.addr.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    async fn ask<M>(&self, message: M, deadline: Duration) -> Result<M::Result, RecorderError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        HistoryRecorder: Handler<M>,
    {
        let asked = Instant::now();
        let answer = tokio::time::timeout(deadline, self.addr().send(message)).await;
        self.metrics.mailbox_waited(ActorKind::HistoryRecorder, asked.elapsed());
        match answer {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(mailbox)) => Err(RecorderError::Gone(mailbox.to_string())),
            Err(_) => Err(RecorderError::NoAnswer(deadline)),
        }
    }
}

impl RunRecorder for RecorderHandle {
    async fn started(&self, event: &RunStarted) -> Result<(), RecorderError> {
        self.ask(Started(event.clone()), ANSWER_DEADLINE).await?
    }

    async fn progress(&self, event: &RunProgress) -> Result<(), RecorderError> {
        self.ask(Progress(event.clone()), PROGRESS_DEADLINE).await
    }

    async fn finished(&self, event: &RunFinished) -> Result<(), RecorderError> {
        self.ask(Finished(event.clone()), ANSWER_DEADLINE).await?
    }

    /// The round writes the start and end rows in its own transactions (with the checkpoint, and with
    /// the last batch): no history transaction of their own (issue 16, target 5).
    fn rows_in_round(&self) -> bool {
        true
    }

    async fn finished_in_round(&self, event: &RunFinished) {
        // Not waited for and never blocking: a progress write after the end changes nothing anyway
        // (it updates only a `running` row).
        self.addr().do_send(Forget(event.run_id));
    }
}
