//! Spawning entrasync: in-process on port 0, or as the real binary in a child process.

use std::process::{Child, Command, Stdio};

use entrasync::config::Settings;
use entrasync::startup::Application;

/// An in-process service on a free port.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub handle: actix_web::dev::ServerHandle,
    /// The metrics the service exports (clones share its series).
    pub metrics: entrasync::metrics::Metrics,
}

pub async fn spawn_app(settings: &Settings) -> TestApp {
    let mut settings = settings.clone();
    settings.http.listen = "127.0.0.1:0".parse().expect("loopback address");
    let app = Application::build(&settings).await.expect("build application");
    let port = app.port();
    let handle = app.handle();
    let metrics = app.metrics().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp { address: format!("http://127.0.0.1:{port}"), port, handle, metrics }
}

/// The `entrasync` binary with a clean `ENTRASYNC_*` environment plus `vars`.
pub fn binary(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_entrasync"));
    cmd.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("ENTRASYNC_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(vars.iter().copied()).stdin(Stdio::null());
    cmd
}

/// Kills the child on drop, so a failed test leaves no process behind.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (bound then released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}
