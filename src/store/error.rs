use std::fmt;
use std::time::Duration;

use tokio_postgres::error::SqlState;

/// Errors of the store layer. SQLSTATEs are mapped to domain cases in [`StoreError::from`] only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("Postgres is unreachable: {0}")]
    Unavailable(String),
    /// A deadline of ours passed (a pooled connection, a readiness check).
    #[error("Postgres did not answer within {0:?}")]
    Timeout(Duration),
    /// The server cancelled the statement: `statement_timeout` (57014) or `lock_timeout` (55P03).
    #[error("Postgres cancelled the statement after its timeout: {0}")]
    StatementTimeout(Box<DbFailure>),
    /// Any other error the server reported, as it reported it.
    #[error("Postgres error: {0}")]
    Database(Box<DbFailure>),
    /// The TLS handshake failed or the server offers no TLS while `sslmode` requires it.
    #[error("{0}")]
    Tls(String),
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

/// What the server said about a failed statement, and what the store was doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbFailure {
    /// The SQLSTATE, e.g. `40001`.
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// What the store was doing ([`During::during`]).
    pub operation: Option<&'static str>,
}

impl fmt::Display for DbFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(operation) = self.operation {
            write!(f, "{operation}: ")?;
        }
        write!(f, "{} (SQLSTATE {})", self.message, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, "; detail: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

impl DbFailure {
    fn of(e: &tokio_postgres::error::DbError) -> Box<DbFailure> {
        Box::new(DbFailure {
            code: e.code().code().to_owned(),
            message: e.message().to_owned(),
            detail: e.detail().map(str::to_owned),
            hint: e.hint().map(str::to_owned),
            operation: None,
        })
    }

    /// Serialization failures and deadlocks succeed when the transaction is tried again; a server
    /// shutting down or out of connections takes new sessions again soon.
    fn is_transient(&self) -> bool {
        let code = self.code.as_str();
        code.starts_with("08")
            || [
                SqlState::T_R_SERIALIZATION_FAILURE.code(),
                SqlState::T_R_DEADLOCK_DETECTED.code(),
                SqlState::ADMIN_SHUTDOWN.code(),
                SqlState::CRASH_SHUTDOWN.code(),
                SqlState::CANNOT_CONNECT_NOW.code(),
                SqlState::TOO_MANY_CONNECTIONS.code(),
                SqlState::IDLE_SESSION_TIMEOUT.code(),
            ]
            .contains(&code)
    }
}

impl crate::backoff::Transient for StoreError {
    fn is_transient(&self) -> bool {
        StoreError::is_transient(self)
    }
}

impl StoreError {
    /// A connection attempt the server refused: its message says why (authentication, database, pg_hba).
    pub(crate) fn from_connect(e: &tokio_postgres::Error) -> Self {
        let code = e.code().map(|c| format!(" (SQLSTATE {})", c.code())).unwrap_or_default();
        StoreError::Unavailable(format!("Postgres refused the connection: {}{code}", db_message(e)))
    }

    /// Whether trying again later can succeed (Postgres unreachable or slow, a statement cancelled by
    /// its timeout, a serialization failure or deadlock), as opposed to a statement or value it will
    /// refuse every time.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::Timeout(_) | StoreError::StatementTimeout(_) => true,
            StoreError::Database(failure) => failure.is_transient(),
            _ => false,
        }
    }

    /// The SQLSTATE the server reported, if this error came from the server.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            StoreError::StatementTimeout(failure) | StoreError::Database(failure) => Some(&failure.code),
            _ => None,
        }
    }

    /// Names what the store was doing; errors that already name an operation keep theirs.
    pub fn during(self, operation: &'static str) -> StoreError {
        match self {
            StoreError::StatementTimeout(mut failure) => {
                failure.operation = failure.operation.or(Some(operation));
                StoreError::StatementTimeout(failure)
            }
            StoreError::Database(mut failure) => {
                failure.operation = failure.operation.or(Some(operation));
                StoreError::Database(failure)
            }
            StoreError::Unavailable(message) => StoreError::Unavailable(format!("{operation}: {message}")),
            StoreError::Unexpected(error) => StoreError::Unexpected(anyhow::anyhow!("{operation}: {error:#}")),
            other => other,
        }
    }
}

/// Adds what the store was doing to an error: `client.execute(…).await.during("writing a batch")?`.
pub trait During<T> {
    fn during(self, operation: &'static str) -> Result<T, StoreError>;
}

impl<T, E: Into<StoreError>> During<T> for Result<T, E> {
    fn during(self, operation: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| e.into().during(operation))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            return if *code == SqlState::UNIQUE_VIOLATION {
                StoreError::Conflict(db_message(&e))
            } else if *code == SqlState::CHECK_VIOLATION || *code == SqlState::FOREIGN_KEY_VIOLATION {
                StoreError::Rejected(db_message(&e))
            } else if *code == SqlState::TOO_MANY_CONNECTIONS
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::ADMIN_SHUTDOWN
            {
                StoreError::Unavailable(format!("{} (SQLSTATE {})", db.message(), code.code()))
            } else if *code == SqlState::QUERY_CANCELED || *code == SqlState::LOCK_NOT_AVAILABLE {
                StoreError::StatementTimeout(DbFailure::of(db))
            } else {
                StoreError::Database(DbFailure::of(db))
            };
        }
        // No server error: the connection broke, or a value did not convert (a bug, not an outage).
        let text = chain(&e);
        let connection = e.is_closed()
            || std::error::Error::source(&e).is_some_and(is_io)
            || ["error communicating with the server", "error connecting to server", "timeout waiting for server"]
                .iter()
                .any(|prefix| text.starts_with(prefix));
        if is_tls_refusal(&e) {
            StoreError::Tls(format!("Postgres TLS: {text}"))
        } else if connection {
            StoreError::Unavailable(text)
        } else {
            StoreError::Unexpected(anyhow::anyhow!(text))
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::{PoolError, TimeoutType};
        match e {
            PoolError::Backend(e) => e.into(),
            // Every connection is busy (wait), or opening or checking one took too long.
            PoolError::Timeout(TimeoutType::Wait) => StoreError::Unavailable(
                "timed out waiting for a free pooled Postgres connection (all in use; \
                     database.pool_size, database.pool_wait_timeout_secs)"
                    .to_owned(),
            ),
            PoolError::Timeout(kind) => StoreError::Unavailable(format!(
                "opening or checking a pooled Postgres connection timed out ({kind:?})"
            )),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// tokio-postgres prints a server error as just "db error"; the server's own message says what happened.
pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(|| chain(e), |d| d.message().to_owned())
}

/// A TLS handshake that failed for a reason a retry does not fix: the certificate was refused, or the
/// server offers no TLS. A connection that broke during the handshake (a restart, a cut) is not one.
pub(crate) fn is_tls_refusal(e: &tokio_postgres::Error) -> bool {
    if !e.to_string().starts_with("error performing TLS handshake") {
        return false;
    }
    let broken = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>()).is_some_and(|io| {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, TimedOut, UnexpectedEof};
        matches!(io.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe | TimedOut)
    });
    !broken
}

fn is_io(error: &(dyn std::error::Error + 'static)) -> bool {
    error.is::<std::io::Error>()
}

/// An error and its sources, "outer: inner: innermost".
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: &str) -> Box<DbFailure> {
        Box::new(DbFailure {
            code: code.to_owned(),
            message: "m".to_owned(),
            detail: Some("d".to_owned()),
            hint: None,
            operation: None,
        })
    }

    #[test]
    fn serialization_failures_deadlocks_and_timeouts_are_transient_and_the_rest_is_not() {
        assert!(StoreError::Database(failure("40001")).is_transient());
        assert!(StoreError::Database(failure("40P01")).is_transient());
        assert!(StoreError::Database(failure("08006")).is_transient());
        assert!(StoreError::StatementTimeout(failure("57014")).is_transient());
        assert!(!StoreError::Database(failure("42P01")).is_transient(), "undefined table");
        assert!(!StoreError::Database(failure("22P02")).is_transient(), "invalid text representation");
        assert!(!StoreError::Unexpected(anyhow::anyhow!("error deserializing column 0")).is_transient());
    }

    #[test]
    fn the_operation_sqlstate_message_and_detail_are_shown() {
        let error = StoreError::Database(failure("42P01")).during("writing a batch");
        assert_eq!(error.to_string(), "Postgres error: writing a batch: m (SQLSTATE 42P01); detail: d");
        assert_eq!(error.sqlstate(), Some("42P01"));
        let again = error.during("an outer operation");
        assert!(again.to_string().contains("writing a batch") && !again.to_string().contains("outer"));
    }
}
