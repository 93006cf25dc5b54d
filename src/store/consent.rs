//! Admin-consent requests (`consent_requests`): the single-use `state` of the consent redirect, valid
//! for one hour. A request without a tenant is "add a tenant by consent".

use chrono::{DateTime, Utc};
use serde_json::json;

use super::audit::{self, Actor};
use super::{Pool, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequest {
    pub state: String,
    pub credential_profile_id: i64,
    /// `None`: register the directory that consents.
    pub tenant_id: Option<i64>,
    /// As the caller stored it (the API stores the cloud's JSON, custom URLs included).
    pub cloud: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Stores a consent request (the API generates `state`: random, 16 to 200 characters).
pub async fn create(
    pool: &Pool,
    state: &str,
    profile_id: i64,
    tenant_id: Option<i64>,
    cloud: &str,
    actor: &Actor,
) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "INSERT INTO consent_requests (state, credential_profile_id, tenant_id, cloud, created_by)
             VALUES ($1, $2, $3, $4, $5)",
            &[&state, &profile_id, &tenant_id, &cloud, &actor.name],
        )
        .await?;
    // The state is a bearer value until used: the audit row does not carry it.
    let (target_type, target_id) = match tenant_id {
        Some(id) => ("tenant", id.to_string()),
        None => ("credential_profile", profile_id.to_string()),
    };
    let after = json!({"credential_profile_id": profile_id, "tenant_id": tenant_id, "cloud": cloud});
    audit::record(&transaction, actor, "consent.request", target_type, &target_id, None, Some(after)).await?;
    transaction.commit().await?;
    Ok(())
}

/// Takes a request: marks it used in the same statement, so a replayed redirect gets `None`, as does
/// an unknown or expired (older than an hour) state.
pub async fn take(pool: &Pool, state: &str) -> Result<Option<ConsentRequest>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "UPDATE consent_requests SET used_at = now()
             WHERE state = $1 AND used_at IS NULL AND created_at > now() - interval '1 hour'
             RETURNING state, credential_profile_id, tenant_id, cloud, created_by, created_at",
            &[&state],
        )
        .await?;
    row.map(|r| {
        Ok(ConsentRequest {
            state: r.try_get(0)?,
            credential_profile_id: r.try_get(1)?,
            tenant_id: r.try_get(2)?,
            cloud: r.try_get(3)?,
            created_by: r.try_get(4)?,
            created_at: r.try_get(5)?,
        })
    })
    .transpose()
}
