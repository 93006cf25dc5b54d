//! The web console in headless Chromium through chromedriver (tests/support/browser.rs).
//!
//! A real service runs in this process (every role: API, scheduler, workers), against its own database,
//! RabbitMQ names and an in-process Graph emulator; the browser drives the console as an operator would.
//! Screenshots of each step land in `target/console-screenshots/` for review.
//!
//! The tests skip (saying so) when chromedriver is not installed, unless `CI` is set: then they fail.

use std::time::Duration;

use crate::support::app::{spawn_app, TestApp};
use crate::support::browser::{Browser, DEFAULT_WAIT};
use crate::support::{settings_with, TestAmqp, TestDb};

/// The bootstrap admin token (`ENTRASYNC_ADMIN_TOKEN`).
const ADMIN_TOKEN: &str = "es_consoleBrowserTestAdminToken0123456789abcdefXYZ";

/// A service with the console, a database, RabbitMQ names and an emulator.
struct Stack {
    app: TestApp,
    sim: graph_sim::RunningSim,
    pool: entrasync::store::Pool,
    _db: TestDb,
    _amqp: TestAmqp,
}

impl Stack {
    /// The service with the bootstrap admin token, plus `extra` settings.
    async fn start(extra: &[(&str, &str)]) -> Stack {
        let mut vars = vec![("ENTRASYNC_ADMIN_TOKEN", ADMIN_TOKEN)];
        vars.extend_from_slice(extra);
        Stack::start_with(&vars).await
    }

    async fn start_with(extra: &[(&str, &str)]) -> Stack {
        use base64::Engine;
        let db = TestDb::migrated().await;
        let amqp = TestAmqp::new();
        let sim = graph_sim::GraphSim::start(Default::default()).expect("emulator");
        let secrets_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let mut vars = vec![
            ("ENTRASYNC_DATABASE_URL", db.url.as_str()),
            ("ENTRASYNC_AMQP_PREFIX", amqp.prefix.as_str()),
            ("ENTRASYNC_SECRETS_KEY", secrets_key.as_str()),
        ];
        vars.extend_from_slice(extra);
        let app = spawn_app(&settings_with(&vars)).await;
        let pool = db.pool();
        Stack { app, sim, pool, _db: db, _amqp: amqp }
    }
}

/// Signs in through the sign-in form.
async fn sign_in(browser: &Browser, app: &TestApp, token: &str) {
    browser.goto(&format!("{}/", app.address)).await;
    browser.fill("#signin-token", token).await;
    browser.click("#signin-submit").await;
}

/// Messages the browser console logged that point at a broken page: a script error or a resource the
/// Content-Security-Policy refused. (Failed API calls the test provoked are expected and not listed.)
async fn page_errors(browser: &Browser) -> Vec<String> {
    browser
        .console_log()
        .await
        .into_iter()
        .filter(|(_, text)| {
            text.contains("Content Security Policy") || text.contains("Uncaught") || text.contains("Refused to")
        })
        .map(|(level, text)| format!("{level}: {text}"))
        .collect()
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_content_security_policy() {
    let stack = Stack::start_with(&[]).await;
    let http = reqwest::Client::new();
    for (path, content_type) in
        [("/", "text/html"), ("/console/app.js", "text/javascript"), ("/console/app.css", "text/css")]
    {
        let response = http.get(format!("{}{path}", stack.app.address)).send().await.expect("GET");
        assert_eq!(response.status(), 200, "GET {path}");
        let headers = response.headers().clone();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(header("content-type").starts_with(content_type), "{path}: content type {:?}", header("content-type"));
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: CSP {csp:?} lacks {directive:?}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: CSP {csp:?}");
        let body = response.text().await.expect("body");
        assert!(!body.is_empty(), "{path} is empty");
    }
    let page = http.get(format!("{}/", stack.app.address)).send().await.expect("GET /").text().await.expect("body");
    assert!(
        page.contains("/console/app.js") && page.contains("/console/app.css"),
        "index.html loads the script and the style sheet"
    );
    stack.app.handle.stop(true).await;
}

#[tokio::test]
async fn sign_in_navigation_and_narrow_layout() {
    let Some(browser) = Browser::start(1280, 800).await else { return };
    let stack = Stack::start(&[]).await;
    let app = &stack.app;

    // A wrong token is refused on the sign-in form, and the console stays signed out.
    browser.goto(&format!("{}/", app.address)).await;
    browser.wait_for("#signin-token").await;
    browser.screenshot("01-sign-in").await;
    sign_in(&browser, app, "es_not_a_token_of_this_service_at_all_0000000000").await;
    browser.wait_text("#signin-error", "not accepted").await;
    assert!(!browser.exists("#shell:not([hidden])").await, "the shell stays hidden after a refused token");

    // The admin token opens the tenant list; the session shows who and which role.
    sign_in(&browser, app, ADMIN_TOKEN).await;
    browser.wait_for("#page-title").await;
    browser.wait_text("#page-title", "Tenants").await;
    assert_eq!(browser.text("#session-role").await, "admin");
    browser.wait_for("#add-tenant").await;
    assert_eq!(browser.property("#add-tenant", "disabled").await, serde_json::json!(false), "admins may add tenants");
    browser.screenshot("02-tenants-empty").await;

    // Every page of the navigation pane opens.
    for (link, title, hash) in [
        ("#nav-profiles", "Credential profiles", "#/credential-profiles"),
        ("#nav-history", "Sync history", "#/history"),
        ("#nav-audit", "Audit log", "#/audit"),
        ("#nav-directory", "Directory", "#/directory"),
        ("#nav-tenants", "Tenants", "#/tenants"),
    ] {
        browser.click(link).await;
        browser.wait_text("#page-title", title).await;
        assert!(browser.current_url().await.ends_with(hash), "{link} leads to {hash}");
        let current = browser.property(link, "ariaCurrent").await;
        assert_eq!(current, serde_json::json!("page"), "{link} is marked as the current page");
    }
    browser.click("#nav-history").await;
    browser.wait_for("#history-table").await;
    browser.screenshot("03-history-empty").await;

    // The token survives a reload (sessionStorage), and keyboard users get a visible focus outline.
    browser.cmd("POST", "/refresh", serde_json::json!({})).await;
    browser.wait_text("#page-title", "Sync history").await;
    let outline = browser
        .execute(
            "const b = document.getElementById('history-export'); b.focus({focusVisible: true}); \
             return getComputedStyle(b).outlineStyle;",
            vec![],
        )
        .await;
    assert_ne!(outline, serde_json::json!("none"), "a focused button shows an outline");

    // A narrow window: the navigation pane collapses behind the Menu button, above the content.
    browser.set_window_size(420, 800).await;
    browser.execute("location.hash = '#/tenants';", vec![]).await;
    browser.wait_text("#page-title", "Tenants").await;
    browser.screenshot("04-narrow-tenants").await;
    browser.click("#nav-toggle").await;
    browser.wait_for("#nav-profiles").await;
    browser.screenshot("05-narrow-menu-open").await;
    browser.click("#nav-profiles").await;
    browser.wait_text("#page-title", "Credential profiles").await;
    assert!(!browser.exists("#nav.open").await, "following a link closes the menu");
    browser.set_window_size(1280, 800).await;

    // Dialogs take the focus, close on Escape and give the focus back.
    browser.execute("location.hash = '#/tenants';", vec![]).await;
    browser.click("#add-tenant").await;
    browser.wait_for("#tenant-form-tenant").await;
    let focused = browser.execute("return document.activeElement && document.activeElement.id;", vec![]).await;
    assert_eq!(focused, serde_json::json!("tenant-form-tenant"), "the dialog's first field has the focus");
    browser.screenshot("06-add-tenant-dialog").await;
    browser.keys("#tenant-form-tenant", "\u{E00C}").await;
    browser.wait_until("the dialog to close", "!document.getElementById('dialog').open", DEFAULT_WAIT).await;
    let focused = browser.execute("return document.activeElement && document.activeElement.id;", vec![]).await;
    assert_eq!(focused, serde_json::json!("add-tenant"), "the focus is back on the button that opened the dialog");

    // An admin creates a viewer token; it is shown once.
    browser.click("#nav-tokens").await;
    browser.click("#add-token").await;
    browser.fill("#token-form-name", "helpdesk").await;
    browser.choose("#token-form-role", "viewer").await;
    browser.click("#token-form-submit").await;
    browser.wait_for("#token-created").await;
    let viewer_token = browser.property("#token-created", "value").await.as_str().expect("token").to_owned();
    assert!(viewer_token.starts_with("es_"), "a token: {viewer_token}");
    browser.screenshot("07-token-created").await;
    browser.click("#token-form-cancel").await;
    browser.wait_text("#token-table", "helpdesk").await;
    assert!(!browser.text("#token-table").await.contains(&viewer_token), "the list never shows a token");

    // Signing out forgets the token.
    browser.click("#signout").await;
    browser.wait_for("#signin-token").await;
    let stored = browser.execute("return sessionStorage.getItem('entrasync.token');", vec![]).await;
    assert_eq!(stored, serde_json::Value::Null, "sign-out removes the token from sessionStorage");

    // The viewer reads, and every write button is disabled.
    sign_in(&browser, app, &viewer_token).await;
    browser.wait_text("#page-title", "Tenants").await;
    assert_eq!(browser.text("#session-role").await, "viewer");
    for button in ["#add-tenant", "#add-by-consent"] {
        assert_eq!(
            browser.property(button, "disabled").await,
            serde_json::json!(true),
            "{button} is disabled for a viewer"
        );
    }
    assert!(!browser.exists("#nav-tokens-item:not([hidden])").await, "viewers do not see the token page");
    browser.click("#nav-profiles").await;
    browser.wait_for("#add-profile").await;
    assert_eq!(browser.property("#add-profile", "disabled").await, serde_json::json!(true));
    browser.screenshot("08-viewer-profiles").await;
    browser.click("#signout").await;
    browser.wait_for("#signin-token").await;

    let errors = page_errors(&browser).await;
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    drop(browser);
    stack.app.handle.stop(true).await;
}

/// The emulated app's secret (what the operator pastes into the credential profile).
const APP_SECRET: &str = "console-browser-test-secret-0123456789";
const DOMAIN: &str = "contoso-console.example";
const TENANT_NAME: &str = "Contoso (emulated)";

/// Clicks `refresh` until the JavaScript `condition` holds (for state a worker changes in the background).
async fn refresh_until(browser: &Browser, refresh: &str, what: &str, condition: &str, timeout: Duration) {
    let script = format!("return Boolean({condition});");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if browser.execute(&script, vec![]).await == serde_json::json!(true) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            browser.wait_until(what, condition, Duration::from_millis(1)).await;
            return;
        }
        if browser.exists(refresh).await {
            browser.click(refresh).await;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

/// The tenant id in the console's address (`…#/tenants/{id}/…`).
async fn tenant_id_in_url(browser: &Browser) -> i64 {
    let url = browser.current_url().await;
    let rest = url.split("#/tenants/").nth(1).unwrap_or_else(|| panic!("not on a tenant page: {url}"));
    rest.split(['/', '?']).next().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("no tenant id in {url}"))
}

/// Old runs of `tenant_id`, one an hour back from a day ago: `failed` (with an outage message) every
/// fourth, `success` otherwise. Returns how many failed.
async fn insert_history(pool: &entrasync::store::Pool, tenant_id: i64, count: usize) -> usize {
    use entrasync::model::{ObjectClass, RunCounts, RunFinished, RunStarted, RunStatus, SyncMode, Trigger};
    let client = pool.get().await.expect("connection");
    let mut failed = 0;
    for i in 0..count {
        let run_id = uuid::Uuid::new_v4();
        let class = ObjectClass::ALL[i % 3];
        let started_at = chrono::Utc::now() - chrono::Duration::hours(24 + i as i64);
        let counts = RunCounts {
            total: 40 + i as u64,
            changed: (i % 7) as u64,
            deleted: (i % 3) as u64,
            ..RunCounts::default()
        };
        let start = RunStarted {
            run_id,
            tenant_id,
            class,
            mode: SyncMode::Delta,
            trigger: Trigger::Schedule,
            started_at,
            resumed: false,
            reason: None,
            counts: RunCounts::default(),
            instance_id: None,
            job_id: None,
        };
        entrasync::store::runs::insert_started(&client, &start).await.expect("insert run");
        let outage = i % 4 == 3;
        failed += usize::from(outage);
        let end = RunFinished {
            run_id,
            tenant_id,
            class,
            mode: SyncMode::Delta,
            status: if outage { RunStatus::Failed } else { RunStatus::Success },
            counts,
            reason: None,
            error: outage.then(|| format!("emulated outage {i}: Graph answered 503 Service Unavailable")),
            finished_at: started_at + chrono::Duration::seconds(30),
        };
        entrasync::store::runs::finish(&client, &end).await.expect("finish run");
    }
    failed
}

/// The issue's acceptance, as an operator: add a credential profile and a tenant by domain (testing the
/// connection first), grant permissions on the emulator's consent page, sync, page through and search the
/// history, export it as CSV, allow a held deletion; then add a second tenant by consent and delete one.
#[tokio::test]
async fn operator_adds_a_tenant_grants_syncs_reads_history_and_allows_held_deletions() {
    let Some(browser) = Browser::start(1280, 800).await else { return };
    // Deletions of 5 or more objects in one run are held for an operator.
    // No scheduler: only the runs the operator asks for.
    let stack =
        Stack::start(&[("ENTRASYNC_SYNC_DELETION_THRESHOLD", "5"), ("ENTRASYNC_SERVE_ROLES", "api,worker")]).await;
    let app = &stack.app;
    let sim = &stack.sim;
    let roles: Vec<String> = entrasync::demo::emulated::REQUESTED_ROLES.iter().map(|r| (*r).to_owned()).collect();
    let emulated_app = sim
        .state()
        .identity
        .register_app(graph_sim::identity::NewApp {
            secret: Some(APP_SECRET.to_owned()),
            display_name: Some("entrasync console test".to_owned()),
            roles: roles.clone(),
            ..Default::default()
        })
        .expect("emulated app");
    let directory = sim
        .state()
        .create_tenant(graph_sim::state::TenantSpec {
            domain: Some(DOMAIN.to_owned()),
            seed: Some(13),
            users: 30,
            groups: 6,
            devices: 12,
            ..Default::default()
        })
        .expect("emulated directory");

    // Tenant consent requests get the emulator's prompt too (Accept / Cancel), as at Microsoft.
    sim.state().identity.set_consent_page(true);

    // Sign in.
    sign_in(&browser, app, ADMIN_TOKEN).await;
    browser.wait_text("#page-title", "Tenants").await;
    browser.screenshot("10-tenants-empty").await;

    // A credential profile for the emulated app.
    browser.click("#nav-profiles").await;
    browser.click("#add-profile").await;
    browser.fill("#profile-form-name", "emulated app").await;
    browser.fill("#profile-form-client-id", &emulated_app.app_id).await;
    browser.fill("#profile-form-secret", APP_SECRET).await;
    browser.screenshot("11-add-profile").await;
    browser.click("#profile-form-submit").await;
    browser.wait_text("#profile-table", "emulated app").await;
    browser.wait_text("#profile-table", &emulated_app.app_id).await;
    assert!(!browser.text("#profile-table").await.contains(APP_SECRET), "the secret is never shown");
    browser.screenshot("12-profiles").await;

    // Add the tenant by its domain in the custom cloud (the emulator), testing the connection first: no
    // admin has consented yet, so the permissions are missing.
    browser.click("#nav-tenants").await;
    browser.click("#add-tenant").await;
    browser.fill("#tenant-form-name", TENANT_NAME).await;
    browser.choose("#tenant-form-cloud", "custom").await;
    browser.fill("#tenant-form-login-url", &sim.base_url()).await;
    browser.fill("#tenant-form-graph-url", &sim.base_url()).await;
    // A value the API refuses is shown next to its input.
    browser.fill("#tenant-form-tenant", "not a domain!").await;
    browser.click("#test-connection").await;
    browser
        .wait_until(
            "the error next to the Tenant input",
            "document.getElementById('tenant-form-tenant-error').textContent.length > 0",
            DEFAULT_WAIT,
        )
        .await;
    let invalid = browser.property("#tenant-form-tenant", "ariaInvalid").await;
    assert_eq!(invalid, serde_json::json!("true"), "the input is marked invalid");
    browser.screenshot("13a-add-tenant-field-error").await;
    browser.fill("#tenant-form-tenant", DOMAIN).await;
    let profile = browser.property("#tenant-form-profile", "value").await;
    assert_ne!(profile, serde_json::json!(""), "the only profile is chosen");
    assert_eq!(
        browser.property("#tenant-form-full-scan", "checked").await,
        serde_json::json!(true),
        "full scan is on by default"
    );
    browser.click("#test-connection").await;
    browser.wait_for("#test-connection-result").await;
    let result = browser.text("#test-connection-result").await;
    assert!(result.contains(&directory.tenant_id), "the test names the directory the domain resolved to: {result}");
    browser.wait_text("#dialog-message", "permissions are missing").await;
    browser.screenshot("13-add-tenant-tested").await;
    browser.click("#tenant-form-submit").await;
    browser.wait_text("#page-title", TENANT_NAME).await;
    let tenant_id = tenant_id_in_url(&browser).await;
    browser.wait_text("#tenant-entra-id", &directory.tenant_id).await;
    browser.wait_for(&format!("#nav-tenant-{tenant_id}")).await;
    browser.screenshot("14-tenant-added").await;

    // Grant permissions: the emulator's consent page, Accept, and back to the tenant's page.
    browser.dismiss_notifications().await;
    browser.click("#grant-permissions").await;
    // The emulator answers a tenant's consent request at once, or with its page when that is on. The
    // console's own page is no sign of either: the navigation to the emulator may not have started yet.
    // The way back runs a permission check against Graph, so it gets more time on a busy machine.
    browser
        .wait_until(
            "the consent page or the way back",
            "document.getElementById('consent-accept') || (document.getElementById('notifications') \
             && document.getElementById('notifications').textContent.includes('Consent recorded'))",
            Duration::from_secs(60),
        )
        .await;
    if browser.exists("#consent-accept").await {
        browser.screenshot("15-emulator-consent-page").await;
        browser.click("#consent-accept").await;
    }
    browser
        .wait_until(
            "the consent to be recorded",
            "document.getElementById('notifications') \
             && document.getElementById('notifications').textContent.includes('Consent recorded')",
            Duration::from_secs(60),
        )
        .await;
    browser.wait_text("#page-title", TENANT_NAME).await;
    assert!(browser.current_url().await.starts_with(&app.address), "back in the console");
    browser.wait_text("#permission-status", "Granted").await;
    browser.screenshot("16-permissions-granted").await;

    // Test the connection again from the tenant's page: every set granted.
    browser.click("#config-test-connection").await;
    browser.wait_for("#permission-test-result").await;
    let result = browser.text("#permission-test-result").await;
    assert!(!result.contains("Needs permissions") && result.contains("Granted"), "all granted now: {result}");

    // Sync now, all classes, full.
    browser.dismiss_notifications().await;
    browser.choose("#sync-mode", "full").await;
    browser.click("#sync-now").await;
    browser.wait_text("#notifications", "Sync queued").await;
    browser.click("#tab-history").await;
    browser.wait_for("#history-table").await;
    refresh_until(
        &browser,
        "#history-refresh",
        "three successful runs",
        "document.querySelectorAll('#history-rows tr[data-status=success]').length === 3",
        Duration::from_secs(90),
    )
    .await;
    browser.screenshot("17-history-after-sync").await;

    // Page through the history: 120 older runs plus the 3 of the sync.
    let failed = insert_history(&stack.pool, tenant_id, 120).await;
    browser.click("#history-refresh").await;
    browser.wait_text_is("#history-total", "1–50 of 123 runs").await;
    browser.click("#history-next").await;
    browser.wait_text_is("#history-total", "51–100 of 123 runs").await;
    browser.click("#history-next").await;
    browser.wait_text_is("#history-total", "101–123 of 123 runs").await;
    assert_eq!(
        browser.property("#history-next", "disabled").await,
        serde_json::json!(true),
        "the last page has no next"
    );
    browser.screenshot("18-history-last-page").await;
    browser.click("#history-prev").await;
    browser.wait_text_is("#history-total", "51–100 of 123 runs").await;
    browser.choose("#history-page-size", "100").await;
    browser.wait_text_is("#history-total", "1–100 of 123 runs").await;
    let rows = browser.execute("return document.querySelectorAll('#history-rows tr').length;", vec![]).await;
    assert_eq!(rows, serde_json::json!(100), "100 rows per page");

    // Search it: the failed runs' error text.
    browser.fill("#history-search", "outage").await;
    browser.wait_text("#history-total", &format!("of {failed} runs")).await;
    let statuses = browser
        .execute("return Array.from(document.querySelectorAll('#history-rows tr')).map(r => r.dataset.status);", vec![])
        .await;
    assert!(
        statuses.as_array().is_some_and(|s| s.len() == failed && s.iter().all(|v| v == "failed")),
        "the search shows exactly the failed runs: {statuses}"
    );
    browser.screenshot("19-history-search").await;

    // Export the searched view as CSV: a header and one row per failed run.
    browser.click("#history-export").await;
    let file = browser.wait_download("entrasync-history-").await;
    let name = file.file_name().expect("file name").to_string_lossy().into_owned();
    assert!(name.ends_with(".csv") && name.len() == "entrasync-history-YYYY-MM-DD.csv".len(), "file name {name}");
    let csv = std::fs::read_to_string(&file).expect("read CSV");
    let lines: Vec<&str> = csv.lines().filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("run_id,tenant,class,type"), "CSV header: {}", lines[0]);
    assert_eq!(lines.len(), failed + 1, "one CSV row per searched run:\n{csv}");
    assert!(
        lines[1..].iter().all(|l| l.contains("outage") && l.contains("failed") && l.contains(TENANT_NAME)),
        "rows:\n{csv}"
    );

    // Held deletions: 10 users disappear in the directory; the next delta run holds their deletion.
    let users = sim.state().ids(&directory.tenant_id, entrasync::model::ObjectClass::User, true).expect("user ids");
    for id in users.iter().skip(1).take(10) {
        sim.state().delete_object(&directory.tenant_id, id, false).expect("delete user");
    }
    let live_users = || async {
        let client = stack.pool.get().await.expect("connection");
        entrasync::store::objects::live_count(&client, tenant_id, entrasync::model::ObjectClass::User)
            .await
            .expect("live users")
    };
    let before = live_users().await;
    browser.click("#tab-config").await;
    browser.choose("#sync-class", "user").await;
    browser.choose("#sync-mode", "delta").await;
    browser.click("#sync-now").await;
    browser.wait_text("#notifications", "Sync queued").await;
    refresh_until(
        &browser,
        "#tenant-refresh",
        "a held deletion",
        "document.querySelector('#held-table')",
        Duration::from_secs(90),
    )
    .await;
    browser.wait_text("#held-table", "10").await;
    browser.dismiss_notifications().await;
    browser.screenshot("20-held-deletions").await;
    browser.click("#held-table button[id^=held-allow-]").await;
    browser.wait_for("#confirm-ok").await;
    browser.screenshot("21-allow-confirm").await;
    browser.click("#confirm-ok").await;
    browser.wait_text("#notifications", "Held deletions applied").await;
    browser.wait_for("#held-empty").await;
    assert_eq!(live_users().await, before - 10, "allowing applies exactly the held deletions");

    // The tenant list shows the tenant with its sync and permission status.
    browser.click("#nav-tenants").await;
    browser.wait_text("#tenant-table", TENANT_NAME).await;
    browser.wait_text("#tenant-table", "Granted").await;
    browser.dismiss_notifications().await;
    browser.screenshot("22-tenants").await;

    // The audit log has the changes, never the secret.
    browser.click("#nav-audit").await;
    browser.wait_for("#audit-rows tr").await;
    let audit = browser.text("#audit-table").await;
    assert!(audit.contains("bootstrap"), "who: {audit}");
    assert!(!browser.execute("return document.body.innerText;", vec![]).await.to_string().contains(APP_SECRET));
    browser.screenshot("23-audit").await;

    // The directory browser lists the synced users and shows one.
    browser.execute(&format!("location.hash = '#/tenants/{tenant_id}/directory?class=user';"), vec![]).await;
    browser.wait_for("#directory-rows tr a").await;
    browser.screenshot("24-directory").await;
    browser.click("#directory-rows tr a").await;
    browser.wait_for("#object-attrs").await;
    browser.screenshot("25-object").await;

    // A narrow window.
    browser.set_window_size(420, 800).await;
    browser.execute(&format!("location.hash = '#/tenants/{tenant_id}/config';"), vec![]).await;
    browser.wait_text("#page-title", TENANT_NAME).await;
    browser.screenshot("26-narrow-tenant").await;
    browser.execute(&format!("location.hash = '#/tenants/{tenant_id}/history';"), vec![]).await;
    browser.wait_for("#history-rows tr").await;
    browser.screenshot("27-narrow-history").await;
    browser.set_window_size(1280, 800).await;

    // Add a second directory by consent: the admin names it on the emulator's page.
    let second = sim
        .state()
        .create_tenant(graph_sim::state::TenantSpec {
            domain: Some("fabrikam-console.example".to_owned()),
            display_name: Some("Fabrikam Console".to_owned()),
            seed: Some(14),
            users: 5,
            ..Default::default()
        })
        .expect("second directory");
    browser.execute("location.hash = '#/tenants';", vec![]).await;
    browser.click("#add-by-consent").await;
    browser.choose("#consent-cloud", "custom").await;
    browser.fill("#consent-login-url", &sim.base_url()).await;
    browser.fill("#consent-graph-url", &sim.base_url()).await;
    browser.click("#consent-submit").await;
    browser.wait_for("#consent-tenant").await;
    browser.fill("#consent-tenant", "fabrikam-console.example").await;
    browser.screenshot("28-consent-new-tenant").await;
    browser.click("#consent-accept").await;
    browser.wait_text("#tenant-entra-id", &second.tenant_id).await;
    let second_id = tenant_id_in_url(&browser).await;
    browser.wait_text("#page-title", "Fabrikam Console").await;
    assert_ne!(second_id, tenant_id);
    browser.screenshot("29-added-by-consent").await;

    // Delete it: the dialog names the tenant and wants its name typed.
    let second_name = browser.text("#page-title").await;
    browser.click("#config-delete").await;
    browser.wait_text("#dialog", &second_name).await;
    assert_eq!(browser.property("#delete-confirm", "disabled").await, serde_json::json!(true), "nothing typed yet");
    browser.fill("#delete-confirm-name", &second_name).await;
    browser.screenshot("30-delete-dialog").await;
    browser.click("#delete-confirm").await;
    browser.wait_text("#page-title", "Tenants").await;
    browser.wait_text("#notifications", "deleted").await;
    assert!(!browser.exists(&format!("#tenant-row-{second_id}")).await, "the deleted tenant is gone");

    let errors = page_errors(&browser).await;
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    drop(browser);
    stack.app.handle.stop(true).await;
}

/// A call to the API with `token` (for what the test sets up or checks behind the console's back).
async fn api_call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", app.address)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("API request");
    let status = response.status();
    let text = response.text().await.expect("API answer");
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// The text of the element `css` now, or "" when there is none.
async fn text_now(browser: &Browser, css: &str) -> String {
    let script = format!("const e = document.querySelector({css:?}); return e ? e.textContent : '';");
    browser.execute(&script, vec![]).await.as_str().unwrap_or_default().to_owned()
}

/// Issue 14's console: a tenant's Mappings tab. An Expression mapping is written in the editor (a bad
/// expression shows its positioned error with a caret under the character; a good one its attributes and
/// its result on stored users picked in the preview), a scoping filter the API refuses shows the problem
/// next to its value, the fixed set saves and is there after a reload; a save based on a stale version
/// tells the operator to reload.
#[tokio::test]
async fn mappings_tab_edits_an_expression_with_live_validation_and_preview_and_saves_the_set() {
    use reqwest::Method;
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let world = crate::service_support::World::start().await;
    let tenant = world.tenant(41, 12, 50).await;
    let settings = world.settings(&[
        ("ENTRASYNC_ADMIN_TOKEN", ADMIN_TOKEN),
        ("ENTRASYNC_SERVE_ROLES", "api,worker"),
        ("ENTRASYNC_DATABASE_POOL_SIZE", "10"),
    ]);
    let app = spawn_app(&settings).await;
    let id = tenant.tenant_id;

    // Stored users to preview on: a full sync round against the emulator.
    let (status, body) = api_call(
        &app,
        ADMIN_TOKEN,
        Method::POST,
        &format!("/api/v1/tenants/{id}/sync"),
        Some(serde_json::json!({"classes": ["user"], "mode": "full"})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    let objects_path = format!("/api/v1/tenants/{id}/objects?class=user&limit=50");
    let stored = crate::support::eventually(Duration::from_secs(90), || async {
        let (_, page) = api_call(&app, ADMIN_TOKEN, Method::GET, &objects_path, None).await;
        page["items"].as_array().is_some_and(|items| items.len() >= 2)
    })
    .await;
    assert!(stored, "the sync round stored the tenant's users");

    sign_in(&browser, &app, ADMIN_TOKEN).await;
    browser.wait_text("#page-title", "Tenants").await;
    browser.execute(&format!("location.hash = '#/tenants/{id}/config';"), vec![]).await;
    browser.click("#tab-mappings").await;
    browser.wait_for("#mapping-table").await;
    assert!(browser.current_url().await.ends_with(&format!("#/tenants/{id}/mappings/user")));
    browser.wait_for("#scoping-empty").await;
    assert_eq!(browser.property("#mappings-save", "disabled").await, serde_json::json!(true), "nothing to save yet");
    browser.screenshot("40-mappings-empty").await;

    // Add an Expression mapping through the editor.
    browser.click("#mapping-add").await;
    browser.choose("#mapping-type", "expression").await;
    browser.wait_for("#mapping-expression").await;
    assert!(!browser.exists("#mapping-direct-box:not([hidden])").await, "the Direct field hides for an expression");

    // A bad expression: the error with its position, and a caret under that character.
    let bad = r#"Join(".", [givenName] [surname])"#;
    browser.fill("#mapping-expression", bad).await;
    browser.wait_for("#expression-error").await;
    let message = browser.text("#expression-error").await;
    let position: usize = browser
        .execute("return Number(document.getElementById('expression-error').dataset.position);", vec![])
        .await
        .as_u64()
        .expect("position") as usize;
    assert!(message.starts_with(&format!("Character {position}:")), "the message names the character: {message}");
    assert!((10..=bad.len()).contains(&position), "the error is at the missing comma, not at the start: {message}");
    let caret = text_now(&browser, "#expression-caret .caret-mark").await;
    assert_eq!(caret.len(), position, "the caret {caret:?} stands under character {position}");
    assert_eq!(text_now(&browser, "#expression-caret .caret-line").await, bad);
    assert_eq!(browser.property("#mapping-expression", "ariaInvalid").await, serde_json::json!("true"));
    browser.screenshot("41-expression-error").await;

    // A good one: valid, what it reads, deterministic, and its result on the first stored user.
    browser.fill("#mapping-expression", r#"Join(".", [givenName], [surname])"#).await;
    browser.wait_for("#expression-valid").await;
    browser.wait_text("#expression-attributes", "[givenName]").await;
    browser.wait_text("#expression-attributes", "[surname]").await;
    browser.wait_text("#expression-deterministic", "Deterministic").await;
    let expected_for = |object: &serde_json::Value| {
        let attrs = &object["attrs"];
        let given = attrs["givenName"].as_str().unwrap_or_default();
        let surname = attrs["surname"].as_str().unwrap_or_default();
        serde_json::json!(format!("{given}.{surname}")).to_string()
    };
    browser.wait_for("#preview-value").await;
    let first = browser.property("#preview-object", "value").await.as_str().expect("a chosen object").to_owned();
    let (_, object) =
        api_call(&app, ADMIN_TOKEN, Method::GET, &format!("/api/v1/tenants/{id}/objects/user/{first}"), None).await;
    let expected = expected_for(&object);
    assert!(expected.len() > 4, "the emulated user has a given name and a surname: {object}");
    browser.wait_text_is("#preview-value", &expected).await;
    browser.wait_text_is("#preview-type", "string").await;
    browser.screenshot("42-expression-preview").await;

    // Another user, found through the picker's search.
    let second = browser
        .execute(
            "const o = Array.from(document.querySelectorAll('#preview-object option')).find(o => o.value !== arguments[0]); return o && o.value;",
            vec![serde_json::json!(first)],
        )
        .await
        .as_str()
        .expect("a second user")
        .to_owned();
    let (_, other) =
        api_call(&app, ADMIN_TOKEN, Method::GET, &format!("/api/v1/tenants/{id}/objects/user/{second}"), None).await;
    let surname = other["attrs"]["surname"].as_str().expect("surname").to_owned();
    browser.fill("#preview-search", &surname).await;
    browser
        .wait_until(
            "the search to list the second user",
            &format!(
                "Array.from(document.querySelectorAll('#preview-object option')).some(o => o.value === {second:?})"
            ),
            DEFAULT_WAIT,
        )
        .await;
    browser.choose("#preview-object", &second).await;
    browser.wait_text_is("#preview-value", &expected_for(&other)).await;

    // Null shows as null.
    browser.fill("#mapping-expression", "[noSuchAttribute]").await;
    browser.wait_text_is("#preview-type", "null").await;
    browser.wait_text_is("#preview-value", "null").await;
    browser.fill("#mapping-expression", r#"Join(".", [givenName], [surname])"#).await;
    browser.wait_text_is("#preview-value", &expected_for(&other)).await;

    browser.fill("#mapping-target", "alias").await;
    browser.click("#mapping-ok").await;
    browser.wait_until("the dialog to close", "!document.getElementById('dialog').open", DEFAULT_WAIT).await;
    browser.wait_text("#mapping-row-0", "alias").await;
    browser.wait_text("#mapping-row-0", "Expression").await;
    browser.wait_for("#mappings-dirty").await;

    // A scoping clause the API refuses (not a regular expression): the problem shows next to its value.
    browser.click("#scope-add-group").await;
    browser.fill("#scope-0-0-attribute", "givenName").await;
    browser.choose("#scope-0-0-operator", "regex_match").await;
    browser.fill("#scope-0-0-value", "(unclosed").await;
    browser.click("#mappings-save").await;
    browser
        .wait_until(
            "the problem next to the clause's value",
            "document.getElementById('scope-0-0-value-error') && document.getElementById('scope-0-0-value-error').textContent.length > 0",
            DEFAULT_WAIT,
        )
        .await;
    assert_eq!(browser.property("#scope-0-0-value", "ariaInvalid").await, serde_json::json!("true"));
    browser.wait_text("#mappings-problems", "scoping[0].clauses[0].value").await;
    browser.dismiss_notifications().await;
    browser.screenshot("43-mappings-422").await;
    let (_, unsaved) =
        api_call(&app, ADMIN_TOKEN, Method::GET, &format!("/api/v1/tenants/{id}/mappings/user"), None).await;
    assert_eq!(unsaved["version"], 0, "nothing was stored: {unsaved}");

    // A unary operator takes no value: the value input hides.
    browser.choose("#scope-0-0-operator", "is_not_null").await;
    assert!(!browser.exists("#scope-0-0-value:not([hidden])").await, "IS NOT NULL has no value input");

    // A non-deterministic expression applied Always: the editor warns, the API refuses it, and the
    // problem shows on its row and next to "Apply this mapping" in its dialog.
    browser.click("#mapping-add").await;
    browser.choose("#mapping-type", "expression").await;
    browser.fill("#mapping-expression", "FormatDateTime(Now(), , \"yyyyMMdd\")").await;
    browser.wait_text("#expression-deterministic", "Not deterministic").await;
    browser.wait_for("#expression-deterministic-note").await;
    browser.fill("#mapping-target", "stamp").await;
    browser.click("#mapping-ok").await;
    browser.wait_text("#mapping-row-1", "stamp").await;
    browser.click("#mappings-save").await;
    browser.wait_text("#mapping-problems-1", "on_create").await;
    browser.wait_text("#mappings-problems", "Mapping 2 (stamp)").await;
    assert!(!browser.exists("#scope-0-0-value-error:not(:empty)").await, "the fixed clause has no problem left");
    browser.screenshot("43b-mapping-row-problem").await;
    browser.click("#mapping-edit-1").await;
    browser.wait_text("#mapping-apply-error", "on_create").await;
    browser.choose("#mapping-apply", "on_create").await;
    browser.click("#mapping-ok").await;
    browser.wait_until("the dialog to close", "!document.getElementById('dialog').open", DEFAULT_WAIT).await;
    assert!(!browser.exists("#mapping-problems-1").await, "the changed mapping's problem is gone");

    // Save.
    browser.click("#mappings-save").await;
    browser.wait_text("#notifications", "mappings saved (version 1)").await;
    browser.wait_text("#notifications", "full scan").await;
    assert!(!browser.exists("#mappings-dirty:not([hidden])").await, "saved: no unsaved changes");
    browser.screenshot("44-mappings-saved").await;
    let (_, saved) =
        api_call(&app, ADMIN_TOKEN, Method::GET, &format!("/api/v1/tenants/{id}/mappings/user"), None).await;
    assert_eq!(saved["version"], 1, "{saved}");
    assert_eq!(
        saved["mappings"][0],
        serde_json::json!({"target": "alias", "source": {"type": "expression", "expression": "Join(\".\", [givenName], [surname])"},
                           "default_if_null": null, "apply": "always"})
    );
    assert_eq!(
        saved["scoping"],
        serde_json::json!([{"clauses": [{"attribute": "givenName", "operator": "is_not_null", "value": null}]}])
    );
    assert_eq!(saved["mappings"][1]["target"], "stamp", "{saved}");
    assert_eq!(saved["mappings"][1]["apply"], "on_create", "{saved}");

    // After a reload the saved set is what the tab shows.
    browser.cmd("POST", "/refresh", serde_json::json!({})).await;
    browser.wait_text("#mapping-row-0", "alias").await;
    browser.wait_text("#mapping-row-0", "Join(\".\", [givenName], [surname])").await;
    assert_eq!(browser.property("#scope-0-0-operator", "value").await, serde_json::json!("is_not_null"));
    assert_eq!(browser.property("#scope-0-0-attribute", "value").await, serde_json::json!("givenName"));
    browser.wait_text("#mappings-version", "Version 1").await;
    browser.dismiss_notifications().await;
    browser.screenshot("45-mappings-after-reload").await;

    // Someone else saves meanwhile: the console's save is refused and says to reload.
    let (status, body) = api_call(
        &app,
        ADMIN_TOKEN,
        Method::PUT,
        &format!("/api/v1/tenants/{id}/mappings/user"),
        Some(serde_json::json!({"version": 1, "mappings": [{"target": "alias", "source": {"type": "direct", "attribute": "mail"}}]})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    browser.click("#scope-remove-group-0").await;
    browser.click("#mappings-save").await;
    browser.wait_text("#mappings-conflict", "Reload").await;
    browser.screenshot("46-mappings-conflict").await;
    browser.click("#mappings-reload").await;
    browser.wait_text("#mapping-row-0", "mail").await;
    browser.wait_text("#mappings-version", "Version 2").await;

    // A narrow window: the rows become cards.
    browser.set_window_size(420, 900).await;
    browser.click("#mapping-edit-0").await;
    browser.choose("#mapping-type", "expression").await;
    browser.fill("#mapping-expression", r#"Join(".", [givenName] [surname])"#).await;
    browser.wait_for("#expression-caret").await;
    browser.screenshot("47-narrow-mapping-dialog").await;
    browser.click("#mapping-cancel").await;
    browser.dismiss_notifications().await;
    browser.cmd("POST", "/refresh", serde_json::json!({})).await;
    browser.wait_for("#mapping-row-0").await;
    browser.screenshot("48-narrow-mappings").await;
    browser.click("#scope-add-group").await;
    browser.choose("#scope-0-0-operator", "ends_with").await;
    browser.fill("#scope-0-0-value", "@contoso.com").await;
    browser.execute("document.getElementById('scoping-panel').scrollIntoView();", vec![]).await;
    browser.screenshot("49-narrow-scoping").await;
    browser.click("#mappings-discard").await;
    browser.wait_for("#scoping-empty").await;
    browser.set_window_size(1280, 900).await;

    let errors = page_errors(&browser).await;
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    drop(browser);
    app.handle.stop(true).await;
}

/// Issue 14's console: a tenant's Tags tab. Tag mappings are created (the count against the limit
/// shown), a duplicate is refused with the API's reason in the dialog, asset groups and manual tags are
/// added, a mapping that never synced is deleted at once after a confirmation saying what deletion does;
/// a viewer sees it all read-only.
#[tokio::test]
async fn tags_tab_creates_tag_mappings_with_the_limit_shown_and_manages_tags_and_asset_groups() {
    use reqwest::Method;
    let Some(browser) = Browser::start(1280, 900).await else { return };
    let world = crate::service_support::World::start().await;
    let tenant = world.tenant(42, 5, 50).await;
    let settings = world.settings(&[
        ("ENTRASYNC_ADMIN_TOKEN", ADMIN_TOKEN),
        ("ENTRASYNC_SERVE_ROLES", "api"),
        ("ENTRASYNC_DATABASE_POOL_SIZE", "4"),
    ]);
    let app = spawn_app(&settings).await;
    let id = tenant.tenant_id;

    sign_in(&browser, &app, ADMIN_TOKEN).await;
    browser.wait_text("#page-title", "Tenants").await;
    browser.execute(&format!("location.hash = '#/tenants/{id}/config';"), vec![]).await;
    browser.click("#tab-tags").await;
    browser.wait_text_is("#tag-mapping-count", "0 of 5").await;

    // department → custom tag "Department".
    browser.click("#tag-mapping-add").await;
    browser.wait_text("#tag-mapping-limit", "0 of 5").await;
    browser.choose("#tag-mapping-source", "department").await;
    browser.choose("#tag-mapping-target", "custom").await;
    browser.fill("#tag-mapping-key", "Department").await;
    browser.screenshot("50-tag-mapping-dialog").await;
    browser.click("#tag-mapping-submit").await;
    browser.wait_text("#tag-mapping-table", "department").await;
    browser.wait_text("#tag-mapping-table", "Department").await;
    browser.wait_text_is("#tag-mapping-count", "1 of 5").await;

    // The same mapping again is refused; the dialog says why.
    browser.click("#tag-mapping-add").await;
    browser.choose("#tag-mapping-source", "department").await;
    browser.fill("#tag-mapping-key", "Department").await;
    browser.click("#tag-mapping-submit").await;
    browser.wait_text("#dialog-message", "already maps").await;
    browser.screenshot("51-tag-mapping-duplicate").await;
    browser.click("#tag-mapping-cancel").await;

    // The same source to the Asset group tag is another mapping.
    browser.click("#tag-mapping-add").await;
    browser.choose("#tag-mapping-source", "department").await;
    browser.choose("#tag-mapping-target", "asset_group").await;
    assert!(
        browser.exists("#tag-mapping-dialog-form div[hidden] #tag-mapping-key").await,
        "the Asset group tag has no key"
    );
    browser.click("#tag-mapping-submit").await;
    browser.wait_text("#tag-mapping-table", "Asset group").await;
    browser.wait_text_is("#tag-mapping-count", "2 of 5").await;

    // Up to the limit (three more through the API), then the console shows the refusal.
    for source in ["city", "country", "jobTitle"] {
        let (status, body) = api_call(
            &app,
            ADMIN_TOKEN,
            Method::POST,
            &format!("/api/v1/tenants/{id}/tag-mappings"),
            Some(serde_json::json!({"source": source, "target": "custom", "key": source})),
        )
        .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    }
    browser.click("#tenant-refresh").await;
    browser.wait_text_is("#tag-mapping-count", "5 of 5").await;
    browser.click("#tag-mapping-add").await;
    browser.choose("#tag-mapping-source", "officeLocation").await;
    browser.fill("#tag-mapping-key", "Office").await;
    browser.click("#tag-mapping-submit").await;
    browser.wait_text("#dialog-message", "tags.max_mappings").await;
    browser.screenshot("51b-tag-mapping-limit").await;
    browser.click("#tag-mapping-cancel").await;
    let (_, all) = api_call(&app, ADMIN_TOKEN, Method::GET, &format!("/api/v1/tenants/{id}/tag-mappings"), None).await;
    for mapping in all["items"].as_array().expect("mappings").iter().filter(|m| m["source"] != "department") {
        let (status, _) = api_call(
            &app,
            ADMIN_TOKEN,
            Method::DELETE,
            &format!("/api/v1/tenants/{id}/tag-mappings/{}", mapping["id"]),
            None,
        )
        .await;
        assert_eq!(status, reqwest::StatusCode::NO_CONTENT, "a mapping that never synced goes at once");
    }
    browser.click("#tenant-refresh").await;
    browser.wait_text_is("#tag-mapping-count", "2 of 5").await;

    // Sync tags now queues a tag_sync job.
    browser.dismiss_notifications().await;
    browser.click("#tag-sync-now").await;
    browser.wait_text("#notifications", "Tag sync queued").await;

    // An asset group and a manual tag.
    browser.click("#asset-group-add").await;
    browser.fill("#asset-group-dialog-name", "Berlin office").await;
    browser.click("#asset-group-dialog-submit").await;
    browser.wait_text("#asset-group-table", "Berlin office").await;
    browser.wait_text("#asset-group-table", "Manual").await;
    browser.click("#tag-add").await;
    browser.fill("#tag-dialog-key", "Owner").await;
    browser.fill("#tag-dialog-value", "IT").await;
    browser.click("#tag-dialog-submit").await;
    browser.wait_text("#tag-table", "Owner").await;
    browser.wait_text("#tag-table", "Manual").await;
    browser.dismiss_notifications().await;
    browser.screenshot("52-tags-tab").await;

    // Delete the first mapping: it never synced, so it goes at once.
    let (_, mappings) =
        api_call(&app, ADMIN_TOKEN, Method::GET, &format!("/api/v1/tenants/{id}/tag-mappings"), None).await;
    let first = mappings["items"][0]["id"].as_i64().expect("mapping id");
    browser.click(&format!("#tag-mapping-delete-{first}")).await;
    browser.wait_text("#confirm-message", "never synced").await;
    browser.screenshot("53-tag-mapping-delete-confirm").await;
    browser.click("#confirm-ok").await;
    browser.wait_text_is("#tag-mapping-count", "1 of 5").await;
    assert!(!browser.exists(&format!("#tag-mapping-row-{first}")).await, "the mapping is gone");

    // A viewer sees the tab read-only.
    let (status, created) = api_call(
        &app,
        ADMIN_TOKEN,
        Method::POST,
        "/api/v1/tokens",
        Some(serde_json::json!({"name": "tag viewer", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
    let viewer = created["token"].as_str().expect("token").to_owned();
    browser.click("#signout").await;
    sign_in(&browser, &app, &viewer).await;
    browser.wait_text("#page-title", "Tenants").await;
    browser.execute(&format!("location.hash = '#/tenants/{id}/tags';"), vec![]).await;
    browser.wait_text_is("#tag-mapping-count", "1 of 5").await;
    for button in ["#tag-mapping-add", "#tag-sync-now", "#asset-group-add", "#tag-add"] {
        assert_eq!(
            browser.property(button, "disabled").await,
            serde_json::json!(true),
            "{button} is disabled for a viewer"
        );
    }
    browser.click("#tab-mappings").await;
    browser.wait_for("#mapping-table").await;
    assert_eq!(browser.property("#mapping-add", "disabled").await, serde_json::json!(true), "viewers add no mapping");
    browser.execute(&format!("location.hash = '#/tenants/{id}/tags';"), vec![]).await;
    browser.wait_for("#tag-mapping-table").await;
    browser.set_window_size(420, 900).await;
    browser.cmd("POST", "/refresh", serde_json::json!({})).await;
    browser.wait_for("#tag-mapping-count").await;
    browser.screenshot("54-narrow-tags-viewer").await;
    browser.set_window_size(1280, 900).await;

    let errors = page_errors(&browser).await;
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    drop(browser);
    app.handle.stop(true).await;
}
