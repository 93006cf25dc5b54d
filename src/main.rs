//! The `entrasync` binary: a thin command-line front over the library.
//!
//! Output is written through checked writers: a reader that goes away (`entrasync config | head -3`)
//! ends the output quietly instead of panicking the way `print!` does on a broken pipe.

use std::fmt::Display;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use entrasync::config::{LogFormat, LogSettings, Settings};
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
        /// The Entra tenant id (directory id), a GUID.
        #[arg(long, value_parser = tenant_guid)]
        tenant: uuid::Uuid,
        /// The object class to resync.
        #[arg(long, default_value = "all", value_parser = ["user", "group", "device", "all"])]
        class: String,
        /// Ask for a full scan instead of a delta round.
        #[arg(long)]
        full: bool,
    },
    #[cfg(feature = "emulator")]
    /// Try entrasync on one machine: Graph emulator, a generated tenant, the service, live progress.
    Demo {
        /// Users in the generated tenant.
        #[arg(long, default_value_t = 20_000)]
        users: usize,
        /// Groups in the generated tenant; their members are drawn from the users.
        #[arg(long, default_value_t = 2_000)]
        groups: usize,
        /// Devices in the generated tenant.
        #[arg(long, default_value_t = 5_000)]
        devices: usize,
    },
    #[cfg(feature = "emulator")]
    /// Benchmark the whole pipeline (emulator, Graph client, sync round, Postgres); docs/benchmarks.md.
    Bench(entrasync::bench::BenchArgs),
    #[cfg(feature = "emulator")]
    /// Benchmark history pages (1,000 rows, with totals) over a generated history; docs/benchmarks.md.
    BenchHistory(entrasync::bench::history::HistoryBenchArgs),
    #[cfg(feature = "emulator")]
    /// Benchmark nested-group membership (transitive members, groups, "is X a member of G"); docs/benchmarks.md.
    BenchNesting(entrasync::bench::nesting::NestingBenchArgs),
    #[cfg(feature = "emulator")]
    /// Benchmark the change-event relay (events/s, peak memory, CPU split); docs/events-relay.md.
    BenchEvents(entrasync::bench::events::EventsBenchArgs),
    #[cfg(feature = "emulator")]
    /// Benchmark a re-map of many stored objects (objects/s, peak memory); docs/benchmarks.md.
    BenchRemap(entrasync::bench::remap::RemapBenchArgs),
    #[cfg(feature = "emulator")]
    /// Benchmark many tenants through RabbitMQ and the service's actors against one big tenant.
    BenchFleet(entrasync::bench::fleet::FleetArgs),
    #[cfg(feature = "emulator")]
    /// Chaos convergence run: random mutations and faults against serve instances, then every tenant
    /// checked against the emulator's truth; prints a JSON report (docs/reliability.md).
    Chaos(entrasync::chaos::ChaosArgs),
    /// Manage tenants (until the admin API exists).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage credential profiles: an app registration's client id and secret or certificate.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Attribute mappings: try an expression on an object (no database needed).
    #[command(subcommand)]
    Mapping(entrasync::mapping::cli::MappingCommand),
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Register a tenant to sync; its first round is a full scan.
    Add {
        /// A name for operators.
        #[arg(long)]
        name: String,
        /// The Entra tenant id (directory id), a GUID.
        #[arg(long, value_parser = tenant_guid)]
        tenant_id: uuid::Uuid,
        /// The Microsoft cloud the tenant lives in; custom needs --login-url and --graph-url.
        #[arg(long, default_value = "global", value_parser = ["global", "us_gov", "us_gov_dod", "china", "custom"])]
        cloud: String,
        /// Sign-in (token) endpoint of --cloud custom, e.g. https://login.microsoftonline.com.
        #[arg(long)]
        login_url: Option<String>,
        /// Microsoft Graph endpoint of --cloud custom, e.g. https://graph.microsoft.com.
        #[arg(long)]
        graph_url: Option<String>,
        /// Name (or id) of the credential profile to sign in with.
        #[arg(long)]
        credential: String,
    },
}

#[derive(Subcommand)]
enum CredentialCommand {
    /// Store an app registration's credentials, encrypted with ENTRASYNC_SECRETS_KEY: a client secret
    /// (--secret-file) or a certificate (--certificate with --private-key).
    Add {
        /// A name for operators; `tenant add --credential` refers to the profile by it.
        #[arg(long)]
        name: String,
        /// The app registration's application (client) id, a GUID.
        #[arg(long, value_parser = client_guid)]
        client_id: uuid::Uuid,
        /// File holding the client secret, or - for stdin (never on the command line).
        #[arg(long, conflicts_with_all = ["certificate", "private_key"])]
        secret_file: Option<PathBuf>,
        /// PEM certificate uploaded to the app registration.
        #[arg(long, requires = "private_key")]
        certificate: Option<PathBuf>,
        /// PEM private key of that certificate.
        #[arg(long, requires = "certificate")]
        private_key: Option<PathBuf>,
    },
    /// After changing ENTRASYNC_SECRETS_KEY: re-encrypt every stored credential from the old key to the
    /// current one, in one transaction (docs/observability.md, "Rotating the secrets key").
    #[command(group(clap::ArgGroup::new("old_key").required(true)))]
    Reencrypt {
        /// File holding the old key (base64 of 32 bytes), or - for stdin (never on the command line).
        #[arg(long, group = "old_key")]
        old_key_file: Option<PathBuf>,
        /// Name of an environment variable holding the old key, e.g. OLD_SECRETS_KEY (not an ENTRASYNC_
        /// name: those are settings, and an unknown one is refused).
        #[arg(long, group = "old_key")]
        old_key_env: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Credential(CredentialCommand::Add { secret_file: None, certificate: None, .. }) = cli.command {
        missing_credential_material().exit();
    }
    if let Command::Mapping(command) = &cli.command {
        // Needs no settings, database or logging: it runs wherever the binary does.
        return ExitCode::from(entrasync::mapping::cli::run(command));
    }
    #[cfg(feature = "emulator")]
    if let Command::GraphSim(args) = cli.command {
        // The emulator reads no entrasync settings: it must start whatever ENTRASYNC_* says.
        telemetry::init(&LogSettings {
            format: LogFormat::Text,
            filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        });
        return exit_code(actix_web::rt::System::new().block_on(graph_sim::cli::run(args)), LogFormat::Text);
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            say(format_args!("configuration error: {error}"));
            return ExitCode::from(2);
        }
    };
    let log = log_settings(&cli.command, &settings);
    telemetry::init(&log);
    telemetry::log_panics();
    exit_code(actix_web::rt::System::new().block_on(run(cli.command, settings)), log.format)
}

/// The configured logging, except that with the default filter (info, for the service) the commands
/// that report their own outcome log warnings only: the demo keeps the terminal for its display, and
/// `tenant add`, `credential add` and `enqueue` print their one line without migration chatter or
/// Postgres notices ("database … does not exist, skipping"). An explicit filter is kept as given.
fn log_settings(command: &Command, settings: &Settings) -> LogSettings {
    let log = settings.log.clone();
    let reports_itself = match command {
        #[cfg(feature = "emulator")]
        Command::Demo { .. } => true,
        Command::Tenant(_) | Command::Credential(_) | Command::Enqueue { .. } => true,
        _ => false,
    };
    if reports_itself && log.filter == entrasync::config::DEFAULT_LOG_FILTER {
        LogSettings { filter: "warn".to_owned(), ..log }
    } else {
        log
    }
}

/// Reports a failure once, on stderr: as a plain line, or as a log event when logs are JSON (so that a
/// collector parses it like every other line).
fn exit_code(outcome: anyhow::Result<()>, log_format: LogFormat) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match log_format {
                LogFormat::Json => tracing::error!(error = format!("{error:#}"), "entrasync failed"),
                LogFormat::Text => say(format_args!("{error:#}")),
            }
            ExitCode::FAILURE
        }
    }
}

/// One line on stderr, prefixed with the program's name. When stderr itself is gone there is no one
/// left to tell, so a failed write is dropped.
fn say(text: impl Display) {
    let mut err = io::stderr().lock();
    if writeln!(err, "entrasync: {text}").is_err() {
        // Nothing else to do: stderr is where failures would be reported.
    }
}

/// Writes `text` to stdout. A reader that stops reading (`entrasync config | head -3`) ends the output;
/// that is no failure.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("writing to standard output"),
    }
}

const GUID_EXAMPLE: &str = "6b1c2a4e-8f3d-4c1e-9a2b-5d7e8f9a0b1c";

/// `--tenant`, `--tenant-id`: a GUID, with a message saying where to find it.
fn tenant_guid(text: &str) -> Result<uuid::Uuid, String> {
    guid(text, "the directory/tenant id from the Entra admin center")
}

/// `--client-id`: a GUID, with a message saying where to find it.
fn client_guid(text: &str) -> Result<uuid::Uuid, String> {
    guid(text, "the application/client id on the app registration's overview page")
}

fn guid(text: &str, what: &str) -> Result<uuid::Uuid, String> {
    uuid::Uuid::try_parse(text.trim())
        .map_err(|_| format!("expected a GUID like {GUID_EXAMPLE} ({what}), got {text:?}"))
}

/// `credential add` with neither a secret nor a certificate, as clap reports a missing argument.
fn missing_credential_material() -> clap::Error {
    let message = "the app registration's credential is missing: give its client secret with --secret-file FILE \
                   (- reads stdin), or its certificate with --certificate CERT.pem and --private-key KEY.pem";
    let mut cli = Cli::command();
    cli.build();
    match cli.find_subcommand_mut("credential").and_then(|credential| credential.find_subcommand_mut("add")) {
        Some(add) => add.error(ErrorKind::MissingRequiredArgument, message),
        None => cli.error(ErrorKind::MissingRequiredArgument, message),
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { print_config: true } | Command::Config => print_stdout(&settings.describe()),
        Command::Serve { print_config: false } => {
            let app = Application::build(&settings).await?;
            if let Some(token) = app.new_admin_token() {
                // Shown once, on the terminal only: the log never carries a token. One line, so JSON logs
                // on the same stream stay one object per line (plus `entrasync: ` lines for people).
                say(format_args!(
                    "no admin API token existed, so one was created; sign in to the console with {token} \
                     (shown only now)"
                ));
            }
            tracing::info!(port = app.port(), instance = %settings.instance_id, "serving");
            app.run_until_stopped().await
        }
        Command::Migrate => {
            store::ensure_database_exists(&settings.database).await?;
            let applied = store::migrate::run(&settings.database).await?;
            say(format_args!("schema up to date ({} migration(s) applied now)", applied.len()));
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
        Command::Bench(args) => print_stdout(&entrasync::bench::run(args, settings).await?),
        #[cfg(feature = "emulator")]
        Command::BenchHistory(args) => print_stdout(&entrasync::bench::history::run(args, settings).await?),
        #[cfg(feature = "emulator")]
        Command::BenchNesting(args) => print_stdout(&entrasync::bench::nesting::run(args, settings).await?),
        #[cfg(feature = "emulator")]
        Command::BenchEvents(args) => print_stdout(&entrasync::bench::events::run(args, settings).await?),
        #[cfg(feature = "emulator")]
        Command::BenchRemap(args) => print_stdout(&entrasync::bench::remap::run(args, settings).await?),
        #[cfg(feature = "emulator")]
        Command::BenchFleet(args) => {
            let report = entrasync::bench::fleet::run(args, settings).await?;
            print_stdout(&report.text)?;
            anyhow::ensure!(
                report.clean,
                "a tenant ran more or less than once, unsuccessfully, or two runs overlapped"
            );
            Ok(())
        }
        #[cfg(feature = "emulator")]
        Command::Chaos(args) => {
            let report = entrasync::chaos::run(args, settings).await?;
            print_stdout(&(serde_json::to_string_pretty(&report).context("the JSON report")? + "\n"))?;
            anyhow::ensure!(report.clean, "chaos checks failed: {}", report.failed_checks.join("; "));
            Ok(())
        }
        Command::Tenant(TenantCommand::Add { name, tenant_id, cloud, login_url, graph_url, credential }) => {
            let cloud = register::parse_cloud(&cloud, login_url, graph_url)?;
            let id = register::add_tenant(&settings, &name, tenant_id, cloud, &credential).await?;
            say(format_args!("tenant {name:?} registered as id {id}; its first round is a full scan"));
            Ok(())
        }
        Command::Credential(CredentialCommand::Add { name, client_id, secret_file, certificate, private_key }) => {
            let material = match (&secret_file, &certificate, &private_key) {
                (Some(path), _, _) => register::Material::SecretFile(path),
                (None, Some(certificate), Some(private_key)) => {
                    register::Material::Certificate { certificate, private_key }
                }
                // Ruled out when the arguments were parsed (see missing_credential_material).
                _ => anyhow::bail!("give --secret-file, or --certificate with --private-key"),
            };
            let id = register::add_credential(&settings, &name, client_id, material).await?;
            say(format_args!("credential profile {name:?} stored as id {id}"));
            Ok(())
        }
        Command::Credential(CredentialCommand::Reencrypt { old_key_file, old_key_env }) => {
            let old_key = match (&old_key_file, &old_key_env) {
                (Some(path), _) => register::OldKey::File(path),
                (None, Some(variable)) => register::OldKey::Env(variable),
                // Ruled out when the arguments were parsed (the group is required).
                (None, None) => anyhow::bail!("give --old-key-file or --old-key-env"),
            };
            let count = register::reencrypt_credentials(&settings, old_key).await?;
            say(format_args!("{count} credential profile(s) re-encrypted with the current ENTRASYNC_SECRETS_KEY"));
            Ok(())
        }
        // Answered in main before the settings are read.
        Command::Mapping(command) => match entrasync::mapping::cli::run(&command) {
            0 => Ok(()),
            code => anyhow::bail!("mapping command failed with exit code {code}"),
        },
        Command::Enqueue { tenant, class, full } => {
            let classes: Vec<ObjectClass> =
                if class == "all" { ObjectClass::ALL.to_vec() } else { vec![class.parse().context("--class")?] };
            let broker = Broker::start(&settings.amqp);
            broker.connection(Duration::from_secs(10)).await?;
            let mode = if full { SyncMode::Full } else { SyncMode::Delta };
            for class in classes {
                let job = SyncJob::new(tenant, class, mode, Trigger::Manual);
                broker.publish(&job).await?;
                say(format_args!("queued {mode} {class} job {} for tenant {tenant}", job.job_id));
            }
            broker.close().await;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `entrasync <command> --help` explains every command and every option.
    #[test]
    fn every_command_and_option_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if command.get_about().is_none() {
                missing.push(format!("{path} (the command)"));
            }
            for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
                if arg.get_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_long().unwrap_or(arg.get_id().as_str())));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cli = Cli::command();
        cli.build();
        let mut missing = Vec::new();
        walk(&cli, "entrasync", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }

    #[test]
    fn a_guid_that_is_not_one_says_what_is_expected() {
        let message = tenant_guid("xyz").unwrap_err();
        assert!(message.contains(GUID_EXAMPLE) && message.contains("\"xyz\""), "{message}");
        assert_eq!(client_guid(&format!(" {GUID_EXAMPLE} ")).unwrap().to_string(), GUID_EXAMPLE);
    }
}
