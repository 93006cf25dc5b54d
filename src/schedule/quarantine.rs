//! The decaying retry schedule of a tenant whose runs keep failing.

use std::time::Duration;

/// Failures in a row before a tenant is quarantined, and how retries then slow down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    pub quarantine_after: u32,
    /// The slowest retry rate while quarantined.
    pub max_delay: Duration,
    /// A tenant quarantined this long is disabled by its next failure: no more runs until an operator
    /// enables it or resets it. Recorded by `store::schedule::record_failure`, which applies
    /// [`crate::store::schedule::QUARANTINE_CUTOFF`]; this field shows the value.
    pub disable_after: Duration,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            quarantine_after: 5,
            max_delay: Duration::from_secs(24 * 3600),
            disable_after: crate::store::schedule::QUARANTINE_CUTOFF,
        }
    }
}

impl FailurePolicy {
    /// Delay after the last failure before the next attempt: the normal interval until quarantine,
    /// then doubling per further failure up to `max_delay`.
    pub fn retry_delay(&self, failures: u32, interval: Duration) -> Duration {
        if failures < self.quarantine_after {
            return interval;
        }
        let doublings = (failures - self.quarantine_after + 1).min(20);
        interval.saturating_mul(1 << doublings).min(self.max_delay).max(interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_slow_down_to_daily_after_quarantine() {
        let policy = FailurePolicy::default();
        let interval = Duration::from_secs(300);
        assert_eq!(policy.retry_delay(1, interval), interval);
        assert_eq!(policy.retry_delay(4, interval), interval);
        assert_eq!(policy.retry_delay(5, interval), Duration::from_secs(600));
        assert_eq!(policy.retry_delay(6, interval), Duration::from_secs(1200));
        assert_eq!(policy.retry_delay(40, interval), Duration::from_secs(86_400));
        assert_eq!(policy.retry_delay(u32::MAX, interval), Duration::from_secs(86_400));
        assert_eq!(policy.disable_after, Duration::from_secs(28 * 86_400), "four weeks");
    }
}
