//! Builds the service from its settings and runs it until told to stop.

use std::net::TcpListener;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::queue::Broker;
use crate::store::{self, Pool};

/// Shared by the HTTP handlers.
pub struct AppState {
    pub pool: Pool,
    pub broker: Broker,
    pub metrics: Metrics,
}

/// A built, bound, not yet running service. Tests bind port 0 and read [`Application::port`].
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    broker: Broker,
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

        let listener = TcpListener::bind(settings.http.listen)
            .with_context(|| format!("cannot listen on {} (http.listen)", settings.http.listen))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState { pool, broker: broker.clone(), metrics });
        let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(crate::api::configure))
            .listen(listener)?
            // One owner stops the server (see `run_until_stopped`), in the shutdown order.
            .disable_signals()
            .shutdown_timeout(settings.http.shutdown_timeout.as_secs())
            .run();
        Ok(Application { port, server, broker })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT, then stops in order: HTTP (draining), then the broker.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            handle.stop(true).await;
        });
        server.await.context("http server task")??;
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
