//! Delta queries (`/users|groups|devices/delta`) as a stream of parsed pages.
//!
//! How to consume a round (see docs/architecture.md, "Checkpoint per batch"):
//! 1. `client.delta_pages(tenant, DeltaRequest::full(class))` or `DeltaRequest::resume(class, stored_link)`.
//! 2. For each page: apply `items` (upsert / remove by id; the same id may appear several times
//!    and out of order — last one wins), then store `page.next` as the cursor in the same
//!    transaction. A [`PageLink::Next`] means more pages follow (even after an empty page).
//! 3. The last page carries [`PageLink::Delta`]: the cursor for the next round. The stream ends after it.
//! 4. `Err(GraphError::DeltaTokenExpired)` means: drop the cursor and run a full round.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer as _};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::canonical::{read_page, CanonicalJson};
use super::client::{GraphClient, GraphTenant, RequestPriority, RequestStats};
use super::error::GraphError;
use crate::model::ObjectClass;

/// One parsed delta page.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaPage {
    /// Changed and removed objects, in Graph's order (duplicates possible; last occurrence wins).
    pub items: Vec<DeltaItem>,
    /// Where the round continues, or the deltaLink that starts the next round.
    pub next: PageLink,
    /// Requests, retries and waits this page cost.
    pub stats: RequestStats,
}

/// The cursor after a page: store it verbatim, follow it verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageLink {
    /// `@odata.nextLink`: more pages in this round.
    Next(String),
    /// `@odata.deltaLink`: the round is complete; the next round starts here.
    Delta(String),
}

impl PageLink {
    pub fn url(&self) -> &str {
        match self {
            PageLink::Next(url) | PageLink::Delta(url) => url,
        }
    }

    /// True on the round's last page.
    pub fn is_delta(&self) -> bool {
        matches!(self, PageLink::Delta(_))
    }
}

/// One object of a delta page.
#[derive(Debug, Clone, PartialEq)]
pub enum DeltaItem {
    /// The object exists (created, changed, restored, or listed in a full round).
    Upsert {
        id: String,
        /// Its selected properties as Graph sent them, without `id` and annotations (`@odata.*`,
        /// `members@delta`). Without `Prefer: return=minimal` this is the full selected state;
        /// an omitted property is unset, an explicit `null` is cleared.
        attrs: Map<String, Value>,
        /// Groups only: members added in this slice. A large group arrives on several pages, each
        /// with its own slice: merge them, never treat one slice as the whole list.
        members_added: Vec<MemberRef>,
        /// Groups only: members removed (membership removed, or member permanently deleted).
        members_removed: Vec<MemberRef>,
    },
    /// The same as `Upsert`, with the attributes already in canonical JSON text (keys sorted at every
    /// level, top-level nulls dropped; see `graph::canonical`), so no map of values is built: what
    /// [`parse_page_canonical`] gives, and the pages of a stream after [`DeltaPages::canonical_items`]
    /// (the sync round's batches ask for it).
    Parsed {
        id: String,
        /// Its selected properties without `id` and annotations, as canonical JSON text.
        attrs: CanonicalJson,
        members_added: Vec<MemberRef>,
        members_removed: Vec<MemberRef>,
    },
    /// The object was deleted (`@removed`).
    Removed {
        id: String,
        /// `reason: deleted` — gone for good (memberships go too). `changed` — soft-deleted,
        /// restorable from deleted items; a restore later arrives as a plain `Upsert`.
        permanent: bool,
    },
}

impl DeltaItem {
    pub fn id(&self) -> &str {
        match self {
            DeltaItem::Upsert { id, .. } | DeltaItem::Parsed { id, .. } | DeltaItem::Removed { id, .. } => id,
        }
    }
}

/// A member in `members@delta`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberRef {
    pub id: String,
    /// `@odata.type` without the `#microsoft.graph.` prefix: `user`, `group`, `device`, … when given.
    pub kind: Option<String>,
}

/// Where a round starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaStart {
    /// No cursor: list every object (a full round) with `$select` of the stored attributes.
    Initial { select: Vec<String> },
    /// A stored nextLink (resume a round) or deltaLink (start a delta round), followed verbatim.
    Link(String),
}

/// What [`GraphClient::delta_pages`] should fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRequest {
    pub class: ObjectClass,
    pub start: DeltaStart,
    /// `Low` on scheduled background rounds, `Normal` for operator-triggered ones.
    pub priority: RequestPriority,
    /// Pages fetched ahead of the caller (at least 1): while the caller writes a batch of pages, the
    /// next batch is being fetched. Memory is O(prefetch pages).
    pub prefetch: usize,
}

impl DeltaRequest {
    /// A full round with the attributes entrasync stores ([`default_select`]).
    pub fn full(class: ObjectClass) -> Self {
        let select = default_select(class).iter().map(|s| (*s).to_owned()).collect();
        Self { class, start: DeltaStart::Initial { select }, priority: RequestPriority::Normal, prefetch: 1 }
    }

    /// Continues from a stored nextLink or deltaLink.
    pub fn resume(class: ObjectClass, link: impl Into<String>) -> Self {
        Self { class, start: DeltaStart::Link(link.into()), priority: RequestPriority::Normal, prefetch: 1 }
    }

    pub fn with_priority(mut self, priority: RequestPriority) -> Self {
        self.priority = priority;
        self
    }

    pub fn with_prefetch(mut self, pages: usize) -> Self {
        self.prefetch = pages.max(1);
        self
    }
}

/// The properties entrasync stores per class (Graph returns most of them only when selected).
/// Kept to what the emulator models too, so a demo against it selects the same; attribute mappings
/// that need more pass their own list in [`DeltaStart::Initial`].
pub fn default_select(class: ObjectClass) -> &'static [&'static str] {
    match class {
        ObjectClass::User => &[
            "id",
            "userPrincipalName",
            "displayName",
            "givenName",
            "surname",
            "mail",
            "jobTitle",
            "officeLocation",
            "mobilePhone",
            "businessPhones",
            "preferredLanguage",
            "accountEnabled",
            "department",
            "companyName",
            "employeeId",
            "employeeType",
            "mailNickname",
            "userType",
            "createdDateTime",
            "usageLocation",
            "city",
            "country",
            "state",
            "postalCode",
            "streetAddress",
            "onPremisesSyncEnabled",
            "onPremisesImmutableId",
            "onPremisesSamAccountName",
            // extensionAttribute1…15: tag mappings and attribute mappings read them.
            "onPremisesExtensionAttributes",
        ],
        ObjectClass::Group => &[
            "id",
            "displayName",
            "description",
            "mail",
            "mailEnabled",
            "mailNickname",
            "securityEnabled",
            "groupTypes",
            "visibility",
            "createdDateTime",
            "proxyAddresses",
            "onPremisesSyncEnabled",
            "members",
        ],
        ObjectClass::Device => &[
            "id",
            "deviceId",
            "displayName",
            "accountEnabled",
            "operatingSystem",
            "operatingSystemVersion",
            "approximateLastSignInDateTime",
            "trustType",
            "isCompliant",
            "isManaged",
            "manufacturer",
            "model",
            "profileType",
            "createdDateTime",
            "onPremisesSyncEnabled",
            "alternativeSecurityIds",
        ],
    }
}

/// The URL of a round's first request.
pub fn initial_url(graph_root: &str, class: ObjectClass, select: &[String]) -> String {
    let root = graph_root.trim_end_matches('/');
    let collection = class.graph_collection();
    if select.is_empty() {
        format!("{root}/v1.0/{collection}/delta")
    } else {
        format!("{root}/v1.0/{collection}/delta?$select={}", select.join(","))
    }
}

#[derive(Deserialize)]
struct RawPage {
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
    value: Vec<Map<String, Value>>,
}

/// Parses a delta page body into items with their attributes as maps (`DeltaItem::Upsert`). Never
/// panics: malformed input is a `MalformedResponse`. A sync round reads [`parse_page_canonical`]'s form.
pub fn parse_page(url: &str, body: &[u8]) -> Result<(Vec<DeltaItem>, PageLink), GraphError> {
    let malformed = |detail: String| GraphError::MalformedResponse { url: url.to_owned(), detail };
    let raw: RawPage = serde_json::from_slice(body).map_err(|e| malformed(format!("not a delta page: {e}")))?;
    let next = page_link(raw.next_link, raw.delta_link).map_err(malformed)?;
    let items = raw
        .value
        .into_iter()
        .enumerate()
        .map(|(index, object)| parse_item(object).map_err(|detail| malformed(format!("object {index}: {detail}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, next))
}

fn parse_item(mut object: Map<String, Value>) -> Result<DeltaItem, String> {
    let id = match object.remove("id") {
        Some(Value::String(id)) if !id.is_empty() => id,
        Some(other) => return Err(format!("id is not a string: {other}")),
        None => return Err("no id".to_owned()),
    };
    if let Some(removed) = object.get("@removed") {
        let reason = removed.get("reason").and_then(Value::as_str).unwrap_or_default();
        if reason != "deleted" && reason != "changed" {
            // Unknown reasons are treated as restorable: a soft delete can be undone, a purge cannot.
            tracing::warn!(id = %id, reason, "unknown @removed reason, treating the object as soft-deleted");
        }
        return Ok(DeltaItem::Removed { id, permanent: reason == "deleted" });
    }
    let mut members_added = Vec::new();
    let mut members_removed = Vec::new();
    if let Some(members) = object.remove("members@delta") {
        let Value::Array(members) = members else {
            return Err("members@delta is not an array".to_owned());
        };
        for member in members {
            let member_id = member.get("id").and_then(Value::as_str).ok_or("a members@delta entry has no id")?;
            let kind = member
                .get("@odata.type")
                .and_then(Value::as_str)
                .map(|t| t.trim_start_matches("#microsoft.graph.").to_owned());
            let reference = MemberRef { id: member_id.to_owned(), kind };
            if member.get("@removed").is_some() {
                members_removed.push(reference);
            } else {
                members_added.push(reference);
            }
        }
    }
    // Annotations (`@odata.type`, other `x@delta` relationships) are not directory state.
    if object.keys().any(|key| key.contains('@')) {
        object.retain(|key, _| !key.contains('@'));
    }
    Ok(DeltaItem::Upsert { id, attrs: object, members_added, members_removed })
}

/// Parses a delta page body like [`parse_page`], with each existing object as `DeltaItem::Parsed`: one
/// pass over the body, borrowing from it (`graph::canonical`), that writes the object's properties
/// straight into their canonical JSON text without a tree of values (issue 16, client CPU). The same
/// pages are accepted and refused, with the same details.
pub fn parse_page_canonical(url: &str, body: &[u8]) -> Result<(Vec<DeltaItem>, PageLink), GraphError> {
    let malformed = |detail: String| GraphError::MalformedResponse { url: url.to_owned(), detail };
    let raw = read_page(body).map_err(|e| malformed(format!("not a delta page: {e}")))?;
    let next = page_link(raw.next_link, raw.delta_link).map_err(malformed)?;
    let items = raw
        .items
        .into_iter()
        .enumerate()
        .map(|(index, item)| item.map_err(|detail| malformed(format!("object {index}: {detail}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, next))
}

fn page_link(next_link: Option<String>, delta_link: Option<String>) -> Result<PageLink, String> {
    match (next_link, delta_link) {
        (Some(next), None) => Ok(PageLink::Next(next)),
        (None, Some(delta)) => Ok(PageLink::Delta(delta)),
        (None, None) => Err("the page has neither @odata.nextLink nor @odata.deltaLink".to_owned()),
        (Some(_), Some(_)) => Err("the page has both @odata.nextLink and @odata.deltaLink".to_owned()),
    }
}

/// The stream of a round's pages; ends after the page with the deltaLink, or after an error.
///
/// A background task fetches the next pages while the caller holds page k, up to the request's
/// `prefetch` more, and fetches nothing beyond that until the caller takes one. A page's
/// `@odata.nextLink` is read before its objects are parsed, so the next request goes out while the
/// page is parsed on a blocking thread; pages are handed out in order all the same. Dropping the
/// stream stops the task.
pub struct DeltaPages {
    receiver: mpsc::Receiver<Result<DeltaPage, GraphError>>,
    /// Parse objects into `DeltaItem::Parsed` instead of maps (read by the fetcher per page).
    canonical: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    /// The deltaLink page or an error was handed out: the round has its ending.
    ended: bool,
}

impl Stream for DeltaPages {
    type Item = Result<DeltaPage, GraphError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(item)) => {
                self.ended = !matches!(&item, Ok(DeltaPage { next: PageLink::Next(_), .. }));
                Poll::Ready(Some(item))
            }
            // The fetcher stopped without a last page (it panicked or was cancelled): never let
            // that look like a complete round.
            Poll::Ready(None) if !self.ended => {
                self.ended = true;
                Poll::Ready(Some(Err(GraphError::Unexpected(anyhow::anyhow!(
                    "the delta page fetcher stopped before the round ended"
                )))))
            }
            other => other,
        }
    }
}

impl DeltaPages {
    /// From the next page parsed on, existing objects arrive as `DeltaItem::Parsed` (canonical text)
    /// instead of `DeltaItem::Upsert` (a map): what the sync round wants, at a fraction of the CPU.
    /// Asked right after the stream is created, before its first page can have arrived; a page parsed
    /// earlier keeps its maps, which `sync::prepare` handles alike (same text, same marker).
    pub fn canonical_items(&mut self) {
        self.canonical.store(true, Ordering::Relaxed);
    }
}

impl Drop for DeltaPages {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GraphClient {
    /// Streams the pages of one delta round for `tenant`. See the module docs for how to consume it.
    pub fn delta_pages(&self, tenant: GraphTenant, request: DeltaRequest) -> DeltaPages {
        // Capacity `prefetch` + reserve-before-fetch: the task starts fetching only when a slot is free.
        let (sender, receiver) = mpsc::channel(request.prefetch.max(1));
        let client = self.clone();
        let canonical = Arc::new(AtomicBool::new(false));
        let form = Arc::clone(&canonical);
        let span = tracing::info_span!("graph_delta", tenant_id = %tenant.tenant_id, class = %request.class);
        let task = tokio::spawn(async move { client.run_delta(tenant, request, sender, form).await }.instrument(span));
        DeltaPages { receiver, canonical, task, ended: false }
    }

    async fn run_delta(
        &self,
        tenant: GraphTenant,
        request: DeltaRequest,
        sender: mpsc::Sender<Result<DeltaPage, GraphError>>,
        canonical: Arc<AtomicBool>,
    ) {
        let graph_root = tenant.cloud.graph_url().to_owned();
        let mut url = match request.start {
            DeltaStart::Initial { select } => initial_url(&graph_root, request.class, &select),
            DeltaStart::Link(link) => link,
        };
        // The page still being parsed while the next one is fetched; pages are handed out in order.
        let mut parsing: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            // Prefetch, bounded: a slot frees when the caller takes a page, so at most the caller's
            // pages and `prefetch` more exist at once.
            let Ok(permit) = sender.clone().reserve_owned().await else {
                return; // the caller dropped the stream
            };
            let canonical = canonical.load(Ordering::Relaxed);
            let (body, stats) = match self.fetch_body(&tenant, &url, request.class, request.priority).await {
                Ok(fetched) => fetched,
                Err(error) => {
                    permit.send(finish(parsing.take()).await.and(Err(error)));
                    return;
                }
            };
            let ahead = next_link_ahead(&body).filter(|next| check_same_origin(&graph_root, next).is_ok());
            let (root, page_url) = (graph_root.clone(), url.clone());
            let parse = move || parse_fetched(&root, &page_url, &body, stats, canonical);
            match ahead {
                // The next request goes out while this page is parsed: the two overlap instead of
                // queueing behind each other (Graph writes the links before the objects).
                Some(next) => {
                    let before = parsing.take();
                    parsing = Some(tokio::spawn(async move {
                        let page = tokio::task::spawn_blocking(parse).await.unwrap_or_else(|error| {
                            Err(GraphError::Unexpected(anyhow::anyhow!("parsing a delta page failed: {error}")))
                        });
                        permit.send(finish(before).await.and(page));
                    }));
                    url = next;
                }
                // The last page, or links after the objects: the page is parsed before anything else.
                None => {
                    let page = finish(parsing.take()).await.and_then(|()| parse());
                    let follow = match &page {
                        Ok(DeltaPage { next: PageLink::Next(next), .. }) => Some(next.clone()),
                        _ => None,
                    };
                    permit.send(page);
                    match follow {
                        Some(next) => url = next,
                        None => return,
                    }
                }
            }
        }
    }

    /// Fetches and parses one page (objects as maps, [`parse_page`]).
    pub async fn fetch_page(
        &self,
        tenant: &GraphTenant,
        url: &str,
        class: ObjectClass,
        priority: RequestPriority,
    ) -> Result<DeltaPage, GraphError> {
        let (body, stats) = self.fetch_body(tenant, url, class, priority).await?;
        parse_fetched(tenant.cloud.graph_url(), url, &body, stats, false)
    }

    /// Fetches one page's body (retries and throttling included), from the tenant's Graph host only.
    async fn fetch_body(
        &self,
        tenant: &GraphTenant,
        url: &str,
        class: ObjectClass,
        priority: RequestPriority,
    ) -> Result<(bytes::Bytes, RequestStats), GraphError> {
        check_same_origin(tenant.cloud.graph_url(), url)?;
        let mut stats = RequestStats::default();
        let body = self.get_graph(tenant, url, class, priority, &mut stats).await?;
        Ok((body, stats))
    }
}

/// Parses a fetched page; `canonical`: objects as canonical text ([`parse_page_canonical`]).
fn parse_fetched(
    graph_root: &str,
    url: &str,
    body: &[u8],
    stats: RequestStats,
    canonical: bool,
) -> Result<DeltaPage, GraphError> {
    let (items, next) = if canonical { parse_page_canonical(url, body)? } else { parse_page(url, body)? };
    check_same_origin(graph_root, next.url())?;
    tracing::debug!(items = items.len(), last = next.is_delta(), requests = stats.requests, "graph delta page");
    Ok(DeltaPage { items, next, stats })
}

/// Waits for the previous page's parse to have handed its page out. A parse task that panicked handed
/// nothing out: the page after it must not go out either (the caller would skip a page), so it becomes
/// an error that ends the round.
async fn finish(parsing: Option<tokio::task::JoinHandle<()>>) -> Result<(), GraphError> {
    match parsing {
        Some(parsing) => parsing.await.map_err(|error| {
            GraphError::Unexpected(anyhow::anyhow!("parsing the previous delta page failed: {error}"))
        }),
        None => Ok(()),
    }
}

/// The page's `@odata.nextLink` when it comes before `value`, as Graph (and the emulator) write it: read
/// without reading the objects, so the next request can go out while this page is parsed. `None` for a
/// last page (`@odata.deltaLink`), for links written after the objects, and for anything malformed: the
/// page is then parsed before the next request, and the full parse decides (it refuses a page with both
/// links or a repeated one, whatever this read).
fn next_link_ahead(body: &[u8]) -> Option<String> {
    struct LinksAhead<'a>(&'a mut Option<String>);

    impl<'de> Visitor<'de> for LinksAhead<'_> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a delta page object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                match key.as_ref() {
                    "@odata.nextLink" => *self.0 = Some(map.next_value()?),
                    // The objects start (or this is a last page): stop reading here.
                    "value" => return Err(de::Error::custom("the objects start")),
                    "@odata.deltaLink" => {
                        *self.0 = None;
                        return Err(de::Error::custom("a last page"));
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            // No `value` at all: the full parse refuses the page; nothing to fetch ahead.
            *self.0 = None;
            Ok(())
        }
    }

    let mut found = None;
    // Stopping early is an error to serde; what was read before it is the answer.
    match serde_json::Deserializer::from_slice(body).deserialize_map(LinksAhead(&mut found)) {
        Ok(()) | Err(_) => found,
    }
}

/// Links are followed verbatim with our bearer token, so they must point at the tenant's Graph host.
fn check_same_origin(graph_root: &str, link: &str) -> Result<(), GraphError> {
    let origin = |text: &str| url::Url::parse(text).ok().map(|u| u.origin());
    match (origin(graph_root), origin(link)) {
        (Some(expected), Some(actual)) if expected == actual => Ok(()),
        _ => Err(GraphError::MalformedResponse {
            url: link.to_owned(),
            detail: format!("the link does not point at the Graph host {graph_root}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verbatim JSON bodies from Microsoft's Graph docs (their sources: docs/architecture.md, section 7).
    const S1: &str = r#"{
  "@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users(displayName,givenName,surname)",
  "@odata.nextLink":"https://graph.microsoft.com/v1.0/users/delta?$skiptoken=oEBwdSP6uehIAxQOWq_3Ksh_TLol6KIm3stvdc6hGhZRi1hQ7Spe__dpvm3U4zReE4CYXC2zOtaKdi7KHlUtC2CbRiBIUwOxPKLa",
  "value": [
    {"displayName":"Cameron White","givenName":"Cameron","surname":"White","id":"ffff7b1a-13b6-477b-8c0c-380905cd99f7"},
    {"displayName":"Delia Dennis","givenName":"Delia","surname":"Dennis","id":"605d1257-ffff-40b6-8e6f-528a53f5dc55"},
    {"id": "86462606-fde0-4fc4-9e0c-a20eb73e54c6","@removed": {"reason": "deleted"}},
    {"displayName": "Conf Room Adams","id": "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0"}
  ]
}"#;
    const S4_CHANGES: &str = r#"{
  "@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users",
  "@odata.deltaLink":"https://graph.microsoft.com/v1.0/users/delta?$deltatoken=MF1LuFYbK6Lw4DtZ4o9PDrcGekRP65WEJfDmM0H26l4v9zILCPFiPwSAAeRBghxgiwsXEfywcVQ9R8VEWuYAB50Yw3KvJ-8Z1zamVotGX2b_AHVS_Z-3b0NAtmGpod",
  "value": [
    {"displayName":"MOD Administrator","givenName":"MOD","surname":"Administrator","id":"25dcffff-959e-4ece-9973-e5d9b800e8cc"},
    {"id":"8ffff70c-1c63-4860-b963-e34ec660931d","@removed": {"reason": "changed"}}
  ]
}"#;
    const S4_EMPTY: &str = r#"{
  "@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users",
  "@odata.deltaLink":"https://graph.microsoft.com/v1.0/users/delta?$deltatoken=MF1LuFYbK6Lw4DtZ4o9PDrcGekRP65WEJfDmM0H26l4v9zILCPFiPwSAAeRBghxgiwsXEfywcVQ9R8VEWuYAB50Yw3KvJ-8Z1zamVotGX2b_AHVS_Z-3b0NAtmGpod",
  "value": []
}"#;
    const S5_DELTA: &str = r##"{
  "@odata.context":"https://graph.microsoft.com/v1.0/$metadata#groups",
  "@odata.deltaLink":"https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=sZwAFZibx-LQOdZIo1hHhmmDhHzCY0Hs6snoIHJCSIfCHdqKdWNZ2VX3kErpyna9GygROwBk-rqWWMFxJC3pw",
  "value": [
          {
              "displayName": "TestGroup3",
              "description": "A test group for change tracking",
              "id": "2e5807ce-58f3-4a94-9b37-ffff2e085957",
              "members@delta": [
                  {"@odata.type": "#microsoft.graph.user","id": "632f6bb2-3ec8-4c1f-9073-0027a8c6859","@removed": {"reason": "deleted"}},
                  {"@odata.type": "#microsoft.graph.user","id": "37de1ae3-408f-4702-8636-20824abda004"}
              ]
          }
      ]
}"##;
    const S7: &str = r#"{
  "@odata.context":"https://graph.microsoft.com/v1.0/$metadata#groups","@odata.nextLink":"https://graph.microsoft.com/v1.0/groups/delta?$skiptoken=pqwSUjGYvb3jQpbwVAwEL7yuI3dU1LecfkkfLPtnIjvY1FSSc_",
  "value":[{"createdDateTime":"2021-03-12T10:36:14Z","displayName":"All Company","groupTypes": ["Unified"]}]
}"#;
    const S8: &str = r#"{
  "@odata.context":"https://graph.microsoft.com/v1.0/$metadata#devices",
  "@odata.nextLink":"https://graph.microsoft.com/v1.0/devices/delta?$skiptoken=pqwSUjGYvb3jQpbwVAwEL7yuI3dU1LecfkkfLPtnIjsXoYQp_dpA3cNJWc",
  "value": [
    {"accountEnabled": false,"createdDateTime": "2022-05-05T20:56:06Z","deviceId": "4c299165-6e8f-4b45-a5ba-c5d250a707ff",
     "displayName": "Test device","operatingSystem": "linux","operatingSystemVersion": "1","id": "c9d9f9b3-0c91-4080-b392-78f775903b3a",
     "alternativeSecurityIds": [{"type": 2,"identityProvider": null,"key": "base64Y3YxN2E1MWFlYw=="}]}
  ]
}"#;

    #[test]
    fn the_next_link_is_read_ahead_only_when_it_comes_before_the_objects() {
        let link = |body: &str| next_link_ahead(body.as_bytes());
        assert!(
            link(S1).is_some_and(|l| l.starts_with("https://graph.microsoft.com/v1.0/users/delta?$skiptoken=oEBwdSP6"))
        );
        assert!(link(S7).is_some_and(|l| l.contains("$skiptoken=pqwS")));
        assert_eq!(link(S4_CHANGES), None, "a last page has nothing ahead");
        assert_eq!(link(S4_EMPTY), None);
        let after =
            r#"{"value":[{"id":"a"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/users/delta?$skiptoken=x"}"#;
        assert_eq!(link(after), None, "links after the objects: parsed first");
        let both = r#"{"@odata.nextLink":"https://graph.microsoft.com/n","@odata.deltaLink":"https://graph.microsoft.com/d","value":[]}"#;
        assert_eq!(link(both), None, "both links: the full parse refuses the page");
        for malformed in [
            "",
            "[]",
            "{",
            r#"{"@odata.nextLink":1,"value":[]}"#,
            r#"{"@odata.nextLink":"https://graph.microsoft.com/n"}"#,
        ] {
            assert_eq!(link(malformed), None, "{malformed}");
        }
    }

    #[test]
    fn initial_page_with_next_link_and_a_permanent_removal() {
        let (items, next) = parse_page("u", S1.as_bytes()).expect("S1");
        assert!(matches!(&next, PageLink::Next(url) if url.contains("$skiptoken=oEBw")));
        assert_eq!(items.len(), 4);
        assert_eq!(
            items[2],
            DeltaItem::Removed { id: "86462606-fde0-4fc4-9e0c-a20eb73e54c6".to_owned(), permanent: true }
        );
        let DeltaItem::Upsert { id, attrs, members_added, .. } = &items[0] else { panic!("upsert expected") };
        assert_eq!(id, "ffff7b1a-13b6-477b-8c0c-380905cd99f7");
        assert_eq!(attrs.get("surname"), Some(&Value::from("White")));
        assert!(!attrs.contains_key("id") && members_added.is_empty());
    }

    #[test]
    fn delta_round_pages_end_with_a_delta_link_and_soft_deletes() {
        let (items, next) = parse_page("u", S4_CHANGES.as_bytes()).expect("S4");
        assert!(next.is_delta() && next.url().contains("$deltatoken=MF1L"));
        assert_eq!(
            items[1],
            DeltaItem::Removed { id: "8ffff70c-1c63-4860-b963-e34ec660931d".to_owned(), permanent: false }
        );
        let (items, next) = parse_page("u", S4_EMPTY.as_bytes()).expect("empty S4");
        assert!(items.is_empty() && next.is_delta());
    }

    #[test]
    fn group_membership_arrives_as_add_and_remove_slices() {
        let (items, _) = parse_page("u", S5_DELTA.as_bytes()).expect("S5");
        let DeltaItem::Upsert { attrs, members_added, members_removed, .. } = &items[0] else {
            panic!("upsert expected")
        };
        // The published sample's removed id is not a valid GUID: ids are opaque strings, kept as sent.
        assert_eq!(
            members_removed,
            &[MemberRef { id: "632f6bb2-3ec8-4c1f-9073-0027a8c6859".to_owned(), kind: Some("user".to_owned()) }]
        );
        assert_eq!(members_added[0].id, "37de1ae3-408f-4702-8636-20824abda004");
        assert!(!attrs.contains_key("members@delta"));
        assert_eq!(attrs.len(), 2);
    }

    #[test]
    fn device_properties_keep_nested_values() {
        let (items, _) = parse_page("u", S8.as_bytes()).expect("S8");
        let DeltaItem::Upsert { attrs, .. } = &items[0] else { panic!("upsert expected") };
        assert_eq!(attrs.get("accountEnabled"), Some(&Value::Bool(false)));
        assert_eq!(attrs["alternativeSecurityIds"][0]["identityProvider"], Value::Null);
    }

    #[test]
    fn malformed_pages_are_typed_errors() {
        let cases = [
            ("{", "not a delta page"),
            (r#"{"value": []}"#, "neither"),
            (r#"{"@odata.nextLink":"a","@odata.deltaLink":"b","value":[]}"#, "both"),
            (r#"{"@odata.nextLink":"a","value":{}}"#, "not a delta page"),
            (r#"{"@odata.nextLink":"a","value":[{"id":7}]}"#, "id is not a string"),
            (r#"{"@odata.nextLink":"a","value":[{"id":"x","members@delta":{}}]}"#, "not an array"),
            (r#"{"@odata.nextLink":"a","value":[{"id":"x","members@delta":[{}]}]}"#, "has no id"),
            (S7, "no id"),
        ];
        for (body, expected) in cases {
            match parse_page("https://g/x", body.as_bytes()) {
                Err(GraphError::MalformedResponse { url, detail }) => {
                    assert_eq!(url, "https://g/x");
                    assert!(detail.contains(expected), "{body}: {detail}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn initial_url_selects_stored_attributes() {
        let select: Vec<String> = default_select(ObjectClass::Group).iter().map(ToString::to_string).collect();
        let url = initial_url("https://graph.microsoft.us/", ObjectClass::Group, &select);
        assert!(url.starts_with("https://graph.microsoft.us/v1.0/groups/delta?$select=id,displayName,"));
        assert!(url.ends_with(",members"));
        assert_eq!(initial_url("http://sim", ObjectClass::User, &[]), "http://sim/v1.0/users/delta");
    }

    #[test]
    fn links_must_stay_on_the_graph_host() {
        assert!(check_same_origin(
            "https://graph.microsoft.com",
            "https://graph.microsoft.com/v1.0/users/delta?$skiptoken=a"
        )
        .is_ok());
        assert!(check_same_origin("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1.0/x").is_ok());
        assert!(check_same_origin("https://graph.microsoft.com", "https://evil.example/v1.0/users/delta").is_err());
        assert!(check_same_origin("http://127.0.0.1:8080", "http://127.0.0.1:8081/v1.0/x").is_err());
        assert!(check_same_origin("https://graph.microsoft.com", "not a url").is_err());
    }

    /// The canonical form reads Microsoft's samples to the same items: the same ids, removals,
    /// membership slices and attributes (as a map, less top-level nulls), in the same order.
    #[test]
    fn the_canonical_form_reads_the_samples_alike() {
        for sample in [S1, S4_CHANGES, S4_EMPTY, S5_DELTA, S8] {
            let (maps, next) = parse_page("u", sample.as_bytes()).expect("map form");
            let (texts, canonical_next) = parse_page_canonical("u", sample.as_bytes()).expect("canonical form");
            assert_eq!(next, canonical_next);
            assert_eq!(maps.len(), texts.len());
            for (map, text) in maps.iter().zip(&texts) {
                match (map, text) {
                    (
                        DeltaItem::Upsert { id, attrs, members_added, members_removed },
                        DeltaItem::Parsed { id: text_id, attrs: text, members_added: added, members_removed: removed },
                    ) => {
                        let mut attrs = attrs.clone();
                        attrs.retain(|_, value| !value.is_null());
                        assert_eq!(
                            (id, &attrs, members_added, members_removed),
                            (text_id, &text.to_map(), added, removed)
                        );
                    }
                    (removed, text) => assert_eq!(removed, text),
                }
            }
        }
    }

    #[test]
    fn the_canonical_form_refuses_malformed_pages_alike() {
        let cases = [
            ("{", "not a delta page"),
            ("[]", "not a delta page"),
            (r#"{"value": []}"#, "neither"),
            (r#"{"@odata.nextLink":"a","@odata.deltaLink":"b","value":[]}"#, "both"),
            (r#"{"@odata.nextLink":"a","value":{}}"#, "not a delta page"),
            (r#"{"@odata.nextLink":"a","value":[7]}"#, "not a delta page"),
            (r#"{"@odata.nextLink":"a"}"#, "not a delta page"),
            (r#"{"@odata.nextLink":"a","value":[],"value":[]}"#, "not a delta page"),
            (r#"{"@odata.nextLink":"a","value":[]} x"#, "not a delta page"),
            (r#"{"@odata.nextLink":"a","value":[{"id":7}]}"#, "id is not a string"),
            (r#"{"@odata.nextLink":"a","value":[{"id":""}]}"#, "id is not a string"),
            (r#"{"@odata.nextLink":"a","value":[{"id":"x","members@delta":{}}]}"#, "not an array"),
            (r#"{"@odata.nextLink":"a","value":[{"id":"x","members@delta":[{}]}]}"#, "has no id"),
            (r#"{"@odata.nextLink":"a","value":[{"id":"x","members@delta":[5]}]}"#, "has no id"),
            (r#"{"@odata.nextLink":"a","value":[{"id":"x","members@delta":[{"id":5}]}]}"#, "has no id"),
            (r#"{"@odata.nextLink":"a","value":[{"id":"x","a":"\ud800"}]}"#, "not a delta page"),
            (r#"{"@odata.nextLink":"a","value":[{"id":"x","a":"tab	inside"}]}"#, "not a delta page"),
            (S7, "no id"),
        ];
        for (body, expected) in cases {
            for parse in [parse_page, parse_page_canonical] {
                match parse("https://g/x", body.as_bytes()) {
                    Err(GraphError::MalformedResponse { url, detail }) => {
                        assert_eq!(url, "https://g/x");
                        assert!(detail.contains(expected), "{body}: {detail}");
                    }
                    other => panic!("{body}: {other:?}"),
                }
            }
        }
        // Invalid UTF-8 inside a string.
        let mut body = br#"{"@odata.nextLink":"a","value":[{"id":"x","a":""#.to_vec();
        body.extend_from_slice(&[0xff, b'"', b'}', b']', b'}']);
        assert!(matches!(parse_page_canonical("u", &body), Err(GraphError::MalformedResponse { .. })));
        // @removed wins whatever else the object holds; its reason only when it is a string.
        let (items, _) = parse_page_canonical(
            "u",
            br#"{"@odata.deltaLink":"d","value":[{"id":"a","@removed":{"reason":"deleted"},"members@delta":7},{"id":"b","@removed":null},{"id":"c","@removed":{"reason":1}}]}"#,
        )
        .expect("removals");
        assert_eq!(
            items,
            vec![
                DeltaItem::Removed { id: "a".into(), permanent: true },
                DeltaItem::Removed { id: "b".into(), permanent: false },
                DeltaItem::Removed { id: "c".into(), permanent: false },
            ]
        );
    }
}
