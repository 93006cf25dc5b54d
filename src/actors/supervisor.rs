//! One tenant supervisor per owned tenant: wakes when the tenant's next run may be due, publishes the due
//! jobs (`schedule::enqueue_due`), the daily permission check (`schedule::enqueue_permission_check`) and
//! the daily tag sync (`schedule::enqueue_tag_sync`) and sleeps again. Its schedule state lives in Postgres, so a restart or
//! a move to another instance loses nothing. Runs under `actix::Supervisor`; each check runs in a task
//! of its own, so a panic is observed (and the actor restarted with backoff) instead of taking the
//! Arbiter down. Tests inject such a panic through `Settings::testing` (code only, never configured).

use std::time::Duration;

use actix::prelude::*;

use super::Shared;
use crate::backoff::Backoff;
use crate::metrics::{ActorKind, RestartCause};
use crate::model::{ObjectClass, SyncMode, Trigger};
use crate::queue::SyncJob;
use crate::schedule::{enqueue_due, enqueue_permission_check, enqueue_tag_sync, CheckOutcome, Policy, ScheduleError};
use crate::store::tenants;

const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// A check (a few reads and confirmed publishes) taking longer than this is abandoned and retried with
/// backoff, so one stuck call cannot stop the tenant's schedule.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(30);

pub struct TenantSupervisor {
    tenant_id: i64,
    shared: Shared,
    policy: Policy,
    /// Errors (and restarts) in a row.
    failures: u32,
    /// Waits between checks after errors and restarts; reset by a good check.
    backoff: Backoff,
    /// No longer ours: stay idle until the last address is dropped, never restart into work.
    retired: bool,
    /// When this supervisor last published the tenant's permission check (database time).
    permission_check_published: Option<chrono::DateTime<chrono::Utc>>,
    /// When this supervisor last published the tenant's tag sync (database time).
    tag_sync_published: Option<chrono::DateTime<chrono::Utc>>,
}

impl TenantSupervisor {
    pub fn new(tenant_id: i64, shared: Shared, policy: Policy) -> Self {
        TenantSupervisor {
            tenant_id,
            shared,
            policy,
            failures: 0,
            backoff: Backoff::capped(RETRY_MIN, RETRY_MAX),
            retired: false,
            permission_check_published: None,
            tag_sync_published: None,
        }
    }
}

impl Actor for TenantSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(8);
        if self.retired {
            return;
        }
        // Spread the first checks of many tenants taken over at once; after a restart, back off.
        let first = if self.failures == 0 {
            Duration::from_millis(rand::random_range(0..1000))
        } else {
            self.backoff.next_delay()
        };
        ctx.run_later(first, |_, ctx| ctx.notify(Check));
    }
}

impl Supervised for TenantSupervisor {
    fn restarting(&mut self, _: &mut Self::Context) {
        if !self.retired {
            self.failures += 1;
            tracing::warn!(tenant = self.tenant_id, restarts = self.failures, "restarting tenant supervisor");
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Check;

impl Handler<Check> for TenantSupervisor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: Check, _: &mut Self::Context) -> Self::Result {
        if self.retired {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        let (shared, tenant_id, policy) = (self.shared.clone(), self.tenant_id, self.policy);
        let published = self.permission_check_published;
        let tags_published = self.tag_sync_published;
        let tag_sync_every = self.shared.settings.tags.sync_interval;
        // A task of its own: its JoinError tells a panic apart from an error.
        let task = actix_rt::spawn(async move {
            injected_panic(&shared, tenant_id).await?;
            let outcome = enqueue_due(&shared.pool, &shared.broker, tenant_id, &policy).await?;
            let (published, tags_published) = match outcome {
                CheckOutcome::TenantGone => (published, tags_published),
                CheckOutcome::Checked { .. } => (
                    enqueue_permission_check(&shared.pool, &shared.broker, tenant_id, published).await?,
                    enqueue_tag_sync(&shared.pool, &shared.broker, tenant_id, tag_sync_every, tags_published).await?,
                ),
            };
            Ok::<_, ScheduleError>((outcome, published, tags_published))
        });
        let abort = task.abort_handle();
        let bounded = async move {
            let joined = tokio::time::timeout(CHECK_DEADLINE, task).await;
            if joined.is_err() {
                abort.abort();
            }
            joined
        };
        let check = bounded.into_actor(self).map(|joined, act, ctx| match joined {
            Err(_late) => {
                act.failures += 1;
                act.shared.metrics.workers.restarted(ActorKind::TenantSupervisor, RestartCause::Stuck);
                let retry_in = act.backoff.next_delay();
                tracing::warn!(
                    tenant = act.tenant_id,
                    deadline_s = CHECK_DEADLINE.as_secs(),
                    retry_in_s = retry_in.as_secs(),
                    "schedule check took too long; abandoned"
                );
                ctx.run_later(retry_in, |_, ctx| ctx.notify(Check));
            }
            Ok(joined) => act.checked(joined, ctx),
        });
        AtomicResponse::new(Box::pin(check))
    }
}

type CheckResult =
    Result<(CheckOutcome, Option<chrono::DateTime<chrono::Utc>>, Option<chrono::DateTime<chrono::Utc>>), ScheduleError>;

impl TenantSupervisor {
    fn checked(&mut self, joined: Result<CheckResult, actix_rt::task::JoinError>, ctx: &mut Context<Self>) {
        let act = self;
        match joined {
            Ok(Ok((CheckOutcome::Checked { next_check, .. }, published, tags_published))) => {
                act.permission_check_published = published;
                act.tag_sync_published = tags_published;
                act.failures = 0;
                act.backoff.reset();
                ctx.run_later(next_check, |_, ctx| ctx.notify(Check));
            }
            Ok(Ok((CheckOutcome::TenantGone, _, _))) => {
                tracing::info!(tenant = act.tenant_id, "tenant deleted; supervisor idle until released");
                act.retired = true;
            }
            Ok(Err(error)) => {
                act.failures += 1;
                act.shared.metrics.workers.restarted(ActorKind::TenantSupervisor, RestartCause::Error);
                let retry_in = act.backoff.next_delay();
                tracing::warn!(tenant = act.tenant_id, %error, retry_in_s = retry_in.as_secs(), "schedule check failed");
                ctx.run_later(retry_in, |_, ctx| ctx.notify(Check));
            }
            Err(panic) => {
                act.shared.metrics.workers.restarted(ActorKind::TenantSupervisor, RestartCause::Panic);
                tracing::error!(tenant = act.tenant_id, error = %panic, "schedule check panicked; restarting");
                ctx.stop();
            }
        }
    }
}

/// Fault injection for tests (`testing.panic_schedule_checks_of_tenant`, off by default): the check of the
/// tenant bearing the configured name panics, in the check's task like a real bug would. Tests rename a
/// tenant to break it and back to repair it, to prove panics lead to restarts with backoff.
async fn injected_panic(shared: &Shared, tenant_id: i64) -> Result<(), ScheduleError> {
    let Some(name) = shared.settings.testing.panic_schedule_checks_of_tenant.as_deref() else { return Ok(()) };
    if tenants::get(&shared.pool, tenant_id).await?.is_some_and(|tenant| tenant.name == name) {
        panic!("injected fault: testing.panic_schedule_checks_of_tenant names tenant {tenant_id} ({name:?})");
    }
    Ok(())
}

/// The lease is gone (or the instance is leaving): stop for good.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        self.retired = true;
        ctx.stop();
    }
}

/// A manual trigger (API, console): publish a job for one class now, whatever the schedule says.
#[derive(Message)]
#[rtype(result = "Result<uuid::Uuid, String>")]
pub struct RunNow {
    pub class: ObjectClass,
    pub mode: SyncMode,
    pub trigger: Trigger,
}

impl Handler<RunNow> for TenantSupervisor {
    type Result = ResponseFuture<Result<uuid::Uuid, String>>;

    fn handle(&mut self, request: RunNow, _: &mut Self::Context) -> Self::Result {
        let (shared, tenant_id) = (self.shared.clone(), self.tenant_id);
        Box::pin(async move {
            let tenant = tenants::get(&shared.pool, tenant_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("tenant {tenant_id} does not exist"))?;
            let job = SyncJob::new(tenant.entra_tenant_id, request.class, request.mode, request.trigger);
            shared.broker.publish(&job).await.map_err(|e| e.to_string())?;
            crate::store::schedule::mark_enqueued(&shared.pool, tenant_id, request.class, request.mode, job.job_id)
                .await
                .map_err(|e| e.to_string())?;
            Ok(job.job_id)
        })
    }
}
