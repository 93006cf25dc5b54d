//! Sync-run metrics wired where the round reports its history: a [`RunRecorder`] that forwards every
//! event to the real recorder and records the metrics of the same event, so a run's log line, history
//! row and counters come from one place.
//!
//! A worker wraps its recorder for each round: `MeteredRecorder::new(recorder, metrics.sync.clone(),
//! entra_tenant_id)` and passes it as `RoundDeps::recorder`. It lives with the worker, which joins the
//! two: `metrics` stays a leaf (it depends only on `model`) and `sync` knows nothing of Prometheus.

use std::sync::Mutex;

use uuid::Uuid;

use crate::metrics::{RunTotals, RunTracker, SyncMetrics};
use crate::model::SyncMode;
use crate::sync::{RecorderError, RunCounts, RunFinished, RunProgress, RunRecorder, RunStarted};

/// A recorder that also records sync metrics; one per round (it tracks that round's run).
pub struct MeteredRecorder<R> {
    inner: R,
    metrics: SyncMetrics,
    tenant: Uuid,
    run: Mutex<Option<RunTracker>>,
}

impl<R: RunRecorder> MeteredRecorder<R> {
    /// `tenant` is the Entra tenant id (the `tenant` label), not the internal key of the events.
    pub fn new(inner: R, metrics: SyncMetrics, tenant: Uuid) -> Self {
        Self { inner, metrics, tenant, run: Mutex::new(None) }
    }

    fn tracker(&self) -> std::sync::MutexGuard<'_, Option<RunTracker>> {
        self.run.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The history keeps `total` (objects seen); the metrics split out those that needed no write.
pub fn run_totals(counts: &RunCounts) -> RunTotals {
    RunTotals {
        pages: counts.pages,
        changed: counts.changed,
        unchanged: counts.total.saturating_sub(counts.changed + counts.deleted + counts.filtered),
        deleted: counts.deleted,
        filtered: counts.filtered,
    }
}

impl<R: RunRecorder> RunRecorder for MeteredRecorder<R> {
    async fn started(&self, event: &RunStarted) -> Result<(), RecorderError> {
        self.inner.started(event).await?;
        self.track_start(event);
        Ok(())
    }

    async fn progress(&self, event: &RunProgress) -> Result<(), RecorderError> {
        // The page is committed before this event: count it even if the history update fails.
        let outcome = self.inner.progress(event).await;
        if let Some(tracker) = self.tracker().as_mut() {
            if tracker_mode_changes(tracker, event.mode) {
                self.metrics.delta_reset(self.tenant, event.class);
            }
            tracker.switch_mode(event.mode);
            tracker.progress(&run_totals(&event.counts));
        }
        outcome
    }

    async fn finished(&self, event: &RunFinished) -> Result<(), RecorderError> {
        let outcome = self.inner.finished(event).await;
        // Counted only once the history row is durable, so the counters agree with `sync_runs`;
        // otherwise the job is retried and the tracker's drop just ends "in progress".
        if outcome.is_ok() {
            self.track_end(event);
        } else {
            self.tracker().take();
        }
        outcome
    }

    fn rows_in_round(&self) -> bool {
        self.inner.rows_in_round()
    }

    async fn started_in_round(&self, event: &RunStarted) {
        self.inner.started_in_round(event).await;
        self.track_start(event);
    }

    async fn finished_in_round(&self, event: &RunFinished) {
        self.inner.finished_in_round(event).await;
        self.track_end(event);
    }
}

impl<R: RunRecorder> MeteredRecorder<R> {
    fn track_start(&self, event: &RunStarted) {
        let tracker = if event.resumed {
            // The checkpoint's counts were counted by whoever ran the pages before.
            self.metrics.run_resumed(self.tenant, event.class, event.mode, run_totals(&event.counts))
        } else {
            self.metrics.run_started(self.tenant, event.class, event.mode)
        };
        *self.tracker() = Some(tracker);
    }

    /// The end row is durable: the run counts.
    fn track_end(&self, event: &RunFinished) {
        if let Some(mut tracker) = self.tracker().take() {
            tracker.switch_mode(event.mode);
            tracker.finished(event.status, &run_totals(&event.counts));
        }
    }
}

fn tracker_mode_changes(tracker: &RunTracker, mode: SyncMode) -> bool {
    tracker.mode() == SyncMode::Delta && mode == SyncMode::Full
}
