//! Producer metrics: counters and distributions of a [`KinesisSink`], as a
//! snapshot value that merges across producers.
//!
//! The sink records into a shared [`KinesisMetricsHandle`]; a
//! [`KinesisMetrics`] is a copy taken at one moment. Snapshots of several
//! sinks (or processes, after shipping them) combine with
//! [`KinesisMetrics::merge`]. The sink also emits `tracing` events (target
//! `unistream::kinesis`) for throttling, retries, dead-lettered records and
//! shard-map refreshes; the counters here are their totals. With the
//! `metrics` feature the counters are also forwarded, as they change, to the
//! `metrics` facade (`unistream_kinesis_sink_*`, see
//! [`observe`](crate::observe)), with the `PutRecords` latency.
//!
//! Counts of *records* are user records (what the caller sent), so they
//! compare with the caller's own counts whether or not aggregation is on;
//! [`KinesisMetrics::kinesis_records_sent`] counts what Kinesis stored.
//!
//! [`KinesisSink`]: super::KinesisSink

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::observe::kinesis_sink::{KinesisSinkMetrics, SinkCounters};

/// A snapshot of a producer's metrics.
///
/// ```
/// use unistream::kinesis::KinesisMetrics;
///
/// let mut total = KinesisMetrics::default();
/// let mut one = KinesisMetrics::default();
/// one.records_sent = 10;
/// one.latency_us.record(1500).unwrap();
/// total.merge(&one);
/// total.merge(&one);
/// assert_eq!(total.records_sent, 20);
/// assert_eq!(total.latency_us.len(), 2);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KinesisMetrics {
    /// User records Kinesis accepted.
    pub records_sent: u64,
    /// Kinesis records stored (aggregates count once).
    pub kinesis_records_sent: u64,
    /// User-record attempts that failed (per-record errors and records of
    /// failed calls); a record failing twice counts twice.
    pub records_failed: u64,
    /// User-record attempts that were retries.
    pub records_retried: u64,
    /// User records reported as rejected (invalid, or a permanent failure
    /// that exhausted the retry policy): the dead-letter path.
    pub records_dead_lettered: u64,
    /// `PutRecords` calls made, successful or not.
    pub put_records_calls: u64,
    /// `PutRecords` calls that failed as a whole.
    pub put_records_call_failures: u64,
    /// Throttling answers: records refused with
    /// `ProvisionedThroughputExceededException` plus whole calls throttled.
    pub throttles: u64,
    /// Shard-map loads (`ListShards`), initial ones included.
    pub shard_map_refreshes: u64,
    /// Records that landed on another shard than predicted.
    pub shard_mispredictions: u64,
    /// Time spent waiting for the per-shard rate limit.
    pub rate_limit_wait: Duration,
    /// `PutRecords` latency, microseconds.
    pub latency_us: Histogram<u64>,
    /// Billed size (data plus partition key) of each user record, bytes.
    pub record_bytes: Histogram<u64>,
    /// Records (Kinesis records) per `PutRecords` call.
    pub call_records: Histogram<u64>,
    /// Billed bytes per `PutRecords` call.
    pub call_bytes: Histogram<u64>,
}

impl Default for KinesisMetrics {
    fn default() -> Self {
        Self {
            records_sent: 0,
            kinesis_records_sent: 0,
            records_failed: 0,
            records_retried: 0,
            records_dead_lettered: 0,
            put_records_calls: 0,
            put_records_call_failures: 0,
            throttles: 0,
            shard_map_refreshes: 0,
            shard_mispredictions: 0,
            rate_limit_wait: Duration::ZERO,
            latency_us: histogram(),
            record_bytes: histogram(),
            call_records: histogram(),
            call_bytes: histogram(),
        }
    }
}

impl KinesisMetrics {
    /// The counters forwarded to the `metrics` facade.
    fn counters(&self) -> SinkCounters {
        SinkCounters {
            records_sent: self.records_sent,
            records_failed: self.records_failed,
            records_retried: self.records_retried,
            records_dead_lettered: self.records_dead_lettered,
            put_records_calls: self.put_records_calls,
            put_records_call_failures: self.put_records_call_failures,
            throttles: self.throttles,
        }
    }

    /// Adds `other` into `self`: counters add up, distributions combine.
    pub fn merge(&mut self, other: &KinesisMetrics) {
        self.records_sent += other.records_sent;
        self.kinesis_records_sent += other.kinesis_records_sent;
        self.records_failed += other.records_failed;
        self.records_retried += other.records_retried;
        self.records_dead_lettered += other.records_dead_lettered;
        self.put_records_calls += other.put_records_calls;
        self.put_records_call_failures += other.put_records_call_failures;
        self.throttles += other.throttles;
        self.shard_map_refreshes += other.shard_map_refreshes;
        self.shard_mispredictions += other.shard_mispredictions;
        self.rate_limit_wait += other.rate_limit_wait;
        merge_histogram(&mut self.latency_us, &other.latency_us);
        merge_histogram(&mut self.record_bytes, &other.record_bytes);
        merge_histogram(&mut self.call_records, &other.call_records);
        merge_histogram(&mut self.call_bytes, &other.call_bytes);
    }
}

/// A histogram with 3 significant figures over 1 to 2^40 (about 12 days in
/// microseconds, a terabyte in bytes); larger values saturate. All of ours
/// share this layout, so merging never needs a resize.
fn histogram() -> Histogram<u64> {
    // Only bounds or a precision out of hdrhistogram's range make this
    // fail, and these are constants within it.
    Histogram::new_with_bounds(1, 1 << 40, 3).expect("valid constant hdrhistogram bounds")
}

fn merge_histogram(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Histograms of the same layout (all of ours) always add up; one made by
    // hand with a narrower range may refuse, and then the values are
    // recorded one by one, saturating at its range.
    if into.add(from).is_err() {
        for v in from.iter_recorded() {
            into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
}

/// The live metrics of a sink, shared by its clones; take a snapshot with
/// [`snapshot`](KinesisMetricsHandle::snapshot).
#[derive(Debug, Clone, Default)]
pub struct KinesisMetricsHandle {
    inner: Arc<Mutex<KinesisMetrics>>,
}

impl KinesisMetricsHandle {
    /// A copy of the metrics now.
    pub fn snapshot(&self) -> KinesisMetrics {
        self.lock().clone()
    }

    /// Runs `f` on the live metrics, then forwards what it changed in the
    /// counters to `facade` (with the `metrics` feature).
    pub(crate) fn update_forwarding(
        &self,
        f: impl FnOnce(&mut KinesisMetrics),
        facade: &KinesisSinkMetrics,
    ) {
        let mut metrics = self.lock();
        if !crate::observe::handles::ENABLED {
            f(&mut metrics);
            return;
        }
        let before = metrics.counters();
        f(&mut metrics);
        let after = metrics.counters();
        drop(metrics);
        facade.forward(&before, &after);
    }

    fn lock(&self) -> MutexGuard<'_, KinesisMetrics> {
        // Metrics are plain counters: a panic elsewhere while holding the
        // lock leaves them usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counters_and_distributions() {
        let mut a = KinesisMetrics {
            records_sent: 3,
            throttles: 1,
            rate_limit_wait: Duration::from_millis(5),
            ..KinesisMetrics::default()
        };
        a.latency_us.saturating_record(100);
        let mut b = KinesisMetrics {
            records_sent: 4,
            records_dead_lettered: 2,
            ..KinesisMetrics::default()
        };
        b.latency_us.saturating_record(1_000_000);
        b.call_records.saturating_record(500);
        a.merge(&b);
        assert_eq!(a.records_sent, 7);
        assert_eq!(a.throttles, 1);
        assert_eq!(a.records_dead_lettered, 2);
        assert_eq!(a.rate_limit_wait, Duration::from_millis(5));
        assert_eq!(a.latency_us.len(), 2);
        assert_eq!(a.latency_us.min(), 100);
        assert!(a.latency_us.max() >= 999_000 && a.latency_us.max() <= 1_001_000);
        assert_eq!(a.call_records.len(), 1);
    }

    #[test]
    fn merging_into_a_fixed_range_histogram_saturates() {
        let mut a = KinesisMetrics {
            latency_us: Histogram::new_with_bounds(1, 1000, 3).unwrap(),
            ..KinesisMetrics::default()
        };
        let mut b = KinesisMetrics::default();
        b.latency_us.saturating_record(10_000_000);
        a.merge(&b);
        assert_eq!(a.latency_us.len(), 1);
        assert!(a.latency_us.max() <= 1000 + 1);
    }

    #[test]
    fn handle_snapshots_are_copies() {
        let handle = KinesisMetricsHandle::default();
        handle.update_forwarding(|m| m.put_records_calls += 1, &Default::default());
        let snap = handle.snapshot();
        handle.update_forwarding(|m| m.put_records_calls += 1, &Default::default());
        assert_eq!(snap.put_records_calls, 1);
        assert_eq!(handle.snapshot().put_records_calls, 2);
    }
}
