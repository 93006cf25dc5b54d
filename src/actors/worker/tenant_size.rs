//! The tenants' Graph sizes ([`TenantSize`], from their live users), kept per process for an hour. The
//! job's start counts a tenant's live users (up to [`TenantSize::USERS_THAT_DECIDE`]) only when its size
//! is not known here: the count read up to 501 rows and was the costliest part of an unchanged run's start
//! (~0.2 ms of Postgres per run, issue 16 target 5). The size only picks the tenant's Graph quota tier, so
//! an hour-old size costs at most an hour of a too cautious (or, for a shrinking tenant, a too generous but
//! still throttled and retried) request rate.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::graph::TenantSize;

/// How long a counted size is used before the users are counted again.
const KEEP_FOR: Duration = Duration::from_secs(3600);
/// More tenants than this in one process: the cache starts over (a bound on memory).
const MAX_TENANTS: usize = 100_000;

/// Sizes by Entra tenant id, with when they were counted.
#[derive(Default)]
struct Sizes(Mutex<HashMap<Uuid, (TenantSize, Instant)>>);

impl Sizes {
    fn known(&self, tenant: Uuid, now: Instant) -> Option<TenantSize> {
        let sizes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        sizes.get(&tenant).filter(|(_, counted)| now.duration_since(*counted) < KEEP_FOR).map(|(size, _)| *size)
    }

    fn keep(&self, tenant: Uuid, size: TenantSize, now: Instant) {
        let mut sizes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if sizes.len() >= MAX_TENANTS && !sizes.contains_key(&tenant) {
            sizes.clear();
        }
        sizes.insert(tenant, (size, now));
    }
}

fn sizes() -> &'static Sizes {
    static SIZES: OnceLock<Sizes> = OnceLock::new();
    SIZES.get_or_init(Sizes::default)
}

/// The tenant's size, if it was counted within the last hour.
pub(super) fn known(tenant: Uuid) -> Option<TenantSize> {
    sizes().known(tenant, Instant::now())
}

/// Keeps the size just counted from the tenant's live users.
pub(super) fn keep(tenant: Uuid, size: TenantSize) {
    sizes().keep(tenant, size, Instant::now());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_size_is_known_for_an_hour_after_it_was_counted() {
        let sizes = Sizes::default();
        let (tenant, counted) = (Uuid::new_v4(), Instant::now());
        assert_eq!(sizes.known(tenant, counted), None, "nothing counted yet");
        sizes.keep(tenant, TenantSize::Large, counted);
        assert_eq!(sizes.known(tenant, counted + Duration::from_secs(3599)), Some(TenantSize::Large));
        assert_eq!(sizes.known(tenant, counted + KEEP_FOR), None, "counted again after an hour");
        assert_eq!(sizes.known(Uuid::new_v4(), counted), None, "per tenant");
    }
}
