//! Request counters per tenant and overall, read back through the admin API.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub requests: u64,
    pub objects_served: u64,
    pub faults_injected: u64,
    pub throttled: u64,
    /// Requests by endpoint, e.g. `users/delta`, `groups/list`, `groups/members`.
    pub by_endpoint: BTreeMap<String, u64>,
    /// Responses by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
}

#[derive(Debug, Default)]
pub struct Counters(Mutex<CounterSnapshot>);

impl Counters {
    fn with(&self, f: impl FnOnce(&mut CounterSnapshot)) {
        if let Ok(mut c) = self.0.lock() {
            f(&mut c);
        }
    }

    pub fn request(&self, endpoint: &str) {
        self.with(|c| {
            c.requests += 1;
            *c.by_endpoint.entry(endpoint.to_owned()).or_default() += 1;
        });
    }

    pub fn response(&self, status: u16, objects: usize) {
        self.with(|c| {
            *c.by_status.entry(status).or_default() += 1;
            c.objects_served += objects as u64;
        });
    }

    pub fn fault(&self, throttled: bool) {
        self.with(|c| {
            c.faults_injected += 1;
            c.throttled += u64::from(throttled);
        });
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }
}
