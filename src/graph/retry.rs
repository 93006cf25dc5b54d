//! Retry policy for Graph: which answers are retried, how long to wait, and when to give up.
//!
//! Graph asks clients to wait at least `Retry-After` (integer seconds, fractional seconds such as
//! `2.128`, or an HTTP date) on 429 and 503; without it we back off exponentially with jitter.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// Bounds on retrying one request. Part of [`super::GraphClientOptions`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included.
    pub max_attempts: u32,
    /// Give up rather than wait longer than this, summed over all waits of one request.
    pub max_total_wait: Duration,
    /// First backoff step when Graph gave no `Retry-After`; doubles per attempt.
    pub base_delay: Duration,
    /// Cap on one backoff step (a `Retry-After` above it is still honoured).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // Close to the Graph SDKs (3 s base, 180 s cumulative), with more attempts because a sync
        // round would rather wait than restart.
        Self {
            max_attempts: 8,
            max_total_wait: Duration::from_secs(300),
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// Why an attempt failed in a way worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryCause {
    Throttled,
    Unavailable,
    Connection,
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (so `attempt` ≥ 1 is the attempt that just failed).
    ///
    /// A server-given wait is honoured in full plus a little jitter (never less); without one the
    /// wait is `base · 2^(attempt−1)` capped at `max_delay`, plus up to 50 % jitter.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let mut rng = rand::rng();
        match retry_after {
            Some(told) => {
                // Jitter spreads the retries of many workers told the same instant; never subtract.
                let jitter_ms = rng.random_range(0..=(told.as_millis() as u64 / 20).max(20));
                told + Duration::from_millis(jitter_ms)
            }
            None => {
                let exponent = attempt.saturating_sub(1).min(20);
                let step = self.base_delay.saturating_mul(1u32 << exponent).min(self.max_delay);
                let jitter_ms = rng.random_range(0..=(step.as_millis() as u64 / 2));
                step + Duration::from_millis(jitter_ms)
            }
        }
    }

    /// Whether another attempt may start after `attempts` attempts and `waited_so_far`, given the
    /// next wait. Refuses up front instead of sleeping into a wait that would break the bound.
    pub fn allows(&self, attempts: u32, waited_so_far: Duration, next_wait: Duration) -> bool {
        attempts < self.max_attempts && waited_so_far + next_wait <= self.max_total_wait
    }
}

/// Parses a `Retry-After` value: integer or fractional seconds, or an HTTP date (relative to `now`).
/// A date in the past means "now". Returns None for anything else (the caller then backs off).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    // An HTTP date contains a comma, so try it on the whole value first.
    if let Ok(at) = httpdate::parse_http_date(value) {
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
    }
    // Some proxies duplicate the header into "N, N"; the first value is the server's.
    let seconds = value.split(',').next().unwrap_or(value).trim();
    if seconds.is_empty() || !seconds.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let seconds: f64 = seconds.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_integer_and_fraction_are_seconds() {
        assert_eq!(parse_retry_after("5", at(0)), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(" 2.128 ", at(0)), Some(Duration::from_millis(2128)));
        assert_eq!(parse_retry_after("0", at(0)), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("3, 3", at(0)), Some(Duration::from_secs(3)));
    }

    #[test]
    fn retry_after_http_date_is_relative_to_now() {
        let now = at(1_700_000_000);
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_garbage_means_back_off() {
        for bad in ["", "soon", "-1", "1e3", "NaN", "Tue, 99 Foo"] {
            assert_eq!(parse_retry_after(bad, at(0)), None, "{bad:?}");
        }
    }

    #[test]
    fn told_waits_are_never_shortened() {
        let policy = RetryPolicy::default();
        for attempt in 1..10 {
            let told = Duration::from_millis(1500);
            let delay = policy.delay(attempt, Some(told));
            assert!(delay >= told && delay <= told + Duration::from_millis(100), "{delay:?}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let first = policy.delay(1, None);
            assert!((100..=150).contains(&first.as_millis()), "{first:?}");
            let third = policy.delay(3, None);
            assert!((400..=600).contains(&third.as_millis()), "{third:?}");
            let late = policy.delay(30, None);
            assert!((1000..=1500).contains(&late.as_millis()), "{late:?}");
        }
    }

    #[test]
    fn attempts_and_total_wait_are_bounded() {
        let policy = RetryPolicy { max_attempts: 3, max_total_wait: Duration::from_secs(10), ..RetryPolicy::default() };
        assert!(policy.allows(1, Duration::ZERO, Duration::from_secs(10)));
        assert!(!policy.allows(1, Duration::from_secs(1), Duration::from_secs(10)));
        assert!(!policy.allows(3, Duration::ZERO, Duration::ZERO));
    }
}
