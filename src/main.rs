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
use entrasync::{store, telemetry};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("entrasync: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let outcome = actix_web::rt::System::new().block_on(run(cli.command, settings));
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
