//! Starting the emulator: an actix-web server on its own thread and runtime, so it can be started from
//! `#[tokio::test]`, from actix code, or from the `graph-sim` subcommand alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::{web, App, HttpServer};

use crate::clock::Clock;
use crate::identity::{self, Identity};
use crate::routes;
use crate::settings::TenantSettings;
use crate::state::{SimError, SimState, TenantSpec};

/// How to run the emulator. `SimOptions::default()` listens on 127.0.0.1, port 0 (a free port).
#[derive(Clone)]
pub struct SimOptions {
    pub listen: SocketAddr,
    /// actix-web workers (threads).
    pub workers: usize,
    /// Settings every new tenant starts with (page size, quirk rates, token lifetime).
    pub tenant_defaults: TenantSettings,
    /// Enforce the published resource-unit quotas (429 when exceeded).
    pub enforce_resource_limits: bool,
    /// Serve HTTPS with this configuration (see `tls`).
    pub tls: Option<rustls::ServerConfig>,
    /// Tenants created before the server starts.
    pub tenants: Vec<TenantSpec>,
    /// Share a clock with the caller (e.g. to advance it directly); a fresh one otherwise.
    pub clock: Option<Clock>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 2,
            tenant_defaults: TenantSettings::default(),
            enforce_resource_limits: false,
            tls: None,
            tenants: Vec::new(),
            clock: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("invalid tenant defaults: {0}")]
    Settings(String),
    #[error(transparent)]
    Tenant(#[from] SimError),
    #[error("the emulator's server thread failed to start: {0}")]
    Thread(String),
}

pub struct GraphSim;

/// A started emulator. Dropping it stops the server (without waiting); `stop().await` waits.
pub struct RunningSim {
    base_url: String,
    addr: SocketAddr,
    state: Arc<SimState>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl GraphSim {
    pub fn start(options: SimOptions) -> Result<RunningSim, StartError> {
        options.tenant_defaults.validate().map_err(StartError::Settings)?;
        let clock = options.clock.clone().unwrap_or_default();
        identity::prepare_signing_key();
        let identity = Arc::new(Identity::new(clock.clone()));
        let state = Arc::new(SimState::new(
            clock,
            identity.clone(),
            options.tenant_defaults.clone(),
            options.enforce_resource_limits,
        ));
        for spec in options.tenants.iter().cloned() {
            state.create_tenant(spec)?;
        }
        let listener = std::net::TcpListener::bind(options.listen)
            .map_err(|source| StartError::Bind { addr: options.listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: options.listen, source })?;
        let scheme = if options.tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{addr}");
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let server_state = state.clone();
        let workers = options.workers.max(1);
        let tls = options.tls.clone();
        let thread = std::thread::Builder::new()
            .name("graph-sim".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(web::Data::from(server_state.clone()))
                            .app_data(web::Data::from(identity.clone()))
                            .app_data(web::JsonConfig::default().limit(16 * 1024 * 1024))
                            .configure(identity::configure)
                            .configure(routes::admin::configure)
                            .configure(routes::graph::configure)
                    })
                    .workers(workers)
                    .disable_signals()
                    .shutdown_timeout(1);
                    let bound = match tls {
                        Some(config) => server.listen_rustls_0_23(listener, config),
                        None => server.listen(listener),
                    };
                    match bound {
                        Ok(server) => {
                            let server = server.run();
                            if started_tx.send(Ok(server.handle())).is_err() {
                                return; // the starter gave up waiting
                            }
                            if let Err(e) = server.await {
                                tracing::error!(error = %e, "graph-sim server stopped with an error");
                            }
                        }
                        Err(e) => {
                            if started_tx.send(Err(e.to_string())).is_err() {
                                tracing::debug!("the emulator's starter gave up waiting");
                            }
                        }
                    }
                });
            })
            .map_err(|e| StartError::Thread(e.to_string()))?;
        let handle = started_rx.recv().map_err(|e| StartError::Thread(e.to_string()))?.map_err(StartError::Thread)?;
        tracing::info!(%base_url, "graph-sim listening");
        Ok(RunningSim { base_url, addr, state, handle, thread: Some(thread) })
    }
}

impl RunningSim {
    /// e.g. `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Rust admin API.
    pub fn state(&self) -> &Arc<SimState> {
        &self.state
    }

    /// Stops the server gracefully and waits for its thread.
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        if let Some(thread) = self.thread.take() {
            if let Ok(Err(panic)) = tokio::task::spawn_blocking(move || thread.join()).await {
                tracing::warn!(?panic, "the emulator's server thread panicked");
            }
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // The stop command is sent at once; the returned future only waits for completion.
            drop(self.handle.stop(false));
        }
    }
}
