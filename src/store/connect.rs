//! The one place a Postgres session is configured and opened: the pool, run-lock sessions, migrations
//! and the maintenance connection (create and drop databases) all start from [`session_config`], so
//! TLS, keepalives and timeouts are set once for every session.

use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use super::StoreError;
use crate::config::DatabaseSettings;

/// What a session is for; Postgres shows it as `application_name` (pg_stat_activity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Pool,
    RunLock,
    Migrations,
    /// The server's `postgres` database, to create or drop the configured one.
    Maintenance,
}

impl Purpose {
    fn application_name(self) -> &'static str {
        match self {
            Purpose::Pool => "entrasync",
            Purpose::RunLock => "entrasync run lock",
            Purpose::Migrations => "entrasync migrations",
            Purpose::Maintenance => "entrasync maintenance",
        }
    }
}

/// The session configuration for `purpose`, from `database.url`.
pub fn session_config(settings: &DatabaseSettings, purpose: Purpose) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = settings.url.expose_secret().parse().map_err(|e| {
        StoreError::Config(format!("invalid database.url: {e}; expected postgres://user@host:port/database"))
    })?;
    config.connect_timeout(settings.connect_timeout);
    config.application_name(purpose.application_name());
    match purpose {
        // A silently vanished server is noticed within a minute even without traffic.
        Purpose::RunLock => {
            config.keepalives(true).keepalives_idle(std::time::Duration::from_secs(20));
        }
        // `DROP DATABASE IF EXISTS`, `CREATE TABLE IF NOT EXISTS` and the like send NOTICEs nobody reads.
        Purpose::Maintenance => {
            config.dbname("postgres").options("-c client_min_messages=warning");
        }
        Purpose::Migrations => {
            config.options("-c client_min_messages=warning");
        }
        Purpose::Pool => {}
    }
    Ok(config)
}

/// The name of the configured database.
pub fn database_name(settings: &DatabaseSettings) -> Result<String, StoreError> {
    session_config(settings, Purpose::Pool)?
        .get_dbname()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Config("database.url names no database; add one: postgres://…/entrasync".to_owned()))
}

/// Opens one session outside the pool; the returned task drives it and ends when it closes.
pub async fn open(
    config: &tokio_postgres::Config,
) -> Result<(Client, JoinHandle<Result<(), tokio_postgres::Error>>), StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| unreachable(config, &e))?;
    Ok((client, tokio::spawn(connection)))
}

/// A connection error that names where we tried to connect and what the OS said.
pub(crate) fn unreachable(config: &tokio_postgres::Config, error: &tokio_postgres::Error) -> StoreError {
    if error.as_db_error().is_some() {
        // The server answered (bad password, unknown database): its own message says what to fix.
        return StoreError::from_connect(error);
    }
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
            tokio_postgres::config::Host::Unix(path) => format!("{}", path.display()),
        })
        .collect();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    StoreError::Unavailable(format!(
        "no answer from {} ({reason}); is Postgres running there and is database.url right? \
         On a developer machine deploy/local-services.sh starts it",
        hosts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;

    use super::*;

    fn settings(url: &str) -> DatabaseSettings {
        DatabaseSettings {
            url: SecretString::from(url.to_owned()),
            pool_size: 4,
            connect_timeout: Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named_with_the_os_error() {
        // Nothing listens on a port we just bound and released.
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
        let config =
            session_config(&settings(&format!("postgres://u@127.0.0.1:{port}/db")), Purpose::Pool).expect("config");
        let message = open(&config).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(&format!("127.0.0.1:{port}")), "expected the host and port: {message}");
        assert!(message.contains("refused"), "expected the OS error: {message}");
        assert!(message.contains("deploy/local-services.sh"), "expected what to do: {message}");
    }

    #[test]
    fn every_purpose_starts_from_the_url_and_the_maintenance_one_uses_the_postgres_database() {
        let settings = settings("postgres://u@db.example:5433/entrasync");
        let maintenance = session_config(&settings, Purpose::Maintenance).expect("config");
        assert_eq!(maintenance.get_dbname(), Some("postgres"));
        assert_eq!(maintenance.get_ports(), [5433]);
        let lock = session_config(&settings, Purpose::RunLock).expect("config");
        assert!(lock.get_keepalives(), "expected keepalives on run-lock sessions");
        assert_eq!(database_name(&settings).expect("name"), "entrasync");
        let error = session_config(&self::settings("not a url"), Purpose::Pool).expect_err("invalid");
        assert!(error.to_string().contains("database.url"), "expected the setting named: {error}");
    }
}
