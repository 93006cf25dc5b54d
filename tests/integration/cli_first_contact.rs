//! What a new user meets first, through the real binary: output into a closed pipe ends quietly (no
//! panic, no backtrace), a GUID argument that is not one says what is expected, and a failing command
//! reports its error once.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::app::{binary, ChildGuard};
use crate::support::{TestAmqp, TestDb};

const GUID: &str = "6b1c2a4e-8f3d-4c1e-9a2b-5d7e8f9a0b1c";

/// Runs `cmd` with its stdout on a pipe whose read end is already closed: the first write fails with
/// EPIPE (Rust ignores SIGPIPE, so `print!` would panic there).
fn run_into_closed_pipe(cmd: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    cmd.stdout(writer).stderr(Stdio::piped()).output().expect("run entrasync")
}

fn assert_quiet_end(what: &str, status: ExitStatus, stderr: &str) {
    assert!(!stderr.contains("panicked"), "{what}: expected no panic when stdout is closed, stderr: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "{what}: expected the closed pipe not to be reported, stderr: {stderr}");
    assert!(
        status.success(),
        "{what}: expected a clean exit (0) when the reader went away, got {status}; stderr: {stderr}"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    for args in [&["config"][..], &["serve", "--print-config"], &["--help"], &["credential", "add", "--help"]] {
        let output = run_into_closed_pipe(&mut binary(args, &[]));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_quiet_end(&format!("entrasync {}", args.join(" ")), output.status, &stderr);
        assert!(stderr.is_empty(), "entrasync {}: expected nothing on stderr, got: {stderr}", args.join(" "));
    }
}

#[test]
fn a_closed_stderr_does_not_panic_a_failing_command() {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let status = binary(&["enqueue", "--tenant", "xyz"], &[]).stderr(writer).status().expect("run entrasync");
    // clap's usage error is 2; a panic would be 101.
    assert_eq!(status.code(), Some(2), "expected the usage error's exit code with stderr closed, got {status}");
    let status = binary(&["credential", "add", "--name", "x", "--client-id", GUID, "--secret-file", "/dev/null"], &[])
        .stderr({
            let (reader, writer) = std::io::pipe().expect("a pipe");
            drop(reader);
            writer
        })
        .status()
        .expect("run entrasync");
    assert_eq!(status.code(), Some(1), "expected a plain failure (1) with stderr closed, not a panic (101): {status}");
}

/// The demo, piped into a reader that stops reading after the first finished run (as `| head` does, or
/// a `tee` that Ctrl-C stopped first): it stops its service and exits 0 without a panic.
#[test]
fn the_demo_stops_quietly_when_its_reader_goes_away() {
    let base = TestDb::named();
    let amqp = TestAmqp::new();
    // The demo works in `<database>_demo` and under `<prefix>_demo`: those are what to remove afterwards.
    let _demo_db = TestDb { name: format!("{}_demo", base.name), url: format!("{}_demo", base.url) };
    let _demo_amqp = TestAmqp { prefix: format!("{}_demo", amqp.prefix) };
    let vars = [
        ("ENTRASYNC_DATABASE_URL", base.url.as_str()),
        ("ENTRASYNC_AMQP_PREFIX", amqp.prefix.as_str()),
        ("ENTRASYNC_HTTP_LISTEN", "127.0.0.1:0"),
        ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1"),
        ("ENTRASYNC_DATABASE_POOL_SIZE", "10"),
    ];
    let child = binary(&["demo", "--users", "300", "--groups", "20", "--devices", "40"], &vars)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start entrasync demo");
    let mut demo = ChildGuard(child);
    let stdout = demo.0.stdout.take().expect("stdout");
    let mut stderr = demo.0.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    // Read until the first finished run, then go away.
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let finished = line.starts_with("run finished:");
            seen.push(line);
            if finished {
                break;
            }
        }
        seen
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "expected a 'run finished:' line within 180 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = reader.join().expect("reader thread");
    assert!(
        seen.last().is_some_and(|line| line.starts_with("run finished:")),
        "expected a 'run finished:' line before the demo's output ended; it printed: {seen:#?}"
    );

    // The next line the demo writes hits the closed pipe (delta rounds every 15 s, changes every 20 s).
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = demo.0.try_wait().expect("wait for the demo") {
            break status;
        }
        assert!(Instant::now() < deadline, "expected the demo to stop within 90 s after its reader went away");
        std::thread::sleep(Duration::from_millis(200));
    };
    let stderr = stderr.join().expect("stderr thread");
    assert_quiet_end("entrasync demo", status, &stderr);
}

#[test]
fn a_guid_argument_that_is_not_one_names_the_value_and_the_expected_form() {
    let cases: [&[&str]; 3] = [
        &["enqueue", "--tenant", "xyz"],
        &["tenant", "add", "--name", "t", "--tenant-id", "xyz", "--credential", "c"],
        &["credential", "add", "--name", "c", "--client-id", "xyz", "--secret-file", "/dev/null"],
    ];
    for args in cases {
        let output = binary(args, &[]).output().expect("run entrasync");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let what = format!("entrasync {}", args.join(" "));
        assert_eq!(output.status.code(), Some(2), "{what}: expected a usage error (2), stderr: {stderr}");
        assert!(
            stderr.contains(&format!("expected a GUID like {GUID}")),
            "{what}: expected the message to show what a GUID looks like, stderr: {stderr}"
        );
        assert!(
            stderr.contains(r#"got "xyz""#),
            "{what}: expected the message to name the bad value, stderr: {stderr}"
        );
        assert!(!stderr.contains("invalid character"), "{what}: expected no parser jargon, stderr: {stderr}");
    }
    let output = binary(cases[0], &[]).output().expect("run entrasync");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("directory/tenant id"),
        "expected --tenant's message to say which id is meant"
    );
    let output = binary(cases[2], &[]).output().expect("run entrasync");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("application/client id"),
        "expected --client-id's message to say which id is meant"
    );
}

#[test]
fn credential_add_without_a_secret_mentions_the_certificate_option() {
    let output = binary(&["credential", "add", "--name", "c", "--client-id", GUID], &[]).output().expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "expected a usage error (2), stderr: {stderr}");
    for option in ["--secret-file", "--certificate", "--private-key"] {
        assert!(stderr.contains(option), "expected the message to mention {option}, stderr: {stderr}");
    }
}

/// Lines of `stderr` that are not empty.
fn lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr).lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

#[test]
fn a_failing_command_reports_its_error_once() {
    // No secrets key: one line, saying what to do once.
    let args = ["credential", "add", "--name", "x", "--client-id", GUID, "--secret-file", "/dev/null"];
    let output = binary(&args, &[]).output().expect("run entrasync");
    let stderr = lines(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "expected a failure (1): {stderr:#?}");
    assert_eq!(stderr.len(), 1, "expected the error on exactly one line, got: {stderr:#?}");
    assert!(stderr[0].starts_with("entrasync: storing credentials needs ENTRASYNC_SECRETS_KEY"), "{stderr:#?}");
    assert_eq!(
        stderr[0].matches("openssl rand -base64 32").count(),
        1,
        "expected the advice once, not repeated: {stderr:#?}"
    );

    // Postgres unreachable: the error once, not also as a log line.
    let vars = [
        ("ENTRASYNC_DATABASE_URL", "postgres://postgres@127.0.0.1:1/entrasync"),
        ("ENTRASYNC_DATABASE_CONNECT_TIMEOUT_SECS", "2"),
    ];
    let output = binary(&["migrate"], &vars).output().expect("run entrasync");
    let stderr = lines(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "expected a failure (1): {stderr:#?}");
    let mentions = stderr.iter().filter(|l| l.contains("127.0.0.1:1") || l.contains("Postgres")).count();
    assert_eq!(mentions, 1, "expected the error reported once, got: {stderr:#?}");
    assert!(!stderr.iter().any(|l| l.contains("ERROR")), "expected no log line repeating the error: {stderr:#?}");

    // JSON logs: the one line is a JSON event a collector can parse.
    let output = binary(&args, &[("ENTRASYNC_LOG_FORMAT", "json")]).output().expect("run entrasync");
    let stderr = lines(&output.stderr);
    assert_eq!(stderr.len(), 1, "expected one JSON line, got: {stderr:#?}");
    let event: serde_json::Value = serde_json::from_str(&stderr[0]).expect("a JSON log line");
    assert!(
        event["error"].as_str().is_some_and(|e| e.contains("ENTRASYNC_SECRETS_KEY")),
        "expected the error in the event's error field: {event}"
    );
}

#[test]
fn fault_injection_is_not_part_of_the_configuration() {
    let output = binary(&["config"], &[]).output().expect("run entrasync");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "entrasync config failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(!stdout.to_lowercase().contains("panic"), "expected no fault-injection setting in: {stdout}");
    let output = binary(&["config"], &[("ENTRASYNC_TESTING_PANIC_SCHEDULE_CHECKS_OF_TENANT", "x")])
        .output()
        .expect("run entrasync");
    assert_eq!(output.status.code(), Some(2), "expected the variable to be rejected as unknown");
}
