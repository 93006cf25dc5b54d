//! The web console: a small hand-written front end (one page, one script, one style sheet) embedded in
//! the binary and served at `/`. It is a client of `/api/v1` and nothing else: it signs in with an API
//! token kept in the tab's `sessionStorage` and sends it as `Authorization: Bearer` on every call.
//! No framework, no build step, no external resource (fonts, CDNs): `cargo build` is the whole build,
//! and the strict Content-Security-Policy below holds because the files have no inline script or style.
//! docs/api.md describes the API; docs/decisions.md why the console is written this way.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// Scripts, styles and API calls only from this origin; images also as `data:` URLs; never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/console/app.js", web::get().to(app_js))
        .route("/console/app.css", web::get().to(app_css));
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// One embedded file with the console's headers. `no-cache` makes the browser revalidate, so a new
/// binary's console is picked up on the next load.
fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CSP forbids inline scripts and styles: the page must not need them.
    #[test]
    fn the_page_has_no_inline_script_or_style() {
        assert!(!INDEX_HTML.contains("<style"), "inline <style> in index.html");
        assert!(!INDEX_HTML.contains(" style="), "style attribute in index.html");
        for handler in ["onclick=", "onload=", "onsubmit=", "onerror=", "oninput=", "onchange="] {
            assert!(!INDEX_HTML.contains(handler), "inline event handler {handler} in index.html");
        }
        for script in INDEX_HTML.split("<script").skip(1) {
            assert!(script.trim_start().starts_with("src="), "inline <script> in index.html");
        }
        assert!(!APP_JS.contains("innerHTML"), "app.js builds the DOM with nodes, never innerHTML");
        assert!(!APP_JS.contains("setAttribute('style'"), "app.js sets no style attribute");
    }

    /// The scoping editor offers every operator the API accepts (a new one needs its label in app.js).
    #[test]
    fn the_scoping_editor_offers_every_operator() {
        for operator in crate::model::mapping::ScopeOperator::ALL {
            let name = serde_json::to_value(operator).unwrap();
            let name = name.as_str().unwrap();
            assert!(APP_JS.contains(&format!("['{name}', '")), "app.js's SCOPE_OPERATORS lacks {name}");
        }
        for kind in ["direct", "constant", "expression", "none"] {
            assert!(APP_JS.contains(&format!("['{kind}', '")), "app.js's MAPPING_TYPES lacks {kind}");
        }
    }

    /// Nothing is fetched from another origin (the console works without external network).
    #[test]
    fn the_console_loads_nothing_from_elsewhere() {
        for (name, text) in [("index.html", INDEX_HTML), ("app.css", APP_CSS)] {
            assert!(!text.contains("http://") && !text.contains("https://"), "{name} names another origin");
            assert!(!text.contains("@import") && !text.contains("@font-face"), "{name} loads fonts or styles");
        }
        // app.js names URLs only as input placeholders; its requests go to relative /api/v1 paths.
        assert!(!APP_JS.contains("fetch('http") && !APP_JS.contains("fetch(`http"), "app.js fetches another origin");
    }
}
