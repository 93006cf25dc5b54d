//! Creating and dropping the configured database itself, through the server's `postgres` database:
//! at start-up (create when missing), for `entrasync demo` (recreate), and for benchmark and test
//! databases (drop afterwards).

use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::connect::{self, Purpose};
use super::{During, StoreError};
use crate::config::DatabaseSettings;

/// Creates the configured database if it is missing.
pub async fn ensure_database_exists(settings: &DatabaseSettings) -> Result<(), StoreError> {
    let maintenance = Maintenance::connect(settings).await?;
    let exists = maintenance
        .client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&maintenance.name])
        .await
        .during("looking for the database")?;
    if exists.is_none() {
        match maintenance.client.batch_execute(&format!("CREATE DATABASE {}", maintenance.quoted_name())).await {
            Ok(()) => tracing::info!(database = %maintenance.name, "created database"),
            // Another instance created it at the same moment.
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(StoreError::from(e).during("creating the database")),
        }
    }
    maintenance.close().await;
    Ok(())
}

/// Drops the configured database (closing its sessions) and creates it again, empty. For `entrasync demo`,
/// whose tenants must not outlive the emulator they pointed at.
pub async fn recreate_database(settings: &DatabaseSettings) -> Result<(), StoreError> {
    let maintenance = Maintenance::connect(settings).await?;
    maintenance.drop_if_exists().await?;
    maintenance
        .client
        .batch_execute(&format!("CREATE DATABASE {}", maintenance.quoted_name()))
        .await
        .during("creating the database")?;
    maintenance.close().await;
    Ok(())
}

/// Drops the configured database, closing any session left (benchmark and test databases).
pub async fn drop_database(settings: &DatabaseSettings) -> Result<(), StoreError> {
    let maintenance = Maintenance::connect(settings).await?;
    maintenance.drop_if_exists().await?;
    maintenance.close().await;
    Ok(())
}

/// A connection to the server's `postgres` database, and the name of the configured one.
struct Maintenance {
    client: Client,
    name: String,
    driver: JoinHandle<Result<(), tokio_postgres::Error>>,
}

impl Maintenance {
    async fn connect(settings: &DatabaseSettings) -> Result<Maintenance, StoreError> {
        let name = connect::database_name(settings)?;
        let (client, driver) = connect::open(&connect::session_config(settings, Purpose::Maintenance)?)
            .await
            .during("connecting to the server's postgres database")?;
        Ok(Maintenance { client, name, driver })
    }

    fn quoted_name(&self) -> String {
        format!("\"{}\"", self.name.replace('"', "\"\""))
    }

    async fn drop_if_exists(&self) -> Result<(), StoreError> {
        self.client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.quoted_name()))
            .await
            .during("dropping the database")?;
        Ok(())
    }

    async fn close(self) {
        drop(self.client);
        // The driver ends with the client; how it ended says nothing more.
        let _closed = self.driver.await;
    }
}
