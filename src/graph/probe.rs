//! Test connection: acquire a token, read its `roles`, and call Graph once per permission set (users;
//! groups with membership; devices), so an operator learns per set whether syncing will work and what to
//! do next. Answers every outcome as a report; never an error.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::client::{GraphClient, GraphErrorBody, GraphTenant, RequestPriority, RequestStats};
use super::discovery::lookup_policy;
use super::error::GraphError;
use super::retry::RetryPolicy;
use crate::model::{ObjectClass, PermissionStatus};

/// The outcome of a token check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenCheck {
    pub ok: bool,
    /// The application permissions the token carries (its `roles` claim).
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome for one permission set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionCheck {
    pub status: PermissionStatus,
    /// Least-privileged permissions to grant (`needs_additional_permissions` only).
    pub missing: Vec<String>,
    /// What the operator does next, in one sentence.
    pub next_step: String,
    /// What Graph or the identity platform said, when it helps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A test connection's report: the token, then users, groups (with membership) and devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionReport {
    pub token: TokenCheck,
    pub users: PermissionCheck,
    pub groups: PermissionCheck,
    pub devices: PermissionCheck,
}

impl ConnectionReport {
    /// The tenant's status: the worst of the three sets.
    pub fn overall(&self) -> PermissionStatus {
        self.checks()
            .iter()
            .fold(PermissionStatus::Granted, |acc, (_, check)| PermissionStatus::worst(acc, check.status))
    }

    /// The three sets with the class each one syncs.
    pub fn checks(&self) -> [(ObjectClass, &PermissionCheck); 3] {
        [(ObjectClass::User, &self.users), (ObjectClass::Group, &self.groups), (ObjectClass::Device, &self.devices)]
    }
}

/// Application permissions the sync's delta queries accept per class, least privileged first
/// (graph-protocol.md §1.1 [PERM]: devices/delta documents Device.Read.All only, although the device
/// list also takes the Directory permissions).
pub fn accepted_permissions(class: ObjectClass) -> &'static [&'static str] {
    match class {
        ObjectClass::User => &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"],
        ObjectClass::Group => &[
            "GroupMember.Read.All",
            "Group.Read.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        ObjectClass::Device => &["Device.Read.All"],
    }
}

/// Runs the test connection for `tenant`. The token is fetched anew (and cached), so permissions
/// consented to a minute ago count.
pub async fn test_connection(client: &GraphClient, tenant: &GraphTenant) -> ConnectionReport {
    let policy = lookup_policy(&client.options().retry);
    let token = match client.fresh_token(tenant, &policy).await {
        Ok(token) => token,
        Err(error) => {
            tracing::info!(tenant_id = %tenant.tenant_id, %error, "test connection: no token");
            return token_failed(&error);
        }
    };
    // Read, not verified: the token came from the identity platform over TLS a moment ago.
    let roles = roles_claim(token.secret.expose_secret());
    drop(token);
    let (users, groups, devices) = tokio::join!(
        check(client, tenant, &policy, roles.as_deref(), ObjectClass::User),
        check(client, tenant, &policy, roles.as_deref(), ObjectClass::Group),
        check(client, tenant, &policy, roles.as_deref(), ObjectClass::Device),
    );
    let token = TokenCheck {
        ok: true,
        error: roles.is_none().then(|| "the access token is not a readable JWT: its roles are unknown".to_owned()),
        roles: roles.unwrap_or_default(),
    };
    let report = ConnectionReport { token, users, groups, devices };
    tracing::info!(
        tenant_id = %tenant.tenant_id,
        users = %report.users.status,
        groups = %report.groups.status,
        devices = %report.devices.status,
        "test connection finished"
    );
    report
}

/// Every set fails with the token: the error names the AADSTS code and the fix.
fn token_failed(error: &GraphError) -> ConnectionReport {
    let check = PermissionCheck {
        status: PermissionStatus::Error,
        missing: Vec::new(),
        next_step: error.to_string(),
        detail: Some("no access token, so Graph was not called".to_owned()),
    };
    ConnectionReport {
        token: TokenCheck { ok: false, roles: Vec::new(), error: Some(error.to_string()) },
        users: check.clone(),
        groups: check.clone(),
        devices: check,
    }
}

/// The `roles` claim of a JWT access token; `Some(empty)` when the claim is absent (no consent),
/// `None` when the token cannot be read.
fn roles_claim(token: &str) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        roles: Vec<String>,
    }
    let payload = token.split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Claims>(&json).ok().map(|c| c.roles)
}

/// What Graph said to one request of a set.
enum Reply {
    /// 200 with the id of the first object, if any.
    Ok(Option<String>),
    /// A refusal with its status, code and message.
    Refused(StatusCode, GraphErrorBody),
    /// No answer worth classifying (transport, 401 twice, budget).
    Failed(GraphError),
}

async fn get(
    client: &GraphClient,
    tenant: &GraphTenant,
    policy: &RetryPolicy,
    class: ObjectClass,
    path: &str,
) -> Reply {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        value: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        id: Option<String>,
    }
    let url = format!("{}/v1.0/{path}", tenant.cloud.graph_url());
    let mut stats = RequestStats::default();
    match client.get_answer(tenant, &url, Some(class), RequestPriority::Normal, policy, &mut stats).await {
        Ok(answer) if answer.status == StatusCode::OK => {
            let first = serde_json::from_slice::<Page>(&answer.body).ok().and_then(|p| p.value.into_iter().next());
            Reply::Ok(first.and_then(|item| item.id))
        }
        Ok(answer) => Reply::Refused(answer.status, GraphErrorBody::parse(&answer.body)),
        Err(error) => Reply::Failed(error),
    }
}

/// Calls Graph for one set: the collection, and for groups the members of the first group.
async fn call(client: &GraphClient, tenant: &GraphTenant, policy: &RetryPolicy, class: ObjectClass) -> Reply {
    let collection = class.graph_collection();
    let reply = get(client, tenant, policy, class, &format!("{collection}?$top=1&$select=id")).await;
    match (class, reply) {
        (ObjectClass::Group, Reply::Ok(Some(group))) => {
            let path = format!("groups/{}/members?$top=1&$select=id", urlencoding_segment(&group));
            get(client, tenant, policy, class, &path).await
        }
        (_, reply) => reply,
    }
}

/// Graph ids are GUIDs; anything else is escaped rather than trusted into the path.
fn urlencoding_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

async fn check(
    client: &GraphClient,
    tenant: &GraphTenant,
    policy: &RetryPolicy,
    roles: Option<&[String]>,
    class: ObjectClass,
) -> PermissionCheck {
    let accepted = accepted_permissions(class);
    let held = roles.map(|roles| roles.iter().any(|r| accepted.contains(&r.as_str())));
    let reply = call(client, tenant, policy, class).await;
    classify(tenant, class, held, reply)
}

/// `held`: the token carries an accepted role (`None`: unknown, Graph decides).
fn classify(tenant: &GraphTenant, class: ObjectClass, held: Option<bool>, reply: Reply) -> PermissionCheck {
    let what = set_name(class);
    let least = accepted_permissions(class)[0];
    let client_id = &tenant.credentials.client_id;
    let refused_detail = |status: StatusCode, body: &GraphErrorBody| {
        let mut text = format!("Graph answered {}", status.as_u16());
        for part in [&body.code, &body.message].into_iter().filter(|p| !p.is_empty()) {
            text.push(' ');
            text.push_str(part);
        }
        Some(text)
    };
    let needs_consent = |detail: Option<String>| PermissionCheck {
        status: PermissionStatus::NeedsAdditionalPermissions,
        missing: vec![least.to_owned()],
        next_step: format!(
            "grant admin consent for the application permission {least} to app {client_id} in tenant {} \
             (Entra admin center: App registrations, API permissions, Grant admin consent), then test again",
            tenant.tenant_id
        ),
        detail,
    };
    match (held, reply) {
        (Some(false), Reply::Ok(_)) => needs_consent(Some(format!(
            "Graph answered the list, but the sync's delta query for {what} accepts only {}",
            accepted_permissions(class).join(", ")
        ))),
        (Some(false), Reply::Refused(status, body)) => needs_consent(refused_detail(status, &body)),
        (None, Reply::Refused(StatusCode::FORBIDDEN, body)) => {
            needs_consent(refused_detail(StatusCode::FORBIDDEN, &body))
        }
        (_, Reply::Ok(_)) => PermissionCheck {
            status: PermissionStatus::Granted,
            missing: Vec::new(),
            next_step: format!("none: {what} can be synced"),
            detail: None,
        },
        (_, Reply::Refused(StatusCode::FORBIDDEN, body)) => PermissionCheck {
            status: PermissionStatus::GrantedNeedsSettings,
            missing: Vec::new(),
            next_step: format!(
                "the token carries a permission for {what} but Graph refused it: if consent was granted in the last \
                 minutes, wait for it to take effect and test again; otherwise check the tenant's Conditional Access \
                 policies for workload identities and that the app's enterprise application (service principal) is \
                 enabled"
            ),
            detail: refused_detail(StatusCode::FORBIDDEN, &body),
        },
        (_, Reply::Refused(status, body)) => PermissionCheck {
            status: PermissionStatus::Error,
            missing: Vec::new(),
            next_step: format!("Graph could not list {what}: test again later, and report it if it persists"),
            detail: refused_detail(status, &body),
        },
        (_, Reply::Failed(error)) => PermissionCheck {
            status: PermissionStatus::Error,
            missing: if held == Some(false) { vec![least.to_owned()] } else { Vec::new() },
            next_step: match &error {
                GraphError::Unauthorized { .. } => error.to_string(),
                _ => format!("Graph did not answer for {what}: check the network path to Graph, then test again"),
            },
            detail: Some(error.to_string()),
        },
    }
}

fn set_name(class: ObjectClass) -> &'static str {
    match class {
        ObjectClass::User => "users",
        ObjectClass::Group => "groups and their members",
        ObjectClass::Device => "devices",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn roles_come_from_the_payload_and_odd_tokens_are_unknown() {
        assert_eq!(roles_claim(&jwt(r#"{"roles":["User.Read.All"]}"#)), Some(vec!["User.Read.All".to_owned()]));
        assert_eq!(roles_claim(&jwt(r#"{"tid":"x"}"#)), Some(vec![]));
        assert_eq!(roles_claim(&jwt(r#"{"roles":"x"}"#)), None);
        assert_eq!(roles_claim("opaque"), None);
        assert_eq!(roles_claim("a.!!!.c"), None);
    }

    #[test]
    fn overall_is_the_worst_set() {
        let check = |status| PermissionCheck { status, missing: vec![], next_step: String::new(), detail: None };
        let report = ConnectionReport {
            token: TokenCheck { ok: true, roles: vec![], error: None },
            users: check(PermissionStatus::Granted),
            groups: check(PermissionStatus::GrantedNeedsSettings),
            devices: check(PermissionStatus::Granted),
        };
        assert_eq!(report.overall(), PermissionStatus::GrantedNeedsSettings);
    }
}
