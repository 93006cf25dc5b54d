//! Credential profiles: an app registration's client id and its secret or certificate, encrypted at rest.

use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::Row;
use uuid::Uuid;

use super::secret_box::SecretBox;
use super::{Pool, StoreError};

/// What authenticates an app registration.
pub enum CredentialMaterial {
    Secret(SecretString),
    Certificate { certificate_pem: String, private_key_pem: SecretString },
}

pub struct NewCredentialProfile {
    pub name: String,
    pub client_id: Uuid,
    pub material: CredentialMaterial,
}

/// A profile as the sync uses it, with its secret decrypted.
pub struct CredentialProfile {
    pub id: i64,
    pub name: String,
    pub client_id: Uuid,
    pub material: CredentialMaterial,
}

/// A profile as listed to operators: never the secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CredentialSummary {
    pub id: i64,
    pub name: String,
    pub client_id: Uuid,
    pub kind: String,
}

pub async fn create(pool: &Pool, secrets: &SecretBox, profile: &NewCredentialProfile) -> Result<i64, StoreError> {
    let client = pool.get().await?;
    let (kind, secret, certificate, key) = match &profile.material {
        CredentialMaterial::Secret(secret) => {
            ("secret", Some(secrets.seal(secret.expose_secret().as_bytes())?), None, None)
        }
        CredentialMaterial::Certificate { certificate_pem, private_key_pem } => (
            "certificate",
            None,
            Some(certificate_pem.as_str()),
            Some(secrets.seal(private_key_pem.expose_secret().as_bytes())?),
        ),
    };
    let row = client
        .query_one(
            "INSERT INTO credential_profiles (name, client_id, kind, secret_ciphertext, certificate_pem, private_key_ciphertext)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[&profile.name, &profile.client_id, &kind, &secret, &certificate, &key],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn get(pool: &Pool, secrets: &SecretBox, id: i64) -> Result<Option<CredentialProfile>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT id, name, client_id, kind, secret_ciphertext, certificate_pem, private_key_ciphertext
             FROM credential_profiles WHERE id = $1",
            &[&id],
        )
        .await?;
    row.map(|row| decrypt(secrets, &row)).transpose()
}

pub async fn list(pool: &Pool) -> Result<Vec<CredentialSummary>, StoreError> {
    let client = pool.get().await?;
    let rows = client.query("SELECT id, name, client_id, kind FROM credential_profiles ORDER BY name", &[]).await?;
    Ok(rows
        .iter()
        .map(|r| CredentialSummary { id: r.get(0), name: r.get(1), client_id: r.get(2), kind: r.get(3) })
        .collect())
}

fn decrypt(secrets: &SecretBox, row: &Row) -> Result<CredentialProfile, StoreError> {
    let kind: String = row.get(3);
    let material = if kind == "certificate" {
        let key: Vec<u8> = row.get(6);
        CredentialMaterial::Certificate {
            certificate_pem: row.get::<_, Option<String>>(5).unwrap_or_default(),
            private_key_pem: secrets.open(&key)?,
        }
    } else {
        let secret: Vec<u8> = row.get(4);
        CredentialMaterial::Secret(secrets.open(&secret)?)
    };
    Ok(CredentialProfile { id: row.get(0), name: row.get(1), client_id: row.get(2), material })
}
