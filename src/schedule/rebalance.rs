//! One lease round of a coordinator: heartbeat, then hold exactly the tenants rendezvous hashing gives
//! this instance among the live ones.

use std::collections::BTreeSet;
use std::time::Duration;

use super::assignment::owner_of;
use crate::store::{leases, Pool, StoreError};

/// What this instance should do after the first half of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// Leases held and still wanted: keep their supervisors.
    pub keep: BTreeSet<i64>,
    /// Leases held but now another instance's: stop their supervisors, then release.
    pub surplus: Vec<i64>,
    /// Tenants this instance should own but does not hold yet.
    pub wanted: Vec<i64>,
    pub live_instances: usize,
}

/// Beats, renews every own lease, and works out what to keep, give up and take.
pub async fn survey(pool: &Pool, instance: &str, ttl: Duration) -> Result<LeaseView, StoreError> {
    leases::heartbeat(pool, instance).await?;
    let live = leases::live_instances(pool, ttl).await?;
    let tenants = leases::supervisable_tenants(pool).await?;
    let desired: BTreeSet<i64> = tenants.into_iter().filter(|t| owner_of(*t, &live) == Some(instance)).collect();
    let held: BTreeSet<i64> = leases::renew(pool, instance, ttl).await?.into_iter().collect();
    Ok(LeaseView {
        keep: held.intersection(&desired).copied().collect(),
        surplus: held.difference(&desired).copied().collect(),
        wanted: desired.difference(&held).copied().collect(),
        live_instances: live.len(),
    })
}

/// Releases the surplus (its supervisors are stopped by now) and takes what is free of the wanted.
/// Returns the tenants acquired.
pub async fn settle(pool: &Pool, instance: &str, view: &LeaseView, ttl: Duration) -> Result<Vec<i64>, StoreError> {
    leases::release(pool, instance, &view.surplus).await?;
    leases::acquire(pool, instance, &view.wanted, ttl).await
}
