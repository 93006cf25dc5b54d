//! Graph replays objects, repeats them within and across pages, serves empty pages with a nextLink and
//! sends objects in no particular order: none of it may cost an extra row write.

use entrasync::model::ObjectClass;
use graph_sim::settings::SettingsPatch;

use crate::sync_support::{row_writes, spec, SyncWorld};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_duplicates_and_empty_pages_cost_no_extra_row_writes() {
    let world = SyncWorld::start().await;
    let noisy = world.tenant(spec(61, 300, 40, 60), 25).await;
    let quiet = world.tenant(spec(61, 300, 40, 60), 25).await;
    let quirks = SettingsPatch { replay_rate: Some(0.5), empty_page_rate: Some(0.2), ..SettingsPatch::default() };
    world.sim.state().update_settings(&noisy.sim_tenant, &quirks).expect("quirks");

    let served = |tenant: &crate::sync_support::SyncTenant| {
        world.sim.state().tenant_counters(&tenant.sim_tenant).expect("counters").objects_served
    };
    // Full rounds: the noisy tenant receives many more objects but writes exactly the same rows.
    for class in ObjectClass::ALL {
        let clean = world.round(&quiet, class).await;
        let replayed = world.round(&noisy, class).await;
        assert_eq!(replayed.counts.rows_written, clean.counts.rows_written, "{class}: no extra writes");
        assert_eq!(replayed.counts.changed, clean.counts.changed, "{class}");
        world.assert_converged(&noisy, class, true).await;
    }

    assert!(served(&noisy) > served(&quiet) + 100, "replays happened: {} vs {}", served(&noisy), served(&quiet));
    for tenant in [&noisy, &quiet] {
        world.mutate(tenant, 61);
    }
    for class in ObjectClass::ALL {
        let clean = world.round(&quiet, class).await;
        let replayed = world.round(&noisy, class).await;
        assert_eq!(replayed.counts.rows_written, clean.counts.rows_written, "{class}: no extra writes in delta");
        assert_eq!(
            (replayed.counts.changed, replayed.counts.deleted),
            (clean.counts.changed, clean.counts.deleted),
            "{class}: expected replays to change and delete exactly what the quiet tenant's delta did"
        );
        world.assert_converged(&noisy, class, true).await;
    }

    // Nothing changed: replays of the last round's objects write no row at all (row versions unchanged).
    let before = world.row_versions(&noisy).await;
    let served_before = served(&noisy);
    for class in ObjectClass::ALL {
        let report = world.round(&noisy, class).await;
        assert_eq!(report.counts.rows_written, 0, "{class}: {report:?}");
    }
    assert_eq!(
        row_writes(&before, &world.row_versions(&noisy).await),
        0,
        "expected no row version to move when delta rounds only replay"
    );
    // Also with a full round, which lists every object again.
    for class in ObjectClass::ALL {
        let mut request = world.request(&noisy, class);
        request.force_full = true;
        let report = world.try_round(&request).await.expect("full round");
        assert_eq!((report.counts.rows_written, report.counts.changed), (0, 0), "{class}: {report:?}");
    }
    assert!(served(&noisy) > served_before + 400, "every object was listed again");
    assert_eq!(
        row_writes(&before, &world.row_versions(&noisy).await),
        0,
        "expected no row version to move when a full round lists unchanged objects"
    );
}

/// A re-scan of groups marks each listed membership seen once, also when Graph lists a group's members
/// again on a later page: a stream copies its marks in while its fingerprints prove them new, and a
/// replayed membership must take the checked path (a second copy of it would fail the batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_rescan_with_replayed_members_marks_each_membership_once() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(62, 200, 30, 0), 3).await;
    world.round(&tenant, ObjectClass::Group).await;
    let quirks = SettingsPatch { replay_rate: Some(0.5), ..SettingsPatch::default() };
    world.sim.state().update_settings(&tenant.sim_tenant, &quirks).expect("quirks");
    let served = || world.sim.state().tenant_counters(&tenant.sim_tenant).expect("counters").objects_served;
    let (served_before, before) = (served(), world.row_versions(&tenant).await);

    let mut request = world.request(&tenant, ObjectClass::Group);
    request.force_full = true;
    let report = world.try_round(&request).await.expect("re-scan");
    assert_eq!((report.counts.rows_written, report.counts.changed, report.counts.deleted), (0, 0, 0), "{report:?}");
    assert!(served() - served_before > 35, "groups were replayed: {} served for 30", served() - served_before);
    assert_eq!(row_writes(&before, &world.row_versions(&tenant).await), 0, "nothing was written");
    world.assert_converged(&tenant, ObjectClass::Group, true).await;
}
