//! Tenant supervisors under actix supervision. `actix::Supervisor` does not catch panics, so a supervisor
//! runs each schedule check in a task of its own, and when that task panics it stops itself: the actix
//! Supervisor restarts it, and the supervisor waits a growing backoff before checking again. The panic is
//! injected with the fault setting `testing.panic_schedule_checks_of_tenant` (no real panic is known in
//! the check any more): the checks of the tenant bearing that name panic inside the check's task, as a
//! bug would, so renaming the victim breaks it and renaming it back repairs it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::service_support::World;
use crate::support::app::spawn_app;
use crate::support::eventually;

/// `entrasync_actor_restarts_total{actor="tenant_supervisor",cause="panic"}` as exported.
fn supervisor_panics(metrics: &entrasync::metrics::Metrics) -> u64 {
    metrics
        .render()
        .lines()
        .filter(|line| {
            line.starts_with("entrasync_actor_restarts_total{")
                && line.contains(r#"actor="tenant_supervisor""#)
                && line.contains(r#"cause="panic""#)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

/// Start times of the successful delta user runs of `tenant`.
async fn user_deltas(pool: &entrasync::store::Pool, tenant: i64) -> Vec<DateTime<Utc>> {
    let client = pool.get().await.expect("connection");
    client
        .query(
            "SELECT started_at FROM sync_runs WHERE tenant_id = $1 AND object_class = 'user' AND mode = 'delta'
             AND status = 'success' ORDER BY started_at",
            &[&tenant],
        )
        .await
        .expect("runs")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The name the fault setting makes panic.
const PANICKING_NAME: &str = "panicking tenant (fault injection)";

async fn rename(pool: &entrasync::store::Pool, tenant: i64, name: &str) {
    let client = pool.get().await.expect("connection");
    let updated =
        client.execute("UPDATE tenants SET name = $2 WHERE id = $1", &[&tenant, &name]).await.expect("rename tenant");
    assert_eq!(updated, 1, "tenant {tenant} exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_tenant_supervisor_is_restarted_with_backoff_and_resumes_scheduling() {
    let world = World::start().await;
    let victim = world.tenant(700, 20, 50).await.tenant_id;
    let bystander = world.tenant(701, 20, 50).await.tenant_id;
    let settings = world.settings(&[
        ("ENTRASYNC_SYNC_DELTA_INTERVAL_SECS", "2"),
        ("ENTRASYNC_LOG_FILTER", "error"),
        ("ENTRASYNC_SYNC_DELETION_THRESHOLD_PERCENT", "100"),
        ("ENTRASYNC_TESTING_PANIC_SCHEDULE_CHECKS_OF_TENANT", PANICKING_NAME),
    ]);
    let app = spawn_app(&settings).await;
    let pool = world.pool.clone();

    // Both tenants are in their delta cadence.
    let delta_cadence = || {
        let pool = pool.clone();
        async move { user_deltas(&pool, victim).await.len() >= 2 && user_deltas(&pool, bystander).await.len() >= 2 }
    };
    assert!(eventually(Duration::from_secs(90), delta_cadence).await, "no delta cadence");
    assert_eq!(supervisor_panics(&app.metrics), 0, "no panic before the victim is broken");

    // Break the victim: its next check panics, and so does every check after a restart.
    rename(&pool, victim, PANICKING_NAME).await;
    let broken_at = Utc::now();
    let metrics = app.metrics.clone();
    let restarted_twice = || {
        let metrics = metrics.clone();
        async move { supervisor_panics(&metrics) >= 2 }
    };
    // The first check within ~2 s (the delta interval), the restart after a 2 s backoff.
    assert!(eventually(Duration::from_secs(30), restarted_twice).await, "panics: {}", supervisor_panics(&app.metrics));

    // The panics are contained: the bystander (its supervisor on the same Arbiter) keeps its cadence, and
    // the victim, whose checks panic before publishing anything, gets no run.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let repaired_at = Utc::now();
    let bystander_runs = user_deltas(&pool, bystander).await;
    let bystander_during = bystander_runs.iter().filter(|s| **s > broken_at && **s < repaired_at).count();
    assert!(
        bystander_during >= 2,
        "the bystander ran {bystander_during} deltas while the victim's supervisor panicked"
    );
    let victim_late: Vec<_> =
        user_deltas(&pool, victim).await.into_iter().filter(|s| *s > broken_at + TimeDelta::seconds(3)).collect();
    assert!(victim_late.is_empty(), "the victim's checks panic, yet it ran deltas: {victim_late:?}");
    // Backoff, not a restart storm: 2 s, 4 s, 8 s… between restarts allows at most ~4 in this window.
    let panics = supervisor_panics(&app.metrics);
    let window = (repaired_at - broken_at).num_seconds();
    assert!((2..=5).contains(&panics), "{panics} supervisor panics in {window} s");

    // Repair the victim: the restarted supervisor (still the coordinator's, still holding the lease) resumes
    // scheduling within its backoff (at most 16 s here) and returns to one delta per interval.
    rename(&pool, victim, "tenant 700").await; // its name from `World::tenant`
    let resumed = || {
        let pool = pool.clone();
        async move { user_deltas(&pool, victim).await.iter().filter(|s| **s > repaired_at).count() >= 3 }
    };
    assert!(eventually(Duration::from_secs(60), resumed).await, "the victim's supervisor never resumed");
    let after: Vec<_> = user_deltas(&pool, victim).await.into_iter().filter(|s| *s > repaired_at).collect();
    for pair in after.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds() as f64 / 1000.0;
        // Interval (2 s) + the slack of service_fairness (1 s check granularity + 1.5 s delivery): back to
        // normal cadence, so the backoff was reset by the first successful check.
        assert!(gap <= 4.5, "after recovery the victim's deltas were {gap:.2} s apart: {after:?}");
    }
    let final_panics = supervisor_panics(&app.metrics);
    // One check may have been under way while the victim was repaired.
    assert!(final_panics <= panics + 1, "panics went on after the repair: {panics} → {final_panics}");
    app.handle.stop(true).await;
}
