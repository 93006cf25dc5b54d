//! Builds the service from its settings and runs it until told to stop.

use std::net::TcpListener;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::actors::{Service, Shared};
use crate::api::{AppState, ScrapeGate};
use crate::config::{Role, Settings};
use crate::metrics::Metrics;
use crate::queue::Broker;
use crate::store;

/// A built, bound, not yet running service. Tests bind port 0 and read [`Application::port`].
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    broker: Broker,
    metrics: Metrics,
    /// The actors of the configured roles (scheduler, workers, history recorder).
    service: Service,
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

        let listener = TcpListener::bind(settings.http.listen)
            .with_context(|| format!("cannot listen on {} (http.listen)", settings.http.listen))?;
        let port = listener.local_addr()?.port();
        let shared = Shared::new(pool.clone(), broker.clone(), metrics.clone(), settings.clone());
        let service = Service::start(shared).context("starting the actors")?;
        let state = web::Data::new(AppState {
            pool,
            broker: broker.clone(),
            metrics: metrics.clone(),
            scrape: ScrapeGate::default(),
            fleet_view: settings.has_role(Role::Api),
        });
        let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(crate::api::configure))
            .listen(listener)?
            // One owner stops the server (see `run_until_stopped`), in the shutdown order.
            .disable_signals()
            .shutdown_timeout(settings.http.shutdown_timeout.as_secs())
            .run();
        Ok(Application { port, server, broker, metrics, service })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics this service exports; workers record their events on it (clones share series).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
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
