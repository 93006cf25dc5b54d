//! How far an app registration's permissions let entrasync read a tenant: the outcome of a test
//! connection per permission set (users, groups with membership, devices) and of the tenant overall.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The permission status of one permission set or of a tenant. Wire names are snake_case
/// (`granted_needs_settings`); [`PermissionStatus::worst`] combines statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionStatus {
    /// Never checked.
    #[default]
    Unknown,
    /// The token carries a sufficient role and Graph answered.
    Granted,
    /// The role is there but Graph refused, or a tenant-side setting is in the way.
    GrantedNeedsSettings,
    /// The token lacks every permission that would do: admin consent is missing.
    NeedsAdditionalPermissions,
    /// No token (credentials, tenant, app) or Graph unreachable.
    Error,
}

impl PermissionStatus {
    pub const ALL: [PermissionStatus; 5] = [
        PermissionStatus::Unknown,
        PermissionStatus::Granted,
        PermissionStatus::GrantedNeedsSettings,
        PermissionStatus::NeedsAdditionalPermissions,
        PermissionStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PermissionStatus::Unknown => "unknown",
            PermissionStatus::Granted => "granted",
            PermissionStatus::GrantedNeedsSettings => "granted_needs_settings",
            PermissionStatus::NeedsAdditionalPermissions => "needs_additional_permissions",
            PermissionStatus::Error => "error",
        }
    }

    /// Rank for [`PermissionStatus::worst`]: a known problem outranks not knowing, and not knowing
    /// outranks a success (a tenant with one unchecked set is not "granted").
    pub fn severity(self) -> u8 {
        match self {
            PermissionStatus::Granted => 0,
            PermissionStatus::Unknown => 1,
            PermissionStatus::GrantedNeedsSettings => 2,
            PermissionStatus::NeedsAdditionalPermissions => 3,
            PermissionStatus::Error => 4,
        }
    }

    /// The worse of two statuses: `error` > `needs_additional_permissions` > `granted_needs_settings`
    /// > `unknown` > `granted`.
    pub fn worst(a: PermissionStatus, b: PermissionStatus) -> PermissionStatus {
        if b.severity() > a.severity() {
            b
        } else {
            a
        }
    }

    /// True when syncing can proceed (every class readable).
    pub fn is_granted(self) -> bool {
        self == PermissionStatus::Granted
    }
}

impl fmt::Display for PermissionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown permission status {0:?}: expected one of unknown, granted, granted_needs_settings, \
     needs_additional_permissions, error"
)]
pub struct UnknownPermissionStatus(pub String);

impl FromStr for PermissionStatus {
    type Err = UnknownPermissionStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PermissionStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownPermissionStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // The serde names are checked in tests/integration/graph_probe.rs (this crate has no JSON library).
    fn wire_names_round_trip() {
        for status in PermissionStatus::ALL {
            assert_eq!(status.as_str().parse::<PermissionStatus>(), Ok(status));
        }
        assert!("Granted".parse::<PermissionStatus>().is_err());
    }

    #[test]
    fn worst_is_commutative_and_ranks_errors_first() {
        use PermissionStatus::*;
        for a in PermissionStatus::ALL {
            for b in PermissionStatus::ALL {
                assert_eq!(PermissionStatus::worst(a, b), PermissionStatus::worst(b, a));
            }
            assert_eq!(PermissionStatus::worst(a, Error), Error);
            assert_eq!(PermissionStatus::worst(a, Granted), a);
        }
        assert_eq!(
            PermissionStatus::worst(GrantedNeedsSettings, NeedsAdditionalPermissions),
            NeedsAdditionalPermissions
        );
        assert_eq!(PermissionStatus::worst(Unknown, GrantedNeedsSettings), GrantedNeedsSettings);
    }
}
