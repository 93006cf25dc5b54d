//! Test harness: each test gets its own Postgres database and its own RabbitMQ names, removed afterwards,
//! so tests run in parallel without touching each other. Services are expected on loopback
//! (`deploy/local-services.sh` brings them up).

#![allow(dead_code)]

pub mod app;
pub mod browser;
pub mod private_postgres;
pub mod rabbitmq_restart;

use std::time::Duration;

use entrasync::config::Settings;
use secrecy::SecretString;
use uuid::Uuid;

pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A database that exists for the life of the value.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Only names the database: the code under test creates it (as `serve` and `migrate` do).
    pub fn named() -> TestDb {
        let name = format!("entrasync_test_{}", Uuid::new_v4().simple());
        TestDb { url: format!("postgres://postgres@127.0.0.1:5432/{name}"), name }
    }

    /// A fresh database with every migration applied.
    pub async fn migrated() -> TestDb {
        let db = TestDb::named();
        let settings = db.settings();
        entrasync::store::ensure_database_exists(&settings.database).await.expect("create test database");
        entrasync::store::migrate::run(&settings.database).await.expect("migrate test database");
        db
    }

    pub fn settings(&self) -> Settings {
        settings_with(&[("ENTRASYNC_DATABASE_URL", &self.url)])
    }

    pub fn pool(&self) -> entrasync::store::Pool {
        entrasync::store::pool(&self.settings().database).expect("pool")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (name, url) = (self.name.clone(), self.url.clone());
        // Drop runs outside any runtime we may block on: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let settings = settings_with(&[("ENTRASYNC_DATABASE_URL", &url)]);
                if let Err(error) = entrasync::store::drop_database(&settings.database).await {
                    eprintln!("could not drop test database {name}: {error}");
                }
            });
        })
        .join();
    }
}

/// RabbitMQ names of one test: a unique prefix; exchanges and queues under it are deleted afterwards.
pub struct TestAmqp {
    pub prefix: String,
}

impl TestAmqp {
    pub fn new() -> TestAmqp {
        TestAmqp { prefix: format!("t{}", &Uuid::new_v4().simple().to_string()[..12]) }
    }
}

impl Drop for TestAmqp {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
                let Ok(conn) = lapin::Connection::connect(AMQP_URL, Default::default()).await else { return };
                let Ok(ch) = conn.create_channel().await else { return };
                for class in ["user", "group", "device"] {
                    let _ =
                        ch.queue_delete(format!("{prefix}.sync.{class}").into(), QueueDeleteOptions::default()).await;
                }
                for queue in ["dead", "checks"] {
                    let _ = ch.queue_delete(format!("{prefix}.{queue}").into(), QueueDeleteOptions::default()).await;
                }
                for exchange in ["jobs", "dead"] {
                    let _ = ch
                        .exchange_delete(format!("{prefix}.{exchange}").into(), ExchangeDeleteOptions::default())
                        .await;
                }
                let _ = conn.close(200, "test done".into()).await;
            });
        })
        .join();
    }
}

/// Settings built from defaults plus the given `ENTRASYNC_*` variables (never the process environment).
/// Tests run in parallel against one Postgres (100 connections by default): each service a test starts runs
/// one worker per class with two rounds each, and a pool that fits that (3 × 1 × 2 + 4), unless it asks.
pub fn settings_with(vars: &[(&str, &str)]) -> Settings {
    let defaults = [
        ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1"),
        ("ENTRASYNC_AMQP_PREFETCH", "2"),
        ("ENTRASYNC_DATABASE_POOL_SIZE", "10"),
        // The emulator: tests register its tenants through the API as cloud "custom".
        ("ENTRASYNC_API_CUSTOM_CLOUD_HOSTS", "127.0.0.1,localhost"),
    ];
    let vars = defaults.iter().chain(vars).map(|(k, v)| (k.to_string(), v.to_string()));
    Settings::from_sources(None, vars).expect("test settings are valid")
}

pub fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_some(timeout, || {
        let checked = check();
        async move { checked.await.then_some(()) }
    })
    .await
    .is_some()
}

/// Polls `attempt` until it returns `Some` (returned) or `timeout` passes (`None`).
pub async fn eventually_some<T, F, Fut>(timeout: Duration, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = attempt().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` for `window` and tells whether it held every time: for what must never happen, which no
/// condition can be awaited for. A slow machine can only make the watch miss a violation, never report
/// one that did not happen.
pub async fn holds_for<F, Fut>(window: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + window;
    loop {
        if !check().await {
            return false;
        }
        if tokio::time::Instant::now() >= deadline {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A 2048-bit RSA private key (PKCS#8 PEM) generated once per test run, for certificate credentials.
/// Generated rather than committed: no private key lives in the repository.
pub fn test_rsa_key_pem() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("generate RSA key");
        key.to_pkcs8_pem(LineEnding::LF).expect("encode RSA key").to_string()
    })
}
