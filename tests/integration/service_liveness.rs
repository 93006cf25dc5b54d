//! Liveness through the real `serve`: the coordinator, the history recorder, the consume loops and the
//! change-event relay beat a heart; the watchdog restarts one that stops beating or dies, counts it in
//! `entrasync_actor_restarts_total{actor, cause}`, and `/healthz` answers 503 naming the wedged part until
//! it beats again. Wedges and panics are injected through `Application::faults` (code only, as a bug would
//! do them: a wedge blocks the part's thread, which no timeout inside it can end). The recorder test needs
//! no injection: the test holds a row lock that one tenant's history write must wait for.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entrasync::actors::liveness::{Fault, FaultPoint, Faults};
use entrasync::config::Settings;
use entrasync::startup::Application;

use crate::service_support::World;
use crate::support::{eventually, holds_for};

struct Running {
    address: String,
    handle: actix_web::dev::ServerHandle,
    metrics: entrasync::metrics::Metrics,
    faults: Faults,
}

async fn start(settings: &Settings) -> Running {
    let mut settings = settings.clone();
    settings.http.listen = "127.0.0.1:0".parse().expect("loopback address");
    let app = Application::build(&settings).await.expect("build application");
    let (port, handle, metrics, faults) = (app.port(), app.handle(), app.metrics().clone(), app.faults());
    tokio::spawn(app.run_until_stopped());
    Running { address: format!("http://127.0.0.1:{port}"), handle, metrics, faults }
}

/// `entrasync_actor_restarts_total{actor, cause}` as exported.
fn restarts(metrics: &entrasync::metrics::Metrics, actor: &str, cause: &str) -> u64 {
    let (actor, cause) = (format!(r#"actor="{actor}""#), format!(r#"cause="{cause}""#));
    metrics
        .render()
        .lines()
        .filter(|line| {
            line.starts_with("entrasync_actor_restarts_total{") && line.contains(&actor) && line.contains(&cause)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

/// `/healthz`: the status and the names of the parts it reports wedged.
async fn healthz(address: &str) -> (u16, Vec<String>) {
    let Ok(response) = reqwest::get(format!("{address}/healthz")).await else { return (0, Vec::new()) };
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let parts = body["wedged"]
        .as_array()
        .map(|parts| parts.iter().filter_map(|p| p["part"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    (status, parts)
}

/// Successful runs of `tenant` (any class) that finished after `after`.
async fn successes_after(pool: &entrasync::store::Pool, tenant: i64, after: DateTime<Utc>) -> i64 {
    let client = pool.get().await.expect("connection");
    client
        .query_one(
            "SELECT count(*) FROM sync_runs WHERE tenant_id = $1 AND status = 'success' AND finished_at > $2",
            &[&tenant, &after],
        )
        .await
        .expect("count runs")
        .get(0)
}

/// Waits until every tenant finished a successful run after `after`.
async fn all_synced_after(
    pool: &entrasync::store::Pool,
    tenants: &[i64],
    after: DateTime<Utc>,
    within: Duration,
) -> bool {
    eventually(within, || async {
        for tenant in tenants {
            if successes_after(pool, *tenant, after).await < 1 {
                return false;
            }
        }
        true
    })
    .await
}

fn settings(world: &World) -> Settings {
    world.settings(&[
        ("ENTRASYNC_SYNC_DELTA_INTERVAL_SECS", "2"),
        ("ENTRASYNC_LOG_FILTER", "error"),
        ("ENTRASYNC_SYNC_DELETION_THRESHOLD_PERCENT", "100"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_coordinator_is_restarted_and_counted_and_healthz_names_it_until_it_beats_again() {
    let world = World::start().await;
    let tenants = [world.tenant(800, 10, 50).await.tenant_id, world.tenant(801, 10, 50).await.tenant_id];
    let app = start(&settings(&world)).await;
    let pool = world.pool.clone();
    let began = Utc::now();
    assert!(all_synced_after(&pool, &tenants, began, Duration::from_secs(90)).await, "no tenant synced at start");
    assert_eq!(healthz(&app.address).await, (200, Vec::new()), "healthy while running");
    assert_eq!(restarts(&app.metrics, "coordinator", "stuck"), 0);

    // The coordinator's thread blocks at its next tick, as a blocking call would: no deadline inside it
    // can end that, and its tenant supervisors (same thread) stop scheduling.
    app.faults.arm(FaultPoint::CoordinatorTick, Fault::Wedge);
    let wedged = || async { healthz(&app.address).await == (503, vec!["coordinator".to_owned()]) };
    assert!(eventually(Duration::from_secs(70), wedged).await, "/healthz never named the wedged coordinator");
    let restarted = || async { restarts(&app.metrics, "coordinator", "stuck") >= 1 };
    assert!(eventually(Duration::from_secs(30), restarted).await, "the wedged coordinator was not restarted");
    // The fault is still armed, so the new coordinator wedges at its first tick: still reported, since it
    // never beat.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(healthz(&app.address).await.0, 503, "a restarted coordinator that never beat is still wedged");

    app.faults.clear(FaultPoint::CoordinatorTick);
    let cleared = Utc::now();
    let healthy = || async { healthz(&app.address).await == (200, Vec::new()) };
    assert!(eventually(Duration::from_secs(60), healthy).await, "/healthz stayed 503 after the wedge ended");
    assert!(
        all_synced_after(&pool, &tenants, cleared, Duration::from_secs(90)).await,
        "the tenants were not scheduled again after the coordinator's restart"
    );
    app.handle.stop(true).await;
}

/// Consumers the broker counts on this world's user queue (all instances).
async fn user_queue_consumers(broker: &entrasync::queue::Broker) -> Option<u32> {
    let depths = broker.queue_depths(Duration::from_secs(5)).await.ok()?;
    depths.iter().find(|d| d.class == Some(entrasync::model::ObjectClass::User)).map(|d| d.consumers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_consume_loop_is_replaced_and_its_channel_closed_so_its_jobs_go_back() {
    let world = World::start().await;
    let tenants = [world.tenant(830, 10, 50).await.tenant_id, world.tenant(831, 10, 50).await.tenant_id];
    let settings = settings(&world);
    let app = start(&settings).await;
    let pool = world.pool.clone();
    let broker = entrasync::queue::Broker::start(&settings.amqp);
    let began = Utc::now();
    assert!(all_synced_after(&pool, &tenants, began, Duration::from_secs(90)).await, "no tenant synced at start");
    let one_consumer = || async { user_queue_consumers(&broker).await == Some(1) };
    assert!(eventually(Duration::from_secs(20), one_consumer).await, "the user worker does not consume");

    // Every worker thread blocks at its loop's next turn (within 2 s, an idle loop's beat).
    app.faults.arm(FaultPoint::ConsumeLoop, Fault::Wedge);
    let named = || async {
        let (status, parts) = healthz(&app.address).await;
        status == 503 && parts.iter().any(|p| p == "consumer user #0")
    };
    assert!(eventually(Duration::from_secs(70), named).await, "/healthz: {:?}", healthz(&app.address).await);
    let restarted = || async { restarts(&app.metrics, "consumer", "stuck") >= 1 };
    assert!(eventually(Duration::from_secs(30), restarted).await, "the wedged consume loops were not replaced");
    // The blocked thread never drops its subscription; the watchdog closed its channel, so the broker
    // counts no consumer (the new worker wedges before subscribing) and would redeliver what it held.
    let no_consumer = || async { user_queue_consumers(&broker).await == Some(0) };
    assert!(
        eventually(Duration::from_secs(15), no_consumer).await,
        "the wedged worker's subscription is still open: {:?} consumers",
        user_queue_consumers(&broker).await
    );

    app.faults.clear(FaultPoint::ConsumeLoop);
    let cleared = Utc::now();
    let healthy = || async { healthz(&app.address).await == (200, Vec::new()) };
    assert!(eventually(Duration::from_secs(90), healthy).await, "/healthz: {:?}", healthz(&app.address).await);
    assert!(
        all_synced_after(&pool, &tenants, cleared, Duration::from_secs(90)).await,
        "no runs after the wedged consume loops were replaced"
    );
    broker.close().await;
    app.handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_tick_stuck_on_a_lock_fails_by_its_deadline_and_the_coordinator_keeps_beating() {
    let world = World::start().await;
    let tenants = [world.tenant(840, 10, 50).await.tenant_id];
    // Postgres' own lock_timeout (10 s by default) would end the wait too: raised, so only the tick's
    // deadline can.
    let app = start(&world.settings(&[
        ("ENTRASYNC_SYNC_DELTA_INTERVAL_SECS", "2"),
        ("ENTRASYNC_LOG_FILTER", "error"),
        ("ENTRASYNC_DATABASE_LOCK_TIMEOUT_SECS", "60"),
    ]))
    .await;
    let pool = world.pool.clone();
    let began = Utc::now();
    assert!(all_synced_after(&pool, &tenants, began, Duration::from_secs(90)).await, "no tenant synced at start");
    let errors_before = restarts(&app.metrics, "coordinator", "error");

    // The instance's heartbeat row is locked: the tick's first statement waits on it.
    let (mut locker, connection) =
        tokio_postgres::connect(&world.db.url, tokio_postgres::NoTls).await.expect("connect the locker");
    tokio::spawn(connection);
    let lock = locker.transaction().await.expect("begin");
    lock.execute("SELECT 1 FROM coordinator_instances FOR UPDATE", &[]).await.expect("lock the heartbeat rows");
    // A stuck tick step is abandoned at its deadline and counted as a failed round; the coordinator keeps
    // ticking (and beating), so /healthz stays 200 and the watchdog restarts nothing.
    let late = || async { restarts(&app.metrics, "coordinator", "error") > errors_before };
    let alive = || async { healthz(&app.address).await.0 == 200 };
    assert!(
        eventually(Duration::from_secs(15), late).await,
        "no tick step ended by its deadline while the row was locked"
    );
    assert!(
        holds_for(Duration::from_secs(8), alive).await,
        "/healthz failed while ticks met a lock: {:?}",
        healthz(&app.address).await
    );
    assert_eq!(
        restarts(&app.metrics, "coordinator", "stuck"),
        0,
        "a coordinator whose steps end by their deadline is not wedged"
    );

    lock.rollback().await.expect("release the heartbeat rows");
    let released = Utc::now();
    assert!(
        all_synced_after(&pool, &tenants, released, Duration::from_secs(90)).await,
        "the tenant was not scheduled again after the lock was released"
    );
    app.handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_consume_loops_and_recorder_are_restarted_with_backoff_and_counted() {
    let world = World::start().await;
    let tenants = [world.tenant(810, 10, 50).await.tenant_id, world.tenant(811, 10, 50).await.tenant_id];
    let app = start(&settings(&world)).await;
    let pool = world.pool.clone();
    let began = Utc::now();
    assert!(all_synced_after(&pool, &tenants, began, Duration::from_secs(90)).await, "no tenant synced at start");

    app.faults.arm(FaultPoint::ConsumeLoop, Fault::Panic);
    app.faults.arm(FaultPoint::RecorderFlush, Fault::Panic);
    let armed = std::time::Instant::now();
    let both_restarted_twice = || async {
        restarts(&app.metrics, "consumer", "panic") >= 2 && restarts(&app.metrics, "history_recorder", "panic") >= 2
    };
    assert!(
        eventually(Duration::from_secs(60), both_restarted_twice).await,
        "restarts: consumer {}, history_recorder {}",
        restarts(&app.metrics, "consumer", "panic"),
        restarts(&app.metrics, "history_recorder", "panic")
    );
    let named = || async {
        let (status, parts) = healthz(&app.address).await;
        status == 503
            && parts.iter().any(|p| p == "history_recorder")
            && parts.iter().any(|p| p.starts_with("consumer"))
    };
    assert!(eventually(Duration::from_secs(30), named).await, "/healthz: {:?}", healthz(&app.address).await);
    // Backoff, not a restart storm: the waits between restarts of one part double from 1 s, so a window
    // of W s holds at most ⌊log2(W + 1)⌋ + 1 restarts of it; one more for a restart under way.
    let window = armed.elapsed().as_secs_f64();
    let recorder_restarts = restarts(&app.metrics, "history_recorder", "panic");
    let at_most = (window + 1.0).log2().floor() as u64 + 2;
    assert!(recorder_restarts <= at_most, "{recorder_restarts} recorder restarts in {window:.1} s (at most {at_most})");

    app.faults.clear(FaultPoint::ConsumeLoop);
    app.faults.clear(FaultPoint::RecorderFlush);
    let cleared = Utc::now();
    // The next restarts (at most the backoff's cap away) stay up: healthy again, and jobs are consumed and
    // their history written.
    let healthy = || async { healthz(&app.address).await == (200, Vec::new()) };
    assert!(eventually(Duration::from_secs(90), healthy).await, "/healthz: {:?}", healthz(&app.address).await);
    assert!(
        all_synced_after(&pool, &tenants, cleared, Duration::from_secs(90)).await,
        "no runs after the consumers and the recorder were restarted"
    );
    app.handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorder_keeps_writing_other_runs_history_while_one_write_hangs() {
    let world = World::start().await;
    let victim = world.tenant(820, 10, 50).await.tenant_id;
    let others = [world.tenant(821, 10, 50).await.tenant_id, world.tenant(822, 10, 50).await.tenant_id];
    let app = start(&settings(&world)).await;
    let pool = world.pool.clone();
    let began = Utc::now();
    let everyone = [victim, others[0], others[1]];
    assert!(all_synced_after(&pool, &everyone, began, Duration::from_secs(90)).await, "no tenant synced at start");

    // Hold the victim's tenant row FOR UPDATE: inserting a run of the victim (its foreign key takes a
    // KEY SHARE lock on that row) waits, so the victim's next `started` history write hangs.
    let (mut locker, connection) =
        tokio_postgres::connect(&world.db.url, tokio_postgres::NoTls).await.expect("connect the locker");
    tokio::spawn(connection);
    let lock = locker.transaction().await.expect("begin");
    lock.execute("SELECT id FROM tenants WHERE id = $1 FOR UPDATE", &[&victim]).await.expect("lock the victim's row");
    let locked = Utc::now();

    let waiting_on_the_lock = || async {
        let client = pool.get().await.expect("connection");
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
                 AND query ILIKE '%sync_runs%'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        waiting >= 1
    };
    assert!(
        eventually(Duration::from_secs(30), waiting_on_the_lock).await,
        "the victim's history write never waited on the lock (the test proves nothing)"
    );
    // While it hangs, the other tenants' history keeps being written: two more runs each.
    let others_progress = || async {
        for tenant in others {
            if successes_after(&pool, tenant, locked).await < 2 {
                return false;
            }
        }
        true
    };
    assert!(
        eventually(Duration::from_secs(40), others_progress).await,
        "other tenants' history stalled behind one hung write: {:?}",
        futures::future::join_all(others.iter().map(|t| successes_after(&pool, *t, locked))).await
    );
    assert_eq!(successes_after(&pool, victim, locked).await, 0, "the victim's runs cannot have been recorded");

    lock.rollback().await.expect("release the victim's row");
    let released = Utc::now();
    assert!(
        all_synced_after(&pool, &[victim], released, Duration::from_secs(90)).await,
        "the victim did not sync again after its row was released"
    );
    app.handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_relay_is_named_and_restarted_and_events_flow_again() {
    use crate::change_events_relay::{outbox_rows, write_events, Collector};

    let world = World::start().await;
    let app = start(&settings(&world)).await;
    let consumer = Collector::start(&world.amqp.prefix, "liveness", "#", Default::default()).await;
    consumer.consume().await;
    let pool = world.pool.clone();
    let delivered = |count: usize| {
        let (consumer, pool) = (&consumer, pool.clone());
        move || {
            let pool = pool.clone();
            async move { consumer.snapshot().len() >= count && outbox_rows(&pool).await == 0 }
        }
    };
    write_events(&pool, 50).await;
    assert!(eventually(Duration::from_secs(30), delivered(50)).await, "the relay does not relay at start");
    assert_eq!(healthz(&app.address).await, (200, Vec::new()), "healthy while relaying");

    // The relay's thread blocks at its next turn (within a second: a caught-up relay polls at least that
    // often), as a blocking call would: its deadlines cannot end that. A turn hits the fault before it
    // reads, so events written after arming wait in the outbox.
    app.faults.arm(FaultPoint::RelayLoop, Fault::Wedge);
    tokio::time::sleep(Duration::from_secs(1)).await;
    write_events(&pool, 50).await;
    let named = || async { healthz(&app.address).await == (503, vec!["relay".to_owned()]) };
    assert!(eventually(Duration::from_secs(80), named).await, "/healthz: {:?}", healthz(&app.address).await);
    let restarted = || async { restarts(&app.metrics, "relay", "stuck") >= 1 };
    assert!(eventually(Duration::from_secs(30), restarted).await, "the wedged relay was not restarted");
    assert_eq!(outbox_rows(&pool).await, 50, "a wedged relay (and its successor, wedged too) relays nothing");
    assert_eq!(consumer.snapshot().len(), 50);
    // Still armed: the new relay blocks at its first turn, so it never beat and stays reported.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(healthz(&app.address).await.0, 503, "a restarted relay that never beat is still wedged");

    // Unblocked, the new relay takes the lock (the server ended the wedged one's idle session) and relays.
    app.faults.clear(FaultPoint::RelayLoop);
    let healthy = || async { healthz(&app.address).await == (200, Vec::new()) };
    assert!(eventually(Duration::from_secs(60), healthy).await, "/healthz: {:?}", healthz(&app.address).await);
    assert!(
        eventually(Duration::from_secs(60), delivered(100)).await,
        "events did not flow after the relay's restart: {} received, {} in the outbox",
        consumer.snapshot().len(),
        outbox_rows(&pool).await
    );
    write_events(&pool, 50).await;
    assert!(eventually(Duration::from_secs(30), delivered(150)).await, "new events are relayed too");
    consumer.close().await;
    app.handle.stop(true).await;
}
