//! Medians over runs and the printed tables.

// Writing into a String cannot fail: each `writeln!(…).unwrap_or_default()` only satisfies the type.
use std::fmt::Write;

use serde::Serialize;

use super::cpu::CpuSplit;
use super::scenario::{RunFigures, RunPlan};

const MB: f64 = (1 << 20) as f64;

/// The medians of a benchmark's runs.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The class the rounds synced, and the generated tenant.
    pub class: String,
    pub users: usize,
    pub groups: usize,
    pub devices: usize,
    pub runs: usize,
    pub full_s: f64,
    pub full_objects: u64,
    pub full_objects_per_s: f64,
    /// Membership rows stored after the full round (group rounds; 0 otherwise).
    pub memberships: u64,
    /// COPY of the object rows plus, for groups, of the membership rows.
    pub copy_s: f64,
    pub copy_objects_s: f64,
    pub copy_members_s: Option<f64>,
    /// Full round time ÷ COPY time, per run, then the median.
    pub full_to_copy: f64,
    pub full_peak_rss_mb: Option<f64>,
    pub rss_at_start_mb: Option<f64>,
    pub rescan_s: f64,
    /// Full round time ÷ re-scan time.
    pub rescan_speedup: f64,
    /// The same for the CPU seconds of the syncing process and Postgres (the emulator left out); `None`
    /// when a re-scan used too few clock ticks of theirs to divide by (a tiny tenant).
    pub rescan_own_cpu_speedup: Option<f64>,
    /// The re-scan's CPU seconds in all three processes ÷ this machine's cores: no re-scan here takes less
    /// wall time, however well its processes overlap.
    pub rescan_cpu_floor_s: f64,
    pub rescan_rows_written: u64,
    /// Object plus membership rows written during the re-scan, counted by `xmin` (largest of the runs).
    pub rescan_row_versions: u64,
    pub rescan_member_row_versions: u64,
    pub rescan_peak_rss_mb: Option<f64>,
    pub delta_s: f64,
    pub delta_changes: u64,
    pub delta_rows_written: u64,
    /// Membership rows the delta round wrote, counted by `xmin`.
    pub delta_member_rows: u64,
    pub emulator_peak_rss_mb: Option<f64>,
    /// CPU seconds per process (syncing, emulator child, Postgres backends) of each round, medians.
    pub full_cpu: CpuSplit,
    pub rescan_cpu: CpuSplit,
    pub delta_cpu: CpuSplit,
}

/// CPU seconds below which a ratio is mostly clock-tick rounding (ticks are 10 ms per process).
const MEASURABLE_CPU_S: f64 = 0.05;

/// The cores this process may run on (the benchmark's emulator and Postgres share them).
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// The per-process medians of a round's CPU seconds.
fn median_cpu(runs: &[RunFigures], round: impl Fn(&RunFigures) -> CpuSplit) -> CpuSplit {
    CpuSplit {
        syncing_s: median_of(runs, |r| round(r).syncing_s),
        emulator_s: median_of(runs, |r| round(r).emulator_s),
        postgres_s: median_of(runs, |r| round(r).postgres_s),
    }
}

/// The median (mean of the middle two for an even count); NaN for none.
pub(super) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn median_of(runs: &[RunFigures], figure: impl Fn(&RunFigures) -> f64) -> f64 {
    median(runs.iter().map(figure).collect())
}

/// The median of a figure every run has, `None` if one lacks it.
fn median_some(runs: &[RunFigures], figure: impl Fn(&RunFigures) -> Option<f64>) -> Option<f64> {
    runs.iter().map(figure).collect::<Option<Vec<f64>>>().map(median)
}

fn mb(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| b as f64 / MB)
}

impl Summary {
    pub fn of(plan: &RunPlan, runs: &[RunFigures]) -> Summary {
        let max = |figure: fn(&RunFigures) -> u64| runs.iter().map(figure).max().unwrap_or(0);
        Summary {
            class: plan.class.as_str().to_owned(),
            users: plan.emulator.users,
            groups: plan.groups_and_devices.groups,
            devices: plan.groups_and_devices.devices,
            runs: runs.len(),
            full_s: median_of(runs, |r| r.full.elapsed.as_secs_f64()),
            full_objects: max(|r| r.full.report.counts.total),
            full_objects_per_s: median_of(runs, |r| {
                r.full.report.counts.total as f64 / r.full.elapsed.as_secs_f64().max(1e-9)
            }),
            memberships: max(|r| r.copy.members.map_or(0, |m| m.rows)),
            copy_s: median_of(runs, |r| r.copy.elapsed().as_secs_f64()),
            copy_objects_s: median_of(runs, |r| r.copy.objects.elapsed.as_secs_f64()),
            copy_members_s: median_some(runs, |r| r.copy.members.map(|m| m.elapsed.as_secs_f64())),
            full_to_copy: median_of(runs, |r| r.full.elapsed.as_secs_f64() / r.copy.elapsed().as_secs_f64().max(1e-9)),
            full_peak_rss_mb: median_some(runs, |r| mb(r.full.peak_rss)),
            rss_at_start_mb: median_some(runs, |r| mb(r.rss_at_start)),
            rescan_s: median_of(runs, |r| r.rescan.elapsed.as_secs_f64()),
            rescan_speedup: median_of(runs, |r| {
                r.full.elapsed.as_secs_f64() / r.rescan.elapsed.as_secs_f64().max(1e-9)
            }),
            rescan_own_cpu_speedup: median_some(runs, |r| {
                let rescan = r.rescan.cpu.ours_s();
                (rescan >= MEASURABLE_CPU_S).then(|| r.full.cpu.ours_s() / rescan)
            }),
            rescan_cpu_floor_s: median_of(runs, |r| r.rescan.cpu.total_s() / cores()),
            rescan_rows_written: max(|r| r.rescan.report.counts.rows_written),
            rescan_row_versions: max(|r| r.rescan_row_versions.total()),
            rescan_member_row_versions: max(|r| r.rescan_row_versions.members),
            rescan_peak_rss_mb: median_some(runs, |r| mb(r.rescan.peak_rss)),
            delta_s: median_of(runs, |r| r.delta.elapsed.as_secs_f64()),
            delta_changes: max(|r| r.delta.report.counts.total),
            delta_rows_written: max(|r| r.delta.report.counts.rows_written),
            delta_member_rows: max(|r| r.delta_row_versions.members),
            emulator_peak_rss_mb: median_some(runs, |r| mb(r.emulator_peak_rss)),
            full_cpu: median_cpu(runs, |r| r.full.cpu),
            rescan_cpu: median_cpu(runs, |r| r.rescan.cpu),
            delta_cpu: median_cpu(runs, |r| r.delta.cpu),
        }
    }
}

fn opt(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"))
}

fn opt_s(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// One row per run, then the medians (written with `write!` into a String, which cannot fail).
pub fn markdown(runs: &[RunFigures], summary: &Summary) -> String {
    let mut out = String::new();
    let s = summary;
    writeln!(out, "{} rounds; tenant of {} users, {} groups, {} devices.\n", s.class, s.users, s.groups, s.devices)
        .unwrap_or_default();
    writeln!(
        out,
        "| run | full s | objects | objects/s | memberships | COPY s (objects + members) | full/COPY | peak RSS MB | re-scan s | re-scan writes (report/xmin) | delta s | delta changes | delta rows (of them memberships) |"
    ).unwrap_or_default();
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|").unwrap_or_default();
    for (index, r) in runs.iter().enumerate() {
        let full = r.full.elapsed.as_secs_f64();
        let copy = r.copy.elapsed().as_secs_f64();
        writeln!(
            out,
            "| {} | {:.2} | {} | {:.0} | {} | {:.2} ({:.2} + {}) | {:.2} | {} | {:.2} | {}/{} | {:.3} | {} | {} ({}) |",
            index + 1,
            full,
            r.full.report.counts.total,
            r.full.report.counts.total as f64 / full.max(1e-9),
            r.copy.members.map_or(0, |m| m.rows),
            copy,
            r.copy.objects.elapsed.as_secs_f64(),
            opt_s(r.copy.members.map(|m| m.elapsed.as_secs_f64())),
            full / copy.max(1e-9),
            opt(mb(r.full.peak_rss)),
            r.rescan.elapsed.as_secs_f64(),
            r.rescan.report.counts.rows_written,
            r.rescan_row_versions.total(),
            r.delta.elapsed.as_secs_f64(),
            r.delta.report.counts.total,
            r.delta.report.counts.rows_written,
            r.delta_row_versions.members,
        )
        .unwrap_or_default();
    }
    writeln!(
        out,
        "| **median** | {:.2} | {} | {:.0} | {} | {:.2} ({:.2} + {}) | {:.2} | {} | {:.2} | {}/{} | {:.3} | {} | {} ({}) |",
        s.full_s,
        s.full_objects,
        s.full_objects_per_s,
        s.memberships,
        s.copy_s,
        s.copy_objects_s,
        opt_s(s.copy_members_s),
        s.full_to_copy,
        opt(s.full_peak_rss_mb),
        s.rescan_s,
        s.rescan_rows_written,
        s.rescan_row_versions,
        s.delta_s,
        s.delta_changes,
        s.delta_rows_written,
        s.delta_member_rows,
    ).unwrap_or_default();
    writeln!(
        out,
        "\nRSS at round start {} MB; re-scan peak {} MB; emulator (child) peak {} MB; re-scan {:.2}x faster than the full round.",
        opt(s.rss_at_start_mb),
        opt(s.rescan_peak_rss_mb),
        opt(s.emulator_peak_rss_mb),
        s.rescan_speedup
    ).unwrap_or_default();
    let own_cpu = match s.rescan_own_cpu_speedup {
        Some(ratio) => format!("costs {ratio:.2}x less CPU than the full round"),
        None => "used too little CPU to compare with the full round".to_owned(),
    };
    writeln!(
        out,
        "The re-scan {own_cpu} in the syncing process and Postgres (the emulator, Graph's stand-in, left out); its \
         CPU-seconds in all three processes allow no re-scan under {:.2} s on {} cores.",
        s.rescan_cpu_floor_s,
        cores()
    )
    .unwrap_or_default();
    writeln!(out, "\nCPU seconds per round (syncing process / emulator child / Postgres backends of the database):\n")
        .unwrap_or_default();
    writeln!(out, "| run | full | re-scan | delta |\n|---|---|---|---|").unwrap_or_default();
    let cpu = |c: CpuSplit| format!("{:.1} / {:.1} / {:.1}", c.syncing_s, c.emulator_s, c.postgres_s);
    for (index, r) in runs.iter().enumerate() {
        writeln!(out, "| {} | {} | {} | {} |", index + 1, cpu(r.full.cpu), cpu(r.rescan.cpu), cpu(r.delta.cpu))
            .unwrap_or_default();
    }
    writeln!(out, "| **median** | {} | {} | {} |\n", cpu(s.full_cpu), cpu(s.rescan_cpu), cpu(s.delta_cpu))
        .unwrap_or_default();
    for (index, r) in runs.iter().enumerate() {
        writeln!(out, "run {} mutation batch: {}", index + 1, r.mutations).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}

/// What mappings add to the full round (`--compare-mappings`): the same runs with `PassThrough` and
/// with the benchmark's mappings and scoping filter.
#[derive(Debug, Clone, Serialize)]
pub struct MappingCost {
    pub passthrough_full_s: f64,
    pub mapped_full_s: f64,
    /// Mapped ÷ pass-through full round time per pair of runs, then the median (1.10 = 10 % more).
    pub full_ratio: f64,
    /// The same for the CPU seconds of the round (syncing process + emulator + Postgres backends): what the
    /// round costs, which a busy machine does not inflate as it does wall time.
    pub full_cpu_ratio: f64,
    /// Median CPU seconds of a full round, per process, on each side.
    pub passthrough_cpu: CpuSplit,
    pub mapped_cpu: CpuSplit,
    /// Objects the scoping filter left out in the mapped runs (0: the filter admits everyone, so both
    /// sides store the same rows).
    pub filtered: u64,
}

impl MappingCost {
    pub fn of(passthrough: &[RunFigures], mapped: &[RunFigures]) -> MappingCost {
        let seconds = |r: &RunFigures| r.full.elapsed.as_secs_f64();
        let cpu = |r: &RunFigures| r.full.cpu.total_s();
        let ratio = |of: &dyn Fn(&RunFigures) -> f64| {
            median(passthrough.iter().zip(mapped).map(|(p, m)| of(m) / of(p).max(1e-9)).collect())
        };
        let split = |runs: &[RunFigures]| CpuSplit {
            syncing_s: median_of(runs, |r| r.full.cpu.syncing_s),
            emulator_s: median_of(runs, |r| r.full.cpu.emulator_s),
            postgres_s: median_of(runs, |r| r.full.cpu.postgres_s),
        };
        MappingCost {
            passthrough_full_s: median_of(passthrough, seconds),
            mapped_full_s: median_of(mapped, seconds),
            full_ratio: ratio(&seconds),
            full_cpu_ratio: ratio(&cpu),
            passthrough_cpu: split(passthrough),
            mapped_cpu: split(mapped),
            filtered: mapped.iter().map(|r| r.full.report.counts.filtered).sum(),
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from("\n| full round | pass-through | mapped | mapped ÷ pass-through | filtered |\n");
        out.push_str("|---|---|---|---|---|\n");
        let cpu = |c: &CpuSplit| format!("{:.2} / {:.2} / {:.2}", c.syncing_s, c.emulator_s, c.postgres_s);
        writeln!(
            out,
            "| median wall | {:.2} s | {:.2} s | {:.3} | {} |",
            self.passthrough_full_s, self.mapped_full_s, self.full_ratio, self.filtered
        )
        .unwrap_or_default();
        writeln!(
            out,
            "| median CPU-s (syncing / emulator / Postgres) | {} | {} | {:.3} (sum) | |",
            cpu(&self.passthrough_cpu),
            cpu(&self.mapped_cpu),
            self.full_cpu_ratio
        )
        .unwrap_or_default();
        out
    }
}
