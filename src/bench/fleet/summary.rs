//! Medians over runs, the fleet ÷ big-tenant ratio, and the printed table.

// Writing into a String cannot fail: each `writeln!(…).unwrap_or_default()` only satisfies the type.
use std::fmt::Write;

use serde::Serialize;

use super::scenario::ScenarioFigures;
use crate::bench::report::median;

pub const FLEET: &str = "fleet";
pub const BIG: &str = "big";

/// Medians of one scenario's runs.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioSummary {
    pub label: &'static str,
    pub tenants: usize,
    pub users_per_tenant: usize,
    pub instances: usize,
    pub runs: usize,
    pub wall_s: f64,
    pub enqueue_s: f64,
    pub objects: u64,
    pub objects_per_s: f64,
    pub tenants_per_s: f64,
    pub run_p50_s: f64,
    pub run_p95_s: f64,
    pub mean_concurrency: f64,
    /// Every run of every measurement: one full, successful run per tenant, none overlapping.
    pub clean: bool,
    pub duplicated_pairs: u64,
    pub overlapping_runs: u64,
    pub overlapping_across_instances: u64,
}

/// What the command prints (as JSON with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct FleetSummary {
    pub fleet: Option<ScenarioSummary>,
    pub big: Option<ScenarioSummary>,
    /// Fleet wall time ÷ big-tenant wall time, within each run, then the median (target ≤ 2).
    pub fleet_to_big: Option<f64>,
    pub measurements: Vec<ScenarioFigures>,
}

fn of_label<'a>(measurements: &'a [ScenarioFigures], label: &str) -> Vec<&'a ScenarioFigures> {
    measurements.iter().filter(|m| m.shape.label == label).collect()
}

fn summarize(runs: &[&ScenarioFigures]) -> Option<ScenarioSummary> {
    let first = runs.first()?;
    let med = |figure: fn(&ScenarioFigures) -> f64| median(runs.iter().map(|r| figure(r)).collect());
    let sum = |figure: fn(&ScenarioFigures) -> u64| runs.iter().map(|r| figure(r)).sum();
    Some(ScenarioSummary {
        label: first.shape.label,
        tenants: first.shape.tenants,
        users_per_tenant: first.shape.users_per_tenant,
        instances: first.instances,
        runs: runs.len(),
        wall_s: med(|r| r.wall_s),
        enqueue_s: med(|r| r.enqueue_s),
        objects: runs.iter().map(|r| r.audit.objects).max().unwrap_or(0),
        objects_per_s: med(ScenarioFigures::objects_per_s),
        tenants_per_s: med(ScenarioFigures::tenants_per_s),
        run_p50_s: med(|r| r.audit.run_p50_s),
        run_p95_s: med(|r| r.audit.run_p95_s),
        mean_concurrency: med(ScenarioFigures::mean_concurrency),
        clean: runs.iter().all(|r| r.clean()),
        duplicated_pairs: sum(|r| r.audit.duplicated_pairs),
        overlapping_runs: sum(|r| r.audit.overlapping_runs),
        overlapping_across_instances: sum(|r| r.audit.overlapping_across_instances),
    })
}

impl FleetSummary {
    /// `measurements` in the order taken: per run, the fleet, then the big tenant.
    pub fn of(measurements: Vec<ScenarioFigures>) -> FleetSummary {
        let (fleets, bigs) = (of_label(&measurements, FLEET), of_label(&measurements, BIG));
        let ratios: Vec<f64> = fleets.iter().zip(&bigs).map(|(f, b)| f.wall_s / b.wall_s.max(1e-9)).collect();
        let fleet_to_big = (!ratios.is_empty()).then(|| median(ratios));
        FleetSummary { fleet: summarize(&fleets), big: summarize(&bigs), fleet_to_big, measurements }
    }

    pub fn clean(&self) -> bool {
        self.measurements.iter().all(ScenarioFigures::clean)
    }
}

fn instances_cell(m: &ScenarioFigures) -> String {
    let shares: Vec<String> =
        m.audit.by_instance.iter().map(|(name, share)| format!("{name}: {} runs", share.runs)).collect();
    shares.join(", ")
}

/// One row per measurement, then the medians (written into a String, which cannot fail).
pub fn markdown(summary: &FleetSummary) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "| run | scenario | tenants × users | instances | wall s | enqueue s | objects/s | tenants/s | run p50 / p95 s | mean concurrency | runs ok / all | duplicated | overlapping | runs by instance | CPU s: service / emulator / Postgres / RabbitMQ / other / busy of capacity |"
    ).unwrap_or_default();
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|").unwrap_or_default();
    for m in &summary.measurements {
        let c = &m.cpu;
        writeln!(
            out,
            "| {} | {} | {} × {} | {} | {:.2} | {:.2} | {:.0} | {:.1} | {:.3} / {:.3} | {:.2} | {} / {} | {} | {} | {} | {:.1} / {:.1} / {:.1} / {:.1} / {:.1} / {:.1} of {:.1} |",
            m.run,
            m.shape.label,
            m.shape.tenants,
            m.shape.users_per_tenant,
            m.instances,
            m.wall_s,
            m.enqueue_s,
            m.objects_per_s(),
            m.tenants_per_s(),
            m.audit.run_p50_s,
            m.audit.run_p95_s,
            m.mean_concurrency(),
            m.audit.succeeded(),
            m.audit.runs,
            m.audit.duplicated_pairs,
            m.audit.overlapping_runs,
            instances_cell(m),
            c.service,
            c.emulator,
            c.postgres,
            c.rabbitmq,
            c.other,
            c.machine_busy,
            c.machine_capacity,
        ).unwrap_or_default();
    }
    for m in &summary.measurements {
        let (d, tenants) = (&m.db, m.shape.tenants.max(1) as f64);
        writeln!(
            out,
            "\nrun {} {}: Postgres {} transactions ({:.1} per tenant), {:.2} CPU-ms per tenant, {} sessions ({:.2} per tenant), rows inserted / updated / deleted {} / {} / {}; {} pages, {} Graph requests",
            m.run,
            m.shape.label,
            d.transactions,
            d.transactions as f64 / tenants,
            m.cpu.postgres * 1000.0 / tenants,
            d.sessions,
            d.sessions as f64 / tenants,
            d.rows_inserted,
            d.rows_updated,
            d.rows_deleted,
            m.audit.pages,
            m.audit.graph_requests,
        ).unwrap_or_default();
    }
    for m in &summary.measurements {
        let Some(u) = &m.unchanged else { continue };
        writeln!(
            out,
            "\nrun {} {} {}unchanged pass: {} delta runs ({} successful, {} objects changed) in {:.2} s; Postgres {} transactions ({:.2} per run; **{:.2} per run** without the benchmark's own {}), {:.2} CPU-s (**{:.2} ms per run**); service {:.2} CPU-s ({:.2} ms per run)",
            m.run,
            m.shape.label,
            if u.warm { "warm " } else { "" },
            u.runs.runs,
            u.runs.succeeded,
            u.runs.changed,
            u.wall_s,
            u.db.transactions,
            u.transactions_per_run(),
            u.service_transactions_per_run(),
            u.bench_transactions,
            u.cpu.postgres,
            u.postgres_ms_per_run(),
            u.cpu.service,
            u.cpu.service * 1000.0 / u.runs.runs.max(1) as f64,
        )
        .unwrap_or_default();
        match &u.statements {
            Some(statements) => {
                writeln!(
                    out,
                    "\n| statement (pg_stat_statements, costliest first) | calls per run | ms per run |\n|---|---|---|"
                )
                .unwrap_or_default();
                for s in statements {
                    let query: String = s.query.chars().take(140).collect();
                    writeln!(out, "| `{}` | {:.2} | {:.3} |", query.replace('|', "\\|"), s.calls_per_run, s.ms_per_run)
                        .unwrap_or_default();
                }
            }
            None => writeln!(out, "(no statement breakdown: the server does not load pg_stat_statements)")
                .unwrap_or_default(),
        }
    }
    for s in [&summary.fleet, &summary.big].into_iter().flatten() {
        writeln!(
            out,
            "\n{} ({} × {} users, {} instance(s), {} run(s)): median wall {:.2} s, {:.0} objects/s, {:.1} tenants/s, run p50 {:.3} s, p95 {:.3} s; {}",
            s.label,
            s.tenants,
            s.users_per_tenant,
            s.instances,
            s.runs,
            s.wall_s,
            s.objects_per_s,
            s.tenants_per_s,
            s.run_p50_s,
            s.run_p95_s,
            if s.clean { "every tenant ran exactly once, in full, successfully; no overlapping runs" } else { "NOT CLEAN: see the table" },
        ).unwrap_or_default();
    }
    if let Some(ratio) = summary.fleet_to_big {
        writeln!(out, "\nfleet ÷ big tenant wall time (median of per-run ratios): {ratio:.2}x (target ≤ 2x)")
            .unwrap_or_default();
    }
    out
}
