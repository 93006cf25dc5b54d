//! A worker's consume loop: (re)subscribes to its queue (a class queue, or the checks queue), runs each
//! delivery in a task of its own (at most `prefetch` at once, as the broker allows), settles it, and on
//! stop cancels the subscription and waits for its tasks to checkpoint and give their jobs back.
//! Every turn of the loop beats its heart, and an idle loop turns at least every [`BEAT_EVERY`]; a
//! subscription attempt has a deadline, so only a bug (a blocked thread, a panic) silences it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_rt::task::JoinHandle;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions};
use tokio_util::sync::CancellationToken;

use super::job::{self, Settlement, REQUEUE_PAUSE};
use super::{Channels, WorkerDeps};
use crate::actors::liveness::{FaultPoint, Heart};
use crate::backoff::Backoff;
use crate::metrics::{ActorKind, JobOutcome, JobTracker, RestartCause};
use crate::model::ObjectClass;
use crate::queue::{Job, JobConsumer, QueueError, Topology};

const RESUBSCRIBE_MIN: Duration = Duration::from_millis(250);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(10);
/// An idle loop wakes this often to beat.
const BEAT_EVERY: Duration = Duration::from_secs(2);
/// Subscribing (opening a channel, `basic.consume`) gets this long before it counts as failed.
const SUBSCRIBE_DEADLINE: Duration = Duration::from_secs(15);
/// A consume loop silent this long is wedged (the longest quiet stretch is a subscription attempt
/// followed by the longest wait before the next one).
pub const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(40);

/// What a consume loop consumes: one class's sync jobs, or the permission checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    Sync(ObjectClass),
    Checks,
}

impl Feed {
    fn queue(self, topology: &Topology) -> String {
        match self {
            Feed::Sync(class) => topology.class_queue(class),
            Feed::Checks => topology.checks_queue(),
        }
    }

    fn track(self, deps: &WorkerDeps) -> JobTracker {
        match self {
            Feed::Sync(class) => deps.shared.metrics.workers.job_started(class),
            Feed::Checks => deps.shared.metrics.workers.job_started_on("checks"),
        }
    }

    async fn process(self, deps: &WorkerDeps, body: &[u8], stop: &CancellationToken) -> Settlement {
        match self {
            Feed::Sync(class) => job::process(deps, class, body, stop).await,
            // Tag syncs share the checks queue; everything else there is a permission check's to judge.
            Feed::Checks => match Job::from_bytes(body) {
                Ok(Job::TagSync(job)) => super::tag_sync::process(deps, job, stop).await,
                _ => super::permission_check::process(deps, body, stop).await,
            },
        }
    }
}

impl fmt::Display for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Feed::Sync(class) => class.fmt(f),
            Feed::Checks => f.write_str("checks"),
        }
    }
}

pub async fn consume_loop(
    deps: Arc<WorkerDeps>,
    feed: Feed,
    tag: String,
    heart: Heart,
    (channels, place): (Channels, usize),
    stop: CancellationToken,
) {
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut backoff = Backoff::capped(RESUBSCRIBE_MIN, RESUBSCRIBE_MAX);
    // Kept until every task settled: their acks go through its channel.
    let mut subscription: Option<JobConsumer> = None;
    'subscribe: while !stop.is_cancelled() {
        // A beat says a turn got through (after the fault point, where a blocked thread would stop): an
        // incarnation that blocks at once never beats, so /healthz keeps naming it after its restart.
        deps.shared.faults.hit(FaultPoint::ConsumeLoop);
        heart.beat();
        let queue = feed.queue(deps.shared.broker.topology());
        let subscribing = tokio::time::timeout(SUBSCRIBE_DEADLINE, deps.shared.broker.consume_queue(queue, &tag));
        let subscribed = tokio::select! {
            subscribed = subscribing => subscribed.unwrap_or_else(|_| Err(QueueError::Timeout(SUBSCRIBE_DEADLINE))),
            () = stop.cancelled() => break,
        };
        let consumer = match subscribed {
            Ok(consumer) => {
                backoff.reset();
                tracing::info!(class = %feed, consumer = %tag, "consuming");
                channels.set(place, Some(consumer.channel.clone()));
                subscription.insert(consumer)
            }
            Err(error) => {
                let retry_in = backoff.next_delay();
                tracing::warn!(class = %feed, %error, retry_in_ms = retry_in.as_millis() as u64, "cannot consume; retrying");
                tokio::select! {
                    () = tokio::time::sleep(retry_in) => {}
                    () = stop.cancelled() => break,
                }
                continue;
            }
        };
        loop {
            deps.shared.faults.hit(FaultPoint::ConsumeLoop);
            heart.beat();
            let next = tokio::select! {
                next = consumer.next_delivery() => next,
                () = tokio::time::sleep(BEAT_EVERY) => continue,
                () = stop.cancelled() => {
                    // Stop consuming first; prefetched deliveries not started return when the channel closes.
                    let cancel = consumer.channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
                    if let Err(error) = cancel.await {
                        tracing::debug!(class = %feed, %error, "cancelling the consumer failed; closing its channel instead");
                    }
                    break 'subscribe;
                }
            };
            match next {
                Some(Ok(delivery)) => {
                    tasks.retain(|task| !task.is_finished());
                    tasks.push(spawn_delivery(deps.clone(), feed, delivery, stop.clone()));
                }
                Some(Err(error)) => {
                    tracing::warn!(class = %feed, %error, "consumer failed; subscribing again");
                    break;
                }
                None => {
                    tracing::warn!(class = %feed, "consumer ended (connection lost); subscribing again");
                    break;
                }
            }
        }
    }
    for task in tasks {
        if let Err(error) = task.await {
            tracing::warn!(class = %feed, %error, "a delivery task ended abnormally");
        }
    }
    channels.set(place, None);
    if let Some(consumer) = subscription {
        if let Err(error) = consumer.channel.close(200, "worker stopped".into()).await {
            tracing::debug!(class = %feed, %error, "closing the consumer channel failed");
        }
    }
    tracing::info!(class = %feed, consumer = %tag, "stopped consuming");
    heart.retire();
}

/// Runs one delivery in its own task (a panic is contained and the job requeued) and settles it.
fn spawn_delivery(deps: Arc<WorkerDeps>, feed: Feed, delivery: Delivery, stop: CancellationToken) -> JoinHandle<()> {
    let tracker = feed.track(&deps);
    let acker = delivery.acker.clone();
    let work = {
        let (deps, stop) = (deps.clone(), stop.clone());
        actix_rt::spawn(async move {
            let settlement = feed.process(&deps, &delivery.data, &stop).await;
            (settlement, delivery)
        })
    };
    actix_rt::spawn(async move {
        let (settlement, delivery) = match work.await {
            Ok(done) => done,
            Err(panic) => {
                tracing::error!(class = %feed, error = %panic, "job panicked; requeued");
                deps.shared.metrics.workers.restarted(ActorKind::SyncWorker, RestartCause::Panic);
                if let Err(error) = acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await {
                    // The broker redelivers it when the channel closes.
                    tracing::warn!(class = %feed, %error, "cannot requeue the panicked job");
                }
                tracker.finished(JobOutcome::Requeued);
                return;
            }
        };
        let outcome = settle(&deps, feed, &delivery, settlement, &stop).await;
        tracker.finished(outcome);
    })
}

async fn settle(
    deps: &WorkerDeps,
    feed: Feed,
    delivery: &Delivery,
    settlement: Settlement,
    stop: &CancellationToken,
) -> JobOutcome {
    let requeue = BasicNackOptions { requeue: true, ..Default::default() };
    let (result, outcome) = match settlement {
        Settlement::Ack => (delivery.ack(BasicAckOptions::default()).await, JobOutcome::Acked),
        Settlement::Coalesced => (delivery.ack(BasicAckOptions::default()).await, JobOutcome::Coalesced),
        Settlement::Duplicate => (delivery.ack(BasicAckOptions::default()).await, JobOutcome::Duplicate),
        Settlement::DroppedDeletedTenant => {
            (delivery.ack(BasicAckOptions::default()).await, JobOutcome::DroppedDeletedTenant)
        }
        Settlement::Requeue => {
            if !stop.is_cancelled() {
                tokio::time::sleep(REQUEUE_PAUSE).await;
            }
            (delivery.nack(requeue).await, JobOutcome::Requeued)
        }
        Settlement::DeadLetter(reason) => {
            let queue = feed.queue(deps.shared.broker.topology());
            tracing::warn!(class = %feed, %reason, "job dead-lettered");
            match deps.dead_letters.publish(delivery, &queue, &reason).await {
                Ok(()) => (delivery.ack(BasicAckOptions::default()).await, JobOutcome::DeadLettered),
                Err(error) => {
                    // The broker dead-letters it after the delivery limit anyway.
                    tracing::warn!(%error, "cannot publish the dead letter; requeued");
                    (delivery.nack(requeue).await, JobOutcome::Requeued)
                }
            }
        }
    };
    if let Err(error) = result {
        // The channel is gone: the broker redelivers the job, and the run lock keeps it from running twice.
        tracing::warn!(class = %feed, %error, "cannot settle the delivery; the broker will redeliver it");
    }
    outcome
}
