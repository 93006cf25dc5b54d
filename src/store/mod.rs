//! Postgres: the pool, migrations, and one repository module per aggregate. All SQL lives here.

pub mod admin_jobs;
pub mod api_tokens;
pub mod audit;
#[cfg(feature = "emulator")]
pub mod bench;
pub mod connect;
pub mod consent;
pub mod credentials;
pub mod cursors;
mod database;
mod db;
pub mod directory;
mod error;
pub mod held_deletions;
pub mod history;
pub mod leases;
pub mod mappings;
pub mod members;
pub mod metrics_queries;
pub mod migrate;
pub mod nesting;
pub mod objects;
pub mod outbox_relay;
pub mod rate_budget;
pub mod remap;
pub mod run_feed;
pub mod run_lock;
pub mod run_scratch;
pub mod runs;
pub mod schedule;
pub mod secret_box;
pub mod tags;
pub mod tenants;
pub mod wire;

use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, RecyclingMethod, Runtime, Timeouts};

pub use database::{drop_database, ensure_database_exists, recreate_database};
pub use db::Db;
pub use error::{DbFailure, During, StoreError};

use crate::config::DatabaseSettings;

pub type Pool = deadpool_postgres::Pool;

/// Checking a pooled connection before reuse: one round trip on loopback or in a data centre.
const RECYCLE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection checked out again within this time of its previous checkout is handed out unchecked.
const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Builds the pool. Connections are made lazily, so this succeeds while Postgres is down. No `get` waits
/// forever: for a free connection `database.pool_wait_timeout_secs`, to open one `connect_timeout`.
pub fn pool(settings: &DatabaseSettings) -> Result<Pool, StoreError> {
    let session = connect::session_config(settings, connect::Purpose::Pool)?;
    let manager =
        Manager::from_config(session.postgres, session.tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(settings.session.pool_wait_timeout),
            create: Some(settings.connect_timeout),
            recycle: Some(RECYCLE_TIMEOUT),
        })
        .pre_recycle(Hook::async_fn(|client, metrics| {
            Box::pin(async move {
                if metrics.last_used() < VERIFY_AFTER_IDLE {
                    return Ok(());
                }
                verify_answers(client).await
            })
        }))
        .build()
        .map_err(|e| StoreError::Config(format!("cannot build the Postgres pool: {e}")))
}

/// An empty query answered within RECYCLE_TIMEOUT, asked of a connection that sat in the pool for a while
/// before it is handed out again. A connection whose peer went silent without closing (a frozen path:
/// keepalives and TCP_USER_TIMEOUT never fire while something still acknowledges), or that still owes the
/// answer to a statement whose caller gave up, is dropped instead of hanging its next user. A connection
/// back in use within VERIFY_AFTER_IDLE is not asked: under load (a fleet of small runs) the question was
/// a round trip and a transaction per checkout, and a path that froze since is found by the statement's
/// own TCP deadlines, as for a connection already in use.
async fn verify_answers(client: &mut deadpool_postgres::ClientWrapper) -> Result<(), HookError> {
    match tokio::time::timeout(RECYCLE_TIMEOUT, client.simple_query("")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(HookError::Backend(e)),
        Err(_) => Err(HookError::message("no answer to the reuse check")),
    }
}

/// What a batch transaction's statements may take (`SET LOCAL`): a COPY of `sync.batch_objects` objects
/// or a tag sync batch may legitimately outrun `database.statement_timeout_secs`.
pub(crate) const BATCH_STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);

/// What a benchmark's bulk statements may take (ANALYZE, COPY of a whole tenant or history).
#[cfg(feature = "emulator")]
pub(crate) const BULK_STATEMENT_TIMEOUT: Duration = Duration::from_secs(3600);

/// `SET LOCAL statement_timeout`: the rest of the current transaction may take `limit` per statement.
pub(crate) fn set_local_statement_timeout(limit: Duration) -> String {
    format!("SET LOCAL statement_timeout = {}", limit.as_millis())
}

/// Runs `SELECT 1` on a pooled connection within `timeout`; what `/readyz` asks.
pub async fn ping(pool: &Pool, timeout: Duration) -> Result<(), StoreError> {
    let check = async {
        let client = pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok::<(), StoreError>(())
    };
    tokio::time::timeout(timeout, check).await.map_err(|_| StoreError::Timeout(timeout))?
}

/// Runs a statement through the connection's statement cache; returns the rows it affected. Sync
/// statements repeat once per page, so they are prepared once per connection.
pub(crate) async fn execute_cached(
    db: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.execute(&statement, params).await?)
}

/// Binary `COPY … FROM STDIN` of `rows` within `tx`, for writes whose caller knows the rows are new (no
/// conflict check: a row that exists after all makes the primary key refuse the COPY and the transaction
/// fail). `types` is a statement prepared only for its parameter types, in the COPY's column order, and
/// never executed. Returns the rows written.
pub(crate) async fn copy_in_binary<'r, const N: usize>(
    tx: &deadpool_postgres::Transaction<'_>,
    copy: &str,
    types: &str,
    during: &'static str,
    rows: impl IntoIterator<Item = [&'r (dyn tokio_postgres::types::ToSql + Sync); N]>,
) -> Result<u64, StoreError> {
    let types = tx.prepare_cached(types).await.during(during)?;
    let sink = tx.copy_in(copy).await.during(during)?;
    let writer = tokio_postgres::binary_copy::BinaryCopyInWriter::new(sink, types.params());
    futures::pin_mut!(writer);
    for row in rows {
        writer.as_mut().write(&row).await.during(during)?;
    }
    writer.finish().await.during(during)
}

/// Runs a cached statement whose one row holds one `bigint` count (`count(*)`, a counting function).
pub(crate) async fn count_cached(
    db: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = db.prepare_cached(sql).await?;
    let count: i64 = db.query_one(&statement, params).await?.get(0);
    Ok(u64::try_from(count).unwrap_or(0))
}
