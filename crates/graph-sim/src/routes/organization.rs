//! `GET /v1.0/organization`: the tenant's one organization object, shaped like the sample of
//! microsoft-graph-docs-contrib@02b4cba0 `api-reference/v1.0/api/organization-list.md` (verified domains
//! with `capabilities`, `isDefault`, `isInitial`, `name`, `type`). Application permissions per
//! contrib@58e5ce0f `includes/permissions/organization-get-permissions.md`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use crate::error::GraphError;
use crate::query::{bad_request, GraphQuery};
use crate::routes::context::{begin_with_roles, Cost};
use crate::routes::respond::envelope;
use crate::state::{SimState, Tenant};

/// Least privileged first.
pub const ORGANIZATION_ROLES: &[&str] =
    &["Organization.Read.All", "Directory.Read.All", "Organization.ReadWrite.All", "Directory.ReadWrite.All"];

pub async fn organization(req: HttpRequest, state: web::Data<SimState>) -> HttpResponse {
    let q = GraphQuery::parse(req.query_string());
    let cost = Cost { base: 1, has_select: q.select.is_some(), small_top: false };
    let graph = match begin_with_roles(&req, &state, ORGANIZATION_ROLES, "organization", cost).await {
        Ok(g) => g,
        Err(response) => return response,
    };
    let domains = state.identity.domains(&graph.tenant.id);
    let object = organization_object(&graph.tenant, &domains);
    match select(object, q.select.as_deref()) {
        Ok((object, names)) => {
            let context = match names {
                Some(names) => format!("{}/v1.0/$metadata#organization({})", graph.link_root, names.join(",")),
                None => format!("{}/v1.0/$metadata#organization", graph.link_root),
            };
            let value = serde_json::to_vec(&Value::Object(object)).unwrap_or_default();
            graph.finish(&state, &req, envelope(&context, None, &value), 1, &[])
        }
        Err(e) => graph.fail(&state, &req, &e),
    }
}

/// The organization object. The tenant's primary domain is its initial and default verified domain;
/// further domains of the identity platform follow, neither initial nor default.
fn organization_object(tenant: &Tenant, domains: &[String]) -> Map<String, Value> {
    let mut verified = vec![verified_domain(&tenant.domain, true)];
    verified
        .extend(domains.iter().filter(|d| !d.eq_ignore_ascii_case(&tenant.domain)).map(|d| verified_domain(d, false)));
    let object = json!({
        "id": tenant.id,
        "deletedDateTime": null,
        "businessPhones": [],
        "city": null,
        "country": null,
        "countryLetterCode": "US",
        "displayName": tenant.display_name,
        "marketingNotificationEmails": [],
        "onPremisesLastSyncDateTime": null,
        "onPremisesSyncEnabled": null,
        "postalCode": null,
        "preferredLanguage": "en",
        "securityComplianceNotificationMails": [],
        "securityComplianceNotificationPhones": [],
        "state": null,
        "street": null,
        "technicalNotificationMails": [],
        "tenantType": "AAD",
        "assignedPlans": [],
        "provisionedPlans": [],
        "verifiedDomains": verified,
    });
    match object {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn verified_domain(name: &str, primary: bool) -> Value {
    json!({
        "capabilities": "Email, OfficeCommunicationsOnline",
        "isDefault": primary,
        "isInitial": primary,
        "name": name,
        "type": "Managed",
    })
}

/// The selected properties, and their names for `@odata.context` when `$select` was given.
type Selected = (Map<String, Value>, Option<Vec<String>>);

/// Applies `$select` (names case-insensitive, `id` always returned); an unknown name is a 400 as on Graph.
fn select(object: Map<String, Value>, select: Option<&str>) -> Result<Selected, GraphError> {
    let Some(select) = select else { return Ok((object, None)) };
    let mut names = Vec::new();
    for wanted in select.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let name = object.keys().find(|k| k.eq_ignore_ascii_case(wanted)).ok_or_else(|| {
            bad_request(
                "Request_BadRequest",
                format!("Could not find a property named '{wanted}' on type 'microsoft.graph.organization'."),
            )
        })?;
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let mut selected = Map::new();
    for (key, value) in object {
        if key == "id" || names.contains(&key) {
            selected.insert(key, value);
        }
    }
    Ok((selected, Some(names)))
}
