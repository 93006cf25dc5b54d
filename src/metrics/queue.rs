//! RabbitMQ queues and the worker pools that consume them.
//!
//! Per event (call sites in the actors of issue 5):
//! - a worker takes a delivery → [`WorkerMetrics::job_started`] returns a [`JobTracker`];
//!   its ack/requeue/dead-letter decision → [`JobTracker::finished`];
//! - a pool is (re)sized → [`WorkerMetrics::set_pool_size`];
//! - a sender waited for mailbox capacity → [`WorkerMetrics::mailbox_waited`];
//! - a supervisor restarts a child → [`WorkerMetrics::restarted`];
//! - the watchdog's check counts the parts wedged now → [`WorkerMetrics::set_wedged`].
//!
//! Queue depth and consumers are read from the broker at scrape time ([`WorkerMetrics::replace_queues`]).

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};

use super::family::{Declarer, SnapshotGauge};
use crate::model::ObjectClass;

/// The queues of the topology (`{prefix}.sync.<class>`, `{prefix}.dead`); the label omits the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    Sync(ObjectClass),
    Dead,
}

impl QueueKind {
    pub fn label(self) -> &'static str {
        match self {
            QueueKind::Sync(ObjectClass::User) => "sync.user",
            QueueKind::Sync(ObjectClass::Group) => "sync.group",
            QueueKind::Sync(ObjectClass::Device) => "sync.device",
            QueueKind::Dead => "dead",
        }
    }
}

/// One queue as the broker reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSample {
    pub queue: QueueKind,
    /// Messages ready for delivery (not counting unacknowledged ones).
    pub messages: u64,
    pub consumers: u64,
}

/// How a worker settled a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Run finished and its history persisted, then acked.
    Acked,
    /// The same (tenant, class) was already running: merged into a follow-up run and acked.
    Coalesced,
    /// Its job id had already started a run: acked without running again.
    Duplicate,
    /// Given back to the queue (shutdown, lost lock, transient failure).
    Requeued,
    /// Rejected without requeue: malformed, unknown version or tenant, or delivery limit reached.
    DeadLettered,
    /// Its tenant was deleted through the API: acked and dropped.
    DroppedDeletedTenant,
}

impl JobOutcome {
    fn label(self) -> &'static str {
        match self {
            JobOutcome::Acked => "acked",
            JobOutcome::Coalesced => "coalesced",
            JobOutcome::Duplicate => "duplicate",
            JobOutcome::Requeued => "requeued",
            JobOutcome::DeadLettered => "dead_lettered",
            JobOutcome::DroppedDeletedTenant => "dropped_deleted_tenant",
        }
    }
}

/// The actors whose mailboxes and restarts are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    Coordinator,
    TenantSupervisor,
    SyncWorker,
    HistoryRecorder,
    /// A sync worker's consume loops (restarted as a whole worker).
    Consumer,
    /// The service's watchdog, which restarts the others (nothing restarts it; `/healthz` reports it).
    Watchdog,
    /// The change-event relay (restarted by the watchdog).
    Relay,
}

impl ActorKind {
    pub fn label(self) -> &'static str {
        match self {
            ActorKind::Coordinator => "coordinator",
            ActorKind::TenantSupervisor => "tenant_supervisor",
            ActorKind::SyncWorker => "sync_worker",
            ActorKind::HistoryRecorder => "history_recorder",
            ActorKind::Consumer => "consumer",
            ActorKind::Watchdog => "watchdog",
            ActorKind::Relay => "relay",
        }
    }

    pub const ALL: [ActorKind; 7] = [
        ActorKind::Coordinator,
        ActorKind::TenantSupervisor,
        ActorKind::SyncWorker,
        ActorKind::HistoryRecorder,
        ActorKind::Consumer,
        ActorKind::Watchdog,
        ActorKind::Relay,
    ];
}

/// Why a supervisor restarted a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartCause {
    Panic,
    Error,
    /// No heartbeat within its deadline.
    Stuck,
}

impl RestartCause {
    fn label(self) -> &'static str {
        match self {
            RestartCause::Panic => "panic",
            RestartCause::Error => "error",
            RestartCause::Stuck => "stuck",
        }
    }
}

/// Mailbox waits: microseconds when healthy, seconds when a consumer is backed up.
const WAIT_SECONDS: &[f64] = &[0.0001, 0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0];

#[derive(Clone)]
pub struct WorkerMetrics {
    queue_messages: SnapshotGauge,
    queue_consumers: SnapshotGauge,
    in_flight: IntGaugeVec,
    pool_size: IntGaugeVec,
    jobs: IntCounterVec,
    mailbox_wait: HistogramVec,
    restarts: IntCounterVec,
    wedged: IntGaugeVec,
}

impl WorkerMetrics {
    pub(crate) fn declare(d: &mut Declarer<'_>) -> Self {
        let metrics = Self {
            queue_messages: SnapshotGauge::new(d.gauge(
                "entrasync_queue_messages",
                "Messages ready in a RabbitMQ queue, read from the broker at scrape time",
                &["queue"],
            )),
            queue_consumers: SnapshotGauge::new(d.gauge(
                "entrasync_queue_consumers",
                "Consumers attached to a RabbitMQ queue (all instances), read from the broker at scrape time",
                &["queue"],
            )),
            in_flight: d.int_gauge(
                "entrasync_worker_jobs_in_flight",
                "Jobs this instance's worker pool of a class holds (delivered, not yet settled)",
                &["class"],
            ),
            pool_size: d.int_gauge(
                "entrasync_worker_pool_size",
                "Sync workers this instance runs per class",
                &["class"],
            ),
            jobs: d.int_counter(
                "entrasync_worker_jobs_total",
                "Job deliveries settled by this instance's workers, by outcome",
                &["class", "outcome"],
            ),
            mailbox_wait: d.histogram(
                "entrasync_actor_mailbox_wait_seconds",
                "Time a sender waited for room in an actor's bounded mailbox",
                &["actor"],
                WAIT_SECONDS,
            ),
            restarts: d.int_counter(
                "entrasync_actor_restarts_total",
                "Actors restarted by their supervisor, by cause",
                &["actor", "cause"],
            ),
            wedged: d.int_gauge(
                "entrasync_actor_wedged",
                "Parts of an actor kind silent beyond their heartbeat deadline, or down, now (what /healthz reports)",
                &["actor"],
            ),
        };
        for class in ObjectClass::ALL {
            metrics.in_flight.with_label_values(&[class.as_str()]).set(0);
            metrics.pool_size.with_label_values(&[class.as_str()]).set(0);
        }
        for actor in ActorKind::ALL {
            metrics.wedged.with_label_values(&[actor.label()]).set(0);
            for cause in [RestartCause::Panic, RestartCause::Error, RestartCause::Stuck] {
                metrics.restarts.with_label_values(&[actor.label(), cause.label()]).inc_by(0);
            }
        }
        metrics
    }

    /// Replaces the queue gauges with what the broker reported now.
    pub fn replace_queues(&self, samples: &[QueueSample]) {
        self.queue_messages.replace(samples.iter().map(|s| (vec![s.queue.label().to_owned()], s.messages as f64)));
        self.queue_consumers.replace(samples.iter().map(|s| (vec![s.queue.label().to_owned()], s.consumers as f64)));
    }

    /// The broker could not be asked: no queue series rather than stale ones.
    pub fn clear_queues(&self) {
        self.queue_messages.clear();
        self.queue_consumers.clear();
    }

    pub fn set_pool_size(&self, class: ObjectClass, workers: usize) {
        self.pool_size.with_label_values(&[class.as_str()]).set(i64::try_from(workers).unwrap_or(i64::MAX));
    }

    /// A worker of `class` took a delivery. Keep the tracker until the delivery is settled.
    pub fn job_started(&self, class: ObjectClass) -> JobTracker {
        self.job_started_on(class.as_str())
    }

    /// A worker took a delivery of a queue that is not a class's (`checks`: the `class` label is the
    /// queue's name).
    pub fn job_started_on(&self, queue: &'static str) -> JobTracker {
        self.in_flight.with_label_values(&[queue]).inc();
        JobTracker { metrics: self.clone(), class: queue, open: true }
    }

    pub fn mailbox_waited(&self, actor: ActorKind, waited: Duration) {
        self.mailbox_wait.with_label_values(&[actor.label()]).observe(waited.as_secs_f64());
    }

    pub fn restarted(&self, actor: ActorKind, cause: RestartCause) {
        self.restarts.with_label_values(&[actor.label(), cause.label()]).inc();
    }

    /// How many parts of each kind are wedged now; kinds not listed have none.
    pub fn set_wedged(&self, wedged: &[(ActorKind, usize)]) {
        for actor in ActorKind::ALL {
            let count = wedged.iter().filter(|(kind, _)| *kind == actor).map(|(_, n)| *n).sum::<usize>();
            self.wedged.with_label_values(&[actor.label()]).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}

/// One delivery held by a worker. Dropping it unsettled (the worker died; the broker will redeliver)
/// only takes it off the in-flight gauge.
pub struct JobTracker {
    metrics: WorkerMetrics,
    class: &'static str,
    open: bool,
}

impl JobTracker {
    pub fn finished(mut self, outcome: JobOutcome) {
        self.metrics.jobs.with_label_values(&[self.class, outcome.label()]).inc();
        self.close();
    }

    fn close(&mut self) {
        if std::mem::replace(&mut self.open, false) {
            self.metrics.in_flight.with_label_values(&[self.class]).dec();
        }
    }
}

impl Drop for JobTracker {
    fn drop(&mut self) {
        self.close();
    }
}
