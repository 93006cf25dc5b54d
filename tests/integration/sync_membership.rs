//! Large groups: a group of 60,000 members arrives as many `members@delta` slices over many pages; the
//! store merges them into the exact membership, and later removals are applied.

use entrasync::model::{ObjectClass, RunStatus, SyncMode};
use entrasync::store::members;
use graph_sim::settings::SettingsPatch;
use graph_sim::state::DeleteOutcome;

use crate::sync_support::{spec, SyncWorld};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_sixty_thousand_members_is_merged_exactly_and_removals_apply() {
    let world = SyncWorld::start().await;
    // One group: "All Company", every user a member.
    let tenant = world.tenant(spec(91, 60_000, 1, 0), 200).await;
    let started = std::time::Instant::now();
    let full = world.round(&tenant, ObjectClass::Group).await;
    let elapsed = started.elapsed();
    assert_eq!(
        (full.mode, full.status),
        (SyncMode::Full, RunStatus::Success),
        "expected a successful full round: {full:?}"
    );
    assert!(full.counts.pages >= 100, "membership spread over many pages: {full:?}");
    assert_eq!(full.counts.changed, 1, "one group changed, however many pages it spans");
    assert_eq!(full.counts.total, 1, "one group listed, however many pages it spans");
    let client = world.pool.get().await.expect("connection");
    assert_eq!(
        members::list(&client, tenant.tenant_id).await.expect("members").len(),
        60_000,
        "expected every one of the 60,000 memberships stored"
    );
    world.assert_converged(&tenant, ObjectClass::Group, true).await;
    eprintln!("60,000-member group: {} pages in {elapsed:?}", full.counts.pages);

    // Remove 1,500 members and add back nobody: a delta round applies exactly the removals.
    let state = world.sim.state();
    let group = state.ids(&tenant.sim_tenant, ObjectClass::Group, true).expect("groups").remove(0);
    let users = state.ids(&tenant.sim_tenant, ObjectClass::User, true).expect("users");
    for user in users.iter().step_by(40) {
        assert!(
            state.remove_member(&tenant.sim_tenant, &group, user).expect("remove member"),
            "expected user {user} to be a member of the all-company group"
        );
    }
    let delta = world.round(&tenant, ObjectClass::Group).await;
    assert_eq!(
        (delta.mode, delta.status, delta.counts.changed),
        (SyncMode::Delta, RunStatus::Success, 1),
        "expected a successful delta round changing the one group: {delta:?}"
    );
    assert_eq!(delta.counts.rows_written, 1_500, "only the removed memberships were written");
    assert_eq!(
        members::list(&client, tenant.tenant_id).await.expect("members").len(),
        58_500,
        "expected 60,000 − 1,500 memberships stored after the removals"
    );
    world.assert_converged(&tenant, ObjectClass::Group, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_and_secret_credentials_both_sync_the_directory() {
    let world = SyncWorld::start().await;
    let by_secret = world.tenant(spec(92, 80, 10, 10), 30).await;
    let by_certificate = world.tenant(spec(92, 80, 10, 10), 30).await;
    for class in ObjectClass::ALL {
        let secret_report = world.round(&by_secret, class).await;
        let mut request = world.request(&by_certificate, class);
        request.graph_tenant = world.certificate_tenant(&by_certificate);
        let certificate_report = world.try_round(&request).await.expect("certificate round");
        assert_eq!(
            certificate_report.status,
            RunStatus::Success,
            "{class}: expected the certificate round to succeed: {certificate_report:?}"
        );
        assert!(certificate_report.counts.changed > 0, "{class}: the certificate reached the data");
        assert_eq!(certificate_report.counts, secret_report.counts, "{class}");
        world.assert_converged(&by_certificate, class, true).await;
    }
}

/// A member removed from a Microsoft 365 group just before the group was soft-deleted is never reported
/// as removed: the deletion hides the group's member changes, and the restored group is listed like a new
/// one, with its current members only. The delta round that sees the restore reconciles the group's
/// membership with that listing, even when the listing spans several pages and transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_group_drops_the_members_removed_before_its_deletion() {
    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(93, 300, 30, 0), 20).await;
    let state = world.sim.state();
    // Four members per page: a restored group's listing spans several pages (one transaction each).
    state
        .update_settings(&tenant.sim_tenant, &SettingsPatch { member_page_size: Some(4), ..SettingsPatch::default() })
        .expect("settings");
    let full = world.round(&tenant, ObjectClass::Group).await;
    assert_eq!(full.status, RunStatus::Success, "{full:?}");

    let truth = state.truth(&tenant.sim_tenant, ObjectClass::Group).expect("truth");
    let unified = |id: &String| {
        truth.objects[id]
            .get("groupTypes")
            .and_then(|t| t.as_array())
            .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("Unified")))
    };
    let (group, group_members) = truth
        .memberships
        .iter()
        .find(|(id, members)| unified(id) && members.len() >= 10)
        .expect("a Microsoft 365 group with at least ten members in the generated tenant");
    let removed: Vec<&String> = group_members.iter().step_by(3).collect();
    for member in &removed {
        assert!(state.remove_member(&tenant.sim_tenant, group, member).expect("remove member"));
    }
    assert_eq!(
        state.delete_object(&tenant.sim_tenant, group, false).expect("delete"),
        DeleteOutcome::SoftDeleted,
        "a Microsoft 365 group is soft-deleted"
    );
    let deleted = world.round(&tenant, ObjectClass::Group).await;
    assert_eq!((deleted.mode, deleted.status), (SyncMode::Delta, RunStatus::Success), "{deleted:?}");
    let stored_of = |pairs: Vec<(uuid::Uuid, uuid::Uuid)>| -> Vec<String> {
        pairs.into_iter().filter(|(g, _)| g.to_string() == *group).map(|(_, m)| m.to_string()).collect()
    };
    let client = world.pool.get().await.expect("connection");
    assert_eq!(
        stored_of(members::list(&client, tenant.tenant_id).await.expect("members")).len(),
        group_members.len(),
        "the deletion hid the removals: the soft-deleted group keeps every member it had when last seen"
    );

    state.restore_object(&tenant.sim_tenant, group).expect("restore");
    let restored = world.round(&tenant, ObjectClass::Group).await;
    assert_eq!((restored.mode, restored.status), (SyncMode::Delta, RunStatus::Success), "{restored:?}");
    assert!(restored.counts.pages >= 3, "the restored group's members span pages: {restored:?}");
    let mut stored = stored_of(members::list(&client, tenant.tenant_id).await.expect("members"));
    stored.sort();
    let mut expected: Vec<String> = group_members.iter().filter(|m| !removed.contains(m)).cloned().collect();
    expected.sort();
    assert_eq!(stored, expected, "the restored group holds exactly its current members");
    world.assert_converged(&tenant, ObjectClass::Group, true).await;

    // Nothing is left to reconcile: the next delta round writes nothing.
    let quiet = world.round(&tenant, ObjectClass::Group).await;
    assert_eq!(quiet.counts.rows_written, 0, "{quiet:?}");
}
