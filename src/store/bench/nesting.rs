//! The statements of the nested-membership benchmark (`entrasync bench-nesting`, docs/benchmarks.md
//! "Nested-group membership"): loading generated objects and memberships with COPY, and the design the
//! service does not use, measured beside it: a closure table of group nesting (`bench_group_closure`:
//! every (ancestor group, descendant group) pair), its rebuild after membership changes, and the two
//! questions answered through it. The service answers with `store::nesting`'s recursive queries.

use bytes::Bytes;
use futures::SinkExt;
use uuid::Uuid;

use super::super::{During, Pool, StoreError};

/// Loads text-format COPY lines `tenant_id, object_class, object_id, marker, attrs, deleted_at` into
/// `directory_objects`.
pub async fn copy_objects(pool: &Pool, chunks: impl Iterator<Item = Bytes>) -> Result<u64, StoreError> {
    copy(
        pool,
        "COPY directory_objects (tenant_id, object_class, object_id, marker, attrs, deleted_at) FROM STDIN",
        chunks,
    )
    .await
}

/// Loads text-format COPY lines `tenant_id, group_id, member_id, member_class` into `group_members`.
pub async fn copy_members(pool: &Pool, chunks: impl Iterator<Item = Bytes>) -> Result<u64, StoreError> {
    copy(pool, "COPY group_members (tenant_id, group_id, member_id, member_class) FROM STDIN", chunks).await
}

async fn copy(pool: &Pool, statement: &str, chunks: impl Iterator<Item = Bytes>) -> Result<u64, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    transaction.batch_execute(&super::super::set_local_statement_timeout(super::super::BULK_STATEMENT_TIMEOUT)).await?;
    let sink = transaction.copy_in::<_, Bytes>(statement).await?;
    futures::pin_mut!(sink);
    for chunk in chunks {
        sink.send(chunk).await?;
    }
    let loaded = sink.finish().await?;
    transaction.commit().await?;
    Ok(loaded)
}

/// Creates the closure table (empty).
pub async fn create_closure(db: &impl deadpool_postgres::GenericClient) -> Result<(), StoreError> {
    db.batch_execute(
        "CREATE TABLE IF NOT EXISTS bench_group_closure (
             tenant_id  bigint NOT NULL,
             ancestor   uuid NOT NULL,
             descendant uuid NOT NULL,
             PRIMARY KEY (tenant_id, ancestor, descendant));
         CREATE INDEX IF NOT EXISTS bench_group_closure_up ON bench_group_closure (tenant_id, descendant, ancestor);",
    )
    .await
    .during("creating the closure table")?;
    Ok(())
}

/// Replaces the tenant's closure: every (ancestor, descendant) pair of live groups connected by a chain
/// of live nested groups (cycles terminate with UNION). Returns the pairs written.
pub async fn rebuild_closure(db: &impl deadpool_postgres::GenericClient, tenant_id: i64) -> Result<u64, StoreError> {
    db.execute("DELETE FROM bench_group_closure WHERE tenant_id = $1", &[&tenant_id])
        .await
        .during("clearing the closure")?;
    let written = db
        .execute(
            "INSERT INTO bench_group_closure (tenant_id, ancestor, descendant)
             WITH RECURSIVE edges AS MATERIALIZED (
                 SELECT m.group_id AS parent, m.member_id AS child
                 FROM group_members m
                 WHERE m.tenant_id = $1 AND m.member_class = 'group'
                   AND NOT EXISTS (SELECT 1 FROM directory_objects d
                                   WHERE d.tenant_id = $1 AND d.object_class = 'group'
                                     AND d.object_id IN (m.group_id, m.member_id) AND d.deleted_at IS NOT NULL)
             ),
             reach (ancestor, descendant) AS (
                 SELECT parent, child FROM edges
               UNION
                 SELECT r.ancestor, e.child FROM reach r JOIN edges e ON e.parent = r.descendant
             )
             SELECT $1, ancestor, descendant FROM reach WHERE ancestor <> descendant",
            &[&tenant_id],
        )
        .await
        .during("building the closure")?;
    Ok(written)
}

/// Applies membership changes (adds then removals) in one transaction, then rebuilds the closure when
/// a nesting edge changed; what keeping a closure current after a delta round costs.
pub async fn apply_changes_with_closure(
    pool: &Pool,
    tenant_id: i64,
    adds: &[(Uuid, Uuid, &str)],
    removals: &[(Uuid, Uuid)],
) -> Result<u64, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let (groups, members, classes): (Vec<Uuid>, Vec<Uuid>, Vec<String>) =
        adds.iter().fold((Vec::new(), Vec::new(), Vec::new()), |(mut g, mut m, mut c), (group, member, class)| {
            g.push(*group);
            m.push(*member);
            c.push((*class).to_owned());
            (g, m, c)
        });
    transaction
        .execute(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_class)
             SELECT $1, a.g, a.m, a.c FROM unnest($2::uuid[], $3::uuid[], $4::text[]) AS a (g, m, c)
             ON CONFLICT DO NOTHING",
            &[&tenant_id, &groups, &members, &classes],
        )
        .await
        .during("adding memberships")?;
    let (groups, members): (Vec<Uuid>, Vec<Uuid>) = removals.iter().copied().unzip();
    transaction
        .execute(
            "DELETE FROM group_members m USING unnest($2::uuid[], $3::uuid[]) AS r (g, m)
             WHERE m.tenant_id = $1 AND m.group_id = r.g AND m.member_id = r.m",
            &[&tenant_id, &groups, &members],
        )
        .await
        .during("removing memberships")?;
    let nesting_changed = adds.iter().any(|(_, _, class)| *class == "group") || !removals.is_empty();
    let written = if nesting_changed { rebuild_closure(&transaction, tenant_id).await? } else { 0 };
    transaction.commit().await?;
    Ok(written)
}

/// "Is `object` a member of `group`" through the closure: one of the object's live direct groups is
/// the group or one of its descendants.
pub async fn closure_is_member(
    db: &impl deadpool_postgres::GenericClient,
    tenant_id: i64,
    group: Uuid,
    object: Uuid,
) -> Result<bool, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT EXISTS (
                 SELECT 1 FROM group_members m
                 LEFT JOIN LATERAL (
                     SELECT true AS yes FROM bench_group_closure c
                     WHERE c.tenant_id = $1 AND c.ancestor = $2 AND c.descendant = m.group_id LIMIT 1
                 ) below ON true
                 WHERE m.tenant_id = $1 AND m.member_id = $3 AND (m.group_id = $2 OR below.yes))",
        )
        .await?;
    Ok(db.query_one(&statement, &[&tenant_id, &group, &object]).await?.try_get(0)?)
}

/// An object's transitive groups through the closure: its direct groups and their ancestors.
pub async fn closure_groups_of(
    db: &impl deadpool_postgres::GenericClient,
    tenant_id: i64,
    object: Uuid,
) -> Result<u64, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT count(*) FROM (
                 SELECT m.group_id FROM group_members m WHERE m.tenant_id = $1 AND m.member_id = $2
               UNION
                 SELECT c.ancestor FROM group_members m
                 CROSS JOIN LATERAL (
                     SELECT c.ancestor FROM bench_group_closure c
                     WHERE c.tenant_id = $1 AND c.descendant = m.group_id
                 ) c
                 WHERE m.tenant_id = $1 AND m.member_id = $2
             ) g WHERE g.group_id <> $2",
        )
        .await?;
    let count: i64 = db.query_one(&statement, &[&tenant_id, &object]).await?.try_get(0)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The plan Postgres runs for a statement of `store::nesting` (`EXPLAIN (ANALYZE, COSTS OFF)`), for
/// the report: it must probe indexes whatever the statistics.
pub async fn explain(
    db: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<String>, StoreError> {
    let rows =
        db.query(&format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}"), params).await.during("explaining")?;
    rows.iter().map(|r| r.try_get::<_, String>(0).map_err(StoreError::from)).collect()
}
