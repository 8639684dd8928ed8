//! The metrics of one open write-ahead log (label [`LABEL_WAL`]): recorded
//! once per group write or commit, never per record.

use super::handles::{Counter, Gauge, Histogram, Labels, ENABLED};
use super::names::*;

/// The handles of one log, registered when it is opened.
#[derive(Clone, Default, Debug)]
pub(crate) struct WalMetrics {
    pub(crate) appended_records: Counter,
    pub(crate) appended_bytes: Counter,
    pub(crate) group_writes: Counter,
    pub(crate) group_write_seconds: Histogram,
    pub(crate) commits: Counter,
    pub(crate) commit_failures: Counter,
    pub(crate) commit_seconds: Histogram,
    pub(crate) backlog_records: Gauge,
    pub(crate) backlog_bytes: Gauge,
    pub(crate) disk_bytes: Gauge,
}

impl WalMetrics {
    pub(crate) fn new(options: &crate::wal::WalOptions) -> Self {
        if !ENABLED {
            return Self::default();
        }
        let labels: Labels = vec![(LABEL_WAL, options.label())];
        Self {
            appended_records: Counter::new(WAL_APPENDED_RECORDS, &labels),
            appended_bytes: Counter::new(WAL_APPENDED_BYTES, &labels),
            group_writes: Counter::new(WAL_GROUP_WRITES, &labels),
            group_write_seconds: Histogram::new(WAL_GROUP_WRITE_SECONDS, &labels),
            commits: Counter::new(WAL_COMMITS, &labels),
            commit_failures: Counter::new(WAL_COMMIT_FAILURES, &labels),
            commit_seconds: Histogram::new(WAL_COMMIT_SECONDS, &labels),
            backlog_records: Gauge::new(WAL_BACKLOG_RECORDS, &labels),
            backlog_bytes: Gauge::new(WAL_BACKLOG_BYTES, &labels),
            disk_bytes: Gauge::new(WAL_DISK_BYTES, &labels),
        }
    }
}
