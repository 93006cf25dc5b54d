//! Graph faults during a round: a 410 sync reset and an expired token (`syncStateNotFound`) restart the
//! round as a full scan with the reason in the history; a 429 storm slows the round but it completes.

use entrasync::model::{ObjectClass, RunStatus, SyncMode};
use entrasync::store::runs;
use graph_sim::faults::{FaultKind, FaultRule, FaultTrigger, RetryAfter};
use graph_sim::settings::SettingsPatch;

use crate::sync_support::{row_writes, spec, SyncTenant, SyncWorld};

fn fault(world: &SyncWorld, tenant: &SyncTenant, kind: FaultKind, trigger: FaultTrigger, path: &str, limit: u64) {
    world
        .sim
        .state()
        .add_fault(FaultRule {
            tenant: Some(tenant.sim_tenant.clone()),
            kind,
            trigger,
            path_contains: Some(path.to_owned()),
            limit: Some(limit),
        })
        .expect("fault");
}

/// After the reset round, the store must hold the truth; deletions seen only as "absent from the
/// listing" cannot be told soft from permanent, so soft deletions are checked as "not live".
async fn restarted_as_full_and_converged(world: &SyncWorld, tenant: &SyncTenant, expected_reason: &str) {
    for class in ObjectClass::ALL {
        let report = world.round(tenant, class).await;
        assert_eq!((report.mode, report.status), (SyncMode::Full, RunStatus::Success), "{class}: {report:?}");
        let reason = report.reason.clone().unwrap_or_default();
        assert!(reason.contains("restarted as a full scan") && reason.contains(expected_reason), "{class}: {reason}");
        let client = world.pool.get().await.expect("connection");
        let recorded = runs::get(&client, report.run_id).await.expect("run").expect("run row");
        assert_eq!(
            (recorded.mode.as_str(), recorded.status.as_str()),
            ("full", "success"),
            "{class}: expected the history to record a successful full run"
        );
        assert_eq!(recorded.reason.as_deref(), Some(reason.as_str()), "{class}: the history says why");
        world.assert_converged(tenant, class, false).await;
    }
    // The new deltaLink works: the next round is a plain delta round.
    for report in world.round_all(tenant).await {
        assert_eq!(
            (report.mode, report.status),
            (SyncMode::Delta, RunStatus::Success),
            "expected the round after the restart to be a plain delta round: {report:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_sync_reset_restarts_the_round_as_full_and_converges() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(71, 150, 30, 40), 30).await;
    world.round_all(&tenant).await;
    world.mutate(&tenant, 71);
    for class in ObjectClass::ALL {
        let path = format!("{}/delta", class.graph_collection());
        fault(&world, &tenant, FaultKind::SyncReset, FaultTrigger::Always, &path, 1);
    }
    restarted_as_full_and_converged(&world, &tenant, "410").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_delta_token_restarts_the_round_as_full_and_converges() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(72, 150, 30, 40), 30).await;
    world
        .sim
        .state()
        .update_settings(
            &tenant.sim_tenant,
            &SettingsPatch { token_lifetime_secs: Some(3_600), ..SettingsPatch::default() },
        )
        .expect("settings");
    world.round_all(&tenant).await;
    world.mutate(&tenant, 72);
    world.sim.state().advance_clock(chrono::Duration::hours(2));
    restarted_as_full_and_converged(&world, &tenant, "syncStateNotFound").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_slows_the_round_but_it_completes() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(73, 200, 20, 20), 20).await;
    for retry_after in [RetryAfter::Fraction(0.05), RetryAfter::Missing, RetryAfter::Seconds(1)] {
        fault(&world, &tenant, FaultKind::Throttle { retry_after }, FaultTrigger::EveryNth { n: 2 }, "/delta", 6);
    }
    let mut throttled = 0;
    for report in world.round_all(&tenant).await {
        assert_eq!(report.status, RunStatus::Success, "expected the round to complete despite the 429s: {report:?}");
        throttled += report.counts.throttled_waits;
        let client = world.pool.get().await.expect("connection");
        let recorded = runs::get(&client, report.run_id).await.expect("run").expect("row");
        assert_eq!(recorded.counts.throttled_waits, report.counts.throttled_waits, "waits are in the history");
        assert_eq!(
            recorded.counts.graph_requests, report.counts.graph_requests,
            "expected the history to record the round's Graph requests"
        );
    }
    let counters = world.sim.state().tenant_counters(&tenant.sim_tenant).expect("counters");
    let sent = counters.by_status.get(&429).copied().unwrap_or(0);
    assert!(sent >= 6, "a storm happened: {counters:?}");
    assert_eq!(throttled, sent, "every 429 the emulator sent was waited out and recorded");
    for class in ObjectClass::ALL {
        world.assert_converged(&tenant, class, true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_page_fails_the_run_with_its_reason_and_leaves_the_store_untouched() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(74, 60, 10, 10), 20).await;
    world.round_all(&tenant).await;
    world.mutate(&tenant, 74);
    let before = world.row_versions(&tenant).await;
    fault(&world, &tenant, FaultKind::MalformedJson, FaultTrigger::Always, "users/delta", 1);
    let error = world.try_round(&world.request(&tenant, ObjectClass::User)).await.expect_err("a malformed page");
    assert!(error.to_string().contains("malformed page"), "expected the page named as malformed: {error}");
    assert_eq!(row_writes(&before, &world.row_versions(&tenant).await), 0, "a failed page must write nothing");
    let client = world.pool.get().await.expect("connection");
    let row = client
        .query_one(
            "SELECT status::text, coalesce(error, '') FROM sync_runs WHERE tenant_id = $1 AND object_class = 'user' \
             ORDER BY started_at DESC LIMIT 1",
            &[&tenant.tenant_id],
        )
        .await
        .expect("latest run");
    let (status, recorded): (String, String) = (row.get(0), row.get(1));
    assert_eq!(status, "failed", "expected the history to record the failure: {recorded}");
    assert!(recorded.contains("malformed page"), "expected the history to say why: {recorded}");
    // The fault is spent: the next round applies the mutations and converges.
    let report = world.round(&tenant, ObjectClass::User).await;
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    world.assert_converged(&tenant, ObjectClass::User, true).await;
}
