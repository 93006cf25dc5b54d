//! The Prometheus registry and the metric definitions, declared per subsystem.
//!
//! Each subsystem owns its families and offers a small typed API with one call per event, so label
//! values come from closed enums (bounded cardinality by construction) and names live in one file.
//! The catalogue with meanings and alerts is `docs/observability.md`.

mod build;
mod events;
mod family;
mod graph;
pub mod labels;
mod queue;
mod sync;
mod tenants;

use prometheus::{Encoder, Registry, TextEncoder};

pub use events::{EventsMetrics, RelayFailure};
pub use family::{Family, Kind};
pub use graph::{GraphMetrics, GraphTarget, WaitCause};
pub use queue::{ActorKind, JobOutcome, JobTracker, QueueKind, QueueSample, RestartCause, WorkerMetrics};
pub use sync::{RunTotals, RunTracker, SyncMetrics};
pub use tenants::{FreshnessSample, StateSource, TenantMetrics, TenantSample, TenantState};

/// Everything this process exports on `/metrics`. Cheap to clone: clones share the same series.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub sync: SyncMetrics,
    pub graph: GraphMetrics,
    pub workers: WorkerMetrics,
    pub tenants: TenantMetrics,
    pub events: EventsMetrics,
    families: std::sync::Arc<Vec<Family>>,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let mut declarer = family::Declarer::new(&registry);
        build::declare(&mut declarer);
        let sync = SyncMetrics::declare(&mut declarer);
        let graph = GraphMetrics::declare(&mut declarer);
        let workers = WorkerMetrics::declare(&mut declarer);
        let tenants = TenantMetrics::declare(&mut declarer);
        let events = EventsMetrics::declare(&mut declarer);
        let families = std::sync::Arc::new(declarer.finish());
        Metrics { registry, sync, graph, workers, tenants, events, families }
    }

    /// Every family declared, whether or not it has series yet.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
