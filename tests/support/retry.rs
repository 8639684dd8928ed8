//! A retry policy whose schedule a paused-time test can check exactly.

use std::time::Duration;

use unistream::RetryPolicy;

/// At most `attempts` attempts, backing off 100 ms, 200 ms, 400 ms, …,
/// without jitter.
pub fn deterministic(attempts: u32) -> RetryPolicy {
    RetryPolicy::new()
        .max_attempts(attempts)
        .initial_backoff(Duration::from_millis(100))
        .multiplier(2.0)
        .jitter(false)
}
