//! How the emulator shapes responses for a tenant: page sizes, quirk rates, token lifetime.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// Objects per delta page (Graph: at most 200 for directory objects).
    pub page_size: usize,
    /// `members@delta` entries per page, across the groups on it.
    pub member_page_size: usize,
    /// Probability that an object is repeated (same page, next page, or next round).
    pub replay_rate: f64,
    /// Probability that a page is empty but carries a nextLink.
    pub empty_page_rate: f64,
    /// Delta tokens older than this (emulator time) → 400 `syncStateNotFound`.
    pub token_lifetime_secs: i64,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            page_size: 200,
            member_page_size: 500,
            replay_rate: 0.0,
            empty_page_rate: 0.0,
            token_lifetime_secs: 7 * 86_400,
        }
    }
}

/// A partial update of [`TenantSettings`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub page_size: Option<usize>,
    pub member_page_size: Option<usize>,
    pub replay_rate: Option<f64>,
    pub empty_page_rate: Option<f64>,
    pub token_lifetime_secs: Option<i64>,
}

impl TenantSettings {
    pub fn apply(&self, patch: &SettingsPatch) -> Result<TenantSettings, String> {
        let next = TenantSettings {
            page_size: patch.page_size.unwrap_or(self.page_size),
            member_page_size: patch.member_page_size.unwrap_or(self.member_page_size),
            replay_rate: patch.replay_rate.unwrap_or(self.replay_rate),
            empty_page_rate: patch.empty_page_rate.unwrap_or(self.empty_page_rate),
            token_lifetime_secs: patch.token_lifetime_secs.unwrap_or(self.token_lifetime_secs),
        };
        next.validate()?;
        Ok(next)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=10_000).contains(&self.page_size) || !(1..=100_000).contains(&self.member_page_size) {
            return Err("page_size must be 1..=10000 and member_page_size 1..=100000".into());
        }
        if !(0.0..=0.5).contains(&self.replay_rate) {
            return Err("replay_rate must be within 0..=0.5".into());
        }
        // Below 1, or a walk would never end.
        if !(0.0..=0.9).contains(&self.empty_page_rate) {
            return Err("empty_page_rate must be within 0..=0.9".into());
        }
        if self.token_lifetime_secs < 1 {
            return Err("token_lifetime_secs must be positive".into());
        }
        Ok(())
    }
}
