//! The one place a Postgres session is configured and opened: the pool, run-lock sessions, migrations
//! and the maintenance connection (create and drop databases) all start from [`session_config`], so
//! TLS, keepalives and timeouts are set once for every session.
//!
//! Every session has deadlines on both sides: `statement_timeout`, `lock_timeout` and
//! `idle_in_transaction_session_timeout` on the server, TCP keepalives and `TCP_USER_TIMEOUT` on the
//! client, and the same keepalives and `tcp_user_timeout` on the server; the pool checks a connection
//! answers before handing it out again. Run-lock sessions also set `idle_session_timeout` (their holder
//! sends a heartbeat), so the server ends the session of a vanished instance, and with it its advisory
//! locks, within about `database.tcp_user_timeout_secs` even when something in the path still answers for
//! it (docs/architecture.md §4, "One run per (tenant, class)").
//!
//! TLS follows libpq's `sslmode` in `database.url` (`disable`, `prefer` (the default), `require`,
//! `verify-ca`, `verify-full`) through rustls; the roots are `database.ca_file` or `sslrootcert=PATH` in the
//! URL, else the webpki roots (`sslrootcert=system` too).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

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

/// Migrations may rewrite a large table or wait for another instance's migration lock: they get an hour
/// for a statement and for a lock wait instead of the pool's limits.
pub const MIGRATION_TIMEOUT: Duration = Duration::from_secs(3600);

/// `CREATE DATABASE` copies the template and `DROP DATABASE … WITH (FORCE)` ends sessions first.
const MAINTENANCE_STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, without verifying its certificate (libpq's default).
    Prefer,
    /// TLS or no session; the certificate is verified as for `VerifyCa` only when roots were given.
    Require,
    /// TLS with a certificate signed by a trusted root, for any host name.
    VerifyCa,
    /// TLS with a certificate signed by a trusted root and naming the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, StoreError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StoreError::Config(format!(
                    "invalid sslmode {other:?} in database.url: expected disable, prefer, require, verify-ca or \
                     verify-full"
                )))
            }
        })
    }
}

/// A session's configuration: the connection parameters and the TLS connector that goes with them.
#[derive(Clone)]
pub struct SessionConfig {
    pub postgres: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    pub ssl_mode: SslMode,
}

impl SessionConfig {
    /// Opens one session outside the pool; the returned task drives it and ends when it closes.
    pub async fn open(&self) -> Result<(Client, JoinHandle<Result<(), tokio_postgres::Error>>), StoreError> {
        let (client, connection) =
            self.postgres.connect(self.tls.clone()).await.map_err(|e| unreachable(&self.postgres, &e))?;
        Ok((client, tokio::spawn(connection)))
    }
}

/// The session configuration for `purpose`, from `database.url` and the session settings.
pub fn session_config(settings: &DatabaseSettings, purpose: Purpose) -> Result<SessionConfig, StoreError> {
    let url = split_tls_parameters(settings.url.expose_secret())?;
    let mut config: tokio_postgres::Config = url.rest.parse().map_err(|e| {
        StoreError::Config(format!("invalid database.url: {e}; expected postgres://user@host:port/database"))
    })?;
    let session = &settings.session;
    config.connect_timeout(settings.connect_timeout);
    config.application_name(purpose.application_name());
    config
        .keepalives(true)
        .keepalives_idle(session.keepalive_idle)
        .keepalives_interval(session.keepalive_interval)
        .keepalives_retries(session.keepalive_retries)
        .tcp_user_timeout(session.tcp_user_timeout);
    let (statement_timeout, lock_timeout) = match purpose {
        Purpose::Migrations => (MIGRATION_TIMEOUT, MIGRATION_TIMEOUT),
        Purpose::Maintenance => (MAINTENANCE_STATEMENT_TIMEOUT, session.lock_timeout),
        Purpose::Pool | Purpose::RunLock => (session.statement_timeout, session.lock_timeout),
    };
    let mut options = vec![
        config.get_options().unwrap_or_default().to_owned(),
        format!("-c statement_timeout={}", statement_timeout.as_millis()),
        format!("-c lock_timeout={}", lock_timeout.as_millis()),
        // A client that vanished or froze inside a transaction would hold its row locks forever.
        format!("-c idle_in_transaction_session_timeout={}", session.idle_in_transaction_timeout.as_millis()),
        // The server notices a vanished client by itself and ends its session (a connection slot, and for
        // run-lock sessions their advisory locks), instead of after the OS default of two hours.
        format!("-c tcp_keepalives_idle={}", session.keepalive_idle.as_secs()),
        format!("-c tcp_keepalives_interval={}", session.keepalive_interval.as_secs()),
        format!("-c tcp_keepalives_count={}", session.keepalive_retries),
        format!("-c tcp_user_timeout={}", session.tcp_user_timeout.as_millis()),
    ];
    match purpose {
        // Also when something in the path still acknowledges for the vanished holder (a NAT box, a proxy):
        // its heartbeat stops, and the server ends the idle session.
        Purpose::RunLock => {
            options.push(format!("-c idle_session_timeout={}", run_lock_idle_limit(settings).as_millis()));
        }
        // `DROP DATABASE IF EXISTS`, `CREATE TABLE IF NOT EXISTS` and the like send NOTICEs nobody reads.
        Purpose::Maintenance => {
            config.dbname("postgres");
            options.push("-c client_min_messages=warning".to_owned());
        }
        Purpose::Migrations => options.push("-c client_min_messages=warning".to_owned()),
        Purpose::Pool => {}
    }
    config.options(options.iter().map(|o| o.trim()).filter(|o| !o.is_empty()).collect::<Vec<_>>().join(" "));
    config.ssl_mode(match url.ssl_mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
    });
    // The setting wins over the URL's `sslrootcert`.
    let roots = settings.session.ca_file.clone().map(RootSource::File).or(url.root_cert);
    let tls = MakeRustlsConnect::new(tls_config(url.ssl_mode, roots)?);
    Ok(SessionConfig { postgres: config, tls, ssl_mode: url.ssl_mode })
}

/// A run-lock session that sends nothing for this long is ended by the server (`idle_session_timeout`);
/// its holder's heartbeat comes every sixth of it.
pub fn run_lock_idle_limit(settings: &DatabaseSettings) -> Duration {
    settings.session.tcp_user_timeout.max(Duration::from_secs(3))
}

/// The name of the configured database.
pub fn database_name(settings: &DatabaseSettings) -> Result<String, StoreError> {
    session_config(settings, Purpose::Pool)?
        .postgres
        .get_dbname()
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Config("database.url names no database; add one: postgres://…/entrasync".to_owned()))
}

/// Opens one session outside the pool; the returned task drives it and ends when it closes.
pub async fn open(
    config: &SessionConfig,
) -> Result<(Client, JoinHandle<Result<(), tokio_postgres::Error>>), StoreError> {
    config.open().await
}

/// `database.url` without the TLS parameters tokio-postgres does not know (`verify-*`, `sslrootcert`).
struct UrlParts {
    rest: String,
    ssl_mode: SslMode,
    root_cert: Option<RootSource>,
}

/// Where trusted roots come from when given in the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RootSource {
    File(PathBuf),
    /// `sslrootcert=system`: the webpki roots.
    System,
}

fn split_tls_parameters(url: &str) -> Result<UrlParts, StoreError> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Not a URL (key=value form): tokio-postgres reads it, and its sslmode, itself.
        return Ok(UrlParts { rest: url.to_owned(), ssl_mode: SslMode::Prefer, root_cert: None });
    };
    let mut ssl_mode = SslMode::Prefer;
    let mut root_cert = None;
    // Parameters we do not read are kept as written: re-encoding would turn spaces into '+', which
    // tokio-postgres does not decode.
    let mut kept = Vec::new();
    for raw in parsed.query().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let Some((key, value)) = url::form_urlencoded::parse(raw.as_bytes()).next() else { continue };
        match key.as_ref() {
            "sslmode" => ssl_mode = SslMode::parse(&value)?,
            "sslrootcert" if value == "system" => root_cert = Some(RootSource::System),
            "sslrootcert" => root_cert = Some(RootSource::File(PathBuf::from(value.as_ref()))),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" | "sslsni" => {
                return Err(StoreError::Config(format!(
                    "database.url: {key} is not supported (client certificates and CRLs are not); remove it"
                )))
            }
            _ => kept.push(raw.to_owned()),
        }
    }
    let query = kept.join("&");
    parsed.set_query(if query.is_empty() { None } else { Some(&query) });
    Ok(UrlParts { rest: parsed.to_string(), ssl_mode, root_cert })
}

/// The rustls configuration for `mode`: which certificates are trusted and whether the host name counts.
fn tls_config(mode: SslMode, roots: Option<RootSource>) -> Result<rustls::ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, &roots) {
        // libpq: `require` with a root certificate verifies like `verify-ca`.
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
            Arc::new(AnyCertificate(provider.clone()))
        }
        (SslMode::Require | SslMode::VerifyCa, _) => Arc::new(AnyHostName(webpki_verifier(&roots, &provider)?)),
        (SslMode::VerifyFull, _) => webpki_verifier(&roots, &provider)?,
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS setup for Postgres: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn webpki_verifier(
    roots: &Option<RootSource>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, StoreError> {
    let mut store = RootCertStore::empty();
    match roots {
        Some(RootSource::File(path)) => {
            let unreadable = |e: &dyn std::fmt::Display| {
                StoreError::Config(format!(
                    "cannot read the Postgres root certificates from {} (database.ca_file or sslrootcert): {e}",
                    path.display()
                ))
            };
            let certificates =
                CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))?.collect::<Result<Vec<_>, _>>();
            let (added, _ignored) = store.add_parsable_certificates(certificates.map_err(|e| unreadable(&e))?);
            if added == 0 {
                return Err(unreadable(&"no usable PEM certificate in the file"));
            }
        }
        Some(RootSource::System) | None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| StoreError::Config(format!("Postgres root certificates: {e}")))
}

/// `prefer` and `require` without roots: encrypted, but any certificate is accepted, as with libpq.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name in the certificate is not checked.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A connection error that names where we tried to connect and what the OS or the TLS layer said.
pub(crate) fn unreachable(config: &tokio_postgres::Config, error: &tokio_postgres::Error) -> StoreError {
    if error.as_db_error().is_some() {
        // The server answered (bad password, unknown database, no pg_hba entry): its message says what to fix.
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
    let reason = super::error::chain(error);
    if super::error::is_tls_refusal(error) {
        return StoreError::Tls(format!(
            "TLS with Postgres at {} failed ({reason}); check sslmode in database.url and the trusted roots \
             (database.ca_file or sslrootcert)",
            hosts.join(", ")
        ));
    }
    StoreError::Unavailable(format!(
        "no answer from {} ({reason}); is Postgres running there and is database.url right? \
         On a developer machine deploy/local-services.sh starts it",
        hosts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::config::SessionSettings;

    fn settings(url: &str) -> DatabaseSettings {
        DatabaseSettings {
            url: SecretString::from(url.to_owned()),
            pool_size: 4,
            connect_timeout: Duration::from_secs(2),
            session: SessionSettings::default(),
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
        let maintenance = session_config(&settings, Purpose::Maintenance).expect("config").postgres;
        assert_eq!(maintenance.get_dbname(), Some("postgres"));
        assert_eq!(maintenance.get_ports(), [5433]);
        let lock = session_config(&settings, Purpose::RunLock).expect("config").postgres;
        assert!(lock.get_keepalives(), "expected keepalives on run-lock sessions");
        assert_eq!(database_name(&settings).expect("name"), "entrasync");
        let error = session_config(&self::settings("not a url"), Purpose::Pool).err().expect("invalid");
        assert!(error.to_string().contains("database.url"), "expected the setting named: {error}");
    }

    #[test]
    fn every_session_has_deadlines_and_run_locks_set_the_servers_keepalives() {
        let settings = settings("postgres://u@db.example/entrasync?options=-c%20search_path%3Dx");
        for purpose in [Purpose::Pool, Purpose::RunLock, Purpose::Migrations, Purpose::Maintenance] {
            let config = session_config(&settings, purpose).expect("config").postgres;
            let options = config.get_options().unwrap_or_default();
            assert!(options.contains("-c statement_timeout=") && options.contains("-c lock_timeout="), "{options}");
            assert!(options.contains("-c idle_in_transaction_session_timeout=30000"), "{options}");
            assert!(options.starts_with("-c search_path=x"), "the URL's own options are kept: {options}");
            assert!(config.get_keepalives(), "{purpose:?}");
            assert_eq!(config.get_keepalives_idle(), Duration::from_secs(15), "{purpose:?}");
            assert_eq!(config.get_tcp_user_timeout(), Some(&Duration::from_secs(30)), "{purpose:?}");
            let server_side = options.contains("tcp_keepalives_idle=15") && options.contains("tcp_user_timeout=30000");
            assert!(server_side, "{purpose:?}: {options}");
            assert_eq!(options.contains("idle_session_timeout=30000"), purpose == Purpose::RunLock, "{options}");
        }
        let pool = session_config(&settings, Purpose::Pool).expect("config").postgres;
        assert!(pool.get_options().unwrap_or_default().contains("statement_timeout=60000"));
        let migrations = session_config(&settings, Purpose::Migrations).expect("config").postgres;
        assert!(migrations.get_options().unwrap_or_default().contains("statement_timeout=3600000"));
    }

    #[test]
    fn sslmode_and_sslrootcert_are_read_from_the_url_and_removed_from_what_tokio_postgres_parses() {
        let mode = |url: &str| session_config(&settings(url), Purpose::Pool).map(|c| c.ssl_mode);
        assert_eq!(mode("postgres://u@h/db").expect("default"), SslMode::Prefer);
        assert_eq!(mode("postgres://u@h/db?sslmode=disable").expect("disable"), SslMode::Disable);
        assert_eq!(mode("postgres://u@h/db?sslmode=verify-full").expect("webpki roots"), SslMode::VerifyFull);
        assert_eq!(
            mode("postgres://u@h/db?sslmode=verify-ca&sslrootcert=system&application_name=x").expect("system"),
            SslMode::VerifyCa
        );
        let error = mode("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem").expect_err("no file");
        assert!(error.to_string().contains("/nonexistent.pem"), "{error}");
        let error = mode("postgres://u@h/db?sslmode=sometimes").expect_err("bad mode");
        assert!(error.to_string().contains("sslmode") && error.to_string().contains("verify-full"), "{error}");
        let error = mode("postgres://u@h/db?sslcert=/c.pem").expect_err("client certificates");
        assert!(error.to_string().contains("sslcert"), "{error}");
    }
}
