//! [`LeaseConfig`]: every timing and limit of lease coordination, with its
//! default, in one place.
//!
//! | option | default | meaning |
//! |---|---|---|
//! | [`lease_duration`](LeaseConfig::lease_duration) | 10 s | a lease whose counter has not moved for this long (by the observer's own clock) is expired; the failover time after a crash |
//! | [`renew_interval`](LeaseConfig::renew_interval) | lease duration / 3 | how often a holder renews each lease |
//! | [`scan_interval`](LeaseConfig::scan_interval) | 2 s | how often a worker reads the whole table to take, steal and notice handoffs |
//! | [`max_steals_at_once`](LeaseConfig::max_steals_at_once) | 1 | handoffs a worker may have requested and not yet received |
//! | [`max_leases_per_worker`](LeaseConfig::max_leases_per_worker) | unlimited | a cap on the balance target |
//! | [`handoff_timeout`](LeaseConfig::handoff_timeout) | 30 s | a requested handoff not completed by then is forced |
//! | [`drain_timeout`](LeaseConfig::drain_timeout) | 30 s | how long a lease being given up waits for its records to be checkpointed before it is released anyway |
//! | [`write_retry`](LeaseConfig::write_retry) | 100 ms doubling to 2 s | retries of a failed checkpoint write while the lease is still valid |
//!
//! The KCL's defaults are the same lease duration and renewal (10 s,
//! 3.3 s), with its lease taker running every 20 s: a lease released by a
//! stopping worker waits up to that long to be taken. The 2 s scan here is
//! what lets the shards of a gracefully stopped worker be read again within
//! a few seconds; its cost is one table read per worker per scan.

use std::time::Duration;

use crate::retry::RetryPolicy;

/// Timings and limits of a lease worker; see the [`lease`](super) module docs.
#[derive(Debug, Clone)]
#[must_use = "a configuration does nothing until a worker is built with it"]
pub struct LeaseConfig {
    pub(crate) lease_duration: Duration,
    pub(crate) renew_interval: Option<Duration>,
    pub(crate) scan_interval: Duration,
    pub(crate) max_steals_at_once: usize,
    pub(crate) max_leases_per_worker: usize,
    pub(crate) handoff_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) write_retry: RetryPolicy,
    pub(crate) seed: Option<u64>,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(10),
            renew_interval: None,
            scan_interval: Duration::from_secs(2),
            max_steals_at_once: 1,
            max_leases_per_worker: usize::MAX,
            handoff_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            write_retry: RetryPolicy::new()
                .max_attempts(u32::MAX)
                .initial_backoff(Duration::from_millis(100))
                .max_backoff(Duration::from_secs(2)),
            seed: None,
        }
    }
}

impl LeaseConfig {
    /// The defaults in the table above.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lease duration: failover time after a worker dies. Default 10 s.
    ///
    /// # Panics
    ///
    /// When `duration` is zero.
    #[track_caller]
    pub fn lease_duration(mut self, duration: Duration) -> Self {
        assert!(!duration.is_zero(), "lease_duration must not be zero");
        self.lease_duration = duration;
        self
    }

    /// How often held leases are renewed. Default: a third of the lease
    /// duration.
    ///
    /// # Panics
    ///
    /// When `interval` is zero.
    #[track_caller]
    pub fn renew_interval(mut self, interval: Duration) -> Self {
        assert!(!interval.is_zero(), "renew_interval must not be zero");
        self.renew_interval = Some(interval);
        self
    }

    /// How often the table is read to take and balance leases. Default 2 s.
    ///
    /// # Panics
    ///
    /// When `interval` is zero.
    #[track_caller]
    pub fn scan_interval(mut self, interval: Duration) -> Self {
        assert!(!interval.is_zero(), "scan_interval must not be zero");
        self.scan_interval = interval;
        self
    }

    /// Handoffs a worker may have outstanding. Default 1.
    ///
    /// # Panics
    ///
    /// When `steals` is zero.
    #[track_caller]
    pub fn max_steals_at_once(mut self, steals: usize) -> Self {
        assert!(steals >= 1, "max_steals_at_once must be at least 1");
        self.max_steals_at_once = steals;
        self
    }

    /// The most leases this worker takes, whatever the balance says.
    /// Default: no limit.
    ///
    /// # Panics
    ///
    /// When `leases` is zero.
    #[track_caller]
    pub fn max_leases_per_worker(mut self, leases: usize) -> Self {
        assert!(leases >= 1, "max_leases_per_worker must be at least 1");
        self.max_leases_per_worker = leases;
        self
    }

    /// How long a requested handoff may take before the taker forces it.
    /// Default 30 s.
    pub fn handoff_timeout(mut self, timeout: Duration) -> Self {
        self.handoff_timeout = timeout;
        self
    }

    /// How long a lease being given up (handoff, shutdown) waits for its
    /// delivered records to be checkpointed. Default 30 s.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Back-off between attempts of a checkpoint write that failed for a
    /// transient reason; attempts stop when the lease is no longer valid.
    pub fn write_retry(mut self, policy: RetryPolicy) -> Self {
        self.write_retry = policy;
        self
    }

    /// Seeds the worker's random choices (scan jitter, which lease to take
    /// or steal), so that a simulation repeats exactly. Default: random.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The renewal interval in force.
    pub fn effective_renew_interval(&self) -> Duration {
        self.renew_interval.unwrap_or(self.lease_duration / 3)
    }
}
