//! The web console in headless Chromium through chromedriver (tests/support/browser.rs).
//!
//! A real service runs in this process (every role: API, scheduler, workers), against its own database,
//! RabbitMQ names and an in-process Graph emulator; the browser drives the console as an operator would.
//! Screenshots of each step land in `target/console-screenshots/` for review.
//!
//! The tests skip (saying so) when chromedriver is not installed, unless `CI` is set: then they fail.

use crate::support::app::{spawn_app, TestApp};
use crate::support::browser::Browser;
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

    // Signing out forgets the token.
    browser.click("#signout").await;
    browser.wait_for("#signin-token").await;
    let stored = browser.execute("return sessionStorage.getItem('entrasync.token');", vec![]).await;
    assert_eq!(stored, serde_json::Value::Null, "sign-out removes the token from sessionStorage");

    let errors = page_errors(&browser).await;
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    drop(browser);
    stack.app.handle.stop(true).await;
}
