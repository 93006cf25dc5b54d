//! Outages of RabbitMQ and Postgres during runs, cut through TCP proxies for this test's service only:
//! workers reconnect, runs complete, tenants converge, no run is left open and none ran concurrently.

use std::time::Duration;

use entrasync::store::tenants;
use graph_sim::mutate::MutationBatch;

use crate::service_support::{overlapping_runs, start_service, stored_counts, stored_runs, true_counts, World};
use crate::support::eventually;
use entrasync::chaos::proxy::TcpProxy;

async fn converged(world: &World, tenants: &[entrasync::demo::emulated::EmulatedTenant]) -> bool {
    for tenant in tenants {
        if stored_counts(&world.pool, tenant.tenant_id).await != true_counts(&world.sim, &tenant.sim_tenant) {
            return false;
        }
    }
    true
}

async fn some_run_is_running(pool: &entrasync::store::Pool) -> bool {
    stored_runs(pool).await.iter().any(|r| r.status == "running")
}

/// For a failure message: each tenant that has not converged, its counts against the truth, its runs and
/// what its schedule last enqueued.
async fn divergence(world: &World, tenants: &[entrasync::demo::emulated::EmulatedTenant]) -> String {
    let client = world.pool.get().await.expect("connection");
    let mut report = String::new();
    for tenant in tenants {
        let (stored, truth) =
            (stored_counts(&world.pool, tenant.tenant_id).await, true_counts(&world.sim, &tenant.sim_tenant));
        if stored == truth {
            continue;
        }
        report += &format!("\ntenant {}: stored {stored:?}, truth {truth:?}; runs:\n", tenant.tenant_id);
        let runs = client
            .query(
                "SELECT object_class::text, mode::text, status::text, error, started_at, finished_at, job_id \
                 FROM sync_runs WHERE tenant_id = $1 ORDER BY started_at",
                &[&tenant.tenant_id],
            )
            .await
            .expect("runs");
        for r in runs {
            let (class, mode, status): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let (error, started, finished): (
                Option<String>,
                chrono::DateTime<chrono::Utc>,
                Option<chrono::DateTime<chrono::Utc>>,
            ) = (r.get(3), r.get(4), r.get(5));
            let job: Option<uuid::Uuid> = r.get(6);
            report += &format!("  {class} {mode} {status} {error:?} {started} .. {finished:?} job {job:?}\n");
        }
        let schedule = entrasync::store::schedule::load(&world.pool, tenant.tenant_id).await.expect("schedule");
        report += &format!("  schedule: {schedule:?}\n");
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_rabbitmq_and_postgres_outages_without_duplicate_or_missing_history() {
    let world = World::start().await;
    let mut tenants = Vec::new();
    for seed in 0..3 {
        tenants.push(world.tenant(300 + seed, 300, 5).await);
    }
    let pg = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await.expect("start the fault proxy");
    let mq = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await.expect("start the fault proxy");
    let db_url = format!("postgres://postgres@{}/{}", pg.addr, world.db.name);
    let amqp_url = format!("amqp://guest:guest@{}/%2f", mq.addr);
    let settings = world.settings(&[
        ("ENTRASYNC_DATABASE_URL", &db_url),
        ("ENTRASYNC_DATABASE_CONNECT_TIMEOUT_SECS", "2"),
        ("ENTRASYNC_AMQP_URL", &amqp_url),
        ("ENTRASYNC_SYNC_DELTA_INTERVAL_SECS", "2"),
        ("ENTRASYNC_SYNC_DELETION_THRESHOLD_PERCENT", "100"),
    ]);
    let (service, broker) = start_service(&settings);
    assert!(
        eventually(Duration::from_secs(90), || converged(&world, &tenants)).await,
        "expected the first rounds to converge within 90 s:{}",
        divergence(&world, &tenants).await
    );

    for (cut_name, proxy) in [("rabbitmq", &mq), ("postgres", &pg)] {
        for (i, tenant) in tenants.iter().enumerate() {
            tenants::request_full_scan(&world.pool, tenant.tenant_id).await.unwrap();
            let batch = MutationBatch { seed: 500 + i as u64, count: 20 };
            world.sim.state().random_mutations(&tenant.sim_tenant, &batch).expect("mutate");
        }
        assert!(eventually(Duration::from_secs(20), || some_run_is_running(&world.pool)).await, "a run to interrupt");
        proxy.cut();
        // The outage itself: the service is left without this peer for a while (longer than the 2 s connect
        // timeout). Nothing below depends on how long it lasted, only on what was done to recover.
        tokio::time::sleep(Duration::from_secs(4)).await;
        proxy.restore();
        assert!(
            eventually(Duration::from_secs(90), || converged(&world, &tenants)).await,
            "expected every tenant to converge within 90 s after the {cut_name} outage:{}",
            divergence(&world, &tenants).await
        );
    }

    // Every run is closed (none left `running` by an outage) and none overlapped another of its class.
    let settled = || async {
        let runs = stored_runs(&world.pool).await;
        let cutoff = chrono::Utc::now() - chrono::TimeDelta::seconds(20);
        runs.iter().all(|r| r.status != "running" || r.started_at > cutoff)
    };
    assert!(eventually(Duration::from_secs(30), settled).await, "a run stayed open");
    let runs = stored_runs(&world.pool).await;
    assert!(overlapping_runs(&runs).is_empty(), "{:?}", overlapping_runs(&runs));
    let mut starts: Vec<_> = runs.iter().map(|r| (r.tenant_id, r.class.clone(), r.started_at)).collect();
    let total = starts.len();
    starts.dedup();
    assert_eq!(starts.len(), total, "a run was recorded twice");
    let interrupted = runs.iter().filter(|r| r.error.as_deref() == Some("interrupted")).count();
    eprintln!("{total} runs recorded; {interrupted} closed as interrupted");
    service.shutdown().await;
    broker.close().await;
}
