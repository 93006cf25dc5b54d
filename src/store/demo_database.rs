//! A throwaway database for `entrasync demo`: recreated empty at every start, so tenants of an earlier
//! demo (whose emulator is gone) never linger.

use secrecy::ExposeSecret;
use tokio_postgres::NoTls;

use super::StoreError;
use crate::config::DatabaseSettings;

/// Drops the configured database (closing its sessions) and creates it again, empty.
pub async fn recreate(settings: &DatabaseSettings) -> Result<(), StoreError> {
    let mut config: tokio_postgres::Config =
        settings.url.expose_secret().parse().map_err(|e| StoreError::Config(format!("invalid database.url: {e}")))?;
    let name = config
        .get_dbname()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Config("database.url names no database".to_owned()))?;
    config.dbname("postgres");
    config.connect_timeout(settings.connect_timeout);
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| StoreError::Unavailable(format!("{e} (is Postgres running? try deploy/local-services.sh)")))?;
    let driver = tokio::spawn(connection);
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")).await?;
    client.batch_execute(&format!("CREATE DATABASE {quoted}")).await?;
    drop(client);
    let _ = driver.await;
    Ok(())
}
