//! Domain types shared by every layer and by the Graph emulator: object classes, clouds, the run
//! vocabulary and the run history events. No I/O here. See docs/architecture.md.

pub mod mapping;
mod permission;
mod run;

pub use permission::{PermissionStatus, UnknownPermissionStatus};
pub use run::{RunCounts, RunFinished, RunProgress, RunStarted};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kinds of directory object entrasync keeps a copy of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectClass {
    User,
    Group,
    Device,
}

impl ObjectClass {
    pub const ALL: [ObjectClass; 3] = [ObjectClass::User, ObjectClass::Group, ObjectClass::Device];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectClass::User => "user",
            ObjectClass::Group => "group",
            ObjectClass::Device => "device",
        }
    }

    /// The Graph collection segment: `users`, `groups`, `devices`.
    pub fn graph_collection(self) -> &'static str {
        match self {
            ObjectClass::User => "users",
            ObjectClass::Group => "groups",
            ObjectClass::Device => "devices",
        }
    }
}

impl fmt::Display for ObjectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown object class {0:?}: expected one of user, group, device")]
pub struct UnknownObjectClass(pub String);

impl FromStr for ObjectClass {
    type Err = UnknownObjectClass;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "user" | "users" => Ok(ObjectClass::User),
            "group" | "groups" => Ok(ObjectClass::Group),
            "device" | "devices" => Ok(ObjectClass::Device),
            _ => Err(UnknownObjectClass(s.to_owned())),
        }
    }
}

/// The Azure clouds a tenant can live in. `Custom` points at explicit URLs (the emulator).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Cloud {
    Global,
    UsGov,
    UsGovDod,
    China,
    Custom { login_url: String, graph_url: String },
}

impl Cloud {
    /// Stable name stored in Postgres and shown to operators.
    pub fn name(&self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGov => "us_gov",
            Cloud::UsGovDod => "us_gov_dod",
            Cloud::China => "china",
            Cloud::Custom { .. } => "custom",
        }
    }

    /// The authority (token host), without a trailing slash.
    pub fn login_url(&self) -> &str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
            Cloud::Custom { login_url, .. } => login_url.trim_end_matches('/'),
        }
    }

    /// The Graph root, without a trailing slash and without the version segment.
    pub fn graph_url(&self) -> &str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
            Cloud::Custom { graph_url, .. } => graph_url.trim_end_matches('/'),
        }
    }

    /// The client-credentials scope for Graph in this cloud.
    pub fn graph_scope(&self) -> String {
        match self {
            // An emulator answers for every cloud; it is asked for the global scope.
            Cloud::Custom { .. } => "https://graph.microsoft.com/.default".to_owned(),
            other => format!("{}/.default", other.graph_url()),
        }
    }
}

/// Full: list everything and sweep what was not seen. Delta: changes since the stored deltaLink.
/// Remap: apply the tenant's current mappings and scoping to the stored objects (reads the store, never
/// Graph). TagSync: bring external tag values in and assign them (runs of class `user`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    Full,
    Delta,
    Remap,
    TagSync,
}

impl SyncMode {
    /// Every mode, for code that enumerates them (history filters, metric series).
    pub const ALL: [SyncMode; 4] = [SyncMode::Full, SyncMode::Delta, SyncMode::Remap, SyncMode::TagSync];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Full => "full",
            SyncMode::Delta => "delta",
            SyncMode::Remap => "remap",
            SyncMode::TagSync => "tag_sync",
        }
    }
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    Manual,
    Api,
    Queue,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Api => "api",
            Trigger::Queue => "queue",
        }
    }
}

/// Lifecycle of one recorded run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Success,
    Warning,
    Failed,
    Held,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Warning => "warning",
            RunStatus::Failed => "failed",
            RunStatus::Held => "held",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "success" => RunStatus::Success,
            "warning" => RunStatus::Warning,
            "failed" => RunStatus::Failed,
            "held" => RunStatus::Held,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_class_round_trips_through_text() {
        for class in ObjectClass::ALL {
            assert_eq!(class.as_str().parse::<ObjectClass>(), Ok(class));
            assert_eq!(class.graph_collection().parse::<ObjectClass>(), Ok(class));
        }
        assert!("printer".parse::<ObjectClass>().is_err());
    }

    #[test]
    fn national_clouds_use_their_own_hosts() {
        assert_eq!(Cloud::UsGovDod.graph_scope(), "https://dod-graph.microsoft.us/.default");
        assert_eq!(Cloud::UsGov.login_url(), "https://login.microsoftonline.us");
        assert_eq!(Cloud::China.graph_url(), "https://microsoftgraph.chinacloudapi.cn");
    }
}
