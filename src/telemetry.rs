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
