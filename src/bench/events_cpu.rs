//! CPU seconds of one round of `entrasync bench-events --rounds`, split by who spent them: this process
//! (the round), the emulator child, the relay child (with its consumer), RabbitMQ (`beam.smp`), and the
//! database's Postgres backends, the relay's session apart from the rest (the round's and its pool's).

use std::collections::HashMap;

use serde::Serialize;

use super::cpu::ticks;
use super::events_child::RELAY_SESSION;
use crate::store::bench::events::backends;
use crate::store::Pool;

/// The processes measured besides this one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pids {
    pub emulator: Option<u32>,
    pub relay: Option<u32>,
    pub rabbitmq: Option<u32>,
}

/// CPU seconds per part over a round.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Split {
    /// This process: the sync round itself.
    pub round_s: f64,
    /// Postgres backends other than the relay's session: the round's writes and the triggers.
    pub postgres_round_s: f64,
    /// The relay's Postgres session: reading and deleting outbox rows.
    pub postgres_relay_s: f64,
    /// The relay child process (and its consumer, when there is one).
    pub relay_s: f64,
    pub rabbitmq_s: f64,
    pub emulator_s: f64,
}

/// Counters taken before a round.
pub struct Sample {
    pids: Pids,
    own: u64,
    others: [u64; 3],
    backends: HashMap<i32, (u64, bool)>,
}

fn of(pid: Option<u32>) -> u64 {
    pid.and_then(|pid| ticks(&pid.to_string())).unwrap_or(0)
}

async fn backend_ticks(pool: &Pool) -> HashMap<i32, (u64, bool)> {
    match backends(pool).await {
        Ok(list) => list
            .into_iter()
            .filter_map(|(pid, name)| Some((pid, (ticks(&pid.to_string())?, name == RELAY_SESSION))))
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "backend pids not read: no Postgres CPU figure");
            HashMap::new()
        }
    }
}

impl Sample {
    pub async fn take(pool: &Pool, pids: Pids) -> Sample {
        Sample {
            pids,
            own: ticks("self").unwrap_or(0),
            others: [of(pids.emulator), of(pids.relay), of(pids.rabbitmq)],
            backends: backend_ticks(pool).await,
        }
    }

    pub async fn since(&self, pool: &Pool) -> Split {
        let seconds = |after: u64, before: u64| after.saturating_sub(before) as f64 / 100.0;
        let (mut round, mut relay) = (0, 0);
        for (pid, (now, is_relay)) in backend_ticks(pool).await {
            let spent = now.saturating_sub(self.backends.get(&pid).map_or(0, |b| b.0));
            if is_relay {
                relay += spent;
            } else {
                round += spent;
            }
        }
        Split {
            round_s: seconds(ticks("self").unwrap_or(0), self.own),
            postgres_round_s: round as f64 / 100.0,
            postgres_relay_s: relay as f64 / 100.0,
            emulator_s: seconds(of(self.pids.emulator), self.others[0]),
            relay_s: seconds(of(self.pids.relay), self.others[1]),
            rabbitmq_s: seconds(of(self.pids.rabbitmq), self.others[2]),
        }
    }
}
