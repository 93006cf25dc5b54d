//! Registers the fleet with entrasync in bulk, as an operator would one by one: one credential profile
//! (the emulator app's secret, encrypted with a fresh `secrets.key`) and every tenant in one `INSERT`.
//! `entrasync tenant add` costs a process, a migration check and a pool per tenant; 1,000 of them would
//! dominate the setup, and the service only reads the rows.

use anyhow::Context;
use base64::Engine;
use secrecy::SecretString;
use uuid::Uuid;

use crate::bench::emulator::EmulatedApp;
use crate::store::credentials::{self, CredentialMaterial, NewCredentialProfile};
use crate::store::secret_box::SecretBox;
use crate::store::Pool;

/// Every tenant as entrasync stores it: the whole `tenants` row a new tenant gets from
/// `store::tenants::create` (full scan on next run by the column default).
const INSERT_TENANTS: &str = "\
    INSERT INTO tenants (name, entra_tenant_id, cloud, custom_login_url, custom_graph_url, credential_profile_id, enabled) \
    SELECT 'fleet ' || t.ordinal, t.entra_id, 'custom', $2, $2, $3, true \
    FROM unnest($1::uuid[]) WITH ORDINALITY AS t (entra_id, ordinal) \
    RETURNING id";

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
    let profile_id = credentials::create(pool, &secrets, &profile).await.context("storing the credential profile")?;
    let client = pool.get().await.context("a connection to register tenants")?;
    let rows = client
        .query(INSERT_TENANTS, &[&entra_ids, &emulator_url, &profile_id])
        .await
        .context("registering the fleet's tenants")?;
    let tenant_ids = rows.iter().map(|row| row.try_get(0)).collect::<Result<Vec<i64>, _>>()?;
    anyhow::ensure!(
        tenant_ids.len() == entra_ids.len(),
        "registered {} of {} tenants",
        tenant_ids.len(),
        entra_ids.len()
    );
    Ok(Registered { secrets_key, tenant_ids })
}
