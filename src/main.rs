//! The `entrasync` binary: a thin command-line front over the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use entrasync::config::Settings;
use entrasync::model::{ObjectClass, SyncMode, Trigger};
use entrasync::queue::{Broker, SyncJob};
use entrasync::startup::Application;
use entrasync::{register, store, telemetry};

#[derive(Parser)]
#[command(name = "entrasync", version, about = "Keeps a Postgres copy of Microsoft Entra ID directories")]
struct Cli {
    /// TOML configuration file; ENTRASYNC_* environment variables override it.
    #[arg(long, global = true, env = "ENTRASYNC_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: HTTP (probes, metrics, API), scheduler and sync workers.
    Serve {
        /// Print the effective configuration (secrets masked) and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Create the database if needed and apply schema migrations.
    Migrate,
    /// Print the effective configuration, secrets masked.
    Config,
    #[cfg(feature = "emulator")]
    /// Run the Microsoft Graph emulator (docs/graph-sim.md).
    GraphSim(graph_sim::cli::GraphSimArgs),
    /// Publish a resync job for a tenant.
    Enqueue {
        /// The Entra tenant id (directory id).
        #[arg(long)]
        tenant: uuid::Uuid,
        /// user, group, device or all.
        #[arg(long, default_value = "all")]
        class: String,
        /// Ask for a full scan instead of a delta round.
        #[arg(long)]
        full: bool,
    },
    #[cfg(feature = "emulator")]
    /// Try entrasync on one machine: Graph emulator, a generated tenant, the service, live progress.
    Demo {
        #[arg(long, default_value_t = 20_000)]
        users: usize,
        #[arg(long, default_value_t = 2_000)]
        groups: usize,
        #[arg(long, default_value_t = 5_000)]
        devices: usize,
    },
    #[cfg(feature = "emulator")]
    /// Benchmark the whole pipeline (emulator, Graph client, sync round, Postgres); docs/benchmarks.md.
    Bench(entrasync::bench::BenchArgs),
    #[cfg(feature = "emulator")]
    /// Benchmark many tenants through RabbitMQ and the service's actors against one big tenant.
    BenchFleet(entrasync::bench::fleet::FleetArgs),
    /// Manage tenants (until the admin API exists).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage credential profiles: an app registration's client id and secret or certificate.
    #[command(subcommand)]
    Credential(CredentialCommand),
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Register a tenant to sync; its first round is a full scan.
    Add {
        /// A name for operators.
        #[arg(long)]
        name: String,
        /// The Entra tenant id (directory id).
        #[arg(long)]
        tenant_id: uuid::Uuid,
        /// global, us_gov, us_gov_dod, china, or custom (with --login-url and --graph-url).
        #[arg(long, default_value = "global")]
        cloud: String,
        #[arg(long)]
        login_url: Option<String>,
        #[arg(long)]
        graph_url: Option<String>,
        /// Name (or id) of the credential profile to sign in with.
        #[arg(long)]
        credential: String,
    },
}

#[derive(Subcommand)]
enum CredentialCommand {
    /// Store an app registration's credentials, encrypted with ENTRASYNC_SECRETS_KEY.
    Add {
        #[arg(long)]
        name: String,
        /// The app registration's application (client) id.
        #[arg(long)]
        client_id: uuid::Uuid,
        /// File holding the client secret, or - for stdin (never on the command line).
        #[arg(long, conflicts_with_all = ["certificate", "private_key"], required_unless_present = "certificate")]
        secret_file: Option<PathBuf>,
        /// PEM certificate uploaded to the app registration.
        #[arg(long, requires = "private_key")]
        certificate: Option<PathBuf>,
        /// PEM private key of that certificate.
        #[arg(long, requires = "certificate")]
        private_key: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "emulator")]
    if let Command::GraphSim(args) = cli.command {
        // The emulator reads no entrasync settings: it must start whatever ENTRASYNC_* says.
        telemetry::init(&entrasync::config::LogSettings {
            format: entrasync::config::LogFormat::Text,
            filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        });
        return exit_code(actix_web::rt::System::new().block_on(graph_sim::cli::run(args)));
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("entrasync: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let mut log = settings.log.clone();
    #[cfg(feature = "emulator")]
    if matches!(cli.command, Command::Demo { .. }) && log.filter == "info" {
        // The demo's terminal is for its progress bars; warnings still show.
        log.filter = "warn".to_owned();
    }
    telemetry::init(&log);
    exit_code(actix_web::rt::System::new().block_on(run(cli.command, settings)))
}

fn exit_code(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "entrasync failed");
            eprintln!("entrasync: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { print_config: true } | Command::Config => {
            print!("{}", settings.describe());
            Ok(())
        }
        Command::Serve { print_config: false } => {
            let app = Application::build(&settings).await?;
            tracing::info!(port = app.port(), instance = %settings.instance_id, "serving");
            app.run_until_stopped().await
        }
        Command::Migrate => {
            store::ensure_database_exists(&settings.database).await?;
            let applied = store::migrate::run(&settings.database).await?;
            eprintln!("entrasync: schema up to date ({} migration(s) applied now)", applied.len());
            Ok(())
        }
        #[cfg(feature = "emulator")]
        Command::GraphSim(args) => graph_sim::cli::run(args).await,
        #[cfg(feature = "emulator")]
        Command::Demo { users, groups, devices } => {
            let options = entrasync::demo::DemoOptions { users, groups, devices, ..Default::default() };
            entrasync::demo::run(settings, options).await
        }
        #[cfg(feature = "emulator")]
        Command::Bench(args) => entrasync::bench::run(args, settings).await,
        #[cfg(feature = "emulator")]
        Command::BenchFleet(args) => entrasync::bench::fleet::run(args, settings).await,
        Command::Tenant(TenantCommand::Add { name, tenant_id, cloud, login_url, graph_url, credential }) => {
            let cloud = register::parse_cloud(&cloud, login_url, graph_url)?;
            let id = register::add_tenant(&settings, &name, tenant_id, cloud, &credential).await?;
            eprintln!("entrasync: tenant {name:?} registered as id {id}; its first round is a full scan");
            Ok(())
        }
        Command::Credential(CredentialCommand::Add { name, client_id, secret_file, certificate, private_key }) => {
            let material = match (&secret_file, &certificate, &private_key) {
                (Some(path), _, _) => register::Material::SecretFile(path),
                (None, Some(certificate), Some(private_key)) => {
                    register::Material::Certificate { certificate, private_key }
                }
                _ => anyhow::bail!("give --secret-file, or --certificate with --private-key"),
            };
            let id = register::add_credential(&settings, &name, client_id, material).await?;
            eprintln!("entrasync: credential profile {name:?} stored as id {id}");
            Ok(())
        }
        Command::Enqueue { tenant, class, full } => {
            let classes: Vec<ObjectClass> =
                if class == "all" { ObjectClass::ALL.to_vec() } else { vec![class.parse().context("--class")?] };
            let broker = Broker::start(&settings.amqp);
            broker.connection(Duration::from_secs(10)).await?;
            let mode = if full { SyncMode::Full } else { SyncMode::Delta };
            for class in classes {
                let job = SyncJob::new(tenant, class, mode, Trigger::Manual);
                broker.publish(&job).await?;
                eprintln!("entrasync: queued {} {} job {} for tenant {tenant}", mode, class, job.job_id);
            }
            broker.close().await;
            Ok(())
        }
    }
}
