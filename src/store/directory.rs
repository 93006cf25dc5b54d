//! Browsing a tenant's directory copy: objects of one class in id order (keyset) with an optional
//! search, and one object with its memberships. Every statement names the tenant, so it reads one
//! partition; the search is a case-insensitive substring of displayName, userPrincipalName or mail,
//! filtered while reading that tenant's class in id order (its cost is bounded by the class's size in
//! that tenant; no index on attributes, which would slow every sync write).

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Pool, StoreError};
use crate::model::ObjectClass;

/// Most groups listed in `member_of`, and members listed in `members_first`.
const MEMBER_OF_CAP: i64 = 1000;
const MEMBERS_FIRST: i64 = 100;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectSummary {
    pub object_id: Uuid,
    pub class: ObjectClass,
    pub display_name: Option<String>,
    /// userPrincipalName (users), mail (groups) or deviceId (devices).
    pub principal: Option<String>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectDetail {
    pub object_id: Uuid,
    pub class: ObjectClass,
    pub attrs: Value,
    /// The effective mapped attributes: create-time values (`apply: on_create`, defaults for null
    /// results) overlaid with what mappings write on every round; `None` when there are neither.
    pub mapped: Option<Value>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub delete_reason: Option<String>,
    /// Groups it is a direct member of (by id, at most 1000).
    pub member_of: Vec<Uuid>,
    /// Groups only: direct members, and the first 100 (id, member class).
    pub members_count: Option<i64>,
    pub members_first: Vec<(Uuid, String)>,
}

/// `%q%` for ILIKE, with the pattern characters escaped.
fn like_pattern(q: &str) -> String {
    let escaped: String =
        q.chars().flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] }).collect();
    format!("%{escaped}%")
}

/// Up to `limit` (1..=1000) objects after `after`, by object id.
pub async fn list_objects(
    pool: &Pool,
    tenant_id: i64,
    class: ObjectClass,
    q: Option<&str>,
    include_deleted: bool,
    limit: i64,
    after: Option<Uuid>,
) -> Result<Vec<ObjectSummary>, StoreError> {
    let pattern = q.map(str::trim).filter(|q| !q.is_empty()).map(like_pattern);
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT object_id, attrs->>'displayName',
                    COALESCE(attrs->>'userPrincipalName', attrs->>'mail', attrs->>'deviceId'), deleted_at, updated_at
             FROM directory_objects
             WHERE tenant_id = $1 AND object_class = $2::text::object_class
               AND ($3::uuid IS NULL OR object_id > $3)
               AND ($4 OR deleted_at IS NULL)
               AND ($5::text IS NULL OR attrs->>'displayName' ILIKE $5 OR attrs->>'userPrincipalName' ILIKE $5
                    OR attrs->>'mail' ILIKE $5)
             ORDER BY object_id LIMIT $6",
            &[&tenant_id, &class.as_str(), &after, &include_deleted, &pattern, &limit.clamp(1, 1000)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ObjectSummary {
                object_id: r.try_get(0)?,
                class,
                display_name: r.try_get(1)?,
                principal: r.try_get(2)?,
                deleted_at: r.try_get(3)?,
                updated_at: r.try_get(4)?,
            })
        })
        .collect()
}

/// One object with its direct memberships; `None` when it is not stored.
pub async fn get_object(
    pool: &Pool,
    tenant_id: i64,
    class: ObjectClass,
    object_id: Uuid,
) -> Result<Option<ObjectDetail>, StoreError> {
    let client = pool.get().await?;
    let Some(row) = client
        .query_opt(
            // The effective mapped attributes: create-time values overlaid with what mappings write always.
            "SELECT attrs,
                    CASE WHEN mapped IS NULL AND mapped_on_create IS NULL THEN NULL
                         ELSE coalesce(mapped_on_create, '{}'::jsonb) || coalesce(mapped::jsonb, '{}'::jsonb) END,
                    deleted_at, delete_reason FROM directory_objects
             WHERE tenant_id = $1 AND object_class = $2::text::object_class AND object_id = $3",
            &[&tenant_id, &class.as_str(), &object_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let member_of = client
        .query(
            "SELECT group_id FROM group_members WHERE tenant_id = $1 AND member_id = $2 ORDER BY group_id LIMIT $3",
            &[&tenant_id, &object_id, &MEMBER_OF_CAP],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let (members_count, members_first) = if class == ObjectClass::Group {
        let count = client
            .query_one(
                "SELECT count(*) FROM group_members WHERE tenant_id = $1 AND group_id = $2",
                &[&tenant_id, &object_id],
            )
            .await?
            .try_get(0)?;
        let first = client
            .query(
                "SELECT member_id, member_class FROM group_members WHERE tenant_id = $1 AND group_id = $2
                 ORDER BY member_id LIMIT $3",
                &[&tenant_id, &object_id, &MEMBERS_FIRST],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, StoreError>>()?;
        (Some(count), first)
    } else {
        (None, Vec::new())
    };
    Ok(Some(ObjectDetail {
        object_id,
        class,
        attrs: row.try_get(0)?,
        mapped: row.try_get(1)?,
        deleted_at: row.try_get(2)?,
        delete_reason: row.try_get(3)?,
        member_of,
        members_count,
        members_first,
    }))
}
