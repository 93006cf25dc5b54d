//! The re-scan snapshot of a full round (issue 16; docs/sync.md "Snapshot path", docs/architecture.md §3):
//! the (tenant, class)'s stored `(object_id, marker)` pairs read once at the round's start, sorted by id,
//! so each page is compared in memory instead of probing a marker per object, and the objects the listing
//! saw are a bitmap over the snapshot instead of a scratch row each. The sweep at the end is the set
//! difference. What the bitmap gains per batch is persisted in the batch's transaction as one row of ids
//! (`sync_run_seen_chunks`), so a resumed run (any worker, any process) reads the snapshot again and
//! restores its marks from those rows.
//!
//! Memory: 24 bytes per object (id and marker), four bits (seen, soft-deleted, created by this run, ask
//! the store) and at most 4 bytes of the radix index that finds an id in one or two cache lines, reserved from a per-instance [`SnapshotBudget`] as the rows arrive; a snapshot that would
//! exceed it is dropped and the round takes the streaming path (a marker probe and a seen row per object).
//! The ids the run inserts are remembered too (a fingerprint each, [`Fingerprints`]), so an id in neither
//! is known to be new without a lookup: a new tenant's first round asks the store nothing.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use super::apply::PageTarget;
use super::error::SyncError;
use super::fingerprints::Fingerprints;
use crate::store::objects::{self, StoredState};
use crate::store::{run_scratch, Pool};

/// The default of `sync.snapshot_budget_mb`: about 10,000,000 objects across the instance's rounds.
pub const DEFAULT_BUDGET_MB: u64 = 256;

/// Bytes a snapshot holds per object: the id and the marker, four bits rounded up, the radix index.
const BYTES_PER_OBJECT: u64 = 29;
/// Rows gathered per allocation while the snapshot is read (768 KB); the budget is reserved per block.
const BLOCK: usize = 32 * 1024;

/// Memory the snapshots of an instance's concurrent rounds may hold together (`sync.snapshot_budget_mb`).
/// A round reserves as it reads and releases when it ends; a round that cannot reserve takes the
/// streaming path, so concurrent rounds of large tenants cannot exhaust memory.
#[derive(Debug)]
pub struct SnapshotBudget {
    limit: AtomicU64,
    used: AtomicU64,
}

static INSTANCE: SnapshotBudget = SnapshotBudget::new(DEFAULT_BUDGET_MB << 20);

impl SnapshotBudget {
    /// A budget of `limit_bytes` (0: every round streams).
    pub const fn new(limit_bytes: u64) -> Self {
        Self { limit: AtomicU64::new(limit_bytes), used: AtomicU64::new(0) }
    }

    /// The process's budget, which [`run_round`](super::run_round) uses: `sync.snapshot_budget_mb` once the
    /// service has set it ([`Self::set_limit_mb`]), [`DEFAULT_BUDGET_MB`] until then.
    pub fn instance() -> &'static SnapshotBudget {
        &INSTANCE
    }

    pub fn set_limit_mb(&self, megabytes: u64) {
        self.limit.store(megabytes.saturating_mul(1 << 20), Ordering::Relaxed);
    }

    pub fn limit_bytes(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes the snapshots of running rounds hold now.
    pub fn in_use_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_reserve(&self, bytes: u64) -> bool {
        let limit = self.limit_bytes();
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok()
    }

    fn release(&self, bytes: u64) {
        // Never below zero, even if the limit changed meanwhile (it does not touch `used`).
        // The closure always answers `Some`: the update cannot fail.
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| Some(used.saturating_sub(bytes)))
            .unwrap_or_default();
    }
}

/// Memory reserved from a budget, released when dropped.
#[derive(Debug)]
pub(super) struct Lease<'b> {
    budget: &'b SnapshotBudget,
    bytes: u64,
}

impl<'b> Lease<'b> {
    pub(super) fn empty(budget: &'b SnapshotBudget) -> Self {
        Self { budget, bytes: 0 }
    }

    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(super) fn grow(&mut self, bytes: u64) -> bool {
        let granted = self.budget.try_reserve(bytes);
        if granted {
            self.bytes += bytes;
        }
        granted
    }

    fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.budget.release(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// One stored object: 24 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: Uuid,
    marker: i64,
}

/// A fixed-size bit set over the snapshot's entries.
#[derive(Debug, Default)]
struct Bits {
    words: Vec<u64>,
    len: usize,
}

impl Bits {
    fn with_len(len: usize) -> Self {
        Self { words: vec![0; len.div_ceil(64)], len }
    }

    fn get(&self, index: usize) -> bool {
        index < self.len && self.words[index / 64] & (1u64 << (index % 64)) != 0
    }

    /// Clears the bit; true if it was set.
    fn clear(&mut self, index: usize) -> bool {
        let was_set = self.get(index);
        if was_set {
            self.words[index / 64] &= !(1u64 << (index % 64));
        }
        was_set
    }

    /// Sets the bit; true if it was clear. An index out of range is ignored.
    fn set(&mut self, index: usize) -> bool {
        if index >= self.len {
            return false;
        }
        let (word, mask) = (&mut self.words[index / 64], 1u64 << (index % 64));
        let was_clear = *word & mask == 0;
        *word |= mask;
        was_clear
    }

    fn bytes(&self) -> u64 {
        (self.words.len() * 8) as u64
    }
}

/// What the snapshot says about an id a page carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Known {
    /// Stored as the snapshot says (its index, for the seen mark).
    Stored(usize, StoredState),
    /// Not stored: outside the snapshot, and this run has not inserted it since.
    Absent,
    /// The snapshot cannot say: ask the store (an object this run may have inserted since the snapshot
    /// was read, or one that may have changed outside this run: a deletion held for an operator may be
    /// allowed while the round runs).
    Ask(Option<usize>),
}

/// What a batch adds to what the round remembers, set in memory once its transaction has committed: its
/// seen marks and the ids it inserted (the snapshot's), the memberships it wrote (the round's).
#[derive(Debug, Default)]
pub(super) struct BatchMarks {
    /// Snapshot entries the batch saw first.
    pub(super) indices: Vec<usize>,
    /// Stored objects outside the snapshot the batch saw first (rare: rows the store gained after the
    /// snapshot was read that this run did not create, such as its own tombstones restored).
    pub(super) extra: Vec<Uuid>,
    /// Objects and tombstones the batch inserted: stored from now on, though outside the snapshot.
    pub(super) inserted: Vec<Uuid>,
    /// Fingerprints of the memberships it wrote for groups the run created or marked seen for stored
    /// ones (group rounds, not the snapshot's: the round keeps them).
    pub(super) memberships: Vec<u64>,
    /// Snapshot entries the batch restored (soft-deleted, listed again): live from now on.
    pub(super) restored: Vec<usize>,
    /// Objects outside the snapshot the batch restored: tombstones the run wrote, listed again (Graph may
    /// report removals in a full listing; the emulator does not).
    pub(super) restored_outside: u64,
    /// New objects the batch created (live, `created_run` this run).
    pub(super) created: u64,
}

/// The (tenant, class)'s stored objects when the round (or its resumption) started, and what the listing
/// has seen of them.
#[derive(Debug)]
pub(super) struct Snapshot<'b> {
    /// Sorted by id.
    entries: Vec<Entry>,
    index: RadixIndex,
    seen: Bits,
    deleted: Bits,
    /// Created by this run (a resumed run's earlier batches): listed and changed through `created_run`.
    created: Bits,
    /// A deletion of it is held for an operator: its row may change outside the run, so ask the store.
    ask: Bits,
    seen_count: u64,
    extra_seen: HashSet<Uuid>,
    /// Live objects but those with a held deletion: the snapshot's when it was read, plus those the run
    /// made live since (created or restored). With the held ones counted by the store, the live count at
    /// the round's end without reading every row again (`live_count`).
    live_but_held: u64,
    /// The entries with a deletion held for an operator when the snapshot was read (their `ask` bits).
    held: Vec<Uuid>,
    /// Objects the run created: before the snapshot was read (a resumed run) and since.
    created_count: u64,
    /// The ids this run inserted since the snapshot was read (new objects and tombstones).
    inserted: Fingerprints<'b>,
    _lease: Lease<'b>,
}

impl<'b> Snapshot<'b> {
    /// Reads the snapshot of `target`'s (tenant, class); `None` when it does not fit in what `budget` has
    /// left (the round streams instead).
    pub(super) async fn load(
        pool: &Pool,
        budget: &'b SnapshotBudget,
        target: PageTarget,
    ) -> Result<Option<Snapshot<'b>>, SyncError> {
        if budget.limit_bytes() == 0 {
            return Ok(None);
        }
        let mut client = pool.get().await?;
        let mut lease = Lease::empty(budget);
        let mut blocks: Vec<Vec<Entry>> = Vec::new();
        // Soft-deleted and created ones are few; each id held costs 16 bytes until the entries are sorted.
        let (mut deleted_ids, mut created_ids) = (Vec::new(), Vec::new());
        let held = objects::read_snapshot(&mut client, target.tenant_id, target.class, target.run_id, |row| {
            let fits = if blocks.last().is_none_or(|block| block.len() == BLOCK) {
                let granted = lease.grow(BLOCK as u64 * BYTES_PER_OBJECT);
                if granted {
                    blocks.push(Vec::with_capacity(BLOCK));
                }
                granted
            } else {
                true
            };
            let flagged = row.deleted || row.created_in_run;
            if !fits || (flagged && !lease.grow(16)) {
                return ControlFlow::Break(());
            }
            if row.deleted {
                deleted_ids.push(row.object_id);
            }
            if row.created_in_run {
                created_ids.push(row.object_id);
            }
            if let Some(block) = blocks.last_mut() {
                block.push(Entry { id: row.object_id, marker: row.marker });
            }
            ControlFlow::Continue(())
        })
        .await?;
        drop(client);
        let Some(held) = held else {
            tracing::info!(
                limit_mb = budget.limit_bytes() >> 20,
                in_use_mb = budget.in_use_bytes() >> 20,
                "the snapshot does not fit in the budget: the round streams"
            );
            return Ok(None);
        };

        // One exact allocation, filled from the last block back so each block is freed from the top.
        let len = blocks.iter().map(Vec::len).sum();
        let mut entries = Vec::with_capacity(len);
        while let Some(block) = blocks.pop() {
            entries.extend_from_slice(&block);
        }
        entries.sort_unstable_by_key(|entry: &Entry| entry.id);
        let mut snapshot = Snapshot {
            index: RadixIndex::over(&entries),
            seen: Bits::with_len(len),
            deleted: Bits::with_len(len),
            created: Bits::with_len(len),
            ask: Bits::with_len(len),
            entries,
            seen_count: 0,
            extra_seen: HashSet::new(),
            live_but_held: 0,
            held: Vec::new(),
            created_count: created_ids.len() as u64,
            inserted: Fingerprints::new(budget),
            _lease: lease,
        };
        for id in &deleted_ids {
            if let Some(index) = snapshot.index(id) {
                snapshot.deleted.set(index);
            }
        }
        for id in &created_ids {
            if let Some(index) = snapshot.index(id) {
                snapshot.created.set(index);
            }
        }
        for id in &held {
            if let Some(index) = snapshot.index(id) {
                snapshot.ask.set(index);
            }
        }
        snapshot.live_but_held =
            (0..len).filter(|index| !snapshot.deleted.get(*index) && !snapshot.ask.get(*index)).count() as u64;
        snapshot.held = held;
        let exact = (snapshot.entries.capacity() * std::mem::size_of::<Entry>()) as u64
            + (snapshot.held.capacity() * std::mem::size_of::<Uuid>()) as u64
            + 4 * snapshot.seen.bytes()
            + snapshot.index.bytes();
        snapshot._lease.shrink_to(exact);
        tracing::debug!(objects = len, bytes = exact, "snapshot read");
        Ok(Some(snapshot))
    }

    /// Restores the marks a resumed run committed before: its seen chunks (snapshot path) and its seen
    /// rows (streaming path, should an earlier part of the run have streamed).
    pub(super) async fn restore_marks(&mut self, pool: &Pool, run_id: Uuid) -> Result<(), SyncError> {
        let client = pool.get().await?;
        let (chunks, rows) =
            futures::try_join!(run_scratch::seen_chunks(&client, run_id), run_scratch::seen_ids(&client, run_id))?;
        let chunk_ids = chunks.iter().flat_map(|chunk| chunk.chunks_exact(16)).filter_map(|b| Uuid::from_slice(b).ok());
        for id in chunk_ids.chain(rows) {
            match self.index(&id) {
                Some(index) => {
                    // Marks are only ever made for objects this run did not create.
                    if !self.created.get(index) && self.seen.set(index) {
                        self.seen_count += 1;
                    }
                }
                None => {
                    self.extra_seen.insert(id);
                }
            }
        }
        Ok(())
    }

    pub(super) fn index(&self, id: &Uuid) -> Option<usize> {
        self.index.find(&self.entries, id)
    }

    /// What the snapshot knows of `id`.
    pub(super) fn known(&self, id: &Uuid) -> Known {
        match self.index(id) {
            None if self.inserted.surely_absent(Fingerprints::of_id(id)) => Known::Absent,
            None => Known::Ask(None),
            Some(index) if self.ask.get(index) => Known::Ask(Some(index)),
            Some(index) => Known::Stored(
                index,
                StoredState {
                    marker: self.entries[index].marker,
                    deleted: self.deleted.get(index),
                    created_in_run: self.created.get(index),
                },
            ),
        }
    }

    /// Whether the entry at `index` was seen by a committed batch.
    pub(super) fn seen_at(&self, index: usize) -> bool {
        self.seen.get(index)
    }

    /// Whether a stored object outside the snapshot was seen by a committed batch.
    pub(super) fn seen_extra(&self, id: &Uuid) -> bool {
        self.extra_seen.contains(id)
    }

    /// Sets a committed batch's marks.
    pub(super) fn mark(&mut self, marks: BatchMarks) {
        for index in marks.indices {
            if self.seen.set(index) {
                self.seen_count += 1;
            }
        }
        self.extra_seen.extend(marks.extra);
        self.inserted.add(marks.inserted.iter().map(Fingerprints::of_id));
        // An entry with a held deletion is counted by the store at the end, whatever the run did to it.
        for index in marks.restored {
            if !self.ask.get(index) && self.deleted.clear(index) {
                self.live_but_held += 1;
            }
        }
        self.live_but_held += marks.restored_outside + marks.created;
        self.created_count += marks.created;
    }

    /// The live objects stored now, but for those with a deletion held for an operator when the snapshot
    /// was read (their rows may change outside the run: [`Self::held_ids`], for the store to count).
    /// Exact because only the run writes the (tenant, class)'s rows while it holds the lock, and its
    /// deletions wait for the round's end.
    pub(super) fn live_count_but_held(&self) -> u64 {
        self.live_but_held
    }

    /// The entries with a deletion held for an operator when the snapshot was read.
    pub(super) fn held_ids(&self) -> &[Uuid] {
        &self.held
    }

    /// Objects the run created (`created_run`), as the store would count them.
    pub(super) fn created_count(&self) -> u64 {
        self.created_count
    }

    /// Stored objects the listing saw that the run did not create.
    pub(super) fn seen_count(&self) -> u64 {
        self.seen_count + self.extra_seen.len() as u64
    }

    /// Objects live when the snapshot was read, not created by this run, that the listing did not see:
    /// the sweep's candidates (the store stages those still live and not created by the run).
    pub(super) fn unseen_live(&self) -> Vec<Uuid> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(index, _)| !self.seen.get(*index) && !self.deleted.get(*index) && !self.created.get(*index))
            .map(|(_, entry)| entry.id)
            .collect()
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Where the ids starting with each `bits`-bit prefix begin in the sorted entries: a lookup reads one
/// bucket (about one entry: there are about as many buckets as entries) instead of binary-searching the
/// whole snapshot, whose ~20 probes at 1,000,000 entries each miss the cache. Entra object ids are random
/// GUIDs, so buckets are even; skewed ids only make some buckets longer (still searched in halves).
#[derive(Debug, Default)]
struct RadixIndex {
    bits: u32,
    /// `starts[p]..starts[p + 1]`: the entries whose id starts with prefix `p`.
    starts: Vec<u32>,
}

impl RadixIndex {
    /// At most 2^24 buckets (64 MB of entries per bucket count is far past any budget).
    const MAX_BITS: u32 = 24;

    fn over(entries: &[Entry]) -> Self {
        // Never more buckets than entries: at most 4 bytes per entry.
        let bits = entries.len().checked_ilog2().unwrap_or(0).min(Self::MAX_BITS);
        let mut starts = Vec::with_capacity((1usize << bits) + 1);
        let mut at = 0;
        for prefix in 0..(1u128 << bits) {
            starts.push(u32::try_from(at).unwrap_or(u32::MAX));
            while at < entries.len() && Self::prefix_of(bits, &entries[at].id) == prefix {
                at += 1;
            }
        }
        starts.push(u32::try_from(at).unwrap_or(u32::MAX));
        Self { bits, starts }
    }

    fn prefix_of(bits: u32, id: &Uuid) -> u128 {
        id.as_u128().checked_shr(128 - bits).unwrap_or(0)
    }

    fn find(&self, entries: &[Entry], id: &Uuid) -> Option<usize> {
        let prefix = usize::try_from(Self::prefix_of(self.bits, id)).ok()?;
        let (start, end) = (*self.starts.get(prefix)? as usize, *self.starts.get(prefix + 1)? as usize);
        let bucket = entries.get(start..end)?;
        bucket.binary_search_by(|entry| entry.id.cmp(id)).ok().map(|at| start + at)
    }

    fn bytes(&self) -> u64 {
        (self.starts.capacity() * 4) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_radix_index_finds_every_entry_and_nothing_else_whatever_the_ids() {
        let uniform: Vec<Uuid> = (0..5_000).map(|_| Uuid::new_v4()).collect();
        // Skewed: every id shares its first 12 bytes, so all fall in one bucket.
        let skewed: Vec<Uuid> = (0..300u128).map(|i| Uuid::from_u128((7u128 << 100) | (i * 7919))).collect();
        for ids in [Vec::new(), vec![Uuid::nil()], vec![Uuid::max()], uniform, skewed] {
            let mut entries: Vec<Entry> = ids.iter().map(|&id| Entry { id, marker: 1 }).collect();
            entries.sort_unstable_by_key(|entry| entry.id);
            let index = RadixIndex::over(&entries);
            assert!(
                index.bytes() <= 4 * entries.len() as u64 + 8,
                "{} buckets for {}",
                index.starts.len(),
                entries.len()
            );
            for (at, entry) in entries.iter().enumerate() {
                assert_eq!(index.find(&entries, &entry.id), Some(at));
            }
            for _ in 0..1_000 {
                assert_eq!(index.find(&entries, &Uuid::new_v4()), None);
            }
        }
    }

    #[test]
    fn a_budget_grants_up_to_its_limit_and_takes_back_what_a_lease_held() {
        let budget = SnapshotBudget::new(100);
        let mut lease = Lease::empty(&budget);
        assert!(lease.grow(60));
        assert!(!lease.grow(60), "over the limit");
        assert!(lease.grow(40));
        assert_eq!(budget.in_use_bytes(), 100);
        lease.shrink_to(30);
        assert_eq!(budget.in_use_bytes(), 30);
        drop(lease);
        assert_eq!(budget.in_use_bytes(), 0);
        budget.set_limit_mb(0);
        assert!(!Lease::empty(&budget).grow(1));
    }

    #[test]
    fn bits_set_once() {
        let mut bits = Bits::with_len(130);
        assert!(bits.set(129));
        assert!(!bits.set(129));
        assert!(bits.get(129) && !bits.get(128));
        assert!(!bits.set(130), "out of range is ignored");
    }

    #[test]
    fn an_entry_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 24);
    }
}
