//! How a worker reaches a tenant's directory: its cloud and the app credentials of its profile.

use std::sync::Arc;

use crate::graph::{AppCredentials, AssertionAlgorithm, CertificateCredential, GraphTenant, TenantSize};
use crate::model::ObjectClass;
use crate::store::credentials::{self, CredentialMaterial};
use crate::store::secret_box::SecretBox;
use crate::store::tenants::Tenant;
use crate::store::{objects, Pool, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("tenant {0} has no credential profile; assign one before it can sync")]
    NoProfile(i64),
    #[error("credential profile {0} does not exist")]
    ProfileMissing(i64),
    #[error("ENTRASYNC_SECRETS_KEY is not set, so stored credentials cannot be decrypted")]
    NoSecretsKey,
    #[error("the certificate of credential profile {0} cannot be used: {1}")]
    Certificate(i64, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The Graph view of a stored tenant, with its credentials decrypted.
pub async fn graph_tenant(
    pool: &Pool,
    secrets: Option<&SecretBox>,
    tenant: &Tenant,
) -> Result<GraphTenant, AccessError> {
    let profile_id = tenant.credential_profile_id.ok_or(AccessError::NoProfile(tenant.id))?;
    let secrets = secrets.ok_or(AccessError::NoSecretsKey)?;
    let profile = credentials::get(pool, secrets, profile_id).await?.ok_or(AccessError::ProfileMissing(profile_id))?;
    let client_id = profile.client_id.to_string();
    let credentials = match profile.material {
        CredentialMaterial::Secret(secret) => AppCredentials::with_secret(client_id, secret),
        CredentialMaterial::Certificate { certificate_pem, private_key_pem } => {
            let certificate =
                CertificateCredential::from_pem(&private_key_pem, &certificate_pem, AssertionAlgorithm::Ps256)
                    .map_err(|e| AccessError::Certificate(profile_id, e.to_string()))?;
            AppCredentials::with_certificate(client_id, certificate)
        }
    };
    // Graph's per-tenant quota depends on the tenant's size; the stored user count is close enough.
    let client = pool.get().await.map_err(StoreError::from)?;
    let users = objects::live_count_up_to(&client, tenant.id, ObjectClass::User, TenantSize::USERS_THAT_DECIDE).await?;
    Ok(GraphTenant {
        cloud: tenant.cloud.clone(),
        tenant_id: tenant.entra_tenant_id.to_string(),
        credentials: Arc::new(credentials),
        size: TenantSize::from_user_count(users),
    })
}
