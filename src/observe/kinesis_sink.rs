//! The Kinesis sink's counters in the `metrics` facade (label
//! [`LABEL_STREAM`]), alongside its own snapshot (`KinesisMetricsHandle`):
//! every change of the snapshot's counters is forwarded as the difference
//! it made, so the two always agree.

use super::handles::{Counter, Histogram, Labels, ENABLED};
use super::names::*;

/// The counters of the snapshot that are forwarded, at one moment.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct SinkCounters {
    pub(crate) records_sent: u64,
    pub(crate) records_failed: u64,
    pub(crate) records_retried: u64,
    pub(crate) records_dead_lettered: u64,
    pub(crate) put_records_calls: u64,
    pub(crate) put_records_call_failures: u64,
    pub(crate) throttles: u64,
}

/// The handles of one sink, registered when it is built.
#[derive(Clone, Default, Debug)]
pub(crate) struct KinesisSinkMetrics {
    records: Counter,
    failed_records: Counter,
    retried_records: Counter,
    rejected_records: Counter,
    calls: Counter,
    call_failures: Counter,
    throttles: Counter,
    pub(crate) call_seconds: Histogram,
}

impl KinesisSinkMetrics {
    pub(crate) fn new(stream: &str) -> Self {
        if !ENABLED {
            return Self::default();
        }
        let labels: Labels = vec![(LABEL_STREAM, stream.to_owned())];
        Self {
            records: Counter::new(KINESIS_SINK_RECORDS, &labels),
            failed_records: Counter::new(KINESIS_SINK_FAILED_RECORDS, &labels),
            retried_records: Counter::new(KINESIS_SINK_RETRIED_RECORDS, &labels),
            rejected_records: Counter::new(KINESIS_SINK_REJECTED_RECORDS, &labels),
            calls: Counter::new(KINESIS_SINK_CALLS, &labels),
            call_failures: Counter::new(KINESIS_SINK_CALL_FAILURES, &labels),
            throttles: Counter::new(KINESIS_SINK_THROTTLES, &labels),
            call_seconds: Histogram::new(KINESIS_SINK_CALL_SECONDS, &labels),
        }
    }

    /// Forwards what changed between two readings of the snapshot's counters.
    pub(crate) fn forward(&self, before: &SinkCounters, after: &SinkCounters) {
        let delta = |a: u64, b: u64| b.saturating_sub(a);
        self.records
            .increment(delta(before.records_sent, after.records_sent));
        self.failed_records
            .increment(delta(before.records_failed, after.records_failed));
        self.retried_records
            .increment(delta(before.records_retried, after.records_retried));
        self.rejected_records.increment(delta(
            before.records_dead_lettered,
            after.records_dead_lettered,
        ));
        self.calls
            .increment(delta(before.put_records_calls, after.put_records_calls));
        self.call_failures.increment(delta(
            before.put_records_call_failures,
            after.put_records_call_failures,
        ));
        self.throttles
            .increment(delta(before.throttles, after.throttles));
    }
}
