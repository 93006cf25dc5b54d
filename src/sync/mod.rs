//! The sync algorithm as plain async code (no actors, no RabbitMQ): one round for one (tenant, class)
//! against Graph and Postgres — pages applied with their checkpoint in one transaction, changes found
//! by marker, mark-and-sweep for full rounds, deletion guards, history through [`RunRecorder`]; and the
//! re-map ([`run_remap`]): the current mappings and scoping applied to the stored objects, no Graph.
//!
//! ```ignore
//! let deps = RoundDeps { pool: &pool, graph: &graph, policy: Arc::new(PassThrough), recorder: &PgRunRecorder::new(pool.clone()) };
//! let report = run_round(&deps, &request).await?; // resumes a checkpointed run first
//! ```

mod apply;
mod batch;
mod error;
mod fingerprints;
mod guard;
mod held;
pub mod marker;
mod page;
mod policy;
mod recorder;
mod remap;
mod round;
mod snapshot;
mod start;

pub use crate::model::RunCounts;
pub use apply::{apply_page, apply_page_with, PageHints, PageOutcome, PageTarget};
pub use error::SyncError;
pub use guard::{short_listing, DeletionGuard};
pub use held::{allow_held_deletions, held_deletions_of_run, reject_held_deletions};
#[cfg(test)]
pub(crate) use page::graph_shaped_user_page;
pub use page::{prepare, MemberChange, PreparedObject, PreparedPage};
pub use policy::{Admission, ObjectPolicy, PassThrough, Reads};
pub use recorder::{PgRunRecorder, RecorderError, RunFinished, RunProgress, RunRecorder, RunStarted};
pub use remap::{prepare_batch, run_remap, RemapBatch, RemapDeps, RemapRequest};
pub use round::{run_round, run_round_joining, run_round_with, RoundDeps, RoundReport, RoundRequest};
pub use snapshot::{SnapshotBudget, DEFAULT_BUDGET_MB};
