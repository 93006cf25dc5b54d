//! Scheduling as plain code: which instance supervises a tenant (rendezvous hashing and the lease round),
//! which runs of a tenant are due (delta interval, full-scan reasons, quarantine backoff), the daily
//! permission check, the daily tag sync, and publishing them. The actors only call these.

pub mod assignment;
pub mod due;
pub mod enqueue;
pub mod permissions;
pub mod quarantine;
pub mod rebalance;
pub mod tags;

pub use assignment::owner_of;
pub use due::{plan, ClassPlan, Policy, TenantPlan};
pub use enqueue::{enqueue_due, CheckOutcome, ScheduleError};
pub use permissions::enqueue_permission_check;
pub use quarantine::FailurePolicy;
pub use tags::enqueue_tag_sync;
