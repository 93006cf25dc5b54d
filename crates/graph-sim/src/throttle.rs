//! Resource units (graph-protocol.md §3): each request costs units; optional enforcement of the
//! published quotas per app+tenant (by tenant size, per 10 s) and per app (150,000 per 20 s).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Quotas; `None` = the published value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceLimits {
    #[serde(default)]
    pub app_tenant_per_10s: Option<u64>,
    #[serde(default)]
    pub app_per_20s: Option<u64>,
}

/// Published app+tenant quota by tenant size: S (<50 users), M (50–500), L (>500).
pub fn published_app_tenant_limit(users: usize) -> u64 {
    match users {
        0..50 => 3_500,
        50..=500 => 5_000,
        _ => 8_000,
    }
}

pub const PUBLISHED_APP_LIMIT: u64 = 150_000;

/// Cost of one request: base cost, −1 with `$select`, −1 with `$top` below 20, at least 1.
pub fn request_cost(base: u64, has_select: bool, small_top: bool) -> u64 {
    base.saturating_sub(u64::from(has_select)).saturating_sub(u64::from(small_top)).max(1)
}

pub enum Verdict {
    /// Allowed; the highest fraction of a quota now used.
    Allowed {
        used_fraction: f64,
    },
    Throttled {
        scope: String,
        retry_after_secs: u64,
    },
}

#[derive(Default)]
pub struct ResourceLimiter {
    /// key → (window start ms, units used in it)
    windows: Mutex<HashMap<String, (i64, u64)>>,
}

impl ResourceLimiter {
    /// Charges `cost` against both quotas, unless either would be exceeded.
    pub fn charge(
        &self,
        app: &str,
        tenant: &str,
        cost: u64,
        now_ms: i64,
        tenant_limit: u64,
        app_limit: u64,
    ) -> Verdict {
        let Ok(mut windows) = self.windows.lock() else { return Verdict::Allowed { used_fraction: 0.0 } };
        let scopes = [
            (
                format!("{app}/{tenant}"),
                tenant_limit,
                10_000i64,
                format!("Tenant_Application/ReadWrite/{app}/{tenant}"),
            ),
            (app.to_owned(), app_limit, 20_000i64, format!("Application/ReadWrite/{app}/{tenant}")),
        ];
        let mut used_fraction: f64 = 0.0;
        for (key, limit, window_ms, scope) in &scopes {
            let entry = windows.entry(key.clone()).or_insert((now_ms, 0));
            if now_ms - entry.0 >= *window_ms {
                *entry = (now_ms, 0);
            }
            if entry.1 + cost > *limit {
                let retry = ((entry.0 + window_ms - now_ms).max(0) as u64).div_ceil(1000).max(1);
                return Verdict::Throttled { scope: scope.clone(), retry_after_secs: retry };
            }
        }
        for (key, limit, _, _) in &scopes {
            if let Some(entry) = windows.get_mut(key) {
                entry.1 += cost;
                used_fraction = used_fraction.max(entry.1 as f64 / *limit as f64);
            }
        }
        Verdict::Allowed { used_fraction }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_follow_the_published_modifiers() {
        assert_eq!(request_cost(2, false, false), 2);
        assert_eq!(request_cost(2, true, false), 1);
        assert_eq!(request_cost(1, true, true), 1);
        assert_eq!(request_cost(3, true, true), 1);
        assert_eq!(published_app_tenant_limit(10), 3_500);
        assert_eq!(published_app_tenant_limit(501), 8_000);
    }

    #[test]
    fn quota_resets_with_the_window() {
        let limiter = ResourceLimiter::default();
        assert!(matches!(limiter.charge("a", "t", 3, 0, 5, 100), Verdict::Allowed { .. }));
        assert!(matches!(limiter.charge("a", "t", 3, 1_000, 5, 100), Verdict::Throttled { retry_after_secs: 9, .. }));
        assert!(matches!(limiter.charge("a", "t", 3, 10_000, 5, 100), Verdict::Allowed { .. }));
    }
}
