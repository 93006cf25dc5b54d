//! Consecutive delta pages gathered into one write: a round commits once per batch instead of once per
//! page, with the last page's link as the checkpoint (a resumed run repeats at most one batch, which is
//! harmless: applying a page twice writes nothing the second time).

use futures::{Stream, StreamExt};

use crate::graph::{DeltaItem, DeltaPage, DeltaPages, GraphError, PageLink};

/// Pages the Graph client fetches ahead while a batch is gathered and written: a fifth of a default batch
/// (25 pages measured no different, docs/benchmarks.md "Stop 22").
pub const PREFETCH_PAGES: usize = 5;

/// Pages to apply in one transaction.
#[derive(Debug)]
pub struct PageBatch {
    /// The pages' items in Graph's order (the same object may repeat; the last occurrence wins).
    pub items: Vec<DeltaItem>,
    /// Where the round continues after the batch (the last page's link).
    pub next: PageLink,
    pub pages: u64,
    pub graph_requests: u64,
    pub throttled_waits: u64,
    /// Objects plus membership references held: what the batch costs in memory and statements.
    weight: usize,
}

/// An item counts once, plus once per membership reference it carries: a page of large groups holds
/// hundreds of thousands of references, and batching by objects alone held 170 MB for them.
fn weight(items: &[DeltaItem]) -> usize {
    items
        .iter()
        .map(|item| match item {
            DeltaItem::Upsert { members_added, members_removed, .. }
            | DeltaItem::Parsed { members_added, members_removed, .. } => {
                1 + members_added.len() + members_removed.len()
            }
            DeltaItem::Removed { .. } => 1,
        })
        .sum()
}

impl PageBatch {
    fn of(page: DeltaPage) -> Self {
        Self {
            weight: weight(&page.items),
            items: page.items,
            next: page.next,
            pages: 1,
            graph_requests: u64::from(page.stats.requests),
            throttled_waits: u64::from(page.stats.throttled_waits),
        }
    }

    fn absorb(&mut self, page: DeltaPage) {
        self.weight += weight(&page.items);
        self.items.extend(page.items);
        self.next = page.next;
        self.pages += 1;
        self.graph_requests += u64::from(page.stats.requests);
        self.throttled_waits += u64::from(page.stats.throttled_waits);
    }

    fn is_complete(&self, min_items: usize) -> bool {
        self.weight >= min_items || matches!(self.next, PageLink::Delta(_))
    }
}

/// Gathers a page stream into batches. A failed page ends the batch before it: the pages already
/// fetched are returned first (their progress is kept), the error with the next call.
pub struct Batches<S> {
    pages: S,
    min_items: usize,
    deferred: Option<GraphError>,
}

/// A stream of delta pages that batches can read.
pub trait PageSource: Stream<Item = Result<DeltaPage, GraphError>> + Unpin {
    /// Asks for existing objects as canonical text (`DeltaItem::Parsed`) rather than maps, where the
    /// source can tell the difference: what `prepare` hashes and stores, parsed without a tree of values
    /// (issue 16, client CPU). Either form prepares to the same objects.
    fn prefer_canonical_items(&mut self) {}
}

impl PageSource for DeltaPages {
    fn prefer_canonical_items(&mut self) {
        self.canonical_items();
    }
}

impl<I: Iterator<Item = Result<DeltaPage, GraphError>> + Unpin> PageSource for futures::stream::Iter<I> {}

impl<S: PageSource> Batches<S> {
    /// Batches end after at least `min_items` items, membership references included (Graph pages hold
    /// 100-999 objects: large enough
    /// that per-statement and per-commit costs are spread, small enough that memory stays flat) or
    /// with the round's last page. The source is asked for canonical items
    /// ([`PageSource::prefer_canonical_items`]) before its first page is read.
    pub fn new(mut pages: S, min_items: usize) -> Self {
        pages.prefer_canonical_items();
        Self { pages, min_items, deferred: None }
    }
}

impl<S: Stream<Item = Result<DeltaPage, GraphError>> + Unpin> Batches<S> {
    /// The next batch; `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<Result<PageBatch, GraphError>> {
        if let Some(error) = self.deferred.take() {
            return Some(Err(error));
        }
        let mut batch: Option<PageBatch> = None;
        loop {
            match (self.pages.next().await, batch.as_mut()) {
                (None, _) => return batch.map(Ok),
                (Some(Err(error)), None) => return Some(Err(error)),
                (Some(Err(error)), Some(_)) => {
                    self.deferred = Some(error);
                    return batch.map(Ok);
                }
                (Some(Ok(page)), None) => batch = Some(PageBatch::of(page)),
                (Some(Ok(page)), Some(open)) => open.absorb(page),
            }
            if batch.as_ref().is_some_and(|batch| batch.is_complete(self.min_items)) {
                return batch.map(Ok);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{MemberRef, RequestStats};
    use serde_json::Map;

    fn page(items: usize, next: PageLink) -> Result<DeltaPage, GraphError> {
        let items = (0..items).map(|i| DeltaItem::Removed { id: format!("id-{i}"), permanent: false }).collect();
        Ok(DeltaPage { items, next, stats: RequestStats { requests: 1, ..RequestStats::default() } })
    }

    fn next_link(n: usize) -> PageLink {
        PageLink::Next(format!("https://graph/next/{n}"))
    }

    #[tokio::test]
    async fn pages_gather_until_the_batch_is_full_or_the_round_ends() {
        let pages = vec![
            page(600, next_link(1)),
            page(600, next_link(2)),
            page(10, next_link(3)),
            page(10, PageLink::Delta("https://graph/delta".into())),
        ];
        let mut batches = Batches::new(futures::stream::iter(pages), 1_000);
        let first = batches.next().await.expect("a batch").expect("ok");
        assert_eq!((first.pages, first.items.len(), first.graph_requests), (2, 1200, 2));
        assert_eq!(first.next, next_link(2));
        let last = batches.next().await.expect("a batch").expect("ok");
        assert_eq!((last.pages, last.items.len()), (2, 20));
        assert!(matches!(last.next, PageLink::Delta(_)));
        assert!(batches.next().await.is_none());
    }

    #[tokio::test]
    async fn membership_references_count_towards_a_full_batch() {
        let group = |members: usize| DeltaItem::Upsert {
            id: "group".into(),
            attrs: Map::new(),
            members_added: (0..members).map(|i| MemberRef { id: format!("m-{i}"), kind: None }).collect(),
            members_removed: Vec::new(),
        };
        let groups_page =
            |members, next| Ok(DeltaPage { items: vec![group(members)], next, stats: RequestStats::default() });
        let pages = vec![groups_page(2_000, next_link(1)), groups_page(10, next_link(2)), page(5, next_link(3))];
        let mut batches = Batches::new(futures::stream::iter(pages), 1_000);
        let first = batches.next().await.expect("a batch").expect("ok");
        assert_eq!((first.pages, first.items.len()), (1, 1), "one group with 2,000 members fills a batch");
        let second = batches.next().await.expect("a batch").expect("ok");
        assert_eq!((second.pages, second.items.len()), (2, 6));
    }

    #[tokio::test]
    async fn a_failed_page_comes_after_the_pages_before_it() {
        let pages = vec![
            page(5, next_link(1)),
            Err(GraphError::DeltaTokenExpired { reason: "gone".into() }),
            page(5, next_link(2)),
        ];
        let mut batches = Batches::new(futures::stream::iter(pages), 1_000);
        let first = batches.next().await.expect("a batch").expect("ok");
        assert_eq!((first.pages, first.next), (1, next_link(1)));
        assert!(matches!(batches.next().await, Some(Err(GraphError::DeltaTokenExpired { .. }))));
    }
}
