//! Where the CPU went during a measurement, from `/proc` (Linux): the service instances and the
//! emulator by process id, this process, Postgres and RabbitMQ by process name, and the whole machine
//! (`/proc/stat`), so "other" is whatever else ran (another engineer's compile pollutes a figure, and
//! this says so). On 2 cores the figures only make sense with it.

use std::path::Path;

use serde::Serialize;

/// `/proc` reports times in clock ticks of `USER_HZ`, 100 on every Linux architecture we run on.
const TICKS_PER_SECOND: f64 = 100.0;

/// Postgres: the postmaster and its backends (a backend that exits is counted in the postmaster's
/// children's time).
const POSTGRES: &str = "postgres";
/// RabbitMQ's Erlang VM.
const RABBITMQ: &str = "beam.smp";

/// The fields of a `stat` file after the command name (which may hold spaces), from `state` on.
fn stat_fields(stat: &Path) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(stat).ok()?;
    let rest = text.get(text.rfind(')')? + 1..)?;
    // `state` is a letter; the numbers that follow start at field 4.
    Some(rest.split_whitespace().skip(1).map(|field| field.parse().unwrap_or(0)).collect())
}

/// User + system ticks of a process so far (`utime`, `stime`: fields 14 and 15).
fn process_ticks(stat: &Path) -> Option<u64> {
    let fields = stat_fields(stat)?;
    Some(fields.get(10)? + fields.get(11)?)
}

/// User + system ticks of every process named `name`, with their waited-for children's (`cutime`,
/// `cstime`: fields 16 and 17).
fn named_ticks(name: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let mut ticks = 0;
    for entry in entries.flatten() {
        let dir = entry.path();
        let named = std::fs::read_to_string(dir.join("comm")).is_ok_and(|comm| comm.trim_end() == name);
        if let Some(fields) = named.then(|| stat_fields(&dir.join("stat"))).flatten() {
            ticks += fields.iter().skip(10).take(4).sum::<u64>();
        }
    }
    ticks
}

/// Busy and total ticks of all cores (`cpu` line of `/proc/stat`; idle and iowait are not busy).
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

fn ticks_of(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|pid| process_ticks(&Path::new("/proc").join(pid.to_string()).join("stat"))).sum()
}

/// Counters at one instant.
#[derive(Debug, Clone)]
pub struct CpuSample {
    service: u64,
    emulator: u64,
    own: u64,
    postgres: u64,
    rabbitmq: u64,
    machine_busy: u64,
    machine_total: u64,
}

impl CpuSample {
    pub fn take(service_pids: &[u32], emulator_pid: Option<u32>) -> CpuSample {
        let (machine_busy, machine_total) = machine_ticks().unwrap_or((0, 0));
        CpuSample {
            service: ticks_of(service_pids),
            emulator: ticks_of(&emulator_pid.into_iter().collect::<Vec<_>>()),
            own: process_ticks(Path::new("/proc/self/stat")).unwrap_or(0),
            postgres: named_ticks(POSTGRES),
            rabbitmq: named_ticks(RABBITMQ),
            machine_busy,
            machine_total,
        }
    }

    /// CPU seconds spent between `self` and `later`.
    pub fn until(&self, later: &CpuSample) -> CpuSeconds {
        let seconds = |from: u64, to: u64| to.saturating_sub(from) as f64 / TICKS_PER_SECOND;
        let service = seconds(self.service, later.service);
        let emulator = seconds(self.emulator, later.emulator);
        let benchmark = seconds(self.own, later.own);
        let postgres = seconds(self.postgres, later.postgres);
        let rabbitmq = seconds(self.rabbitmq, later.rabbitmq);
        let machine_busy = seconds(self.machine_busy, later.machine_busy);
        // The machine counters sum over cores: total ticks ÷ wall ticks is the number of cores.
        let machine_capacity = seconds(self.machine_total, later.machine_total);
        CpuSeconds {
            service,
            emulator,
            benchmark,
            postgres,
            rabbitmq,
            other: (machine_busy - service - emulator - benchmark - postgres - rabbitmq).max(0.0),
            machine_busy,
            machine_capacity,
        }
    }
}

/// CPU seconds by consumer over one measurement.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuSeconds {
    /// All service instances together.
    pub service: f64,
    pub emulator: f64,
    /// This process (publishing, polling).
    pub benchmark: f64,
    /// Every Postgres process (all databases: other users of the server count too).
    pub postgres: f64,
    pub rabbitmq: f64,
    /// Whatever else ran on the machine (the kernel's own work, other people's processes).
    pub other: f64,
    pub machine_busy: f64,
    /// Core-seconds available (cores × wall time).
    pub machine_capacity: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_the_machine_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_ticks(Path::new("/proc/self/stat")).is_some());
            assert_eq!(named_ticks("no-such-process-name"), 0);
            let (busy, total) = machine_ticks().expect("/proc/stat");
            assert!(total >= busy && total > 0);
        }
    }
}
