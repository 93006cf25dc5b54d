//! One group's membership: the generated member list (immutable, sorted) plus the changes made since,
//! each stamped with its USN so delta rounds can emit add/remove slices.

use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Debug, Default, Clone)]
pub struct Membership {
    /// Sorted packed refs, present since the group was born.
    base: Vec<u32>,
    /// Latest state of every member changed after generation: (usn, is member now).
    changes: BTreeMap<u32, (u64, bool)>,
    /// USN of the last membership change.
    pub usn: u64,
}

impl Membership {
    pub fn from_sorted(mut base: Vec<u32>) -> Self {
        base.sort_unstable();
        base.dedup();
        Self { base, changes: BTreeMap::new(), usn: 0 }
    }

    pub fn contains(&self, member: u32) -> bool {
        match self.changes.get(&member) {
            Some((_, present)) => *present,
            None => self.base.binary_search(&member).is_ok(),
        }
    }

    /// Records an add or a removal; false when it changes nothing.
    pub fn set(&mut self, member: u32, present: bool, usn: u64) -> bool {
        if self.contains(member) == present {
            return false;
        }
        self.changes.insert(member, (usn, present));
        self.usn = usn;
        true
    }

    /// Forgets every member (the group itself was permanently deleted).
    pub fn clear(&mut self) {
        self.base = Vec::new();
        self.changes.clear();
    }

    pub fn len(&self) -> usize {
        self.current_after(None).count()
    }

    pub fn is_empty(&self) -> bool {
        self.current_after(None).next().is_none()
    }

    /// Current members in ascending packed order, strictly after `after`.
    pub fn current_after(&self, after: Option<u32>) -> impl Iterator<Item = u32> + '_ {
        self.listing_after(after, None).map(|(m, _)| m)
    }

    /// Current members as adds, plus removals made after USN `since`, in ascending packed order:
    /// what a client that may hold older members needs to converge on a re-created (restored) group.
    pub fn full_listing_after(&self, since: u64, after: Option<u32>) -> impl Iterator<Item = (u32, bool)> + '_ {
        self.listing_after(after, Some(since))
    }

    fn listing_after(&self, after: Option<u32>, removals_since: Option<u64>) -> impl Iterator<Item = (u32, bool)> + '_ {
        let start = match after {
            Some(a) => self.base.partition_point(|m| *m <= a),
            None => 0,
        };
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut base = self.base[start..].iter().copied().peekable();
        let mut changed = self.changes.range((lower, Bound::Unbounded)).peekable();
        let removal = move |usn: u64| removals_since.is_some_and(|since| usn > since);
        std::iter::from_fn(move || loop {
            let next_base = base.peek().copied();
            let next_changed = changed.peek().map(|(m, (usn, p))| (**m, *usn, *p));
            match (next_base, next_changed) {
                (None, None) => return None,
                (Some(b), Some((c, usn, present))) if c <= b => {
                    changed.next();
                    if c == b {
                        base.next();
                    }
                    if present || removal(usn) {
                        return Some((c, present));
                    }
                }
                (Some(b), _) => {
                    base.next();
                    return Some((b, true));
                }
                (None, Some((c, usn, present))) => {
                    changed.next();
                    if present || removal(usn) {
                        return Some((c, present));
                    }
                }
            }
        })
    }

    /// Membership changes after USN `since`, in ascending packed order, strictly after `after`:
    /// (member, still a member).
    pub fn changes_after(&self, since: u64, after: Option<u32>) -> impl Iterator<Item = (u32, bool)> + '_ {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.changes
            .range((lower, Bound::Unbounded))
            .filter(move |(_, (usn, _))| *usn > since)
            .map(|(m, (_, present))| (*m, *present))
    }

    pub fn heap_bytes(&self) -> usize {
        self.base.capacity() * 4 + self.changes.len() * 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_generated_members_with_later_changes() {
        let mut m = Membership::from_sorted(vec![2, 4, 6]);
        assert!(m.set(5, true, 10));
        assert!(m.set(4, false, 11));
        assert!(!m.set(2, true, 12), "already a member");
        assert_eq!(m.current_after(None).collect::<Vec<_>>(), vec![2, 5, 6]);
        assert_eq!(m.current_after(Some(2)).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(m.changes_after(10, None).collect::<Vec<_>>(), vec![(4, false)]);
        assert_eq!(m.changes_after(0, None).collect::<Vec<_>>(), vec![(4, false), (5, true)]);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m.full_listing_after(10, None).collect::<Vec<_>>(),
            vec![(2, true), (4, false), (5, true), (6, true)]
        );
    }
}
