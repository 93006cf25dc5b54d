//! What a chaos run breaks, and how. Graph faults are the emulator's fault rules (429 with every
//! `Retry-After` form, 5xx, dropped and stalled connections, malformed pages, 410 resets), its tenant
//! settings (delta tokens that expire after a second) and its clock (access tokens expiring mid-run).
//! Outages hit the service itself: kill -9 of an instance, and restarts and stalls of RabbitMQ and
//! Postgres as the client sees them, through the fault proxies. Faults are drawn from a seeded RNG;
//! the first draws go through every kind once, so even a short run injects each kind.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use graph_sim::faults::{FaultKind, FaultRule, FaultTrigger, RetryAfter};
use graph_sim::settings::SettingsPatch;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use serde::Serialize;

/// One kind of fault, as the report counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    ThrottleSeconds,
    ThrottleFraction,
    ThrottleHttpDate,
    ThrottleMissing,
    ServiceUnavailable,
    GatewayTimeout,
    DroppedConnection,
    StalledConnection,
    MalformedPage,
    SyncReset,
    ExpiredDeltaToken,
    TokenExpiry,
    Kill9,
    RabbitmqRestart,
    PostgresRestart,
    PostgresStall,
}

impl Fault {
    /// Faults of the Graph emulator.
    pub const GRAPH: [Fault; 12] = [
        Fault::ThrottleSeconds,
        Fault::ThrottleFraction,
        Fault::ThrottleHttpDate,
        Fault::ThrottleMissing,
        Fault::ServiceUnavailable,
        Fault::GatewayTimeout,
        Fault::DroppedConnection,
        Fault::StalledConnection,
        Fault::MalformedPage,
        Fault::SyncReset,
        Fault::ExpiredDeltaToken,
        Fault::TokenExpiry,
    ];

    /// Outages of the service's processes and peers; one at a time, with recovery measured after each.
    pub const OUTAGES: [Fault; 4] =
        [Fault::Kill9, Fault::RabbitmqRestart, Fault::PostgresRestart, Fault::PostgresStall];

    pub fn all() -> impl Iterator<Item = Fault> {
        Fault::GRAPH.into_iter().chain(Fault::OUTAGES)
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::ThrottleSeconds => "throttle_seconds",
            Fault::ThrottleFraction => "throttle_fraction",
            Fault::ThrottleHttpDate => "throttle_http_date",
            Fault::ThrottleMissing => "throttle_missing",
            Fault::ServiceUnavailable => "service_unavailable",
            Fault::GatewayTimeout => "gateway_timeout",
            Fault::DroppedConnection => "dropped_connection",
            Fault::StalledConnection => "stalled_connection",
            Fault::MalformedPage => "malformed_page",
            Fault::SyncReset => "sync_reset",
            Fault::ExpiredDeltaToken => "expired_delta_token",
            Fault::TokenExpiry => "token_expiry",
            Fault::Kill9 => "kill9",
            Fault::RabbitmqRestart => "rabbitmq_restart",
            Fault::PostgresRestart => "postgres_restart",
            Fault::PostgresStall => "postgres_stall",
        }
    }
}

/// How often a kind was injected, and (for emulator fault rules) how many requests it answered.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FaultCount {
    pub injected: u64,
    /// Requests the emulator answered with the fault (`None` for faults that are no rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fired: Option<u64>,
}

/// Counts per kind, every kind present (zero when never injected).
#[derive(Debug, Clone, Serialize)]
pub struct FaultCounts(pub BTreeMap<&'static str, FaultCount>);

impl Default for FaultCounts {
    fn default() -> Self {
        FaultCounts(Fault::all().map(|f| (f.name(), FaultCount::default())).collect())
    }
}

impl FaultCounts {
    pub fn injected(&mut self, fault: Fault) {
        self.0.entry(fault.name()).or_default().injected += 1;
    }

    pub fn fired(&mut self, fault: Fault, fired: u64) {
        let count = self.0.entry(fault.name()).or_default();
        count.fired = Some(count.fired.unwrap_or(0) + fired);
    }

    /// Faults that took effect: rules that answered at least one request count what they answered;
    /// every other fault counts once per injection.
    pub fn total(&self) -> u64 {
        self.0.values().map(|c| c.fired.unwrap_or(c.injected)).sum()
    }

    /// Kinds never injected (or, for rules, that never answered a request).
    pub fn missing(&self) -> Vec<&'static str> {
        self.0.iter().filter(|(_, c)| c.injected == 0 || c.fired == Some(0)).map(|(name, _)| *name).collect()
    }
}

/// How a Graph fault is undone when its time is up.
#[derive(Debug)]
pub enum Undo {
    /// Remove the emulator's rule (its fired count is read first).
    Rule { id: u64 },
    /// Give the tenant back its delta-token lifetime.
    Lifetime { tenant: String, previous: i64 },
    /// Move the emulator's clock back.
    Clock { seconds: i64 },
}

/// A Graph fault in force until `until`.
#[derive(Debug)]
pub struct Active {
    pub fault: Fault,
    pub undo: Undo,
    pub until: tokio::time::Instant,
}

/// Sits on a (future) access token's lifetime: tokens issued before the jump have expired after it.
const TOKEN_JUMP_SECS: i64 = 3_700;

/// Draws the next Graph fault kind: every kind once in a seeded order, then at random. Token expiry
/// and HTTP-date throttling never overlap: an HTTP date computed on a clock an hour ahead would
/// tell the client to wait an hour.
pub fn next_graph_fault(rng: &mut StdRng, first_pass: &mut Vec<Fault>, active: &[Active]) -> Fault {
    let clash = |fault: Fault| match fault {
        Fault::ThrottleHttpDate => active.iter().any(|a| a.fault == Fault::TokenExpiry),
        Fault::TokenExpiry => active.iter().any(|a| matches!(a.fault, Fault::ThrottleHttpDate | Fault::TokenExpiry)),
        _ => false,
    };
    if let Some(position) = first_pass.iter().position(|f| !clash(*f)) {
        return first_pass.remove(position);
    }
    loop {
        // Token expiry and expired delta tokens are rarer: each touches every tenant or forces full scans.
        let fault = match rng.random_range(0..100) {
            0..=3 => Fault::TokenExpiry,
            4..=9 => Fault::ExpiredDeltaToken,
            _ => Fault::GRAPH[rng.random_range(0..10)],
        };
        if !clash(fault) {
            return fault;
        }
    }
}

/// The shuffled first pass over `kinds`.
pub fn first_pass<const N: usize>(rng: &mut StdRng, kinds: [Fault; N]) -> Vec<Fault> {
    let mut pass = kinds.to_vec();
    pass.shuffle(rng);
    pass
}

/// Injects one Graph fault into the emulator; answers what undoes it and when.
pub fn inject_graph(
    state: &graph_sim::SimState,
    rng: &mut StdRng,
    fault: Fault,
    tenants: &[String],
    now: tokio::time::Instant,
) -> Result<Vec<Active>, String> {
    let lasting = |rng: &mut StdRng, low: u64, high: u64| now + Duration::from_millis(rng.random_range(low..=high));
    let retry_seconds = |rng: &mut StdRng| rng.random_range(1..=2u64);
    let kind = match fault {
        Fault::ThrottleSeconds => FaultKind::Throttle { retry_after: RetryAfter::Seconds(retry_seconds(rng)) },
        Fault::ThrottleFraction => {
            FaultKind::Throttle { retry_after: RetryAfter::Fraction(f64::from(rng.random_range(2..=25u32)) / 10.0) }
        }
        Fault::ThrottleHttpDate => FaultKind::Throttle { retry_after: RetryAfter::HttpDate(retry_seconds(rng)) },
        Fault::ThrottleMissing => FaultKind::Throttle { retry_after: RetryAfter::Missing },
        Fault::ServiceUnavailable => FaultKind::ServiceUnavailable {
            retry_after: rng.random_bool(0.5).then(|| RetryAfter::Seconds(retry_seconds(rng))),
        },
        Fault::GatewayTimeout => FaultKind::GatewayTimeout,
        Fault::DroppedConnection => FaultKind::DropConnection,
        Fault::StalledConnection => FaultKind::Slow { delay_ms: rng.random_range(3_000..=20_000) },
        Fault::MalformedPage => FaultKind::MalformedJson,
        Fault::SyncReset => FaultKind::SyncReset,
        Fault::ExpiredDeltaToken => {
            // Delta tokens of a few tenants expire a second after they are issued, for a while.
            let mut undo = Vec::new();
            let count = rng.random_range(1..=3usize).min(tenants.len());
            for tenant in tenants.choose_multiple(rng, count) {
                let previous = state.settings(tenant).map_err(|e| e.to_string())?.token_lifetime_secs;
                let patch = SettingsPatch { token_lifetime_secs: Some(1), ..SettingsPatch::default() };
                state.update_settings(tenant, &patch).map_err(|e| e.to_string())?;
                undo.push(Active {
                    fault,
                    undo: Undo::Lifetime { tenant: tenant.clone(), previous },
                    until: lasting(rng, 5_000, 20_000),
                });
            }
            return Ok(undo);
        }
        Fault::TokenExpiry => {
            // Every access token the service holds expires at once, mid-round.
            state.advance_clock(chrono::Duration::seconds(TOKEN_JUMP_SECS));
            return Ok(vec![Active {
                fault,
                undo: Undo::Clock { seconds: TOKEN_JUMP_SECS },
                until: lasting(rng, 2_000, 6_000),
            }]);
        }
        Fault::Kill9 | Fault::RabbitmqRestart | Fault::PostgresRestart | Fault::PostgresStall => {
            return Err(format!("{} is no Graph fault", fault.name()));
        }
    };
    // Half the rules hit one tenant on every request, half hit everyone now and then.
    let (tenant, trigger) = if rng.random_bool(0.5) && !tenants.is_empty() {
        (Some(tenants[rng.random_range(0..tenants.len())].clone()), FaultTrigger::Always)
    } else {
        (None, FaultTrigger::Probability { p: f64::from(rng.random_range(2..=6u32)) / 10.0 })
    };
    let (limit, path_contains) = match fault {
        Fault::StalledConnection => (rng.random_range(1..=3u64), None),
        Fault::SyncReset => (rng.random_range(1..=3u64), Some("delta".to_owned())),
        Fault::ThrottleSeconds | Fault::ThrottleFraction | Fault::ThrottleHttpDate | Fault::ThrottleMissing => {
            (rng.random_range(3..=15u64), None)
        }
        _ => (rng.random_range(1..=6u64), None),
    };
    let rule = FaultRule { tenant, kind, trigger, path_contains, limit: Some(limit) };
    let id = state.add_fault(rule).map_err(|e| e.to_string())?;
    Ok(vec![Active { fault, undo: Undo::Rule { id }, until: lasting(rng, 3_000, 12_000) }])
}

/// Undoes a Graph fault; answers how many requests a rule answered (`None` for other faults).
pub fn undo_graph(state: &graph_sim::SimState, undo: &Undo) -> Option<u64> {
    match undo {
        Undo::Rule { id } => {
            let fired = state.list_faults().iter().find(|f| f.id == *id).map_or(0, |f| f.fired);
            state.remove_fault(*id);
            Some(fired)
        }
        Undo::Lifetime { tenant, previous } => {
            let patch = SettingsPatch { token_lifetime_secs: Some(*previous), ..SettingsPatch::default() };
            if let Err(error) = state.update_settings(tenant, &patch) {
                tracing::warn!(%tenant, %error, "chaos: cannot restore a delta-token lifetime");
            }
            None
        }
        Undo::Clock { seconds } => {
            state.advance_clock(chrono::Duration::seconds(-seconds));
            None
        }
    }
}

/// One outage of the service: what, when it started, and when it ended (the peer back, or the killed
/// instance started again).
#[derive(Debug, Clone, Serialize)]
pub struct Outage {
    pub fault: Fault,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    /// The instance killed, for kill -9.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}
