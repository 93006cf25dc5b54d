//! Liveness, readiness and the metrics endpoint.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::actors::liveness::Liveness;

/// Alive while every part of the service beats within its deadline (coordinator, history recorder,
/// consume loops, change-event relay, the watchdog); 503 naming the wedged or dead parts otherwise. An
/// outage of Postgres or RabbitMQ is not a wedge (the parts keep turning and failing): that is `/readyz`'s
/// to report.
pub async fn healthz(liveness: Option<web::Data<Liveness>>) -> HttpResponse {
    let wedged = liveness.map(|liveness| liveness.wedged()).unwrap_or_default();
    if wedged.is_empty() {
        return HttpResponse::Ok().json(json!({ "status": "ok" }));
    }
    let parts: Vec<_> = wedged
        .iter()
        .map(|part| {
            json!({
                "part": part.part,
                "silent_s": part.silent_for.as_secs(),
                "deadline_s": part.deadline.as_secs(),
                "down": part.down.map(|down| format!("{down:?}").to_lowercase()),
            })
        })
        .collect();
    let names: Vec<&str> = wedged.iter().map(|part| part.part.as_str()).collect();
    tracing::warn!(wedged = ?names, "healthz: parts wedged");
    HttpResponse::ServiceUnavailable().json(json!({ "status": "wedged", "wedged": parts }))
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
