//! The HTTP surface. Every instance serves its probes (`/healthz`, `/readyz`) and its own metrics
//! (`/metrics`); an instance with the `api` role (`serve.roles`) also serves the fleet-wide view: the
//! scrape-time state of every tenant and queue, and the operator API under `/api/v1` as it lands
//! (docs/architecture.md).

mod health;
mod scrape;

use actix_web::web;

use crate::metrics::Metrics;
use crate::queue::Broker;
use crate::store::Pool;

pub use health::{healthz, metrics, readyz};
pub use scrape::ScrapeGate;

/// Shared by the HTTP handlers.
pub struct AppState {
    pub pool: Pool,
    pub broker: Broker,
    pub metrics: Metrics,
    pub scrape: ScrapeGate,
    /// The `api` role: read and export fleet-wide state (tenants, freshness, queues) at scrape time.
    /// Instances without it export only their own series, so N workers do not repeat N fleet reads.
    pub fleet_view: bool,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}
