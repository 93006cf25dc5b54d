//! Job messages: a JSON envelope any AMQP client can publish (docs/queue.md). Every job has a `kind`
//! (absent means `sync`, so publishers written before kinds existed are unchanged) and a
//! `schema_version` of that kind. Kinds: `sync` ([`SyncJob`]), `permission_check`
//! ([`PermissionCheckJob`]), `remap` ([`RemapJob`]) and `tag_sync` ([`TagSyncJob`]); each has its own variant
//! of [`Job`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{ObjectClass, SyncMode, Trigger};

/// The `schema_version` of `sync` jobs this entrasync reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The `schema_version` of `permission_check` jobs this entrasync reads and writes.
pub const PERMISSION_CHECK_SCHEMA_VERSION: u32 = 1;

/// The `schema_version` of `remap` jobs this entrasync reads and writes.
pub const REMAP_SCHEMA_VERSION: u32 = 1;

/// The job kinds this entrasync handles, as named in the envelope's `kind` field.
pub const KINDS: [&str; 4] = [SYNC_KIND, PERMISSION_CHECK_KIND, REMAP_KIND, TAG_SYNC_KIND];
const SYNC_KIND: &str = "sync";
const PERMISSION_CHECK_KIND: &str = "permission_check";
const REMAP_KIND: &str = "remap";
const TAG_SYNC_KIND: &str = "tag_sync";

/// The `schema_version` of `tag_sync` jobs this entrasync reads and writes.
pub const TAG_SYNC_SCHEMA_VERSION: u32 = 1;

/// The routing key of tag syncs (their queue is `{prefix}.checks`, with the permission checks).
pub const TAG_SYNC_ROUTING_KEY: &str = "tags.sync";

/// The routing key of permission checks (their queue is `{prefix}.checks`).
pub const PERMISSION_CHECK_ROUTING_KEY: &str = "check.permissions";

/// A job message of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    Sync(SyncJob),
    PermissionCheck(PermissionCheckJob),
    Remap(RemapJob),
    TagSync(TagSyncJob),
}

impl Job {
    /// Parses the envelope and the kind's own schema. Never panics on any input; a body over
    /// [`MAX_JOB_BYTES`] is refused before it is parsed.
    pub fn from_bytes(body: &[u8]) -> Result<Self, JobError> {
        if body.len() > MAX_JOB_BYTES {
            return Err(JobError::TooLarge(body.len()));
        }
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| JobError::NotJson(e.to_string()))?;
        let Some(object) = value.as_object() else {
            return Err(JobError::NotJson("the top level is not an object".to_owned()));
        };
        match object.get("kind") {
            None => SyncJob::from_object(value).map(Job::Sync),
            Some(serde_json::Value::String(kind)) if kind == SYNC_KIND => SyncJob::from_object(value).map(Job::Sync),
            Some(serde_json::Value::String(kind)) if kind == PERMISSION_CHECK_KIND => {
                check_version(&value, PERMISSION_CHECK_SCHEMA_VERSION)?;
                serde_json::from_value(value).map(Job::PermissionCheck).map_err(|e| JobError::Invalid(e.to_string()))
            }
            Some(serde_json::Value::String(kind)) if kind == TAG_SYNC_KIND => {
                check_version(&value, TAG_SYNC_SCHEMA_VERSION)?;
                serde_json::from_value(value).map(Job::TagSync).map_err(|e| JobError::Invalid(e.to_string()))
            }
            Some(serde_json::Value::String(kind)) if kind == REMAP_KIND => {
                check_version(&value, REMAP_SCHEMA_VERSION)?;
                serde_json::from_value(value).map(Job::Remap).map_err(|e| JobError::Invalid(e.to_string()))
            }
            Some(other) => Err(JobError::UnknownKind(other.clone())),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Job::Sync(_) => SYNC_KIND,
            Job::PermissionCheck(_) => PERMISSION_CHECK_KIND,
            Job::Remap(_) => REMAP_KIND,
            Job::TagSync(_) => TAG_SYNC_KIND,
        }
    }

    pub fn job_id(&self) -> Uuid {
        match self {
            Job::Sync(job) => job.job_id,
            Job::PermissionCheck(job) => job.job_id,
            Job::Remap(job) => job.job_id,
            Job::TagSync(job) => job.job_id,
        }
    }

    /// The Entra tenant id the job is about.
    pub fn tenant(&self) -> Uuid {
        match self {
            Job::Sync(job) => job.tenant,
            Job::PermissionCheck(job) => job.tenant,
            Job::Remap(job) => job.tenant,
            Job::TagSync(job) => job.tenant,
        }
    }

    pub fn routing_key(&self) -> String {
        match self {
            Job::Sync(job) => job.routing_key(),
            Job::PermissionCheck(_) => PERMISSION_CHECK_ROUTING_KEY.to_owned(),
            Job::Remap(job) => routing_key(job.object_class),
            Job::TagSync(_) => TAG_SYNC_ROUTING_KEY.to_owned(),
        }
    }

    /// The message body, with its `kind`.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Job::Sync(job) => job.to_bytes(),
            Job::PermissionCheck(job) => job.to_bytes(),
            Job::Remap(job) => job.to_bytes(),
            Job::TagSync(job) => job.to_bytes(),
        }
    }
}

/// Asks for a fresh permission check of one tenant: a token's roles and one Graph call per set,
/// stored as the tenant's permission status (docs/queue.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionCheckJob {
    pub schema_version: u32,
    pub job_id: Uuid,
    /// The Entra tenant id (directory id), as registered in entrasync.
    pub tenant: Uuid,
    #[serde(default = "Utc::now")]
    pub requested_at: DateTime<Utc>,
}

impl PermissionCheckJob {
    pub fn new(tenant: Uuid) -> Self {
        PermissionCheckJob {
            schema_version: PERMISSION_CHECK_SCHEMA_VERSION,
            job_id: Uuid::new_v4(),
            tenant,
            requested_at: Utc::now(),
        }
    }

    /// The message body, with `"kind": "permission_check"`.
    pub fn to_bytes(&self) -> Vec<u8> {
        with_kind(PERMISSION_CHECK_KIND, self)
    }
}

/// Asks for a re-map of one (tenant, object class): the tenant's current mappings and scoping applied to
/// the stored objects, from the store alone (no Graph call). Routed like a sync job of the class
/// (`sync.<class>`), so it runs under the same (tenant, class) run lock; recorded as a run of mode `remap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemapJob {
    pub schema_version: u32,
    /// Idempotency key: republishing the same job id never starts a second run.
    pub job_id: Uuid,
    /// The Entra tenant id (directory id), as registered in entrasync.
    pub tenant: Uuid,
    pub object_class: ObjectClass,
    #[serde(default = "default_trigger")]
    pub trigger: Trigger,
    #[serde(default = "Utc::now")]
    pub requested_at: DateTime<Utc>,
}

impl RemapJob {
    pub fn new(tenant: Uuid, object_class: ObjectClass, trigger: Trigger) -> Self {
        RemapJob {
            schema_version: REMAP_SCHEMA_VERSION,
            job_id: Uuid::new_v4(),
            tenant,
            object_class,
            trigger,
            requested_at: Utc::now(),
        }
    }

    pub fn routing_key(&self) -> String {
        routing_key(self.object_class)
    }

    /// The message body, with `"kind": "remap"`.
    pub fn to_bytes(&self) -> Vec<u8> {
        with_kind(REMAP_KIND, self)
    }
}

/// Asks for one tag sync of a tenant: its tag mappings applied to its stored users, values of deleted
/// mappings removed (docs/queue.md, docs/mappings.md). Reads the store only; recorded as a run of mode
/// `tag_sync`, class `user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagSyncJob {
    pub schema_version: u32,
    /// Names the request in logs and the history; a tag sync is idempotent, so a copy just syncs again.
    pub job_id: Uuid,
    /// The Entra tenant id (directory id), as registered in entrasync.
    pub tenant: Uuid,
    #[serde(default = "default_trigger")]
    pub trigger: Trigger,
    #[serde(default = "Utc::now")]
    pub requested_at: DateTime<Utc>,
}

impl TagSyncJob {
    pub fn new(tenant: Uuid, trigger: Trigger) -> Self {
        TagSyncJob {
            schema_version: TAG_SYNC_SCHEMA_VERSION,
            job_id: Uuid::new_v4(),
            tenant,
            trigger,
            requested_at: Utc::now(),
        }
    }

    /// The message body, with `"kind": "tag_sync"`.
    pub fn to_bytes(&self) -> Vec<u8> {
        with_kind(TAG_SYNC_KIND, self)
    }
}

/// A job's fields behind its `kind`. Serialising these plain structs cannot fail.
fn with_kind<T: Serialize>(kind: &'static str, job: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a, T> {
        kind: &'static str,
        #[serde(flatten)]
        job: &'a T,
    }
    serde_json::to_vec(&Envelope { kind, job }).unwrap_or_default()
}

/// Rejects a `schema_version` other than `supported` (absent, too: it is required).
fn check_version(value: &serde_json::Value, supported: u32) -> Result<(), JobError> {
    match value.get("schema_version") {
        Some(v) if v.as_u64() == Some(u64::from(supported)) => Ok(()),
        Some(v) => Err(JobError::UnsupportedVersion(v.clone(), supported)),
        None => Err(JobError::Invalid("missing field `schema_version`".to_owned())),
    }
}

/// Asks for one sync run of one (tenant, object class).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    pub schema_version: u32,
    /// Idempotency key: republishing the same job id never starts a second run.
    pub job_id: Uuid,
    /// The Entra tenant id (directory id), as registered in entrasync.
    pub tenant: Uuid,
    pub object_class: ObjectClass,
    pub mode: SyncMode,
    #[serde(default = "default_trigger")]
    pub trigger: Trigger,
    #[serde(default = "Utc::now")]
    pub requested_at: DateTime<Utc>,
}

fn default_trigger() -> Trigger {
    Trigger::Queue
}

/// The largest job body read. Every job we publish is a few hundred bytes; a larger one is not ours
/// (or is damaged) and parsing it would only cost memory.
pub const MAX_JOB_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    #[error("message body of {0} bytes is larger than the {MAX_JOB_BYTES} bytes a job may have; see docs/queue.md")]
    TooLarge(usize),
    #[error("message body is not a JSON object: {0}; see docs/queue.md for the job schemas")]
    NotJson(String),
    /// The version given, and the one this entrasync reads for that kind.
    #[error("unsupported schema_version {0}; this entrasync reads schema_version {1} of this kind")]
    UnsupportedVersion(serde_json::Value, u32),
    #[error("unknown job kind {0}; this entrasync handles the kinds {KINDS:?} (docs/queue.md)")]
    UnknownKind(serde_json::Value),
    #[error("invalid job: {0}; see docs/queue.md for the job schemas")]
    Invalid(String),
}

impl SyncJob {
    pub fn new(tenant: Uuid, object_class: ObjectClass, mode: SyncMode, trigger: Trigger) -> Self {
        SyncJob {
            schema_version: SCHEMA_VERSION,
            job_id: Uuid::new_v4(),
            tenant,
            object_class,
            mode,
            trigger,
            requested_at: Utc::now(),
        }
    }

    pub fn routing_key(&self) -> String {
        routing_key(self.object_class)
    }

    /// Parses and validates a `sync` job's body (with or without the `kind` field).
    pub fn from_bytes(body: &[u8]) -> Result<Self, JobError> {
        match Job::from_bytes(body)? {
            Job::Sync(job) => Ok(job),
            other => Err(JobError::Invalid(format!("expected a sync job, got a {} job", other.kind()))),
        }
    }

    fn from_object(value: serde_json::Value) -> Result<Self, JobError> {
        check_version(&value, SCHEMA_VERSION)?;
        serde_json::from_value(value).map_err(|e| JobError::Invalid(e.to_string()))
    }

    /// The message body, with `"kind": "sync"`.
    pub fn to_bytes(&self) -> Vec<u8> {
        with_kind(SYNC_KIND, self)
    }
}

pub fn routing_key(class: ObjectClass) -> String {
    format!("sync.{}", class.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let job = SyncJob::new(Uuid::new_v4(), ObjectClass::Group, SyncMode::Full, Trigger::Manual);
        assert_eq!(SyncJob::from_bytes(&job.to_bytes()), Ok(job.clone()));
        assert_eq!(job.routing_key(), "sync.group");
    }

    #[test]
    fn the_envelope_names_the_kind_and_a_missing_kind_means_sync() {
        let job = SyncJob::new(Uuid::new_v4(), ObjectClass::User, SyncMode::Delta, Trigger::Queue);
        let body: serde_json::Value = serde_json::from_slice(&job.to_bytes()).expect("json");
        assert_eq!(body["kind"], "sync");
        assert_eq!(Job::from_bytes(&job.to_bytes()), Ok(Job::Sync(job.clone())));
        let mut without_kind = body;
        without_kind.as_object_mut().expect("object").remove("kind");
        let parsed = Job::from_bytes(&serde_json::to_vec(&without_kind).expect("json")).expect("valid");
        assert_eq!(parsed, Job::Sync(job));
        assert_eq!(parsed.kind(), "sync");
    }

    #[test]
    fn a_permission_check_round_trips_with_its_kind_and_routing_key() {
        let job = Job::PermissionCheck(PermissionCheckJob::new(Uuid::new_v4()));
        let body: serde_json::Value = serde_json::from_slice(&job.to_bytes()).expect("json");
        assert_eq!(body["kind"], "permission_check");
        assert_eq!(body["schema_version"], 1);
        assert_eq!(Job::from_bytes(&job.to_bytes()), Ok(job.clone()));
        assert_eq!(job.routing_key(), "check.permissions");
        assert!(KINDS.contains(&job.kind()));
        let smallest = br#"{"kind":"permission_check","schema_version":1,
            "job_id":"6f1c2a9e-3b7d-4c55-9a39-2f0d8f4b7a11","tenant":"0b6a4d2e-8c1f-4f3a-9e57-1d2c3b4a5f60"}"#;
        assert!(matches!(Job::from_bytes(smallest), Ok(Job::PermissionCheck(_))));
        let newer = br#"{"kind":"permission_check","schema_version":2}"#;
        let err = Job::from_bytes(newer).unwrap_err();
        assert!(matches!(err, JobError::UnsupportedVersion(_, 1)), "{err}");
        assert!(SyncJob::from_bytes(&job.to_bytes()).is_err(), "a permission check is not a sync job");
    }

    #[test]
    fn a_remap_round_trips_with_its_kind_and_the_class_routing_key() {
        let job = Job::Remap(RemapJob::new(Uuid::new_v4(), ObjectClass::Group, Trigger::Api));
        let body: serde_json::Value = serde_json::from_slice(&job.to_bytes()).expect("json");
        assert_eq!(body["kind"], "remap");
        assert_eq!(body["schema_version"], 1);
        assert_eq!(body["object_class"], "group");
        assert_eq!(body["trigger"], "api");
        assert_eq!(Job::from_bytes(&job.to_bytes()), Ok(job.clone()));
        assert_eq!(job.routing_key(), "sync.group");
        assert!(KINDS.contains(&job.kind()));
        let smallest = br#"{"kind":"remap","schema_version":1,"job_id":"6f1c2a9e-3b7d-4c55-9a39-2f0d8f4b7a11",
            "tenant":"0b6a4d2e-8c1f-4f3a-9e57-1d2c3b4a5f60","object_class":"user"}"#;
        let Ok(Job::Remap(parsed)) = Job::from_bytes(smallest) else { panic!("the smallest remap job parses") };
        assert_eq!(parsed.trigger, Trigger::Queue);
        let newer = br#"{"kind":"remap","schema_version":2}"#;
        assert!(matches!(Job::from_bytes(newer), Err(JobError::UnsupportedVersion(_, 1))));
        let no_class = br#"{"kind":"remap","schema_version":1,"job_id":"6f1c2a9e-3b7d-4c55-9a39-2f0d8f4b7a11",
            "tenant":"0b6a4d2e-8c1f-4f3a-9e57-1d2c3b4a5f60"}"#;
        let err = Job::from_bytes(no_class).unwrap_err();
        assert!(err.to_string().contains("object_class"), "{err}");
        assert!(SyncJob::from_bytes(&job.to_bytes()).is_err(), "a remap is not a sync job");
    }

    #[test]
    fn a_tag_sync_round_trips_with_its_kind_and_routing_key() {
        let job = Job::TagSync(TagSyncJob::new(Uuid::new_v4(), Trigger::Api));
        let body: serde_json::Value = serde_json::from_slice(&job.to_bytes()).expect("json");
        assert_eq!(body["kind"], "tag_sync");
        assert_eq!(body["schema_version"], 1);
        assert_eq!(body["trigger"], "api");
        assert_eq!(Job::from_bytes(&job.to_bytes()), Ok(job.clone()));
        assert_eq!(job.routing_key(), "tags.sync");
        assert!(KINDS.contains(&job.kind()));
        let smallest = br#"{"kind":"tag_sync","schema_version":1,
            "job_id":"6f1c2a9e-3b7d-4c55-9a39-2f0d8f4b7a11","tenant":"0b6a4d2e-8c1f-4f3a-9e57-1d2c3b4a5f60"}"#;
        let Ok(Job::TagSync(parsed)) = Job::from_bytes(smallest) else { panic!("the smallest tag sync job parses") };
        assert_eq!(parsed.trigger, Trigger::Queue);
        let newer = br#"{"kind":"tag_sync","schema_version":2}"#;
        assert!(matches!(Job::from_bytes(newer), Err(JobError::UnsupportedVersion(_, 1))));
    }

    #[test]
    fn documented_example_parses_with_defaults() {
        let body = br#"{"schema_version":1,"job_id":"6f1c2a9e-3b7d-4c55-9a39-2f0d8f4b7a11",
            "tenant":"0b6a4d2e-8c1f-4f3a-9e57-1d2c3b4a5f60","object_class":"user","mode":"delta"}"#;
        let job = SyncJob::from_bytes(body).expect("valid");
        assert_eq!(job.trigger, Trigger::Queue);
        assert_eq!(job.mode, SyncMode::Delta);
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        assert!(matches!(SyncJob::from_bytes(b"\xff\x00"), Err(JobError::NotJson(_))));
        assert!(matches!(SyncJob::from_bytes(b"[1]"), Err(JobError::NotJson(_))));
        assert!(matches!(SyncJob::from_bytes(br#"{"schema_version":2}"#), Err(JobError::UnsupportedVersion(_, _))));
        let err = Job::from_bytes(br#"{"kind":"reindex","schema_version":1}"#).unwrap_err();
        assert!(matches!(err, JobError::UnknownKind(_)), "{err}");
        assert!(err.to_string().contains("\"reindex\"") && err.to_string().contains("permission_check"), "{err}");
        assert!(matches!(Job::from_bytes(br#"{"kind":7}"#), Err(JobError::UnknownKind(_))));
        let err = SyncJob::from_bytes(br#"{"schema_version":1,"job_id":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("job_id") || err.to_string().contains("UUID"), "{err}");
        let err = SyncJob::from_bytes(
            br#"{"schema_version":1,"job_id":"6f1c2a9e-3b7d-4c55-9a39-2f0d8f4b7a11",
                "tenant":"0b6a4d2e-8c1f-4f3a-9e57-1d2c3b4a5f60","object_class":"printer","mode":"delta"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("printer"), "{err}");
    }

    #[test]
    fn oversized_bodies_and_wrong_types_are_refused_with_the_reason() {
        let huge = format!(r#"{{"schema_version":1,"padding":"{}"}}"#, "x".repeat(MAX_JOB_BYTES));
        let err = Job::from_bytes(huge.as_bytes()).unwrap_err();
        assert!(matches!(err, JobError::TooLarge(n) if n == huge.len()), "{err}");
        assert!(err.to_string().contains("65536"), "expected the limit named: {err}");
        let wrong_types: [&[u8]; 4] = [
            br#"{"schema_version":"1","job_id":"6f1c2a9e-3b7d-4c55-9a39-2f0d8f4b7a11"}"#,
            br#"{"schema_version":1,"job_id":7,"tenant":"0b6a4d2e-8c1f-4f3a-9e57-1d2c3b4a5f60","object_class":"users"}"#,
            br#"{"kind":"remap","schema_version":1,"job_id":"6f1c2a9e-3b7d-4c55-9a39-2f0d8f4b7a11","tenant":[]}"#,
            br#"{"schema_version":1,"job_id":"6f1c2a9e-3b7d-4c55-9a39-2f0d8f4b7a11","tenant":"0b6a4d2e-8c1f-4f3a-9e57-1d2c3b4a5f60","object_class":"users","mode":{"x":1}}"#,
        ];
        for body in wrong_types {
            let err = Job::from_bytes(body).unwrap_err();
            assert!(
                matches!(err, JobError::Invalid(_) | JobError::UnsupportedVersion(..)),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
