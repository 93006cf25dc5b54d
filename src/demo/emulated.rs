//! Registering Graph emulator tenants with entrasync through `store`, as an operator would register real
//! ones: an app registration with a secret (a credential profile) and consented tenants.

use anyhow::Context;
use secrecy::SecretString;
use uuid::Uuid;

use crate::model::Cloud;
use crate::store::credentials::{self, CredentialMaterial, NewCredentialProfile};
use crate::store::secret_box::SecretBox;
use crate::store::tenants::{self, NewTenant};
use crate::store::Pool;
use graph_sim::identity::NewApp;
use graph_sim::settings::SettingsPatch;
use graph_sim::state::TenantSpec;
use graph_sim::RunningSim;

/// The Graph application permissions a sync needs.
pub const READ_ROLES: [&str; 3] = ["User.Read.All", "GroupMember.Read.All", "Device.Read.All"];

/// What the emulated app registration requests (and its admin consents to): the sync's permissions, and
/// Organization.Read.All for the directory's name and domains in the console.
pub const REQUESTED_ROLES: [&str; 4] =
    ["User.Read.All", "GroupMember.Read.All", "Device.Read.All", "Organization.Read.All"];

/// An emulated app registration and the credential profile that holds its secret.
pub struct EmulatedApp {
    pub app_id: String,
    pub profile_id: i64,
}

/// One tenant as both the emulator and entrasync know it.
pub struct EmulatedTenant {
    pub tenant_id: i64,
    pub entra_tenant_id: Uuid,
    /// The emulator's id of the tenant (for mutations and its truth).
    pub sim_tenant: String,
}

/// Registers an app in the emulator and stores its secret as credential profile `profile_name`.
pub async fn register_app(
    sim: &RunningSim,
    pool: &Pool,
    secrets: &SecretBox,
    profile_name: &str,
) -> anyhow::Result<EmulatedApp> {
    let secret = format!("emulated-{}", Uuid::new_v4().simple());
    let app = sim
        .state()
        .identity
        .register_app(NewApp {
            secret: Some(secret.clone()),
            display_name: Some(profile_name.to_owned()),
            roles: REQUESTED_ROLES.iter().map(|r| (*r).to_owned()).collect(),
            ..NewApp::default()
        })
        .map_err(|e| anyhow::anyhow!("registering the emulated app: {e}"))?;
    let profile = NewCredentialProfile {
        name: profile_name.to_owned(),
        client_id: Uuid::parse_str(&app.app_id).context("emulated app id")?,
        material: CredentialMaterial::Secret(SecretString::from(secret)),
    };
    let profile_id = credentials::create(pool, secrets, &profile, &crate::store::audit::Actor::new("demo"))
        .await
        .context("storing the credential profile")?;
    Ok(EmulatedApp { app_id: app.app_id, profile_id })
}

/// Generates a tenant in the emulator, consents `app` to it and registers it with entrasync.
pub async fn add_tenant(
    sim: &RunningSim,
    pool: &Pool,
    app: &EmulatedApp,
    name: &str,
    spec: TenantSpec,
    page_size: Option<usize>,
) -> anyhow::Result<EmulatedTenant> {
    let state = sim.state();
    let info = state.create_tenant(spec).map_err(|e| anyhow::anyhow!("generating the emulated tenant: {e}"))?;
    let roles: Vec<String> = REQUESTED_ROLES.iter().map(|r| (*r).to_owned()).collect();
    state.identity.grant_consent(&info.tenant_id, &app.app_id, &roles).map_err(|e| anyhow::anyhow!("consent: {e}"))?;
    if page_size.is_some() {
        state
            .update_settings(&info.tenant_id, &SettingsPatch { page_size, ..SettingsPatch::default() })
            .map_err(|e| anyhow::anyhow!("emulated tenant settings: {e}"))?;
    }
    let entra_tenant_id = Uuid::parse_str(&info.tenant_id).context("emulated tenant id")?;
    let stored = tenants::create(
        pool,
        &NewTenant {
            name: name.to_owned(),
            entra_tenant_id,
            cloud: Cloud::Custom { login_url: sim.base_url(), graph_url: sim.base_url() },
            credential_profile_id: Some(app.profile_id),
            enabled: true,
            full_scan_next_run: true,
        },
        &crate::store::audit::Actor::new("demo"),
    )
    .await
    .context("registering the tenant")?;
    Ok(EmulatedTenant { tenant_id: stored.id, entra_tenant_id, sim_tenant: info.tenant_id })
}
