//! Tenant state and freshness, read from Postgres at scrape time (`api::scrape`), because Postgres is
//! the one place that knows it for the whole fleet: which tenants exist and in what state, when each
//! (tenant, class) last synced successfully, how old its delta cursor is, and whether deletions wait.
//!
//! Every instance exports the same values; dashboards and alerts aggregate with `max by (tenant, ...)`.

use prometheus::{IntCounterVec, IntGaugeVec};
use uuid::Uuid;

use super::family::{Declarer, SnapshotGauge};
use super::labels;
use crate::model::ObjectClass;

/// A tenant's operational state; each tenant is in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantState {
    /// Synced on schedule.
    Enabled,
    /// Turned off by an operator.
    Disabled,
    /// Repeated failures: synced on a decaying schedule until it recovers.
    Quarantined,
    /// Cannot sync until an operator acts (quarantine exhausted, credentials or consent refused).
    Blocked,
}

impl TenantState {
    pub const ALL: [TenantState; 4] =
        [TenantState::Enabled, TenantState::Disabled, TenantState::Quarantined, TenantState::Blocked];

    pub fn as_str(self) -> &'static str {
        match self {
            TenantState::Enabled => "enabled",
            TenantState::Disabled => "disabled",
            TenantState::Quarantined => "quarantined",
            TenantState::Blocked => "blocked",
        }
    }
}

/// One tenant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSample {
    pub tenant: Uuid,
    pub name: String,
    pub cloud: String,
    pub state: TenantState,
}

/// One (tenant, class) of a tenant that is synced.
#[derive(Debug, Clone, PartialEq)]
pub struct FreshnessSample {
    pub tenant: Uuid,
    pub class: ObjectClass,
    /// Unix time the last successful (or warning) run finished.
    pub last_success_unix: Option<f64>,
    /// Seconds since the last successful run, or since the tenant was added when none succeeded yet.
    pub staleness_seconds: f64,
    /// Seconds since the stored deltaLink was obtained; none before the first completed round.
    pub delta_cursor_age_seconds: Option<f64>,
    /// Deletions the guard held that wait for an operator's decision.
    pub held_deletions: u64,
    /// Duration of the latest finished run.
    pub last_run_seconds: Option<f64>,
}

/// Where scrape-time state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateSource {
    Postgres,
    RabbitMq,
}

impl StateSource {
    fn label(self) -> &'static str {
        match self {
            StateSource::Postgres => "postgres",
            StateSource::RabbitMq => "rabbitmq",
        }
    }
}

#[derive(Clone)]
pub struct TenantMetrics {
    tenants: SnapshotGauge,
    info: SnapshotGauge,
    state: SnapshotGauge,
    last_success: SnapshotGauge,
    staleness: SnapshotGauge,
    cursor_age: SnapshotGauge,
    held: SnapshotGauge,
    last_run: SnapshotGauge,
    refresh_ok: IntGaugeVec,
    refresh_errors: IntCounterVec,
}

impl TenantMetrics {
    pub(crate) fn declare(d: &mut Declarer<'_>) -> Self {
        let tc = &["tenant", "class"];
        let metrics = Self {
            tenants: SnapshotGauge::new(d.gauge(
                "entrasync_tenants",
                "Registered tenants by state (enabled, disabled, quarantined, blocked); each tenant counts once",
                &["state"],
            )),
            info: SnapshotGauge::new(d.gauge(
                "entrasync_tenant_info",
                "Always 1; carries the tenant's display name and cloud for joins in dashboards",
                &["tenant", "name", "cloud"],
            )),
            state: SnapshotGauge::new(d.gauge(
                "entrasync_tenant_state",
                "1 for the tenant's current state, 0 for the other states",
                &["tenant", "state"],
            )),
            last_success: SnapshotGauge::new(d.gauge(
                "entrasync_sync_last_success_timestamp_seconds",
                "Unix time the last successful run of the tenant and class finished",
                tc,
            )),
            staleness: SnapshotGauge::new(d.gauge(
                "entrasync_sync_staleness_seconds",
                "Seconds since the last successful run of an enabled tenant and class (since the tenant was added if none)",
                tc,
            )),
            cursor_age: SnapshotGauge::new(d.gauge(
                "entrasync_sync_delta_cursor_age_seconds",
                "Age of the stored deltaLink; Graph expires it after about 7 days, entrasync rescans after 6",
                tc,
            )),
            held: SnapshotGauge::new(d.gauge(
                "entrasync_sync_held_deletions",
                "Deletions held by the deletion guard that wait for an operator to allow or reject them",
                tc,
            )),
            last_run: SnapshotGauge::new(d.gauge(
                "entrasync_sync_last_run_duration_seconds",
                "Duration of the latest finished run of the tenant and class",
                tc,
            )),
            refresh_ok: d.int_gauge(
                "entrasync_state_refresh_success",
                "1 when the last scrape-time read of the source succeeded, 0 when it failed (its series are then absent)",
                &["source"],
            ),
            refresh_errors: d.int_counter(
                "entrasync_state_refresh_errors_total",
                "Scrape-time reads of Postgres or RabbitMQ state that failed or timed out",
                &["source"],
            ),
        };
        for source in [StateSource::Postgres, StateSource::RabbitMq] {
            metrics.refresh_errors.with_label_values(&[source.label()]).inc_by(0);
        }
        metrics
    }

    /// Replaces the tenant gauges with a fresh read of the tenant list.
    pub fn replace_tenants(&self, tenants: &[TenantSample]) {
        self.tenants.replace(TenantState::ALL.iter().map(|state| {
            let count = tenants.iter().filter(|t| t.state == *state).count();
            (vec![state.as_str().to_owned()], count as f64)
        }));
        self.info
            .replace(tenants.iter().map(|t| (vec![labels::tenant(t.tenant), t.name.clone(), t.cloud.clone()], 1.0)));
        self.state.replace(tenants.iter().flat_map(|t| {
            TenantState::ALL.iter().map(move |state| {
                (vec![labels::tenant(t.tenant), state.as_str().to_owned()], f64::from(u8::from(t.state == *state)))
            })
        }));
    }

    /// Replaces the per-(tenant, class) freshness gauges.
    pub fn replace_freshness(&self, samples: &[FreshnessSample]) {
        let key = |s: &FreshnessSample| vec![labels::tenant(s.tenant), s.class.as_str().to_owned()];
        self.last_success.replace(samples.iter().filter_map(|s| s.last_success_unix.map(|v| (key(s), v))));
        self.staleness.replace(samples.iter().map(|s| (key(s), s.staleness_seconds)));
        self.cursor_age.replace(samples.iter().filter_map(|s| s.delta_cursor_age_seconds.map(|v| (key(s), v))));
        self.held.replace(samples.iter().map(|s| (key(s), s.held_deletions as f64)));
        self.last_run.replace(samples.iter().filter_map(|s| s.last_run_seconds.map(|v| (key(s), v))));
    }

    /// Postgres could not be read: drop its series (absent beats stale) and say so.
    pub fn clear_postgres_state(&self) {
        for gauge in [
            &self.tenants,
            &self.info,
            &self.state,
            &self.last_success,
            &self.staleness,
            &self.cursor_age,
            &self.held,
            &self.last_run,
        ] {
            gauge.clear();
        }
    }

    /// Records whether a scrape-time read of `source` worked.
    pub fn refreshed(&self, source: StateSource, ok: bool) {
        self.refresh_ok.with_label_values(&[source.label()]).set(i64::from(ok));
        if !ok {
            self.refresh_errors.with_label_values(&[source.label()]).inc();
        }
    }
}
