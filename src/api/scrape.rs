//! State read at scrape time: tenants and sync freshness from Postgres, queue depths from RabbitMQ.
//! Read when Prometheus asks rather than on a timer, so an idle instance costs nothing and the values are
//! as fresh as the scrape; concurrent scrapes share one read.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::metrics::{FreshnessSample, Metrics, QueueKind, QueueSample, StateSource, TenantSample, TenantState};
use crate::queue::{Broker, QueueDepth};
use crate::store::{metrics_queries, Pool, StoreError};

/// Scrapes closer together than this reuse the last read (several Prometheus replicas, retries).
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Well under Prometheus' default 10 s scrape timeout: a slow source must not fail the whole scrape.
const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// How long to wait for a RabbitMQ connection that is being re-established.
const BROKER_WAIT: Duration = Duration::from_millis(200);

/// When state was last read; one per application.
#[derive(Default)]
pub struct ScrapeGate {
    last: Mutex<Option<Instant>>,
}

/// Brings the scrape-time gauges up to date, unless another scrape just did.
pub async fn refresh(gate: &ScrapeGate, pool: &Pool, broker: &Broker, metrics: &Metrics) {
    let mut last = gate.last.lock().await;
    if last.is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL) {
        return;
    }
    tokio::join!(refresh_postgres(pool, metrics), refresh_rabbitmq(broker, metrics));
    *last = Some(Instant::now());
}

async fn refresh_postgres(pool: &Pool, metrics: &Metrics) {
    let read = async {
        let tenants = metrics_queries::tenant_states(pool).await?;
        let freshness = metrics_queries::freshness(pool).await?;
        Ok::<_, StoreError>((tenants, freshness))
    };
    let outcome = tokio::time::timeout(READ_TIMEOUT, read).await.unwrap_or(Err(StoreError::Timeout(READ_TIMEOUT)));
    match outcome {
        Ok((tenants, freshness)) => {
            metrics.tenants.replace_tenants(&tenants.into_iter().map(tenant_sample).collect::<Vec<_>>());
            metrics.tenants.replace_freshness(&freshness.into_iter().map(freshness_sample).collect::<Vec<_>>());
            metrics.tenants.refreshed(StateSource::Postgres, true);
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read tenant state for metrics");
            metrics.tenants.clear_postgres_state();
            metrics.tenants.refreshed(StateSource::Postgres, false);
        }
    }
}

async fn refresh_rabbitmq(broker: &Broker, metrics: &Metrics) {
    let outcome = tokio::time::timeout(READ_TIMEOUT, broker.queue_depths(BROKER_WAIT)).await;
    match outcome {
        Ok(Ok(depths)) => {
            metrics.workers.replace_queues(&depths.iter().map(queue_sample).collect::<Vec<_>>());
            metrics.tenants.refreshed(StateSource::RabbitMq, true);
        }
        failed => {
            let error = match failed {
                Ok(Err(error)) => error.to_string(),
                _ => format!("no answer within {READ_TIMEOUT:?}"),
            };
            tracing::warn!(%error, "cannot read queue depths for metrics");
            metrics.workers.clear_queues();
            metrics.tenants.refreshed(StateSource::RabbitMq, false);
        }
    }
}

fn tenant_sample(row: metrics_queries::TenantStateRow) -> TenantSample {
    let state = match (row.blocked, row.quarantined, row.enabled) {
        (true, _, _) => TenantState::Blocked,
        (_, true, _) => TenantState::Quarantined,
        (_, _, true) => TenantState::Enabled,
        _ => TenantState::Disabled,
    };
    TenantSample { tenant: row.entra_tenant_id, name: row.name, cloud: row.cloud, state }
}

fn freshness_sample(row: metrics_queries::FreshnessRow) -> FreshnessSample {
    FreshnessSample {
        tenant: row.entra_tenant_id,
        class: row.class,
        last_success_unix: row.last_success_unix,
        staleness_seconds: row.staleness_seconds,
        delta_cursor_age_seconds: row.delta_cursor_age_seconds,
        held_deletions: row.held_deletions,
        last_run_seconds: row.latest_run_seconds,
    }
}

fn queue_sample(depth: &QueueDepth) -> QueueSample {
    QueueSample {
        queue: depth.class.map_or(QueueKind::Dead, QueueKind::Sync),
        messages: u64::from(depth.messages),
        consumers: u64::from(depth.consumers),
    }
}
