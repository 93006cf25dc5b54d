//! The service under chaos: `entrasync serve` child processes with every role (API, scheduler,
//! workers), reaching Postgres and RabbitMQ through the run's fault proxies, logging to a file each.
//! An instance can be killed with SIGKILL and started again under the same name.

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};
use tokio::process::{Child, Command};

const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How every instance is configured.
#[derive(Clone)]
pub struct InstanceSpec {
    pub exe: PathBuf,
    /// The run's database, through the Postgres proxy.
    pub database_url: SecretString,
    /// RabbitMQ through its proxy.
    pub amqp_url: SecretString,
    pub amqp_prefix: String,
    pub secrets_key: SecretString,
    pub delta_interval_secs: u64,
    pub log_dir: PathBuf,
}

/// One `entrasync serve`; killed when dropped.
pub struct Instance {
    pub name: String,
    spec: InstanceSpec,
    child: Option<Child>,
    port: u16,
    /// Times the process was started.
    pub starts: u32,
}

impl Instance {
    pub fn start(spec: &InstanceSpec, name: &str) -> anyhow::Result<Instance> {
        let mut instance =
            Instance { name: name.to_owned(), spec: spec.clone(), child: None, port: free_port()?, starts: 0 };
        instance.spawn()?;
        Ok(instance)
    }

    /// The instance's log file (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.spec.log_dir.join(format!("{}.log", self.name))
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let spec = &self.spec;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("opening {}", self.log_path().display()))?;
        let mut command = Command::new(&spec.exe);
        command.arg("serve");
        for (variable, _) in std::env::vars() {
            if variable.starts_with("ENTRASYNC_") {
                command.env_remove(variable);
            }
        }
        let child = command
            .env("ENTRASYNC_DATABASE_URL", spec.database_url.expose_secret())
            // Fail a connect attempt quickly while the proxy refuses, as a real outage would.
            .env("ENTRASYNC_DATABASE_CONNECT_TIMEOUT_SECS", "2")
            .env("ENTRASYNC_DATABASE_POOL_SIZE", "10")
            .env("ENTRASYNC_AMQP_URL", spec.amqp_url.expose_secret())
            .env("ENTRASYNC_AMQP_PREFIX", &spec.amqp_prefix)
            .env("ENTRASYNC_AMQP_PREFETCH", "2")
            .env("ENTRASYNC_SECRETS_KEY", spec.secrets_key.expose_secret())
            .env("ENTRASYNC_INSTANCE_ID", &self.name)
            .env("ENTRASYNC_HTTP_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1")
            .env("ENTRASYNC_SYNC_DELTA_INTERVAL_SECS", spec.delta_interval_secs.to_string())
            // Tiny tenants: a few random deletions are a large share, which the guard would hold.
            .env("ENTRASYNC_SYNC_DELETION_THRESHOLD_PERCENT", "100")
            .env("ENTRASYNC_LOG_FILTER", "warn,entrasync=info,tokio_postgres=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting instance {} ({})", self.name, spec.exe.display()))?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        loop {
            self.ensure_running()?;
            match http.get(&url).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                _ if started.elapsed() > READY_TIMEOUT => {
                    bail!(
                        "instance {} was not ready within {READY_TIMEOUT:?} (log: {})",
                        self.name,
                        self.log_path().display()
                    )
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// An error when the instance exited on its own (a killed one is not running by design).
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait().context("polling a service instance")? {
                bail!("instance {} exited ({status}); log: {}", self.name, self.log_path().display());
            }
        }
        Ok(())
    }

    /// Forgets a child that exited on its own, so [`Instance::restart`] starts a new one.
    pub fn forget(&mut self) {
        self.child = None;
    }

    /// SIGKILL, as a crashed host or an OOM kill: nothing is shut down in order.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Err(error) = child.kill().await {
                tracing::warn!(instance = %self.name, %error, "killing a service instance");
            }
        }
    }

    /// Starts the instance again after [`Instance::kill9`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_none() {
            self.spawn()?;
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = child.id() {
            terminate(pid);
            if let Ok(Ok(_)) = tokio::time::timeout(grace, child.wait()).await {
                return;
            }
        }
        if let Err(error) = child.kill().await {
            tracing::warn!(instance = %self.name, %error, "stopping a service instance");
        }
    }
}

/// Sends SIGTERM through `kill(1)`: the crate forbids unsafe code, so no libc call.
fn terminate(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(error) = sent {
        tracing::warn!(pid, %error, "cannot send SIGTERM");
    }
}

/// A loopback port that was free a moment ago (the child binds it right after).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr().context("reading the free port")?.port())
}

/// The last `lines` lines of a log file, for a failure report.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}
