//! Tenant supervisors under actix supervision. `actix::Supervisor` does not catch panics, so a supervisor
//! runs each schedule check in a task of its own, and when that task panics it stops itself: the actix
//! Supervisor restarts it, and the supervisor waits a growing backoff before checking again. The panic is
//! injected with the test-only fault setting `Settings::testing.panic_schedule_checks_of_tenant`, set in
//! code (no real panic is known in the check any more): the checks of the tenant bearing that name panic
//! inside the check's task, as a bug would, so renaming the victim breaks it and renaming it back
//! repairs it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entrasync::store::schedule;

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
    let mut settings = world.settings(&[
        ("ENTRASYNC_SYNC_DELTA_INTERVAL_SECS", "2"),
        ("ENTRASYNC_LOG_FILTER", "error"),
        ("ENTRASYNC_SYNC_DELETION_THRESHOLD_PERCENT", "100"),
    ]);
    // Fault injection is set in code only: no configuration file key or variable reaches it.
    settings.testing.panic_schedule_checks_of_tenant = Some(PANICKING_NAME.to_owned());
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
    let broken = Instant::now();
    let metrics = app.metrics.clone();
    let panicked = |times: u64| {
        let metrics = metrics.clone();
        move || {
            let metrics = metrics.clone();
            async move { supervisor_panics(&metrics) >= times }
        }
    };
    // The first check within ~2 s (the delta interval), the restart after its backoff.
    assert!(eventually(Duration::from_secs(30), panicked(1)).await, "no panic after the victim was broken");
    // A supervisor runs one check at a time, so everything it enqueued came before its first panic.
    let first_panic_seen = Utc::now();
    assert!(eventually(Duration::from_secs(30), panicked(2)).await, "panics: {}", supervisor_panics(&app.metrics));

    // The panics are contained: the bystander (its supervisor on the same Arbiter) keeps its cadence…
    let bystander_ran = || {
        let pool = pool.clone();
        async move { user_deltas(&pool, bystander).await.iter().filter(|s| **s > broken_at).count() >= 3 }
    };
    assert!(
        eventually(Duration::from_secs(60), bystander_ran).await,
        "the bystander ran {} deltas in the 60 s after the victim's supervisor began to panic",
        user_deltas(&pool, bystander).await.iter().filter(|s| **s > broken_at).count()
    );
    let panics = supervisor_panics(&app.metrics);
    let window = broken.elapsed().as_secs_f64();
    let repaired_at = Utc::now();
    // …and the victim, whose checks panic before publishing anything, publishes nothing. (Its runs are not
    // the measure: a job published just before the rename may start any time later on a busy machine.)
    let victim_schedule = schedule::load(&pool, victim).await.expect("schedule").expect("victim exists");
    let late: Vec<_> =
        victim_schedule.classes.iter().filter(|c| c.last_enqueued_at.is_some_and(|at| at > first_panic_seen)).collect();
    assert!(
        late.is_empty(),
        "the victim's checks panic, yet it enqueued jobs after its first panic (seen by {first_panic_seen}): {late:?}"
    );
    // Backoff, not a restart storm: restarts wait a doubling backoff from at least 1 s (1, 2, 4 … s), so the
    // n-th panic comes at least 2^(n−1) − 1 s after the first, and a window of W s holds at most
    // ⌊log2(W + 1)⌋ + 1 of them; one more for a check under way.
    let at_most = (window + 1.0).log2().floor() as u64 + 2;
    assert!(
        (2..=at_most).contains(&panics),
        "expected 2 to {at_most} supervisor panics in {window:.1} s with a doubling backoff, got {panics}"
    );

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
