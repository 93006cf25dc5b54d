//! Headless Chromium through chromedriver, for the console's browser tests.
//!
//! The W3C WebDriver protocol is JSON over HTTP; this speaks it with reqwest. (fantoccini 0.22 without
//! its TLS features builds a client only from a `hyper_util` connector, which the test crate cannot
//! name without another dependency.) chromedriver runs as a child process on a free port and is killed
//! on drop; Chromium downloads into a directory of the test's own, removed on drop.
//!
//! `Browser::start` returns `None` (the test skips, saying why) when chromedriver is not installed and
//! `CI` is not set; under CI a missing chromedriver fails the test.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::app::{free_port, ChildGuard};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const DEFAULT_WAIT: Duration = Duration::from_secs(15);

/// Where chromedriver is: `CHROMEDRIVER`, else Debian's `/usr/bin/chromedriver`, else on `PATH`.
fn chromedriver_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMEDRIVER") {
        return Some(PathBuf::from(path));
    }
    let debian = PathBuf::from("/usr/bin/chromedriver");
    if debian.exists() {
        return Some(debian);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("chromedriver")).find(|p| p.exists()))
}

/// Chromium's binary: `CHROME_BIN`, else Debian's `/usr/bin/chromium` (chromedriver's own search otherwise).
fn chromium_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROME_BIN") {
        return Some(PathBuf::from(path));
    }
    let debian = PathBuf::from("/usr/bin/chromium");
    debian.exists().then_some(debian)
}

/// Cargo's target directory: the test binary is `<target>/<profile>/deps/<name>`.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// One browser session: a chromedriver child, a Chromium session and a download directory.
pub struct Browser {
    http: reqwest::Client,
    session_url: String,
    pub download_dir: PathBuf,
    pub screenshot_dir: PathBuf,
    _driver: ChildGuard,
}

/// A found element (its WebDriver reference).
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium at `width`×`height`; `None` when the test should skip.
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        let Some(driver) = chromedriver_path() else {
            if std::env::var_os("CI").is_some() {
                panic!("chromedriver is not installed (CI is set, so the browser tests must run): install Debian's chromium and chromium-driver (.ci/browser.sh)");
            }
            eprintln!("SKIPPED: chromedriver not found (set CHROMEDRIVER or install Debian's chromium chromium-driver); the console's browser tests did not run");
            return None;
        };
        let port = free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", driver.display()));
        let guard = ChildGuard(child);
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("http client");
        let ready = crate::support::eventually(Duration::from_secs(20), || {
            let http = http.clone();
            let url = format!("{base}/status");
            async move {
                match http.get(url).send().await {
                    Ok(r) => r.json::<Value>().await.map(|v| v["value"]["ready"] == json!(true)).unwrap_or(false),
                    Err(_) => false,
                }
            }
        })
        .await;
        assert!(ready, "chromedriver did not become ready on port {port}");

        let download_dir = std::env::temp_dir().join(format!("entrasync-console-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&download_dir).expect("download dir");
        let screenshot_dir = target_dir().join("console-screenshots");
        std::fs::create_dir_all(&screenshot_dir).expect("screenshot dir");

        let mut options = json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                format!("--window-size={width},{height}"), "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--lang=en-US", "--force-device-scale-factor=1", "--hide-scrollbars",
            ],
            "prefs": {
                "download.default_directory": download_dir.to_string_lossy(),
                "download.prompt_for_download": false,
                "download.directory_upgrade": true,
                "safebrowsing.enabled": false,
            },
        });
        if let Some(binary) = chromium_path() {
            options["binary"] = json!(binary.to_string_lossy());
        }
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": options,
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "unhandledPromptBehavior": "dismiss",
                }
            }
        });
        let response = http.post(format!("{base}/session")).json(&capabilities).send().await.expect("new session");
        let body: Value = response.json().await.expect("new session answer");
        let session = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused the session: {body}"))
            .to_owned();
        let browser = Browser {
            http,
            session_url: format!("{base}/session/{session}"),
            download_dir,
            screenshot_dir,
            _driver: guard,
        };
        // Headless Chromium downloads only where it is told to.
        browser
            .cmd(
                "POST",
                "/goog/cdp/execute",
                json!({"cmd": "Browser.setDownloadBehavior",
                       "params": {"behavior": "allow", "downloadPath": browser.download_dir.to_string_lossy()}}),
            )
            .await;
        browser.cmd("POST", "/timeouts", json!({"implicit": 0, "pageLoad": 30000, "script": 30000})).await;
        browser.set_window_size(width, height).await;
        Some(browser)
    }

    /// One WebDriver command; panics with chromedriver's message when it fails.
    pub async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_cmd(method, path, body).await.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    pub async fn try_cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{}", self.session_url, path);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let value: Value = response.json().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(value["value"].clone())
        } else {
            let v = &value["value"];
            Err(format!("{} {}: {}", status.as_u16(), v["error"], v["message"].as_str().unwrap_or_default()))
        }
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url })).await;
    }

    pub async fn current_url(&self) -> String {
        self.cmd("GET", "/url", Value::Null).await.as_str().unwrap_or_default().to_owned()
    }

    /// Sizes the window so that the page's viewport is `width`×`height` (the window's frame, which
    /// headless Chromium also draws, is added).
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.cmd("POST", "/window/rect", json!({ "width": width, "height": height })).await;
        let inner = self.execute("return [window.innerWidth, window.innerHeight];", vec![]).await;
        let (iw, ih) = (inner[0].as_u64().unwrap_or(width.into()), inner[1].as_u64().unwrap_or(height.into()));
        let (w, h) = (
            u64::from(width) * 2 - iw.min(u64::from(width) * 2),
            u64::from(height) * 2 - ih.min(u64::from(height) * 2),
        );
        if (w, h) != (u64::from(width), u64::from(height)) {
            self.cmd("POST", "/window/rect", json!({ "width": w, "height": h })).await;
        }
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page and returns its value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd("POST", "/execute/sync", json!({ "script": script, "args": args })).await
    }

    async fn find_now(&self, css: &str) -> Option<Element> {
        let found = self.try_cmd("POST", "/element", json!({"using": "css selector", "value": css})).await.ok()?;
        found[ELEMENT_KEY].as_str().map(|id| Element(id.to_owned()))
    }

    /// Waits until `css` matches a displayed element and returns it.
    pub async fn wait_for(&self, css: &str) -> Element {
        let found = crate::support::eventually_some(DEFAULT_WAIT, || async {
            let element = self.find_now(css).await?;
            let shown = self.try_cmd("GET", &format!("/element/{}/displayed", element.0), Value::Null).await.ok()?;
            (shown == json!(true)).then_some(element)
        })
        .await;
        match found {
            Some(element) => element,
            None => {
                self.screenshot("failure-wait-for").await;
                panic!("no visible element matches {css} after {DEFAULT_WAIT:?} (page: {})", self.current_url().await)
            }
        }
    }

    /// Whether `css` matches an element now (visible or not).
    pub async fn exists(&self, css: &str) -> bool {
        self.find_now(css).await.is_some()
    }

    /// Waits for `css` to be visible and enabled, then clicks it.
    pub async fn click(&self, css: &str) {
        let element = self.wait_enabled(css).await;
        if let Err(e) = self.try_cmd("POST", &format!("/element/{}/click", element.0), json!({})).await {
            // Covered by a notification or a sticky bar: clear those, scroll it to the middle, click again.
            self.dismiss_notifications().await;
            self.execute("arguments[0].scrollIntoView({block: 'center'});", vec![element.as_arg()]).await;
            self.try_cmd("POST", &format!("/element/{}/click", element.0), json!({}))
                .await
                .unwrap_or_else(|e2| panic!("click {css}: {e}; again: {e2}"));
        }
    }

    async fn wait_enabled(&self, css: &str) -> Element {
        let element = self.wait_for(css).await;
        let enabled = crate::support::eventually(DEFAULT_WAIT, || async {
            self.try_cmd("GET", &format!("/element/{}/enabled", element.0), Value::Null).await.ok() == Some(json!(true))
        })
        .await;
        if !enabled {
            self.screenshot("failure-disabled").await;
            panic!("{css} stayed disabled");
        }
        element
    }

    /// Replaces the text of an input or textarea.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.wait_enabled(css).await;
        self.cmd("POST", &format!("/element/{}/clear", element.0), json!({})).await;
        if !text.is_empty() {
            self.cmd("POST", &format!("/element/{}/value", element.0), json!({ "text": text })).await;
        }
    }

    /// Types keys into the focused element (`\u{E007}` is Enter, `\u{E00C}` Escape).
    pub async fn keys(&self, css: &str, keys: &str) {
        let element = self.wait_for(css).await;
        self.cmd("POST", &format!("/element/{}/value", element.0), json!({ "text": keys })).await;
    }

    /// Chooses the option with `value` in a select, as a person would (fires `change`).
    pub async fn choose(&self, css: &str, value: &str) {
        let element = self.wait_enabled(css).await;
        let option = self
            .try_cmd(
                "POST",
                &format!("/element/{}/element", element.0),
                json!({"using": "css selector", "value": format!("option[value=\"{value}\"]")}),
            )
            .await
            .unwrap_or_else(|e| panic!("{css} has no option {value}: {e}"));
        let id = option[ELEMENT_KEY].as_str().expect("option element").to_owned();
        self.cmd("POST", &format!("/element/{id}/click"), json!({})).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let element = self.wait_for(css).await;
        self.cmd("GET", &format!("/element/{}/text", element.0), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn property(&self, css: &str, name: &str) -> Value {
        let element = self.wait_for(css).await;
        self.cmd("GET", &format!("/element/{}/property/{name}", element.0), Value::Null).await
    }

    /// Waits until the JavaScript expression `condition` is true; panics naming `what` (with a screenshot).
    pub async fn wait_until(&self, what: &str, condition: &str, timeout: Duration) {
        let script = format!("return Boolean({condition});");
        let ok = crate::support::eventually(timeout, || async {
            self.try_cmd("POST", "/execute/sync", json!({"script": script, "args": []})).await.ok() == Some(json!(true))
        })
        .await;
        if !ok {
            let name = format!("failure-{}", what.replace(|c: char| !c.is_ascii_alphanumeric(), "-"));
            self.screenshot(&name).await;
            let notes = self.notifications().await;
            panic!(
                "timed out after {timeout:?} waiting for {what} ({condition}); page {}; notifications: {notes:?}",
                self.current_url().await
            );
        }
    }

    /// Waits until the element's text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        let condition = format!(
            "document.querySelector({css:?}) && document.querySelector({css:?}).textContent.includes({needle:?})",
            css = css,
            needle = needle
        );
        self.wait_until(&format!("{css} to show {needle:?}"), &condition, DEFAULT_WAIT).await;
    }

    /// Waits until the element's whole text (trimmed) is `expected`.
    pub async fn wait_text_is(&self, css: &str, expected: &str) {
        let condition = format!(
            "document.querySelector({css:?}) && document.querySelector({css:?}).textContent.trim() === {expected:?}"
        );
        self.wait_until(&format!("{css} to read {expected:?}"), &condition, DEFAULT_WAIT).await;
    }

    /// The texts of the console's notifications now on screen.
    pub async fn notifications(&self) -> Vec<String> {
        let value = self
            .try_cmd(
                "POST",
                "/execute/sync",
                json!({"script": "return Array.from(document.querySelectorAll('#notifications .toast')).map(t => t.innerText);", "args": []}),
            )
            .await
            .unwrap_or(Value::Null);
        value.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    }

    /// Dismisses every notification (they may cover buttons in a screenshot).
    pub async fn dismiss_notifications(&self) {
        self.execute("document.querySelectorAll('#notifications .toast').forEach(t => t.remove());", vec![]).await;
    }

    /// Writes `target/console-screenshots/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let path = self.screenshot_dir.join(format!("{name}.png"));
        if let Ok(Value::String(data)) = self.try_cmd("GET", "/screenshot", Value::Null).await {
            if let Ok(png) = base64::engine::general_purpose::STANDARD.decode(data) {
                let _ = std::fs::write(&path, png);
            }
        }
        path
    }

    /// The browser console's messages since the last call (level, text).
    pub async fn console_log(&self) -> Vec<(String, String)> {
        let entries = self.try_cmd("POST", "/se/log", json!({"type": "browser"})).await.unwrap_or(Value::Null);
        entries
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or_default().to_owned(),
                            e["message"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits for a finished download whose name starts with `prefix`; returns its path.
    pub async fn wait_download(&self, prefix: &str) -> PathBuf {
        let dir = self.download_dir.clone();
        let found = crate::support::eventually_some(DEFAULT_WAIT, || {
            let dir = dir.clone();
            async move {
                std::fs::read_dir(&dir).ok()?.filter_map(Result::ok).map(|e| e.path()).find(|p| {
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    name.starts_with(prefix) && !name.ends_with(".crdownload") && !name.ends_with(".tmp")
                })
            }
        })
        .await;
        found.unwrap_or_else(|| panic!("no download {prefix}* in {}", dir.display()))
    }

    pub fn download_path(&self, name: &str) -> PathBuf {
        self.download_dir.join(name)
    }
}

impl Element {
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.0 })
    }
}

impl Drop for Browser {
    /// Ends the session with a plain blocking request (no runtime in drop), so Chromium exits before
    /// chromedriver is killed and leaves no browser process behind.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Some((host, path)) = self.session_url.strip_prefix("http://").and_then(|rest| rest.split_once('/')) {
            if let Ok(mut stream) = std::net::TcpStream::connect(host) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!(
                    "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                if stream.write_all(request.as_bytes()).is_ok() {
                    let mut answer = Vec::new();
                    let _ = stream.read_to_end(&mut answer);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.download_dir);
    }
}
