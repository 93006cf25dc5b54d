//! Which runs of a tenant are due now, and when to look again.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::quarantine::FailurePolicy;
use crate::model::{ObjectClass, SyncMode};
use crate::store::schedule::{ClassState, TenantSchedule};

/// The scheduling rules, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub delta_interval: Duration,
    pub full_scan_interval: Duration,
    /// Graph's delta tokens live about 7 days: a cursor older than this gets a full scan instead.
    pub delta_link_max_age: Duration,
    /// A full job enqueued this long ago without a result is enqueued again (it may have been lost).
    pub full_requeue_after: Duration,
    /// A delta job no run has taken yet holds back the next one this long (then it may have been lost).
    pub delta_requeue_after: Duration,
    /// The longest a supervisor sleeps, so operator changes (the full-scan flag) are seen soon.
    pub max_sleep: Duration,
    pub failures: FailurePolicy,
}

impl Policy {
    pub fn new(delta_interval: Duration, full_scan_interval: Duration) -> Policy {
        Policy {
            delta_interval,
            full_scan_interval,
            delta_link_max_age: Duration::from_secs(6 * 24 * 3600),
            full_requeue_after: delta_interval.max(Duration::from_secs(3600)),
            delta_requeue_after: delta_interval.saturating_mul(3),
            max_sleep: delta_interval.min(Duration::from_secs(60)),
            failures: FailurePolicy::default(),
        }
    }
}

/// A job to publish now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassPlan {
    pub class: ObjectClass,
    pub mode: SyncMode,
    pub reason: &'static str,
}

/// The jobs due now and how long to sleep before deciding again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPlan {
    pub due: Vec<ClassPlan>,
    pub next_check: Duration,
}

/// Decides for every class of one tenant.
pub fn plan(schedule: &TenantSchedule, policy: &Policy) -> TenantPlan {
    let schedule = &not_after_now(schedule);
    let now = schedule.now;
    let mut due = Vec::new();
    let mut wake = after(now, policy.max_sleep);
    let disabled = schedule.quarantined_at.is_some_and(|since| now - since >= delta(policy.failures.disable_after));
    if schedule.enabled && !disabled {
        for class in &schedule.classes {
            match decide(schedule, class, policy) {
                Decision::Enqueue(mode, reason) => due.push(ClassPlan { class: class.class, mode, reason }),
                Decision::WaitUntil(at) => wake = wake.min(at),
            }
        }
    }
    let next_check = (wake - now).to_std().unwrap_or_default().clamp(Duration::from_secs(1), policy.max_sleep);
    TenantPlan { due, next_check }
}

enum Decision {
    Enqueue(SyncMode, &'static str),
    WaitUntil(DateTime<Utc>),
}

fn decide(schedule: &TenantSchedule, class: &ClassState, policy: &Policy) -> Decision {
    let now = schedule.now;
    if class.running {
        // The running round is the run; a check one interval later decides the next.
        return Decision::WaitUntil(after(now, policy.delta_interval));
    }
    if class.consecutive_failures > 0 {
        if let Some(failed_at) = class.last_failure_at {
            let retry_at =
                after(failed_at, policy.failures.retry_delay(class.consecutive_failures, policy.delta_interval));
            if now < retry_at {
                return Decision::WaitUntil(retry_at);
            }
        }
    }
    if let Some((needed_since, reason)) = full_scan_reason(schedule, class, policy) {
        // Pending until a run taken after the enqueue has ended (or failed): a run interrupted by a lost
        // lock, or one that resumed a delta run and ended as delta, leaves the full scan still needed.
        //
        // A resumed run keeps its first start, so a job that resumed it shows as a write to the run after
        // the enqueue. Such a run that nobody runs now (no lock) and that stays silent for
        // `delta_requeue_after` lost its job (e.g. a copy acknowledged as a duplicate while the run was held,
        // then the holder lost its lock and could not give its own delivery back): not pending either.
        let pending = class.last_full_enqueued_at.filter(|enqueued| {
            let failed_since = class.last_failure_at.is_some_and(|failed| failed >= *enqueued);
            let touched_since = class.latest_run_touched_at.is_some_and(|touched| touched >= *enqueued);
            let started_since = class.latest_run_started_at.is_some_and(|started| started >= *enqueued);
            let ended_since = class.latest_run_ended && (started_since || touched_since);
            let abandoned = touched_since
                && !class.latest_run_ended
                && class
                    .latest_run_touched_at
                    .is_some_and(|touched| now - touched >= delta(policy.delta_requeue_after));
            *enqueued >= needed_since
                && !failed_since
                && !ended_since
                && !abandoned
                && now - *enqueued < delta(policy.full_requeue_after)
        });
        return match pending {
            // A full job is queued or running: a delta job now would only wait behind it. Checked again
            // each interval, in case its run is abandoned.
            Some(enqueued) => {
                Decision::WaitUntil(after(enqueued, policy.full_requeue_after).min(after(now, policy.delta_interval)))
            }
            None => Decision::Enqueue(SyncMode::Full, reason),
        };
    }
    // While the last job waits in the queue (every worker busy, e.g. rounds in Graph backoff), another
    // would only queue behind it and run back to back with it.
    let untaken = class.last_enqueued_at.filter(|enqueued| {
        !class.last_job_taken
            && class.latest_run_started_at.is_none_or(|started| started < *enqueued)
            && now - *enqueued < delta(policy.delta_requeue_after)
    });
    if let Some(enqueued) = untaken {
        return Decision::WaitUntil(after(enqueued, policy.delta_requeue_after).min(after(now, policy.delta_interval)));
    }
    match class.last_enqueued_at.map(|last| after(last, policy.delta_interval)) {
        Some(next) if next > now => Decision::WaitUntil(next),
        _ => Decision::Enqueue(SyncMode::Delta, "delta interval elapsed"),
    }
}

/// Why this class needs a full scan, and since when; the latest reason counts.
fn full_scan_reason(
    schedule: &TenantSchedule,
    class: &ClassState,
    policy: &Policy,
) -> Option<(DateTime<Utc>, &'static str)> {
    let mut reasons = Vec::new();
    if !class.has_delta_link {
        reasons.push((DateTime::<Utc>::MIN_UTC, "no delta cursor yet"));
    }
    if schedule.full_scan_next_run && class.last_full_scan_at.is_none_or(|done| done < schedule.full_scan_requested_at)
    {
        reasons.push((schedule.full_scan_requested_at, "full scan requested"));
    }
    if let Some(at) = class.delta_link_at {
        let expires = after(at, policy.delta_link_max_age);
        if expires <= schedule.now {
            reasons.push((expires, "delta cursor older than 6 days"));
        }
    }
    match class.last_full_scan_at.map(|done| after(done, policy.full_scan_interval)) {
        Some(next) if next <= schedule.now => reasons.push((next, "periodic full scan")),
        None if class.has_delta_link => reasons.push((DateTime::<Utc>::MIN_UTC, "no full scan recorded")),
        _ => {}
    }
    reasons.into_iter().max_by_key(|(since, _)| *since)
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// `at + duration`, saturating at the end of chrono's range instead of panicking ("never" in practice).
fn after(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    at.checked_add_signed(delta(duration)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The schedule with every stored timestamp later than `now` read as `now`. They are all written from
/// the database's clock, which `now` also comes from, so a later one is a clock stepped back or a damaged
/// (hand-edited) row; taken at face value, one near the end of time would stop the class's runs for good.
/// Read as `now`, the class waits at most one interval, and the next enqueue or run rewrites the row.
fn not_after_now(schedule: &TenantSchedule) -> Cow<'_, TenantSchedule> {
    let now = schedule.now;
    let late = |at: &Option<DateTime<Utc>>| at.is_some_and(|at| at > now);
    let class_late = |c: &ClassState| {
        [c.delta_link_at, c.last_full_scan_at, c.last_enqueued_at, c.last_full_enqueued_at, c.last_failure_at]
            .iter()
            .any(late)
    };
    if schedule.full_scan_requested_at <= now
        && !late(&schedule.quarantined_at)
        && !schedule.classes.iter().any(class_late)
    {
        return Cow::Borrowed(schedule);
    }
    let mut fixed = schedule.clone();
    let clamp = |field: &str, class: Option<ObjectClass>, at: &mut DateTime<Utc>| {
        if *at > now {
            tracing::warn!(
                entra_tenant_id = %schedule.entra_tenant_id,
                class = class.map(entrasync_model::ObjectClass::as_str),
                field,
                stored = %at,
                %now,
                "stored schedule timestamp is in the future; treating it as now"
            );
            *at = now;
        }
    };
    clamp("full_scan_requested_at", None, &mut fixed.full_scan_requested_at);
    if let Some(at) = fixed.quarantined_at.as_mut() {
        clamp("quarantined_at", None, at);
    }
    for c in &mut fixed.classes {
        let class = Some(c.class);
        let fields = [
            ("delta_link_at", &mut c.delta_link_at),
            ("last_full_scan_at", &mut c.last_full_scan_at),
            ("last_enqueued_at", &mut c.last_enqueued_at),
            ("last_full_enqueued_at", &mut c.last_full_enqueued_at),
            ("last_failure_at", &mut c.last_failure_at),
        ];
        for (field, at) in fields {
            if let Some(at) = at.as_mut() {
                clamp(field, class, at);
            }
        }
    }
    Cow::Owned(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn policy() -> Policy {
        Policy::new(Duration::from_secs(300), Duration::from_secs(7 * 86_400))
    }

    /// A tenant synced a minute ago, whose user class had its last delta job at `last_delta`.
    fn synced(now: i64, last_delta: i64) -> TenantSchedule {
        let class = ClassState {
            class: ObjectClass::User,
            has_delta_link: true,
            delta_link_at: Some(at(now - 60)),
            last_full_scan_at: Some(at(now - 86_400)),
            last_enqueued_at: Some(at(last_delta)),
            last_full_enqueued_at: Some(at(now - 86_400)),
            consecutive_failures: 0,
            last_failure_at: None,
            running: false,
            latest_run_started_at: Some(at(now - 60)),
            latest_run_ended: true,
            latest_run_touched_at: Some(at(now - 59)),
            last_job_taken: false,
        };
        TenantSchedule {
            now: at(now),
            entra_tenant_id: uuid::Uuid::nil(),
            enabled: true,
            full_scan_next_run: false,
            full_scan_requested_at: at(0),
            quarantined_at: None,
            classes: vec![class],
        }
    }

    fn modes(plan: &TenantPlan) -> Vec<SyncMode> {
        plan.due.iter().map(|p| p.mode).collect()
    }

    #[test]
    fn delta_is_due_once_per_interval() {
        let waiting = plan(&synced(1000, 1000 - 299), &policy());
        assert!(waiting.due.is_empty());
        assert_eq!(waiting.next_check, Duration::from_secs(1));
        let due = plan(&synced(1000, 1000 - 300), &policy());
        assert_eq!(modes(&due), vec![SyncMode::Delta]);
    }

    #[test]
    fn a_delta_job_no_run_has_taken_holds_back_the_next_until_it_may_be_lost() {
        // The last delta job went out at 1000 and no run started since: the queue is behind.
        let mut s = synced(1000 + 300, 1000);
        s.classes[0].latest_run_started_at = Some(at(990));
        assert!(plan(&s, &policy()).due.is_empty(), "a second job would queue behind the first");
        s.now = at(1000 + 3 * 300);
        assert_eq!(modes(&plan(&s, &policy())), vec![SyncMode::Delta], "after three intervals it may be lost");
        // Taken by a run: the next is due after the interval as always.
        s.now = at(1000 + 300);
        s.classes[0].latest_run_started_at = Some(at(1001));
        assert_eq!(modes(&plan(&s, &policy())), vec![SyncMode::Delta]);
        // The run that took it started (by the worker's clock) before the enqueue was stamped (after the
        // broker's confirm) but recorded the job: taken all the same.
        s.classes[0].latest_run_started_at = Some(at(999));
        s.classes[0].last_job_taken = true;
        assert_eq!(modes(&plan(&s, &policy())), vec![SyncMode::Delta], "the run recorded the job");
        s.classes[0].last_job_taken = false;
        // A class that never ran (its first full job failed to publish, say) is not held back.
        s.classes[0].latest_run_started_at = None;
        s.classes[0].last_enqueued_at = None;
        assert_eq!(modes(&plan(&s, &policy())), vec![SyncMode::Delta]);
    }

    #[test]
    fn a_full_job_whose_run_ended_without_a_full_scan_is_enqueued_again_at_once() {
        let mut s = synced(1000, 0);
        s.classes[0].has_delta_link = false;
        s.classes[0].last_full_scan_at = None;
        s.classes[0].last_full_enqueued_at = Some(at(900));
        // Its run is still open, or an older run ended: the job is pending.
        s.classes[0].latest_run_started_at = Some(at(910));
        s.classes[0].latest_run_ended = false;
        assert!(plan(&s, &policy()).due.is_empty(), "the run of the queued job is open");
        s.classes[0].latest_run_started_at = Some(at(890));
        s.classes[0].latest_run_ended = true;
        s.classes[0].latest_run_touched_at = Some(at(895));
        assert!(plan(&s, &policy()).due.is_empty(), "a run that started and ended before the enqueue did not take it");
        // The run that took it ended (interrupted, or resumed as delta) and no full scan is recorded.
        s.classes[0].latest_run_started_at = Some(at(910));
        assert_eq!(modes(&plan(&s, &policy())), vec![SyncMode::Full], "not an hour later");
    }

    #[test]
    fn a_full_job_whose_resumed_run_went_silent_without_its_lock_is_enqueued_again() {
        // The chaos run's stall: the run started before the enqueue, the job resumed it (a write after the
        // enqueue), then the job was lost; nobody holds the lock and the run stays open. The policy's
        // interval is 300 s, so "silent" means 900 s.
        let mut s = synced(5000, 0);
        s.classes[0].has_delta_link = false;
        s.classes[0].last_full_scan_at = None;
        s.classes[0].last_full_enqueued_at = Some(at(3000));
        s.classes[0].latest_run_started_at = Some(at(100));
        s.classes[0].latest_run_ended = false;
        s.classes[0].latest_run_touched_at = Some(at(2990));
        assert!(plan(&s, &policy()).due.is_empty(), "not taken since the enqueue: the job waits in the queue");
        s.classes[0].latest_run_touched_at = Some(at(4500));
        assert!(plan(&s, &policy()).due.is_empty(), "resumed and written to 500 s ago: the job is running");
        s.classes[0].latest_run_touched_at = Some(at(4100));
        assert_eq!(modes(&plan(&s, &policy())), vec![SyncMode::Full], "resumed, then silent for three intervals");
        s.classes[0].running = true;
        assert!(plan(&s, &policy()).due.is_empty(), "a holder of the lock is running it");
        s.classes[0].running = false;
        // Closed by the orphan sweep after the job resumed it: ended since the enqueue.
        s.classes[0].latest_run_ended = true;
        s.classes[0].latest_run_touched_at = Some(at(4990));
        assert_eq!(modes(&plan(&s, &policy())), vec![SyncMode::Full], "its run was closed after the job took it");
    }

    #[test]
    fn a_new_class_gets_one_full_scan_and_no_duplicate_while_it_is_pending() {
        let mut s = synced(1000, 0);
        s.classes[0].has_delta_link = false;
        s.classes[0].delta_link_at = None;
        s.classes[0].last_full_scan_at = None;
        s.classes[0].last_full_enqueued_at = None;
        assert_eq!(modes(&plan(&s, &policy())), vec![SyncMode::Full]);
        s.classes[0].last_full_enqueued_at = Some(at(990));
        assert!(plan(&s, &policy()).due.is_empty(), "the queued full job covers it");
        s.classes[0].consecutive_failures = 1;
        s.classes[0].last_failure_at = Some(at(995));
        s.now = at(995 + 300);
        assert_eq!(modes(&plan(&s, &policy())), vec![SyncMode::Full], "a failed full is retried after an interval");
    }

    #[test]
    fn the_full_scan_flag_old_cursors_and_the_weekly_scan_ask_for_full() {
        let mut s = synced(1000, 0);
        s.full_scan_next_run = true;
        s.full_scan_requested_at = at(900);
        assert_eq!(plan(&s, &policy()).due[0].reason, "full scan requested");

        let mut s = synced(10 * 86_400, 0);
        s.classes[0].delta_link_at = Some(at(10 * 86_400 - 6 * 86_400 - 1));
        assert_eq!(plan(&s, &policy()).due[0].reason, "delta cursor older than 6 days");

        let mut s = synced(10 * 86_400, 0);
        s.classes[0].last_full_scan_at = Some(at(10 * 86_400 - 7 * 86_400));
        assert_eq!(plan(&s, &policy()).due[0].reason, "periodic full scan");
    }

    #[test]
    fn a_running_class_gets_no_job() {
        let mut s = synced(1000, 0);
        s.classes[0].running = true;
        assert!(plan(&s, &policy()).due.is_empty());
    }

    #[test]
    fn quarantined_tenants_back_off_and_are_disabled_after_four_weeks() {
        let mut s = synced(100_000, 0);
        s.quarantined_at = Some(at(50_000));
        s.classes[0].consecutive_failures = 7;
        s.classes[0].last_failure_at = Some(at(100_000 - 1000));
        // 7 failures: 300 s * 2^3 = 2400 s after the last failure.
        assert!(plan(&s, &policy()).due.is_empty());
        s.now = at(100_000 - 1000 + 2400);
        assert_eq!(modes(&plan(&s, &policy())), vec![SyncMode::Delta]);
        s.quarantined_at = Some(s.now - TimeDelta::days(28));
        assert!(plan(&s, &policy()).due.is_empty(), "disabled after four weeks");
    }

    #[test]
    fn a_far_future_last_enqueue_is_read_as_now_instead_of_overflowing() {
        let end_of_time = DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(1);
        let mut s = synced(1000, 0);
        s.classes[0].last_enqueued_at = Some(end_of_time);
        let waiting = plan(&s, &policy());
        assert!(waiting.due.is_empty(), "as if enqueued just now");
        assert_eq!(waiting.next_check, policy().max_sleep);
        // One interval later the class is due again (and the enqueue rewrites the row).
        s.now = at(1000 + 300);
        s.classes[0].last_enqueued_at = Some(at(1000));
        s.classes[0].latest_run_started_at = Some(at(1001));
        assert_eq!(modes(&plan(&s, &policy())), vec![SyncMode::Delta]);
    }

    #[test]
    fn no_stored_timestamp_or_policy_duration_can_overflow() {
        let end_of_time = DateTime::<Utc>::MAX_UTC;
        let mut s = synced(1000, 0);
        s.full_scan_next_run = true;
        s.full_scan_requested_at = end_of_time;
        s.quarantined_at = Some(end_of_time);
        let class = &mut s.classes[0];
        class.delta_link_at = Some(end_of_time);
        class.last_full_scan_at = Some(end_of_time);
        class.last_enqueued_at = Some(end_of_time);
        class.last_full_enqueued_at = Some(end_of_time);
        class.consecutive_failures = u32::MAX;
        class.last_failure_at = Some(end_of_time);
        for policy in [policy(), Policy::new(Duration::MAX, Duration::MAX)] {
            let mut s = s.clone();
            plan(&s, &policy);
            s.classes[0].running = true;
            plan(&s, &policy);
            s.now = DateTime::<Utc>::MAX_UTC;
            plan(&s, &policy);
        }
    }

    #[test]
    fn a_disabled_tenant_gets_nothing() {
        let mut s = synced(1000, 0);
        s.enabled = false;
        assert!(plan(&s, &policy()).due.is_empty());
    }
}
