//! Postgres over TLS (issue 15): `sslmode` from `database.url` through rustls, with the roots from
//! `database.ca_file` or `sslrootcert`, against private clusters (tests/support/private_postgres.rs)
//! whose certificates each test makes. The shared server on 5432 is not involved.

use entrasync::config::Settings;
use entrasync::store::{self, StoreError};

use crate::support::private_postgres::{PrivatePostgres, Tls};
use crate::support::settings_with;

fn settings(url: &str, ca_file: Option<&std::path::Path>) -> Settings {
    let ca = ca_file.map(|p| p.display().to_string()).unwrap_or_default();
    settings_with(&[
        ("ENTRASYNC_DATABASE_URL", url),
        ("ENTRASYNC_DATABASE_CA_FILE", &ca),
        ("ENTRASYNC_DATABASE_CONNECT_TIMEOUT_SECS", "10"),
    ])
}

/// Whether the pool's session is encrypted, as the server sees it.
async fn pool_session_uses_tls(settings: &Settings) -> bool {
    let pool = store::pool(&settings.database).expect("pool");
    let client = pool.get().await.expect("a pooled session");
    client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.expect("pg_stat_ssl").get(0)
}

#[tokio::test]
async fn verify_full_with_the_test_ca_connects_and_runs_migrations() {
    let server = PrivatePostgres::start(Tls::Only);
    let with_setting = settings(&server.url("entrasync", "sslmode=verify-full"), Some(&server.ca_file));
    store::ensure_database_exists(&with_setting.database).await.expect("create the database over TLS");
    let applied = store::migrate::run(&with_setting.database).await.expect("migrations over TLS");
    assert!(!applied.is_empty(), "every migration applied");
    assert!(pool_session_uses_tls(&with_setting).await, "the pool's sessions are encrypted");

    // The same roots named in the URL, as libpq writes it.
    let query = format!("sslmode=verify-full&sslrootcert={}", server.ca_file.display());
    let with_url = settings(&server.url("entrasync", &query), None);
    assert!(pool_session_uses_tls(&with_url).await);
    // verify-ca checks the chain only, so a host name the certificate does not name is accepted.
    let query = format!("sslmode=verify-ca&sslrootcert={}", server.ca_file.display());
    let by_name = settings(&server.url("entrasync", &query).replace("127.0.0.1", "127.0.0.2"), None);
    let by_name_full = settings(
        &server
            .url("entrasync", &format!("sslmode=verify-full&sslrootcert={}", server.ca_file.display()))
            .replace("127.0.0.1", "127.0.0.2"),
        None,
    );
    // The server also listens on 127.0.0.2, which its certificate does not name.
    assert!(std::net::TcpStream::connect(("127.0.0.2", server.port)).is_ok(), "the second address listens");
    assert!(pool_session_uses_tls(&by_name).await, "verify-ca ignores the name");
    let error = store::migrate::run(&by_name_full.database).await.expect_err("verify-full checks the name");
    assert!(matches!(error, StoreError::Tls(_)), "{error:?}");
    assert!(error.to_string().contains("not valid for name"), "{error}");
}

#[tokio::test]
async fn scram_with_channel_binding_signs_in_over_verified_tls() {
    let server = PrivatePostgres::start(Tls::Only);
    let admin = settings(&server.url("postgres", "sslmode=verify-full"), Some(&server.ca_file));
    let pool = store::pool(&admin.database).expect("pool");
    let client = pool.get().await.expect("admin session");
    client.batch_execute("CREATE ROLE app LOGIN PASSWORD 'app-secret-1'").await.expect("role");
    server.require_scram_for("app");
    let url = |password: &str| {
        server
            .url("postgres", "sslmode=verify-full&channel_binding=require")
            .replace("postgres://postgres@", &format!("postgres://app:{password}@"))
    };
    // The reload is asynchronous: wait until a wrong password is refused.
    let refused = crate::support::eventually(std::time::Duration::from_secs(20), || {
        let wrong = settings(&url("wrong"), Some(&server.ca_file));
        async move {
            let pool = store::pool(&wrong.database).expect("pool");
            pool.get().await.is_err_and(|e| StoreError::from(e).to_string().contains("28P01"))
        }
    })
    .await;
    assert!(refused, "SCRAM is required for app now\n{}", server.log());
    // channel_binding=require: SCRAM-SHA-256-PLUS bound to the server's certificate, or no session.
    let app = settings(&url("app-secret-1"), Some(&server.ca_file));
    assert!(pool_session_uses_tls(&app).await, "signed in with SCRAM over TLS\n{}", server.log());
}

#[tokio::test]
async fn verify_full_without_the_servers_ca_fails_with_a_clear_error() {
    let server = PrivatePostgres::start(Tls::Only);
    // No roots given: the webpki roots, which never signed a test certificate.
    let webpki = settings(&server.url("postgres", "sslmode=verify-full"), None);
    let error = store::migrate::run(&webpki.database).await.expect_err("an unknown issuer");
    let text = error.to_string();
    assert!(matches!(error, StoreError::Tls(_)), "{error:?}");
    assert!(text.contains(&format!("127.0.0.1:{}", server.port)), "names the server: {text}");
    assert!(text.contains("UnknownIssuer"), "says why: {text}");
    assert!(text.contains("database.ca_file"), "says what to fix: {text}");
    assert!(!error.is_transient(), "a certificate does not get better by waiting: {text}");

    // Another CA's certificate, from the setting: the same refusal, through the pool too.
    let other = settings(&server.url("postgres", "sslmode=verify-full"), Some(&server.other_ca_file));
    let pool = store::pool(&other.database).expect("pool");
    let error = StoreError::from(pool.get().await.expect_err("an untrusted issuer"));
    assert!(matches!(error, StoreError::Tls(_)), "{error:?}");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn sslmode_require_against_a_server_without_tls_fails_clearly() {
    let server = PrivatePostgres::start(Tls::Off);
    let required = settings(&server.url("postgres", "sslmode=require"), None);
    let error = store::ensure_database_exists(&required.database).await.expect_err("no TLS offered");
    let text = error.to_string();
    assert!(matches!(error, StoreError::Tls(_)), "{error:?}");
    assert!(text.contains("server does not support TLS"), "{text}");
    assert!(text.contains("sslmode"), "says what to check: {text}");
    // The default (prefer) and disable still connect to it, unencrypted.
    for query in ["", "sslmode=disable"] {
        let plain = settings(&server.url("postgres", query), None);
        assert!(!pool_session_uses_tls(&plain).await, "{query:?}: plain, as the server offers no TLS");
    }
}

#[tokio::test]
async fn a_hostssl_only_server_rejects_plain_sessions_and_accepts_encrypted_ones() {
    let server = PrivatePostgres::start(Tls::Only);
    let plain = settings(&server.url("postgres", "sslmode=disable"), None);
    let error = store::ensure_database_exists(&plain.database).await.expect_err("pg_hba: hostssl only");
    let text = error.to_string();
    assert!(text.contains("no pg_hba.conf entry") && text.contains("no encryption"), "{text}\n{}", server.log());
    assert!(text.contains("28000"), "the SQLSTATE: {text}");
    // prefer (the default) and require encrypt without checking the certificate, as libpq does.
    for query in ["", "sslmode=prefer", "sslmode=require"] {
        let encrypted = settings(&server.url("postgres", query), None);
        assert!(pool_session_uses_tls(&encrypted).await, "{query:?}");
    }
    // require with roots verifies the chain (libpq: as verify-ca), so an untrusted CA is refused.
    let other = settings(&server.url("postgres", "sslmode=require"), Some(&server.other_ca_file));
    let error = store::migrate::run(&other.database).await.expect_err("untrusted CA");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}
