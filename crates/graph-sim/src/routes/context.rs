//! What every Graph request goes through before its handler's own work: cloud recognition, Bearer
//! validation, tenant lookup, counters, injected faults and resource units.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::clouds::SimCloud;
use crate::error::GraphError;
use crate::faults::{FaultKind, RetryAfter};
use crate::identity::AccessClaims;
use crate::routes::respond::{self, BodyMode};
use crate::state::{SimState, Tenant};
use crate::throttle::{published_app_tenant_limit, request_cost, Verdict, PUBLISHED_APP_LIMIT};
use entrasync_model::ObjectClass;

/// Application permissions accepted per endpoint (graph-protocol.md §1.1, least privileged first).
pub fn accepted_roles(class: ObjectClass, delta: bool) -> &'static [&'static str] {
    match (class, delta) {
        (ObjectClass::User, _) => {
            &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"]
        }
        (ObjectClass::Group, _) => &[
            "GroupMember.Read.All",
            "Group.Read.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        // devices/delta documents Device.Read.All only; the device list also takes the broader ones.
        (ObjectClass::Device, true) => &["Device.Read.All"],
        (ObjectClass::Device, false) => {
            &["Device.Read.All", "Device.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"]
        }
    }
}

pub struct GraphRequest {
    pub tenant: Arc<Tenant>,
    pub claims: AccessClaims,
    /// `scheme://host[/cloud-host]`: links are built on it so clients follow them verbatim.
    pub link_root: String,
    pub endpoint: String,
    pub body_mode: BodyMode,
    pub sync_reset: bool,
    pub throttle_percentage: Option<f64>,
    pub resource_units: u64,
}

/// The cloud the request addressed: a path prefix naming its Graph host, else the Host header.
fn request_cloud(req: &HttpRequest) -> Result<(SimCloud, String), GraphError> {
    let info = req.connection_info();
    let base = format!("{}://{}", info.scheme(), info.host());
    if let Some(prefix) = req.match_info().get("cloud") {
        let cloud = SimCloud::from_graph_host(prefix).ok_or_else(|| {
            GraphError::new(
                StatusCode::NOT_FOUND,
                "UnknownCloud",
                format!("'{prefix}' is not a Graph host this emulator serves."),
            )
        })?;
        return Ok((cloud, format!("{base}/{prefix}")));
    }
    Ok((SimCloud::from_graph_host(info.host()).unwrap_or_default(), base))
}

pub struct Cost {
    pub base: u64,
    pub has_select: bool,
    pub small_top: bool,
}

/// Runs the common steps; `Err` is the response to send instead of the handler's.
pub async fn begin(
    req: &HttpRequest,
    state: &SimState,
    class: ObjectClass,
    delta: bool,
    endpoint: &str,
    cost: Cost,
) -> Result<GraphRequest, HttpResponse> {
    begin_with_roles(req, state, accepted_roles(class, delta), endpoint, cost).await
}

/// [`begin`] for an endpoint outside the directory classes, which names the roles it accepts.
pub async fn begin_with_roles(
    req: &HttpRequest,
    state: &SimState,
    roles: &[&str],
    endpoint: &str,
    cost: Cost,
) -> Result<GraphRequest, HttpResponse> {
    let now = state.clock.now();
    state.counters.request(endpoint);
    let fail = |err: GraphError| {
        state.counters.response(err.status.as_u16(), 0);
        respond::error(req, &err, now)
    };
    let (cloud, link_root) = request_cloud(req).map_err(fail)?;
    let claims = state.identity.authorize(req, roles).map_err(fail)?;
    let invalid_audience = || {
        GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        )
    };
    let tenant = state.tenant(&claims.tenant_id).map_err(|_| fail(invalid_audience()))?;
    // Tokens from one national cloud are not accepted by another.
    if tenant.cloud != cloud {
        return Err(fail(invalid_audience()));
    }
    tenant.counters.request(endpoint);
    let tenant_fail = |response: HttpResponse, throttled: bool| {
        tenant.counters.response(response.status().as_u16(), 0);
        tenant.counters.fault(throttled);
        state.counters.response(response.status().as_u16(), 0);
        state.counters.fault(throttled);
        response
    };

    let mut request = GraphRequest {
        tenant: tenant.clone(),
        claims,
        link_root,
        endpoint: endpoint.to_owned(),
        body_mode: BodyMode::Normal,
        sync_reset: false,
        throttle_percentage: None,
        resource_units: request_cost(cost.base, cost.has_select, cost.small_top),
    };
    let throttle_scope = format!("Tenant_Application/ReadWrite/{}/{}", request.claims.app_id, tenant.id);
    for fault in state.faults.fire(&tenant.id, req.path(), now, rand::random::<f64>) {
        match fault {
            FaultKind::Slow { delay_ms } => {
                actix_web::rt::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            }
            FaultKind::ThrottleHeaders { limit_percentage } => request.throttle_percentage = Some(limit_percentage),
            FaultKind::Throttle { retry_after } => {
                let mut response = respond::too_many_requests(req, &retry_after, &throttle_scope, now);
                insert_header(&mut response, "x-ms-resource-unit", &request.resource_units.to_string());
                return Err(tenant_fail(response, true));
            }
            FaultKind::ServiceUnavailable { retry_after } => {
                return Err(tenant_fail(
                    respond::unavailable(req, StatusCode::SERVICE_UNAVAILABLE, retry_after.as_ref(), now),
                    false,
                ))
            }
            FaultKind::GatewayTimeout => {
                return Err(tenant_fail(respond::unavailable(req, StatusCode::GATEWAY_TIMEOUT, None, now), false))
            }
            FaultKind::Forbidden => {
                return Err(tenant_fail(respond::error(req, &crate::faults::forbidden(), now), false));
            }
            FaultKind::DropConnection => request.body_mode = BodyMode::Dropped,
            FaultKind::MalformedJson => request.body_mode = BodyMode::Malformed,
            FaultKind::SyncReset => request.sync_reset = true,
        }
    }
    if let Some(limits) = state.resource_limits() {
        let users = crate::state::read(&tenant.directory).live_count(ObjectClass::User);
        let tenant_limit = limits.app_tenant_per_10s.unwrap_or_else(|| published_app_tenant_limit(users));
        let app_limit = limits.app_per_20s.unwrap_or(PUBLISHED_APP_LIMIT);
        match state.limiter.charge(
            &request.claims.app_id,
            &tenant.id,
            request.resource_units,
            now.timestamp_millis(),
            tenant_limit,
            app_limit,
        ) {
            Verdict::Throttled { scope, retry_after_secs } => {
                let mut response = respond::too_many_requests(req, &RetryAfter::Seconds(retry_after_secs), &scope, now);
                insert_header(&mut response, "x-ms-resource-unit", &request.resource_units.to_string());
                return Err(tenant_fail(response, true));
            }
            Verdict::Allowed { used_fraction } if used_fraction > 0.8 => {
                request.throttle_percentage = Some(request.throttle_percentage.unwrap_or(0.0).max(used_fraction));
            }
            Verdict::Allowed { .. } => {}
        }
    }
    Ok(request)
}

pub fn insert_header(response: &mut HttpResponse, name: &'static str, value: &str) {
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(value) {
        response.headers_mut().insert(actix_web::http::header::HeaderName::from_static(name), v);
    }
}

impl GraphRequest {
    /// Sends a successful body with the throttle headers, applying body faults, and counts it.
    pub fn finish(
        &self,
        state: &SimState,
        req: &HttpRequest,
        body: Vec<u8>,
        objects: usize,
        extra: &[(&'static str, String)],
    ) -> HttpResponse {
        let mut builder = respond::ok_builder(req);
        builder.insert_header(("x-ms-resource-unit", self.resource_units.to_string()));
        if let Some(p) = self.throttle_percentage {
            builder.insert_header(("x-ms-throttle-limit-percentage", format!("{p:.1}")));
        }
        for (name, value) in extra {
            builder.insert_header((*name, value.clone()));
        }
        if self.body_mode != BodyMode::Normal {
            self.tenant.counters.fault(false);
            state.counters.fault(false);
        }
        self.tenant.counters.response(200, objects);
        state.counters.response(200, objects);
        respond::send(builder, body, self.body_mode)
    }

    /// Sends a Graph error after the common steps succeeded, and counts it.
    pub fn fail(&self, state: &SimState, req: &HttpRequest, err: &GraphError) -> HttpResponse {
        self.tenant.counters.response(err.status.as_u16(), 0);
        state.counters.response(err.status.as_u16(), 0);
        respond::error(req, err, state.clock.now())
    }
}
