//! `entrasync graph-sim`: run the Microsoft Graph emulator, optionally with a generated tenant.

use std::net::SocketAddr;

use anyhow::Context;

use crate::clouds::SimCloud;
use crate::server::{GraphSim, SimOptions};
use crate::settings::TenantSettings;
use crate::state::TenantSpec;

#[derive(Debug, Clone, clap::Args)]
pub struct GraphSimArgs {
    /// Address to listen on.
    #[arg(long, env = "GRAPH_SIM_LISTEN", default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Objects per delta page (Graph's own limit is 200).
    #[arg(long, default_value_t = 200)]
    pub page_size: usize,
    /// members@delta entries per page.
    #[arg(long, default_value_t = 500)]
    pub member_page_size: usize,
    /// Probability of replayed/duplicated objects in delta responses (0..=0.5).
    #[arg(long, default_value_t = 0.0)]
    pub replay_rate: f64,
    /// Probability of an empty page that still has a nextLink (0..=0.9).
    #[arg(long, default_value_t = 0.0)]
    pub empty_page_rate: f64,
    /// Delta token lifetime in seconds of emulator time.
    #[arg(long, default_value_t = 7 * 86_400)]
    pub token_lifetime_secs: i64,
    /// Enforce the published resource-unit quotas.
    #[arg(long)]
    pub enforce_resource_limits: bool,
    /// Create a tenant at start-up with this id (a GUID).
    #[arg(long)]
    pub tenant_id: Option<String>,
    /// Primary domain of the start-up tenant.
    #[arg(long)]
    pub domain: Option<String>,
    /// Cloud of the start-up tenant: global, us_gov, us_gov_dod, china.
    #[arg(long, default_value = "global")]
    pub cloud: String,
    /// Seed of the generated directory.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Generated users of the start-up tenant (any non-zero count of users, groups or devices creates it).
    #[arg(long, default_value_t = 0)]
    pub users: usize,
    /// Generated groups of the start-up tenant. Members are drawn from the users (and a few devices and
    /// earlier groups): group 0 holds every user, group 1 50,000–60,000 of them (from 60,000 users), and
    /// the rest 1–25 (70 %), 26–300 (25 %), 300–3,000 (4.9 %) or 50,000–100,000 (0.1 %) members, capped
    /// at the user count — about 200 on average with 100,000 users.
    #[arg(long, default_value_t = 0)]
    pub groups: usize,
    /// Generated devices of the start-up tenant.
    #[arg(long, default_value_t = 0)]
    pub devices: usize,
    /// Serve HTTPS: generate a CA and a server certificate (loopback and the clouds' host names) and
    /// write the CA certificate (PEM) to this file, for clients to trust.
    #[arg(long, env = "GRAPH_SIM_TLS_CA_OUT")]
    pub tls_ca_out: Option<std::path::PathBuf>,
    /// Extra host names (or IP addresses) for the HTTPS server certificate; repeatable.
    #[arg(long = "tls-host", requires = "tls_ca_out")]
    pub tls_hosts: Vec<String>,
    /// Benchmark instead of serving: walk users/delta over a tenant of this many users, print the figures.
    #[arg(long)]
    pub bench_users: Option<usize>,
}

pub async fn run(args: GraphSimArgs) -> anyhow::Result<()> {
    if let Some(users) = args.bench_users {
        let report = crate::bench::run_users_walk(users, args.workers).await?;
        tracing::info!(
            users = report.users,
            generate_s = report.generate.as_secs_f64(),
            walk_s = report.walk.as_secs_f64(),
            pages = report.pages,
            objects = report.objects,
            objects_per_s = report.objects_per_second().round(),
            bytes = report.bytes,
            directory_bytes = report.directory_bytes,
            bytes_per_user = report.directory_bytes as f64 / report.users.max(1) as f64,
            "graph-sim users delta benchmark"
        );
        return Ok(());
    }
    let tenant_defaults = TenantSettings {
        page_size: args.page_size,
        member_page_size: args.member_page_size,
        replay_rate: args.replay_rate,
        empty_page_rate: args.empty_page_rate,
        token_lifetime_secs: args.token_lifetime_secs,
    };
    let cloud: SimCloud = serde_json::from_value(serde_json::Value::String(args.cloud.clone()))
        .with_context(|| format!("unknown cloud {:?}: expected global, us_gov, us_gov_dod or china", args.cloud))?;
    let mut tenants = Vec::new();
    if args.tenant_id.is_some() || args.users + args.groups + args.devices > 0 {
        tenants.push(TenantSpec {
            tenant_id: args.tenant_id.clone(),
            domain: args.domain.clone(),
            display_name: None,
            cloud,
            seed: args.seed,
            users: args.users,
            groups: args.groups,
            devices: args.devices,
            settings: None,
        });
    }
    let tls = match &args.tls_ca_out {
        Some(path) => Some(crate::tls::server_config_writing_ca(path, &args.tls_hosts)?),
        None => None,
    };
    let sim = GraphSim::start(SimOptions {
        listen: args.listen,
        workers: args.workers,
        tenant_defaults,
        enforce_resource_limits: args.enforce_resource_limits,
        tenants,
        tls,
        ..SimOptions::default()
    })?;
    for tenant in sim.state().tenants() {
        tracing::info!(tenant = %tenant.tenant_id, domain = %tenant.domain, users = tenant.users, groups = tenant.groups, devices = tenant.devices, "graph-sim tenant ready");
    }
    tracing::info!(base_url = %sim.base_url(), "graph-sim running; Ctrl-C stops it");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    sim.stop().await;
    Ok(())
}
