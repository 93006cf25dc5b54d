//! Admin consent for the app's application permissions: the URL an administrator opens, and the
//! outcome the identity platform reports on the redirect. Protocol: the admin consent endpoint of the
//! client-credentials flow, `GET {login host}/{tenant}/adminconsent?client_id&state&redirect_uri`; success
//! `?admin_consent=True&tenant={tid}&state=…`, refusal `?error=permission_denied&error_description=…`
//! (entra-docs@03033ebd `docs/identity-platform/v2-oauth2-client-creds-grant-flow.md`, "Request the
//! permissions from a directory admin"). It grants the permissions configured on the app registration,
//! which is what app-only access needs; the v2 endpoint would need `scope={graph}/.default` to do the same.

use std::borrow::Borrow;

use url::Url;
use uuid::Uuid;

use super::error::GraphError;
use crate::model::Cloud;

/// The tenant segment when the directory is not known yet: any work or school account's admin.
pub const ANY_ORGANIZATION: &str = "organizations";

/// The admin-consent URL for `client_id` in `tenant` (`None`: whichever directory the admin signs in to,
/// [`ANY_ORGANIZATION`]). Fails only for a custom cloud whose login URL is not a URL.
pub fn admin_consent_url(
    cloud: &Cloud,
    tenant: Option<&str>,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
) -> Result<Url, GraphError> {
    let mut url = Url::parse(cloud.login_url())
        .map_err(|e| anyhow::anyhow!("the login URL of cloud {} is not a URL: {e}", cloud.name()))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("the login URL of cloud {} cannot take a path", cloud.name()))?
        .pop_if_empty()
        .push(tenant.unwrap_or(ANY_ORGANIZATION))
        .push("adminconsent");
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state);
    Ok(url)
}

/// What the consent redirect reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentOutcome {
    /// The admin of directory `tenant` granted the app's permissions.
    Granted { tenant: Uuid },
    /// Declined or failed: the identity platform's `error` and `error_description`.
    Refused { error: String, description: String },
}

/// The `error` reported for a redirect that carries neither documented outcome (forged or truncated).
pub const MALFORMED_CONSENT_ERROR: &str = "invalid_consent_response";

impl ConsentOutcome {
    /// Reads the redirect's query pairs (`url.query_pairs()`, `&Vec<(String, String)>`, a map's iterator…).
    /// An `error` wins over anything else; `admin_consent` is compared case-insensitively (the
    /// documentation shows `True`). A query with neither outcome, or a tenant that is not a GUID, is a
    /// refusal with error [`MALFORMED_CONSENT_ERROR`]: nothing was granted that entrasync can rely on.
    pub fn from_query<I, P, K, V>(params: I) -> ConsentOutcome
    where
        I: IntoIterator<Item = P>,
        P: Borrow<(K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (mut admin_consent, mut tenant, mut error, mut description) = (None, None, None, None);
        for pair in params {
            let (key, value) = pair.borrow();
            let value = value.as_ref().to_owned();
            match key.as_ref() {
                "admin_consent" => admin_consent = Some(value),
                "tenant" => tenant = Some(value),
                "error" => error = Some(value),
                "error_description" => description = Some(value),
                _ => {}
            }
        }
        if let Some(error) = error.filter(|e| !e.is_empty()) {
            return ConsentOutcome::Refused { error, description: description.unwrap_or_default() };
        }
        let malformed =
            |description: String| ConsentOutcome::Refused { error: MALFORMED_CONSENT_ERROR.to_owned(), description };
        match (admin_consent, tenant) {
            (Some(flag), Some(tenant)) if flag.eq_ignore_ascii_case("true") => match Uuid::parse_str(&tenant) {
                Ok(tenant) => ConsentOutcome::Granted { tenant },
                Err(_) => {
                    malformed(format!("the consent redirect names tenant {tenant:?}, which is not a directory id"))
                }
            },
            _ => malformed("the consent redirect carries neither admin_consent=True with a tenant nor an error".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_tenant_or_any_organization() {
        let url = admin_consent_url(&Cloud::UsGov, None, "app", "https://es.example/cb?x=1", "s t").expect("url");
        assert_eq!(
            url.as_str(),
            "https://login.microsoftonline.us/organizations/adminconsent?client_id=app&redirect_uri=https%3A%2F%2Fes.example%2Fcb%3Fx%3D1&state=s+t"
        );
        let custom = Cloud::Custom { login_url: "http://127.0.0.1:9/".into(), graph_url: "x".into() };
        let url = admin_consent_url(&custom, Some("contoso.com"), "a", "r", "s").expect("url");
        assert_eq!(url.path(), "/contoso.com/adminconsent");
        let broken = Cloud::Custom { login_url: "not a url".into(), graph_url: "x".into() };
        assert!(admin_consent_url(&broken, None, "a", "r", "s").is_err());
    }

    #[test]
    fn the_documented_redirects_parse() {
        let tid = "a8990e1f-ff32-408a-9f8e-78d3b9139b95";
        let granted = [("tenant", tid), ("state", "12345"), ("admin_consent", "True")];
        assert_eq!(
            ConsentOutcome::from_query(granted),
            ConsentOutcome::Granted { tenant: Uuid::parse_str(tid).expect("uuid") }
        );
        let refused: Vec<(String, String)> = vec![
            ("error".into(), "permission_denied".into()),
            ("error_description".into(), "The admin canceled the request".into()),
        ];
        assert_eq!(
            ConsentOutcome::from_query(&refused),
            ConsentOutcome::Refused {
                error: "permission_denied".into(),
                description: "The admin canceled the request".into()
            }
        );
        let url = Url::parse(&format!("http://x/cb?admin_consent=true&tenant={tid}")).expect("url");
        assert!(matches!(ConsentOutcome::from_query(url.query_pairs()), ConsentOutcome::Granted { .. }));
        for odd in [
            vec![("state", "x")],
            vec![("admin_consent", "False"), ("tenant", tid)],
            vec![("admin_consent", "True"), ("tenant", "contoso")],
        ] {
            match ConsentOutcome::from_query(&odd) {
                ConsentOutcome::Refused { error, .. } => assert_eq!(error, MALFORMED_CONSENT_ERROR, "{odd:?}"),
                other => panic!("{odd:?}: {other:?}"),
            }
        }
    }
}
