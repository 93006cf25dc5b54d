//! The actix actors of `entrasync serve`, kept thin: the logic they call lives in `schedule`, `sync`,
//! `store` and `queue`. docs/architecture.md ("Actors, supervision and shutdown") lists the rules they follow.
//!
//! - [`Coordinator`] (scheduler role): instance heartbeat and tenant leases; one [`TenantSupervisor`]
//!   per owned tenant.
//! - [`TenantSupervisor`]: publishes the tenant's due `SyncJob`s.
//! - `SyncWorker` (worker role, each on its own Arbiter): consumes a class queue and runs sync rounds.
//! - `HistoryRecorder`: persists run history events.
//! - [`Service`]: starts them by role, restarts a wedged or dead one (its watchdog, fed by the
//!   [`liveness`] registry) and stops them in order.

pub mod coordinator;
pub mod liveness;
pub mod recorder;
pub mod relay;
mod runtime;
pub mod service;
pub mod supervisor;
pub mod worker;

use std::sync::Arc;

pub use coordinator::Coordinator;
pub use service::Service;
pub use supervisor::TenantSupervisor;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::queue::Broker;
use crate::store::run_lock::RunLocks;
use crate::store::Pool;
use liveness::{Faults, Liveness};

/// What every actor may use; cheap to clone.
#[derive(Clone)]
pub struct Shared {
    pub pool: Pool,
    pub broker: Broker,
    pub metrics: Metrics,
    pub settings: Arc<Settings>,
    pub run_locks: RunLocks,
    /// Heartbeats of the coordinator, the recorder, the consume loops and the relay (what `/healthz` reports).
    pub liveness: Liveness,
    /// Faults tests inject (code only).
    pub faults: Faults,
}

impl Shared {
    pub fn new(pool: Pool, broker: Broker, metrics: Metrics, settings: Settings) -> Shared {
        let run_locks = RunLocks::new(settings.database.clone());
        let (liveness, faults) = (Liveness::default(), Faults::default());
        Shared { pool, broker, metrics, settings: Arc::new(settings), run_locks, liveness, faults }
    }
}
