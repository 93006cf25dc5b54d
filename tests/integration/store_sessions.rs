//! Postgres sessions have deadlines (issue 15): a statement over `statement_timeout` and a lock wait
//! over `lock_timeout` fail fast as transient timeouts; run-lock sessions carry the server-side
//! keepalives and end on the server when their holder vanishes without closing its socket; a full
//! pool answers with a timeout instead of a hang; an unexpected error names its SQLSTATE, the server's
//! message and what the store was doing; a quarantine that ran out disables the tenant (blocked).

use std::sync::Arc;
use std::time::{Duration, Instant};

use entrasync::chaos::proxy::TcpProxy;
use entrasync::model::{ObjectClass, SyncMode};
use entrasync::store::run_lock::RunLocks;
use entrasync::store::{cursors, metrics_queries, schedule, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::service_support::create_tenants;
use crate::support::{eventually_some, settings_with, TestDb};

/// A plain session of the test's own, without the service's timeouts: it holds locks the service waits for.
async fn plain_session(db: &TestDb) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn a_statement_over_statement_timeout_fails_as_a_transient_timeout_with_its_sqlstate() {
    let db = TestDb::migrated().await;
    let settings = settings_with(&[
        ("ENTRASYNC_DATABASE_URL", &db.url),
        ("ENTRASYNC_DATABASE_STATEMENT_TIMEOUT_SECS", "1"),
        ("ENTRASYNC_DATABASE_LOCK_TIMEOUT_SECS", "1"),
    ]);
    let pool = entrasync::store::pool(&settings.database).expect("pool");
    let client = pool.get().await.expect("connection");
    let shown: String =
        client.query_one("SELECT current_setting('statement_timeout')", &[]).await.expect("show").get(0);
    assert_eq!(shown, "1s", "the pool's sessions carry the setting");

    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(20), client.simple_query("SELECT pg_sleep(30)")).await;
    let error = StoreError::from(outcome.expect("the server cancels the statement, no hang").expect_err("cancelled"));
    assert!(started.elapsed() < Duration::from_secs(15), "cancelled after about a second, not 30 s");
    assert!(matches!(error, StoreError::StatementTimeout(_)), "a timeout: {error:?}");
    assert!(error.is_transient(), "a timeout is worth retrying: {error}");
    assert_eq!(error.sqlstate(), Some("57014"));
    let text = error.to_string();
    assert!(text.contains("statement timeout") && text.contains("57014"), "{text}");
}

#[tokio::test]
async fn a_batch_claim_gives_its_transaction_the_longer_limit_and_only_that_transaction() {
    let db = TestDb::migrated().await;
    let settings = settings_with(&[("ENTRASYNC_DATABASE_URL", &db.url)]);
    let pool = entrasync::store::pool(&settings.database).expect("pool");
    let tenant = create_tenants(&pool, 1).await[0];
    let run_id = uuid::Uuid::new_v4();
    let counts = entrasync::model::RunCounts::default();
    cursors::checkpoint(
        &pool.get().await.expect("connection"),
        tenant,
        ObjectClass::User,
        run_id,
        SyncMode::Delta,
        None,
        &counts,
    )
    .await
    .expect("checkpoint");
    let mut client = pool.get().await.expect("connection");
    async fn limit(client: &impl deadpool_postgres::GenericClient) -> String {
        client.query_one("SELECT current_setting('statement_timeout')", &[]).await.expect("show").get(0)
    }
    assert_eq!(limit(&client).await, "1min");
    let transaction = client.transaction().await.expect("begin");
    assert!(!cursors::claim_run(&transaction, tenant, ObjectClass::User, run_id, 1).await.expect("claim"));
    assert_eq!(limit(&transaction).await, "1min", "a claim that finds the run moved on sets nothing");
    assert!(cursors::claim_run(&transaction, tenant, ObjectClass::User, run_id, 0).await.expect("claim"));
    assert_eq!(limit(&transaction).await, "10min", "the batch's statements may take longer");
    transaction.commit().await.expect("commit");
    assert_eq!(limit(&client).await, "1min", "the session's own limit is back after the batch");
}

#[tokio::test]
async fn a_lock_wait_over_lock_timeout_fails_fast_naming_the_operation() {
    let db = TestDb::migrated().await;
    let settings = settings_with(&[("ENTRASYNC_DATABASE_URL", &db.url), ("ENTRASYNC_DATABASE_LOCK_TIMEOUT_SECS", "1")]);
    let pool = entrasync::store::pool(&settings.database).expect("pool");
    let tenant = create_tenants(&pool, 1).await[0];
    let holder = plain_session(&db).await;
    holder.batch_execute("BEGIN; LOCK TABLE sync_schedules IN ACCESS EXCLUSIVE MODE").await.expect("lock");

    let waited = tokio::time::timeout(
        Duration::from_secs(20),
        schedule::request_rerun(&pool, tenant, ObjectClass::User, SyncMode::Delta),
    )
    .await;
    let error = waited.expect("lock_timeout ends the wait, no hang").expect_err("the table is locked");
    assert!(matches!(error, StoreError::StatementTimeout(_)), "{error:?}");
    assert_eq!(error.sqlstate(), Some("55P03"), "lock_not_available: {error}");
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("requesting a rerun"), "names the operation: {error}");

    holder.batch_execute("ROLLBACK").await.expect("release");
    schedule::request_rerun(&pool, tenant, ObjectClass::User, SyncMode::Delta).await.expect("free again");
}

#[tokio::test]
async fn an_unexpected_database_error_shows_its_sqlstate_message_and_operation() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenant = create_tenants(&pool, 1).await[0];
    plain_session(&db).await.batch_execute("DROP TABLE sync_schedules CASCADE").await.expect("drop");

    let error = schedule::request_rerun(&pool, tenant, ObjectClass::Group, SyncMode::Full)
        .await
        .expect_err("the table is gone");
    let text = error.to_string();
    assert!(text.contains("42P01"), "the SQLSTATE: {text}");
    assert!(text.contains(r#"relation "sync_schedules" does not exist"#), "the server's message: {text}");
    assert!(text.contains("requesting a rerun"), "the operation: {text}");
    assert!(!text.contains("db error"), "{text}");
    assert!(!error.is_transient(), "a missing table stays missing: {text}");

    // A violated constraint's detail comes along too.
    let client = plain_session(&db).await;
    client.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)").await.expect("create");
    let error = StoreError::from(client.execute("INSERT INTO t VALUES (1, NULL)", &[]).await.expect_err("not null"))
        .during("inserting into t");
    let text = error.to_string();
    assert!(text.contains("23502") && text.contains("detail: Failing row contains"), "{text}");
}

#[tokio::test]
async fn a_full_pool_answers_with_a_timeout_instead_of_waiting_forever() {
    let db = TestDb::migrated().await;
    let settings = settings_with(&[
        ("ENTRASYNC_DATABASE_URL", &db.url),
        ("ENTRASYNC_SERVE_ROLES", "api"),
        ("ENTRASYNC_DATABASE_POOL_SIZE", "1"),
        ("ENTRASYNC_DATABASE_POOL_WAIT_TIMEOUT_SECS", "1"),
    ]);
    let pool = entrasync::store::pool(&settings.database).expect("pool");
    let _held = pool.get().await.expect("the only connection");
    let waited = tokio::time::timeout(Duration::from_secs(20), pool.get()).await;
    let error = StoreError::from(waited.expect("pool.get() gives up by itself").expect_err("exhausted"));
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("timed out waiting for a free pooled Postgres connection"), "{error}");
    // What a store function says in the same situation.
    let error = schedule::load(&pool, 1).await.expect_err("exhausted");
    assert!(error.to_string().contains("loading a tenant's schedule"), "{error}");
}

#[tokio::test]
async fn run_lock_sessions_carry_the_server_side_keepalives_and_timeouts() {
    let db = TestDb::migrated().await;
    let settings = settings_with(&[
        ("ENTRASYNC_DATABASE_URL", &db.url),
        ("ENTRASYNC_DATABASE_KEEPALIVE_IDLE_SECS", "11"),
        ("ENTRASYNC_DATABASE_KEEPALIVE_INTERVAL_SECS", "4"),
        ("ENTRASYNC_DATABASE_KEEPALIVE_RETRIES", "3"),
        ("ENTRASYNC_DATABASE_TCP_USER_TIMEOUT_SECS", "25"),
    ]);
    let locks = RunLocks::new(settings.database.clone());
    let lock = locks.try_acquire(7, ObjectClass::User).await.expect("lock").expect("free");
    let setting = |name: &'static str| {
        let lock = &lock;
        async move { lock.session_setting(name).await.expect(name) }
    };
    assert_eq!(setting("tcp_keepalives_idle").await, "11");
    assert_eq!(setting("tcp_keepalives_interval").await, "4");
    assert_eq!(setting("tcp_keepalives_count").await, "3");
    assert_eq!(setting("tcp_user_timeout").await, "25000", "milliseconds");
    assert_eq!(setting("idle_session_timeout").await, "25s");
    assert_eq!(setting("statement_timeout").await, "1min");
    assert_eq!(setting("lock_timeout").await, "10s");
    assert_eq!(setting("application_name").await, "entrasync run lock");
    lock.release().await;
    // Pool sessions carry the server-side keepalives too, but no idle limit: they idle in the pool.
    let pool = entrasync::store::pool(&settings.database).expect("pool");
    let client = pool.get().await.expect("connection");
    let row = client
        .query_one(
            "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_user_timeout'), \
                    current_setting('idle_session_timeout'), current_setting('idle_in_transaction_session_timeout')",
            &[],
        )
        .await
        .expect("settings");
    let shown: (String, String, String, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(shown, ("11".into(), "25000".into(), "0".into(), "30s".into()));
}

/// Forwards a loopback port to the shared Postgres until frozen: from then on every open connection
/// forwards nothing and its sockets stay open, which is how a vanished host behind NAT looks.
struct FreezingProxy {
    port: u16,
    frozen: CancellationToken,
}

impl FreezingProxy {
    async fn start() -> FreezingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let frozen = CancellationToken::new();
        let freeze = frozen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect("127.0.0.1:5432").await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(client_read, server_write, freeze.clone()));
                tokio::spawn(forward(server_read, client_write, freeze.clone()));
            }
        });
        FreezingProxy { port, frozen }
    }

    fn url(&self, db: &TestDb) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, db.name)
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: CancellationToken,
) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            () = frozen.cancelled() => break,
            read = from.read(&mut buffer) => read,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    // Frozen: keep both sockets open and silent until the test ends.
    std::future::pending::<()>().await;
    drop((from, to));
}

#[tokio::test]
async fn the_server_releases_the_run_lock_of_a_holder_whose_connection_froze() {
    let db = TestDb::migrated().await;
    let proxy = FreezingProxy::start().await;
    // A short limit so the test is quick: the server ends a run-lock session silent for 3 s.
    let through_proxy = settings_with(&[
        ("ENTRASYNC_DATABASE_URL", &proxy.url(&db)),
        ("ENTRASYNC_DATABASE_TCP_USER_TIMEOUT_SECS", "3"),
        ("ENTRASYNC_DATABASE_KEEPALIVE_IDLE_SECS", "1"),
        ("ENTRASYNC_DATABASE_KEEPALIVE_INTERVAL_SECS", "1"),
        ("ENTRASYNC_DATABASE_KEEPALIVE_RETRIES", "2"),
    ]);
    let vanishing = RunLocks::new(through_proxy.database.clone());
    let other = RunLocks::new(db.settings().database);
    let lock = Arc::new(vanishing.try_acquire(42, ObjectClass::Group).await.expect("lock").expect("free"));
    assert!(other.try_acquire(42, ObjectClass::Group).await.expect("try").is_none(), "held");
    // Longer than a heartbeat period: the holder keeps its lock while its connection works.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!lock.is_lost(), "a healthy holder keeps its lock");
    assert!(other.try_acquire(42, ObjectClass::Group).await.expect("try").is_none(), "still held");

    proxy.frozen.cancel();
    let noticed = tokio::time::timeout(Duration::from_secs(20), lock.lost()).await;
    assert!(noticed.is_ok(), "the holder notices its frozen session and stops using the lock");
    let taken = eventually_some(Duration::from_secs(60), || {
        let other = other.clone();
        async move { other.try_acquire(42, ObjectClass::Group).await.ok().flatten() }
    })
    .await;
    assert!(taken.is_some(), "the server released the vanished holder's lock within a minute");
}

/// The holder of a run lock whose session froze in the network, while new connections pass (a failover
/// behind the same address), ends that session on the server as soon as its heartbeat goes unanswered.
/// The lock is then free long before the server's own `idle_session_timeout` (60 s here) would end it.
#[tokio::test]
async fn a_holder_ends_its_frozen_lock_session_on_the_server_so_the_lock_is_free_at_once() {
    let db = TestDb::migrated().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().expect("address")).await.expect("start the fault proxy");
    let through_proxy = settings_with(&[
        ("ENTRASYNC_DATABASE_URL", &format!("postgres://postgres@{}/{}", proxy.addr, db.name)),
        ("ENTRASYNC_DATABASE_TCP_USER_TIMEOUT_SECS", "60"),
    ]);
    let holder = RunLocks::new(through_proxy.database.clone());
    let other = RunLocks::new(db.settings().database);
    let lock = holder.try_acquire(43, ObjectClass::User).await.expect("lock").expect("free");
    assert!(proxy.freeze_open() >= 1, "expected the lock's session to freeze");
    let frozen_at = Instant::now();
    // A heartbeat every 10 s (a sixth of 60 s), each given 10 s to answer.
    tokio::time::timeout(Duration::from_secs(30), lock.lost()).await.expect("the holder notices its frozen session");
    let taken = eventually_some(Duration::from_secs(15), || {
        let other = other.clone();
        async move { other.try_acquire(43, ObjectClass::User).await.ok().flatten() }
    })
    .await;
    let elapsed = frozen_at.elapsed();
    assert!(
        taken.is_some() && elapsed < Duration::from_secs(45),
        "expected the lock free within 45 s of the freeze, before the server's 60 s idle limit could end the \
         session (taken: {}, after {elapsed:?})",
        taken.is_some()
    );
}

#[tokio::test]
async fn a_transaction_whose_client_froze_releases_its_row_locks_and_the_pool_drops_the_connection() {
    let db = TestDb::migrated().await;
    let direct = db.pool();
    let tenant = create_tenants(&direct, 1).await[0];
    schedule::request_rerun(&direct, tenant, ObjectClass::User, SyncMode::Delta).await.expect("row");
    let proxy = FreezingProxy::start().await;
    let through_proxy = settings_with(&[
        ("ENTRASYNC_DATABASE_URL", &proxy.url(&db)),
        ("ENTRASYNC_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECS", "2"),
        ("ENTRASYNC_SERVE_ROLES", "api"),
        ("ENTRASYNC_DATABASE_POOL_SIZE", "1"),
    ]);
    let frozen_pool = entrasync::store::pool(&through_proxy.database).expect("pool");
    {
        let client = frozen_pool.get().await.expect("connection");
        client
            .batch_execute(&format!("BEGIN; UPDATE sync_schedules SET rerun_mode = 'full' WHERE tenant_id = {tenant}"))
            .await
            .expect("row locked");
        proxy.frozen.cancel();
        // Its holder gives up on the transaction: the connection goes back to the pool, frozen.
    }
    let released = eventually_some(Duration::from_secs(30), || {
        let direct = direct.clone();
        async move { schedule::request_rerun(&direct, tenant, ObjectClass::User, SyncMode::Delta).await.ok() }
    })
    .await;
    assert!(released.is_some(), "the server ended the frozen transaction and released its row lock");
    // The frozen connection is not handed out again: checking it times out and a new one is opened
    // (through the frozen proxy, whose new connections stay silent too, so the pool reports an error).
    let checkout = tokio::time::timeout(Duration::from_secs(30), frozen_pool.get()).await;
    assert!(checkout.expect("pool.get() does not hang on a frozen connection").is_err());
}

#[tokio::test]
async fn a_quarantine_that_ran_out_disables_the_tenant_which_then_shows_as_blocked() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let tenants = create_tenants(&pool, 2).await;
    let (old, recent) = (tenants[0], tenants[1]);
    for tenant in [old, recent] {
        for _ in 0..5 {
            schedule::record_failure(&pool, tenant, ObjectClass::User, "Graph said 401", 5).await.expect("failure");
        }
    }
    let admin = plain_session(&db).await;
    admin
        .execute("UPDATE tenants SET quarantined_at = now() - interval '29 days' WHERE id = $1", &[&old])
        .await
        .expect("age the quarantine");
    admin
        .execute("UPDATE tenants SET quarantined_at = now() - interval '27 days' WHERE id = $1", &[&recent])
        .await
        .expect("age the quarantine");
    for tenant in [old, recent] {
        schedule::record_failure(&pool, tenant, ObjectClass::User, "Graph said 401", 5).await.expect("failure");
    }

    let states = metrics_queries::tenant_states(&pool).await.expect("states");
    let rows = admin
        .query("SELECT id, enabled, quarantine_reason FROM tenants WHERE id = ANY($1) ORDER BY id", &[&tenants])
        .await
        .expect("tenants");
    let (old_row, recent_row) = (&rows[0], &rows[1]);
    assert!(!old_row.get::<_, bool>(1), "quarantined 29 days: disabled");
    let reason: String = old_row.get(2);
    assert!(reason.starts_with("disabled after 28 days in quarantine"), "{reason}");
    assert!(recent_row.get::<_, bool>(1), "quarantined 27 days: still retried");
    let blocked: Vec<bool> = states.iter().map(|s| s.blocked).collect();
    let quarantined: Vec<bool> = states.iter().map(|s| s.quarantined).collect();
    assert_eq!(blocked, vec![true, false], "the metric's blocked state fires for the disabled tenant only");
    assert_eq!(quarantined, vec![false, true]);
    let audited: i64 = admin
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'tenant.quarantine_cutoff' AND target_id = $1",
            &[&old.to_string()],
        )
        .await
        .expect("audit")
        .get(0);
    assert_eq!(audited, 1, "the cut-off is in the audit log");
    // A later failure does not record it again.
    schedule::record_failure(&pool, old, ObjectClass::User, "Graph said 401", 5).await.expect("failure");
    let audited: i64 = admin
        .query_one("SELECT count(*) FROM audit_log WHERE action = 'tenant.quarantine_cutoff'", &[])
        .await
        .expect("audit")
        .get(0);
    assert_eq!(audited, 1);
}

/// An API request that waits past `lock_timeout` (an operator's migration holding a table lock) is a 503
/// the client can retry, not a 500.
#[tokio::test]
async fn an_api_request_stuck_on_a_lock_answers_503_after_lock_timeout() {
    let db = TestDb::migrated().await;
    let amqp = crate::support::TestAmqp::new();
    let admin = "es_store-sessions-admin-token-0123456789abcdef";
    let settings = settings_with(&[
        ("ENTRASYNC_DATABASE_URL", db.url.as_str()),
        ("ENTRASYNC_AMQP_PREFIX", amqp.prefix.as_str()),
        ("ENTRASYNC_SERVE_ROLES", "api"),
        ("ENTRASYNC_ADMIN_TOKEN", admin),
        ("ENTRASYNC_DATABASE_LOCK_TIMEOUT_SECS", "1"),
    ]);
    let app = crate::support::app::spawn_app(&settings).await;
    let holder = plain_session(&db).await;
    holder.batch_execute("BEGIN; LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/tenants", app.address))
        .bearer_auth(admin)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    holder.batch_execute("ROLLBACK").await.expect("unlock");
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("try again"), "{body}");
    app.handle.stop(true).await;
}
