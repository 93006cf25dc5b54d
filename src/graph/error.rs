//! The errors of the Graph client, one variant per thing an operator (or the sync engine) acts on.

use std::time::Duration;

use crate::model::ObjectClass;

/// Everything that can go wrong talking to Microsoft Graph or its token endpoint.
///
/// Each message names the next step for the operator; the sync engine matches on the variant
/// (e.g. [`GraphError::DeltaTokenExpired`] restarts the round as a full scan).
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// AADSTS7000215: the secret is wrong (often the secret's *ID* was pasted instead of its value).
    #[error(
        "the client secret of app {client_id} was rejected (AADSTS7000215): paste the secret's value, \
         not its ID, from the app registration's \"Certificates & secrets\" page"
    )]
    InvalidClientSecret { client_id: String },

    /// AADSTS7000222: the secret has expired.
    #[error("the client secret of app {client_id} has expired (AADSTS7000222): create a new secret and update the tenant's credentials")]
    ClientSecretExpired { client_id: String },

    /// AADSTS700027 and friends: the certificate assertion was not accepted.
    #[error(
        "the certificate of app {client_id} was rejected ({detail}): upload the certificate's public part \
         to the app registration, or configure the matching private key"
    )]
    InvalidCertificate { client_id: String, detail: String },

    /// The configured certificate or key cannot be used at all (parsing, signing).
    #[error("the certificate credential of app {client_id} is unusable: {detail}")]
    CertificateUnusable { client_id: String, detail: String },

    /// AADSTS700016: the application is unknown in this tenant.
    #[error(
        "app {client_id} is not known in tenant {tenant_id} (AADSTS700016): check the client id, or have an \
         administrator of that tenant grant consent to the app"
    )]
    UnknownApplication { client_id: String, tenant_id: String },

    /// AADSTS90002: the tenant does not exist (in this cloud).
    #[error(
        "tenant {tenant_id} was not found in cloud {cloud} (AADSTS90002): check the tenant id or domain and the \
         tenant's cloud (global, us_gov, us_gov_dod, china)"
    )]
    TenantNotFound { tenant_id: String, cloud: String },

    /// A tenant given by name that is not a DNS name (nor a GUID).
    #[error(
        "{value:?} is neither a tenant id (GUID) nor a domain name: enter the directory's id, or one of its \
         domains such as contoso.onmicrosoft.com"
    )]
    InvalidTenantName { value: String },

    /// OpenID discovery does not know the domain (AADSTS90002) in this cloud.
    #[error(
        "{domain} is not an Entra tenant of cloud {cloud} (AADSTS90002): check the spelling, use a verified domain \
         of the directory (e.g. its .onmicrosoft.com domain) or its tenant id, and check the cloud"
    )]
    UnknownDomain { domain: String, cloud: String },

    /// 403 on a read outside the synced classes (e.g. `/organization`).
    #[error(
        "app {client_id} may not read {resource} in tenant {tenant_id}: grant the application permission {} \
         (admin consent) in the app registration", .permissions.join(" or ")
    )]
    ReadDenied { client_id: String, tenant_id: String, resource: &'static str, permissions: &'static [&'static str] },

    /// Any other refusal from the token endpoint.
    #[error("the token endpoint refused app {client_id}: {error} ({description}): check the app registration")]
    TokenRejected { client_id: String, error: String, description: String },

    /// Graph kept answering 401 after one fresh token.
    #[error(
        "Graph rejected a freshly issued token for app {client_id} in tenant {tenant_id} ({code}): check that the \
         tenant's cloud is right and that the app is enabled"
    )]
    Unauthorized { client_id: String, tenant_id: String, code: String },

    /// 403 `Authorization_RequestDenied`: admin consent for an application permission is missing.
    #[error(
        "app {client_id} lacks permission to read {class} objects in tenant {tenant_id}: grant the application \
         permission {} (admin consent) in the app registration", .permissions.join(" or ")
    )]
    ConsentMissing { client_id: String, tenant_id: String, class: ObjectClass, permissions: &'static [&'static str] },

    /// 429/503/504 or connection failures outlasted the retry budget.
    #[error(
        "Graph stayed unavailable or throttled for {attempts} attempts and {waited:?} of waiting (last: {last}): \
         the run will be retried later; lower concurrency if this repeats"
    )]
    RetriesExhausted { attempts: u32, waited: Duration, last: String },

    /// The shared rate budget stayed empty longer than allowed (other workers use the quota).
    #[error(
        "the shared Graph rate budget stayed empty for {waited:?}: too many rounds run at once for this app \
         registration; the run will be retried later"
    )]
    RateBudgetExhausted { waited: Duration },

    /// The delta token is expired or was reset by Graph: the round must restart as a full scan.
    #[error("the delta token is no longer valid ({reason}): the next round restarts as a full scan")]
    DeltaTokenExpired { reason: String },

    /// Graph answered 200 with a body that is not a valid delta page.
    #[error("Graph sent a malformed page from {url}: {detail}")]
    MalformedResponse { url: String, detail: String },

    /// Any other Graph error response.
    #[error("Graph answered {status} {code}: {message}")]
    UnexpectedStatus { status: u16, code: String, message: String },

    /// The shared rate budget could not be consulted.
    #[error("the shared rate budget is unavailable: {0}")]
    Budget(#[source] anyhow::Error),

    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl GraphError {
    /// True when the sync engine should throw away its cursor and run a full round.
    pub fn requires_full_resync(&self) -> bool {
        matches!(self, GraphError::DeltaTokenExpired { .. })
    }

    /// True for errors that only an operator can fix (credentials, consent, tenant id).
    pub fn is_configuration_error(&self) -> bool {
        matches!(
            self,
            GraphError::InvalidClientSecret { .. }
                | GraphError::ClientSecretExpired { .. }
                | GraphError::InvalidCertificate { .. }
                | GraphError::CertificateUnusable { .. }
                | GraphError::UnknownApplication { .. }
                | GraphError::TenantNotFound { .. }
                | GraphError::TokenRejected { .. }
                | GraphError::Unauthorized { .. }
                | GraphError::ConsentMissing { .. }
                | GraphError::InvalidTenantName { .. }
                | GraphError::UnknownDomain { .. }
                | GraphError::ReadDenied { .. }
        )
    }
}

/// The least-privileged application permissions that allow reading a class through delta.
pub fn read_permissions(class: ObjectClass) -> &'static [&'static str] {
    match class {
        ObjectClass::User => &["User.Read.All", "Directory.Read.All"],
        ObjectClass::Group => &["GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"],
        ObjectClass::Device => &["Device.Read.All"],
    }
}
