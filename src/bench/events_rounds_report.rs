//! The figures of `entrasync bench-events --rounds`: each run's, the medians per condition, and the
//! ratios of the wall times of runs of the same repeat (stopped ÷ drained, drained ÷ off), as a median.

use serde::Serialize;

use super::events_backlog::Backlog;
use super::events_cpu::Split;
use super::events_rounds::{Condition, Plan};

/// One timed round.
#[derive(Debug, Clone, Serialize)]
pub struct RoundFigures {
    /// From the request to the final history row.
    pub wall_s: f64,
    /// From the request until the outbox was empty (the relay's pace; the round does not wait for it).
    pub outbox_empty_s: f64,
    /// Objects listed (full) or changes received (delta).
    pub changes: u64,
    /// Events the round wrote to the outbox.
    pub events: i64,
    /// Events still in the outbox when the round ended.
    pub outbox_left: i64,
    pub cpu: Split,
}

/// One condition's run: a full round, then a delta round after the mutation batch.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    pub condition: Condition,
    pub full: RoundFigures,
    pub delta: RoundFigures,
    /// Messages in the stopped consumer's queue before and after the run.
    pub stopped_queue_before: u32,
    pub stopped_queue_after: u32,
}

/// Medians of a condition's runs.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionSummary {
    pub condition: Condition,
    pub runs: usize,
    pub full: RoundSummary,
    pub delta: RoundSummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoundSummary {
    pub wall_s: f64,
    pub outbox_empty_s: f64,
    pub events: f64,
    pub cpu: Split,
}

/// Medians of per-repeat ratios of wall times.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Ratios {
    pub full_stopped_over_drained: f64,
    pub delta_stopped_over_drained: f64,
    pub full_drained_over_off: f64,
    pub delta_drained_over_off: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub users: usize,
    pub delta_mutations: usize,
    pub repeats: usize,
    pub per_message: usize,
    pub queue_type: &'static str,
    pub backlog: Option<Backlog>,
    /// RabbitMQ's peak resident memory since it started (`VmHWM` of `beam.smp`).
    pub rabbitmq_peak_rss_mib: Option<f64>,
    pub conditions: Vec<ConditionSummary>,
    pub ratios: Ratios,
    pub runs: Vec<RunFigures>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn summary(rounds: &[&RoundFigures]) -> RoundSummary {
    let of = |f: fn(&RoundFigures) -> f64| median(rounds.iter().map(|r| f(r)).collect());
    RoundSummary {
        wall_s: of(|r| r.wall_s),
        outbox_empty_s: of(|r| r.outbox_empty_s),
        events: of(|r| r.events as f64),
        cpu: Split {
            round_s: of(|r| r.cpu.round_s),
            postgres_round_s: of(|r| r.cpu.postgres_round_s),
            postgres_relay_s: of(|r| r.cpu.postgres_relay_s),
            relay_s: of(|r| r.cpu.relay_s),
            rabbitmq_s: of(|r| r.cpu.rabbitmq_s),
            emulator_s: of(|r| r.cpu.emulator_s),
        },
    }
}

impl Report {
    pub fn of(plan: &Plan, runs: Vec<RunFigures>, backlog: Option<Backlog>, rabbitmq_peak_rss: Option<u64>) -> Report {
        let conditions = [Condition::Off, Condition::Drained, Condition::Stopped]
            .into_iter()
            .map(|condition| {
                let mine: Vec<&RunFigures> = runs.iter().filter(|r| r.condition == condition).collect();
                ConditionSummary {
                    condition,
                    runs: mine.len(),
                    full: summary(&mine.iter().map(|r| &r.full).collect::<Vec<_>>()),
                    delta: summary(&mine.iter().map(|r| &r.delta).collect::<Vec<_>>()),
                }
            })
            .collect();
        // Runs come in repeats of the three conditions: ratios within a repeat, then their median.
        let ratio = |top: Condition, bottom: Condition, round: fn(&RunFigures) -> f64| {
            median(
                runs.chunks(3)
                    .filter_map(|repeat| {
                        let wall = |c| repeat.iter().find(|r| r.condition == c).map(round);
                        Some(wall(top)? / wall(bottom)?)
                    })
                    .collect(),
            )
        };
        let ratios = Ratios {
            full_stopped_over_drained: ratio(Condition::Stopped, Condition::Drained, |r| r.full.wall_s),
            delta_stopped_over_drained: ratio(Condition::Stopped, Condition::Drained, |r| r.delta.wall_s),
            full_drained_over_off: ratio(Condition::Drained, Condition::Off, |r| r.full.wall_s),
            delta_drained_over_off: ratio(Condition::Drained, Condition::Off, |r| r.delta.wall_s),
        };
        Report {
            users: plan.users,
            delta_mutations: plan.delta_mutations,
            repeats: plan.repeats,
            per_message: plan.per_message,
            queue_type: if plan.quorum { "quorum" } else { "classic" },
            backlog,
            rabbitmq_peak_rss_mib: rabbitmq_peak_rss.map(|b| b as f64 / (1024.0 * 1024.0)),
            conditions,
            ratios,
            runs,
        }
    }

    pub fn markdown(&self) -> String {
        let mut text = format!(
            "{} users, delta after {} mutations, {} repeat(s), {} event(s) per message, {} queues\n\n\
             | condition | round | wall s | outbox empty after s | events | CPU-s round / PG round / PG relay / relay / RabbitMQ / emulator |\n\
             |---|---|---:|---:|---:|---|\n",
            self.users, self.delta_mutations, self.repeats, self.per_message, self.queue_type
        );
        for c in &self.conditions {
            for (name, r) in [("full", &c.full), ("delta", &c.delta)] {
                let cpu = &r.cpu;
                text.push_str(&format!(
                    "| {} | {name} | {:.2} | {:.2} | {:.0} | {:.2} / {:.2} / {:.2} / {:.2} / {:.2} / {:.2} |\n",
                    c.condition.as_str(),
                    r.wall_s,
                    r.outbox_empty_s,
                    r.events,
                    cpu.round_s,
                    cpu.postgres_round_s,
                    cpu.postgres_relay_s,
                    cpu.relay_s,
                    cpu.rabbitmq_s,
                    cpu.emulator_s
                ));
            }
        }
        let r = &self.ratios;
        text.push_str(&format!(
            "\nwall-time ratios (median of repeats): stopped ÷ drained full {:.3}, delta {:.3}; drained ÷ off full {:.3}, delta {:.3}\n",
            r.full_stopped_over_drained, r.delta_stopped_over_drained, r.full_drained_over_off, r.delta_drained_over_off
        ));
        if let Some(b) = &self.backlog {
            text.push_str(&format!(
                "backlog: {} events in {} messages ({:.0} MiB) published in {:.1} s; RabbitMQ peak RSS {:.0} MiB\n",
                b.events,
                b.messages,
                b.bytes as f64 / (1024.0 * 1024.0),
                b.publish_s,
                self.rabbitmq_peak_rss_mib.unwrap_or(f64::NAN)
            ));
        }
        text
    }
}
