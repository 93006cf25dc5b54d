//! Liveness, readiness and the metrics endpoint.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

/// Alive as long as the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when both Postgres and RabbitMQ answer; 503 with the failing part named otherwise.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let postgres = crate::store::ping(&state.pool, Duration::from_secs(2)).await;
    let rabbitmq = state.broker.is_connected();
    let body = json!({
        "postgres": match &postgres { Ok(()) => "ok".to_owned(), Err(e) => e.to_string() },
        "rabbitmq": if rabbitmq { "ok" } else { "not connected" },
    });
    if postgres.is_ok() && rabbitmq {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The Prometheus text format; with the `api` role, the fleet-wide state (tenants, freshness, queues)
/// is read first.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if state.fleet_view {
        super::scrape::refresh(&state.scrape, &state.pool, &state.broker, &state.metrics).await;
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}
