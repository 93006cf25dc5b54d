//! Job messages: a JSON envelope any AMQP client can publish (docs/queue.md). Every job has a `kind`
//! (absent means `sync`, so publishers written before kinds existed are unchanged) and a
//! `schema_version` of that kind. Today one kind exists, `sync` ([`SyncJob`]); re-map, tag sync and
//! permission refresh jobs get their own variant of [`Job`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{ObjectClass, SyncMode, Trigger};

/// The `schema_version` of `sync` jobs this entrasync reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The job kinds this entrasync handles, as named in the envelope's `kind` field.
pub const KINDS: [&str; 1] = [SYNC_KIND];
const SYNC_KIND: &str = "sync";

/// A job message of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    Sync(SyncJob),
}

impl Job {
    /// Parses the envelope and the kind's own schema. Never panics on any input.
    pub fn from_bytes(body: &[u8]) -> Result<Self, JobError> {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| JobError::NotJson(e.to_string()))?;
        let Some(object) = value.as_object() else {
            return Err(JobError::NotJson("the top level is not an object".to_owned()));
        };
        match object.get("kind") {
            None => SyncJob::from_object(value).map(Job::Sync),
            Some(serde_json::Value::String(kind)) if kind == SYNC_KIND => SyncJob::from_object(value).map(Job::Sync),
            Some(other) => Err(JobError::UnknownKind(other.clone())),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Job::Sync(_) => SYNC_KIND,
        }
    }

    pub fn job_id(&self) -> Uuid {
        match self {
            Job::Sync(job) => job.job_id,
        }
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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    #[error("message body is not a JSON object: {0}; see docs/queue.md for the SyncJob schema")]
    NotJson(String),
    #[error("unsupported schema_version {0:?}; this entrasync reads schema_version {SCHEMA_VERSION}")]
    UnsupportedVersion(serde_json::Value),
    #[error("unknown job kind {0}; this entrasync handles the kinds {KINDS:?} (docs/queue.md)")]
    UnknownKind(serde_json::Value),
    #[error("invalid SyncJob: {0}; see docs/queue.md for the SyncJob schema")]
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
        }
    }

    fn from_object(value: serde_json::Value) -> Result<Self, JobError> {
        match value.get("schema_version") {
            Some(v) if v.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {}
            Some(v) => return Err(JobError::UnsupportedVersion(v.clone())),
            None => return Err(JobError::Invalid("missing field `schema_version`".to_owned())),
        }
        serde_json::from_value(value).map_err(|e| JobError::Invalid(e.to_string()))
    }

    /// The message body, with `"kind": "sync"`.
    pub fn to_bytes(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Envelope<'a> {
            kind: &'static str,
            #[serde(flatten)]
            job: &'a SyncJob,
        }
        // Serialising this plain struct cannot fail.
        serde_json::to_vec(&Envelope { kind: SYNC_KIND, job: self }).unwrap_or_default()
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
        assert!(matches!(SyncJob::from_bytes(br#"{"schema_version":2}"#), Err(JobError::UnsupportedVersion(_))));
        let err = Job::from_bytes(br#"{"kind":"remap","schema_version":1}"#).unwrap_err();
        assert!(matches!(err, JobError::UnknownKind(_)), "{err}");
        assert!(err.to_string().contains("\"remap\"") && err.to_string().contains("sync"), "{err}");
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
}
