//! Builds the service from its settings and runs it until told to stop.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use crate::actors::liveness::Faults;
use crate::actors::{Service, Shared};
use crate::api::v1::auth::{generate_token, token_hash, SignInGuard};
use crate::api::{AppState, ScrapeGate};
use crate::config::{Role, Settings};
use crate::metrics::Metrics;
use crate::queue::Broker;
use crate::store;
use crate::store::api_tokens;
use crate::store::audit::Actor;
use crate::store::secret_box::SecretBox;
use crate::store::StoreError;

/// A built, bound, not yet running service. Tests bind port 0 and read [`Application::port`].
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    broker: Broker,
    metrics: Metrics,
    /// The actors of the configured roles (scheduler, workers, history recorder).
    service: Service,
    /// An admin token created at this start because none existed: shown once, by the caller.
    new_admin_token: Option<String>,
    faults: Faults,
}

impl Application {
    /// Creates the database if needed, applies migrations, connects to RabbitMQ (in the background)
    /// and binds the HTTP listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        store::ensure_database_exists(&settings.database).await.context("preparing the database")?;
        store::migrate::run(&settings.database).await.context("applying migrations")?;
        let pool = store::pool(&settings.database)?;
        let broker = Broker::start(&settings.amqp);
        let metrics = Metrics::new();
        metrics.sync.set_delta_interval(settings.sync.delta_interval);
        // Full rounds of this process share one memory budget for their marker snapshots.
        crate::sync::SnapshotBudget::instance().set_limit_mb(settings.sync.snapshot_budget_mb);

        let listener = TcpListener::bind(settings.http.listen)
            .with_context(|| format!("cannot listen on {} (http.listen)", settings.http.listen))?;
        let port = listener.local_addr()?.port();
        let shared = Shared::new(pool.clone(), broker.clone(), metrics.clone(), settings.clone());
        let faults = shared.faults.clone();
        let service = Service::start(shared).context("starting the actors")?;
        let liveness = web::Data::new(service.liveness().clone());
        let operator_surface = settings.has_role(Role::Api);
        let bootstrap = admin_token(&settings.api.admin_token);
        let new_admin_token = match (operator_surface, bootstrap) {
            (true, None) => first_admin_token(&pool).await?,
            _ => None,
        };
        let key = &settings.secrets_key;
        let secrets = if key.expose_secret().is_empty() { None } else { Some(Arc::new(SecretBox::from_setting(key)?)) };
        let state = web::Data::new(AppState {
            graph: crate::access::graph_client(&pool, &metrics)?,
            pool,
            broker: broker.clone(),
            metrics: metrics.clone(),
            scrape: ScrapeGate::default(),
            fleet_view: operator_surface,
            secrets,
            bootstrap_hash: bootstrap,
            sign_ins: SignInGuard::default(),
            public_url: settings.api.public_url.clone(),
            custom_cloud_hosts: settings.api.custom_cloud_hosts.clone(),
            trusted_proxies: settings.api.trusted_proxies.clone(),
            tags: settings.tags.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(liveness.clone())
                .configure(|cfg| crate::api::configure(cfg, operator_surface))
        })
        .listen(listener)?
        // One owner stops the server (see `run_until_stopped`), in the shutdown order.
        .disable_signals()
        .shutdown_timeout(settings.http.shutdown_timeout.as_secs())
        .run();
        Ok(Application { port, server, broker, metrics, service, new_admin_token, faults })
    }

    /// The admin token this start created because no admin token existed and `ENTRASYNC_ADMIN_TOKEN` is
    /// not set. The binary prints it once; it is stored only as a hash.
    pub fn new_admin_token(&self) -> Option<&str> {
        self.new_admin_token.as_deref()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics this service exports; workers record their events on it (clones share series).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Fault injection for tests: wedge or panic a part of this service the way a bug would. Nothing in
    /// configuration reaches it.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT, then stops in order: workers stop consuming and running rounds
    /// checkpoint, leases are released, the history recorder flushes, HTTP drains, the broker closes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let service = self.service;
        let served = tokio::select! {
            () = wait_for_signal() => {
                tracing::info!("shutdown requested");
                service.shutdown().await;
                handle.stop(true).await;
                server.await
            }
            // Stopped through its handle (tests): the actors follow.
            served = &mut server => {
                service.shutdown().await;
                served
            }
        };
        served.context("http server task")??;
        self.broker.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The hash of `ENTRASYNC_ADMIN_TOKEN`, when set.
fn admin_token(setting: &SecretString) -> Option<[u8; 32]> {
    let token = setting.expose_secret();
    (!token.is_empty()).then(|| token_hash(token))
}

/// With no admin token at all, the operator could never sign in: create one.
async fn first_admin_token(pool: &store::Pool) -> anyhow::Result<Option<String>> {
    if api_tokens::any_active_admin(pool).await? {
        return Ok(None);
    }
    let token = generate_token();
    let hash = token_hash(&token);
    match api_tokens::create(pool, api_tokens::BOOTSTRAP_NAME, api_tokens::Role::Admin, &hash, &Actor::system()).await {
        Ok(_) => Ok(Some(token)),
        // Instances started together race for the first token: the one that won shows it; the others
        // start as usual (this one used to exit here, so a fleet's first start lost instances).
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
