//! Nested-group membership over `group_members` (docs/architecture.md, store; docs/api.md, "Group
//! membership"; the decision in docs/decisions.md): a group's members and an object's groups, direct or
//! transitive, and "is X a member of G" in one call. Answered by recursive queries at read time (no
//! closure table, so the sync's write path is unchanged).
//!
//! Semantics, as Entra's `/transitiveMembers` and `/transitiveMemberOf`:
//! - nesting follows memberships whose `member_class` is `group`;
//! - a soft-deleted object (`directory_objects.deleted_at` set) keeps its stored memberships but is
//!   treated as absent: never listed as a member or a group, never walked through, a member of nothing;
//!   so a soft-deleted group has no members and a soft-deleted object belongs to no group here;
//! - an object is never its own member or group, even when a cycle of nesting leads back to it;
//! - cycles terminate (each recursive walk keeps every row once with `UNION`).
//!
//! Every statement names the tenant and reads through primary-key or index probes (LATERAL), so its
//! plan does not depend on statistics.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{During, StoreError};
use crate::model::ObjectClass;

/// Direct memberships only, or through nesting too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Direct,
    Transitive,
}

/// A stored object as the membership answers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredObject {
    pub class: ObjectClass,
    /// Soft-deleted then (it keeps its stored memberships, but has none in these answers).
    pub deleted_at: Option<DateTime<Utc>>,
}

impl StoredObject {
    pub fn deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// One member of a group (or one group of an object) on a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    pub object_id: Uuid,
    /// `user`, `group`, `device`, or what Graph called it (`directoryObject` when it did not say).
    pub class: String,
    pub display_name: Option<String>,
    /// A direct membership (a transitive answer marks which of its rows are also direct).
    pub direct: bool,
}

/// A page of members or groups, by object id, with the total of the whole answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelatedPage {
    pub items: Vec<Related>,
    pub total: i64,
}

/// The answer to "is X a member of G".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub direct: bool,
    /// Direct or through nesting.
    pub transitive: bool,
    /// When `transitive`: a shortest chain G, nested group, …, X.
    pub path: Option<Vec<Uuid>>,
}

/// Most rows a page holds.
const MAX_PAGE: i64 = 1000;

/// The statements, for the benchmark's EXPLAIN: direct members, transitive members (both `$1` tenant,
/// `$2` group, `$3` after, `$4` limit), an object's groups (`$5` transitive) and "is X a member of G"
/// (`$2` object, `$3` group).
pub const MEMBERS_DIRECT_SQL: &str = include_str!("sql/nesting_members_direct.sql");
pub const MEMBERS_TRANSITIVE_SQL: &str = include_str!("sql/nesting_members_transitive.sql");
pub const MEMBER_OF_SQL: &str = include_str!("sql/nesting_member_of.sql");
pub const IS_MEMBER_SQL: &str = include_str!("sql/nesting_is_member.sql");

/// The object's stored class and whether it is soft-deleted; `None` when the tenant has no such object.
pub async fn stored_object(
    db: &impl GenericClient,
    tenant_id: i64,
    object_id: Uuid,
) -> Result<Option<StoredObject>, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT object_class::text, deleted_at FROM directory_objects
             WHERE tenant_id = $1 AND object_class IN ('user', 'group', 'device') AND object_id = $2
             LIMIT 1",
        )
        .await?;
    let Some(row) = db.query_opt(&statement, &[&tenant_id, &object_id]).await.during("reading a stored object")? else {
        return Ok(None);
    };
    let class: String = row.try_get(0)?;
    let class = class.parse().map_err(|e| StoreError::Unexpected(anyhow::anyhow!("stored object class: {e}")))?;
    Ok(Some(StoredObject { class, deleted_at: row.try_get(1)? }))
}

fn page_of(rows: &[tokio_postgres::Row], with_class: bool) -> Result<RelatedPage, StoreError> {
    let mut page = RelatedPage::default();
    for row in rows {
        page.total = row.try_get(0)?;
        let Some(object_id) = row.try_get::<_, Option<Uuid>>(1)? else { continue };
        let (class, rest) = if with_class { (row.try_get(2)?, 3) } else { ("group".to_owned(), 2) };
        page.items.push(Related { object_id, class, display_name: row.try_get(rest)?, direct: row.try_get(rest + 1)? });
    }
    Ok(page)
}

/// A group's members after `after` (by object id, at most `limit`), direct or transitive, with the
/// total. A group that is not stored, or soft-deleted, has none.
pub async fn group_members(
    db: &impl GenericClient,
    tenant_id: i64,
    group_id: Uuid,
    scope: Scope,
    limit: i64,
    after: Option<Uuid>,
) -> Result<RelatedPage, StoreError> {
    if !live_as(db, tenant_id, group_id, Some(ObjectClass::Group)).await? {
        return Ok(RelatedPage::default());
    }
    let sql = match scope {
        Scope::Direct => MEMBERS_DIRECT_SQL,
        Scope::Transitive => MEMBERS_TRANSITIVE_SQL,
    };
    let statement = db.prepare_cached(sql).await?;
    let rows = db
        .query(&statement, &[&tenant_id, &group_id, &after, &limit.clamp(1, MAX_PAGE)])
        .await
        .during("reading a group's members")?;
    page_of(&rows, true)
}

/// The groups an object is a member of after `after` (by group id, at most `limit`), direct or
/// transitive, with the total. An object that is not stored, or soft-deleted, has none.
pub async fn member_of(
    db: &impl GenericClient,
    tenant_id: i64,
    object_id: Uuid,
    scope: Scope,
    limit: i64,
    after: Option<Uuid>,
) -> Result<RelatedPage, StoreError> {
    if !live_as(db, tenant_id, object_id, None).await? {
        return Ok(RelatedPage::default());
    }
    let statement = db.prepare_cached(MEMBER_OF_SQL).await?;
    let transitive = scope == Scope::Transitive;
    let rows = db
        .query(&statement, &[&tenant_id, &object_id, &after, &limit.clamp(1, MAX_PAGE), &transitive])
        .await
        .during("reading an object's groups")?;
    page_of(&rows, false)
}

/// Whether the object is stored (as `class` when given) and not soft-deleted.
async fn live_as(
    db: &impl GenericClient,
    tenant_id: i64,
    object_id: Uuid,
    class: Option<ObjectClass>,
) -> Result<bool, StoreError> {
    Ok(stored_object(db, tenant_id, object_id)
        .await?
        .is_some_and(|o| !o.deleted() && class.is_none_or(|c| c == o.class)))
}

/// "Is `object_id` a member of `group_id`", directly and through nesting, with a shortest chain, in one
/// statement: the live membership edges above the object (its groups and their ancestors), searched
/// here. A soft-deleted object or group is nobody's member and has none.
pub async fn is_member(
    db: &impl GenericClient,
    tenant_id: i64,
    group_id: Uuid,
    object_id: Uuid,
) -> Result<Membership, StoreError> {
    let statement = db.prepare_cached(IS_MEMBER_SQL).await?;
    let rows = db.query(&statement, &[&tenant_id, &object_id, &group_id]).await.during("checking a membership")?;
    let mut edges = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<_, bool>(2)? {
            return Ok(Membership { direct: false, transitive: false, path: None });
        }
        edges.push((row.try_get::<_, Uuid>(0)?, row.try_get::<_, Uuid>(1)?));
    }
    Ok(search(&edges, group_id, object_id))
}

/// Breadth-first from the object up the (group, member) edges: whether `group` is reached, and the
/// shortest chain from it down to the object.
fn search(edges: &[(Uuid, Uuid)], group: Uuid, object: Uuid) -> Membership {
    if group == object {
        return Membership { direct: false, transitive: false, path: None };
    }
    let direct = edges.iter().any(|&(g, m)| g == group && m == object);
    let mut parents: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for &(g, m) in edges {
        parents.entry(m).or_default().push(g);
    }
    // reached[g] = the member g was first reached from (one step closer to the object).
    let mut reached: HashMap<Uuid, Uuid> = HashMap::new();
    let mut seen: HashSet<Uuid> = HashSet::from([object]);
    let mut queue = VecDeque::from([object]);
    while let Some(node) = queue.pop_front() {
        if node == group {
            break;
        }
        for &parent in parents.get(&node).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(parent) {
                reached.insert(parent, node);
                queue.push_back(parent);
            }
        }
    }
    if !reached.contains_key(&group) {
        return Membership { direct, transitive: false, path: None };
    }
    let mut path = vec![group];
    let mut at = group;
    while let Some(&below) = reached.get(&at) {
        path.push(below);
        at = below;
    }
    Membership { direct, transitive: true, path: Some(path) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn finds_the_shortest_chain_through_a_cycle() {
        // 1 ⊃ 2 ⊃ 3 ⊃ 1 (a cycle), 3 ⊃ x, 1 ⊃ x, 4 ⊃ 2.
        let x = id(100);
        let edges = [(id(1), id(2)), (id(2), id(3)), (id(3), id(1)), (id(3), x), (id(1), x), (id(4), id(2))];
        let direct = search(&edges, id(1), x);
        assert_eq!(direct, Membership { direct: true, transitive: true, path: Some(vec![id(1), x]) });
        let nested = search(&edges, id(2), x);
        assert_eq!(nested, Membership { direct: false, transitive: true, path: Some(vec![id(2), id(3), x]) });
        let outer = search(&edges, id(4), x);
        assert_eq!(outer.path, Some(vec![id(4), id(2), id(3), x]));
        assert_eq!(search(&edges, id(5), x), Membership { direct: false, transitive: false, path: None });
        // A group in a cycle is not its own member.
        assert!(!search(&edges, id(1), id(1)).transitive);
        assert_eq!(search(&edges, id(2), id(1)).path, Some(vec![id(2), id(3), id(1)]));
    }
}
