//! The actors of one `entrasync serve`, started by role, watched, and stopped in order.
//!
//! The watchdog (a loop on an Arbiter of its own) checks the [`Liveness`] registry every second: a part
//! (the coordinator, the history recorder, a sync worker's consume loops, the change-event relay)
//! that died (panicked, or its loop ended) or stopped beating beyond its deadline is restarted on a fresh
//! Arbiter, with a capped backoff between restarts of the same part, and counted in
//! `entrasync_actor_restarts_total{actor, cause}`. The old Arbiter is stopped; if its thread is blocked
//! it stops whenever it unblocks, and in the meantime nothing listens to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::coordinator::{Coordinator, Leave, Supervised};
use super::liveness::{Down, Liveness, Unit};
use super::recorder::{Flush, HistoryRecorder, RecorderHandle};
use super::relay::{self, RelayDeps, RelayHandle, Watch};
use super::runtime::new_arbiter;
use super::worker::dead_letter::DeadLetters;
use super::worker::{Channels, Drain, SyncWorker, WorkerDeps};
use super::Shared;
use crate::backoff::Backoff;
use crate::config::Role;
use crate::metrics::{ActorKind, RestartCause};
use crate::model::ObjectClass;
use crate::schedule::{FailurePolicy, Policy};
use crate::store::secret_box::SecretBox;

/// Workers get this long to checkpoint and give their jobs back; SIGTERM must end `serve` within 10 s.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
const STEP_DEADLINE: Duration = Duration::from_secs(2);
/// How often the watchdog looks at the hearts.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// The watchdog itself is wedged (and `/healthz` fails) when silent this long; nothing restarts it.
const WATCHDOG_DEADLINE: Duration = Duration::from_secs(10);
/// Waits between restarts of the same part: a part that keeps dying is restarted ever more slowly.
const RESTART_MIN: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(60);
/// A part that beat after its restart and lived this long starts again from the shortest wait.
const STABLE_AFTER: Duration = Duration::from_secs(120);

/// The running actors. Stop them with [`Service::shutdown`] (or [`Service::abort`]).
pub struct Service {
    units: Arc<Mutex<Units>>,
    watchdog: Option<(Arbiter, CancellationToken)>,
    liveness: Liveness,
}

/// What the watchdog may replace: the current address and Arbiter of each part.
struct Units {
    coordinator: Option<(Addr<Coordinator>, Arbiter)>,
    /// Index = the worker's [`Unit::Worker`] number.
    workers: Vec<WorkerSlot>,
    recorder: Option<(Addr<HistoryRecorder>, Arbiter)>,
    /// The change-event relay (every instance; one at a time publishes): docs/events-relay.md.
    relay: Option<RelayHandle>,
}

struct WorkerSlot {
    class: ObjectClass,
    index: usize,
    addr: Addr<SyncWorker>,
    arbiter: Arbiter,
    channels: Channels,
}

/// How to start each part again.
#[derive(Clone)]
struct Starter {
    shared: Shared,
    policy: Policy,
    deps: Option<Arc<WorkerDeps>>,
    recorder: Option<RecorderHandle>,
}

impl Starter {
    fn coordinator(&self) -> (Addr<Coordinator>, Arbiter) {
        let arbiter = new_arbiter();
        let (shared, policy) = (self.shared.clone(), self.policy);
        let addr = Coordinator::start_in_arbiter(&arbiter.handle(), move |_| Coordinator::new(shared, policy));
        (addr, arbiter)
    }

    fn recorder(&self) -> (Addr<HistoryRecorder>, Arbiter) {
        let arbiter = new_arbiter();
        let shared = self.shared.clone();
        let addr = HistoryRecorder::start_in_arbiter(&arbiter.handle(), move |_| {
            HistoryRecorder::new(shared.pool.clone(), shared.liveness.clone(), shared.faults.clone())
        });
        (addr, arbiter)
    }

    fn worker(&self, deps: &Arc<WorkerDeps>, class: ObjectClass, index: usize, slot: usize) -> WorkerSlot {
        let arbiter = new_arbiter();
        let (deps, channels) = (deps.clone(), Channels::default());
        let theirs = channels.clone();
        let addr =
            SyncWorker::start_in_arbiter(&arbiter.handle(), move |_| SyncWorker::new(deps, class, index, slot, theirs));
        WorkerSlot { class, index, addr, arbiter, channels }
    }

    fn relay(&self) -> RelayHandle {
        relay::start_watched(RelayDeps::of(&self.shared), Watch::of(&self.shared))
    }
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
    /// coordinator; worker → `sync.workers_per_class` sync workers per class, each on its own Arbiter;
    /// and the watchdog that restarts any of them that dies or stops beating.
    pub fn start(shared: Shared) -> Result<Service, ServiceError> {
        let settings = shared.settings.clone();
        let policy = Policy::new(settings.sync.delta_interval, settings.sync.full_scan_interval);
        let mut starter = Starter { shared: shared.clone(), policy, deps: None, recorder: None };
        let recorder = starter.recorder();
        let handle = RecorderHandle::new(recorder.0.clone(), shared.metrics.workers.clone());
        starter.recorder = Some(handle.clone());

        let mut workers = Vec::new();
        if settings.has_role(Role::Worker) {
            let deps = Arc::new(worker_deps(&shared, handle)?);
            for class in ObjectClass::ALL {
                for index in 0..settings.sync.workers_per_class {
                    workers.push(starter.worker(&deps, class, index, workers.len()));
                }
                shared.metrics.workers.set_pool_size(class, settings.sync.workers_per_class);
            }
            starter.deps = Some(deps);
        }

        let coordinator = settings.has_role(Role::Scheduler).then(|| starter.coordinator());
        let relay = Some(starter.relay());
        let units = Arc::new(Mutex::new(Units { coordinator, workers, recorder: Some(recorder), relay }));
        let stop = CancellationToken::new();
        let arbiter = new_arbiter();
        let liveness = shared.liveness.clone();
        let spawned = arbiter.spawn(watch(starter, units.clone(), stop.clone()));
        if !spawned {
            tracing::error!("cannot start the watchdog; parts that die are not restarted");
        }
        Ok(Service { units, watchdog: Some((arbiter, stop)), liveness })
    }

    fn units(&self) -> MutexGuard<'_, Units> {
        self.units.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tenants this instance supervises now (empty without the scheduler role).
    pub async fn supervised_tenants(&self) -> Vec<i64> {
        let coordinator = self.units().coordinator.as_ref().map(|(addr, _)| addr.clone());
        match coordinator {
            Some(addr) => addr.send(Supervised).await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// The parts silent beyond their deadline or down now (what `/healthz` reports).
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// The watchdog stops first, so the parts stopped below are not restarted.
    fn stop_watchdog(&mut self) {
        if let Some((arbiter, stop)) = self.watchdog.take() {
            stop.cancel();
            arbiter.stop();
        }
    }

    fn take_units(&self) -> Units {
        let mut units = self.units();
        Units {
            coordinator: units.coordinator.take(),
            workers: std::mem::take(&mut units.workers),
            recorder: units.recorder.take(),
            relay: units.relay.take(),
        }
    }

    /// Ordered shutdown: stop consuming and let running rounds checkpoint and requeue their jobs; give
    /// up tenant leases; flush the history recorder. Each step has a deadline; a late step is logged and
    /// abandoned (what it left is recovered like a crash: leases expire, jobs are redelivered).
    pub async fn shutdown(mut self) {
        self.stop_watchdog();
        let Units { coordinator, workers, recorder, relay } = self.take_units();
        let drains = workers.iter().map(|slot| slot.addr.send(Drain));
        step("workers drained", DRAIN_DEADLINE, join_all(drains)).await;
        if let Some((addr, arbiter)) = coordinator {
            step("tenant leases released", STEP_DEADLINE, addr.send(Leave)).await;
            arbiter.stop();
        }
        // Flush before the workers' Arbiters stop: pooled connections opened on those runtimes die with them.
        if let Some((recorder, _)) = &recorder {
            step("history recorder flushed", STEP_DEADLINE, recorder.send(Flush)).await;
        }
        if let Some(relay) = relay {
            relay.stop(STEP_DEADLINE).await;
        }
        for slot in workers {
            slot.arbiter.stop();
        }
        if let Some((_, arbiter)) = recorder {
            arbiter.stop();
        }
        // Stopped as told: nothing is wedged, whatever the hearts dropped with their Arbiters say.
        self.liveness.clear();
    }

    /// Stops every actor at once, giving nothing up: what a crash looks like to the other instances
    /// (leases expire, unacknowledged jobs are redelivered, the run locks' sessions end).
    pub fn abort(mut self) {
        self.stop_watchdog();
        let Units { coordinator, workers, recorder, relay } = self.take_units();
        if let Some(relay) = relay {
            relay.abort();
        }
        let coordinator = coordinator.map(|(_, arbiter)| arbiter);
        let recorder = recorder.map(|(_, arbiter)| arbiter);
        for arbiter in coordinator.into_iter().chain(workers.into_iter().map(|slot| slot.arbiter)).chain(recorder) {
            arbiter.stop();
        }
    }
}

/// The watchdog's loop: restarts what [`Liveness::to_restart`] names, with a backoff per part.
async fn watch(starter: Starter, units: Arc<Mutex<Units>>, stop: CancellationToken) {
    let liveness = starter.shared.liveness.clone();
    let metrics = starter.shared.metrics.workers.clone();
    let heart = liveness.register("watchdog", Unit::Watchdog, WATCHDOG_DEADLINE);
    let mut restarts: HashMap<Unit, (Backoff, Instant, Instant)> = HashMap::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(WATCH_EVERY) => {}
            () = stop.cancelled() => break,
        }
        heart.beat();
        let now = Instant::now();
        for (unit, down) in liveness.to_restart() {
            if unit == Unit::Watchdog {
                continue;
            }
            let entry = restarts.entry(unit).or_insert_with(|| (Backoff::capped(RESTART_MIN, RESTART_MAX), now, now));
            let (backoff, not_before, last) = entry;
            if now < *not_before {
                continue;
            }
            if liveness.beat_since_restart(unit) && now.duration_since(*last) >= STABLE_AFTER {
                backoff.reset();
            }
            let cause = match down {
                Some(Down::Panicked) => RestartCause::Panic,
                Some(Down::Ended) => RestartCause::Error,
                None => RestartCause::Stuck,
            };
            let wait = backoff.next_delay();
            (*not_before, *last) = (now + wait, now);
            tracing::warn!(part = ?unit, ?cause, next_restart_not_before_s = wait.as_secs(), "restarting a wedged or dead part");
            metrics.restarted(unit.actor(), cause);
            liveness.restarted(unit);
            restart(&starter, &units, unit);
        }
        let mut wedged: Vec<(ActorKind, usize)> = Vec::new();
        for part in liveness.wedged() {
            wedged.push((part.unit.actor(), 1));
        }
        metrics.set_wedged(&wedged);
    }
    heart.retire();
}

/// Starts `unit` afresh and stops its old Arbiter.
fn restart(starter: &Starter, units: &Mutex<Units>, unit: Unit) {
    let mut units = units.lock().unwrap_or_else(PoisonError::into_inner);
    match unit {
        Unit::Coordinator => {
            if let Some((_, old)) = units.coordinator.replace(starter.coordinator()) {
                old.stop();
            }
        }
        Unit::HistoryRecorder => {
            let fresh = starter.recorder();
            if let Some(handle) = &starter.recorder {
                handle.replace(fresh.0.clone());
            }
            if let Some((_, old)) = units.recorder.replace(fresh) {
                old.stop();
            }
        }
        Unit::Worker(slot) => {
            let Some(deps) = &starter.deps else { return };
            let Some(current) = units.workers.get_mut(slot) else { return };
            let fresh = starter.worker(deps, current.class, current.index, slot);
            let old = std::mem::replace(current, fresh);
            // Its consume loops and rounds are dropped with the Arbiter (a dropped round resumes from its
            // last checkpoint). Its channels are closed from here, since a blocked thread never drops
            // them: the broker redelivers their jobs to the new worker or another instance.
            old.channels.close_all();
            old.arbiter.stop();
        }
        Unit::Relay => {
            // The old relay's lock goes with its Postgres session, which a blocked thread no longer
            // drives: the server ends it (idle) before the heart's deadline, so the new relay takes over.
            if let Some(old) = units.relay.replace(starter.relay()) {
                old.abort();
            }
        }
        Unit::Watchdog => {}
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
