//! Scale-out with the real binary: 50 tenants across 3 `entrasync serve` processes sharing one database
//! and one set of queues. Every tenant is supervised exactly once; a kill -9'd instance's tenants run
//! elsewhere within 30 s; all tenants converge; no (tenant, class) ever ran twice at the same time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use entrasync::store::leases;
use graph_sim::mutate::MutationBatch;

use crate::service_support::{overlapping_runs, stored_counts, stored_runs, true_counts, World};
use crate::support::app::{binary, free_port, ChildGuard};
use crate::support::eventually;

const TENANTS: usize = 50;

fn serve(world: &World, instance: &str) -> ChildGuard {
    let listen = format!("127.0.0.1:{}", free_port());
    let vars = [
        ("ENTRASYNC_DATABASE_URL", world.db.url.as_str()),
        ("ENTRASYNC_AMQP_PREFIX", world.amqp.prefix.as_str()),
        ("ENTRASYNC_SECRETS_KEY", world.secrets_key.as_str()),
        ("ENTRASYNC_INSTANCE_ID", instance),
        ("ENTRASYNC_HTTP_LISTEN", listen.as_str()),
        ("ENTRASYNC_SYNC_DELTA_INTERVAL_SECS", "10"),
        ("ENTRASYNC_LOG_FILTER", "warn"),
        // Three instances beside the rest of the suite: keep each one's Postgres connections few.
        ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1"),
        ("ENTRASYNC_AMQP_PREFETCH", "2"),
        ("ENTRASYNC_DATABASE_POOL_SIZE", "10"),
        // Tiny tenants: a few random deletions are a large share, which the guard would hold.
        ("ENTRASYNC_SYNC_DELETION_THRESHOLD_PERCENT", "100"),
    ];
    let child = binary(&["serve"], &vars).stdout(std::process::Stdio::null()).spawn().expect("start entrasync serve");
    ChildGuard(child)
}

async fn holders(pool: &entrasync::store::Pool) -> BTreeMap<i64, String> {
    leases::current(pool).await.expect("leases").into_iter().map(|l| (l.tenant_id, l.holder)).collect()
}

async fn all_converged(world: &World, tenants: &[entrasync::demo::emulated::EmulatedTenant]) -> bool {
    for tenant in tenants {
        if stored_counts(&world.pool, tenant.tenant_id).await != true_counts(&world.sim, &tenant.sim_tenant) {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tenants_on_three_instances_survive_a_kill_and_never_run_twice_at_once() {
    let world = World::start().await;
    let mut tenants = Vec::new();
    for seed in 0..TENANTS as u64 {
        tenants.push(world.tenant(100 + seed, 20, 50).await);
    }
    let ids: BTreeSet<i64> = tenants.iter().map(|t| t.tenant_id).collect();
    let mut instances: BTreeMap<&str, ChildGuard> =
        ["i1", "i2", "i3"].into_iter().map(|name| (name, serve(&world, name))).collect();

    // Every tenant held by exactly one lease (the primary key), spread over all three instances.
    let pool = world.pool.clone();
    let spread = || {
        let (pool, ids) = (pool.clone(), ids.clone());
        async move {
            let held = holders(&pool).await;
            let used: BTreeSet<&String> = held.values().collect();
            held.keys().copied().collect::<BTreeSet<_>>() == ids && used.len() == 3
        }
    };
    // How long it took is printed, so a slow spread is visible before it fails. (All three start on an
    // empty token table: they also race for the first admin token, which once made the loser exit.)
    let spreading = std::time::Instant::now();
    let spread_out = eventually(Duration::from_secs(60), spread).await;
    eprintln!("service_scale: leases spread over three instances after {:?}", spreading.elapsed());
    assert!(spread_out, "leases: {:?}", holders(&pool).await);
    assert!(eventually(Duration::from_secs(90), || all_converged(&world, &tenants)).await, "first rounds converge");

    // kill -9 one instance; its tenants must be supervised elsewhere and run again within 30 s.
    let victim_tenants: BTreeSet<i64> =
        holders(&pool).await.into_iter().filter(|(_, holder)| holder == "i1").map(|(t, _)| t).collect();
    assert!(
        !victim_tenants.is_empty(),
        "expected i1 to hold some tenants before it is killed: {:?}",
        holders(&pool).await
    );
    let mut victim = instances.remove("i1").expect("i1");
    let killed_at = chrono::Utc::now();
    let started = Instant::now();
    victim.0.kill().expect("kill -9");
    let _ = victim.0.wait();
    let moved_and_ran = || {
        let (pool, victim_tenants) = (pool.clone(), victim_tenants.clone());
        async move {
            let held = holders(&pool).await;
            let moved = victim_tenants.iter().all(|t| held.get(t).is_some_and(|h| h != "i1"));
            let runs = stored_runs(&pool).await;
            let ran = victim_tenants.iter().all(|t| runs.iter().any(|r| r.tenant_id == *t && r.started_at > killed_at));
            moved && ran
        }
    };
    assert!(eventually(Duration::from_secs(30), moved_and_ran).await, "victim's tenants did not move and run in 30 s");
    let takeover = started.elapsed();

    // The directory keeps changing; the two survivors converge every tenant.
    for (i, tenant) in tenants.iter().enumerate() {
        let batch = MutationBatch { seed: 1000 + i as u64, count: 3 };
        world.sim.state().random_mutations(&tenant.sim_tenant, &batch).expect("mutate");
    }
    if !eventually(Duration::from_secs(60), || all_converged(&world, &tenants)).await {
        for tenant in &tenants {
            let (stored, truth) =
                (stored_counts(&world.pool, tenant.tenant_id).await, true_counts(&world.sim, &tenant.sim_tenant));
            if stored != truth {
                let runs = stored_runs(&pool).await;
                let mine: Vec<String> = runs
                    .iter()
                    .filter(|r| r.tenant_id == tenant.tenant_id)
                    .map(|r| format!("{} {} {:?} {:?}", r.class, r.status, r.error, r.started_at))
                    .collect();
                panic!("tenant {} stored {stored:?} truth {truth:?}; runs {mine:#?}", tenant.tenant_id);
            }
        }
    }

    let runs = stored_runs(&pool).await;
    assert!(overlapping_runs(&runs).is_empty(), "concurrent runs: {:?}", overlapping_runs(&runs));
    let stale = runs.iter().filter(|r| r.status == "running" && r.started_at < killed_at).count();
    assert_eq!(stale, 0, "a run of the killed instance stayed running");
    eprintln!("takeover after kill -9: {:.1} s; {} runs recorded", takeover.as_secs_f64(), runs.len());
    drop(instances);
}
