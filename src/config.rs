//! Typed configuration: defaults, then an optional TOML file, then `ENTRASYNC_*` environment variables.
//!
//! Every setting is declared once in [`SETTINGS`] (key, environment variable, default, help). Values are
//! parsed and validated in one place; a bad value stops start-up with a message that names the setting,
//! the value and what is accepted. Unknown TOML keys and unknown `ENTRASYNC_*` variables are rejected, so
//! a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// One configurable value.
pub struct SettingSpec {
    /// Dotted key, as written in the TOML file (`[database] url = …` is `database.url`).
    pub key: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    /// Masked when printed.
    pub secret: bool,
    pub help: &'static str,
}

const fn spec(key: &'static str, env: &'static str, default: &'static str, help: &'static str) -> SettingSpec {
    SettingSpec { key, env, default, secret: false, help }
}

/// All settings entrasync reads. The deploy manifests are checked against this list in a test.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        key: "database.url",
        env: "ENTRASYNC_DATABASE_URL",
        default: "postgres://postgres@127.0.0.1:5432/entrasync",
        secret: true,
        help: "Postgres connection URL; the database is created when missing",
    },
    spec(
        "database.pool_size",
        "ENTRASYNC_DATABASE_POOL_SIZE",
        "16",
        "maximum pooled Postgres connections; a worker needs one per concurrent round (3 × workers × prefetch) plus 4",
    ),
    spec(
        "database.connect_timeout_secs",
        "ENTRASYNC_DATABASE_CONNECT_TIMEOUT_SECS",
        "5",
        "seconds to wait for a Postgres connection before giving up",
    ),
    spec(
        "database.pool_wait_timeout_secs",
        "ENTRASYNC_DATABASE_POOL_WAIT_TIMEOUT_SECS",
        "10",
        "seconds a task waits for a free pooled connection before failing with a timeout",
    ),
    spec(
        "database.statement_timeout_secs",
        "ENTRASYNC_DATABASE_STATEMENT_TIMEOUT_SECS",
        "60",
        "Postgres statement_timeout of every session: a statement running longer is cancelled (batch writes, \
         migrations and benchmarks set their own longer limit)",
    ),
    spec(
        "database.lock_timeout_secs",
        "ENTRASYNC_DATABASE_LOCK_TIMEOUT_SECS",
        "10",
        "Postgres lock_timeout of every session: a statement waiting longer for a row or table lock is cancelled",
    ),
    spec(
        "database.idle_in_transaction_timeout_secs",
        "ENTRASYNC_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECS",
        "30",
        "Postgres idle_in_transaction_session_timeout of every session: the server ends a session that sends \
         nothing for this long inside a transaction, releasing its row locks (a vanished or frozen client)",
    ),
    spec(
        "database.keepalive_idle_secs",
        "ENTRASYNC_DATABASE_KEEPALIVE_IDLE_SECS",
        "15",
        "seconds of silence before TCP keepalive probes start, on both ends of a session",
    ),
    spec(
        "database.keepalive_interval_secs",
        "ENTRASYNC_DATABASE_KEEPALIVE_INTERVAL_SECS",
        "5",
        "seconds between unanswered TCP keepalive probes",
    ),
    spec(
        "database.keepalive_retries",
        "ENTRASYNC_DATABASE_KEEPALIVE_RETRIES",
        "3",
        "unanswered TCP keepalive probes after which the connection is dropped",
    ),
    spec(
        "database.tcp_user_timeout_secs",
        "ENTRASYNC_DATABASE_TCP_USER_TIMEOUT_SECS",
        "30",
        "seconds sent data may stay unacknowledged before the connection is dropped (TCP_USER_TIMEOUT), on \
         both ends of every session; the server also ends a run-lock session silent this long, so a vanished \
         instance's run locks are released within about this long",
    ),
    spec(
        "database.ca_file",
        "ENTRASYNC_DATABASE_CA_FILE",
        "",
        "PEM file of the root certificates that sign the Postgres server's certificate (sslmode=verify-ca or \
         verify-full in database.url; sslrootcert=PATH in the URL does the same). Empty: the webpki roots",
    ),
    SettingSpec {
        key: "amqp.url",
        env: "ENTRASYNC_AMQP_URL",
        default: "amqp://guest:guest@127.0.0.1:5672/%2f",
        secret: true,
        help: "RabbitMQ URL (vhost URL-encoded: %2f is /)",
    },
    spec(
        "amqp.prefix",
        "ENTRASYNC_AMQP_PREFIX",
        "entrasync",
        "prefix of exchange and queue names (entrasync.jobs, entrasync.sync.user, ...)",
    ),
    spec("amqp.prefetch", "ENTRASYNC_AMQP_PREFETCH", "2", "unacknowledged jobs (concurrent rounds) a worker may hold"),
    spec(
        "amqp.delivery_limit",
        "ENTRASYNC_AMQP_DELIVERY_LIMIT",
        "5",
        "deliveries of one job before it is dead-lettered",
    ),
    spec(
        "amqp.events_per_message",
        "ENTRASYNC_AMQP_EVENTS_PER_MESSAGE",
        "100",
        "change events per message on {prefix}.changes: above 1 a message is an envelope {\"events\":[...]} \
         of up to that many consecutive events with the same routing key (AMQP type entrasync.events); 1 \
         sends each event as a message of its own (entrasync.event), at about a sixth of the throughput \
         (docs/events-relay.md)",
    ),
    spec(
        "http.listen",
        "ENTRASYNC_HTTP_LISTEN",
        "127.0.0.1:8080",
        "address of the HTTP server (API, /metrics, probes)",
    ),
    spec(
        "http.shutdown_timeout_secs",
        "ENTRASYNC_HTTP_SHUTDOWN_TIMEOUT_SECS",
        "8",
        "seconds in-flight requests get after SIGTERM",
    ),
    SettingSpec {
        key: "secrets.key",
        env: "ENTRASYNC_SECRETS_KEY",
        default: "",
        secret: true,
        help: "base64 of 32 random bytes (openssl rand -base64 32) that encrypts stored credentials",
    },
    SettingSpec {
        key: "admin.token",
        env: "ENTRASYNC_ADMIN_TOKEN",
        default: "",
        secret: true,
        help: "an admin API token accepted as 'bootstrap' (es_ + 43 base64url characters, or any 32+ character \
               secret); when empty and no admin token exists, serve creates one and prints it once",
    },
    spec(
        "api.public_url",
        "ENTRASYNC_API_PUBLIC_URL",
        "",
        "the console's URL as browsers reach it (https://entrasync.example.com); names the admin-consent redirect. \
         Empty: taken from each request's Host",
    ),
    spec(
        "api.custom_cloud_hosts",
        "ENTRASYNC_API_CUSTOM_CLOUD_HOSTS",
        "",
        "hosts (name or name:port, comma-separated) the API may send credentials to for cloud \"custom\" (the \
         emulator, a sovereign endpoint). Empty: the API refuses custom clouds; the CLI can still register them",
    ),
    spec(
        "api.trusted_proxies",
        "ENTRASYNC_API_TRUSTED_PROXIES",
        "",
        "addresses of reverse proxies (ingress, load balancer) whose X-Forwarded-For names the client, \
         comma-separated; the failed sign-in limit then counts per client instead of per proxy",
    ),
    spec("log.format", "ENTRASYNC_LOG_FORMAT", "text", "log format: text or json"),
    spec("log.filter", "ENTRASYNC_LOG_FILTER", DEFAULT_LOG_FILTER, "tracing filter, e.g. info,entrasync=debug"),
    spec("instance.id", "ENTRASYNC_INSTANCE_ID", "", "name of this instance in leases and logs (default: host-pid)"),
    spec(
        "serve.roles",
        "ENTRASYNC_SERVE_ROLES",
        "api,scheduler,worker",
        "comma-separated roles this instance runs: api, scheduler, worker",
    ),
    spec(
        "sync.delta_interval_secs",
        "ENTRASYNC_SYNC_DELTA_INTERVAL_SECS",
        "300",
        "seconds between delta rounds of one tenant and class",
    ),
    spec(
        "sync.full_scan_interval_secs",
        "ENTRASYNC_SYNC_FULL_SCAN_INTERVAL_SECS",
        "604800",
        "seconds between periodic full scans",
    ),
    spec("sync.workers_per_class", "ENTRASYNC_SYNC_WORKERS_PER_CLASS", "2", "sync workers per object class"),
    spec(
        "sync.batch_objects",
        "ENTRASYNC_SYNC_BATCH_OBJECTS",
        "5000",
        "delta pages are written in batches of at least this many objects, one transaction each (1: every page)",
    ),
    spec(
        "sync.snapshot_budget_mb",
        "ENTRASYNC_SYNC_SNAPSHOT_BUDGET_MB",
        "256",
        "memory (MB) the re-scan snapshots of one instance's concurrent full rounds may hold, about 25 bytes per \
         stored object; a round that does not fit streams instead (0: every round streams; docs/sync.md)",
    ),
    spec(
        "sync.deletion_threshold",
        "ENTRASYNC_SYNC_DELETION_THRESHOLD",
        "500",
        "deletions in one run at or above which they are held for an operator",
    ),
    spec(
        "sync.deletion_threshold_percent",
        "ENTRASYNC_SYNC_DELETION_THRESHOLD_PERCENT",
        "20",
        "deletions as a percentage of stored objects at or above which they are held (the lower limit wins)",
    ),
    spec(
        "tags.sync_interval_secs",
        "ENTRASYNC_TAGS_SYNC_INTERVAL_SECS",
        "86400",
        "seconds between scheduled tag syncs of a tenant with tag mappings (docs/mappings.md)",
    ),
    spec(
        "tags.max_mappings",
        "ENTRASYNC_TAGS_MAX_MAPPINGS",
        "5",
        "tag mappings a tenant may have (mappings pending deletion do not count)",
    ),
];

/// `log.filter` unless configured: what the service logs.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Connections beyond the rounds' own: history recorder, scheduler, scrapes, API.
const POOL_HEADROOM: usize = 4;

/// The object classes a worker instance consumes (user, group, device).
const OBJECT_CLASSES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for setting {key} ({env}): expected {expected}")]
    Invalid { key: &'static str, env: &'static str, value: String, expected: String },
    #[error("unknown setting {0:?} in the configuration file; known settings: {1}")]
    UnknownKey(String, String),
    #[error("unknown environment variable {0}; known ENTRASYNC_ variables: {1}")]
    UnknownEnv(String, String),
    #[error("cannot read configuration file {path}: {reason}")]
    File { path: String, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Api,
    Scheduler,
    Worker,
}

#[derive(Clone)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    /// Deadlines and keepalives of every session, and the TLS roots.
    pub session: SessionSettings,
}

/// What every Postgres session sets (`src/store/connect.rs`), so no call waits forever on a server or a
/// network that stopped answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    pub pool_wait_timeout: Duration,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub idle_in_transaction_timeout: Duration,
    pub keepalive_idle: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_retries: u32,
    pub tcp_user_timeout: Duration,
    /// `database.ca_file`: PEM roots for verifying the server's certificate.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for SessionSettings {
    /// The defaults of [`SETTINGS`].
    fn default() -> Self {
        SessionSettings {
            pool_wait_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(60),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(30),
            keepalive_idle: Duration::from_secs(15),
            keepalive_interval: Duration::from_secs(5),
            keepalive_retries: 3,
            tcp_user_timeout: Duration::from_secs(30),
            ca_file: None,
        }
    }
}

#[derive(Clone)]
pub struct AmqpSettings {
    pub url: SecretString,
    pub prefix: String,
    pub prefetch: u16,
    pub delivery_limit: u32,
    /// Change events per AMQP message (the relay; docs/events.md).
    pub events_per_message: u16,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub shutdown_timeout: Duration,
}

/// The operator API (`/api/v1`).
#[derive(Clone)]
pub struct ApiSettings {
    /// `ENTRASYNC_ADMIN_TOKEN`; empty when not configured.
    pub admin_token: SecretString,
    /// Where browsers reach the console; `None`: from each request's `Host`.
    pub public_url: Option<url::Url>,
    /// Hosts (`name` or `name:port`, lowercase) a custom cloud given through the API may use.
    pub custom_cloud_hosts: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub delta_interval: Duration,
    pub full_scan_interval: Duration,
    pub workers_per_class: usize,
    /// Objects after which a batch of delta pages is written (`sync.batch_objects`).
    pub batch_objects: usize,
    /// Memory the re-scan snapshots of concurrent full rounds may hold, in MB (`sync.snapshot_budget_mb`).
    pub snapshot_budget_mb: u64,
    pub deletion_threshold: u64,
    pub deletion_threshold_percent: u8,
}

/// External tag mappings (docs/mappings.md, "Tag mappings").
#[derive(Debug, Clone)]
pub struct TagSettings {
    /// How often the scheduler publishes a tenant's tag sync (`tags.sync_interval_secs`).
    pub sync_interval: Duration,
    /// Live tag mappings per tenant (`tags.max_mappings`).
    pub max_mappings: u32,
}

/// Fault injection for tests: off unless a test sets it in code. No configuration file key or
/// `ENTRASYNC_*` variable reaches it, so a deployment cannot turn it on.
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct TestingSettings {
    /// Schedule checks of the tenant with this name panic, to exercise tenant supervisor restarts.
    pub panic_schedule_checks_of_tenant: Option<String>,
}

/// The validated configuration of one process.
#[derive(Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    /// Encrypts credential secrets at rest; empty when not configured.
    pub secrets_key: SecretString,
    pub amqp: AmqpSettings,
    pub http: HttpSettings,
    pub api: ApiSettings,
    pub log: LogSettings,
    pub instance_id: String,
    pub roles: Vec<Role>,
    pub sync: SyncSettings,
    pub tags: TagSettings,
    /// Fault injection, for tests only; always off when loaded from configuration.
    #[doc(hidden)]
    pub testing: TestingSettings,
}

impl Settings {
    /// Loads defaults, then `file` (if given), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let toml_text = match file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::File { path: path.display().to_string(), reason: e.to_string() })?,
            ),
            None => None,
        };
        Self::from_sources(toml_text.as_deref(), std::env::vars())
    }

    /// Pure form of [`Settings::load`], for tests and tools.
    pub fn from_sources(
        toml_text: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut raw: BTreeMap<&'static str, String> = SETTINGS.iter().map(|s| (s.key, s.default.to_owned())).collect();
        if let Some(text) = toml_text {
            for (key, value) in flatten_toml(text)? {
                let spec = SETTINGS
                    .iter()
                    .find(|s| s.key == key)
                    .ok_or_else(|| ConfigError::UnknownKey(key.clone(), known(|s| s.key)))?;
                raw.insert(spec.key, value);
            }
        }
        for (name, value) in env {
            if !name.starts_with("ENTRASYNC_") {
                continue;
            }
            match SETTINGS.iter().find(|s| s.env == name) {
                Some(spec) => {
                    raw.insert(spec.key, value);
                }
                // Variables the binary itself reads outside this module.
                None if name == "ENTRASYNC_CONFIG" => {}
                None => return Err(ConfigError::UnknownEnv(name, known(|s| s.env))),
            }
        }
        Self::parse(&raw)
    }

    fn parse(raw: &BTreeMap<&'static str, String>) -> Result<Self, ConfigError> {
        let settings = Self::parse_each(raw)?;
        settings.check_pool_fits_workers(raw)?;
        Ok(settings)
    }

    /// Every running round holds a pooled connection for its page transactions; a pool smaller than the
    /// rounds a worker instance may run at once would make rounds wait for connections and time out.
    fn check_pool_fits_workers(&self, raw: &BTreeMap<&'static str, String>) -> Result<(), ConfigError> {
        let rounds = OBJECT_CLASSES * self.sync.workers_per_class * usize::from(self.amqp.prefetch);
        let needed = rounds + POOL_HEADROOM;
        if self.has_role(Role::Worker) && self.database.pool_size < needed {
            let expected = format!(
                "at least {needed}: 3 classes × {} workers (ENTRASYNC_SYNC_WORKERS_PER_CLASS) × {} prefetch \
                 (ENTRASYNC_AMQP_PREFETCH) concurrent rounds + {POOL_HEADROOM}; raise it or lower those",
                self.sync.workers_per_class, self.amqp.prefetch
            );
            return Err(invalid(raw, "database.pool_size", &expected));
        }
        Ok(())
    }

    fn parse_each(raw: &BTreeMap<&'static str, String>) -> Result<Self, ConfigError> {
        let get = |key: &str| raw.get(key).map(String::as_str).unwrap_or_default();
        let instance_id = match get("instance.id") {
            "" => default_instance_id(),
            id => id.to_owned(),
        };
        Ok(Settings {
            secrets_key: SecretString::from(parse_secrets_key(raw)?),
            database: DatabaseSettings {
                url: SecretString::from(parse_url(raw, "database.url", &["postgres", "postgresql"])?),
                pool_size: parse_range(raw, "database.pool_size", 1, 1000)?,
                connect_timeout: Duration::from_secs(parse_range(raw, "database.connect_timeout_secs", 1, 600)?),
                session: parse_session(raw)?,
            },
            amqp: AmqpSettings {
                url: SecretString::from(parse_url(raw, "amqp.url", &["amqp", "amqps"])?),
                prefix: parse_name(raw, "amqp.prefix")?,
                prefetch: parse_range(raw, "amqp.prefetch", 1, 1000)?,
                delivery_limit: parse_range(raw, "amqp.delivery_limit", 1, 1000)?,
                events_per_message: parse_range(raw, "amqp.events_per_message", 1, 1000)?,
            },
            http: HttpSettings {
                listen: parse_with(raw, "http.listen", "a socket address such as 127.0.0.1:8080 or 0.0.0.0:8080")?,
                shutdown_timeout: Duration::from_secs(parse_range(raw, "http.shutdown_timeout_secs", 0, 300)?),
            },
            api: ApiSettings {
                admin_token: SecretString::from(parse_admin_token(raw)?),
                public_url: match get("api.public_url").trim() {
                    "" => None,
                    _ => Some(
                        parse_url(raw, "api.public_url", &["http", "https"])?
                            .parse()
                            .map_err(|_| invalid(raw, "api.public_url", "a URL with scheme http or https"))?,
                    ),
                },
                custom_cloud_hosts: parse_hosts(raw, "api.custom_cloud_hosts")?,
                trusted_proxies: get("api.trusted_proxies")
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(|a| {
                        a.parse().map_err(|_| invalid(raw, "api.trusted_proxies", "IP addresses separated by commas"))
                    })
                    .collect::<Result<_, _>>()?,
            },
            log: LogSettings {
                format: match get("log.format") {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(invalid(raw, "log.format", "text or json")),
                },
                filter: parse_log_filter(raw)?,
            },
            instance_id,
            roles: parse_roles(raw)?,
            sync: SyncSettings {
                delta_interval: Duration::from_secs(parse_range(raw, "sync.delta_interval_secs", 1, 86_400)?),
                full_scan_interval: Duration::from_secs(parse_range(
                    raw,
                    "sync.full_scan_interval_secs",
                    60,
                    90 * 86_400,
                )?),
                workers_per_class: parse_range(raw, "sync.workers_per_class", 1, 64)?,
                batch_objects: parse_range(raw, "sync.batch_objects", 1, 100_000)?,
                snapshot_budget_mb: parse_range(raw, "sync.snapshot_budget_mb", 0, 1 << 20)?,
                deletion_threshold: parse_range(raw, "sync.deletion_threshold", 1, u64::MAX)?,
                deletion_threshold_percent: parse_range(raw, "sync.deletion_threshold_percent", 1, 100)?,
            },
            tags: TagSettings {
                sync_interval: Duration::from_secs(parse_range(raw, "tags.sync_interval_secs", 60, 90 * 86_400)?),
                max_mappings: parse_range(raw, "tags.max_mappings", 1, 100)?,
            },
            testing: TestingSettings::default(),
        })
    }

    /// The effective configuration as `KEY=value` lines, secrets masked; for `entrasync config`.
    pub fn describe(&self) -> String {
        let roles: Vec<&str> = self
            .roles
            .iter()
            .map(|r| match r {
                Role::Api => "api",
                Role::Scheduler => "scheduler",
                Role::Worker => "worker",
            })
            .collect();
        let values: Vec<(&str, String)> = vec![
            ("database.url", mask_url(self.database.url.expose_secret())),
            ("database.pool_size", self.database.pool_size.to_string()),
            ("database.connect_timeout_secs", self.database.connect_timeout.as_secs().to_string()),
            ("database.pool_wait_timeout_secs", self.database.session.pool_wait_timeout.as_secs().to_string()),
            ("database.statement_timeout_secs", self.database.session.statement_timeout.as_secs().to_string()),
            ("database.lock_timeout_secs", self.database.session.lock_timeout.as_secs().to_string()),
            (
                "database.idle_in_transaction_timeout_secs",
                self.database.session.idle_in_transaction_timeout.as_secs().to_string(),
            ),
            ("database.keepalive_idle_secs", self.database.session.keepalive_idle.as_secs().to_string()),
            ("database.keepalive_interval_secs", self.database.session.keepalive_interval.as_secs().to_string()),
            ("database.keepalive_retries", self.database.session.keepalive_retries.to_string()),
            ("database.tcp_user_timeout_secs", self.database.session.tcp_user_timeout.as_secs().to_string()),
            (
                "database.ca_file",
                self.database.session.ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            ),
            ("amqp.url", mask_url(self.amqp.url.expose_secret())),
            ("amqp.prefix", self.amqp.prefix.clone()),
            ("amqp.prefetch", self.amqp.prefetch.to_string()),
            ("amqp.delivery_limit", self.amqp.delivery_limit.to_string()),
            ("amqp.events_per_message", self.amqp.events_per_message.to_string()),
            ("http.listen", self.http.listen.to_string()),
            ("http.shutdown_timeout_secs", self.http.shutdown_timeout.as_secs().to_string()),
            ("secrets.key", if self.secrets_key.expose_secret().is_empty() { "" } else { "*****" }.to_owned()),
            ("admin.token", if self.api.admin_token.expose_secret().is_empty() { "" } else { "*****" }.to_owned()),
            ("api.public_url", self.api.public_url.as_ref().map(ToString::to_string).unwrap_or_default()),
            ("api.custom_cloud_hosts", self.api.custom_cloud_hosts.join(",")),
            (
                "api.trusted_proxies",
                self.api.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            ),
            ("log.format", format!("{:?}", self.log.format).to_lowercase()),
            ("log.filter", self.log.filter.clone()),
            ("instance.id", self.instance_id.clone()),
            ("serve.roles", roles.join(",")),
            ("sync.delta_interval_secs", self.sync.delta_interval.as_secs().to_string()),
            ("sync.full_scan_interval_secs", self.sync.full_scan_interval.as_secs().to_string()),
            ("sync.workers_per_class", self.sync.workers_per_class.to_string()),
            ("sync.batch_objects", self.sync.batch_objects.to_string()),
            ("sync.snapshot_budget_mb", self.sync.snapshot_budget_mb.to_string()),
            ("sync.deletion_threshold", self.sync.deletion_threshold.to_string()),
            ("sync.deletion_threshold_percent", self.sync.deletion_threshold_percent.to_string()),
            ("tags.sync_interval_secs", self.tags.sync_interval.as_secs().to_string()),
            ("tags.max_mappings", self.tags.max_mappings.to_string()),
        ];
        let mut out = String::new();
        for (key, value) in values {
            let env = SETTINGS.iter().find(|s| s.key == key).map_or("", |s| s.env);
            out.push_str(&format!("{env}={value}\n"));
        }
        out
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

fn known(field: fn(&SettingSpec) -> &'static str) -> String {
    SETTINGS.iter().map(field).collect::<Vec<_>>().join(", ")
}

fn spec_of(key: &str) -> &'static SettingSpec {
    // Keys passed here are literals from this file; a miss is a programming error caught by the tests.
    SETTINGS.iter().find(|s| s.key == key).unwrap_or(&SETTINGS[0])
}

fn invalid(raw: &BTreeMap<&'static str, String>, key: &str, expected: &str) -> ConfigError {
    let spec = spec_of(key);
    let value = raw.get(key).cloned().unwrap_or_default();
    ConfigError::Invalid {
        key: spec.key,
        env: spec.env,
        // A secret URL keeps its host in the message; any other secret is not shown at all.
        value: match (spec.secret, key.ends_with(".url")) {
            (false, _) => value,
            (true, true) => mask_url(&value),
            (true, false) => "*****".to_owned(),
        },
        expected: expected.to_owned(),
    }
}

fn parse_with<T: FromStr>(raw: &BTreeMap<&'static str, String>, key: &str, expected: &str) -> Result<T, ConfigError> {
    raw.get(key).and_then(|v| v.trim().parse().ok()).ok_or_else(|| invalid(raw, key, expected))
}

fn parse_range<T>(raw: &BTreeMap<&'static str, String>, key: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let expected = format!("a whole number from {min} to {max}");
    let value: T = parse_with(raw, key, &expected)?;
    if value < min || value > max {
        return Err(invalid(raw, key, &expected));
    }
    Ok(value)
}

fn parse_url(raw: &BTreeMap<&'static str, String>, key: &str, schemes: &[&str]) -> Result<String, ConfigError> {
    let expected = format!("a URL with scheme {}", schemes.join(" or "));
    let text = raw.get(key).map(|v| v.trim().to_owned()).unwrap_or_default();
    match url::Url::parse(&text) {
        Ok(u) if schemes.contains(&u.scheme()) && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(text),
        _ => Err(invalid(raw, key, &expected)),
    }
}

/// A comma-separated list of `host` or `host:port` entries, lowercased; empty entries are skipped.
fn parse_hosts(raw: &BTreeMap<&'static str, String>, key: &str) -> Result<Vec<String>, ConfigError> {
    let value = raw.get(key).map(String::as_str).unwrap_or_default();
    let hosts: Vec<String> =
        value.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect();
    let well_formed = |host: &String| {
        url::Url::parse(&format!("http://{host}/")).is_ok_and(|u| u.path() == "/")
            && !host.contains(['/', '@', '?', '#'])
    };
    if hosts.iter().all(well_formed) {
        Ok(hosts)
    } else {
        Err(invalid(raw, key, "host names or host:port pairs separated by commas, e.g. 127.0.0.1:8443,login.example"))
    }
}

fn parse_name(raw: &BTreeMap<&'static str, String>, key: &str) -> Result<String, ConfigError> {
    let value = raw.get(key).map(|v| v.trim().to_owned()).unwrap_or_default();
    let ok = !value.is_empty()
        && value.len() <= 100
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(value)
    } else {
        Err(invalid(raw, key, "1 to 100 characters of letters, digits, '.', '-' or '_'"))
    }
}

/// Session deadlines. A lock wait must end before the statement does, or `lock_timeout` never fires.
fn parse_session(raw: &BTreeMap<&'static str, String>) -> Result<SessionSettings, ConfigError> {
    let secs = |key: &str, min: u64, max: u64| parse_range(raw, key, min, max).map(Duration::from_secs);
    let session = SessionSettings {
        pool_wait_timeout: secs("database.pool_wait_timeout_secs", 1, 600)?,
        statement_timeout: secs("database.statement_timeout_secs", 1, 86_400)?,
        lock_timeout: secs("database.lock_timeout_secs", 1, 86_400)?,
        idle_in_transaction_timeout: secs("database.idle_in_transaction_timeout_secs", 1, 86_400)?,
        keepalive_idle: secs("database.keepalive_idle_secs", 1, 3_600)?,
        keepalive_interval: secs("database.keepalive_interval_secs", 1, 600)?,
        keepalive_retries: parse_range(raw, "database.keepalive_retries", 1, 100)?,
        tcp_user_timeout: secs("database.tcp_user_timeout_secs", 1, 3_600)?,
        ca_file: match raw.get("database.ca_file").map(|v| v.trim()).unwrap_or_default() {
            "" => None,
            path if Path::new(path).is_file() => Some(path.into()),
            _ => return Err(invalid(raw, "database.ca_file", "the path of a readable PEM file, or empty")),
        },
    };
    if session.lock_timeout > session.statement_timeout {
        let expected = format!(
            "at most database.statement_timeout_secs ({}), or the statement is cancelled before its lock wait",
            session.statement_timeout.as_secs()
        );
        return Err(invalid(raw, "database.lock_timeout_secs", &expected));
    }
    Ok(session)
}

/// Long enough to resist guessing; printable so it fits a header.
fn parse_admin_token(raw: &BTreeMap<&'static str, String>) -> Result<String, ConfigError> {
    let value = raw.get("admin.token").map(|v| v.trim().to_owned()).unwrap_or_default();
    if value.is_empty() || (value.len() >= 32 && value.len() <= 200 && value.chars().all(|c| c.is_ascii_graphic())) {
        Ok(value)
    } else {
        Err(invalid(
            raw,
            "admin.token",
            "32 to 200 printable characters without spaces, e.g. es_$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')",
        ))
    }
}

fn parse_secrets_key(raw: &BTreeMap<&'static str, String>) -> Result<String, ConfigError> {
    use base64::Engine;
    let value = raw.get("secrets.key").map(|v| v.trim().to_owned()).unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD.decode(&value).map(|k| k.len());
    if value.is_empty() || decoded == Ok(32) {
        Ok(value)
    } else {
        Err(invalid(raw, "secrets.key", "base64 of exactly 32 bytes, e.g. the output of `openssl rand -base64 32`"))
    }
}

fn parse_log_filter(raw: &BTreeMap<&'static str, String>) -> Result<String, ConfigError> {
    let value = raw.get("log.filter").cloned().unwrap_or_default();
    tracing_subscriber::EnvFilter::try_new(&value)
        .map(|_| value)
        .map_err(|_| invalid(raw, "log.filter", "a tracing filter such as info or info,entrasync=debug"))
}

fn parse_roles(raw: &BTreeMap<&'static str, String>) -> Result<Vec<Role>, ConfigError> {
    let expected = "a comma-separated, non-empty list of api, scheduler, worker";
    let mut roles = Vec::new();
    for part in raw.get("serve.roles").map(String::as_str).unwrap_or_default().split(',') {
        let role = match part.trim() {
            "api" => Role::Api,
            "scheduler" => Role::Scheduler,
            "worker" => Role::Worker,
            _ => return Err(invalid(raw, "serve.roles", expected)),
        };
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

/// Replaces the password of a URL (if any) with `*****`: the userinfo's, and a `password` query parameter
/// (libpq and tokio-postgres accept `postgres://app@db/entrasync?password=…`).
pub fn mask_url(text: &str) -> String {
    let Ok(mut u) = url::Url::parse(text) else { return "*****".to_owned() };
    if u.password().is_some() && u.set_password(Some("*****")).is_err() {
        // Only URLs that cannot have a password refuse one, and this one has one.
        return "*****".to_owned();
    }
    let secret_parameter = |key: &str| matches!(key, "password" | "sslpassword");
    if u.query_pairs().any(|(key, _)| secret_parameter(&key)) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(key, value)| {
                let value = if secret_parameter(&key) { "*****".to_owned() } else { value.into_owned() };
                (key.into_owned(), value)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

fn flatten_toml(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::File {
        path: "(configuration file)".to_owned(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    flatten_into(&table, "", &mut out);
    Ok(out)
}

fn flatten_into(table: &toml::Table, prefix: &str, out: &mut Vec<(String, String)>) {
    for (name, value) in table {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match value {
            toml::Value::Table(inner) => flatten_into(inner, &key, out),
            toml::Value::String(s) => out.push((key, s.clone())),
            toml::Value::Array(items) => {
                let parts: Vec<String> =
                    items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect();
                out.push((key, parts.join(",")));
            }
            other => out.push((key, other.to_string())),
        }
    }
}

fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_work_on_a_developer_machine() {
        let s = Settings::from_sources(None, env(&[])).expect("defaults are valid");
        assert_eq!(s.database.url.expose_secret(), "postgres://postgres@127.0.0.1:5432/entrasync");
        assert_eq!(s.amqp.url.expose_secret(), "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.roles, vec![Role::Api, Role::Scheduler, Role::Worker]);
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let file = "[http]\nlisten = \"0.0.0.0:9000\"\n[amqp]\nprefix = \"filepfx\"\n";
        let s = Settings::from_sources(Some(file), env(&[("ENTRASYNC_AMQP_PREFIX", "envpfx")])).unwrap();
        assert_eq!(s.http.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(s.amqp.prefix, "envpfx");
    }

    #[test]
    fn invalid_value_names_setting_value_and_what_is_accepted() {
        let err = Settings::from_sources(None, env(&[("ENTRASYNC_AMQP_PREFETCH", "lots")])).expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("amqp.prefetch"), "{text}");
        assert!(text.contains("ENTRASYNC_AMQP_PREFETCH"), "{text}");
        assert!(text.contains("\"lots\""), "{text}");
        assert!(text.contains("whole number from 1 to 1000"), "{text}");
    }

    #[test]
    fn unknown_keys_and_variables_are_rejected() {
        let err = Settings::from_sources(Some("[http]\nlisen = \"x\"\n"), env(&[])).err().unwrap();
        assert!(err.to_string().contains("http.lisen"));
        let err = Settings::from_sources(None, env(&[("ENTRASYNC_HTTP_LISEN", "x")])).err().unwrap();
        assert!(err.to_string().contains("ENTRASYNC_HTTP_LISEN"));
    }

    #[test]
    fn secrets_are_masked_in_output_and_errors() {
        let s = Settings::from_sources(
            None,
            env(&[("ENTRASYNC_DATABASE_URL", "postgres://app:hunter2@db:5432/entrasync")]),
        )
        .unwrap();
        assert!(!s.describe().contains("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
        let err = Settings::from_sources(None, env(&[("ENTRASYNC_AMQP_URL", "http://u:hunter2@mq/")])).err().unwrap();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_password_given_as_a_url_parameter_is_masked_too() {
        let url = "postgres://app@db:5432/entrasync?sslmode=verify-full&password=hunter2";
        let s = Settings::from_sources(None, env(&[("ENTRASYNC_DATABASE_URL", url)])).unwrap();
        assert!(!s.describe().contains("hunter2"), "{}", s.describe());
        assert!(s.describe().contains("sslmode=verify-full&password=*****"), "{}", s.describe());
        let err =
            Settings::from_sources(None, env(&[("ENTRASYNC_DATABASE_URL", "postgres://app@/x?password=hunter2")]))
                .expect_err("no host");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn the_pool_must_fit_the_rounds_a_worker_runs_at_once() {
        let vars = [("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "4"), ("ENTRASYNC_AMQP_PREFETCH", "2")];
        let err = Settings::from_sources(None, env(&vars)).expect_err("3 × 4 × 2 + 4 = 28 > 16");
        assert!(err.to_string().contains("database.pool_size") && err.to_string().contains("at least 28"), "{err}");
        let api_only = [("ENTRASYNC_SERVE_ROLES", "api"), ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "4")];
        assert!(Settings::from_sources(None, env(&api_only)).is_ok(), "no worker, no rounds");
    }

    #[test]
    fn fault_injection_is_not_configurable() {
        let err = Settings::from_sources(None, env(&[("ENTRASYNC_TESTING_PANIC_SCHEDULE_CHECKS_OF_TENANT", "x")]))
            .expect_err("no variable turns fault injection on");
        assert!(err.to_string().contains("unknown environment variable"), "{err}");
        let err = Settings::from_sources(Some("[testing]\npanic_schedule_checks_of_tenant = \"x\"\n"), env(&[]))
            .expect_err("no file key turns fault injection on");
        assert!(err.to_string().contains("unknown setting"), "{err}");
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert!(s.testing.panic_schedule_checks_of_tenant.is_none());
        assert!(!s.describe().contains("TESTING"), "{}", s.describe());
    }

    #[test]
    fn tag_settings_default_to_daily_and_five_and_are_checked() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(s.tags.sync_interval, Duration::from_secs(86_400));
        assert_eq!(s.tags.max_mappings, 5);
        assert!(s.describe().contains("ENTRASYNC_TAGS_MAX_MAPPINGS=5"), "{}", s.describe());
        let s = Settings::from_sources(Some("[tags]\nmax_mappings = 8\n"), env(&[])).unwrap();
        assert_eq!(s.tags.max_mappings, 8);
        let err = Settings::from_sources(None, env(&[("ENTRASYNC_TAGS_MAX_MAPPINGS", "0")])).expect_err("at least one");
        assert!(err.to_string().contains("tags.max_mappings"), "{err}");
        let err =
            Settings::from_sources(None, env(&[("ENTRASYNC_TAGS_SYNC_INTERVAL_SECS", "5")])).expect_err("too often");
        assert!(err.to_string().contains("ENTRASYNC_TAGS_SYNC_INTERVAL_SECS"), "{err}");
    }

    #[test]
    fn session_deadlines_default_sanely_and_are_checked() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(s.database.session, SessionSettings::default());
        assert!(s.describe().contains("ENTRASYNC_DATABASE_STATEMENT_TIMEOUT_SECS=60"), "{}", s.describe());
        let s = Settings::from_sources(Some("[database]\nlock_timeout_secs = 3\nkeepalive_retries = 5\n"), env(&[]))
            .unwrap();
        assert_eq!(
            (s.database.session.lock_timeout, s.database.session.keepalive_retries),
            (Duration::from_secs(3), 5)
        );
        let err = Settings::from_sources(None, env(&[("ENTRASYNC_DATABASE_STATEMENT_TIMEOUT_SECS", "0")]))
            .expect_err("zero would mean no timeout");
        assert!(err.to_string().contains("database.statement_timeout_secs"), "{err}");
        let vars = [("ENTRASYNC_DATABASE_STATEMENT_TIMEOUT_SECS", "5"), ("ENTRASYNC_DATABASE_LOCK_TIMEOUT_SECS", "9")];
        let err = Settings::from_sources(None, env(&vars)).expect_err("lock wait longer than the statement");
        assert!(err.to_string().contains("ENTRASYNC_DATABASE_LOCK_TIMEOUT_SECS"), "{err}");
        let err = Settings::from_sources(None, env(&[("ENTRASYNC_DATABASE_CA_FILE", "/nonexistent/ca.pem")]))
            .expect_err("missing CA file");
        assert!(err.to_string().contains("database.ca_file") && err.to_string().contains("PEM"), "{err}");
    }

    #[test]
    fn every_setting_has_a_unique_env_name() {
        for s in SETTINGS {
            assert_eq!(s.env, format!("ENTRASYNC_{}", s.key.replace('.', "_").to_uppercase()));
        }
    }
}
