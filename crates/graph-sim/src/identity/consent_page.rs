//! The "Permissions requested" page of the admin-consent prompt: the app, the application permissions it
//! requests, the directory the admin signs in to, Accept and Cancel. Self-contained HTML (no external
//! assets); every input has an id for browser tests: `consent-tenant`, `consent-accept`, `consent-cancel`,
//! `consent-client-id`, `consent-redirect-uri`, `consent-state`.

use actix_web::HttpResponse;

/// What the page shows and posts back.
pub(super) struct Prompt {
    pub app_name: String,
    pub app_id: String,
    pub roles: Vec<String>,
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// The directory field's value: the tenant's domain on a tenant-specific path, else what was typed.
    pub tenant_value: String,
    /// The path names the tenant: the field is shown read-only.
    pub tenant_fixed: bool,
}

/// Display strings of the Graph application permissions a sync app requests (permissions reference).
fn describe(role: &str) -> &'static str {
    match role {
        "User.Read.All" => "Read all users' full profiles",
        "User.ReadWrite.All" => "Read and write all users' full profiles",
        "GroupMember.Read.All" => "Read all group memberships",
        "Group.Read.All" => "Read all groups",
        "Group.ReadWrite.All" => "Read and write all groups",
        "Device.Read.All" => "Read all devices",
        "Device.ReadWrite.All" => "Read and write devices",
        "Directory.Read.All" => "Read directory data",
        "Directory.ReadWrite.All" => "Read and write directory data",
        "Organization.Read.All" => "Read organization information",
        _ => "Application permission",
    }
}

/// Escapes text for HTML element content and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:'Segoe UI',system-ui,sans-serif;background:#f2f2f2;margin:0}\
main{max-width:440px;margin:48px auto;background:#fff;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}\
h1{font-size:24px;font-weight:600;margin:0 0 16px}ul{padding-left:20px}li{margin:6px 0}\
.app{font-size:15px}.muted{color:#605e5c;font-size:13px}label{display:block;margin:16px 0 4px}\
input[type=text]{width:100%;box-sizing:border-box;padding:6px;font-size:15px}\
.error{color:#a80000;margin:8px 0}.buttons{display:flex;flex-direction:row-reverse;gap:8px;margin-top:24px}\
button{min-width:108px;padding:6px 12px;font-size:15px;border:1px solid #8a8886;background:#fff;cursor:pointer}\
button.primary{background:#0067b8;color:#fff;border-color:#0067b8}button:focus{outline:2px solid #000}";

/// Renders the page; `error` (a directory the admin cannot sign in to) is shown above the buttons.
pub(super) fn render(prompt: &Prompt, error: Option<&str>) -> HttpResponse {
    let mut html = String::with_capacity(4096);
    html.push_str(&format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Permissions requested</title><style>{STYLE}</style></head><body><main>\
         <h1>Permissions requested</h1>\
         <p class=\"app\" id=\"consent-app\"><strong>{}</strong><br><span class=\"muted\">App id {}</span></p>\
         <p>This app would like to:</p><ul id=\"consent-permissions\">",
        escape(&prompt.app_name),
        escape(&prompt.app_id),
    ));
    if prompt.roles.is_empty() {
        html.push_str("<li>Sign in only: the app requests no application permissions</li>");
    }
    for role in &prompt.roles {
        html.push_str(&format!("<li>{} <span class=\"muted\">({})</span></li>", describe(role), escape(role)));
    }
    html.push_str(&format!(
        "</ul><p class=\"muted\">If you accept, this app gets access to the specified resources for all users in \
         your organization, without a signed-in user. No one else will be prompted to review these \
         permissions.</p>\
         <form method=\"post\" action=\"adminconsent\">\
         <input type=\"hidden\" id=\"consent-client-id\" name=\"client_id\" value=\"{}\">\
         <input type=\"hidden\" id=\"consent-redirect-uri\" name=\"redirect_uri\" value=\"{}\">",
        escape(&prompt.client_id),
        escape(&prompt.redirect_uri),
    ));
    if let Some(state) = &prompt.state {
        html.push_str(&format!(
            "<input type=\"hidden\" id=\"consent-state\" name=\"state\" value=\"{}\">",
            escape(state)
        ));
    }
    html.push_str(&format!(
        "<label for=\"consent-tenant\">Sign in as the admin of</label>\
         <input type=\"text\" id=\"consent-tenant\" name=\"tenant\" value=\"{}\" {} autocomplete=\"off\" \
         placeholder=\"contoso.onmicrosoft.com or the tenant id\">",
        escape(&prompt.tenant_value),
        if prompt.tenant_fixed { "readonly" } else { "required autofocus" },
    ));
    if let Some(error) = error {
        html.push_str(&format!("<p class=\"error\" id=\"consent-error\" role=\"alert\">{}</p>", escape(error)));
    }
    // Accept comes first so that Enter in the field accepts; the row is reversed to show Cancel, Accept.
    html.push_str(
        "<div class=\"buttons\">\
         <button type=\"submit\" id=\"consent-accept\" name=\"action\" value=\"accept\" class=\"primary\">Accept</button>\
         <button type=\"submit\" id=\"consent-cancel\" name=\"action\" value=\"cancel\" formnovalidate>Cancel</button>\
         </div></form></main></body></html>",
    );
    let mut response = if error.is_some() { HttpResponse::BadRequest() } else { HttpResponse::Ok() };
    response
        .content_type("text/html; charset=utf-8")
        // The page is the prompt's own: no caching, no framing (as the real sign-in pages).
        .insert_header(("cache-control", "no-store"))
        .insert_header(("x-frame-options", "DENY"))
        .body(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_is_escaped() {
        assert_eq!(escape(r#"<script>"a"&'b'</script>"#), "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/script&gt;");
    }
}
