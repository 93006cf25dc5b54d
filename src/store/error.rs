use std::time::Duration;

/// Errors of the store layer. SQLSTATEs are mapped to domain cases in [`StoreError::from`] only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("Postgres is unreachable: {0}")]
    Unavailable(String),
    #[error("Postgres did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Rejected(String),
    #[error("{0} not found")]
    NotFound(String),
    /// A stored credential that the configured secrets key cannot open: the key changed.
    #[error(
        "credential profile {profile_name:?} (id {profile_id}) cannot be decrypted: ENTRASYNC_SECRETS_KEY is not the \
         key it was stored with; restore that key, re-encrypt with `entrasync credential reencrypt --old-key-file PATH`, \
         or replace the profile's secret or certificate"
    )]
    Undecryptable { profile_id: i64, profile_name: String },
    #[error("migration failed: {0}")]
    Migration(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl crate::backoff::Transient for StoreError {
    fn is_transient(&self) -> bool {
        StoreError::is_transient(self)
    }
}

impl StoreError {
    /// A connection attempt the server refused: its message says why (authentication, database).
    pub(crate) fn from_connect(e: &tokio_postgres::Error) -> Self {
        StoreError::Unavailable(format!("Postgres refused the connection: {}", db_message(e)))
    }

    /// Whether trying again later can succeed (Postgres unreachable or slow), as opposed to a
    /// statement or value it will refuse every time.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Timeout(_))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(db_message(&e)),
            Some(c) if *c == SqlState::CHECK_VIOLATION || *c == SqlState::FOREIGN_KEY_VIOLATION => {
                StoreError::Rejected(db_message(&e))
            }
            Some(c)
                if *c == SqlState::TOO_MANY_CONNECTIONS
                    || *c == SqlState::CANNOT_CONNECT_NOW
                    || *c == SqlState::ADMIN_SHUTDOWN =>
            {
                StoreError::Unavailable(db_message(&e))
            }
            Some(_) => StoreError::Unexpected(anyhow::Error::new(e)),
            None if e.is_closed() || e.as_db_error().is_none() => StoreError::Unavailable(db_message(&e)),
            None => StoreError::Unexpected(anyhow::Error::new(e)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// tokio-postgres prints a server error as just "db error"; the server's own message says what happened.
pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned())
}
