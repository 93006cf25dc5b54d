//! The actors of one `entrasync serve`, started by role and stopped in order.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::join_all;

use super::coordinator::{Coordinator, Leave, Supervised};
use super::recorder::{Flush, HistoryRecorder, RecorderHandle};
use super::runtime::new_arbiter;
use super::worker::dead_letter::DeadLetters;
use super::worker::{Drain, SyncWorker, WorkerDeps};
use super::Shared;
use crate::config::Role;
use crate::model::ObjectClass;
use crate::schedule::{FailurePolicy, Policy};
use crate::store::secret_box::SecretBox;

/// Workers get this long to checkpoint and give their jobs back; SIGTERM must end `serve` within 10 s.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
const STEP_DEADLINE: Duration = Duration::from_secs(2);

/// The running actors. Stop them with [`Service::shutdown`] (or [`Service::abort`]).
pub struct Service {
    coordinator: Option<(Addr<Coordinator>, Arbiter)>,
    workers: Vec<(Addr<SyncWorker>, Arbiter)>,
    recorder: (Addr<HistoryRecorder>, Arbiter),
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot build the Graph client: {0}")]
    Graph(#[from] crate::graph::GraphError),
    #[error("ENTRASYNC_SECRETS_KEY: {0}")]
    SecretsKey(#[from] crate::store::StoreError),
}

impl Service {
    /// Starts the actors for the roles in the settings: the history recorder always; scheduler →
    /// coordinator; worker → `sync.workers_per_class` sync workers per class, each on its own Arbiter.
    pub fn start(shared: Shared) -> Result<Service, ServiceError> {
        let settings = shared.settings.clone();
        let recorder_arbiter = new_arbiter();
        let store = crate::sync::PgRunRecorder::new(shared.pool.clone());
        let recorder =
            HistoryRecorder::start_in_arbiter(&recorder_arbiter.handle(), move |_| HistoryRecorder::new(store));

        let mut workers = Vec::new();
        if settings.has_role(Role::Worker) {
            let deps =
                Arc::new(worker_deps(&shared, RecorderHandle::new(recorder.clone(), shared.metrics.workers.clone()))?);
            for class in ObjectClass::ALL {
                for index in 0..settings.sync.workers_per_class {
                    let arbiter = new_arbiter();
                    let deps = deps.clone();
                    let addr =
                        SyncWorker::start_in_arbiter(&arbiter.handle(), move |_| SyncWorker::new(deps, class, index));
                    workers.push((addr, arbiter));
                }
                shared.metrics.workers.set_pool_size(class, settings.sync.workers_per_class);
            }
        }

        let coordinator = settings.has_role(Role::Scheduler).then(|| {
            let policy = Policy::new(settings.sync.delta_interval, settings.sync.full_scan_interval);
            let arbiter = new_arbiter();
            let shared = shared.clone();
            let addr = Coordinator::start_in_arbiter(&arbiter.handle(), move |_| Coordinator::new(shared, policy));
            (addr, arbiter)
        });
        Ok(Service { coordinator, workers, recorder: (recorder, recorder_arbiter) })
    }

    /// Tenants this instance supervises now (empty without the scheduler role).
    pub async fn supervised_tenants(&self) -> Vec<i64> {
        match &self.coordinator {
            Some((addr, _)) => addr.send(Supervised).await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Ordered shutdown: stop consuming and let running rounds checkpoint and requeue their jobs; give
    /// up tenant leases; flush the history recorder. Each step has a deadline; a late step is logged and
    /// abandoned (what it left is recovered like a crash: leases expire, jobs are redelivered).
    pub async fn shutdown(self) {
        let drains = self.workers.iter().map(|(addr, _)| addr.send(Drain));
        step("workers drained", DRAIN_DEADLINE, join_all(drains)).await;
        if let Some((addr, arbiter)) = self.coordinator {
            step("tenant leases released", STEP_DEADLINE, addr.send(Leave)).await;
            arbiter.stop();
        }
        // Flush before the workers' Arbiters stop: pooled connections opened on those runtimes die with them.
        let (recorder, arbiter) = self.recorder;
        step("history recorder flushed", STEP_DEADLINE, recorder.send(Flush)).await;
        for (_, arbiter) in self.workers {
            arbiter.stop();
        }
        arbiter.stop();
    }

    /// Stops every actor at once, giving nothing up: what a crash looks like to the other instances
    /// (leases expire, unacknowledged jobs are redelivered, the run locks' sessions end).
    pub fn abort(self) {
        let workers = self.workers.into_iter().map(|(_, arbiter)| arbiter);
        for arbiter in self.coordinator.into_iter().map(|(_, arbiter)| arbiter).chain(workers) {
            arbiter.stop();
        }
        self.recorder.1.stop();
    }
}

fn worker_deps(shared: &Shared, recorder: RecorderHandle) -> Result<WorkerDeps, ServiceError> {
    use secrecy::ExposeSecret;
    let key = &shared.settings.secrets_key;
    let secrets = if key.expose_secret().is_empty() { None } else { Some(SecretBox::from_setting(key)?) };
    let graph = crate::access::graph_client(&shared.pool, &shared.metrics)?;
    Ok(WorkerDeps {
        shared: shared.clone(),
        graph,
        recorder,
        secrets,
        dead_letters: DeadLetters::new(shared.broker.clone()),
        failures: FailurePolicy::default(),
    })
}

async fn step<T>(name: &str, deadline: Duration, future: impl std::future::Future<Output = T>) {
    match tokio::time::timeout(deadline, future).await {
        Ok(_) => tracing::info!(step = name, "shutdown step done"),
        Err(_) => tracing::warn!(step = name, deadline_s = deadline.as_secs(), "shutdown step late; forced"),
    }
}
