//! Tenant leases and the coordinator: exclusive leases with expiry, an even spread over instances, and
//! takeover when an instance leaves or stops renewing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use entrasync::store::leases;

use crate::service_support::{create_tenants, start_service};
use crate::support::{eventually, settings_with, TestAmqp, TestDb};

#[tokio::test]
async fn a_lease_is_exclusive_until_it_expires_or_is_released() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenants = create_tenants(&pool, 3).await;
    let ttl = Duration::from_secs(2);

    assert_eq!(
        leases::acquire(&pool, "a", &tenants, ttl).await.unwrap(),
        tenants,
        "expected a to get every free lease"
    );
    assert!(leases::acquire(&pool, "b", &tenants, ttl).await.unwrap().is_empty(), "held by a");
    assert_eq!(leases::renew(&pool, "a", ttl).await.unwrap().len(), 3, "expected a to renew its 3 leases");
    assert_eq!(leases::release(&pool, "a", &tenants[..1]).await.unwrap(), 1, "expected a to release one lease");
    assert_eq!(
        leases::acquire(&pool, "b", &tenants, ttl).await.unwrap(),
        tenants[..1].to_vec(),
        "expected b to get only the released lease"
    );

    // Expiry is the database's: wait until it shows no live lease (reading leases renews nothing).
    let all_expired = || async { leases::current(&pool).await.unwrap().is_empty() };
    assert!(
        eventually(Duration::from_secs(30), all_expired).await,
        "expected every lease to expire within 30 s of a {ttl:?} TTL: {:?}",
        holders(&pool).await
    );
    assert!(leases::renew(&pool, "a", ttl).await.unwrap().is_empty(), "an expired lease is not renewed");
    let taken: BTreeSet<i64> = leases::acquire(&pool, "b", &tenants, ttl).await.unwrap().into_iter().collect();
    assert_eq!(taken, tenants.iter().copied().collect(), "expired leases are free");
}

/// Leases by holder, and whether every tenant has exactly one.
async fn holders(pool: &entrasync::store::Pool) -> BTreeMap<String, BTreeSet<i64>> {
    let mut by_holder: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for lease in leases::current(pool).await.unwrap() {
        by_holder.entry(lease.holder).or_default().insert(lease.tenant_id);
    }
    by_holder
}

#[tokio::test]
async fn coordinators_share_tenants_evenly_and_take_over_when_one_leaves_or_stops() {
    let db = TestDb::migrated().await;
    let amqp = TestAmqp::new();
    let pool = db.pool();
    let tenants: BTreeSet<i64> = create_tenants(&pool, 30).await.into_iter().collect();
    let settings = |instance: &str| {
        settings_with(&[
            ("ENTRASYNC_DATABASE_URL", &db.url),
            ("ENTRASYNC_AMQP_PREFIX", &amqp.prefix),
            ("ENTRASYNC_INSTANCE_ID", instance),
            ("ENTRASYNC_SERVE_ROLES", "scheduler"),
        ])
    };
    let services: Vec<_> = ["a", "b", "c"].iter().map(|i| start_service(&settings(i)).0).collect();

    let all_held_by = |expected: usize| {
        let (pool, tenants) = (pool.clone(), tenants.clone());
        move || {
            let (pool, tenants) = (pool.clone(), tenants.clone());
            async move {
                let by_holder = holders(&pool).await;
                let held: Vec<i64> = by_holder.values().flatten().copied().collect();
                by_holder.len() == expected && held.len() == tenants.len() && tenants.iter().all(|t| held.contains(t))
            }
        }
    };
    assert!(eventually(Duration::from_secs(30), all_held_by(3)).await, "leases: {:?}", holders(&pool).await);
    // An instance that came up first holds everything until the others' heartbeats make it hand over:
    // the spread settles within a few renewal periods.
    let balanced = || {
        let pool = pool.clone();
        async move { holders(&pool).await.values().all(|held| (4..=17).contains(&held.len())) }
    };
    assert!(eventually(Duration::from_secs(30), balanced).await, "uneven spread: {:?}", holders(&pool).await);

    // Each tenant is supervised by exactly the instance holding its lease, and the spread is even.
    let by_holder = holders(&pool).await;
    for (service, name) in services.iter().zip(["a", "b", "c"]) {
        let supervised: BTreeSet<i64> = service.supervised_tenants().await.into_iter().collect();
        assert_eq!(supervised, by_holder[name], "instance {name} supervises exactly its leased tenants");
        assert!((4..=17).contains(&supervised.len()), "uneven spread: {by_holder:?}");
    }

    // An orderly exit hands the tenants over at once (one renewal period, not a lease TTL).
    let mut services = services.into_iter();
    let a = services.next().unwrap();
    a.shutdown().await;
    assert!(eventually(Duration::from_secs(12), all_held_by(2)).await, "after a left: {:?}", holders(&pool).await);

    // An instance that stops renewing (its process hangs or dies) loses its tenants once the lease expires.
    let b = services.next().unwrap();
    b.abort();
    assert!(eventually(Duration::from_secs(30), all_held_by(1)).await, "after b died: {:?}", holders(&pool).await);
    let c = services.next().unwrap();
    assert_eq!(c.supervised_tenants().await.len(), tenants.len(), "expected c, the last instance, to supervise all");
    c.shutdown().await;
}
