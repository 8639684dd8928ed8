//! Retry policy: bounded attempts with exponential backoff and jitter.
//!
//! A [`RetryPolicy`] is a small value, shared by every piece that retries
//! (the write-ahead-log adapter delivering batches, target sinks retrying
//! throttled requests, per-record retry on the consumer side). It decides two
//! things only: whether another attempt is allowed, and how long to wait
//! before it.
//!
//! Delays grow as `initial_backoff * multiplier^(retry)` capped at
//! `max_backoff`. With jitter on (the default) the delay is drawn uniformly
//! from `[delay / 2, delay]` ("equal jitter"), which spreads out clients that
//! failed together while keeping a floor under the wait. Delays are computed
//! in `tokio::time`, so tests with paused time see them exactly.
//!
//! Which layer retries which call, and how attempts add up under
//! `buffered_wal`, is in the crate docs ("AWS clients and retries").

use std::time::Duration;

/// How often and how patiently to retry a failing operation.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a retry policy does nothing until passed to a sink, a source or `retry_each`"]
pub struct RetryPolicy {
    max_attempts: Option<u32>,
    initial_backoff: Duration,
    max_backoff: Duration,
    multiplier: f64,
    jitter: bool,
}

impl Default for RetryPolicy {
    /// 10 attempts, 100 ms doubling up to 10 s, with jitter.
    fn default() -> Self {
        Self {
            max_attempts: Some(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The default policy (see [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// One attempt, no retries.
    pub fn no_retry() -> Self {
        Self {
            max_attempts: Some(1),
            ..Self::default()
        }
    }

    /// Retries forever (an unbounded number of attempts).
    pub fn forever() -> Self {
        Self {
            max_attempts: None,
            ..Self::default()
        }
    }

    /// Total attempts allowed, the first included. `0` is treated as `1`.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Delay before the first retry.
    pub fn initial_backoff(mut self, delay: Duration) -> Self {
        self.initial_backoff = delay;
        self
    }

    /// Upper bound of any single delay.
    pub fn max_backoff(mut self, delay: Duration) -> Self {
        self.max_backoff = delay;
        self
    }

    /// Growth factor between consecutive delays (values below 1 are treated as 1).
    pub fn multiplier(mut self, factor: f64) -> Self {
        self.multiplier = if factor.is_finite() && factor >= 1.0 {
            factor
        } else {
            1.0
        };
        self
    }

    /// Turns jitter on (default) or off. Off makes delays deterministic.
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// The attempt limit, `None` when unbounded.
    pub fn attempt_limit(&self) -> Option<u32> {
        self.max_attempts
    }

    /// Whether another attempt may follow after `attempts_made` attempts.
    pub fn allows_another(&self, attempts_made: u32) -> bool {
        match self.max_attempts {
            Some(max) => attempts_made < max,
            None => true,
        }
    }

    /// The delay before retry number `retry` (0 = the first retry), with
    /// jitter when enabled.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        if !self.jitter || ceiling.is_zero() {
            return ceiling;
        }
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(fastrand::f64())
    }

    /// The delay before retry number `retry` without jitter (the upper bound).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = self.multiplier.powi(retry.min(1024) as i32);
        let secs = self.initial_backoff.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max_backoff.as_secs_f64() {
            self.max_backoff
        } else {
            Duration::from_secs_f64(secs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy::new().max_attempts(3);
        assert!(p.allows_another(0));
        assert!(p.allows_another(2));
        assert!(!p.allows_another(3));
        assert!(!RetryPolicy::no_retry().allows_another(1));
        assert!(RetryPolicy::forever().allows_another(u32::MAX - 1));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy::new()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_secs(1))
            .jitter(false);
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(1), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(800));
        assert_eq!(p.backoff(4), Duration::from_secs(1));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        let p = RetryPolicy::new().initial_backoff(Duration::from_millis(400));
        for _ in 0..1000 {
            let d = p.backoff(0);
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
        }
    }
}
