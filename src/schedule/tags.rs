//! The daily tag sync: a tenant with tag mappings (live or pending deletion) whose last tag sync is
//! `tags.sync_interval_secs` old — or that never had one — gets a `tag_sync` job. Like the permission
//! check, the supervisor remembers what it published and republishes only after an hour without a
//! result; a restart or a move to another instance may cost one extra sync, which is harmless.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::enqueue::ScheduleError;
use crate::model::Trigger;
use crate::queue::{Broker, Job, TagSyncJob};
use crate::store::tags::{self, TagSyncState};
use crate::store::Pool;

/// A published tag sync that recorded nothing by then (lost, or its worker was down) is published again.
pub const REPUBLISH_AFTER: Duration = Duration::from_secs(3600);

/// Whether a tag sync is due now. A tenant whose mappings never synced is due at once, so a new
/// mapping's values arrive without waiting a day.
pub fn tag_sync_due(state: &TagSyncState, every: Duration, published_at: Option<DateTime<Utc>>) -> bool {
    let age = |since: DateTime<Utc>| state.now - since;
    state.enabled
        && !state.blocked
        && state.mappings > 0
        && state.last_finished_at.is_none_or(|last| age(last) >= delta(every))
        && published_at.is_none_or(|published| {
            state.last_finished_at.is_some_and(|last| published < last) || age(published) >= delta(REPUBLISH_AFTER)
        })
}

/// Publishes the tenant's tag sync when it is due; returns when one was last published (now, or
/// `published_at` unchanged).
pub async fn enqueue_tag_sync(
    pool: &Pool,
    broker: &Broker,
    tenant_id: i64,
    every: Duration,
    published_at: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, ScheduleError> {
    let Some(state) = tags::tag_sync_state(pool, tenant_id).await? else { return Ok(published_at) };
    if !tag_sync_due(&state, every, published_at) {
        return Ok(published_at);
    }
    let job = TagSyncJob::new(state.entra_tenant_id, Trigger::Schedule);
    let job_id = job.job_id;
    broker.publish_job(&Job::TagSync(job)).await?;
    tracing::info!(tenant = tenant_id, job = %job_id, "tag sync enqueued");
    Ok(Some(state.now))
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn state(now: DateTime<Utc>, mappings: i64, synced_hours_ago: Option<i64>) -> TagSyncState {
        TagSyncState {
            now,
            entra_tenant_id: uuid::Uuid::nil(),
            enabled: true,
            blocked: false,
            mappings,
            last_finished_at: synced_hours_ago.map(|h| now - TimeDelta::hours(h)),
        }
    }

    #[test]
    fn a_tenant_with_mappings_syncs_its_tags_once_per_interval() {
        let now = Utc::now();
        assert!(!tag_sync_due(&state(now, 0, None), DAY, None), "no mappings, nothing to sync");
        assert!(tag_sync_due(&state(now, 2, None), DAY, None), "never synced: at once");
        assert!(!tag_sync_due(&state(now, 2, Some(23)), DAY, None));
        assert!(tag_sync_due(&state(now, 2, Some(25)), DAY, None));
        assert!(tag_sync_due(&state(now, 2, Some(2)), Duration::from_secs(3600), None), "the interval is a setting");
        let blocked = TagSyncState { blocked: true, ..state(now, 2, Some(48)) };
        assert!(!tag_sync_due(&blocked, DAY, None));
        let disabled = TagSyncState { enabled: false, ..state(now, 2, Some(48)) };
        assert!(!tag_sync_due(&disabled, DAY, None));
    }

    #[test]
    fn a_published_sync_is_not_published_again_for_an_hour() {
        let now = Utc::now();
        let due = state(now, 1, Some(25));
        assert!(!tag_sync_due(&due, DAY, Some(now - TimeDelta::minutes(10))));
        assert!(tag_sync_due(&due, DAY, Some(now - TimeDelta::minutes(61))));
        // Published before the last recorded sync: that one ran, this one is due anew.
        assert!(tag_sync_due(&due, DAY, Some(now - TimeDelta::hours(26))));
    }
}
