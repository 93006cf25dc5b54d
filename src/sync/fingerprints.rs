//! A set of 64-bit fingerprints of what a round has written, whose only answer that counts is "surely
//! not written" (docs/sync.md "What a round remembers"): the write then needs no lookup and no conflict
//! check. Two keys sharing a fingerprint only make the second one take the checked path, so the set can
//! be 8 bytes a key whatever the key. Its memory (9 bytes per slot, 9–19 per key) is reserved from the
//! round's [`SnapshotBudget`]; when the budget refuses, the set is given up and every key takes the
//! checked path again.

use std::collections::HashSet;

use uuid::Uuid;

use super::snapshot::{Lease, SnapshotBudget};

#[derive(Debug)]
pub(super) struct Fingerprints<'b> {
    prints: HashSet<u64>,
    /// `None` once given up.
    lease: Option<Lease<'b>>,
}

impl<'b> Fingerprints<'b> {
    const BYTES_PER_SLOT: u64 = 9;

    pub(super) fn new(budget: &'b SnapshotBudget) -> Self {
        Self { prints: HashSet::new(), lease: Some(Lease::empty(budget)) }
    }

    /// An object id's fingerprint (Entra ids are random: folding the halves keeps them uniform).
    pub(super) fn of_id(id: &Uuid) -> u64 {
        let (high, low) = id.as_u64_pair();
        high ^ low
    }

    /// A membership's fingerprint; (a, b) and (b, a) differ.
    pub(super) fn of_pair(group: &Uuid, member: &Uuid) -> u64 {
        Self::of_id(group).rotate_left(29) ^ Self::of_id(member)
    }

    /// True only if `print` was never added (and the set was not given up).
    pub(super) fn surely_absent(&self, print: u64) -> bool {
        self.lease.is_some() && !self.prints.contains(&print)
    }

    pub(super) fn add(&mut self, prints: impl ExactSizeIterator<Item = u64>) {
        let Some(lease) = self.lease.as_mut() else { return };
        if prints.len() == 0 {
            return;
        }
        // The table grows to the next power of two at 7/8 full.
        let slots = ((self.prints.len() + prints.len()).saturating_mul(8) / 7).next_power_of_two();
        let bytes = (slots as u64).saturating_mul(Self::BYTES_PER_SLOT);
        if bytes > lease.bytes() && !lease.grow(bytes - lease.bytes()) {
            tracing::info!(kept = self.prints.len(), "written keys outgrow the snapshot budget: each is checked again");
            // Dropping the lease gives its memory back.
            self.lease = None;
            self.prints = HashSet::new();
            return;
        }
        self.prints.extend(prints);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_key_is_not_surely_absent_and_neither_is_one_sharing_its_fingerprint() {
        let budget = SnapshotBudget::new(1 << 20);
        let mut written = Fingerprints::new(&budget);
        let (a, b) = (Uuid::from_u64_pair(5, 9), Uuid::from_u64_pair(7, 13));
        assert!(written.surely_absent(Fingerprints::of_id(&a)));
        written.add([Fingerprints::of_id(&a)].into_iter());
        assert!(!written.surely_absent(Fingerprints::of_id(&a)), "added: checked");
        assert!(written.surely_absent(Fingerprints::of_id(&b)));
        let twin = Uuid::from_u64_pair(5 ^ 0xff, 9 ^ 0xff);
        assert!(
            !written.surely_absent(Fingerprints::of_id(&twin)),
            "the same fingerprint: checked, never taken for absent"
        );
        assert_ne!(Fingerprints::of_pair(&a, &b), Fingerprints::of_pair(&b, &a));
        assert!(budget.in_use_bytes() > 0, "the set's memory is reserved");
        drop(written);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    #[test]
    fn keys_over_the_budget_are_given_up_and_then_every_key_is_checked() {
        let budget = SnapshotBudget::new(4_096);
        let mut written = Fingerprints::new(&budget);
        let prints = |n: usize| (0..n).map(|_| Fingerprints::of_id(&Uuid::new_v4()));
        written.add(prints(10));
        assert!(budget.in_use_bytes() > 0);
        written.add(prints(1_000));
        assert_eq!(budget.in_use_bytes(), 0, "the set's memory goes back");
        assert!(!written.surely_absent(Fingerprints::of_id(&Uuid::new_v4())), "given up: every key is checked");
        written.add(prints(10));
        assert_eq!(budget.in_use_bytes(), 0, "and it does not grow again");
    }
}
