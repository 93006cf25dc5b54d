//! How entrasync reaches a tenant's directory: its cloud and the app credentials of its profile,
//! decrypted. Used by the worker before a round and by the API's test connection and consent flows.

use std::sync::Arc;

use uuid::Uuid;

use crate::graph::{
    AppCredentials, AssertionAlgorithm, BudgetLimits, CertificateCredential, GraphClient, GraphClientOptions,
    GraphError, GraphTenant, RateBudget, TenantSize,
};
use crate::metrics::Metrics;
use crate::model::{Cloud, ObjectClass};
use crate::store::credentials::{self, CredentialMaterial};
use crate::store::rate_budget::PostgresBudgetCoordinator;
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

/// A Graph client (one token cache) whose rate budget is shared with every instance through Postgres.
pub fn graph_client(pool: &Pool, metrics: &Metrics) -> Result<GraphClient, GraphError> {
    let graph_metrics = metrics.graph.clone();
    let budget = RateBudget::new(Arc::new(PostgresBudgetCoordinator::new(pool.clone())), BudgetLimits::default())
        .with_metrics(graph_metrics.clone());
    Ok(GraphClient::with_rate_budget(GraphClientOptions::default(), Arc::new(budget))?.with_metrics(graph_metrics))
}

/// The Graph view of a stored tenant, with its credentials decrypted.
pub async fn graph_tenant(
    pool: &Pool,
    secrets: Option<&SecretBox>,
    tenant: &Tenant,
) -> Result<GraphTenant, AccessError> {
    let profile_id = tenant.credential_profile_id.ok_or(AccessError::NoProfile(tenant.id))?;
    let mut graph_tenant = unstored_tenant(pool, secrets, profile_id, &tenant.cloud, tenant.entra_tenant_id).await?;
    // Graph's per-tenant quota depends on the tenant's size; the stored user count is close enough.
    let client = pool.get().await.map_err(StoreError::from)?;
    let users = objects::live_count_up_to(&client, tenant.id, ObjectClass::User, TenantSize::USERS_THAT_DECIDE).await?;
    graph_tenant.size = TenantSize::from_user_count(users);
    Ok(graph_tenant)
}

/// The Graph view of a directory that is not (or not yet) a stored tenant, reached with a stored
/// credential profile: "Test connection" before adding, and reading a consenting directory.
pub async fn unstored_tenant(
    pool: &Pool,
    secrets: Option<&SecretBox>,
    profile_id: i64,
    cloud: &Cloud,
    entra_tenant_id: Uuid,
) -> Result<GraphTenant, AccessError> {
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
    Ok(GraphTenant {
        cloud: cloud.clone(),
        tenant_id: entra_tenant_id.to_string(),
        credentials: Arc::new(credentials),
        size: TenantSize::from_user_count(0),
    })
}
