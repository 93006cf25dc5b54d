//! Reaching a directory: "Test connection" (before adding a tenant and any time later), the permission
//! check, and admin consent — "Grant permissions" for a tenant, and "Add by consent" where the
//! consenting directory becomes a tenant. Graph is called through `graph`; credentials come from
//! [`crate::access`].

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{generate_token, Caller};
use super::page::names::CloudName;
use super::page::Problems;
use super::problem::ApiError;
use super::tenants::{no_tenant, overview, TenantView};
use crate::access::{self, AccessError};
use crate::api::AppState;
use crate::graph::{self, ConnectionReport, ConsentOutcome, GraphTenant, PermissionCheck};
use crate::model::Cloud;
use crate::store::audit::Actor;
use crate::store::tenants::{self, NewTenant, Tenant};
use crate::store::{consent, credentials};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants/{id}/test-connection", web::post().to(test_tenant))
        .route("/test-connection", web::post().to(test_new))
        .route("/tenants/{id}/permissions/check", web::post().to(check_permissions))
        .route("/tenants/{id}/consent", web::post().to(consent))
        .route("/credential-profiles/{id}/consent", web::post().to(consent_for_new_tenant))
        .route("/consent/callback", web::get().to(consent_callback));
}

/// The Azure cloud of a tenant: a name, and the two URLs of a custom cloud (an emulator or a sovereign
/// endpoint).
#[derive(Deserialize, ToSchema, Clone)]
pub struct CloudFields {
    pub cloud: CloudName,
    /// Only for `custom`: the identity platform's root, e.g. `https://login.example`.
    #[schema(max_length = 500)]
    pub login_url: Option<String>,
    /// Only for `custom`: the Graph root, without `/v1.0`.
    #[schema(max_length = 500)]
    pub graph_url: Option<String>,
}

/// The cloud named by `fields`; a custom cloud's URLs must be on a host of `allowed_hosts`
/// (`api.custom_cloud_hosts`), since a credential profile's secret is sent to its login URL.
pub fn cloud_from(fields: &CloudFields, allowed_hosts: &[String]) -> Result<Cloud, ApiError> {
    let url = |field: &str, value: &Option<String>| -> Result<String, ApiError> {
        let value = value.as_deref().map(str::trim).unwrap_or_default();
        let parsed = match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && value.len() <= 500 => u,
            _ => {
                return Err(ApiError::invalid(
                    field,
                    format!("{field} must be an http(s) URL when cloud is \"custom\""),
                ))
            }
        };
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        let host_port = parsed.port_or_known_default().map(|port| format!("{host}:{port}")).unwrap_or_default();
        if allowed_hosts.iter().any(|allowed| *allowed == host || *allowed == host_port) {
            return Ok(value.trim_end_matches('/').to_owned());
        }
        let problem = if allowed_hosts.is_empty() {
            "cloud \"custom\" is turned off on this server: an operator lists the hosts it may use in \
             api.custom_cloud_hosts (ENTRASYNC_API_CUSTOM_CLOUD_HOSTS), or registers the tenant with \
             `entrasync tenant add --cloud custom`"
                .to_owned()
        } else {
            format!(
                "{host_port} is not one of the hosts allowed for cloud \"custom\" (api.custom_cloud_hosts: {})",
                allowed_hosts.join(", ")
            )
        };
        Err(ApiError::invalid(field, problem))
    };
    let plain = |cloud: Cloud| {
        if fields.login_url.is_some() || fields.graph_url.is_some() {
            Err(ApiError::invalid("login_url", "login_url and graph_url are only for cloud \"custom\""))
        } else {
            Ok(cloud)
        }
    };
    match fields.cloud {
        CloudName::Global => plain(Cloud::Global),
        CloudName::UsGov => plain(Cloud::UsGov),
        CloudName::UsGovDod => plain(Cloud::UsGovDod),
        CloudName::China => plain(Cloud::China),
        CloudName::Custom => Ok(Cloud::Custom {
            login_url: url("login_url", &fields.login_url)?,
            graph_url: url("graph_url", &fields.graph_url)?,
        }),
    }
}

/// One permission set's outcome.
#[derive(Serialize, ToSchema)]
pub struct CheckView {
    /// `granted`, `granted_needs_settings`, `needs_additional_permissions` or `error`.
    pub status: String,
    pub missing: Vec<String>,
    pub next_step: String,
    pub detail: Option<String>,
}

impl From<&PermissionCheck> for CheckView {
    fn from(c: &PermissionCheck) -> Self {
        CheckView {
            status: c.status.as_str().to_owned(),
            missing: c.missing.clone(),
            next_step: c.next_step.clone(),
            detail: c.detail.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokenCheckView {
    pub ok: bool,
    /// The application permissions the token carries.
    pub roles: Vec<String>,
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionView {
    /// The worst of the three sets.
    pub status: String,
    pub entra_tenant_id: Uuid,
    pub display_name: Option<String>,
    pub token: TokenCheckView,
    pub users: CheckView,
    pub groups: CheckView,
    pub devices: CheckView,
}

impl ConnectionView {
    fn new(report: &ConnectionReport, directory: &Directory) -> Self {
        ConnectionView {
            status: report.overall().as_str().to_owned(),
            entra_tenant_id: directory.entra_tenant_id,
            display_name: directory.display_name.clone(),
            token: TokenCheckView {
                ok: report.token.ok,
                roles: report.token.roles.clone(),
                error: report.token.error.clone(),
            },
            users: CheckView::from(&report.users),
            groups: CheckView::from(&report.groups),
            devices: CheckView::from(&report.devices),
        }
    }

    fn details(&self) -> serde_json::Value {
        serde_json::json!({
            "token": { "ok": self.token.ok, "roles": self.token.roles, "error": self.token.error },
            "users": self.users, "groups": self.groups, "devices": self.devices,
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestNewBody {
    /// Tenant id (GUID) or one of its domains.
    #[schema(min_length = 1, max_length = 253)]
    pub tenant: String,
    #[serde(flatten)]
    pub cloud: CloudFields,
    pub credential_profile_id: i64,
}

/// What entrasync learnt about a directory: its id and, when the profile can read it, its name and
/// verified domains.
pub struct Directory {
    pub entra_tenant_id: Uuid,
    pub display_name: Option<String>,
    pub verified_domains: Vec<String>,
}

fn access_error(e: AccessError) -> ApiError {
    match e {
        AccessError::Store(e) => e.into(),
        AccessError::NoSecretsKey => ApiError::unavailable(
            "reading stored credentials needs ENTRASYNC_SECRETS_KEY on the API instances; set it and restart",
        ),
        other => ApiError::invalid("credential_profile_id", other.to_string()),
    }
}

async fn graph_tenant(state: &AppState, profile_id: i64, cloud: &Cloud, id: Uuid) -> Result<GraphTenant, ApiError> {
    access::unstored_tenant(&state.pool, state.secrets.as_deref(), profile_id, cloud, id).await.map_err(access_error)
}

/// Resolves a GUID or domain to the directory, and reads its name when the profile may.
pub async fn directory_of(
    state: &AppState,
    cloud: &Cloud,
    tenant: &str,
    profile_id: i64,
) -> Result<Directory, ApiError> {
    let tenant = tenant.trim();
    if tenant.is_empty() || tenant.len() > 253 {
        return Err(ApiError::invalid(
            "tenant",
            "tenant must be a tenant id (GUID) or a domain such as contoso.onmicrosoft.com",
        ));
    }
    let id = graph::resolve_tenant_id(&state.graph, cloud, tenant)
        .await
        .map_err(|e| ApiError::invalid("tenant", e.to_string()))?;
    let target = graph_tenant(state, profile_id, cloud, id).await?;
    match graph::organization(&state.graph, &target).await {
        Ok(org) => Ok(Directory {
            entra_tenant_id: id,
            display_name: Some(org.display_name),
            verified_domains: org.verified_domains,
        }),
        Err(e) => {
            tracing::info!(tenant = %id, error = %e, "the directory's name could not be read; using what was given");
            Ok(Directory { entra_tenant_id: id, display_name: None, verified_domains: Vec::new() })
        }
    }
}

async fn probe(state: &AppState, target: &GraphTenant, directory: &Directory) -> ConnectionView {
    let report = graph::test_connection(&state.graph, target).await;
    ConnectionView::new(&report, directory)
}

async fn tenant(state: &AppState, id: i64) -> Result<Tenant, ApiError> {
    tenants::get(&state.pool, id).await?.ok_or_else(|| no_tenant(id))
}

/// Runs the checks against a stored tenant and records the outcome as its permission status.
async fn check_stored(state: &AppState, tenant: &Tenant) -> Result<ConnectionView, ApiError> {
    let profile = tenant.credential_profile_id.ok_or_else(|| {
        ApiError::invalid("credential_profile_id", "the tenant has no credential profile; assign one first")
    })?;
    let target = graph_tenant(state, profile, &tenant.cloud, tenant.entra_tenant_id).await?;
    let directory =
        Directory { entra_tenant_id: tenant.entra_tenant_id, display_name: None, verified_domains: Vec::new() };
    let view = probe(state, &target, &directory).await;
    tenants::record_permissions(&state.pool, tenant.id, &view.status, view.details()).await?;
    Ok(view)
}

/// Acquires a token, reads its roles and calls Graph once per permission set; stores the outcome as the
/// tenant's permission status.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/test-connection", tag = "permissions",
    params(("id" = i64, Path)), responses((status = 200, body = ConnectionView), Problems))]
pub async fn test_tenant(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<ConnectionView>, ApiError> {
    caller.admin()?;
    let tenant = tenant(&state, *id).await?;
    Ok(web::Json(check_stored(&state, &tenant).await?))
}

/// The same checks before a tenant exists ("Test Connection" in the Add tenant dialog).
#[utoipa::path(post, path = "/api/v1/test-connection", tag = "permissions", request_body = TestNewBody,
    responses((status = 200, body = ConnectionView), Problems))]
pub async fn test_new(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<TestNewBody>,
) -> Result<web::Json<ConnectionView>, ApiError> {
    caller.admin()?;
    let cloud = cloud_from(&body.cloud, &state.custom_cloud_hosts)?;
    if credentials::get_summary(&state.pool, body.credential_profile_id).await?.is_none() {
        return Err(ApiError::invalid(
            "credential_profile_id",
            format!("no credential profile with id {}", body.credential_profile_id),
        ));
    }
    let directory = directory_of(&state, &cloud, &body.tenant, body.credential_profile_id).await?;
    let target = graph_tenant(&state, body.credential_profile_id, &cloud, directory.entra_tenant_id).await?;
    Ok(web::Json(probe(&state, &target, &directory).await))
}

/// Re-reads what the app is granted in the tenant now and records it (the daily check, on demand).
#[utoipa::path(post, path = "/api/v1/tenants/{id}/permissions/check", tag = "permissions",
    params(("id" = i64, Path)), responses((status = 200, body = TenantView), Problems))]
pub async fn check_permissions(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<TenantView>, ApiError> {
    caller.admin()?;
    let tenant = tenant(&state, *id).await?;
    check_stored(&state, &tenant).await?;
    Ok(web::Json(overview(&state, *id).await?))
}

#[derive(Serialize, ToSchema)]
pub struct ConsentUrl {
    /// Open this in the browser: the cloud's admin-consent prompt. It comes back to
    /// `/api/v1/consent/callback`.
    pub url: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentForNew {
    #[serde(flatten)]
    pub cloud: CloudFields,
}

/// Where the identity platform sends the browser back.
fn redirect_uri(state: &AppState, req: &HttpRequest) -> String {
    match &state.public_url {
        Some(base) => format!("{}/api/v1/consent/callback", base.as_str().trim_end_matches('/')),
        None => {
            let info = req.connection_info();
            format!("{}://{}/api/v1/consent/callback", info.scheme(), info.host())
        }
    }
}

async fn start_consent(
    state: &AppState,
    req: &HttpRequest,
    actor: &Actor,
    profile_id: i64,
    cloud: &Cloud,
    tenant: Option<&Tenant>,
) -> Result<ConsentUrl, ApiError> {
    let profile = credentials::get_summary(&state.pool, profile_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no credential profile with id {profile_id}")))?;
    // The state names this request when the browser comes back; single use, valid for an hour.
    let nonce = generate_token();
    let cloud_json = serde_json::to_string(cloud).map_err(|e| ApiError::internal(&e))?;
    consent::create(&state.pool, &nonce, profile_id, tenant.map(|t| t.id), &cloud_json, actor).await?;
    let directory = tenant.map(|t| t.entra_tenant_id.to_string());
    let url = graph::admin_consent_url(
        cloud,
        directory.as_deref(),
        &profile.client_id.to_string(),
        &redirect_uri(state, req),
        &nonce,
    )
    .map_err(|e| ApiError::invalid("cloud", format!("no admin-consent URL for this cloud: {e}")))?;
    Ok(ConsentUrl { url: url.to_string() })
}

/// "Grant permissions": the admin-consent URL for the tenant and its profile's app.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/consent", tag = "permissions",
    params(("id" = i64, Path)), responses((status = 200, body = ConsentUrl), Problems))]
pub async fn consent(
    caller: Caller,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> Result<web::Json<ConsentUrl>, ApiError> {
    let actor = caller.admin()?;
    let tenant = tenant(&state, *id).await?;
    let profile = tenant.credential_profile_id.ok_or_else(|| {
        ApiError::invalid("credential_profile_id", "the tenant has no credential profile; assign one first")
    })?;
    Ok(web::Json(start_consent(&state, &req, &actor, profile, &tenant.cloud, Some(&tenant)).await?))
}

/// "Add by consent": the admin-consent URL of the profile's app for whichever directory's admin
/// accepts; that directory becomes a tenant when the browser comes back.
#[utoipa::path(post, path = "/api/v1/credential-profiles/{id}/consent", tag = "permissions",
    params(("id" = i64, Path)), request_body = ConsentForNew, responses((status = 200, body = ConsentUrl), Problems))]
pub async fn consent_for_new_tenant(
    caller: Caller,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<i64>,
    body: web::Json<ConsentForNew>,
) -> Result<web::Json<ConsentUrl>, ApiError> {
    let actor = caller.admin()?;
    let cloud = cloud_from(&body.cloud, &state.custom_cloud_hosts)?;
    Ok(web::Json(start_consent(&state, &req, &actor, *id, &cloud, None).await?))
}

/// The identity platform's redirect after admin consent.
#[derive(Deserialize, IntoParams)]
pub struct CallbackQuery {
    pub admin_consent: Option<String>,
    pub tenant: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

fn to_console(fragment: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/#{fragment}"))).finish()
}

/// Records the consent's outcome and sends the browser to the console: the tenant's page, or the
/// tenant list with the problem shown. No token: the single-use `state` proves the request.
#[utoipa::path(get, path = "/api/v1/consent/callback", tag = "permissions", params(CallbackQuery), security(),
    responses((status = 303, description = "to the console page showing the outcome")))]
pub async fn consent_callback(state: web::Data<AppState>, query: web::Query<CallbackQuery>) -> HttpResponse {
    match finish_consent(&state, &query).await {
        Ok(fragment) => to_console(&fragment),
        Err(e) => {
            tracing::warn!(error = %e, "admin consent callback not completed");
            to_console(&format!("/tenants?consent_error={}", urlencode(&e.problem().detail)))
        }
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn finish_consent(state: &AppState, query: &CallbackQuery) -> Result<String, ApiError> {
    let nonce =
        query.state.as_deref().filter(|s| s.len() <= 100).ok_or_else(|| {
            ApiError::bad_request("the consent answer has no state; start again from Grant permissions")
        })?;
    let request = consent::take(&state.pool, nonce).await?.ok_or_else(|| {
        ApiError::bad_request(
            "this consent answer is unknown, used or older than an hour; start again from Grant permissions",
        )
    })?;
    let actor = Actor::new(request.created_by.clone());
    let pairs: Vec<(String, String)> = [
        ("admin_consent", &query.admin_consent),
        ("tenant", &query.tenant),
        ("error", &query.error),
        ("error_description", &query.error_description),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
    .collect();
    let granted = match ConsentOutcome::from_query(&pairs) {
        ConsentOutcome::Granted { tenant } => tenant,
        ConsentOutcome::Refused { error, description } => {
            let reason = format!("{error}: {description}");
            if let Some(id) = request.tenant_id {
                tenants::record_consent(&state.pool, id, false, Some(&reason), &actor).await?;
                return Ok(format!("/tenants/{id}?consent=refused&detail={}", urlencode(&reason)));
            }
            return Ok(format!("/tenants?consent_error={}", urlencode(&reason)));
        }
    };
    let cloud: Cloud = serde_json::from_str(&request.cloud).map_err(|e| ApiError::internal(&e))?;
    let id = match request.tenant_id {
        Some(id) => {
            let tenant = tenant(state, id).await?;
            if tenant.entra_tenant_id != granted {
                return Err(ApiError::conflict(format!(
                    "consent came from directory {granted}, but tenant {:?} is directory {}; sign in as that \
                     directory's admin",
                    tenant.name, tenant.entra_tenant_id
                )));
            }
            id
        }
        None => match tenants::find_by_entra_id(&state.pool, granted).await? {
            Some(existing) => existing.id,
            None => register_consented(state, &actor, request.credential_profile_id, &cloud, granted).await?,
        },
    };
    tenants::record_consent(&state.pool, id, true, None, &actor).await?;
    let tenant = tenant(state, id).await?;
    // Consent applies to tokens issued from now on: the check shows the new status at once.
    if let Err(e) = check_stored(state, &tenant).await {
        tracing::info!(tenant = id, error = %e, "permission check after consent failed");
    }
    refresh_directory_info(state, &tenant).await;
    Ok(format!("/tenants/{id}?consent=granted"))
}

/// A directory whose admin consented without being a tenant yet ("Add by consent").
async fn register_consented(
    state: &AppState,
    actor: &Actor,
    profile: i64,
    cloud: &Cloud,
    id: Uuid,
) -> Result<i64, ApiError> {
    let target = graph_tenant(state, profile, cloud, id).await?;
    let name = match graph::organization(&state.graph, &target).await {
        Ok(org) => org.display_name,
        Err(_) => id.to_string(),
    };
    let new = NewTenant {
        name: super::page::name("name", &name).unwrap_or_else(|_| id.to_string()),
        entra_tenant_id: id,
        cloud: cloud.clone(),
        credential_profile_id: Some(profile),
        enabled: true,
        full_scan_next_run: true,
    };
    Ok(tenants::create(&state.pool, &new, actor).await?.id)
}

async fn refresh_directory_info(state: &AppState, tenant: &Tenant) {
    let Some(profile) = tenant.credential_profile_id else { return };
    let Ok(target) = graph_tenant(state, profile, &tenant.cloud, tenant.entra_tenant_id).await else { return };
    match graph::organization(&state.graph, &target).await {
        Ok(org) => {
            if let Err(e) =
                tenants::set_directory_info(&state.pool, tenant.id, Some(&org.display_name), &org.verified_domains)
                    .await
            {
                tracing::warn!(tenant = tenant.id, error = %e, "storing the directory's name failed");
            }
        }
        Err(e) => tracing::info!(tenant = tenant.id, error = %e, "reading the directory's name failed"),
    }
}
