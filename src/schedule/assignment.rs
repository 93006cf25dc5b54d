//! Rendezvous (highest random weight) hashing: every instance computes the same owner for a tenant from
//! the list of live instances alone, tenants spread evenly, and when an instance joins or leaves only
//! the tenants it gains or loses move.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The live instance that should supervise `tenant_id`, or `None` when no instance is live.
pub fn owner_of(tenant_id: i64, instances: &[String]) -> Option<&str> {
    instances.iter().max_by_key(|instance| (weight(tenant_id, instance), instance.as_str())).map(String::as_str)
}

fn weight(tenant_id: i64, instance: &str) -> u64 {
    xxh3_64_with_seed(instance.as_bytes(), tenant_id as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("instance-{i}")).collect()
    }

    #[test]
    fn tenants_spread_evenly_over_instances() {
        let instances = names(3);
        let mut counts = [0usize; 3];
        for tenant in 1..=3000 {
            let owner = owner_of(tenant, &instances).unwrap();
            counts[instances.iter().position(|i| i == owner).unwrap()] += 1;
        }
        for count in counts {
            assert!((850..=1150).contains(&count), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn only_the_leaving_instances_tenants_move() {
        let all = names(4);
        let without_two: Vec<String> = all.iter().filter(|i| *i != "instance-2").cloned().collect();
        let mut moved = 0;
        for tenant in 1..=1000 {
            let before = owner_of(tenant, &all).unwrap();
            let after = owner_of(tenant, &without_two).unwrap();
            if before != "instance-2" {
                assert_eq!(before, after, "tenant {tenant} moved although its owner stayed");
            } else {
                moved += 1;
            }
        }
        assert!(moved > 150, "instance-2 owned only {moved} tenants");
    }

    #[test]
    fn no_live_instance_means_no_owner() {
        assert_eq!(owner_of(1, &[]), None);
    }
}
