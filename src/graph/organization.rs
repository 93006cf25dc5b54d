//! `GET /v1.0/organization`: the directory's id, display name and verified domains, which the tenant list
//! shows. Application permissions: Organization.Read.All (least privileged), Directory.Read.All,
//! Organization.ReadWrite.All, Directory.ReadWrite.All (microsoft-graph-docs-contrib@58e5ce0f
//! `api-reference/v1.0/includes/permissions/organization-get-permissions.md`).

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::client::{GraphClient, GraphErrorBody, GraphTenant, RequestPriority, RequestStats};
use super::discovery::lookup_policy;
use super::error::GraphError;

/// The permissions that allow reading `/organization`, least privileged first.
pub const ORGANIZATION_PERMISSIONS: &[&str] = &["Organization.Read.All", "Directory.Read.All"];

/// The directory as Graph describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub id: Uuid,
    pub display_name: String,
    /// Names of the verified domains, as Graph lists them.
    pub verified_domains: Vec<String>,
    /// The domain marked `isDefault`.
    pub default_domain: Option<String>,
}

/// Reads the tenant's organization object. A 403 is [`GraphError::ReadDenied`] naming the permissions.
pub async fn organization(client: &GraphClient, tenant: &GraphTenant) -> Result<Organization, GraphError> {
    let url = format!("{}/v1.0/organization?$select=id,displayName,verifiedDomains", tenant.cloud.graph_url());
    let policy = lookup_policy(&client.options().retry);
    let mut stats = RequestStats::default();
    let answer = client.get_answer(tenant, &url, None, RequestPriority::Normal, &policy, &mut stats).await?;
    match answer.status {
        StatusCode::OK => parse(&url, &answer.body),
        StatusCode::FORBIDDEN => Err(GraphError::ReadDenied {
            client_id: tenant.credentials.client_id.clone(),
            tenant_id: tenant.tenant_id.clone(),
            resource: "the organization (display name, verified domains)",
            permissions: ORGANIZATION_PERMISSIONS,
        }),
        status => {
            let body = GraphErrorBody::parse(&answer.body);
            Err(GraphError::UnexpectedStatus { status: status.as_u16(), code: body.code, message: body.message })
        }
    }
}

#[derive(Deserialize)]
struct Collection {
    #[serde(default)]
    value: Vec<Wire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    verified_domains: Vec<WireDomain>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDomain {
    #[serde(default)]
    name: String,
    #[serde(default)]
    is_default: bool,
}

fn parse(url: &str, body: &[u8]) -> Result<Organization, GraphError> {
    let malformed = |detail: String| GraphError::MalformedResponse { url: url.to_owned(), detail };
    let collection: Collection = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    // A tenant has exactly one organization object.
    let wire = collection.value.into_iter().next().ok_or_else(|| malformed("no organization in value".into()))?;
    let id =
        Uuid::parse_str(&wire.id).map_err(|_| malformed(format!("organization id {:?} is not a GUID", wire.id)))?;
    let domains: Vec<WireDomain> = wire.verified_domains.into_iter().filter(|d| !d.name.is_empty()).collect();
    Ok(Organization {
        id,
        display_name: wire.display_name.unwrap_or_default(),
        default_domain: domains.iter().find(|d| d.is_default).map(|d| d.name.clone()),
        verified_domains: domains.into_iter().map(|d| d.name).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_sample_parses() {
        // The response sample of organization-list.md (shortened).
        let body = r#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#organization","value":[{
            "id":"84841066-274d-4ec0-a5c1-276be684bdd3","displayName":"Contoso","countryLetterCode":"NL",
            "verifiedDomains":[{"capabilities":"Email, OfficeCommunicationsOnline","isDefault":true,
            "isInitial":true,"name":"Contoso.onmicrosoft.com","type":"Managed"}]}]}"#;
        let org = parse("u", body.as_bytes()).expect("parse");
        assert_eq!(org.display_name, "Contoso");
        assert_eq!(org.verified_domains, ["Contoso.onmicrosoft.com"]);
        assert_eq!(org.default_domain.as_deref(), Some("Contoso.onmicrosoft.com"));
    }

    #[test]
    fn odd_bodies_are_typed_errors() {
        for body in ["", "{}", r#"{"value":[]}"#, r#"{"value":[{"id":"nope"}]}"#, r#"{"value":{}}"#] {
            assert!(matches!(parse("u", body.as_bytes()), Err(GraphError::MalformedResponse { .. })), "{body}");
        }
    }
}
