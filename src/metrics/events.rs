//! The change-event relay (docs/events-relay.md): what waits in the outbox, read from Postgres by every
//! instance (the same values everywhere: alerts aggregate with `max`), and what this instance relayed.

use prometheus::{IntCounterVec, IntGaugeVec};

use super::family::{Declarer, SnapshotGauge};

/// Why a relay pass stopped and started again from the oldest unconfirmed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayFailure {
    /// RabbitMQ refused a message (a publisher confirm was a nack).
    Nack,
    /// The RabbitMQ connection or channel was lost, or a confirm did not come in time.
    Broker,
    /// The relay's Postgres session failed or stopped answering (the relay lock goes with it).
    Database,
}

impl RelayFailure {
    pub const ALL: [RelayFailure; 3] = [RelayFailure::Nack, RelayFailure::Broker, RelayFailure::Database];

    pub fn as_str(self) -> &'static str {
        match self {
            RelayFailure::Nack => "nack",
            RelayFailure::Broker => "broker",
            RelayFailure::Database => "database",
        }
    }
}

#[derive(Clone)]
pub struct EventsMetrics {
    outbox_rows: SnapshotGauge,
    oldest_age: SnapshotGauge,
    outbox_bytes: SnapshotGauge,
    relayed: IntCounterVec,
    failures: IntCounterVec,
    holder: IntGaugeVec,
}

impl EventsMetrics {
    pub(crate) fn declare(d: &mut Declarer<'_>) -> Self {
        let metrics = Self {
            outbox_rows: SnapshotGauge::new(d.gauge(
                "entrasync_events_outbox_rows",
                "Change events written and not yet confirmed by RabbitMQ (rows of change_outbox)",
                &[],
            )),
            oldest_age: SnapshotGauge::new(d.gauge(
                "entrasync_events_outbox_oldest_age_seconds",
                "Age of the next change event to be relayed; 0 when the outbox is empty",
                &[],
            )),
            outbox_bytes: SnapshotGauge::new(d.gauge(
                "entrasync_events_outbox_bytes",
                "Size of change_outbox on disk, with its index and TOAST",
                &[],
            )),
            relayed: d.int_counter(
                "entrasync_events_relayed_total",
                "Change events this instance published and RabbitMQ confirmed (re-publications count again)",
                &[],
            ),
            failures: d.int_counter(
                "entrasync_events_relay_failures_total",
                "Relay passes that stopped and restart from the oldest unconfirmed event, by cause",
                &["cause"],
            ),
            holder: d.int_gauge(
                "entrasync_events_relay_holder",
                "1 while this instance holds the relay lock (exactly one instance should)",
                &[],
            ),
        };
        metrics.relayed.with_label_values::<&str>(&[]).inc_by(0);
        for cause in RelayFailure::ALL {
            metrics.failures.with_label_values(&[cause.as_str()]).inc_by(0);
        }
        metrics.holder.with_label_values::<&str>(&[]).set(0);
        // Until the relay's first read (at its start) the backlog shows as empty rather than absent.
        metrics.set_backlog(0, 0.0, 0);
        metrics
    }

    /// The backlog as last read from Postgres.
    pub fn set_backlog(&self, rows: i64, oldest_age_seconds: f64, bytes: i64) {
        self.outbox_rows.replace([(Vec::new(), rows as f64)]);
        self.oldest_age.replace([(Vec::new(), oldest_age_seconds)]);
        self.outbox_bytes.replace([(Vec::new(), bytes as f64)]);
    }

    /// The backlog could not be read: no value is better than a stale one.
    pub fn clear_backlog(&self) {
        self.outbox_rows.clear();
        self.oldest_age.clear();
        self.outbox_bytes.clear();
    }

    pub fn relayed(&self, events: u64) {
        self.relayed.with_label_values::<&str>(&[]).inc_by(events);
    }

    pub fn relayed_total(&self) -> u64 {
        self.relayed.with_label_values::<&str>(&[]).get()
    }

    pub fn failed(&self, cause: RelayFailure) {
        self.failures.with_label_values(&[cause.as_str()]).inc();
    }

    pub fn set_holder(&self, holds: bool) {
        self.holder.with_label_values::<&str>(&[]).set(i64::from(holds));
    }
}
