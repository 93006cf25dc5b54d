//! The demo's sequence: services, database, emulator, registration, service, display, mutations.

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

use super::emulated;
use super::progress::RunDisplay;
use crate::config::Settings;
use graph_sim::mutate::MutationBatch;
use graph_sim::state::TenantSpec;
use graph_sim::{GraphSim, SimOptions};
use crate::model::ObjectClass;
use crate::startup::Application;
use crate::store::{self, run_feed, secret_box::SecretBox};

/// What `entrasync demo` generates and how fast it changes it.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub users: usize,
    pub groups: usize,
    pub devices: usize,
    /// Random changes applied to the emulated directory per batch.
    pub changes_per_batch: usize,
    pub change_every: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            users: 20_000,
            groups: 2_000,
            devices: 5_000,
            changes_per_batch: 50,
            change_every: Duration::from_secs(20),
        }
    }
}

const DEFAULT_DELTA_INTERVAL: Duration = Duration::from_secs(300);
const DEMO_DELTA_INTERVAL: Duration = Duration::from_secs(15);

pub async fn run(mut settings: Settings, options: DemoOptions) -> anyhow::Result<()> {
    bring_up_local_services()?;
    prepare_settings(&mut settings)?;
    store::recreate_database(&settings.database).await.context("creating the demo database")?;
    store::migrate::run(&settings.database).await.context("applying migrations")?;
    let pool = store::pool(&settings.database)?;
    let secrets = SecretBox::from_setting(&settings.secrets_key)?;

    println!(
        "starting the Graph emulator with {} users, {} groups, {} devices ...",
        options.users, options.groups, options.devices
    );
    let sim = GraphSim::start(SimOptions::default()).context("starting the Graph emulator")?;
    let app = emulated::register_app(&sim, &pool, &secrets, "demo app registration").await?;
    let spec = TenantSpec {
        seed: Some(42),
        users: options.users,
        groups: options.groups,
        devices: options.devices,
        ..TenantSpec::default()
    };
    let tenant = emulated::add_tenant(&sim, &pool, &app, "demo tenant", spec, None).await?;

    let application = Application::build(&settings).await?;
    let port = application.port();
    println!("emulator:      {}", sim.base_url());
    println!("metrics:       http://127.0.0.1:{port}/metrics");
    println!("health:        http://127.0.0.1:{port}/readyz");
    println!(
        "database:      {} (tables sync_runs, directory_objects, group_members)",
        crate::config::mask_url(settings.database.url.expose_secret())
    );
    println!(
        "tenant:        {} (Entra id {}); delta rounds every {} s; Ctrl-C stops",
        tenant.tenant_id,
        tenant.entra_tenant_id,
        settings.sync.delta_interval.as_secs()
    );
    let mut service = tokio::spawn(application.run_until_stopped());

    let expected: Vec<(String, u64)> = ObjectClass::ALL
        .iter()
        .map(|class| {
            let total = sim.state().truth(&tenant.sim_tenant, *class).map(|t| t.objects.len() as u64).unwrap_or(0);
            (class.as_str().to_owned(), total)
        })
        .collect();
    let mut display = RunDisplay::new(&expected);
    let mut since = Utc::now() - chrono::TimeDelta::seconds(1);
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    let mut change = tokio::time::interval(options.change_every);
    change.tick().await;
    let mut batch_seed = 1u64;
    loop {
        tokio::select! {
            stopped = &mut service => {
                display.line("stopped");
                return stopped.context("service task")?;
            }
            _ = poll.tick() => {
                let polled_at = Utc::now();
                match run_feed::updated_since(&pool, tenant.tenant_id, since).await {
                    Ok(runs) => {
                        display.update(&runs);
                        // Rows updated while we read show up again next time; the display is idempotent.
                        since = polled_at - chrono::TimeDelta::seconds(2);
                    }
                    Err(error) => display.line(&format!("cannot read run history: {error}")),
                }
            }
            _ = change.tick() => {
                let batch = MutationBatch { seed: batch_seed, count: options.changes_per_batch };
                batch_seed += 1;
                match sim.state().random_mutations(&tenant.sim_tenant, &batch) {
                    Ok(summary) => display.line(&format!(
                        "emulated directory changed: {} updated, {} created, {} soft-deleted, {} deleted, {} restored, \
                         {} memberships added, {} removed",
                        summary.updated, summary.created, summary.soft_deleted, summary.permanently_deleted,
                        summary.restored, summary.members_added, summary.members_removed
                    )),
                    Err(error) => display.line(&format!("cannot change the emulated directory: {error}")),
                }
            }
        }
    }
}

/// Runs `deploy/local-services.sh` when it is there (a clean clone run from its root).
fn bring_up_local_services() -> anyhow::Result<()> {
    let script = std::path::Path::new("deploy/local-services.sh");
    if !script.exists() {
        return Ok(());
    }
    println!("making sure Postgres and RabbitMQ run (deploy/local-services.sh) ...");
    let status = std::process::Command::new("bash").arg(script).status().context("running deploy/local-services.sh")?;
    anyhow::ensure!(status.success(), "deploy/local-services.sh failed (see above)");
    Ok(())
}

/// The demo's own database (`<database>_demo`), a generated secrets key when none is set, and delta
/// rounds often enough to watch.
fn prepare_settings(settings: &mut Settings) -> anyhow::Result<()> {
    let mut url = url::Url::parse(settings.database.url.expose_secret()).context("database.url")?;
    let name = url.path().trim_start_matches('/').to_owned();
    url.set_path(&format!("{}_demo", if name.is_empty() { "entrasync" } else { &name }));
    settings.database.url = SecretString::from(url.to_string());
    if settings.secrets_key.expose_secret().is_empty() {
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        settings.secrets_key = SecretString::from(key);
    }
    if settings.sync.delta_interval == DEFAULT_DELTA_INTERVAL {
        settings.sync.delta_interval = DEMO_DELTA_INTERVAL;
    }
    Ok(())
}
