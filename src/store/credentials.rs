//! Credential profiles: an app registration's client id and its secret or certificate, encrypted at rest.
//! Every change is audited with the material shown as `"[redacted]"`.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha1::Digest;
use tokio_postgres::Row;
use uuid::Uuid;

use super::audit::{self, Actor};
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
    /// Upper-case hex SHA-1 of the certificate's DER (what the Entra portal shows); certificates only.
    pub certificate_thumbprint: Option<String>,
    pub tenant_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SUMMARY: &str = "SELECT p.id, p.name, p.client_id, p.kind, p.certificate_pem, p.created_at, p.updated_at, \
     (SELECT count(*) FROM tenants t WHERE t.credential_profile_id = p.id) FROM credential_profiles p";

/// The sealed columns of a material: (kind, secret, certificate, private key).
type Sealed<'a> = (&'static str, Option<Vec<u8>>, Option<&'a str>, Option<Vec<u8>>);

fn seal<'a>(secrets: &SecretBox, material: &'a CredentialMaterial) -> Result<Sealed<'a>, StoreError> {
    Ok(match material {
        CredentialMaterial::Secret(secret) => {
            ("secret", Some(secrets.seal(secret.expose_secret().as_bytes())?), None, None)
        }
        CredentialMaterial::Certificate { certificate_pem, private_key_pem } => (
            "certificate",
            None,
            Some(certificate_pem.as_str()),
            Some(secrets.seal(private_key_pem.expose_secret().as_bytes())?),
        ),
    })
}

pub fn thumbprint(certificate_pem: &str) -> Option<String> {
    let der = CertificateDer::from_pem_slice(certificate_pem.as_bytes()).ok()?;
    Some(hex::encode_upper(sha1::Sha1::digest(der.as_ref())))
}

/// What the audit log shows of a profile: never material.
fn audit_view(summary: &CredentialSummary) -> serde_json::Value {
    json!({"id": summary.id, "name": summary.name, "client_id": summary.client_id, "kind": summary.kind,
           "certificate_thumbprint": summary.certificate_thumbprint, "material": audit::REDACTED})
}

/// Stores a profile; `Conflict` on a duplicate name. Returns its id.
pub async fn create(
    pool: &Pool,
    secrets: &SecretBox,
    profile: &NewCredentialProfile,
    actor: &Actor,
) -> Result<i64, StoreError> {
    let (kind, secret, certificate, key) = seal(secrets, &profile.material)?;
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let row = transaction
        .query_one(
            "INSERT INTO credential_profiles (name, client_id, kind, secret_ciphertext, certificate_pem, private_key_ciphertext)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[&profile.name, &profile.client_id, &kind, &secret, &certificate, &key],
        )
        .await?;
    let id: i64 = row.try_get(0)?;
    let summary = summary_in(&transaction, id).await?.ok_or_else(|| StoreError::NotFound(format!("profile {id}")))?;
    audit::record(
        &transaction,
        actor,
        "credential_profile.create",
        "credential_profile",
        &id.to_string(),
        None,
        Some(audit_view(&summary)),
    )
    .await?;
    transaction.commit().await?;
    Ok(id)
}

/// A profile with its material decrypted; `Undecryptable` when the secrets key cannot open it.
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
    let rows = client.query(&format!("{SUMMARY} ORDER BY p.name"), &[]).await?;
    rows.iter().map(summary_from_row).collect()
}

pub async fn get_summary(pool: &Pool, id: i64) -> Result<Option<CredentialSummary>, StoreError> {
    let client = pool.get().await?;
    summary_in(&client, id).await
}

async fn summary_in(db: &impl GenericClient, id: i64) -> Result<Option<CredentialSummary>, StoreError> {
    let row = db.query_opt(&format!("{SUMMARY} WHERE p.id = $1"), &[&id]).await?;
    row.as_ref().map(summary_from_row).transpose()
}

fn summary_from_row(r: &Row) -> Result<CredentialSummary, StoreError> {
    let certificate: Option<String> = r.try_get(4)?;
    Ok(CredentialSummary {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        client_id: r.try_get(2)?,
        kind: r.try_get(3)?,
        certificate_thumbprint: certificate.as_deref().and_then(thumbprint),
        created_at: r.try_get(5)?,
        updated_at: r.try_get(6)?,
        tenant_count: r.try_get(7)?,
    })
}

fn duplicate_name(name: &str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
    move |e| match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a credential profile named {name:?} already exists")),
        other => other,
    }
}

/// Renames a profile; `None` when it does not exist, `Conflict` on a duplicate name.
pub async fn rename(pool: &Pool, id: i64, name: &str, actor: &Actor) -> Result<Option<CredentialSummary>, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let Some(before) = summary_in(&transaction, id).await? else { return Ok(None) };
    transaction
        .execute("UPDATE credential_profiles SET name = $2, updated_at = now() WHERE id = $1", &[&id, &name])
        .await
        .map_err(duplicate_name(name))?;
    let after = summary_in(&transaction, id).await?;
    if let Some(after) = &after {
        let (b, a) = (json!({"name": before.name}), json!({"name": after.name}));
        audit::record(
            &transaction,
            actor,
            "credential_profile.rename",
            "credential_profile",
            &id.to_string(),
            Some(b),
            Some(a),
        )
        .await?;
    }
    transaction.commit().await?;
    Ok(after)
}

/// Rotation: replaces the secret or certificate (the kind may change); `None` when the profile does
/// not exist.
pub async fn replace_material(
    pool: &Pool,
    secrets: &SecretBox,
    id: i64,
    material: &CredentialMaterial,
    actor: &Actor,
) -> Result<Option<CredentialSummary>, StoreError> {
    let (kind, secret, certificate, key) = seal(secrets, material)?;
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let Some(before) = summary_in(&transaction, id).await? else { return Ok(None) };
    transaction
        .execute(
            "UPDATE credential_profiles SET kind = $2, secret_ciphertext = $3, certificate_pem = $4,
                 private_key_ciphertext = $5, updated_at = now() WHERE id = $1",
            &[&id, &kind, &secret, &certificate, &key],
        )
        .await?;
    let after = summary_in(&transaction, id).await?;
    if let Some(after) = &after {
        let view = |s: &CredentialSummary| json!({"kind": s.kind, "certificate_thumbprint": s.certificate_thumbprint, "material": audit::REDACTED});
        audit::record(
            &transaction,
            actor,
            "credential_profile.replace_material",
            "credential_profile",
            &id.to_string(),
            Some(view(&before)),
            Some(view(after)),
        )
        .await?;
    }
    transaction.commit().await?;
    Ok(after)
}

/// Deletes a profile no tenant uses; `Conflict` naming the tenants otherwise, false when it does not exist.
pub async fn delete(pool: &Pool, id: i64, actor: &Actor) -> Result<bool, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    // Locking the profile row makes a concurrent tenant insert referencing it wait for us.
    let Some(row) =
        transaction.query_opt("SELECT id FROM credential_profiles WHERE id = $1 FOR UPDATE", &[&id]).await?
    else {
        return Ok(false);
    };
    let _: i64 = row.try_get(0)?;
    let before = summary_in(&transaction, id).await?.ok_or_else(|| StoreError::NotFound(format!("profile {id}")))?;
    let users = transaction
        .query("SELECT name FROM tenants WHERE credential_profile_id = $1 ORDER BY name LIMIT 21", &[&id])
        .await?;
    if !users.is_empty() {
        let mut names = users.iter().take(20).map(|r| r.try_get::<_, String>(0)).collect::<Result<Vec<_>, _>>()?;
        if users.len() > 20 {
            names.push("…".to_owned());
        }
        return Err(StoreError::Conflict(format!(
            "credential profile {:?} is used by tenants {}; assign them another profile first",
            before.name,
            names.join(", ")
        )));
    }
    transaction.execute("DELETE FROM credential_profiles WHERE id = $1", &[&id]).await?;
    audit::record(
        &transaction,
        actor,
        "credential_profile.delete",
        "credential_profile",
        &id.to_string(),
        Some(audit_view(&before)),
        None,
    )
    .await?;
    transaction.commit().await?;
    Ok(true)
}

/// Changing `ENTRASYNC_SECRETS_KEY`: opens every stored secret with `old` and seals it with `new`, in
/// one transaction. A value `old` cannot open but `new` can is already re-encrypted and kept; one
/// neither opens fails the whole call. Returns how many profiles were re-encrypted.
pub async fn reencrypt_all(pool: &Pool, old: &SecretBox, new: &SecretBox) -> Result<u64, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let rows = transaction
        .query(
            "SELECT id, name, secret_ciphertext, private_key_ciphertext FROM credential_profiles ORDER BY id FOR UPDATE",
            &[],
        )
        .await?;
    let mut changed = 0;
    for row in &rows {
        let (id, name): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        let undecryptable = || StoreError::Undecryptable { profile_id: id, profile_name: name.clone() };
        let reseal = |stored: Option<Vec<u8>>| -> Result<Option<Vec<u8>>, StoreError> {
            let Some(stored) = stored else { return Ok(None) };
            match old.open(&stored) {
                Ok(plain) => Ok(Some(new.seal(plain.expose_secret().as_bytes())?)),
                Err(_) if new.open(&stored).is_ok() => Ok(None),
                Err(_) => Err(undecryptable()),
            }
        };
        let secret = reseal(row.try_get(2)?)?;
        let key = reseal(row.try_get(3)?)?;
        if secret.is_none() && key.is_none() {
            continue;
        }
        transaction
            .execute(
                "UPDATE credential_profiles SET secret_ciphertext = COALESCE($2, secret_ciphertext),
                     private_key_ciphertext = COALESCE($3, private_key_ciphertext), updated_at = now() WHERE id = $1",
                &[&id, &secret, &key],
            )
            .await?;
        changed += 1;
    }
    transaction.commit().await?;
    tracing::info!(profiles = changed, "credential profiles re-encrypted with the new secrets key");
    Ok(changed)
}

fn decrypt(secrets: &SecretBox, row: &Row) -> Result<CredentialProfile, StoreError> {
    let (id, name): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
    let open = |stored: Option<Vec<u8>>| {
        stored
            .and_then(|s| secrets.open(&s).ok())
            .ok_or_else(|| StoreError::Undecryptable { profile_id: id, profile_name: name.clone() })
    };
    let kind: String = row.try_get(3)?;
    let material = if kind == "certificate" {
        CredentialMaterial::Certificate {
            certificate_pem: row.try_get::<_, Option<String>>(5)?.unwrap_or_default(),
            private_key_pem: open(row.try_get(6)?)?,
        }
    } else {
        CredentialMaterial::Secret(open(row.try_get(4)?)?)
    };
    Ok(CredentialProfile { id, name, client_id: row.try_get(2)?, material })
}
