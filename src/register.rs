//! Registering credential profiles and tenants from the command line (`entrasync credential add`,
//! `entrasync tenant add`), and re-encrypting credentials after a key change (`entrasync credential
//! reencrypt`). Thin: the work is in `store`.

use std::path::Path;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::config::Settings;
use crate::model::Cloud;
use crate::store::audit::Actor;
use crate::store::credentials::{self, CredentialMaterial, NewCredentialProfile};
use crate::store::secret_box::SecretBox;
use crate::store::tenants::{self, NewTenant};
use crate::store::{self, Pool, StoreError};

/// How the app registration authenticates.
pub enum Material<'a> {
    /// The client secret, read from a file (or `-` for stdin) so it never appears in `ps` or history.
    SecretFile(&'a Path),
    Certificate {
        certificate: &'a Path,
        private_key: &'a Path,
    },
}

async fn pool(settings: &Settings) -> anyhow::Result<Pool> {
    store::ensure_database_exists(&settings.database).await?;
    store::migrate::run(&settings.database).await?;
    Ok(store::pool(&settings.database)?)
}

fn read(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("reading stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Stores a credential profile; returns its id.
pub async fn add_credential(
    settings: &Settings,
    name: &str,
    client_id: Uuid,
    material: Material<'_>,
) -> anyhow::Result<i64> {
    if settings.secrets_key.expose_secret().is_empty() {
        anyhow::bail!(
            "storing credentials needs ENTRASYNC_SECRETS_KEY, the key that encrypts them: base64 of 32 random bytes, \
             e.g. export ENTRASYNC_SECRETS_KEY=\"$(openssl rand -base64 32)\"; keep it, stored credentials are \
             readable only with the same key"
        );
    }
    let secrets = SecretBox::from_setting(&settings.secrets_key)?;
    let material = match material {
        Material::SecretFile(path) => CredentialMaterial::Secret(SecretString::from(read(path)?.trim().to_owned())),
        Material::Certificate { certificate, private_key } => CredentialMaterial::Certificate {
            certificate_pem: read(certificate)?,
            private_key_pem: SecretString::from(read(private_key)?),
        },
    };
    let profile = NewCredentialProfile { name: name.to_owned(), client_id, material };
    match credentials::create(&pool(settings).await?, &secrets, &profile, &Actor::new("cli")).await {
        // The database's words stay in the message: docker-compose.yml's registration recognises them.
        Err(StoreError::Conflict(reason)) => {
            anyhow::bail!("a credential profile named {name:?} already exists ({reason})")
        }
        created => Ok(created?),
    }
}

/// Registers a tenant using the credential profile named `credential`; returns its id.
pub async fn add_tenant(
    settings: &Settings,
    name: &str,
    entra_tenant_id: Uuid,
    cloud: Cloud,
    credential: &str,
) -> anyhow::Result<i64> {
    let pool = pool(settings).await?;
    let profile = credentials::list(&pool)
        .await?
        .into_iter()
        .find(|p| p.name == credential || p.id.to_string() == credential)
        .with_context(|| {
            format!("no credential profile named {credential:?}; add one with `entrasync credential add`")
        })?;
    let tenant = NewTenant {
        name: name.to_owned(),
        entra_tenant_id,
        cloud,
        credential_profile_id: Some(profile.id),
        enabled: true,
        full_scan_next_run: true,
    };
    match tenants::create(&pool, &tenant, &Actor::new("cli")).await {
        Err(StoreError::Conflict(reason)) => {
            anyhow::bail!("the tenant with Entra id {entra_tenant_id} is already registered ({reason})")
        }
        created => Ok(created?.id),
    }
}

/// Parses `--cloud` (global, us_gov, us_gov_dod, china, custom with both URLs).
pub fn parse_cloud(name: &str, login_url: Option<String>, graph_url: Option<String>) -> anyhow::Result<Cloud> {
    Ok(match name {
        "global" => Cloud::Global,
        "us_gov" => Cloud::UsGov,
        "us_gov_dod" => Cloud::UsGovDod,
        "china" => Cloud::China,
        "custom" => Cloud::Custom {
            login_url: login_url.context("--cloud custom needs --login-url")?,
            graph_url: graph_url.context("--cloud custom needs --graph-url")?,
        },
        other => anyhow::bail!("unknown cloud {other:?}: expected global, us_gov, us_gov_dod, china or custom"),
    })
}

/// Where `credential reencrypt` reads the old secrets key: never from the command line.
pub enum OldKey<'a> {
    /// A file (or `-` for stdin).
    File(&'a Path),
    /// The name of an environment variable.
    Env(&'a str),
}

/// Re-encrypts every stored credential from the old key to `ENTRASYNC_SECRETS_KEY` in one transaction;
/// returns how many profiles changed. Nothing changes when the old key does not open them.
pub async fn reencrypt_credentials(settings: &Settings, old_key: OldKey<'_>) -> anyhow::Result<u64> {
    if settings.secrets_key.expose_secret().is_empty() {
        anyhow::bail!(
            "re-encrypting needs the new key in ENTRASYNC_SECRETS_KEY (base64 of 32 random bytes); the old one \
             goes in --old-key-file or --old-key-env"
        );
    }
    let new = SecretBox::from_setting(&settings.secrets_key)?;
    let (text, source) = match old_key {
        OldKey::File(path) => (read(path)?, format!("--old-key-file {}", path.display())),
        OldKey::Env(name) => {
            let value = std::env::var(name)
                .with_context(|| format!("--old-key-env {name}: the environment variable {name} is not set"))?;
            (value, format!("--old-key-env {name}"))
        }
    };
    let old = SecretBox::from_setting(&SecretString::from(text.trim().to_owned()))
        .map_err(|_| anyhow::anyhow!("{source} does not hold a secrets key: expected base64 of 32 bytes"))?;
    match credentials::reencrypt_all(&pool(settings).await?, &old, &new).await {
        Err(StoreError::Undecryptable { profile_id, profile_name }) => anyhow::bail!(
            "the old key ({source}) does not open credential profile {profile_name:?} (id {profile_id}), and \
             neither does ENTRASYNC_SECRETS_KEY: give the key the credentials were stored with; nothing was changed"
        ),
        changed => Ok(changed?),
    }
}
