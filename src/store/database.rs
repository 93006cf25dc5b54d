//! Creating (and, for the demo, recreating) the database itself, through the server's `postgres` database.

use secrecy::ExposeSecret;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::StoreError;
use crate::config::DatabaseSettings;

/// Creates the configured database if it is missing.
pub async fn ensure_database_exists(settings: &DatabaseSettings) -> Result<(), StoreError> {
    let maintenance = Maintenance::connect(settings).await?;
    let exists =
        maintenance.client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&maintenance.name]).await?;
    if exists.is_none() {
        match maintenance.client.batch_execute(&format!("CREATE DATABASE {}", maintenance.quoted_name())).await {
            Ok(()) => tracing::info!(database = %maintenance.name, "created database"),
            // Another instance created it at the same moment.
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(e.into()),
        }
    }
    maintenance.close().await;
    Ok(())
}

/// Drops the configured database (closing its sessions) and creates it again, empty. For `entrasync demo`,
/// whose tenants must not outlive the emulator they pointed at.
pub async fn recreate_database(settings: &DatabaseSettings) -> Result<(), StoreError> {
    let maintenance = Maintenance::connect(settings).await?;
    let quoted = maintenance.quoted_name();
    maintenance.client.batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")).await?;
    maintenance.client.batch_execute(&format!("CREATE DATABASE {quoted}")).await?;
    maintenance.close().await;
    Ok(())
}

/// A connection to the server's `postgres` database, and the name of the configured one.
struct Maintenance {
    client: Client,
    name: String,
    driver: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
}

impl Maintenance {
    async fn connect(settings: &DatabaseSettings) -> Result<Maintenance, StoreError> {
        let mut config: tokio_postgres::Config = settings
            .url
            .expose_secret()
            .parse()
            .map_err(|e| StoreError::Config(format!("invalid database.url: {e}")))?;
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
        Ok(Maintenance { client, name, driver: tokio::spawn(connection) })
    }

    fn quoted_name(&self) -> String {
        format!("\"{}\"", self.name.replace('"', "\"\""))
    }

    async fn close(self) {
        drop(self.client);
        let _ = self.driver.await;
    }
}
