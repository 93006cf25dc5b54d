//! The coordinator: keeps this instance's heartbeat and tenant leases, and runs one tenant supervisor per
//! tenant it holds. Lease state is in Postgres; each tick is an `AtomicResponse`, so ticks never overlap.
//! Each step of a tick has a deadline, and every tick beats the coordinator's heart (whatever its
//! outcome): a coordinator that stops ticking is restarted by the service's watchdog.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::liveness::{FaultPoint, Heart, Unit};
use super::supervisor::{Retire, TenantSupervisor};
use super::Shared;
use crate::metrics::{ActorKind, RestartCause};
use crate::schedule::rebalance::{self, LeaseView};
use crate::schedule::Policy;
use crate::store::{leases, run_lock, StoreError};

/// How often leases are renewed and the assignment revisited.
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(5);
/// A lease (and an instance's liveness) not renewed for this long is free for others to take, so a
/// killed instance's tenants are supervised elsewhere within `LEASE_TTL + LEASE_RENEW_EVERY`.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// Each of a tick's two steps (survey and settle) gets this long; a late step fails the round like an
/// error. Less than the TTL, so a slow database costs a round, not the leases.
pub const TICK_STEP_DEADLINE: Duration = Duration::from_secs(8);
/// A coordinator whose heart is silent this long (a tick every 5 s, at most two late steps) is wedged.
pub const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(30);

/// Why a lease round failed.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{step} took longer than {:?}", TICK_STEP_DEADLINE)]
    Late { step: &'static str },
}

/// `future` within [`TICK_STEP_DEADLINE`].
async fn step<T>(
    step: &'static str,
    future: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, TickError> {
    match tokio::time::timeout(TICK_STEP_DEADLINE, future).await {
        Ok(outcome) => Ok(outcome?),
        Err(_) => Err(TickError::Late { step }),
    }
}

pub struct Coordinator {
    shared: Shared,
    policy: Policy,
    instance: String,
    supervisors: HashMap<i64, Addr<TenantSupervisor>>,
    /// When leases were last renewed successfully; older than the TTL means they may be someone else's.
    last_renewed: Option<Instant>,
    leaving: bool,
    heart: Option<Heart>,
}

impl Coordinator {
    pub fn new(shared: Shared, policy: Policy) -> Self {
        let instance = shared.settings.instance_id.clone();
        Coordinator {
            shared,
            policy,
            instance,
            supervisors: HashMap::new(),
            last_renewed: None,
            leaving: false,
            heart: None,
        }
    }

    fn stop_supervisors(&mut self, tenants: impl IntoIterator<Item = i64>) {
        for tenant in tenants {
            if let Some(addr) = self.supervisors.remove(&tenant) {
                // Dropping the last address afterwards ends the actix Supervisor instead of restarting it.
                addr.do_send(Retire);
                tracing::info!(tenant, "stopped supervising tenant");
            }
        }
    }

    fn start_supervisors(&mut self, tenants: impl IntoIterator<Item = i64>) {
        for tenant in tenants {
            if self.supervisors.contains_key(&tenant) {
                continue;
            }
            let (shared, policy) = (self.shared.clone(), self.policy);
            let addr = actix::Supervisor::start(move |_| TenantSupervisor::new(tenant, shared, policy));
            self.supervisors.insert(tenant, addr);
            tracing::info!(tenant, "supervising tenant");
        }
    }

    /// After a failed round: once our leases may have expired, another instance may own the tenants.
    fn on_round_failed(&mut self, error: &TickError) {
        tracing::warn!(%error, "lease round failed");
        self.shared.metrics.workers.restarted(ActorKind::Coordinator, RestartCause::Error);
        let expired = self.last_renewed.is_none_or(|at| at.elapsed() >= LEASE_TTL - LEASE_RENEW_EVERY);
        if expired && !self.supervisors.is_empty() {
            tracing::warn!(tenants = self.supervisors.len(), "leases may have expired; stopping all supervisors");
            let all: Vec<i64> = self.supervisors.keys().copied().collect();
            self.stop_supervisors(all);
        }
    }

    /// Supervisors this instance runs, for tests and diagnostics.
    pub fn supervised(&self) -> Vec<i64> {
        let mut tenants: Vec<i64> = self.supervisors.keys().copied().collect();
        tenants.sort_unstable();
        tenants
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16);
        self.heart = Some(self.shared.liveness.register("coordinator", Unit::Coordinator, HEARTBEAT_DEADLINE));
        tracing::info!(instance = %self.instance, "coordinator started");
        ctx.notify(Tick);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Stopped as told (leaving); a coordinator that dies otherwise leaves its heart to say so.
        if self.leaving {
            if let Some(heart) = self.heart.take() {
                heart.retire();
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

impl Handler<Tick> for Coordinator {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: Tick, _: &mut Self::Context) -> Self::Result {
        if self.leaving {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        self.shared.faults.hit(FaultPoint::CoordinatorTick);
        let (pool, instance) = (self.shared.pool.clone(), self.instance.clone());
        let survey = async move {
            let view = step("the lease survey", rebalance::survey(&pool, &instance, LEASE_TTL)).await;
            // Every coordinator sweeps: a run whose worker died must not stay `running`.
            if view.is_ok() {
                match step("closing orphaned runs", run_lock::close_orphaned_runs(&pool)).await {
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "cannot close orphaned runs"),
                }
            }
            view
        };
        let round = survey
            .into_actor(self)
            .then(|surveyed, act, _| {
                let view = match surveyed {
                    Ok(view) => {
                        act.last_renewed = Some(Instant::now());
                        // Our supervisors must be gone before another instance can take their leases.
                        let lost: Vec<i64> =
                            act.supervisors.keys().filter(|t| !view.keep.contains(t)).copied().collect();
                        act.stop_supervisors(lost);
                        Some(view)
                    }
                    Err(error) => {
                        act.on_round_failed(&error);
                        None
                    }
                };
                let (pool, instance) = (act.shared.pool.clone(), act.instance.clone());
                async move {
                    let view: LeaseView = view?;
                    let acquired = step("settling leases", rebalance::settle(&pool, &instance, &view, LEASE_TTL)).await;
                    Some((view, acquired))
                }
                .into_actor(act)
            })
            .map(|settled, act, ctx| {
                if let Some((view, acquired)) = settled {
                    match acquired {
                        Ok(acquired) => {
                            let (kept, gained) = (view.keep.len(), acquired.len());
                            act.start_supervisors(view.keep.into_iter().chain(acquired));
                            if gained > 0 || !view.surplus.is_empty() {
                                tracing::info!(
                                    kept,
                                    gained,
                                    released = view.surplus.len(),
                                    live_instances = view.live_instances,
                                    "tenant leases rebalanced"
                                );
                            }
                        }
                        Err(error) => act.on_round_failed(&error),
                    }
                }
                if let Some(heart) = &act.heart {
                    heart.beat();
                }
                if !act.leaving {
                    ctx.run_later(LEASE_RENEW_EVERY, |_, ctx| ctx.notify(Tick));
                }
            });
        AtomicResponse::new(Box::pin(round))
    }
}

/// Stops every supervisor and gives up all leases and the heartbeat, so other instances take over at
/// once. Part of the ordered shutdown.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

impl Handler<Leave> for Coordinator {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: Leave, _: &mut Self::Context) -> Self::Result {
        self.leaving = true;
        let all: Vec<i64> = self.supervisors.keys().copied().collect();
        self.stop_supervisors(all);
        let (pool, instance) = (self.shared.pool.clone(), self.instance.clone());
        let leave = async move {
            match tokio::time::timeout(Duration::from_secs(5), leases::leave(&pool, &instance)).await {
                Ok(Ok(())) => tracing::info!("released all tenant leases"),
                Ok(Err(error)) => tracing::warn!(%error, "cannot release tenant leases; they expire on their own"),
                Err(_) => tracing::warn!("releasing tenant leases timed out; they expire on their own"),
            }
        };
        AtomicResponse::new(Box::pin(leave.into_actor(self).map(|(), _, ctx| ctx.stop())))
    }
}

/// The tenants this coordinator supervises now.
#[derive(Message)]
#[rtype(result = "Vec<i64>")]
pub struct Supervised;

impl Handler<Supervised> for Coordinator {
    type Result = Vec<i64>;

    fn handle(&mut self, _: Supervised, _: &mut Self::Context) -> Vec<i64> {
        self.supervised()
    }
}
