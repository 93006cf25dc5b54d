//! Declaring metric families: one place that registers them and remembers what was declared, so the
//! catalogue (docs, dashboard and alert checks) is read from the code rather than kept by hand.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The Prometheus type of a family, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One declared metric family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub name: String,
    pub kind: Kind,
    pub help: String,
    pub labels: Vec<String>,
}

impl Family {
    /// The sample names Prometheus stores for this family (a histogram has three).
    pub fn sample_names(&self) -> Vec<String> {
        match self.kind {
            Kind::Histogram => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{}{s}", self.name)).collect(),
            _ => vec![self.name.clone()],
        }
    }
}

/// Registers families on a registry and records them. Definitions are static: a failure is a
/// programming error (bad name, duplicate) that the unit tests catch, hence `expect`.
pub(crate) struct Declarer<'a> {
    registry: &'a Registry,
    families: Vec<Family>,
}

#[expect(
    clippy::expect_used,
    reason = "metric definitions are static; a bad name or a duplicate is a programming error the unit tests catch"
)]
impl<'a> Declarer<'a> {
    pub(crate) fn new(registry: &'a Registry) -> Self {
        Self { registry, families: Vec::new() }
    }

    pub(crate) fn finish(self) -> Vec<Family> {
        self.families
    }

    fn register<C: Collector + Clone + 'static>(
        &mut self,
        collector: C,
        name: &str,
        kind: Kind,
        help: &str,
        labels: &[&str],
    ) -> C {
        self.registry.register(Box::new(collector.clone())).expect("each metric family is registered once");
        self.families.push(Family {
            name: name.to_owned(),
            kind,
            help: help.to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        });
        collector
    }

    pub(crate) fn int_counter(&mut self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition is valid");
        self.register(vec, name, Kind::Counter, help, labels)
    }

    /// A counter of fractional amounts (seconds, resource units).
    pub(crate) fn counter(&mut self, name: &str, help: &str, labels: &[&str]) -> CounterVec {
        let vec = CounterVec::new(Opts::new(name, help), labels).expect("static metric definition is valid");
        self.register(vec, name, Kind::Counter, help, labels)
    }

    pub(crate) fn int_gauge(&mut self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let vec = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition is valid");
        self.register(vec, name, Kind::Gauge, help, labels)
    }

    pub(crate) fn gauge(&mut self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        let vec = GaugeVec::new(Opts::new(name, help), labels).expect("static metric definition is valid");
        self.register(vec, name, Kind::Gauge, help, labels)
    }

    pub(crate) fn histogram(&mut self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        let vec = HistogramVec::new(opts, labels).expect("static metric definition is valid");
        self.register(vec, name, Kind::Histogram, help, labels)
    }
}

/// A gauge family whose whole content is replaced from a snapshot (state read at scrape time).
/// Label sets missing from the new snapshot are removed, so a deleted tenant's series disappear;
/// present ones are overwritten in place, so a concurrent scrape never sees the family empty.
#[derive(Clone)]
pub(crate) struct SnapshotGauge {
    vec: GaugeVec,
    present: Arc<Mutex<HashSet<Vec<String>>>>,
}

impl SnapshotGauge {
    pub(crate) fn new(vec: GaugeVec) -> Self {
        Self { vec, present: Arc::default() }
    }

    pub(crate) fn replace(&self, rows: impl IntoIterator<Item = (Vec<String>, f64)>) {
        let mut present = self.present.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = HashSet::new();
        for (labels, value) in rows {
            self.vec.with_label_values(&labels).set(value);
            next.insert(labels);
        }
        for gone in present.difference(&next) {
            // Already absent is fine: removal is only tidying.
            let _absent = self.vec.remove_label_values(gone).is_err();
        }
        *present = next;
    }

    /// Drops every series (the source could not be read: no value is better than a stale one).
    pub(crate) fn clear(&self) {
        self.replace(std::iter::empty());
    }
}
