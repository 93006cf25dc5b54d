//! The daily permission check: a tenant whose last check (or, never checked, whose registration) is a
//! day old gets a `permission_check` job. Nothing stores that a check was published, so the supervisor
//! remembers it and republishes only after an hour without a result; a restart or a move to another
//! instance may cost one extra check, which is harmless.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::enqueue::ScheduleError;
use crate::queue::{publish_permission_check, Broker};
use crate::store::admin_jobs::{self, PermissionCheckState};
use crate::store::Pool;

/// How old a tenant's permission status may get.
pub const CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);
/// A published check that stored nothing by then (lost, or its worker was down) is published again.
pub const REPUBLISH_AFTER: Duration = Duration::from_secs(3600);

/// Whether a check is due now. Registration counts as a check: a tenant added by the API was just
/// tested, and one added by the CLI is checked a day later (or on demand).
pub fn permission_check_due(state: &PermissionCheckState, published_at: Option<DateTime<Utc>>) -> bool {
    let age = |since: DateTime<Utc>| state.now - since;
    let last = state.permissions_checked_at.unwrap_or(state.created_at);
    !state.blocked
        && age(last) >= delta(CHECK_EVERY)
        && published_at.is_none_or(|published| published < last || age(published) >= delta(REPUBLISH_AFTER))
}

/// Publishes the tenant's permission check when it is due; returns when a check was last published
/// (now, or `published_at` unchanged).
pub async fn enqueue_permission_check(
    pool: &Pool,
    broker: &Broker,
    tenant_id: i64,
    published_at: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, ScheduleError> {
    let Some(state) = admin_jobs::permission_check_state(pool, tenant_id).await? else { return Ok(published_at) };
    if !permission_check_due(&state, published_at) {
        return Ok(published_at);
    }
    let job_id = publish_permission_check(broker, state.entra_tenant_id).await?;
    tracing::info!(tenant = tenant_id, job = %job_id, "permission check enqueued");
    Ok(Some(state.now))
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(now: DateTime<Utc>, checked_hours_ago: Option<i64>, created_hours_ago: i64) -> PermissionCheckState {
        PermissionCheckState {
            now,
            entra_tenant_id: uuid::Uuid::nil(),
            blocked: false,
            permissions_checked_at: checked_hours_ago.map(|h| now - TimeDelta::hours(h)),
            created_at: now - TimeDelta::hours(created_hours_ago),
        }
    }

    #[test]
    fn a_check_is_due_a_day_after_the_last_one_or_the_registration() {
        let now = Utc::now();
        assert!(!permission_check_due(&state(now, Some(23), 100), None));
        assert!(permission_check_due(&state(now, Some(25), 100), None));
        assert!(!permission_check_due(&state(now, None, 2), None), "a new tenant was just tested");
        assert!(permission_check_due(&state(now, None, 30), None));
        let blocked = PermissionCheckState { blocked: true, ..state(now, Some(48), 100) };
        assert!(!permission_check_due(&blocked, None));
    }

    #[test]
    fn a_published_check_is_not_published_again_for_an_hour() {
        let now = Utc::now();
        let due = state(now, Some(25), 100);
        assert!(!permission_check_due(&due, Some(now - TimeDelta::minutes(10))));
        assert!(permission_check_due(&due, Some(now - TimeDelta::minutes(61))));
        // Published before the last stored check: that was another check, this one is due anew.
        assert!(permission_check_due(&due, Some(now - TimeDelta::hours(26))));
    }
}
