//! The Microsoft Graph client: clouds, token acquisition (secret or certificate), delta page
//! streams, retries and throttling, the shared rate budget, and typed errors.
//!
//! Typical use by the sync engine:
//! ```ignore
//! let client = GraphClient::with_rate_budget(GraphClientOptions::default(), budget)?;
//! let mut pages = client.delta_pages(tenant, DeltaRequest::resume(ObjectClass::User, delta_link));
//! while let Some(page) = pages.next().await { let page = page?; /* apply, then checkpoint page.next */ }
//! ```

mod auth;
mod budget;
mod client;
mod credentials;
mod delta;
mod error;
mod retry;

pub use auth::token_url;
pub use budget::{
    lowered_level, throttled_level, BucketSpec, BudgetCoordinator, BudgetLimits, Grant, InProcessCoordinator,
    RateBudget, TokenBucket,
};
pub use client::{GraphClient, GraphClientOptions, GraphTenant, RequestPriority, RequestStats, TenantSize};
pub use credentials::{AppCredentials, AssertionAlgorithm, CertificateCredential, CertificateError, ClientCredential};
pub use delta::{
    default_select, initial_url, parse_page, DeltaItem, DeltaPage, DeltaPages, DeltaRequest, DeltaStart, MemberRef,
    PageLink,
};
pub use error::{read_permissions, GraphError};
pub use retry::{parse_retry_after, RetryPolicy};
