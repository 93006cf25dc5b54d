//! Capped exponential backoff for the service's retry loops (backon's builder, not hand-written
//! doubling), and the patient retry of calls that fail transiently. A leaf: error types say for
//! themselves whether they are transient ([`Transient`]). See docs/architecture.md.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

/// An error that may go away if the same call is made again later.
pub trait Transient: std::fmt::Display {
    fn is_transient(&self) -> bool;
}

/// Waits from `min`, doubling up to `max`, for as long as the caller keeps asking. Start a new one
/// (or call [`Backoff::reset`]) after a success.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    pub fn capped(min: Duration, max: Duration) -> Self {
        let builder =
            ExponentialBuilder::new().with_min_delay(min).with_max_delay(max).with_factor(2.0).without_max_times();
        Backoff { builder, delays: builder.build(), max }
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        // Without a maximum number of times the delays never end; `max` only satisfies the type.
        self.delays.next().unwrap_or(self.max)
    }

    /// Back to the shortest wait.
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

/// How long a call is retried while its peer is unavailable, and how the waits grow.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub give_up_after: Duration,
    pub first_wait: Duration,
    pub longest_wait: Duration,
}

/// Runs `call` until it succeeds, fails permanently (returned at once: retrying a bad statement never
/// helps), `patience` runs out, or `stop` is cancelled. Each retry is logged with `what`.
pub async fn retry_transient<T, E, F, Fut>(
    what: &str,
    patience: Patience,
    stop: Option<&CancellationToken>,
    mut call: F,
) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = tokio::time::Instant::now();
    let mut backoff = Backoff::capped(patience.first_wait, patience.longest_wait);
    loop {
        let error = match call().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let delay = backoff.next_delay();
        let stopped = stop.is_some_and(CancellationToken::is_cancelled);
        if !error.is_transient() || stopped || started.elapsed() + delay > patience.give_up_after {
            return Err(error);
        }
        tracing::warn!(operation = what, %error, retry_in_ms = delay.as_millis() as u64, "transient failure; retrying");
        match stop {
            Some(stop) => {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.cancelled() => return Err(error),
                }
            }
            None => tokio::time::sleep(delay).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn waits_double_up_to_the_cap_and_reset() {
        let mut backoff = Backoff::capped(Duration::from_millis(100), Duration::from_millis(500));
        let waits: Vec<u128> = (0..6).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500, 500]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }

    const QUICK: Patience = Patience {
        give_up_after: Duration::from_secs(5),
        first_wait: Duration::from_millis(1),
        longest_wait: Duration::from_millis(4),
    };

    #[tokio::test]
    async fn transient_errors_are_retried_and_permanent_ones_are_not() {
        let mut calls = 0;
        let outcome: Result<_, StoreError> = retry_transient("test", QUICK, None, || {
            calls += 1;
            let attempt = calls;
            async move {
                if attempt < 3 {
                    Err(StoreError::Unavailable("down".into()))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(outcome.ok(), Some(3), "expected success on the third call after two transient errors");

        let mut calls = 0;
        let outcome: Result<(), StoreError> = retry_transient("test", QUICK, None, || {
            calls += 1;
            async { Err(StoreError::Rejected("violates a check".into())) }
        })
        .await;
        assert!(matches!(outcome, Err(StoreError::Rejected(_))), "expected the permanent error back: {outcome:?}");
        assert_eq!(calls, 1, "expected a permanent error not to be retried");
    }

    #[tokio::test(start_paused = true)]
    async fn patience_runs_out_and_stop_ends_the_wait() {
        let patience = Patience {
            give_up_after: Duration::from_secs(10),
            first_wait: Duration::from_secs(1),
            longest_wait: Duration::from_secs(4),
        };
        let started = tokio::time::Instant::now();
        let outcome: Result<(), StoreError> =
            retry_transient("test", patience, None, || async { Err(StoreError::Unavailable("down".into())) }).await;
        assert!(outcome.is_err(), "expected to give up");
        assert!(started.elapsed() <= Duration::from_secs(10), "expected to give up within the patience");

        let stop = CancellationToken::new();
        stop.cancel();
        let mut calls = 0;
        let outcome: Result<(), StoreError> = retry_transient("test", patience, Some(&stop), || {
            calls += 1;
            async { Err(StoreError::Unavailable("down".into())) }
        })
        .await;
        assert!(outcome.is_err() && calls == 1, "expected a cancelled stop to end the retries at once");
    }
}
