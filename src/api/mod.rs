//! The HTTP surface. Every instance serves its probes (`/healthz`, `/readyz`) and its own metrics
//! (`/metrics`); an instance with the `api` role (`serve.roles`) also serves the fleet-wide view: the
//! scrape-time state of every tenant and queue, the operator API under `/api/v1` and the console at `/`
//! (docs/api.md, docs/architecture.md).

pub mod console;
mod health;
mod scrape;
pub mod v1;

use std::sync::Arc;

use actix_web::web;

use crate::graph::GraphClient;
use crate::metrics::Metrics;
use crate::queue::Broker;
use crate::store::secret_box::SecretBox;
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
    /// Reads and writes credential material; `None` without `ENTRASYNC_SECRETS_KEY`.
    pub secrets: Option<Arc<SecretBox>>,
    /// Test connection, tenant discovery and the directory's name.
    pub graph: GraphClient,
    /// SHA-256 of `ENTRASYNC_ADMIN_TOKEN`, accepted as the admin token `bootstrap`.
    pub bootstrap_hash: Option<[u8; 32]>,
    pub sign_ins: v1::auth::SignInGuard,
    /// Where browsers reach the console (`api.public_url`), for the admin-consent redirect.
    pub public_url: Option<url::Url>,
    /// Hosts a custom cloud given through the API may use (`api.custom_cloud_hosts`): credentials are
    /// sent to its login URL, so an admin token alone must not choose where they go.
    pub custom_cloud_hosts: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`api.trusted_proxies`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Tag mapping limits (`tags.max_mappings`).
    pub tags: crate::config::TagSettings,
}

/// The probes and `/metrics` everywhere; the operator API and the console with the `api` role.
pub fn configure(cfg: &mut web::ServiceConfig, operator_surface: bool) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
    if operator_surface {
        cfg.configure(v1::configure).configure(console::configure);
    }
}
