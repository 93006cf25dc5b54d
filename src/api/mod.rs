//! The HTTP surface: probes and metrics now; the admin API and console are added under `/api/v1` and `/`.

mod health;
mod scrape;

use actix_web::web;

pub use health::{healthz, metrics, readyz};
pub use scrape::ScrapeGate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}
