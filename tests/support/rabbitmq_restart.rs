//! Restarting the shared RabbitMQ node for a test (`rabbitmqctl stop_app`, then `start_app`): the broker
//! really goes away and comes back, closing every connection of every client. That disturbs every other
//! test using RabbitMQ, so tests that do it run alone (the third pass of tests/run.sh).
//!
//! [`RabbitMq::control`] says whether `rabbitmqctl` can control the node here (it needs the node's Erlang
//! cookie: root, or the rabbitmq user). When it cannot, the test skips with a loud message, except with
//! `CI` set, where it fails. A stopped node is started again when the [`RabbitMq`] is dropped, so a failed
//! test never leaves the broker down for the tests after it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Every rabbitmqctl call gets this long (it talks to the node over Erlang distribution).
const CTL_TIMEOUT_SECS: &str = "60";

/// Control of the local RabbitMQ node; starts it again on drop if this value stopped it.
pub struct RabbitMq {
    ctl: PathBuf,
    stopped: bool,
}

impl RabbitMq {
    /// `None` (after saying why) when `rabbitmqctl` is missing or cannot reach the node; panics instead
    /// when `CI` is set, since CI must run the restart.
    pub fn control(test: &str) -> Option<RabbitMq> {
        let found = ["/usr/sbin/rabbitmqctl", "/usr/lib/rabbitmq/bin/rabbitmqctl", "/usr/local/sbin/rabbitmqctl"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.exists());
        let problem = match &found {
            None => "rabbitmqctl not found (Debian's rabbitmq-server installs /usr/sbin/rabbitmqctl)".to_owned(),
            Some(ctl) => match ctl_output(ctl, &["status"]) {
                Ok(_) => return Some(RabbitMq { ctl: ctl.clone(), stopped: false }),
                Err(said) => format!("`{} status` failed (run as root or the rabbitmq user): {said}", ctl.display()),
            },
        };
        if std::env::var_os("CI").is_some() {
            panic!("{test}: {problem}; CI is set, so the RabbitMQ restart must run");
        }
        eprintln!("SKIPPED: {test}: {problem}; the test needs to restart RabbitMQ and did not run");
        None
    }

    /// `rabbitmqctl stop_app`: the node closes every client connection and stops listening.
    pub async fn stop_app(&mut self) {
        self.stopped = true;
        self.ctl(&["stop_app"]).await;
    }

    /// `rabbitmqctl start_app`, then waits until the node accepts AMQP connections again.
    pub async fn start_app(&mut self) {
        self.ctl(&["start_app"]).await;
        self.ctl(&["await_startup"]).await;
        self.stopped = false;
    }

    /// Runs rabbitmqctl off the runtime's threads (a call takes a second or more); panics on failure.
    async fn ctl(&self, args: &'static [&'static str]) {
        let ctl = self.ctl.clone();
        let outcome = tokio::task::spawn_blocking(move || ctl_output(&ctl, args)).await.expect("rabbitmqctl task");
        if let Err(said) = outcome {
            panic!("rabbitmqctl {}: {said}", args.join(" "));
        }
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        if !self.stopped {
            return;
        }
        for args in [&["start_app"][..], &["await_startup"]] {
            if let Err(said) = ctl_output(&self.ctl, args) {
                eprintln!("could not start RabbitMQ again ({} {}): {said}", self.ctl.display(), args.join(" "));
            }
        }
    }
}

/// Runs `rabbitmqctl --timeout … args`; its output, or what it said when it failed.
fn ctl_output(ctl: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new(ctl)
        .args(["--timeout", CTL_TIMEOUT_SECS])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        Err(format!("{}: {}", output.status, said.trim()))
    }
}

/// How long a restart keeps the node down in the tests that do one.
pub const DOWN_FOR: Duration = Duration::from_secs(5);
