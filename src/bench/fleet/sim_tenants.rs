//! The fleet's directories in the child emulator: one process serves every tenant. The emulator's
//! start-up tenant is the first; the others are created through its admin API (`POST /_sim/tenants`,
//! then consent for the benchmark's app), a few requests at a time.

use std::time::Duration;

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::bench::emulator::ChildEmulator;

/// The Graph application permissions a sync needs (as `bench::emulator` consents them).
const READ_ROLES: [&str; 3] = ["User.Read.All", "GroupMember.Read.All", "Device.Read.All"];
/// Admin requests in flight at once: enough to hide the round trip, few enough for 2 emulator workers.
const IN_FLIGHT: usize = 8;

/// Creates `count - 1` more tenants of `users` users beside the start-up one, each consented to
/// `app_id`; answers every tenant's id, the start-up tenant first.
pub async fn create(
    emulator: &ChildEmulator,
    app_id: &str,
    count: usize,
    users: usize,
    seed: u64,
) -> anyhow::Result<Vec<Uuid>> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().context("the admin client")?;
    let admin = Admin { http, base_url: &emulator.base_url, app_id };
    let mut created: Vec<Uuid> = stream::iter(1..count)
        .map(|index| admin.tenant(users, seed.wrapping_add(index as u64)))
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    created.sort_unstable();
    let mut all = Vec::with_capacity(count);
    all.push(emulator.tenant_id);
    all.extend(created);
    Ok(all)
}

struct Admin<'a> {
    http: reqwest::Client,
    base_url: &'a str,
    app_id: &'a str,
}

impl Admin<'_> {
    /// One generated tenant with a fresh id, consented to the app.
    async fn tenant(&self, users: usize, seed: u64) -> anyhow::Result<Uuid> {
        let id = Uuid::new_v4();
        self.post("/_sim/tenants", json!({ "tenant_id": id.to_string(), "seed": seed, "users": users })).await?;
        let consent = format!("/_sim/tenants/{id}/consent");
        self.post(&consent, json!({ "app_id": self.app_id, "roles": READ_ROLES })).await?;
        Ok(id)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        if !status.is_success() {
            let answer = response.text().await.unwrap_or_default();
            bail!("POST {path}: {status}: {answer}");
        }
        Ok(())
    }
}
