//! A run's history as events: the sync round reports them, the recorder stores them (`store::runs`).
//! One set of types on both sides of that boundary.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ObjectClass, RunStatus, SyncMode, Trigger};

/// The running totals of a run; checkpointed with every batch, so a resumed run continues them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunCounts {
    /// Objects listed (full) or changes received (delta), after removing duplicates within a page.
    pub total: u64,
    /// Distinct objects written: new, changed, restored, or a group whose membership changed.
    pub changed: u64,
    /// Objects deleted (soft or permanent), or held for an operator when the run is `held`.
    pub deleted: u64,
    /// Objects the scoping filter left out.
    pub filtered: u64,
    pub pages: u64,
    pub graph_requests: u64,
    pub throttled_waits: u64,
    /// Rows of objects and memberships inserted, updated or deleted (replays must add none).
    /// Kept in the checkpoint and reports, not in `sync_runs`.
    pub rows_written: u64,
}

/// A run started, or a checkpointed run resumed (same `run_id`, counts carried over).
#[derive(Debug, Clone, Serialize)]
pub struct RunStarted {
    pub run_id: Uuid,
    pub tenant_id: i64,
    pub class: ObjectClass,
    pub mode: SyncMode,
    pub trigger: Trigger,
    pub started_at: DateTime<Utc>,
    pub resumed: bool,
    /// Why the mode was chosen when it is not the default (e.g. "full scan requested").
    pub reason: Option<String>,
    pub counts: RunCounts,
    pub instance_id: Option<String>,
    /// The queued job that started the run (its idempotency key); `None` for runs started directly.
    pub job_id: Option<Uuid>,
}

/// Sent after every committed batch (and when a round restarts as full).
#[derive(Debug, Clone, Serialize)]
pub struct RunProgress {
    pub run_id: Uuid,
    pub tenant_id: i64,
    pub class: ObjectClass,
    pub mode: SyncMode,
    pub reason: Option<String>,
    pub counts: RunCounts,
}

/// The final state, sent once per round.
#[derive(Debug, Clone, Serialize)]
pub struct RunFinished {
    pub run_id: Uuid,
    pub tenant_id: i64,
    pub class: ObjectClass,
    pub mode: SyncMode,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub finished_at: DateTime<Utc>,
}
