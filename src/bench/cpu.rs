//! CPU seconds per process during a round, from `/proc/<pid>/stat` (utime + stime, Linux): the syncing
//! process (this one), the emulator child, and Postgres — the client backends serving the benchmark's
//! database (`pg_stat_activity`), sampled before and after the round. A backend that exits during the
//! round loses its time (the pool keeps its connections, so none does in practice); the server's own
//! background processes (WAL writer, checkpointer) are not counted. Other work on the machine does not
//! leak into these figures, unlike a whole-machine or whole-server measure.

use std::collections::HashMap;

use serde::Serialize;

use crate::store::bench::backends;
use crate::store::Pool;

/// utime + stime of a process in clock ticks; `None` when it is gone or unreadable.
pub(super) fn ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields count from after its closing parenthesis.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state(0) ppid(1) … utime(11) stime(12).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn ticks_per_second() -> f64 {
    // The kernel's USER_HZ, 100 on every Linux this runs on.
    100.0
}

/// CPU seconds spent during one round, per process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuSplit {
    pub syncing_s: f64,
    pub emulator_s: f64,
    pub postgres_s: f64,
}

impl CpuSplit {
    /// What entrasync's side costs: the syncing process and Postgres. The emulator stands in for Graph,
    /// whose pages are produced on Microsoft's machines.
    pub fn ours_s(&self) -> f64 {
        self.syncing_s + self.postgres_s
    }

    pub fn total_s(&self) -> f64 {
        self.syncing_s + self.emulator_s + self.postgres_s
    }
}

/// Counters taken before a round.
pub struct CpuSample {
    own: Option<u64>,
    emulator: Option<u64>,
    backends: HashMap<i32, u64>,
    emulator_pid: Option<u32>,
}

async fn backend_ticks(pool: &Pool) -> HashMap<i32, u64> {
    match backends::pids(pool).await {
        Ok(pids) => pids.into_iter().filter_map(|pid| Some((pid, ticks(&pid.to_string())?))).collect(),
        Err(error) => {
            tracing::warn!(%error, "backend pids not read: no Postgres CPU figure");
            HashMap::new()
        }
    }
}

impl CpuSample {
    pub async fn take(pool: &Pool, emulator_pid: Option<u32>) -> CpuSample {
        CpuSample {
            own: ticks("self"),
            emulator: emulator_pid.and_then(|pid| ticks(&pid.to_string())),
            backends: backend_ticks(pool).await,
            emulator_pid,
        }
    }

    /// CPU seconds since this sample (backends that appeared since count from zero).
    pub async fn since(&self, pool: &Pool) -> CpuSplit {
        let own = ticks("self");
        let emulator = self.emulator_pid.and_then(|pid| ticks(&pid.to_string()));
        let now = backend_ticks(pool).await;
        let diff = |after: Option<u64>, before: Option<u64>| match (after, before) {
            (Some(a), Some(b)) => a.saturating_sub(b) as f64 / ticks_per_second(),
            _ => f64::NAN,
        };
        let postgres: u64 =
            now.iter().map(|(pid, t)| t.saturating_sub(self.backends.get(pid).copied().unwrap_or(0))).sum();
        CpuSplit {
            syncing_s: diff(own, self.own),
            emulator_s: diff(emulator, self.emulator),
            postgres_s: postgres as f64 / ticks_per_second(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ticks;

    #[test]
    fn reads_own_cpu_time_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(ticks("self").is_some());
        }
    }
}
