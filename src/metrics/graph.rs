//! Microsoft Graph: requests and their answers, latency, retry waits, and the shared rate budget.
//!
//! Per event (call sites in `graph`, which owns the request loop):
//! - a response (or a transport failure) → [`GraphMetrics::request_finished`];
//! - a sleep before a retry (429, or 503/504/connection failure) → [`GraphMetrics::retry_waited`];
//! - units taken from the rate budget, and time waited for them → [`GraphMetrics::budget_spent`],
//!   [`GraphMetrics::budget_waited`]; the budget's planned rate per tenant → [`GraphMetrics::set_budget_rate`].

use std::time::Duration;

use prometheus::{CounterVec, GaugeVec, HistogramVec, IntCounterVec};
use uuid::Uuid;

use super::family::Declarer;
use super::labels;
use crate::model::ObjectClass;

/// What a Graph request was for: a delta page of a class, or a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphTarget {
    Delta(ObjectClass),
    Token,
}

impl GraphTarget {
    fn label(self) -> &'static str {
        match self {
            GraphTarget::Delta(class) => class.as_str(),
            GraphTarget::Token => "token",
        }
    }
}

/// Why the client slept before retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCause {
    /// 429 Too Many Requests.
    Throttled,
    /// 503, 504 or a connection failure.
    Unavailable,
}

impl WaitCause {
    fn label(self) -> &'static str {
        match self {
            WaitCause::Throttled => "throttled",
            WaitCause::Unavailable => "unavailable",
        }
    }
}

/// Request latency buckets: a delta page usually answers in well under a second.
const LATENCY_SECONDS: &[f64] = &[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

#[derive(Clone)]
pub struct GraphMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
    retry_waits: IntCounterVec,
    retry_wait_seconds: CounterVec,
    budget_units: CounterVec,
    budget_wait_seconds: CounterVec,
    budget_rate: GaugeVec,
}

impl GraphMetrics {
    pub(crate) fn declare(d: &mut Declarer<'_>) -> Self {
        Self {
            requests: d.int_counter(
                "entrasync_graph_requests_total",
                "HTTP requests to Graph and its token endpoint, by target (user, group, device, token) and status code (error: no response)",
                &["tenant", "class", "code"],
            ),
            latency: d.histogram(
                "entrasync_graph_request_duration_seconds",
                "Time from sending a Graph request to its complete response",
                &["class"],
                LATENCY_SECONDS,
            ),
            retry_waits: d.int_counter(
                "entrasync_graph_retry_waits_total",
                "Sleeps before retrying a Graph request, by cause (throttled: 429; unavailable: 503, 504, connection failure)",
                &["tenant", "class", "cause"],
            ),
            retry_wait_seconds: d.counter(
                "entrasync_graph_retry_wait_seconds_total",
                "Seconds slept before retrying Graph requests, by cause",
                &["tenant", "class", "cause"],
            ),
            budget_units: d.counter(
                "entrasync_graph_rate_budget_spent_units_total",
                "Graph resource units spent from the tenant's rate budget (x-ms-resource-unit when Graph reports it)",
                &["tenant"],
            ),
            budget_wait_seconds: d.counter(
                "entrasync_graph_rate_budget_wait_seconds_total",
                "Seconds requests waited for the shared rate budget before being sent",
                &["tenant"],
            ),
            budget_rate: d.gauge(
                "entrasync_graph_rate_budget_units_per_second",
                "Resource units per second the rate budget allows for the tenant over time: its bucket's refill rate (Graph's limit times the target fraction, less the burst share)",
                &["tenant"],
            ),
        }
    }

    /// A request got a response with `status`, or none (`None`: connection failure, timeout).
    pub fn request_finished(&self, tenant: Uuid, target: GraphTarget, status: Option<u16>, latency: Duration) {
        let code = labels::status_code(status);
        self.requests.with_label_values(&[labels::tenant(tenant).as_str(), target.label(), code.as_str()]).inc();
        self.latency.with_label_values(&[target.label()]).observe(latency.as_secs_f64());
    }

    /// The client slept `waited` before retrying.
    pub fn retry_waited(&self, tenant: Uuid, target: GraphTarget, cause: WaitCause, waited: Duration) {
        let tenant = labels::tenant(tenant);
        let values = [tenant.as_str(), target.label(), cause.label()];
        self.retry_waits.with_label_values(&values).inc();
        self.retry_wait_seconds.with_label_values(&values).inc_by(waited.as_secs_f64());
    }

    /// `units` were charged to the tenant's budget (negative or non-finite amounts are ignored).
    pub fn budget_spent(&self, tenant: Uuid, units: f64) {
        if units.is_finite() && units > 0.0 {
            self.budget_units.with_label_values(&[labels::tenant(tenant).as_str()]).inc_by(units);
        }
    }

    /// A request waited `waited` for budget.
    pub fn budget_waited(&self, tenant: Uuid, waited: Duration) {
        if !waited.is_zero() {
            self.budget_wait_seconds.with_label_values(&[labels::tenant(tenant).as_str()]).inc_by(waited.as_secs_f64());
        }
    }

    /// The budget's planned rate for the tenant (its bucket's refill rate).
    pub fn set_budget_rate(&self, tenant: Uuid, units_per_second: f64) {
        self.budget_rate.with_label_values(&[labels::tenant(tenant).as_str()]).set(units_per_second);
    }
}
