//! External tag mappings (docs/mappings.md, "Tag mappings"): which third-party properties a mapping may
//! read ([`source`]) and the tag sync itself ([`sync`]): apply the tenant's live mappings to its stored
//! users batch by batch, then delete the values of mappings pending deletion, and record a history run
//! of mode `tag_sync`. Plain async code over `store::tags` (where the SQL is) and the run recorder; free
//! of actix and lapin, and it never calls Graph: the store holds the fresh copy.

pub mod source;
pub mod sync;

pub use source::{SourceError, TagSource, ATTRIBUTES, GROUP_MEMBERSHIP};
pub use sync::{run_tag_sync, TagSyncError, TagSyncOptions, TagSyncReport, TagSyncRequest};
