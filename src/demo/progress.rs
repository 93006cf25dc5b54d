//! The demo's output on standard output: its lines, a progress bar per class for the first full rounds,
//! then one summary line per finished run.
//!
//! The bars are drawn only when stdout is a terminal; piped (`entrasync demo | tee demo.log`) or
//! redirected, the output is the plain lines. Lines are printed above the bars, which are drawn again
//! below them, so neither overwrites the other. Every write is checked: when the reader goes away
//! (`| head`, a `tee` stopped by Ctrl-C) it fails with [`std::io::ErrorKind::BrokenPipe`] and the demo
//! stops instead of panicking.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use uuid::Uuid;

use crate::store::run_feed::RunLine;

/// Standard output, for lines and bars.
pub struct Screen {
    /// Draws on stdout; hidden when stdout is not a terminal.
    bars: MultiProgress,
    /// The bars are gone for good: lines are written plainly, not through the bars' redraws (which
    /// assume nothing else moved the cursor; a `^C` echoed by the terminal does).
    plain: bool,
}

impl Screen {
    pub fn new() -> Self {
        Screen { bars: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()), plain: false }
    }

    /// Writes `text` and a newline to standard output, above the bars while there are any. An error
    /// means standard output cannot take more lines.
    pub fn line(&self, text: &str) -> io::Result<()> {
        if self.plain || self.bars.is_hidden() {
            // No bars, or not a terminal (piped, redirected): plain lines.
            let mut out = io::stdout().lock();
            writeln!(out, "{text}")?;
            out.flush()
        } else {
            self.bars.println(text)
        }
    }

    /// Takes the bars off the terminal for good; the lines that follow are plain.
    pub fn bars_done(&mut self) -> io::Result<()> {
        if self.plain {
            return Ok(());
        }
        self.plain = true;
        self.bars.clear()
    }
}

pub struct RunDisplay {
    screen: Screen,
    /// Per class: the bar of its first round, until that round finishes.
    first_rounds: BTreeMap<String, ProgressBar>,
    reported: BTreeSet<Uuid>,
}

impl RunDisplay {
    /// `expected`: objects per class in the emulated directory (the bars' lengths).
    pub fn new(screen: Screen, expected: &[(String, u64)]) -> Self {
        let style = ProgressStyle::with_template("{prefix:>7} {bar:40.cyan/blue} {pos:>6}/{len:6} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let first_rounds = expected
            .iter()
            .map(|(class, total)| {
                let bar = screen.bars.add(ProgressBar::new(*total));
                bar.set_style(style.clone());
                bar.set_prefix(class.clone());
                bar.set_message("waiting for the first full round");
                (class.clone(), bar)
            })
            .collect();
        RunDisplay { screen, first_rounds, reported: BTreeSet::new() }
    }

    /// Shows what changed since the last call.
    pub fn update(&mut self, runs: &[RunLine]) -> io::Result<()> {
        for run in runs {
            if let Some(bar) = self.first_rounds.get(&run.class) {
                bar.set_position(u64::try_from(run.total).unwrap_or_default());
                bar.set_message(format!("{} round {}", run.mode, run.status));
                if run.finished_at.is_some() {
                    // The round's summary line below takes the bar's place: a finished bar left among
                    // the live ones would be drawn over the lines printed after it.
                    bar.finish_and_clear();
                    self.screen.bars.remove(bar);
                    self.first_rounds.remove(&run.class);
                    if self.first_rounds.is_empty() {
                        self.screen.bars_done()?;
                    }
                }
            }
            if run.finished_at.is_some() && self.reported.insert(run.run_id) {
                self.line(&summary(run))?;
            }
        }
        Ok(())
    }

    pub fn line(&self, text: &str) -> io::Result<()> {
        self.screen.line(text)
    }

    /// Ctrl-C: takes the bars away for good, so that the lines and warnings of the shutdown that follows
    /// are not drawn over, and says so.
    pub fn stopping(&mut self) -> io::Result<()> {
        for bar in std::mem::take(&mut self.first_rounds).into_values() {
            bar.finish_and_clear();
            self.screen.bars.remove(&bar);
        }
        self.screen.bars_done()?;
        // On a terminal, from the start of the line, over the `^C` it echoed.
        let carriage_return = if self.screen.bars.is_hidden() { "" } else { "\r" };
        self.line(&format!("{carriage_return}stopping ..."))
    }

    /// Takes the remaining bars off the terminal (when the demo stops).
    pub fn clear(&mut self) -> io::Result<()> {
        self.screen.bars_done()
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
