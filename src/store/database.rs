//! Creating the database itself when it does not exist yet.

use secrecy::ExposeSecret;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::StoreError;
use crate::config::DatabaseSettings;

/// Connects to the server's `postgres` database and creates the configured database if it is missing.
pub async fn ensure_database_exists(settings: &DatabaseSettings) -> Result<(), StoreError> {
    let mut config: tokio_postgres::Config =
        settings.url.expose_secret().parse().map_err(|e| StoreError::Config(format!("invalid database.url: {e}")))?;
    let name = config
        .get_dbname()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Config("database.url names no database".to_owned()))?;
    config.dbname("postgres");
    config.connect_timeout(settings.connect_timeout);
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        let reason = super::error::db_message(&e);
        StoreError::Unavailable(format!("{reason} (is Postgres running? try deploy/local-services.sh)"))
    })?;
    let driver = tokio::spawn(connection);
    let exists = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await?.is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match client.batch_execute(&format!("CREATE DATABASE {quoted}")).await {
            Ok(()) => tracing::info!(database = %name, "created database"),
            // Another instance created it at the same moment.
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(e.into()),
        }
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}
