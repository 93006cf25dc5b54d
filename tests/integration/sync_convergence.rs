//! Convergence: a full round, 1,000 seeded random mutations of every kind, a delta round → the store
//! equals the emulator's truth (live objects and attributes, soft deletions, memberships), for 20 seeds.

use entrasync::model::{ObjectClass, RunStatus, SyncMode};
use futures::StreamExt;

use crate::sync_support::{row_writes, spec, SyncWorld};

async fn converge_seed(world: &SyncWorld, seed: u64) {
    let tenant = world.tenant(spec(seed, 120, 25, 30), 40).await;
    for report in world.round_all(&tenant).await {
        assert_eq!((report.mode, report.status), (SyncMode::Full, RunStatus::Success), "seed {seed}: {report:?}");
    }
    for class in ObjectClass::ALL {
        world.assert_converged(&tenant, class, true).await;
    }

    let summary = world.mutate(&tenant, seed);
    assert!(
        summary.updated > 0 && summary.created > 0 && summary.soft_deleted > 0 && summary.members_added > 0,
        "seed {seed}: every kind of mutation happens: {summary:?}"
    );
    for report in world.round_all(&tenant).await {
        assert_eq!((report.mode, report.status), (SyncMode::Delta, RunStatus::Success), "seed {seed}: {report:?}");
    }
    for class in ObjectClass::ALL {
        world.assert_converged(&tenant, class, true).await;
    }

    // Nothing changed since: another round writes no row and counts no change.
    let before = world.row_versions(&tenant).await;
    for report in world.round_all(&tenant).await {
        assert_eq!(report.counts.changed + report.counts.deleted, 0, "seed {seed}: {report:?}");
    }
    assert_eq!(row_writes(&before, &world.row_versions(&tenant).await), 0, "seed {seed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_seeds_converge_after_a_thousand_random_mutations() {
    let world = SyncWorld::start().await;
    let started = std::time::Instant::now();
    futures::stream::iter(1..=20u64).for_each_concurrent(4, |seed| converge_seed(&world, seed)).await;
    eprintln!("20 seeds converged in {:?}", started.elapsed());
}
