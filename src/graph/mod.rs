//! The Microsoft Graph client: clouds, token acquisition (secret or certificate), delta page
//! streams, retries and throttling, the shared rate budget, and typed errors.
//!
//! Typical use by the sync engine:
//! ```ignore
//! let client = GraphClient::with_rate_budget(GraphClientOptions::default(), budget)?;
//! let mut pages = client.delta_pages(tenant, DeltaRequest::resume(ObjectClass::User, delta_link));
//! while let Some(page) = pages.next().await { let page = page?; /* apply, then checkpoint page.next */ }
//! ```
//!
//! For the operator API: `test_connection` (a permission report per object class), `resolve_tenant_id`
//! (domain → directory id), `organization` (display name, verified domains) and the admin-consent URL
//! and redirect (`admin_consent_url`, `ConsentOutcome`).

mod auth;
mod budget;
mod canonical;
mod client;
mod consent;
mod credentials;
mod delta;
mod discovery;
mod error;
mod organization;
mod probe;
mod retry;
mod select;

pub use auth::token_url;
pub use budget::{
    lowered_level, throttled_level, BucketSpec, BudgetCoordinator, BudgetLimits, Grant, InProcessCoordinator,
    RateBudget, TokenBucket,
};
pub use canonical::{canonical_text, CanonicalJson};
pub use client::{GraphClient, GraphClientOptions, GraphTenant, RequestPriority, RequestStats, TenantSize};
pub use consent::{admin_consent_url, ConsentOutcome, ANY_ORGANIZATION, MALFORMED_CONSENT_ERROR};
pub use credentials::{AppCredentials, AssertionAlgorithm, CertificateCredential, CertificateError, ClientCredential};
pub use delta::{
    default_select, initial_url, parse_page, parse_page_canonical, DeltaItem, DeltaPage, DeltaPages, DeltaRequest,
    DeltaStart, MemberRef, PageLink,
};
pub use discovery::resolve_tenant_id;
pub use error::{read_permissions, GraphError};
pub use organization::{organization, Organization, ORGANIZATION_PERMISSIONS};
pub use probe::{accepted_permissions, test_connection, ConnectionReport, PermissionCheck, TokenCheck};
pub use retry::{parse_retry_after, RetryPolicy};
