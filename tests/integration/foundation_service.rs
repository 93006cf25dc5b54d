//! `entrasync serve` as operators run it: configuration errors, probes, reconnection, shutdown.

use std::time::{Duration, Instant};

use crate::support::app::{binary, free_port, spawn_app, ChildGuard};
use crate::support::{eventually, settings_with, TestAmqp, TestDb};
use entrasync::chaos::proxy::TcpProxy;

#[test]
fn an_invalid_config_value_stops_start_up_naming_the_setting() {
    let output = binary(&["serve"], &[("ENTRASYNC_AMQP_PREFETCH", "0")]).output().expect("run entrasync");
    assert_eq!(
        output.status.code(),
        Some(2),
        "expected exit code 2 (configuration error) for amqp.prefetch = 0; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("amqp.prefetch") && stderr.contains("ENTRASYNC_AMQP_PREFETCH"), "{stderr}");
    assert!(stderr.contains("\"0\"") && stderr.contains("from 1 to 1000"), "{stderr}");

    let output = binary(&["config"], &[("ENTRASYNC_HTTP_LISTN", "0.0.0.0:80")]).output().expect("run entrasync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "expected exit code 2 for a misspelt variable; stderr: {stderr}");
    assert!(stderr.contains("ENTRASYNC_HTTP_LISTN"), "expected the error to name the unknown variable: {stderr}");
}

#[test]
fn config_prints_the_effective_configuration_with_secrets_masked() {
    let output = binary(&["config"], &[("ENTRASYNC_AMQP_URL", "amqp://svc:s3cr3t-value@mq:5672/%2f")])
        .output()
        .expect("run entrasync");
    assert!(
        output.status.success(),
        "expected `entrasync config` to succeed, got {:?}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ENTRASYNC_AMQP_URL=amqp://svc:*****@mq:5672/%2f"),
        "expected the AMQP URL with its password masked: {stdout}"
    );
    assert!(!stdout.contains("s3cr3t-value"), "expected the password never to be printed: {stdout}");
}

async fn get_status(client: &reqwest::Client, url: &str) -> Option<u16> {
    client.get(url).timeout(Duration::from_secs(5)).send().await.ok().map(|r| r.status().as_u16())
}

#[tokio::test]
async fn readyz_follows_postgres_and_rabbitmq_without_a_restart() {
    let db = TestDb::named();
    let amqp = TestAmqp::new();
    let pg_proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await.expect("start the fault proxy");
    let mq_proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await.expect("start the fault proxy");
    let db_url = format!("postgres://postgres@{}/{}", pg_proxy.addr, db.name);
    let amqp_url = format!("amqp://guest:guest@{}/%2f", mq_proxy.addr);
    let settings = settings_with(&[
        ("ENTRASYNC_DATABASE_URL", &db_url),
        ("ENTRASYNC_DATABASE_CONNECT_TIMEOUT_SECS", "2"),
        ("ENTRASYNC_AMQP_URL", &amqp_url),
        ("ENTRASYNC_AMQP_PREFIX", &amqp.prefix),
    ]);
    let app = spawn_app(&settings).await;
    let client = reqwest::Client::new();
    let readyz = format!("{}/readyz", app.address);
    let healthz = format!("{}/healthz", app.address);

    let status_is = |want: u16| {
        let (client, readyz) = (client.clone(), readyz.clone());
        move || {
            let (client, readyz) = (client.clone(), readyz.clone());
            async move { get_status(&client, &readyz).await == Some(want) }
        }
    };
    assert!(eventually(Duration::from_secs(15), status_is(200)).await, "ready at start");

    pg_proxy.cut();
    assert!(eventually(Duration::from_secs(15), status_is(503)).await, "503 while Postgres is cut off");
    assert_eq!(get_status(&client, &healthz).await, Some(200), "still alive");
    pg_proxy.restore();
    assert!(eventually(Duration::from_secs(15), status_is(200)).await, "ready again once Postgres is back");

    mq_proxy.cut();
    assert!(eventually(Duration::from_secs(15), status_is(503)).await, "503 while RabbitMQ is cut off");
    mq_proxy.restore();
    assert!(eventually(Duration::from_secs(20), status_is(200)).await, "reconnected to RabbitMQ");

    app.handle.stop(false).await;
}

#[tokio::test]
async fn sigterm_stops_serve_with_exit_code_zero_within_ten_seconds() {
    let db = TestDb::named();
    let amqp = TestAmqp::new();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = binary(
        &["serve"],
        &[
            ("ENTRASYNC_DATABASE_URL", &db.url),
            ("ENTRASYNC_AMQP_PREFIX", &amqp.prefix),
            ("ENTRASYNC_HTTP_LISTEN", &listen),
        ],
    )
    .spawn()
    .expect("start entrasync serve");
    let mut child = ChildGuard(child);
    let client = reqwest::Client::new();
    let readyz = format!("http://{listen}/readyz");
    let ready = eventually(Duration::from_secs(60), || {
        let (client, readyz) = (client.clone(), readyz.clone());
        async move { get_status(&client, &readyz).await == Some(200) }
    })
    .await;
    assert!(ready, "serve became ready");

    let pid = child.0.id().to_string();
    let kill = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(kill.success(), "expected `kill -TERM {pid}` to reach serve: {kill:?}");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still running 10 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "clean exit");
}
