//! Sync runs: how many ran and how they ended, how long they took, what they did to objects.
//!
//! Per event:
//! - a round starts (or resumes from a checkpoint) → [`SyncMetrics::run_started`] returns a [`RunTracker`];
//! - after each committed page → [`RunTracker::progress`] with the run's cumulative totals;
//! - the final history event → [`RunTracker::finished`] with the status and the final totals.
//!
//! Object counters move while a run is running (the tracker adds the difference since the last call),
//! so a dashboard shows a long full scan progressing.

use std::time::{Duration, Instant};

use prometheus::{GaugeVec, HistogramVec, IntCounterVec, IntGaugeVec};
use uuid::Uuid;

use super::family::Declarer;
use super::labels;
use crate::model::{ObjectClass, RunStatus, SyncMode};

/// A run's cumulative totals, as kept in its checkpoint and history row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub pages: u64,
    /// Objects whose stored state was written (created, updated, restored or soft-deleted).
    pub changed: u64,
    /// Objects seen whose change marker matched: no write.
    pub unchanged: u64,
    /// Objects removed from the copy (permanent deletes and sweep deletions).
    pub deleted: u64,
    /// Objects skipped by a scoping filter.
    pub filtered: u64,
}

/// Run duration buckets: seconds for a small delta round up to hours for a million-user full scan.
const RUN_SECONDS: &[f64] =
    &[0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0];

#[derive(Clone)]
pub struct SyncMetrics {
    runs: IntCounterVec,
    run_duration: HistogramVec,
    objects: IntCounterVec,
    pages: IntCounterVec,
    in_progress: IntGaugeVec,
    delta_resets: IntCounterVec,
    delta_interval: GaugeVec,
}

impl SyncMetrics {
    pub(crate) fn declare(d: &mut Declarer<'_>) -> Self {
        let metrics = Self {
            runs: d.int_counter(
                "entrasync_sync_runs_total",
                "Sync runs finished by this instance, by final status",
                &["tenant", "class", "mode", "status"],
            ),
            run_duration: d.histogram(
                "entrasync_sync_run_duration_seconds",
                "Wall-clock time of finished sync runs, from start (or resume) to the final history event",
                &["class", "mode", "status"],
                RUN_SECONDS,
            ),
            objects: d.int_counter(
                "entrasync_sync_objects_total",
                "Directory objects processed by sync runs, by outcome (changed, unchanged, deleted, filtered)",
                &["tenant", "class", "outcome"],
            ),
            pages: d.int_counter(
                "entrasync_sync_pages_total",
                "Delta pages committed (objects written and cursor checkpointed in one transaction)",
                &["tenant", "class"],
            ),
            in_progress: d.int_gauge(
                "entrasync_sync_runs_in_progress",
                "Sync runs currently running on this instance",
                &["class", "mode"],
            ),
            delta_resets: d.int_counter(
                "entrasync_sync_delta_resets_total",
                "Delta rounds restarted as full scans because Graph expired the delta token (410, syncStateNotFound)",
                &["tenant", "class"],
            ),
            delta_interval: d.gauge(
                "entrasync_sync_delta_interval_seconds",
                "Configured seconds between delta rounds of one tenant and class (alerts derive staleness from it)",
                &[],
            ),
        };
        // Tenant-free series exist from the start, so dashboards show 0 rather than "no data".
        for class in ObjectClass::ALL {
            for mode in SyncMode::ALL {
                metrics.in_progress.with_label_values(&[class.as_str(), mode.as_str()]).set(0);
            }
        }
        metrics
    }

    /// Records the configured delta interval (once, at start-up).
    pub fn set_delta_interval(&self, interval: Duration) {
        self.delta_interval.with_label_values::<&str>(&[]).set(interval.as_secs_f64());
    }

    /// A round starts from scratch. The tracker must be kept until [`RunTracker::finished`].
    pub fn run_started(&self, tenant: Uuid, class: ObjectClass, mode: SyncMode) -> RunTracker {
        self.run_resumed(tenant, class, mode, RunTotals::default())
    }

    /// A round resumes from a checkpoint whose `totals` were already counted (by this or another
    /// instance): only what happens from now on is added.
    pub fn run_resumed(&self, tenant: Uuid, class: ObjectClass, mode: SyncMode, totals: RunTotals) -> RunTracker {
        self.in_progress.with_label_values(&[class.as_str(), mode.as_str()]).inc();
        RunTracker {
            metrics: self.clone(),
            tenant: labels::tenant(tenant),
            class,
            mode,
            started: Instant::now(),
            counted: totals,
            open: true,
        }
    }

    /// Graph expired the delta token and the round restarts as a full scan.
    pub fn delta_reset(&self, tenant: Uuid, class: ObjectClass) {
        self.delta_resets.with_label_values(&[labels::tenant(tenant).as_str(), class.as_str()]).inc();
    }
}

/// One running round's view of the sync metrics. Dropping it without [`RunTracker::finished`] (the
/// round's future was aborted) only takes the run off the in-progress gauge.
pub struct RunTracker {
    metrics: SyncMetrics,
    tenant: String,
    class: ObjectClass,
    mode: SyncMode,
    started: Instant,
    /// Totals already added to the counters.
    counted: RunTotals,
    open: bool,
}

impl RunTracker {
    /// A page was committed; `totals` are the run's cumulative totals after it.
    pub fn progress(&mut self, totals: &RunTotals) {
        let class = self.class.as_str();
        let tenant = self.tenant.as_str();
        let add = |counter: &prometheus::IntCounter, now: u64, before: u64| counter.inc_by(now.saturating_sub(before));
        let objects = &self.metrics.objects;
        add(&objects.with_label_values(&[tenant, class, "changed"]), totals.changed, self.counted.changed);
        add(&objects.with_label_values(&[tenant, class, "unchanged"]), totals.unchanged, self.counted.unchanged);
        add(&objects.with_label_values(&[tenant, class, "deleted"]), totals.deleted, self.counted.deleted);
        add(&objects.with_label_values(&[tenant, class, "filtered"]), totals.filtered, self.counted.filtered);
        add(&self.metrics.pages.with_label_values(&[tenant, class]), totals.pages, self.counted.pages);
        self.counted = RunTotals {
            pages: totals.pages.max(self.counted.pages),
            changed: totals.changed.max(self.counted.changed),
            unchanged: totals.unchanged.max(self.counted.unchanged),
            deleted: totals.deleted.max(self.counted.deleted),
            filtered: totals.filtered.max(self.counted.filtered),
        };
    }

    pub fn mode(&self) -> SyncMode {
        self.mode
    }

    /// The round changed mode mid-run (a delta round restarted as full after Graph expired its token).
    pub fn switch_mode(&mut self, mode: SyncMode) {
        if mode == self.mode {
            return;
        }
        if self.open {
            self.metrics.in_progress.with_label_values(&[self.class.as_str(), self.mode.as_str()]).dec();
            self.metrics.in_progress.with_label_values(&[self.class.as_str(), mode.as_str()]).inc();
        }
        self.mode = mode;
    }

    /// The run ended (its final history event is being persisted) with `status` and final `totals`.
    pub fn finished(mut self, status: RunStatus, totals: &RunTotals) {
        self.progress(totals);
        let (class, mode) = (self.class.as_str(), self.mode.as_str());
        self.metrics.runs.with_label_values(&[self.tenant.as_str(), class, mode, status.as_str()]).inc();
        self.metrics
            .run_duration
            .with_label_values(&[class, mode, status.as_str()])
            .observe(self.started.elapsed().as_secs_f64());
        self.close();
    }

    fn close(&mut self) {
        if std::mem::replace(&mut self.open, false) {
            self.metrics.in_progress.with_label_values(&[self.class.as_str(), self.mode.as_str()]).dec();
        }
    }
}

impl Drop for RunTracker {
    fn drop(&mut self) {
        self.close();
    }
}
