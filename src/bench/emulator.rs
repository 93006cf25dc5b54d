//! The Graph emulator as a child process (`entrasync graph-sim`), so the generated directory lives in
//! another process and the benchmark's resident memory is the syncing process's alone. Tenant, app,
//! consent and mutations go through the emulator's admin API (docs/graph-sim.md).

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// The Graph application permissions a sync needs.
const READ_ROLES: [&str; 3] = ["User.Read.All", "GroupMember.Read.All", "Device.Read.All"];
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What the child emulator generates at start-up.
#[derive(Debug, Clone)]
pub struct EmulatorSpec {
    pub users: usize,
    pub seed: u64,
    pub page_size: usize,
    pub workers: usize,
}

/// Groups and devices generated beside the spec's users (none unless asked; group sizes and members:
/// `graph_sim::generate`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupsAndDevices {
    pub groups: usize,
    pub devices: usize,
}

/// An app registration of the emulator, consented in the benchmark tenant.
#[derive(Debug, Clone)]
pub struct EmulatedApp {
    pub app_id: String,
    pub secret: String,
}

/// A running `entrasync graph-sim` child with one generated tenant; killed when dropped.
pub struct ChildEmulator {
    child: Child,
    http: reqwest::Client,
    pub base_url: String,
    pub tenant_id: Uuid,
}

/// A loopback port that was free a moment ago (the child binds it right after).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr().context("reading the free port")?.port())
}

impl ChildEmulator {
    /// Starts `exe graph-sim` with a generated tenant of users and waits until its admin API answers.
    pub async fn start(exe: &Path, spec: &EmulatorSpec) -> anyhow::Result<ChildEmulator> {
        ChildEmulator::start_with(exe, spec, GroupsAndDevices::default()).await
    }

    /// [`ChildEmulator::start`] with groups and devices in the tenant as well.
    pub async fn start_with(exe: &Path, spec: &EmulatorSpec, more: GroupsAndDevices) -> anyhow::Result<ChildEmulator> {
        let port = free_port()?;
        let tenant_id = Uuid::new_v4();
        let child = Command::new(exe)
            .arg("graph-sim")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--workers", &spec.workers.to_string()])
            .args(["--page-size", &spec.page_size.to_string()])
            .args(["--tenant-id", &tenant_id.to_string()])
            .args(["--seed", &spec.seed.to_string()])
            .args(["--users", &spec.users.to_string()])
            .args(["--groups", &more.groups.to_string()])
            .args(["--devices", &more.devices.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the emulator {}", exe.display()))?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let mut emulator = ChildEmulator { child, http, base_url: format!("http://127.0.0.1:{port}"), tenant_id };
        emulator.wait_ready().await?;
        Ok(emulator)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = format!("{}/_sim/tenants/{}", self.base_url, self.tenant_id);
        loop {
            if let Some(status) = self.child.try_wait().context("polling the emulator")? {
                bail!("the emulator exited before it was ready ({status})");
            }
            match self.http.get(&url).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                _ if started.elapsed() > READY_TIMEOUT => bail!("the emulator did not answer within {READY_TIMEOUT:?}"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The child's process id, to read its memory.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let answer: Value = response.json().await.with_context(|| format!("POST {path}: reading the answer"))?;
        if !status.is_success() {
            bail!("POST {path}: {status}: {answer}");
        }
        Ok(answer)
    }

    /// Registers an app with a secret and consents it to the read permissions in the tenant.
    pub async fn register_app(&self) -> anyhow::Result<EmulatedApp> {
        let secret = format!("bench-{}", Uuid::new_v4().simple());
        let app = self.post("/_sim/apps", json!({ "secret": secret })).await?;
        let app_id = app["app_id"].as_str().context("the emulator's app has no app_id")?.to_owned();
        let consent = format!("/_sim/tenants/{}/consent", self.tenant_id);
        self.post(&consent, json!({ "app_id": app_id, "roles": READ_ROLES })).await?;
        Ok(EmulatedApp { app_id, secret })
    }

    /// Creates another generated tenant of `users` users (a fresh id) and consents `app_id` in it.
    pub async fn add_tenant(&self, app_id: &str, users: usize, seed: u64) -> anyhow::Result<Uuid> {
        let id = Uuid::new_v4();
        self.post("/_sim/tenants", json!({ "tenant_id": id.to_string(), "seed": seed, "users": users })).await?;
        let consent = format!("/_sim/tenants/{id}/consent");
        self.post(&consent, json!({ "app_id": app_id, "roles": READ_ROLES })).await?;
        Ok(id)
    }

    /// Applies the emulator's seeded random mutation batch; answers its summary (counts by kind).
    pub async fn mutate(&self, seed: u64, count: usize) -> anyhow::Result<Value> {
        let path = format!("/_sim/tenants/{}/mutations", self.tenant_id);
        self.post(&path, json!({ "seed": seed, "count": count })).await
    }

    /// Stops the child and waits for it.
    pub async fn stop(mut self) {
        if let Err(error) = self.child.kill().await {
            tracing::warn!(%error, "stopping the emulator");
        }
    }
}
