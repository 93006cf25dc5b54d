//! The demo's sequence: services, database, emulator, registration, service, display, mutations.

use std::io;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

use super::emulated;
use super::progress::{RunDisplay, Screen};
use crate::config::{AmqpSettings, Settings};
use crate::model::ObjectClass;
use crate::queue::Broker;
use crate::startup::Application;
use crate::store::{self, run_feed, secret_box::SecretBox};
use graph_sim::mutate::MutationBatch;
use graph_sim::state::TenantSpec;
use graph_sim::{GraphSim, SimOptions};

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
    let screen = Screen::new();
    // Run from a clean clone's root, the script makes sure the services run.
    let script = Path::new("deploy/local-services.sh");
    if script.exists() {
        if let Err(error) = screen.line("making sure Postgres and RabbitMQ run (deploy/local-services.sh) ...") {
            return stopped_writing(error);
        }
        bring_up_local_services(script)?;
    }
    prepare_settings(&mut settings)?;
    store::recreate_database(&settings.database).await.context("creating the demo database")?;
    empty_queues(&settings.amqp).await.context("emptying the demo's queues")?;
    store::migrate::run(&settings.database).await.context("applying migrations")?;
    let pool = store::pool(&settings.database)?;
    let secrets = SecretBox::from_setting(&settings.secrets_key)?;

    let starting = format!(
        "starting the Graph emulator with {} users, {} groups, {} devices ...",
        options.users, options.groups, options.devices
    );
    if let Err(error) = screen.line(&starting) {
        return stopped_writing(error);
    }
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
    let sign_in = match application.new_admin_token() {
        Some(token) => token.to_owned(),
        None => "the value of ENTRASYNC_ADMIN_TOKEN".to_owned(),
    };
    let banner = [
        format!("console:       http://127.0.0.1:{}/  (sign in with the token below)", application.port()),
        format!("sign-in token: {sign_in}"),
        format!("emulator:      {}", sim.base_url()),
        format!("metrics:       http://127.0.0.1:{}/metrics", application.port()),
        format!("health:        http://127.0.0.1:{}/readyz", application.port()),
        format!(
            "database:      {} (tables sync_runs, directory_objects, group_members)",
            crate::config::mask_url(settings.database.url.expose_secret())
        ),
        format!(
            "tenant:        {} (Entra id {}); delta rounds every {} s; Ctrl-C stops",
            tenant.tenant_id,
            tenant.entra_tenant_id,
            settings.sync.delta_interval.as_secs()
        ),
    ];
    let handle = application.handle();
    let mut service = tokio::spawn(application.run_until_stopped());

    let expected: Vec<(String, u64)> = ObjectClass::ALL
        .iter()
        .map(|class| {
            let total = sim.state().truth(&tenant.sim_tenant, *class).map(|t| t.objects.len() as u64).unwrap_or(0);
            (class.as_str().to_owned(), total)
        })
        .collect();
    let mut display = RunDisplay::new(screen, &expected);
    let watched = Watched { pool: &pool, sim: &sim, tenant: &tenant, options: &options };
    let (stopped, written) = match watch(&mut display, &banner, &mut service, &watched).await {
        // Ctrl-C or SIGTERM: the service stopped itself, in its shutdown order.
        Ok(stopped) => (stopped, display.line("stopped")),
        // Standard output is gone: stop the service as Ctrl-C would.
        Err(error) => {
            handle.stop(true).await;
            (service.await, Err(error))
        }
    };
    if let Err(error) = display.clear() {
        tracing::debug!(%error, "cannot clear the progress bars");
    }
    stopped.context("service task")??;
    written.or_else(stopped_writing)
}

/// How the service task ended.
type ServiceOutcome = Result<anyhow::Result<()>, tokio::task::JoinError>;

/// What the demo watches while the service runs.
struct Watched<'a> {
    pool: &'a store::Pool,
    sim: &'a graph_sim::RunningSim,
    tenant: &'a emulated::EmulatedTenant,
    options: &'a DemoOptions,
}

/// Shows the banner, then runs and changes until the service stops (its outcome) or a line cannot be
/// written (the error).
async fn watch(
    display: &mut RunDisplay,
    banner: &[String],
    service: &mut tokio::task::JoinHandle<anyhow::Result<()>>,
    watched: &Watched<'_>,
) -> io::Result<ServiceOutcome> {
    for line in banner {
        display.line(line)?;
    }
    let Watched { pool, sim, tenant, options } = *watched;
    let mut since = Utc::now() - chrono::TimeDelta::seconds(1);
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    let mut change = tokio::time::interval(options.change_every);
    change.tick().await;
    let mut batch_seed = 1u64;
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    let mut interrupted = false;
    loop {
        tokio::select! {
            stopped = &mut *service => return Ok(stopped),
            // The service stops on the same signal; until it has, the bars make way for what it says.
            signal = &mut interrupt, if !interrupted => {
                interrupted = true;
                if signal.is_ok() {
                    display.stopping()?;
                }
            }
            _ = poll.tick() => {
                let polled_at = Utc::now();
                match run_feed::updated_since(pool, tenant.tenant_id, since).await {
                    Ok(runs) => {
                        display.update(&runs)?;
                        // Rows updated while we read show up again next time; the display is idempotent.
                        since = polled_at - chrono::TimeDelta::seconds(2);
                    }
                    Err(error) => display.line(&format!("cannot read run history: {error}"))?,
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
                    ))?,
                    Err(error) => display.line(&format!("cannot change the emulated directory: {error}"))?,
                }
            }
        }
    }
}

/// A line could not be written to standard output. When its reader went away (`entrasync demo | head`,
/// or a `tee` that Ctrl-C stopped first) the demo ends quietly; any other failure is an error.
fn stopped_writing(error: io::Error) -> anyhow::Result<()> {
    if error.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(anyhow::Error::new(error).context("writing to standard output"))
    }
}

/// Brings up Postgres and RabbitMQ with `deploy/local-services.sh`; quiet when both already run.
fn bring_up_local_services(script: &Path) -> anyhow::Result<()> {
    let status = std::process::Command::new("bash").arg(script).status().context("running deploy/local-services.sh")?;
    anyhow::ensure!(status.success(), "deploy/local-services.sh failed (see above)");
    Ok(())
}

/// The demo's own database (`<database>_demo`) and queues (`<prefix>_demo.*`), apart from a service's on
/// the same servers; a generated secrets key when none is set, and delta rounds often enough to watch.
fn prepare_settings(settings: &mut Settings) -> anyhow::Result<()> {
    let mut url = url::Url::parse(settings.database.url.expose_secret()).context("database.url")?;
    let name = url.path().trim_start_matches('/').to_owned();
    url.set_path(&format!("{}_demo", if name.is_empty() { "entrasync" } else { &name }));
    settings.database.url = SecretString::from(url.to_string());
    settings.amqp.prefix = format!("{}_demo", settings.amqp.prefix);
    if settings.secrets_key.expose_secret().is_empty() {
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        settings.secrets_key = SecretString::from(key);
    }
    if settings.sync.delta_interval == DEFAULT_DELTA_INTERVAL {
        settings.sync.delta_interval = DEMO_DELTA_INTERVAL;
    }
    Ok(())
}

/// Deletes the demo's job queues (the service declares them again): jobs a previous demo left behind
/// name tenants that went with its database, and would be dead-lettered as unknown.
async fn empty_queues(amqp: &AmqpSettings) -> anyhow::Result<()> {
    let broker = Broker::start(amqp);
    let deleted = broker.delete_topology(Duration::from_secs(10)).await;
    broker.close().await;
    Ok(deleted?)
}
