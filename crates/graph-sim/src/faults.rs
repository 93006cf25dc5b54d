//! Injected faults: what goes wrong (429 variants, 503, 504, slowness, dropped connections, malformed
//! JSON, sync resets, 403 refusals, throttle headers), for whom (one tenant or all) and when (probability, every Nth
//! matching request, a window of emulator time, at most N times).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `Retry-After` forms real clients meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfter {
    /// Integer seconds (the common form).
    Seconds(u64),
    /// Fractional seconds, as in the throttling docs' sample (`2.128`).
    Fraction(f64),
    /// An HTTP date this many seconds after the emulator's now.
    HttpDate(u64),
    /// No header: the client must back off on its own.
    Missing,
}

impl Default for RetryAfter {
    fn default() -> Self {
        RetryAfter::Seconds(1)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 TooManyRequests with the throttle headers.
    Throttle {
        #[serde(default)]
        retry_after: RetryAfter,
    },
    /// 503 ServiceUnavailable, optionally with Retry-After.
    ServiceUnavailable {
        #[serde(default)]
        retry_after: Option<RetryAfter>,
    },
    /// 504 GatewayTimeout.
    GatewayTimeout,
    /// The normal response, delayed.
    Slow { delay_ms: u64 },
    /// Headers and part of the body, then the connection is cut.
    DropConnection,
    /// 200 with a truncated, unparsable JSON body.
    MalformedJson,
    /// 410 Gone with `Location` (the initial query) for requests that carry a state token.
    SyncReset,
    /// 403 `Authorization_RequestDenied` whatever roles the token carries: Graph refusing an app that
    /// holds the permission (consent not yet replicated, a tenant policy in the way).
    Forbidden,
    /// The normal response plus `x-ms-throttle-limit-percentage`.
    ThrottleHeaders {
        #[serde(default = "default_percentage")]
        limit_percentage: f64,
    },
}

/// The answer of the `forbidden` fault: Graph's insufficient-privileges refusal (graph-protocol.md §4, E3).
pub fn forbidden() -> crate::error::GraphError {
    crate::error::GraphError::new(
        actix_web::http::StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn default_percentage() -> f64 {
    0.9
}

impl FaultKind {
    /// Decorations leave the response intact; everything else replaces it.
    pub fn is_decoration(&self) -> bool {
        matches!(self, FaultKind::Slow { .. } | FaultKind::ThrottleHeaders { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultTrigger {
    Always,
    Probability {
        p: f64,
    },
    /// The Nth, 2Nth, … matching request.
    EveryNth {
        n: u64,
    },
    /// While the emulator clock is in [from, until).
    Window {
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Only requests of this tenant; all tenants when absent.
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub kind: FaultKind,
    pub trigger: FaultTrigger,
    /// Only requests whose path contains this text (e.g. `users/delta`).
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Fire at most this many times.
    #[serde(default)]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveFault {
    pub id: u64,
    #[serde(flatten)]
    pub rule: FaultRule,
    pub matched: u64,
    pub fired: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("probability must be within 0..=1, got {0}")]
    BadProbability(f64),
    #[error("every_nth needs n >= 1")]
    BadNth,
    #[error("the window ends before it starts")]
    BadWindow,
}

#[derive(Debug, Default)]
pub struct FaultStore {
    next_id: AtomicU64,
    active: Mutex<Vec<ActiveFault>>,
}

impl FaultStore {
    pub fn add(&self, rule: FaultRule) -> Result<u64, FaultError> {
        match &rule.trigger {
            FaultTrigger::Probability { p } if !(0.0..=1.0).contains(p) => return Err(FaultError::BadProbability(*p)),
            FaultTrigger::EveryNth { n: 0 } => return Err(FaultError::BadNth),
            FaultTrigger::Window { from, until } if until <= from => return Err(FaultError::BadWindow),
            _ => {}
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut active) = self.active.lock() {
            active.push(ActiveFault { id, rule, matched: 0, fired: 0 });
        }
        Ok(id)
    }

    pub fn remove(&self, id: u64) -> bool {
        self.active
            .lock()
            .map(|mut a| {
                let before = a.len();
                a.retain(|f| f.id != id);
                a.len() != before
            })
            .unwrap_or(false)
    }

    /// Removes every fault, or only one tenant's.
    pub fn clear(&self, tenant: Option<&str>) {
        if let Ok(mut a) = self.active.lock() {
            a.retain(|f| tenant.is_some_and(|t| f.rule.tenant.as_deref() != Some(t)));
        }
    }

    pub fn list(&self) -> Vec<ActiveFault> {
        self.active.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// The faults that fire for this request, in the order they were added.
    pub fn fire(&self, tenant: &str, path: &str, now: DateTime<Utc>, roll: impl Fn() -> f64) -> Vec<FaultKind> {
        let Ok(mut active) = self.active.lock() else { return Vec::new() };
        let mut fired = Vec::new();
        for fault in active.iter_mut() {
            let rule = &fault.rule;
            if rule.tenant.as_deref().is_some_and(|t| t != tenant)
                || rule.path_contains.as_deref().is_some_and(|p| !path.contains(p))
                || rule.limit.is_some_and(|l| fault.fired >= l)
            {
                continue;
            }
            fault.matched += 1;
            let fires = match &rule.trigger {
                FaultTrigger::Always => true,
                FaultTrigger::Probability { p } => roll() < *p,
                FaultTrigger::EveryNth { n } => fault.matched % n == 0,
                FaultTrigger::Window { from, until } => *from <= now && now < *until,
            };
            if fires {
                fault.fired += 1;
                fired.push(rule.kind.clone());
            }
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(trigger: FaultTrigger) -> FaultRule {
        FaultRule {
            tenant: Some("t1".into()),
            kind: FaultKind::GatewayTimeout,
            trigger,
            path_contains: None,
            limit: None,
        }
    }

    #[test]
    fn every_nth_fires_on_multiples_and_respects_tenant_and_limit() {
        let store = FaultStore::default();
        store
            .add(FaultRule { limit: Some(2), ..rule(FaultTrigger::EveryNth { n: 2 }) })
            .map_err(|e| e.to_string())
            .unwrap();
        let now = Utc::now();
        let fired: Vec<bool> = (0..8).map(|_| !store.fire("t1", "/v1.0/users/delta", now, || 0.5).is_empty()).collect();
        assert_eq!(fired, vec![false, true, false, true, false, false, false, false]);
        assert!(store.fire("t2", "/v1.0/users/delta", now, || 0.5).is_empty());
    }

    #[test]
    fn rule_json_shape_is_flat() {
        let json = r#"{"kind":"throttle","retry_after":{"fraction":2.128},"trigger":{"mode":"probability","p":0.5}}"#;
        let parsed: FaultRule = serde_json::from_str(json).map_err(|e| e.to_string()).unwrap();
        assert_eq!(parsed.kind, FaultKind::Throttle { retry_after: RetryAfter::Fraction(2.128) });
        assert!(FaultStore::default().add(rule(FaultTrigger::Probability { p: 1.5 })).is_err());
    }
}
