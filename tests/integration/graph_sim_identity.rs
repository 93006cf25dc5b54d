//! The emulator's identity platform over real HTTP: token endpoint (secret, HTTP Basic, certificate
//! assertions), AADSTS errors, Bearer validation, admin consent, discovery documents, admin API, HTTPS.

use std::sync::OnceLock;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use graph_sim::clock::Clock;
use graph_sim::identity::{self, Identity, NewApp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha1::Digest as _;

const TENANT: &str = "0f5e1c6a-3b7d-4c2e-9a18-5d6b7e8f9a01";
const DOMAIN: &str = "contoso.onmicrosoft.com";
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const READ_ROLES: [&str; 2] = ["User.Read.All", "Group.Read.All"];

/// An emulator serving only the identity platform, plus `/v1.0/users` guarded by `authorize`.
struct Sim {
    base: String,
    identity: web::Data<Identity>,
    clock: Clock,
}

/// Stands in for a Graph endpoint: what `authorize` decides, rendered as Graph renders it.
async fn guarded(req: HttpRequest, identity: web::Data<Identity>, clock: web::Data<Clock>) -> HttpResponse {
    match identity.authorize(&req, &["User.Read.All", "Directory.Read.All"]) {
        Ok(claims) => {
            HttpResponse::Ok().json(json!({"tid": claims.tenant_id, "appid": claims.app_id, "roles": claims.roles}))
        }
        Err(e) => {
            let mut response = e.respond(&req, clock.now());
            if e.status == actix_web::http::StatusCode::UNAUTHORIZED {
                let value = identity::www_authenticate(&req);
                if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&value) {
                    response.headers_mut().insert(actix_web::http::header::WWW_AUTHENTICATE, v);
                }
            }
            response
        }
    }
}

async fn start_with(tls: Option<rustls::ServerConfig>) -> Sim {
    let clock = Clock::default();
    let identity = web::Data::new(Identity::new(clock.clone()));
    identity.add_tenant(TENANT, DOMAIN);
    let (data, clock_data) = (identity.clone(), web::Data::new(clock.clone()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(clock_data.clone())
            .configure(identity::configure)
            .route("/v1.0/users", web::get().to(guarded))
    })
    .workers(1)
    .disable_signals();
    let (server, scheme) = match tls {
        Some(config) => (server.bind_rustls_0_23(("127.0.0.1", 0), config).expect("bind tls"), "https"),
        None => (server.bind(("127.0.0.1", 0)).expect("bind"), "http"),
    };
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    let host = if scheme == "https" { "localhost" } else { "127.0.0.1" };
    Sim { base: format!("{scheme}://{host}:{port}"), identity, clock }
}

async fn start() -> Sim {
    start_with(None).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

impl Sim {
    fn app_with_secret(&self, secret: &str, consented: &[&str]) -> String {
        let info = self
            .identity
            .register_app(NewApp { secret: Some(secret.into()), roles: roles(&READ_ROLES), ..Default::default() })
            .expect("register app");
        if !consented.is_empty() {
            self.identity.grant_consent(TENANT, &info.app_id, &roles(consented)).expect("consent");
        }
        info.app_id
    }

    fn app_with_certificate(&self, cert: &TestCert) -> String {
        let info = self
            .identity
            .register_app(NewApp { certificate_pem: Some(cert.pem.clone()), ..Default::default() })
            .expect("register app");
        self.identity.grant_consent(TENANT, &info.app_id, &roles(&READ_ROLES)).expect("consent");
        info.app_id
    }

    fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base)
    }

    async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = client().post(self.token_url(tenant)).form(form).send().await.expect("token request");
        (response.status(), response.json().await.expect("token response is JSON"))
    }

    async fn secret_token(&self, app_id: &str, secret: &str) -> String {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", app_id),
            ("client_secret", secret),
            ("scope", GRAPH_SCOPE),
        ];
        let (status, body) = self.token(TENANT, &form).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    async fn graph_get(&self, bearer: Option<&str>) -> reqwest::Response {
        let mut request = client().get(format!("{}/v1.0/users", self.base));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("graph request")
    }
}

fn roles(names: &[&str]) -> Vec<String> {
    names.iter().map(std::string::ToString::to_string).collect()
}

/// The payload of a JWT, unverified (the test reads what the emulator put there).
fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// An RSA key and its self-signed certificate, as an app owner would upload.
struct TestCert {
    key_pkcs1: Vec<u8>,
    pem: String,
    der: Vec<u8>,
}

fn make_cert() -> TestCert {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("rsa key");
    let pkcs8 = key.to_pkcs8_der().expect("pkcs8");
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .expect("rcgen key");
    let cert = rcgen::CertificateParams::new(vec!["entrasync-test".to_owned()])
        .expect("params")
        .self_signed(&key_pair)
        .expect("self-signed");
    TestCert {
        key_pkcs1: key.to_pkcs1_der().expect("pkcs1").as_bytes().to_vec(),
        pem: cert.pem(),
        der: cert.der().to_vec(),
    }
}

/// Two certificates per test binary: RSA key generation is slow.
fn cert(n: usize) -> &'static TestCert {
    static CERTS: OnceLock<[TestCert; 2]> = OnceLock::new();
    &CERTS.get_or_init(|| [make_cert(), make_cert()])[n]
}

enum Thumbprint {
    Sha1Standard,
    Sha1UrlSafe,
    Sha256,
}

fn assertion(signer: &TestCert, named: &TestCert, alg: Algorithm, thumb: Thumbprint, claims: Value) -> String {
    let mut header = Header::new(alg);
    match thumb {
        Thumbprint::Sha1Standard => header.x5t = Some(STANDARD.encode(sha1::Sha1::digest(&named.der))),
        Thumbprint::Sha1UrlSafe => header.x5t = Some(URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&named.der))),
        Thumbprint::Sha256 => header.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&named.der))),
    }
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(&signer.key_pkcs1)).expect("sign assertion")
}

fn assertion_claims(sim: &Sim, app_id: &str, aud: &str) -> Value {
    let now = sim.clock.now().timestamp();
    json!({"aud": aud, "iss": app_id, "sub": app_id, "jti": uuid::Uuid::new_v4().to_string(),
           "nbf": now, "iat": now, "exp": now + 600})
}

fn assertion_form<'a>(app_id: &'a str, assertion: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("grant_type", "client_credentials"),
        ("client_id", app_id),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion),
        ("scope", GRAPH_SCOPE),
    ]
}

/// Checks the AADSTS error shape and returns the body.
fn assert_aadsts(status: StatusCode, body: &Value, want_status: StatusCode, error: &str, code: u64) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().expect("error_description");
    assert!(description.starts_with(&format!("AADSTS{code}: ")), "{description}");
    assert!(description.contains("\r\nTrace ID: ") && description.contains("\r\nCorrelation ID: "), "{description}");
    assert!(description.contains("\r\nTimestamp: "), "{description}");
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{field} missing: {body}");
    }
    assert!(body["error_uri"].as_str().is_some_and(|u| u.ends_with(&format!("/error?code={code}"))), "{body}");
}

// ---- token endpoint: success ----

#[tokio::test]
async fn secret_grant_issues_graph_token_with_consented_roles() {
    let sim = start().await;
    let app_id = sim.app_with_secret("s3cret~value", &["User.Read.All"]);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", app_id.as_str()),
        ("client_secret", "s3cret~value"),
        ("scope", GRAPH_SCOPE),
    ];
    let (status, body) = sim.token(TENANT, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer", "expected a Bearer token: {body}");
    assert_eq!(body["expires_in"], 3599, "expected Entra's token lifetime: {body}");
    assert_eq!(body["ext_expires_in"], 3599, "expected Entra's extended lifetime: {body}");
    let token = body["access_token"].as_str().expect("access_token");
    let header = jwt_part(token, 0);
    assert_eq!(header["alg"], "RS256", "expected an RS256-signed token: {header}");
    assert!(header["kid"].is_string() && header["x5t"].is_string(), "{header}");
    let claims = jwt_part(token, 1);
    assert_eq!(claims["tid"], TENANT, "expected the token's tenant: {claims}");
    assert_eq!(claims["appid"], app_id.as_str(), "expected the token's app: {claims}");
    assert_eq!(claims["roles"], json!(["User.Read.All"]), "only consented roles, not all requested");
    assert_eq!(claims["aud"], "00000003-0000-0000-c000-000000000000", "expected Graph as the audience: {claims}");
    assert_eq!(claims["iss"], format!("https://sts.windows.net/{TENANT}/"), "expected the v1 issuer: {claims}");
    assert_eq!(claims["appidacr"], "1", "expected appidacr 1 for a secret: {claims}");
    let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(lifetime, 3599, "expected exp − iat to be the token lifetime: {claims}");
}

#[tokio::test]
async fn secret_grant_accepts_tenant_domain_and_http_basic() {
    let sim = start().await;
    let secret = "p+s/w=rd&more";
    let app_id = sim.app_with_secret(secret, &READ_ROLES);
    // RFC 6749 §2.3.1: both parts form-urlencoded, then base64.
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = STANDARD.encode(format!("{}:{}", encode(&app_id), encode(secret)));
    let response = client()
        .post(sim.token_url("CONTOSO.onmicrosoft.com"))
        .header("Authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "client_credentials"), ("scope", GRAPH_SCOPE)])
        .send()
        .await
        .expect("token request");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "expected HTTP Basic client authentication to be accepted: {body}");
    let claims = jwt_part(body["access_token"].as_str().expect("token"), 1);
    assert_eq!(claims["tid"], TENANT, "domain resolves to the tenant id");
    assert_eq!(claims["roles"], json!(READ_ROLES), "expected every consented role: {claims}");
}

#[tokio::test]
async fn certificate_assertions_rs256_and_ps256_with_every_thumbprint_form() {
    let sim = start().await;
    let app_id = sim.app_with_certificate(cert(0));
    let cases = [
        ("RS256 x5t standard base64", Algorithm::RS256, Thumbprint::Sha1Standard),
        ("RS256 x5t base64url", Algorithm::RS256, Thumbprint::Sha1UrlSafe),
        ("PS256 x5t#S256", Algorithm::PS256, Thumbprint::Sha256),
        ("PS256 x5t base64url", Algorithm::PS256, Thumbprint::Sha1UrlSafe),
    ];
    for (name, alg, thumb) in cases {
        let claims = assertion_claims(&sim, &app_id, &sim.token_url(TENANT));
        let jwt = assertion(cert(0), cert(0), alg, thumb, claims);
        let (status, body) = sim.token(TENANT, &assertion_form(&app_id, &jwt)).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        let token_claims = jwt_part(body["access_token"].as_str().expect("token"), 1);
        assert_eq!(token_claims["appidacr"], "2", "{name}");
        assert_eq!(token_claims["roles"], json!(READ_ROLES), "{name}");
    }
    // The audience may name the tenant by domain, and the v1 token endpoint.
    let aud = format!("{}/{DOMAIN}/oauth2/token", sim.base);
    let jwt =
        assertion(cert(0), cert(0), Algorithm::RS256, Thumbprint::Sha1UrlSafe, assertion_claims(&sim, &app_id, &aud));
    let (status, body) = sim.token(DOMAIN, &assertion_form(&app_id, &jwt)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---- token endpoint: errors ----

#[tokio::test]
async fn secret_grant_errors_have_real_codes_and_statuses() {
    let sim = start().await;
    let app_id = sim.app_with_secret("right", &READ_ROLES);
    let unknown_app = uuid::Uuid::new_v4().to_string();
    let unknown_tenant = uuid::Uuid::new_v4().to_string();
    let cc = ("grant_type", "client_credentials");
    let id = ("client_id", app_id.as_str());
    let scope = ("scope", GRAPH_SCOPE);
    // (case, tenant, form fields, status, OAuth error, AADSTS code)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, StatusCode, &'a str, u64);
    let cases: Vec<Case> = vec![
        (
            "wrong secret",
            TENANT,
            vec![cc, id, ("client_secret", "wrong"), scope],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
        ),
        (
            "unknown app",
            TENANT,
            vec![cc, ("client_id", &unknown_app), ("client_secret", "right"), scope],
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
        ),
        (
            "unknown tenant",
            &unknown_tenant,
            vec![cc, id, ("client_secret", "right"), scope],
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
        ),
        (
            "unknown domain",
            "fabrikam.onmicrosoft.com",
            vec![cc, id, ("client_secret", "right"), scope],
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
        ),
        (
            "not a tenant name",
            "not_a_tenant",
            vec![cc, id, ("client_secret", "right"), scope],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900023,
        ),
        ("no credential", TENANT, vec![cc, id, scope], StatusCode::UNAUTHORIZED, "invalid_client", 7000218),
        (
            "foreign scope",
            TENANT,
            vec![cc, id, ("client_secret", "right"), ("scope", "https://foo.microsoft.com/.default")],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
        ),
        (
            "two scopes",
            TENANT,
            vec![cc, id, ("client_secret", "right"), ("scope", "https://graph.microsoft.com/.default openid")],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
        ),
        (
            "scope without .default",
            TENANT,
            vec![cc, id, ("client_secret", "right"), ("scope", "https://graph.microsoft.com/User.Read.All")],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
        ),
        (
            "/common",
            "common",
            vec![cc, id, ("client_secret", "right"), scope],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            9001023,
        ),
        (
            "/consumers",
            "consumers",
            vec![cc, id, ("client_secret", "right"), scope],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            9001023,
        ),
        (
            "password grant",
            TENANT,
            vec![("grant_type", "password"), id, ("client_secret", "right"), scope],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
        ),
        (
            "no grant type",
            TENANT,
            vec![id, ("client_secret", "right"), scope],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
        ),
        (
            "no scope",
            TENANT,
            vec![cc, id, ("client_secret", "right")],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
        ),
    ];
    for (name, tenant, form, status, error, code) in cases {
        let (got_status, body) = sim.token(tenant, &form).await;
        assert_aadsts(got_status, &body, status, error, code);
        println!("ok: {name}");
    }
}

#[tokio::test]
async fn error_correlation_id_echoes_client_request_id() {
    let sim = start().await;
    let correlation = uuid::Uuid::new_v4().to_string();
    let response = client()
        .post(sim.token_url(TENANT))
        .header("client-request-id", &correlation)
        .form(&[("grant_type", "client_credentials"), ("client_id", "x"), ("scope", GRAPH_SCOPE)])
        .send()
        .await
        .expect("request");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["correlation_id"], correlation.as_str(), "expected the client-request-id echoed: {body}");
}

#[tokio::test]
async fn national_cloud_login_host_refuses_another_clouds_graph() {
    let sim = start().await;
    let app_id = sim.app_with_secret("right", &READ_ROLES);
    let send = |scope: &'static str| {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", app_id.as_str()),
            ("client_secret", "right"),
            ("scope", scope),
        ];
        client().post(sim.token_url(TENANT)).header("Host", "login.microsoftonline.us").form(&form).send()
    };
    let response = send("https://graph.microsoft.com/.default").await.expect("request");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_aadsts(status, &body, StatusCode::BAD_REQUEST, "invalid_resource", 500011);
    let response = send("https://graph.microsoft.us/.default").await.expect("request");
    assert_eq!(response.status(), StatusCode::OK, "US Gov Graph from the US Gov login host");
}

#[tokio::test]
async fn bad_client_assertions_are_refused_with_their_codes() {
    let sim = start().await;
    let app_id = sim.app_with_certificate(cert(0));
    let endpoint = sim.token_url(TENANT);
    let good = assertion_claims(&sim, &app_id, &endpoint);
    let with = |key: &str, value: Value| {
        let mut claims = good.clone();
        claims[key] = value;
        claims
    };
    let now = sim.clock.now().timestamp();
    let cases: Vec<(&str, String, StatusCode, &str, u64)> = vec![
        (
            "signed by another key",
            assertion(cert(1), cert(0), Algorithm::RS256, Thumbprint::Sha1UrlSafe, good.clone()),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
        ),
        (
            "unregistered certificate",
            assertion(cert(1), cert(1), Algorithm::RS256, Thumbprint::Sha1UrlSafe, good.clone()),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
        ),
        (
            "wrong audience",
            assertion(
                cert(0),
                cert(0),
                Algorithm::PS256,
                Thumbprint::Sha256,
                with("aud", json!("https://login.microsoftonline.com/other/oauth2/v2.0/token")),
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700023,
        ),
        (
            "iss is not the client",
            assertion(
                cert(0),
                cert(0),
                Algorithm::PS256,
                Thumbprint::Sha256,
                with("iss", json!(uuid::Uuid::new_v4().to_string())),
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700021,
        ),
        (
            "sub is not the client",
            assertion(cert(0), cert(0), Algorithm::PS256, Thumbprint::Sha256, with("sub", json!("someone"))),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700021,
        ),
        (
            "expired",
            assertion(cert(0), cert(0), Algorithm::RS256, Thumbprint::Sha1Standard, with("exp", json!(now - 900))),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700024,
        ),
        (
            "not yet valid",
            assertion(cert(0), cert(0), Algorithm::RS256, Thumbprint::Sha1Standard, with("nbf", json!(now + 900))),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700024,
        ),
        ("not a JWT", "garbage".to_owned(), StatusCode::BAD_REQUEST, "invalid_request", 50027),
    ];
    for (name, jwt, status, error, code) in cases {
        let (got_status, body) = sim.token(TENANT, &assertion_form(&app_id, &jwt)).await;
        assert_aadsts(got_status, &body, status, error, code);
        println!("ok: {name}");
    }
    let jwt = assertion(cert(0), cert(0), Algorithm::RS256, Thumbprint::Sha1UrlSafe, good);
    let mut form = assertion_form(&app_id, &jwt);
    form[2].1 = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer";
    let (status, body) = sim.token(TENANT, &form).await;
    assert_aadsts(status, &body, StatusCode::BAD_REQUEST, "invalid_request", 700015);
}

#[tokio::test]
async fn assertion_time_follows_the_emulator_clock() {
    let sim = start().await;
    let app_id = sim.app_with_certificate(cert(0));
    let jwt = assertion(
        cert(0),
        cert(0),
        Algorithm::RS256,
        Thumbprint::Sha1UrlSafe,
        assertion_claims(&sim, &app_id, &sim.token_url(TENANT)),
    );
    sim.clock.advance(chrono::Duration::minutes(30));
    let (status, body) = sim.token(TENANT, &assertion_form(&app_id, &jwt)).await;
    assert_aadsts(status, &body, StatusCode::UNAUTHORIZED, "invalid_client", 700024);
}

// ---- Bearer validation on Graph requests ----

#[tokio::test]
async fn consented_token_is_authorized_with_its_claims() {
    let sim = start().await;
    let app_id = sim.app_with_secret("right", &["User.Read.All"]);
    let token = sim.secret_token(&app_id, "right").await;
    let response = sim.graph_get(Some(&token)).await;
    assert_eq!(response.status(), StatusCode::OK, "expected a consented token to pass");
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"tid": TENANT, "appid": app_id, "roles": ["User.Read.All"]}),
        "expected the endpoint to see the token's tenant, app and roles"
    );
}

#[tokio::test]
async fn token_without_consent_has_no_roles_and_graph_answers_403() {
    let sim = start().await;
    let app_id = sim.app_with_secret("right", &[]);
    let token = sim.secret_token(&app_id, "right").await;
    assert!(jwt_part(&token, 1).get("roles").is_none(), "no consent: no roles claim");
    let response = sim.graph_get(Some(&token)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "expected a token without roles to be forbidden");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied", "expected Graph's error code: {body}");
    assert_eq!(
        body["error"]["message"], "Insufficient privileges to complete the operation.",
        "expected Graph's error message: {body}"
    );
    assert!(body["error"]["innerError"]["request-id"].is_string(), "expected a request-id: {body}");
    // Consent granted later applies to tokens issued later.
    sim.identity.grant_consent(TENANT, &app_id, &roles(&["Directory.Read.All"])).expect("consent");
    let token = sim.secret_token(&app_id, "right").await;
    assert_eq!(
        sim.graph_get(Some(&token)).await.status(),
        StatusCode::OK,
        "expected a token issued after the consent to pass"
    );
}

#[tokio::test]
async fn expired_token_is_401_with_documented_message_and_www_authenticate() {
    let sim = start().await;
    let app_id = sim.app_with_secret("right", &READ_ROLES);
    let token = sim.secret_token(&app_id, "right").await;
    sim.clock.advance(chrono::Duration::seconds(3600));
    let response = sim.graph_get(Some(&token)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "expected a token an hour old to be refused");
    let challenge =
        response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(challenge.starts_with("Bearer realm=\"\", authorization_uri=\""), "{challenge}");
    assert!(challenge.ends_with("client_id=\"00000003-0000-0000-c000-000000000000\""), "{challenge}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken", "expected Graph's error code: {body}");
    assert_eq!(
        body["error"]["message"], "Access token has expired or is not yet valid.",
        "expected Graph's error message: {body}"
    );
}

#[tokio::test]
async fn missing_malformed_forged_and_foreign_tokens_are_401() {
    let sim = start().await;
    let other = start().await;
    let other_tenant = "9a8b7c6d-1111-4222-8333-444455556666";
    other.identity.add_tenant(other_tenant, "fabrikam.onmicrosoft.com");
    let other_app =
        other.identity.register_app(NewApp { secret: Some("s".into()), ..Default::default() }).expect("app");
    other.identity.grant_consent(other_tenant, &other_app.app_id, &roles(&READ_ROLES)).expect("consent");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", other_app.app_id.as_str()),
        ("client_secret", "s"),
        ("scope", GRAPH_SCOPE),
    ];
    let (_, body) = other.token(other_tenant, &form).await;
    let foreign = body["access_token"].as_str().expect("token").to_owned();

    // Same claims as a valid token, signed with a key that is not the emulator's.
    let app_id = sim.app_with_secret("right", &READ_ROLES);
    let valid = sim.secret_token(&app_id, "right").await;
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &jwt_part(&valid, 1),
        &EncodingKey::from_rsa_der(&cert(1).key_pkcs1),
    )
    .expect("forge");
    let cases = [
        ("missing", None, "Access token is empty."),
        ("not a JWT", Some("abc.def"), "CompactToken parsing failed with error code: 80049217"),
        ("forged signature", Some(forged.as_str()), "Access token validation failure."),
        ("tenant unknown here", Some(foreign.as_str()), "Access token validation failure. Invalid audience."),
    ];
    for (name, bearer, message) in cases {
        let response = sim.graph_get(bearer).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert!(response.headers().contains_key("www-authenticate"), "{name}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "InvalidAuthenticationToken", "{name}");
        assert_eq!(body["error"]["message"], message, "{name}");
    }
    assert_eq!(sim.graph_get(Some(&valid)).await.status(), StatusCode::OK, "control: the valid token passes");
}

// ---- admin consent ----

fn redirect_query(response: &reqwest::Response) -> (String, Vec<(String, String)>) {
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).expect("Location header");
    let url = url::Url::parse(location).expect("absolute Location");
    let pairs = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    (format!("{}://{}{}", url.scheme(), url.host_str().unwrap_or_default(), url.path()), pairs)
}

#[tokio::test]
async fn admin_consent_redirects_with_admin_consent_true_and_grants_requested_roles() {
    let sim = start().await;
    let app_id = sim.app_with_secret("right", &[]);
    let response = client()
        .get(format!("{}/{DOMAIN}/adminconsent", sim.base))
        .query(&[
            ("client_id", app_id.as_str()),
            ("redirect_uri", "https://console.example/consented"),
            ("state", "xyz 1"),
        ])
        .send()
        .await
        .expect("consent request");
    assert_eq!(response.status(), StatusCode::FOUND, "expected consent to redirect");
    let (target, query) = redirect_query(&response);
    assert_eq!(target, "https://console.example/consented", "expected the redirect to the given redirect_uri");
    let expected = [("admin_consent", "True"), ("tenant", TENANT), ("state", "xyz 1")];
    assert_eq!(
        query,
        expected.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec(),
        "expected the documented success parameters, state echoed"
    );
    let token = sim.secret_token(&app_id, "right").await;
    assert_eq!(jwt_part(&token, 1)["roles"], json!(READ_ROLES), "consent grants what the app requests");
}

#[tokio::test]
async fn refused_admin_consent_redirects_with_documented_error() {
    let sim = start().await;
    let app_id = sim.app_with_secret("right", &[]);
    let response = client()
        .post(format!("{}/_sim/tenants/{TENANT}/consent", sim.base))
        .json(&json!({"refuse": true}))
        .send()
        .await
        .expect("refuse switch");
    assert_eq!(response.status(), StatusCode::OK, "expected the admin API to switch consent refusal on");
    let response = client()
        .get(format!("{}/{TENANT}/adminconsent", sim.base))
        .query(&[("client_id", app_id.as_str()), ("redirect_uri", "http://localhost/cb?keep=1"), ("state", "s")])
        .send()
        .await
        .expect("consent request");
    assert_eq!(response.status(), StatusCode::FOUND, "expected a refused consent to redirect too");
    let (_, query) = redirect_query(&response);
    let expected = [
        ("keep", "1"),
        ("error", "permission_denied"),
        ("error_description", "The admin canceled the request"),
        ("state", "s"),
    ];
    assert_eq!(
        query,
        expected.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec(),
        "expected the redirect_uri's own query kept, then the documented error and state"
    );
    let state = sim.identity.consent_state(TENANT).expect("state");
    assert!(state.consents.is_empty(), "a refused prompt grants nothing");
}

#[tokio::test]
async fn admin_consent_errors_do_not_redirect() {
    let sim = start().await;
    let info = sim
        .identity
        .register_app(NewApp { redirect_uris: vec!["https://ok.example/cb".into()], ..Default::default() })
        .expect("app");
    let unknown = uuid::Uuid::new_v4().to_string();
    let cases = [
        (
            "unregistered redirect uri",
            TENANT,
            info.app_id.as_str(),
            "https://evil.example/cb",
            "invalid_request",
            50011,
        ),
        ("unknown app", TENANT, unknown.as_str(), "https://ok.example/cb", "unauthorized_client", 700016),
        ("unknown tenant", unknown.as_str(), info.app_id.as_str(), "https://ok.example/cb", "invalid_tenant", 90002),
    ];
    for (name, tenant, client_id, redirect, error, code) in cases {
        let response = client()
            .get(format!("{}/{tenant}/adminconsent", sim.base))
            .query(&[("client_id", client_id), ("redirect_uri", redirect)])
            .send()
            .await
            .expect("consent request");
        let status = response.status();
        assert!(response.headers().get("location").is_none(), "{name}");
        let body: Value = response.json().await.expect("json");
        assert_aadsts(status, &body, StatusCode::BAD_REQUEST, error, code);
    }
    let state = sim.identity.consent_state(TENANT).expect("state");
    assert!(state.consents.is_empty(), "expected bad consent requests to grant nothing: {:?}", state.consents);
}

// ---- discovery documents ----

#[tokio::test]
async fn openid_configuration_names_the_emulators_endpoints() {
    let sim = start().await;
    let url = format!("{}/{DOMAIN}/v2.0/.well-known/openid-configuration", sim.base);
    let doc: Value = client().get(url).send().await.expect("request").json().await.expect("json");
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/{TENANT}/oauth2/v2.0/token", sim.base),
        "expected the token endpoint under the tenant id, the domain resolved"
    );
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{}/{TENANT}/oauth2/v2.0/authorize", sim.base),
        "expected the authorization endpoint under the tenant id"
    );
    assert_eq!(doc["issuer"], format!("{}/{TENANT}/v2.0", sim.base), "expected the v2 issuer of the tenant");
    assert_eq!(
        doc["jwks_uri"],
        format!("{}/{TENANT}/discovery/v2.0/keys", sim.base),
        "expected the keys under the tenant id"
    );
    assert_eq!(doc["msgraph_host"], "graph.microsoft.com", "expected the global cloud's Graph host");

    let common: Value = client()
        .get(format!("{}/organizations/v2.0/.well-known/openid-configuration", sim.base))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        common["issuer"],
        format!("{}/{{tenantid}}/v2.0", sim.base),
        "expected the multi-tenant issuer template for /common"
    );

    let response = client()
        .get(format!("{}/{}/v2.0/.well-known/openid-configuration", sim.base, uuid::Uuid::new_v4()))
        .send()
        .await
        .expect("request");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_aadsts(status, &body, StatusCode::BAD_REQUEST, "invalid_tenant", 90002);
}

#[tokio::test]
async fn instance_discovery_vouches_for_the_emulator_host_only() {
    let sim = start().await;
    let authorize = format!("{}/{TENANT}/oauth2/v2.0/authorize", sim.base);
    let response = client()
        .get(format!("{}/common/discovery/instance", sim.base))
        .query(&[("api-version", "1.1"), ("authorization_endpoint", authorize.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK, "expected the emulator host to be vouched for");
    let doc: Value = response.json().await.expect("json");
    assert_eq!(
        doc["tenant_discovery_endpoint"],
        format!("{}/{TENANT}/v2.0/.well-known/openid-configuration", sim.base),
        "expected the tenant's discovery document"
    );
    assert_eq!(doc["api-version"], "1.1", "expected the api-version asked for: {doc}");
    let host = sim.base.trim_start_matches("http://");
    assert_eq!(doc["metadata"][0]["aliases"], json!([host]), "expected the emulator host as the only alias: {doc}");

    let response = client()
        .get(format!("{}/common/discovery/instance", sim.base))
        .query(&[
            ("api-version", "1.1"),
            ("authorization_endpoint", "https://login.evil.example/t/oauth2/v2.0/authorize"),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "expected a foreign host not to be vouched for");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "invalid_instance", "expected the OAuth error: {body}");
}

#[tokio::test]
async fn published_keys_verify_issued_tokens() {
    let sim = start().await;
    let app_id = sim.app_with_secret("right", &READ_ROLES);
    let token = sim.secret_token(&app_id, "right").await;
    let jwks: Value = client()
        .get(format!("{}/{TENANT}/discovery/v2.0/keys", sim.base))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let key = &jwks["keys"][0];
    assert_eq!(key["kid"], jwt_part(&token, 0)["kid"], "expected the published key to be the token's signing key");
    let decoding =
        jsonwebtoken::DecodingKey::from_rsa_components(key["n"].as_str().expect("n"), key["e"].as_str().expect("e"))
            .expect("jwk");
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&[identity::GRAPH_APP_ID]);
    let data = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).expect("token verifies with the JWKS");
    assert_eq!(data.claims["tid"], TENANT, "expected the verified token's tenant: {}", data.claims);
}

// ---- admin API ----

#[tokio::test]
async fn admin_api_registers_apps_and_sets_consent() {
    let sim = start().await;
    let admin = |path: &str| format!("{}/_sim{path}", sim.base);
    let created: Value = client()
        .post(admin("/apps"))
        .json(&json!({"display_name": "entrasync", "certificate_pem": cert(0).pem, "roles": ["User.Read.All"]}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let app_id = created["app_id"].as_str().expect("app_id").to_owned();
    let thumbprint = hex::encode_upper(sha1::Sha1::digest(&cert(0).der));
    assert_eq!(
        created["certificate_thumbprints"],
        json!([thumbprint]),
        "expected the certificate's SHA-1 thumbprint: {created}"
    );
    assert!(created.get("secret").is_none(), "a certificate app gets no generated secret");

    let with_secret: Value =
        client().post(admin("/apps")).json(&json!({})).send().await.expect("register").json().await.expect("json");
    let secret = with_secret["secret"].as_str().expect("a generated secret is returned once");
    let secret_app = with_secret["app_id"].as_str().expect("app_id").to_owned();
    let token = sim.secret_token(&secret_app, secret).await;
    assert!(token.contains('.'), "expected the generated secret to obtain a JWT: {token}");

    let listed: Value = client().get(admin("/apps")).send().await.expect("list").json().await.expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "expected both registered apps listed: {listed}");
    assert!(listed.as_array().into_iter().flatten().all(|a| a.get("secret").is_none()), "list never shows secrets");

    let response = client()
        .post(admin(&format!("/tenants/{DOMAIN}/consent")))
        .json(&json!({"app_id": app_id, "roles": ["User.Read.All", "Group.Read.All"]}))
        .send()
        .await
        .expect("consent");
    assert_eq!(response.status(), StatusCode::OK, "expected consent by tenant domain to be accepted");
    let state: Value = response.json().await.expect("json");
    assert_eq!(
        state["consents"][&app_id],
        json!(["User.Read.All", "Group.Read.All"]),
        "expected the granted roles in the consent state: {state}"
    );
    assert_eq!(state["refuse_consent"], false, "expected consent refusal off: {state}");

    let errors = [
        (admin("/apps"), json!({"certificate_pem": "not a certificate"}), StatusCode::BAD_REQUEST),
        (admin("/apps"), json!({"app_id": app_id}), StatusCode::CONFLICT),
        (admin("/apps"), json!({"unknown_field": 1}), StatusCode::BAD_REQUEST),
        (admin("/tenants/nowhere.example/consent"), json!({"refuse": true}), StatusCode::NOT_FOUND),
        (
            admin(&format!("/tenants/{TENANT}/consent")),
            json!({"app_id": uuid::Uuid::new_v4(), "roles": []}),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (url, body, status) in errors {
        let response = client().post(&url).json(&body).send().await.expect("request");
        assert_eq!(response.status(), status, "{url} {body}");
    }
}

// ---- HTTPS ----

#[tokio::test]
async fn https_with_generated_ca_serves_tokens_to_clients_trusting_it() {
    let dir = std::env::temp_dir().join(format!("graph-sim-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_path = dir.join("ca.pem");
    let config = graph_sim::tls::server_config_writing_ca(&ca_path, &[]).expect("tls config");
    let sim = start_with(Some(config)).await;
    let app_id = sim.app_with_secret("right", &READ_ROLES);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca_path).expect("CA file written")).expect("CA PEM");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", app_id.as_str()),
        ("client_secret", "right"),
        ("scope", GRAPH_SCOPE),
    ];

    let trusting = reqwest::Client::builder().add_root_certificate(ca.clone()).build().expect("client");
    let response = trusting.post(sim.token_url(TENANT)).form(&form).send().await.expect("HTTPS request with the CA");
    assert_eq!(response.status(), StatusCode::OK, "expected a token over HTTPS when the CA is trusted");

    // The certificate also covers 127.0.0.1 and the clouds' host names (resolved here to loopback).
    let port = sim.base.rsplit(':').next().expect("port");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let as_login = reqwest::Client::builder()
        .add_root_certificate(ca)
        .resolve("login.microsoftonline.us", addr)
        .build()
        .expect("client");
    for base in [format!("https://127.0.0.1:{port}"), format!("https://login.microsoftonline.us:{port}")] {
        let url = format!("{base}/{TENANT}/v2.0/.well-known/openid-configuration");
        let doc: Value = as_login.get(&url).send().await.expect("HTTPS request").json().await.expect("json");
        assert_eq!(
            doc["token_endpoint"],
            format!("{base}/{TENANT}/oauth2/v2.0/token"),
            "expected the token endpoint on the host asked: {doc}"
        );
    }

    let untrusting = reqwest::Client::builder().tls_built_in_root_certs(true).build().expect("client");
    assert!(untrusting.post(sim.token_url(TENANT)).form(&form).send().await.is_err(), "unknown CA is refused");
    let _ = std::fs::remove_dir_all(dir);
}

// ---- the Python SDK check, against the library-started emulator ----

/// Runs `tests/python/msgraph_sdk_check.py` with the venv of `tests/python/msgraph_sdk_check.sh`
/// (ENTRASYNC_SDK_VENV, default ~/.cache/entrasync/msgraph-sdk-venv). Ignored by default: it needs that venv.
#[tokio::test]
#[ignore = "needs the msgraph-sdk venv created by tests/python/msgraph_sdk_check.sh"]
async fn msgraph_sdk_check_passes_against_graph_sim_over_https() {
    let dir = std::env::temp_dir().join(format!("graph-sim-sdk-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_path = dir.join("ca.pem");
    let tls = graph_sim::tls::server_config_writing_ca(&ca_path, &[]).expect("tls");
    let sim = graph_sim::GraphSim::start(graph_sim::SimOptions { tls: Some(tls), ..Default::default() })
        .expect("start graph-sim");
    let repo = env!("CARGO_MANIFEST_DIR");
    let venv = std::env::var("ENTRASYNC_SDK_VENV").unwrap_or_else(|_| {
        let cache = std::env::var("XDG_CACHE_HOME")
            .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
        format!("{cache}/entrasync/msgraph-sdk-venv")
    });
    let output = tokio::process::Command::new(format!("{venv}/bin/python"))
        .arg(format!("{repo}/tests/python/msgraph_sdk_check.py"))
        .env("SIM_BASE", sim.base_url())
        .env("SSL_CERT_FILE", &ca_path)
        .env("REQUESTS_CA_BUNDLE", &ca_path)
        .output()
        .await
        .expect("run the SDK check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "SDK check failed:\n{stdout}");
}
