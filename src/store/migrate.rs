//! Schema migrations: versioned SQL files in `migrations/`, applied by refinery under an advisory lock so
//! several instances starting together apply each file once.

use super::connect::{self, Purpose};
use super::{During, StoreError};
use crate::config::DatabaseSettings;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Arbitrary constant shared by every entrasync instance.
const MIGRATION_LOCK: i64 = 0x656e_7472_6173_796e;

/// Applies every migration not yet applied; returns the versions applied now.
pub async fn run(settings: &DatabaseSettings) -> Result<Vec<i32>, StoreError> {
    let (mut client, driver) =
        connect::open(&connect::session_config(settings, Purpose::Migrations)?).await.during("running migrations")?;
    // The session's limits are connect::MIGRATION_TIMEOUT: waiting for another instance's migrations and
    // rewriting a large table both take longer than the pool's statement_timeout allows.
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.during("taking the migration lock")?;
    let report = embedded::migrations::runner().run_async(&mut client).await;
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    let report = report.map_err(|e| StoreError::Migration(e.to_string()))?;
    unlock.during("releasing the migration lock")?;
    drop(client);
    // The driver ends with the client; how it ended says nothing more.
    let _closed = driver.await;
    let applied: Vec<i32> = report.applied_migrations().iter().map(refinery::Migration::version).collect();
    for version in &applied {
        tracing::info!(version, "applied migration");
    }
    Ok(applied)
}
