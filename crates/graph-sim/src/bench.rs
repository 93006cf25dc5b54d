//! The emulator's own throughput: a full users delta walk over HTTP (token included), measured from
//! the first request to the deltaLink. Run with `entrasync graph-sim --bench-users 1000000`.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Deserialize;

use crate::generate::GenerateSpec;
use crate::identity::NewApp;
use crate::server::{GraphSim, SimOptions};
use crate::state::TenantSpec;

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub users: usize,
    pub generate: Duration,
    pub walk: Duration,
    pub pages: usize,
    pub objects: usize,
    pub bytes: usize,
    pub directory_bytes: usize,
}

impl BenchReport {
    pub fn objects_per_second(&self) -> f64 {
        self.objects as f64 / self.walk.as_secs_f64().max(1e-9)
    }
}

/// The page's link, read from the envelope's head (the emulator writes it before `value`), so the
/// client's own parsing does not dominate what is measured.
fn page_link(body: &[u8]) -> Option<(&'static str, String)> {
    let head = &body[..body.len().min(4096)];
    let text = std::str::from_utf8(head).ok()?;
    for name in ["@odata.nextLink", "@odata.deltaLink"] {
        let key = format!("\"{name}\":\"");
        if let Some(start) = text.find(&key).map(|i| i + key.len()) {
            let end = text[start..].find('"')? + start;
            return Some((name, text[start..end].to_owned()));
        }
    }
    None
}

/// Fetches an app-only token from the emulator's token endpoint for a fresh app with `roles`.
pub async fn token_for(base_url: &str, sim: &crate::SimState, tenant: &str, roles: &[&str]) -> anyhow::Result<String> {
    let secret = "bench-secret".to_owned();
    let app = sim
        .identity
        .register_app(NewApp { secret: Some(secret.clone()), ..NewApp::default() })
        .context("registering the bench app")?;
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    sim.identity.grant_consent(tenant, &app.app_id, &roles).context("granting consent")?;
    #[derive(Deserialize)]
    struct TokenResponse {
        access_token: String,
    }
    let response: TokenResponse = reqwest::Client::new()
        .post(format!("{base_url}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("client_id", app.app_id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(response.access_token)
}

pub async fn run_users_walk(users: usize, workers: usize) -> anyhow::Result<BenchReport> {
    let sim = GraphSim::start(SimOptions { workers, ..SimOptions::default() })?;
    let state = sim.state().clone();
    let started = Instant::now();
    let info = state.create_tenant(TenantSpec::default())?;
    state.generate(&info.tenant_id, &GenerateSpec { users, groups: 0, devices: 0 })?;
    let generate = started.elapsed();
    let directory_bytes = crate::state::read(&state.tenant(&info.tenant_id)?.directory).heap_bytes();
    let token = token_for(&sim.base_url(), &state, &info.tenant_id, &["User.Read.All"]).await?;
    let client = reqwest::Client::new();
    let mut url = format!("{}/v1.0/users/delta", sim.base_url());
    let (mut pages, mut bytes) = (0usize, 0usize);
    let started = Instant::now();
    loop {
        let body = client.get(&url).bearer_auth(&token).send().await?.error_for_status()?.bytes().await?;
        pages += 1;
        bytes += body.len();
        match page_link(&body) {
            Some(("@odata.nextLink", next)) => url = next,
            Some(_) => break,
            None => anyhow::bail!("a delta page without a link"),
        }
    }
    let walk = started.elapsed();
    let objects = state.tenant_counters(&info.tenant_id)?.objects_served as usize;
    sim.stop().await;
    Ok(BenchReport { users, generate, walk, pages, objects, bytes, directory_bytes })
}
