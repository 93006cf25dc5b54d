//! Naming rules, label bounds and the behaviour of the typed event API.

use std::time::Duration;

use uuid::Uuid;

use super::*;
use crate::model::{ObjectClass, RunStatus, SyncMode};

/// Label names a family may use; anything else (an object id, an error text) needs a review here.
const BOUNDED_LABELS: &[&str] = &[
    "tenant", "class", "mode", "status", "outcome", "code", "cause", "queue", "state", "actor", "source", "name",
    "cloud", "version",
];

/// The value of the sample `name{labels}` in the text format, if present.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = if labels.is_empty() { format!("{name} ") } else { format!("{name}{{{labels}}} ") };
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

#[test]
fn families_follow_prometheus_naming_conventions() {
    let metrics = Metrics::new();
    assert!(metrics.families().len() >= 25, "{}", metrics.families().len());
    let mut names = std::collections::HashSet::new();
    for family in metrics.families() {
        let name = &family.name;
        assert!(names.insert(name.clone()), "{name} declared twice");
        assert!(name.starts_with("entrasync_"), "{name}");
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{name}");
        assert!(!family.help.is_empty() && !family.help.ends_with('.'), "{name}: help text");
        match family.kind {
            Kind::Counter => assert!(name.ends_with("_total"), "counter {name} must end in _total"),
            Kind::Histogram => assert!(name.ends_with("_seconds"), "histogram {name} must be in seconds"),
            Kind::Gauge => assert!(!name.ends_with("_total"), "gauge {name} must not end in _total"),
        }
        // Base units only: no milliseconds, minutes or bytes multiples.
        for unit in ["_ms", "_millis", "_minutes", "_hours", "_kb", "_mb"] {
            assert!(!name.contains(unit), "{name} uses a non-base unit");
        }
        for label in &family.labels {
            assert!(BOUNDED_LABELS.contains(&label.as_str()), "{name} has unreviewed label {label}");
        }
    }
}

#[test]
fn rendered_text_carries_help_and_type_for_every_family_with_series() {
    let metrics = Metrics::new();
    let tenant = Uuid::new_v4();
    let run = metrics.sync.run_started(tenant, ObjectClass::User, SyncMode::Full);
    run.finished(RunStatus::Success, &RunTotals { pages: 1, changed: 1, ..RunTotals::default() });
    metrics.sync.delta_reset(tenant, ObjectClass::User);
    metrics.sync.set_delta_interval(Duration::from_secs(300));
    metrics.graph.request_finished(tenant, GraphTarget::Delta(ObjectClass::User), Some(200), Duration::from_millis(80));
    metrics.graph.retry_waited(tenant, GraphTarget::Token, WaitCause::Throttled, Duration::from_secs(1));
    metrics.graph.budget_spent(tenant, 2.0);
    metrics.graph.budget_waited(tenant, Duration::from_millis(5));
    metrics.graph.set_budget_rate(tenant, 280.0);
    metrics.workers.replace_queues(&[QueueSample { queue: QueueKind::Dead, messages: 0, consumers: 0 }]);
    metrics.workers.job_started(ObjectClass::Group).finished(JobOutcome::Acked);
    metrics.workers.mailbox_waited(ActorKind::SyncWorker, Duration::from_millis(1));
    metrics.tenants.replace_tenants(&[TenantSample {
        tenant,
        name: "Contoso".to_owned(),
        cloud: "global".to_owned(),
        state: TenantState::Enabled,
    }]);
    metrics.tenants.replace_freshness(&[FreshnessSample {
        tenant,
        class: ObjectClass::User,
        last_success_unix: Some(1.7e9),
        staleness_seconds: 12.0,
        delta_cursor_age_seconds: Some(12.0),
        held_deletions: 0,
        last_run_seconds: Some(3.0),
    }]);
    metrics.tenants.refreshed(StateSource::Postgres, true);

    let text = metrics.render();
    for family in metrics.families() {
        assert!(text.contains(&format!("# HELP {} ", family.name)), "no HELP for {}\n{text}", family.name);
        assert!(
            text.contains(&format!("# TYPE {} {}\n", family.name, family.kind.as_str())),
            "no TYPE for {}",
            family.name
        );
    }
    assert_eq!(sample(&text, "entrasync_build_info", &format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))), Some(1.0));
}

#[test]
fn a_run_tracker_counts_progress_once_and_leaves_the_in_progress_gauge() {
    let metrics = Metrics::new();
    let tenant = Uuid::new_v4();
    let t = labels::tenant(tenant);
    let objects = |outcome: &str| {
        sample(
            &metrics.render(),
            "entrasync_sync_objects_total",
            &format!("class=\"user\",outcome=\"{outcome}\",tenant=\"{t}\""),
        )
    };
    let in_progress = || {
        sample(&metrics.render(), "entrasync_sync_runs_in_progress", "class=\"user\",mode=\"delta\"").unwrap_or(-1.0)
    };

    let mut run = metrics.sync.run_started(tenant, ObjectClass::User, SyncMode::Delta);
    assert_eq!(in_progress(), 1.0);
    run.progress(&RunTotals { pages: 1, changed: 10, unchanged: 90, ..RunTotals::default() });
    assert_eq!(objects("changed"), Some(10.0));
    run.progress(&RunTotals { pages: 2, changed: 15, unchanged: 185, deleted: 1, filtered: 2 });
    run.finished(RunStatus::Warning, &RunTotals { pages: 2, changed: 15, unchanged: 185, deleted: 1, filtered: 2 });
    assert_eq!(objects("changed"), Some(15.0), "cumulative totals are not added twice");
    assert_eq!(objects("unchanged"), Some(185.0));
    assert_eq!(objects("deleted"), Some(1.0));
    assert_eq!(objects("filtered"), Some(2.0));
    assert_eq!(in_progress(), 0.0);
    let text = metrics.render();
    let runs = format!("class=\"user\",mode=\"delta\",status=\"warning\",tenant=\"{t}\"");
    assert_eq!(sample(&text, "entrasync_sync_runs_total", &runs), Some(1.0));
    assert_eq!(sample(&text, "entrasync_sync_pages_total", &format!("class=\"user\",tenant=\"{t}\"")), Some(2.0));
    assert_eq!(
        sample(&text, "entrasync_sync_run_duration_seconds_count", "class=\"user\",mode=\"delta\",status=\"warning\""),
        Some(1.0)
    );

    // A resumed run counts only what happens after its checkpoint; an aborted one leaves no trace.
    let resumed = RunTotals { pages: 5, changed: 50, ..RunTotals::default() };
    let mut run = metrics.sync.run_resumed(tenant, ObjectClass::User, SyncMode::Delta, resumed);
    run.progress(&RunTotals { pages: 6, changed: 53, ..RunTotals::default() });
    drop(run);
    assert_eq!(objects("changed"), Some(18.0));
    assert_eq!(in_progress(), 0.0, "an aborted round is no longer in progress");
}

#[test]
fn job_trackers_follow_deliveries_until_settled() {
    let metrics = Metrics::new();
    let in_flight = || sample(&metrics.render(), "entrasync_worker_jobs_in_flight", "class=\"device\"").unwrap_or(-1.0);
    assert_eq!(in_flight(), 0.0, "present before the first job");
    let first = metrics.workers.job_started(ObjectClass::Device);
    let second = metrics.workers.job_started(ObjectClass::Device);
    assert_eq!(in_flight(), 2.0);
    first.finished(JobOutcome::DeadLettered);
    drop(second);
    assert_eq!(in_flight(), 0.0);
    let text = metrics.render();
    assert_eq!(sample(&text, "entrasync_worker_jobs_total", "class=\"device\",outcome=\"dead_lettered\""), Some(1.0));
    assert_eq!(sample(&text, "entrasync_worker_jobs_total", "class=\"device\",outcome=\"requeued\""), None);
}

#[test]
fn snapshots_replace_series_and_forget_removed_tenants() {
    let metrics = Metrics::new();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let tenant = |id, state| TenantSample { tenant: id, name: "n".to_owned(), cloud: "global".to_owned(), state };
    metrics.tenants.replace_tenants(&[tenant(a, TenantState::Enabled), tenant(b, TenantState::Quarantined)]);
    let text = metrics.render();
    assert_eq!(sample(&text, "entrasync_tenants", "state=\"quarantined\""), Some(1.0));
    assert_eq!(sample(&text, "entrasync_tenants", "state=\"blocked\""), Some(0.0));
    let b_label = labels::tenant(b);
    assert_eq!(
        sample(&text, "entrasync_tenant_state", &format!("state=\"quarantined\",tenant=\"{b_label}\"")),
        Some(1.0)
    );

    metrics.tenants.replace_tenants(&[tenant(a, TenantState::Enabled)]);
    let text = metrics.render();
    assert!(!text.contains(&b_label), "a removed tenant's series are gone");
    assert_eq!(sample(&text, "entrasync_tenants", "state=\"enabled\""), Some(1.0));

    metrics.tenants.clear_postgres_state();
    assert!(!metrics.render().contains("entrasync_tenant_state{"), "absent, not stale, when Postgres is unreadable");
}

#[test]
fn graph_requests_are_labelled_by_target_and_bounded_code() {
    let metrics = Metrics::new();
    let tenant = Uuid::new_v4();
    let t = labels::tenant(tenant);
    let target = GraphTarget::Delta(ObjectClass::Group);
    metrics.graph.request_finished(tenant, target, Some(429), Duration::from_millis(10));
    metrics.graph.request_finished(tenant, target, Some(429), Duration::from_millis(10));
    metrics.graph.request_finished(tenant, target, None, Duration::from_secs(30));
    metrics.graph.retry_waited(tenant, target, WaitCause::Throttled, Duration::from_millis(1500));
    metrics.graph.budget_spent(tenant, f64::NAN);
    let text = metrics.render();
    assert_eq!(
        sample(&text, "entrasync_graph_requests_total", &format!("class=\"group\",code=\"429\",tenant=\"{t}\"")),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "entrasync_graph_requests_total", &format!("class=\"group\",code=\"error\",tenant=\"{t}\"")),
        Some(1.0)
    );
    let waits = format!("cause=\"throttled\",class=\"group\",tenant=\"{t}\"");
    assert_eq!(sample(&text, "entrasync_graph_retry_wait_seconds_total", &waits), Some(1.5));
    assert!(!text.contains("entrasync_graph_rate_budget_spent_units_total{"), "NaN is not counted");
}
