//! Tracing set-up, in one place: human-readable text by default, JSON on request.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// tokio-postgres logs every statement's parameters at debug level, and parameters can carry secrets
/// (credentials, tokens); at info it logs the server's NOTICEs ("… does not exist, skipping"), which
/// tell an operator nothing. Kept at warn unless the operator's filter names the crate explicitly.
const QUIET_BY_DEFAULT: &[&str] = &["tokio_postgres=warn"];

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(settings: &LogSettings) {
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&settings.filter))
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let installed = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second call (tests) finds a subscriber in place and keeps it.
    let _already_installed = installed.is_err();
}

/// Reports panics as log events (one JSON object with JSON logs) instead of the default hook's plain
/// text, which log collectors cannot parse. For the binary only: the test harness prints failures
/// through the default hook.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info.location().map(|at| format!("{}:{}:{}", at.file(), at.line(), at.column()));
        let thread = std::thread::current();
        // Captured only when RUST_BACKTRACE asks for it, as the default hook does.
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace =
            (backtrace.status() == std::backtrace::BacktraceStatus::Captured).then(|| backtrace.to_string());
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            location = location.as_deref().unwrap_or("unknown"),
            backtrace,
            panic = %message,
            "a thread panicked"
        );
    }));
}

/// The operator's filter plus the defaults that keep secrets out of dependency logs.
fn filter(text: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(text).unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in QUIET_BY_DEFAULT {
        let target = directive.split('=').next().unwrap_or_default();
        if !text.contains(target) {
            if let Ok(directive) = directive.parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_parameters_stay_out_of_debug_logs_unless_asked_for() {
        assert!(filter("debug").to_string().contains("tokio_postgres=warn"), "{}", filter("debug"));
        assert!(!filter("debug,tokio_postgres=trace").to_string().contains("tokio_postgres=warn"));
    }
}
