//! The demo's terminal output: a progress bar per class for the first full rounds, then one summary
//! line per finished run.

use std::collections::{BTreeMap, BTreeSet};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use uuid::Uuid;

use crate::store::run_feed::RunLine;

pub struct RunDisplay {
    bars: MultiProgress,
    /// Per class: the bar of its first round, until that round finishes.
    first_rounds: BTreeMap<String, ProgressBar>,
    reported: BTreeSet<Uuid>,
}

impl RunDisplay {
    /// `expected`: objects per class in the emulated directory (the bars' lengths).
    pub fn new(expected: &[(String, u64)]) -> Self {
        let bars = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix:>7} {bar:40.cyan/blue} {pos:>6}/{len:6} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let first_rounds = expected
            .iter()
            .map(|(class, total)| {
                let bar = bars.add(ProgressBar::new(*total));
                bar.set_style(style.clone());
                bar.set_prefix(class.clone());
                bar.set_message("waiting for the first full round");
                (class.clone(), bar)
            })
            .collect();
        RunDisplay { bars, first_rounds, reported: BTreeSet::new() }
    }

    /// Shows what changed since the last call.
    pub fn update(&mut self, runs: &[RunLine]) {
        for run in runs {
            if let Some(bar) = self.first_rounds.get(&run.class) {
                bar.set_position(u64::try_from(run.total).unwrap_or_default());
                bar.set_message(format!("{} round {}", run.mode, run.status));
                if run.finished_at.is_some() {
                    bar.finish();
                    self.first_rounds.remove(&run.class);
                }
            }
            if run.finished_at.is_some() && self.reported.insert(run.run_id) {
                self.line(&summary(run));
            }
        }
    }

    pub fn line(&self, text: &str) {
        if self.bars.is_hidden() {
            // Not a terminal (piped, CI): plain lines.
            println!("{text}");
        } else {
            // Printed above the bars, so they stay at the bottom.
            let _ = self.bars.println(text);
        }
    }
}

/// One finished run: class, mode, total, changed, deleted, filtered, status.
pub fn summary(run: &RunLine) -> String {
    let error = run.error.as_deref().map(|e| format!("  error: {e}")).unwrap_or_default();
    format!(
        "run finished: {:<6} {:<5} total {:>6}  changed {:>6}  deleted {:>5}  filtered {:>5}  {}{error}",
        run.class, run.mode, run.total, run.changed, run.deleted, run.filtered, run.status
    )
}
