//! The service under test: `entrasync serve` with the worker role only, one child process per instance,
//! configured through `ENTRASYNC_*` variables (nothing inherited from the benchmark's environment). The
//! benchmark publishes the jobs itself, so no scheduler runs; the run lock in Postgres is what keeps two
//! instances from running the same (tenant, class).

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};
use tokio::process::{Child, Command};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections a worker instance needs besides its rounds (history recorder, readiness, metrics).
const POOL_HEADROOM: usize = 4;
/// Classes a worker instance runs workers for, whether or not jobs arrive for them.
const CLASSES: usize = 3;

/// How each instance is configured.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub database_url: SecretString,
    pub amqp_url: SecretString,
    pub amqp_prefix: String,
    pub secrets_key: SecretString,
    pub workers_per_class: usize,
    pub prefetch: u16,
}

impl InstanceSpec {
    /// The smallest pool `config` accepts for these workers: one connection per concurrent round.
    pub fn pool_size(&self) -> usize {
        CLASSES * self.workers_per_class * usize::from(self.prefetch) + POOL_HEADROOM
    }
}

/// One running `entrasync serve`; killed when dropped.
pub struct ServiceInstance {
    pub name: String,
    child: Child,
    ready_url: String,
}

impl ServiceInstance {
    /// Starts `exe serve` as instance `name` on a free loopback port.
    pub fn start(exe: &Path, spec: &InstanceSpec, name: &str) -> anyhow::Result<ServiceInstance> {
        let port = free_port()?;
        let mut command = Command::new(exe);
        command.arg("serve");
        for (variable, _) in std::env::vars() {
            if variable.starts_with("ENTRASYNC_") {
                command.env_remove(variable);
            }
        }
        let child = command
            .env("ENTRASYNC_DATABASE_URL", spec.database_url.expose_secret())
            .env("ENTRASYNC_DATABASE_POOL_SIZE", spec.pool_size().to_string())
            .env("ENTRASYNC_AMQP_URL", spec.amqp_url.expose_secret())
            .env("ENTRASYNC_AMQP_PREFIX", &spec.amqp_prefix)
            .env("ENTRASYNC_AMQP_PREFETCH", spec.prefetch.to_string())
            .env("ENTRASYNC_SECRETS_KEY", spec.secrets_key.expose_secret())
            .env("ENTRASYNC_INSTANCE_ID", name)
            .env("ENTRASYNC_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env("ENTRASYNC_SERVE_ROLES", "worker")
            .env("ENTRASYNC_SYNC_WORKERS_PER_CLASS", spec.workers_per_class.to_string())
            .env("ENTRASYNC_LOG_FILTER", "warn,tokio_postgres=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting instance {name} ({})", exe.display()))?;
        Ok(ServiceInstance { name: name.to_owned(), child, ready_url: format!("http://127.0.0.1:{port}/readyz") })
    }

    /// Waits until `/readyz` answers 200 (Postgres and RabbitMQ reachable, migrations applied).
    pub async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            self.ensure_running()?;
            match http.get(&self.ready_url).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                _ if started.elapsed() > READY_TIMEOUT => {
                    bail!("instance {} was not ready within {READY_TIMEOUT:?}", self.name)
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// An error when the instance has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().context("polling a service instance")? {
            bail!("instance {} exited ({status})", self.name);
        }
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the instance (its work is done; what it leaves is the scratch database's, dropped next).
    pub async fn stop(mut self) {
        if let Err(error) = self.child.kill().await {
            tracing::warn!(instance = %self.name, %error, "stopping a service instance");
        }
    }
}

/// A loopback port that was free a moment ago (the child binds it right after).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr().context("reading the free port")?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_what_config_requires() {
        let spec = InstanceSpec {
            database_url: SecretString::from(String::new()),
            amqp_url: SecretString::from(String::new()),
            amqp_prefix: "p".to_owned(),
            secrets_key: SecretString::from(String::new()),
            workers_per_class: 2,
            prefetch: 2,
        };
        let settings = crate::config::Settings::from_sources(
            None,
            [
                ("ENTRASYNC_SYNC_WORKERS_PER_CLASS".to_owned(), "2".to_owned()),
                ("ENTRASYNC_AMQP_PREFETCH".to_owned(), "2".to_owned()),
                ("ENTRASYNC_DATABASE_POOL_SIZE".to_owned(), spec.pool_size().to_string()),
                ("ENTRASYNC_SERVE_ROLES".to_owned(), "worker".to_owned()),
            ],
        );
        assert!(settings.is_ok(), "pool size {} rejected", spec.pool_size());
    }
}
