//! Fairness, scaled down: one tenant's long full round (a bigger tenant whose every Graph response the
//! emulator delays) must not delay the other tenants' delta rounds by more than one interval. Run through
//! the in-process `Application`, so the real worker pool, prefetch and Arbiter layout is what is tested.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use graph_sim::faults::{FaultKind, FaultRule, FaultTrigger};

use crate::service_support::World;
use crate::support::app::spawn_app;
use crate::support::eventually;

const SMALL_TENANTS: u64 = 4;
/// The delta interval of the test (`sync.delta_interval_secs`).
const INTERVAL: Duration = Duration::from_secs(3);
/// Scheduling slack on top of the interval between two delta starts of one (tenant, class):
/// - up to 1 s from the supervisor's re-check granularity (`schedule::plan` never sleeps less than
///   1 s, so a check that wakes a few ms before the interval ends sleeps a whole second more);
/// - up to 1.5 s for publish → broker → delivery → tenant lookup, run lock and credential read → the
///   `started` row, on a loaded 2-core machine (idle it is ~0.1 s).
///
/// Interval + slack (5.5 s) stays below two intervals (6 s): "delayed by at most one interval" holds.
const SLACK: Duration = Duration::from_millis(2500);
/// Each Graph response of the big tenant takes this long: its full rounds page slowly.
const SLOW_MS: u64 = 400;

/// A stored run: (tenant, class, mode, status, started, finished).
struct Run {
    tenant: i64,
    class: String,
    mode: String,
    status: String,
    started: DateTime<Utc>,
    finished: Option<DateTime<Utc>>,
}

async fn runs(pool: &entrasync::store::Pool) -> Vec<Run> {
    let client = pool.get().await.expect("connection");
    let rows = client
        .query(
            "SELECT tenant_id, object_class::text, mode::text, status::text, started_at, finished_at FROM sync_runs
             ORDER BY started_at",
            &[],
        )
        .await
        .expect("runs");
    rows.iter()
        .map(|r| Run {
            tenant: r.get(0),
            class: r.get(1),
            mode: r.get(2),
            status: r.get(3),
            started: r.get(4),
            finished: r.get(5),
        })
        .collect()
}

fn secs(delta: TimeDelta) -> f64 {
    delta.num_milliseconds() as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_full_round_never_delays_other_tenants_deltas_by_more_than_an_interval() {
    let world = World::start().await;
    let mut small = Vec::new();
    for seed in 0..SMALL_TENANTS {
        small.push(world.tenant(500 + seed, 20, 50).await.tenant_id);
    }
    // 400 users in pages of 10 (plus 80 groups, 200 devices): ~40 slow pages, well over 16 s of user round.
    let big = world.tenant(600, 400, 10).await;
    world
        .sim
        .state()
        .add_fault(FaultRule {
            tenant: Some(big.sim_tenant.clone()),
            kind: FaultKind::Slow { delay_ms: SLOW_MS },
            trigger: FaultTrigger::Always,
            path_contains: None,
            limit: None,
        })
        .expect("slow fault");

    let interval = INTERVAL.as_secs().to_string();
    let settings = world.settings(&[
        ("ENTRASYNC_SYNC_DELTA_INTERVAL_SECS", interval.as_str()),
        ("ENTRASYNC_LOG_FILTER", "warn"),
        // Tiny tenants: the deletion guard has nothing to hold here.
        ("ENTRASYNC_SYNC_DELETION_THRESHOLD_PERCENT", "100"),
    ]);
    let app = spawn_app(&settings).await;

    // Wait for the big tenant's user full round to finish (it runs for many intervals).
    let pool = world.pool.clone();
    let big_user_done = || {
        let pool = pool.clone();
        async move {
            runs(&pool).await.iter().any(|r| r.tenant == big.tenant_id && r.class == "user" && r.status != "running")
        }
    };
    assert!(eventually(Duration::from_secs(180), big_user_done).await, "the big user round never finished");
    // Taken while the service still runs: a big round still running has its window end here.
    let snapshot_at = Utc::now();
    let all = runs(&world.pool).await;
    app.handle.stop(true).await;

    let mut checked_windows = 0;
    for class in ["user", "group", "device"] {
        let Some(big_run) = all.iter().find(|r| r.tenant == big.tenant_id && r.class == class && r.mode == "full")
        else {
            continue;
        };
        // The user round is over; a group or device round may still run: its window ends at the snapshot.
        let window_end = big_run.finished.unwrap_or(snapshot_at);
        // Every small tenant's deltas of this class have started by then.
        let mut deltas: BTreeMap<i64, Vec<DateTime<Utc>>> = BTreeMap::new();
        for run in all.iter().filter(|r| r.class == class && r.mode == "delta" && small.contains(&r.tenant)) {
            deltas.entry(run.tenant).or_default().push(run.started);
        }
        let Some(window_start) = small
            .iter()
            .map(|t| deltas.get(t).and_then(|s| s.first().copied()))
            .collect::<Option<Vec<_>>>()
            .and_then(|firsts| firsts.into_iter().max())
            .map(|latest_first| latest_first.max(big_run.started))
        else {
            assert!(class != "user", "small tenants ran no user deltas at all: {:?}", deltas);
            continue;
        };
        // The measured window is only meaningful if the big round ran through several intervals of it.
        let window = secs(window_end - window_start);
        if class == "user" {
            assert!(
                window >= 4.0 * INTERVAL.as_secs_f64(),
                "the big user round overlapped small deltas for only {window:.1} s; make it longer"
            );
        } else if window < 2.0 * INTERVAL.as_secs_f64() {
            continue;
        }
        checked_windows += 1;
        let bound = INTERVAL + SLACK;
        let mut widest = 0.0_f64;
        for tenant in &small {
            let starts = &deltas[tenant];
            let in_window = starts.iter().filter(|s| **s >= window_start && **s <= window_end).count();
            assert!(
                in_window as f64 >= window / (INTERVAL + SLACK).as_secs_f64() - 1.0,
                "{class}: tenant {tenant} ran {in_window} deltas in a {window:.1} s window"
            );
            // Gaps between consecutive starts that overlap the window, and the tail up to its end.
            let mut gaps: Vec<(DateTime<Utc>, DateTime<Utc>)> = starts
                .windows(2)
                .map(|pair| (pair[0], pair[1]))
                .filter(|(a, b)| *b > window_start && *a < window_end)
                .collect();
            if let Some(last) = starts.iter().rev().find(|s| **s <= window_end) {
                if starts.iter().all(|s| *s <= window_end) {
                    gaps.push((*last, window_end));
                }
            }
            for (a, b) in gaps {
                let gap = secs(b - a);
                widest = widest.max(gap);
                assert!(
                    gap <= bound.as_secs_f64(),
                    "{class}: tenant {tenant}'s deltas were {gap:.2} s apart (at {a}) while the big full round \
                     ran ({} .. {window_end}); allowed {:.1} s",
                    big_run.started,
                    bound.as_secs_f64()
                );
            }
        }
        eprintln!("{class}: widest delta gap {widest:.2} s over a {window:.1} s window of the big full round");
    }
    assert!(checked_windows >= 1, "expected at least one gap to be checked, got {checked_windows}");
}
