//! The Prometheus registry and the metric definitions, declared per subsystem.

use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

/// Everything this process exports on `/metrics`.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new("entrasync_build_info", "Build information; the value is always 1"),
            &["version"],
        )
        .expect("static metric definition is valid");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build_info)).expect("registered once on a fresh registry");
        Metrics { registry }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
