//! Registers the fleet with entrasync in bulk, as an operator would one by one: one credential profile
//! (the emulator app's secret, encrypted with a fresh `secrets.key`) and every tenant in one statement
//! (`store::tenants::create_many`). `entrasync tenant add` costs a process, a migration check and a pool per tenant; 1,000 of them would
//! dominate the setup, and the service only reads the rows.

use anyhow::Context;
use base64::Engine;
use secrecy::SecretString;
use uuid::Uuid;

use crate::bench::emulator::EmulatedApp;
use crate::model::Cloud;
use crate::store::credentials::{self, CredentialMaterial, NewCredentialProfile};
use crate::store::secret_box::SecretBox;
use crate::store::tenants::{self, NewTenant};
use crate::store::Pool;

/// What the service instances need to sync the registered tenants.
pub struct Registered {
    /// `secrets.key` the credential profile was encrypted with (base64 of 32 bytes).
    pub secrets_key: SecretString,
    pub tenant_ids: Vec<i64>,
}

/// A fresh random `secrets.key`.
fn new_secrets_key() -> SecretString {
    SecretString::from(base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()))
}

/// Stores the app's credentials once and registers every emulator tenant (cloud `custom`, pointing at
/// `emulator_url`).
pub async fn register(
    pool: &Pool,
    app: &EmulatedApp,
    emulator_url: &str,
    entra_ids: &[Uuid],
) -> anyhow::Result<Registered> {
    let secrets_key = new_secrets_key();
    let secrets = SecretBox::from_setting(&secrets_key).context("the benchmark's secrets key")?;
    let profile = NewCredentialProfile {
        name: "bench fleet app".to_owned(),
        client_id: Uuid::parse_str(&app.app_id).context("the emulator's app id is not a GUID")?,
        material: CredentialMaterial::Secret(SecretString::from(app.secret.clone())),
    };
    let profile_id = credentials::create(pool, &secrets, &profile, &crate::store::audit::Actor::new("bench"))
        .await
        .context("storing the credential profile")?;
    let tenants: Vec<NewTenant> = entra_ids
        .iter()
        .enumerate()
        .map(|(index, &entra_tenant_id)| NewTenant {
            name: format!("fleet {}", index + 1),
            entra_tenant_id,
            cloud: Cloud::Custom { login_url: emulator_url.to_owned(), graph_url: emulator_url.to_owned() },
            credential_profile_id: Some(profile_id),
            enabled: true,
            full_scan_next_run: true,
        })
        .collect();
    let stored = tenants::create_many(pool, &tenants).await.context("registering the fleet's tenants")?;
    Ok(Registered { secrets_key, tenant_ids: stored.iter().map(|tenant| tenant.id).collect() })
}
