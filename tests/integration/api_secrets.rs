//! Secrets never leave the server: a known client secret (and its rotation), the secrets key and the
//! admin token are searched for in every API answer, the CSV export, the audit log, /metrics and the
//! process's own logs (the real binary, JSON logs at debug level) after a full use of the API.

use std::fs::File;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::app::{binary, ChildGuard};
use crate::support::{eventually_some, TestAmqp, TestDb};

#[tokio::test]
async fn a_known_secret_appears_in_no_answer_export_log_or_metric() {
    use base64::Engine;
    let db = TestDb::named();
    let amqp = TestAmqp::new();
    let sim = graph_sim::GraphSim::start(Default::default()).expect("emulator");
    let secret = format!("canary-secret-{}", uuid::Uuid::new_v4().simple());
    let rotated = format!("canary-rotated-{}", uuid::Uuid::new_v4().simple());
    let admin = format!("es_canary-admin-{}", uuid::Uuid::new_v4().simple());
    let secrets_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let roles = ["User.Read.All", "GroupMember.Read.All", "Device.Read.All", "Organization.Read.All"];
    let app = sim
        .state()
        .identity
        .register_app(graph_sim::identity::NewApp {
            secret: Some(secret.clone()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            ..Default::default()
        })
        .expect("app");
    let directory = sim
        .state()
        .create_tenant(graph_sim::state::TenantSpec {
            domain: Some("canary.example".to_owned()),
            seed: Some(3),
            users: 20,
            groups: 3,
            devices: 4,
            ..Default::default()
        })
        .expect("tenant");
    let all_roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    sim.state().identity.grant_consent(&directory.tenant_id, &app.app_id, &all_roles).expect("consent");

    let port = crate::support::app::free_port();
    let log_path = std::env::temp_dir().join(format!("entrasync-secrets-{}.log", uuid::Uuid::new_v4().simple()));
    let log = File::create(&log_path).expect("log file");
    let listen = format!("127.0.0.1:{port}");
    let vars = [
        ("ENTRASYNC_DATABASE_URL", db.url.as_str()),
        ("ENTRASYNC_AMQP_PREFIX", amqp.prefix.as_str()),
        ("ENTRASYNC_HTTP_LISTEN", listen.as_str()),
        ("ENTRASYNC_ADMIN_TOKEN", admin.as_str()),
        ("ENTRASYNC_SECRETS_KEY", secrets_key.as_str()),
        ("ENTRASYNC_LOG_FORMAT", "json"),
        ("ENTRASYNC_LOG_FILTER", "debug,h2=info,hyper=info,lapin=info,tokio_postgres=info"),
        ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1"),
        ("ENTRASYNC_DATABASE_POOL_SIZE", "10"),
        ("ENTRASYNC_API_CUSTOM_CLOUD_HOSTS", "127.0.0.1"),
    ];
    let child = binary(&["serve"], &vars)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start entrasync serve");
    let mut serve = ChildGuard(child);
    let base = format!("http://{listen}");
    let http = reqwest::Client::new();
    let ready = eventually_some(Duration::from_secs(60), || async {
        http.get(format!("{base}/readyz")).send().await.ok().filter(|r| r.status().is_success())
    })
    .await;
    assert!(ready.is_some(), "serve became ready");

    // Everything an operator does, collecting every answer.
    let mut seen = String::new();
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let request = http.request(method, format!("{base}{path}")).bearer_auth(&admin);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move {
            let response = request.send().await.expect("request");
            let status = response.status();
            (status, response.text().await.expect("body"))
        }
    };
    let (status, text) = call(
        reqwest::Method::POST,
        "/api/v1/credential-profiles".to_owned(),
        Some(json!({ "name": "canary", "client_id": app.app_id, "secret": secret })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let profile = serde_json::from_str::<Value>(&text).expect("json")["id"].as_i64().expect("id");
    seen.push_str(&text);
    let cloud = json!({ "cloud": "custom", "login_url": sim.base_url(), "graph_url": sim.base_url(),
                        "tenant": "canary.example", "credential_profile_id": profile });
    let (status, text) = call(reqwest::Method::POST, "/api/v1/tenants".to_owned(), Some(cloud)).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let tenant = serde_json::from_str::<Value>(&text).expect("json")["id"].as_i64().expect("id");
    seen.push_str(&text);
    for (method, path, body) in [
        (reqwest::Method::POST, format!("/api/v1/tenants/{tenant}/test-connection"), None),
        (reqwest::Method::POST, format!("/api/v1/tenants/{tenant}/sync"), Some(json!({ "mode": "full" }))),
    ] {
        let (status, text) = call(method, path, body).await;
        assert!(status.is_success(), "{text}");
        seen.push_str(&text);
    }
    let finished = eventually_some(Duration::from_secs(90), || async {
        let (_, text) = call(reqwest::Method::GET, format!("/api/v1/runs?tenant_id={tenant}"), None).await;
        let page: Value = serde_json::from_str(&text).ok()?;
        let items = page["items"].as_array()?;
        (items.len() == 3 && items.iter().all(|r| r["status"] != "running")).then_some(text)
    })
    .await
    .expect("three finished runs");
    seen.push_str(&finished);
    // Rotation: the new secret goes in and must not come out either.
    let (status, text) = call(
        reqwest::Method::PUT,
        format!("/api/v1/credential-profiles/{profile}/material"),
        Some(json!({ "secret": rotated })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    seen.push_str(&text);
    for path in [
        "/api/v1/credential-profiles".to_owned(),
        format!("/api/v1/credential-profiles/{profile}"),
        "/api/v1/tenants".to_owned(),
        format!("/api/v1/tenants/{tenant}"),
        "/api/v1/runs".to_owned(),
        "/api/v1/runs.csv".to_owned(),
        "/api/v1/audit?limit=1000".to_owned(),
        "/api/v1/tokens".to_owned(),
        format!("/api/v1/tenants/{tenant}/objects?class=user"),
        "/api/v1/openapi.json".to_owned(),
        "/metrics".to_owned(),
    ] {
        let (status, text) = call(reqwest::Method::GET, path.clone(), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        seen.push_str(&text);
    }
    assert!(seen.contains("credential_profile.replace_material"), "the rotation is audited");

    // Stop the process (SIGTERM) so its logs are complete.
    let pid = serve.0.id().to_string();
    let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while serve.0.try_wait().expect("wait").is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = std::fs::read_to_string(&log_path).expect("logs");
    let _ = std::fs::remove_file(&log_path);
    assert!(logs.contains("serving"), "the log was captured: {}", &logs[..logs.len().min(500)]);

    for (what, value) in [
        ("client secret", &secret),
        ("rotated secret", &rotated),
        ("admin token", &admin),
        ("secrets key", &secrets_key),
    ] {
        assert!(!seen.contains(value.as_str()), "the {what} appeared in an API answer, export or metric");
        assert!(!logs.contains(value.as_str()), "the {what} appeared in the logs");
    }
}
