//! [`LeaseMetrics`]: what one lease worker did, as counters a snapshot
//! reads without stopping the worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one lease worker; read them with
/// [`LeaseWorker::metrics`](super::LeaseWorker::metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseMetrics {
    /// Leases held now.
    pub held: u64,
    /// Leases taken because nobody held them.
    pub taken_unowned: u64,
    /// Leases taken because their holder's counter stood still for the
    /// lease duration.
    pub taken_expired: u64,
    /// Leases received by a completed handoff.
    pub handoffs_received: u64,
    /// Requested handoffs forced after the timeout (or the holder expired).
    pub handoffs_forced: u64,
    /// Leases handed over to another worker on its request.
    pub handoffs_given: u64,
    /// Handoffs this worker requested.
    pub handoffs_requested: u64,
    /// Leases released (shutdown, finished partitions; at shutdown also
    /// leases handed to this worker that it had not taken up yet).
    pub released: u64,
    /// Leases lost: taken by another worker, or not renewed in time.
    pub lost: u64,
    /// Successful renewals.
    pub renewals: u64,
    /// Renewals that failed (conflicts included).
    pub renew_failures: u64,
    /// Mean time of a successful renewal.
    pub renew_latency_mean: Duration,
    /// Longest successful renewal.
    pub renew_latency_max: Duration,
    /// Table reads of the whole table.
    pub scans: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Requests made to the table (reads, creates and writes).
    pub table_requests: u64,
}

/// The live counters behind [`LeaseMetrics`].
#[derive(Debug, Default)]
pub(crate) struct LeaseCounters {
    pub(crate) held: AtomicU64,
    pub(crate) taken_unowned: AtomicU64,
    pub(crate) taken_expired: AtomicU64,
    pub(crate) handoffs_received: AtomicU64,
    pub(crate) handoffs_forced: AtomicU64,
    pub(crate) handoffs_given: AtomicU64,
    pub(crate) handoffs_requested: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) renewals: AtomicU64,
    pub(crate) renew_failures: AtomicU64,
    renew_micros_total: AtomicU64,
    renew_micros_max: AtomicU64,
    pub(crate) scans: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    pub(crate) table_requests: AtomicU64,
}

impl LeaseCounters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn renewed(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.renewals.fetch_add(1, Ordering::Relaxed);
        self.renew_micros_total.fetch_add(micros, Ordering::Relaxed);
        self.renew_micros_max.fetch_max(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LeaseMetrics {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let renewals = load(&self.renewals);
        LeaseMetrics {
            held: load(&self.held),
            taken_unowned: load(&self.taken_unowned),
            taken_expired: load(&self.taken_expired),
            handoffs_received: load(&self.handoffs_received),
            handoffs_forced: load(&self.handoffs_forced),
            handoffs_given: load(&self.handoffs_given),
            handoffs_requested: load(&self.handoffs_requested),
            released: load(&self.released),
            lost: load(&self.lost),
            renewals,
            renew_failures: load(&self.renew_failures),
            renew_latency_mean: Duration::from_micros(
                load(&self.renew_micros_total)
                    .checked_div(renewals)
                    .unwrap_or(0),
            ),
            renew_latency_max: Duration::from_micros(load(&self.renew_micros_max)),
            scans: load(&self.scans),
            checkpoints: load(&self.checkpoints),
            table_requests: load(&self.table_requests),
        }
    }
}
