//! The directory copy (`directory_objects`): marker lookups and bulk writes for one page.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::wire::{EnumLabel, JsonText};
use super::{copy_in_binary, count_cached, execute_cached, During, StoreError};
use crate::model::ObjectClass;

/// What the store holds for an object: enough to decide whether a page's version needs a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredState {
    pub marker: i64,
    pub deleted: bool,
    /// The asking run inserted this object (so it already counted it as changed and as listed).
    pub created_in_run: bool,
}

/// Objects to insert or overwrite, as parallel columns (bound as arrays, or copied: one statement per
/// page). Borrowed from the prepared page, whose JSON text is sent as it is.
#[derive(Debug, Default)]
pub struct ObjectWrites<'a> {
    pub ids: Vec<Uuid>,
    pub markers: Vec<i64>,
    pub attrs: Vec<&'a JsonText>,
    /// Canonical JSON text, as the marker hashed it.
    pub mapped: Vec<Option<&'a JsonText>>,
    /// What mappings write only when the object is first stored: used by [`insert_new`] alone (an
    /// update never touches `mapped_on_create`).
    pub on_create: Vec<Option<&'a Value>>,
}

impl<'a> ObjectWrites<'a> {
    pub fn push(&mut self, id: Uuid, marker: i64, attrs: &'a JsonText, mapped: Option<&'a JsonText>) {
        self.push_new(id, marker, attrs, mapped, None);
    }

    /// [`push`](Self::push) for an object about to be inserted, with its create-time values.
    pub fn push_new(
        &mut self,
        id: Uuid,
        marker: i64,
        attrs: &'a JsonText,
        mapped: Option<&'a JsonText>,
        on_create: Option<&'a Value>,
    ) {
        self.ids.push(id);
        self.markers.push(marker);
        self.attrs.push(attrs);
        self.mapped.push(mapped);
        self.on_create.push(on_create);
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The stored markers of `ids`, in one query (one index probe per id, whatever the table's statistics),
/// and whether `run_id` created them. Ids not stored are absent from the map.
pub async fn stored_states(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, StoredState>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let statement = db
        .prepare_cached(include_str!("sql/objects_stored_states.sql"))
        .await
        .during("reading stored object states")?;
    let rows = db
        .query(&statement, &[&tenant_id, &class.as_str(), &ids, &run_id])
        .await
        .during("reading stored object states")?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), StoredState { marker: r.get(1), deleted: r.get(2), created_in_run: r.get(3) }))
        .collect())
}

/// Overwrites stored objects with `writes` (restoring soft-deleted ones); returns the rows written.
/// Objects not stored yet are inserted too, but [`insert_new`] is the fast way for those.
pub async fn upsert(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    writes: &ObjectWrites<'_>,
) -> Result<u64, StoreError> {
    if writes.is_empty() {
        return Ok(0);
    }
    let statement =
        db.prepare_cached(include_str!("sql/objects_upsert.sql")).await.during("writing a batch of objects")?;
    let written = db
        .execute(
            &statement,
            &[&tenant_id, &class.as_str(), &writes.ids, &writes.markers, &writes.attrs, &writes.mapped],
        )
        .await
        .during("writing a batch of objects")?;
    Ok(written)
}

/// Inserts objects the caller found absent (in this transaction, holding the run's claim, so nobody
/// else inserts them meanwhile) by binary `COPY`: no conflict check, no array building — the physical
/// limit of getting rows into the table. Stamps `created_run` and writes `mapped_on_create` (the only
/// statement that does). Returns the rows inserted. Should an
/// object exist after all, the primary key refuses the COPY and the transaction fails; nothing is
/// overwritten.
pub async fn insert_new(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
    writes: &ObjectWrites<'_>,
) -> Result<u64, StoreError> {
    if writes.is_empty() {
        return Ok(0);
    }
    let class = EnumLabel(class.as_str());
    let rows = (0..writes.len()).map(|i| -> [&(dyn ToSql + Sync); 8] {
        [
            &tenant_id,
            &class,
            &writes.ids[i],
            &writes.markers[i],
            writes.attrs[i],
            &writes.mapped[i],
            &writes.on_create[i],
            &run_id,
        ]
    });
    copy_in_binary(tx, COPY_NEW_OBJECTS, COPY_TYPES, "inserting a batch of new objects", rows).await
}

const COPY_NEW_OBJECTS: &str = "COPY directory_objects (tenant_id, object_class, object_id, marker, attrs, mapped, \
     mapped_on_create, created_run) FROM STDIN (FORMAT binary)";
/// The column types, enum included, as the server knows them (prepared and cached per connection, never
/// executed), in COPY_NEW_OBJECTS' column order.
const COPY_TYPES: &str =
    "SELECT $1::bigint, $2::object_class, $3::uuid, $4::bigint, $5::jsonb, $6::json, $7::jsonb, $8::uuid";

/// Records restorable deletions of objects never stored (created and soft-deleted between rounds):
/// the store knows every object Graph reported, even one known only as deleted. Returns rows written.
pub async fn insert_tombstones(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    ids: &[Uuid],
    reason: &str,
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    execute_cached(
        db,
        "INSERT INTO directory_objects (tenant_id, object_class, object_id, marker, attrs, deleted_at, delete_reason) \
         SELECT $1::bigint, $2::text::object_class, id, 0, '{}'::jsonb, now(), $4::text FROM unnest($3::uuid[]) AS id \
         ON CONFLICT (tenant_id, object_class, object_id) DO NOTHING",
        &[&tenant_id, &class.as_str(), &ids, &reason],
    )
    .await
}

/// Live (not soft-deleted) objects stored for a tenant and class.
pub async fn live_count(db: &impl GenericClient, tenant_id: i64, class: ObjectClass) -> Result<u64, StoreError> {
    let sql = "SELECT count(*) FROM directory_objects \
               WHERE tenant_id = $1 AND object_class = $2::text::object_class AND deleted_at IS NULL";
    count_cached(db, sql, &[&tenant_id, &class.as_str()]).await
}

/// Live objects of the (tenant, class) among `ids` (a primary-key probe each).
pub async fn live_count_among(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    ids: &[Uuid],
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = "SELECT count(*) FROM directory_objects \
               WHERE tenant_id = $1 AND object_class = $2::text::object_class AND object_id = ANY($3::uuid[]) \
                 AND deleted_at IS NULL";
    count_cached(db, sql, &[&tenant_id, &class.as_str(), &ids]).await
}

/// Live objects of the (tenant, class), counted up to `cap`: enough for a threshold, and cheap whatever
/// the tenant's size (a full count reads every row: ~1 s at 1,000,000 objects).
pub async fn live_count_up_to(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    cap: u64,
) -> Result<u64, StoreError> {
    if cap == 0 {
        return Ok(0);
    }
    let cap = i64::try_from(cap).unwrap_or(i64::MAX);
    count_cached(db, "SELECT live_objects_up_to($1, $2::text::object_class, $3)", &[&tenant_id, &class.as_str(), &cap])
        .await
}

/// One stored object, for inspection (API, tests).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub object_id: Uuid,
    pub marker: i64,
    pub attrs: Value,
    pub deleted: bool,
    pub delete_reason: Option<String>,
}

/// Every stored object of a tenant and class, ordered by id. Meant for small tenants and tests.
pub async fn list(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
) -> Result<Vec<StoredObject>, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT object_id, marker, attrs, deleted_at IS NOT NULL, delete_reason FROM directory_objects \
             WHERE tenant_id = $1 AND object_class = $2::text::object_class ORDER BY object_id",
        )
        .await?;
    let rows = db.query(&statement, &[&tenant_id, &class.as_str()]).await?;
    Ok(rows
        .iter()
        .map(|r| StoredObject {
            object_id: r.get(0),
            marker: r.get(1),
            attrs: r.get(2),
            deleted: r.get(3),
            delete_reason: r.get(4),
        })
        .collect())
}

/// A live stored object as a re-map reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveObject {
    pub object_id: Uuid,
    pub marker: i64,
    pub attrs: serde_json::Map<String, Value>,
}

/// Up to `limit` live objects of the (tenant, class) with an id after `after` (from the first when
/// `None`), in id order: one range of the primary key, whatever the table's statistics (keyset paging,
/// so memory is O(limit) and each batch costs the same at any depth).
pub async fn live_after(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    after: Option<Uuid>,
    limit: usize,
) -> Result<Vec<LiveObject>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement =
        db.prepare_cached(include_str!("sql/objects_live_after.sql")).await.during("reading objects to re-map")?;
    let rows = db
        .query(&statement, &[&tenant_id, &class.as_str(), &after, &limit])
        .await
        .during("reading objects to re-map")?;
    rows.iter()
        .map(|r| {
            let attrs = match r.try_get::<_, Value>(2)? {
                Value::Object(map) => map,
                // Stored attributes are always an object; anything else is read as no attributes.
                _ => serde_json::Map::new(),
            };
            Ok(LiveObject { object_id: r.try_get(0)?, marker: r.try_get(1)?, attrs })
        })
        .collect()
}

/// New markers and mapped attributes of live stored objects, in one statement (a re-map's batch);
/// attributes are untouched and so is `mapped_on_create`. Rows whose marker already equals the new one
/// are not written (no row version). Returns the rows written.
pub async fn write_mapped(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    ids: &[Uuid],
    markers: &[i64],
    mapped: &[Option<&JsonText>],
) -> Result<u64, StoreError> {
    let (Some(lowest), Some(highest)) = (ids.iter().min(), ids.iter().max()) else {
        return Ok(0);
    };
    execute_cached(
        db,
        include_str!("sql/objects_write_mapped.sql"),
        &[&tenant_id, &class.as_str(), &ids, &markers, &mapped, lowest, highest],
    )
    .await
}

/// One stored object as the re-scan snapshot reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerRow {
    pub object_id: Uuid,
    pub marker: i64,
    pub deleted: bool,
    /// The asking run inserted it (in a batch committed before the run was resumed).
    pub created_in_run: bool,
}

/// Reads every stored object of the (tenant, class) with its marker, in one statement and one read-only
/// transaction, handing each row to `each` as it arrives (memory is the caller's); then the ids with a
/// deletion held for an operator, from the same view. `None` when `each` stopped the read.
pub async fn read_snapshot(
    client: &mut deadpool_postgres::Object,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
    mut each: impl FnMut(MarkerRow) -> std::ops::ControlFlow<()>,
) -> Result<Option<Vec<Uuid>>, StoreError> {
    use futures::TryStreamExt;
    const DURING: &str = "reading the stored markers of a tenant";
    let transaction = client.build_transaction().read_only(true).start().await.during(DURING)?;
    // A million rows take seconds: the snapshot gets a batch's limit, not an API statement's.
    transaction
        .batch_execute(&super::set_local_statement_timeout(super::BATCH_STATEMENT_TIMEOUT))
        .await
        .during(DURING)?;
    let statement = transaction.prepare_cached(include_str!("sql/rescan_stored_markers.sql")).await.during(DURING)?;
    let class_text = class.as_str();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&tenant_id, &class_text, &run_id];
    let rows = transaction.query_raw(&statement, params).await.during(DURING)?;
    futures::pin_mut!(rows);
    while let Some(row) = rows.try_next().await.during(DURING)? {
        let row = MarkerRow {
            object_id: row.try_get(0)?,
            marker: row.try_get(1)?,
            deleted: row.try_get(2)?,
            created_in_run: row.try_get(3)?,
        };
        if each(row).is_break() {
            return Ok(None);
        }
    }
    let held = transaction
        .query(
            "SELECT object_id FROM held_deletions \
             WHERE tenant_id = $1 AND object_class = $2::text::object_class AND status = 'held'",
            &[&tenant_id, &class_text],
        )
        .await
        .during(DURING)?;
    let held = held.iter().map(|r| r.try_get(0)).collect::<Result<Vec<Uuid>, _>>()?;
    transaction.commit().await.during(DURING)?;
    Ok(Some(held))
}
