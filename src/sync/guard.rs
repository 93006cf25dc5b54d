//! Safety guards: too many deletions are held for an operator; a full listing far shorter than what is
//! stored fails the run instead of deleting.

/// Deletions in one run at or above `min(max_deletions, max_percent % of stored objects)` are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletionGuard {
    pub max_deletions: u64,
    pub max_percent: u8,
}

impl Default for DeletionGuard {
    fn default() -> Self {
        Self { max_deletions: 500, max_percent: 20 }
    }
}

impl DeletionGuard {
    /// The number of deletions that is held, given the live objects stored before the deletions.
    pub fn limit(&self, stored: u64) -> u64 {
        let by_percent = (u128::from(stored) * u128::from(self.max_percent)).div_ceil(100);
        let by_percent = u64::try_from(by_percent).unwrap_or(u64::MAX);
        self.max_deletions.min(by_percent).max(1)
    }

    pub fn holds(&self, deletions: u64, stored: u64) -> bool {
        deletions > 0 && deletions >= self.limit(stored)
    }

    /// How many stored objects it is worth counting for `deletions`: `holds(deletions, n)` is the same
    /// for every `n` at or above it, so a count capped here decides like the full count. 0: the stored
    /// count does not matter (no deletions, or at least `max_deletions` of them).
    pub fn stored_that_decides(&self, deletions: u64) -> u64 {
        if deletions == 0 || deletions >= self.max_deletions || self.max_percent == 0 {
            return 0;
        }
        // Not held once ⌈stored × percent / 100⌉ > deletions, i.e. stored > deletions × 100 / percent.
        let threshold = u128::from(deletions) * 100 / u128::from(self.max_percent) + 1;
        u64::try_from(threshold).unwrap_or(u64::MAX)
    }
}

/// Below this many stored objects only an empty listing counts as short (small tenants shrink legitimately).
const SHORT_LISTING_MIN_STORED: u64 = 20;

/// Why a full listing must not be trusted for a sweep, or `None` when it can be.
/// `listed`: distinct objects the round listed; `stored_live`: live objects stored now (listed included).
pub fn short_listing(listed: u64, stored_live: u64) -> Option<String> {
    if stored_live == 0 {
        return None;
    }
    if listed == 0 {
        return Some(format!(
            "the full listing returned no objects while {stored_live} are stored; nothing was deleted \
             (check the app's permissions in the tenant, then request a full scan)"
        ));
    }
    // Listed objects are stored live too, so this means the sweep would delete more than it kept.
    if stored_live >= SHORT_LISTING_MIN_STORED && listed * 2 < stored_live {
        return Some(format!(
            "the full listing returned only {listed} objects while {stored_live} are stored; nothing was deleted \
             (a listing this short is more likely a Graph or permission problem than real deletions)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_capped_where_it_decides_holds_like_the_full_count() {
        let guards = [
            DeletionGuard { max_deletions: 500, max_percent: 20 },
            DeletionGuard { max_deletions: 500, max_percent: 100 },
            DeletionGuard { max_deletions: 3, max_percent: 1 },
            DeletionGuard { max_deletions: u64::MAX, max_percent: 100 },
            DeletionGuard { max_deletions: u64::MAX, max_percent: 7 },
        ];
        for guard in guards {
            for deletions in (0..40).chain([99, 100, 101, 499, 500, 501, 1_733]) {
                let cap = guard.stored_that_decides(deletions);
                for stored in (0..400).chain([999, 1_000, 8_665, 8_666, 8_667, 10_000, 1_000_000]) {
                    assert_eq!(
                        guard.holds(deletions, stored.min(cap)),
                        guard.holds(deletions, stored),
                        "{guard:?}: {deletions} deletions, {stored} stored, counted up to {cap}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_lower_of_count_and_percentage_wins() {
        let guard = DeletionGuard { max_deletions: 500, max_percent: 20 };
        assert_eq!(guard.limit(100_000), 500);
        assert_eq!(guard.limit(1_000), 200);
        assert!(guard.holds(500, 100_000));
        assert!(!guard.holds(499, 100_000));
        assert!(guard.holds(200, 1_000));
        assert!(!guard.holds(0, 0));
        let count_only = DeletionGuard { max_deletions: 500, max_percent: 100 };
        assert!(count_only.holds(600, 10_600));
        assert!(!count_only.holds(499, 600));
    }

    #[test]
    fn empty_or_far_shorter_listings_are_not_trusted() {
        assert!(short_listing(0, 10_000).is_some_and(|r| r.contains("no objects") && r.contains("10000")));
        assert!(short_listing(4_000, 10_000).is_some());
        assert!(short_listing(6_000, 10_000).is_none());
        assert!(short_listing(0, 0).is_none());
        assert!(short_listing(1, 5).is_none(), "small tenants may shrink");
        assert!(short_listing(0, 1).is_some());
    }
}
