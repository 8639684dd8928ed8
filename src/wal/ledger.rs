//! What the writer task, the committer task, the reader and the writer
//! handles of one open log share: [`WalShared`] (the options, the wake-ups
//! and the [`WalLedger`] behind one mutex).
//!
//! The ledger is the one place that says which segments exist and how long
//! each is, how far the log is written, synced and committed, and when
//! records were appended. Guarantees: it is only changed under its lock, by
//! the task that did the I/O it records, and after that I/O (a segment's
//! length is published only once its bytes are written, a position only
//! once it is durable); a reader may therefore read up to what it says. Not
//! guaranteed: that it matches the files byte for byte at every instant —
//! bytes being written, and zero fill preallocated past the frames, are on
//! disk before the ledger mentions them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{QuarantinedFrame, WalOptions};
use crate::observe::wal::WalMetrics;

/// How many append-time marks are kept. Beyond this, new records are
/// attributed to the previous mark's (earlier) time: the backlog's age is
/// then over-estimated, never under-estimated, and memory stays bounded.
pub(crate) const MAX_MARKS: usize = 4096;

/// A segment file as the ledger knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentSize {
    /// Lsn of its first record (its name).
    pub(crate) first: u64,
    /// Bytes of its header and frames.
    pub(crate) bytes: u64,
}

/// The time records from `first` on were appended (until the next mark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AppendMark {
    pub(crate) first: u64,
    pub(crate) at: Instant,
}

/// The part of an open log that its handles and tasks share.
pub(crate) struct WalShared {
    pub(crate) options: WalOptions,
    ledger: Mutex<WalLedger>,
    /// Signalled when a commit frees space (the writer may be waiting), and
    /// when the reader is dropped.
    pub(crate) space_freed: Notify,
    /// Set when the reader is dropped: nothing can free space any more.
    pub(crate) reader_gone: AtomicBool,
    /// Requests handed to the writer task's channel so far (the task counts
    /// what it received; the difference is what waits in the channel).
    pub(crate) requests_sent: std::sync::atomic::AtomicU64,
    /// Damaged bytes moved aside so far, at open and by the reader, each
    /// once: what [`WalWriter::quarantined`](super::WalWriter::quarantined)
    /// reports to whoever does not hold the reader.
    pub(crate) quarantined: Mutex<Vec<QuarantinedFrame>>,
    /// The log's metrics (see [`crate::observe`]).
    pub(crate) metrics: WalMetrics,
}

/// The segments of the log and its positions (see the module docs).
pub(crate) struct WalLedger {
    /// Segment files on disk: first lsn → bytes.
    pub(crate) segments: BTreeMap<u64, u64>,
    /// First lsn of the segment the writer appends to.
    pub(crate) active: u64,
    /// Sum of the segment sizes.
    pub(crate) bytes_on_disk: u64,
    /// Next lsn to be written; every lsn below is in a segment file.
    pub(crate) written: u64,
    /// Every lsn below is fdatasynced.
    pub(crate) synced: u64,
    /// Every lsn below is committed (delivered).
    pub(crate) committed: u64,
    /// Payload bytes of all records from the reader's start to `written`.
    pub(crate) payload_appended: u64,
    /// Every lsn below is delivered: committed by the reader (maybe not yet
    /// persisted, unlike `committed`). For the backlog gauges: kept only
    /// with the `metrics` feature.
    pub(crate) delivered: u64,
    /// Payload bytes of the records from the reader's start to `delivered`.
    pub(crate) payload_delivered: u64,
    /// When records were appended, by first lsn ascending, pruned on commit.
    pub(crate) marks: VecDeque<AppendMark>,
    /// Group writes done since open.
    pub(crate) group_writes: u64,
    /// fdatasyncs of segment files since open.
    pub(crate) fdatasyncs: u64,
}

impl WalShared {
    pub(crate) fn new(options: WalOptions, ledger: WalLedger) -> Self {
        ledger.debug_check();
        let metrics = WalMetrics::new(&options);
        ledger.publish_gauges(&metrics);
        Self {
            metrics,
            options,
            ledger: Mutex::new(ledger),
            space_freed: Notify::new(),
            reader_gone: AtomicBool::new(false),
            requests_sent: std::sync::atomic::AtomicU64::new(0),
            quarantined: Mutex::new(Vec::new()),
        }
    }

    /// Sets the backlog and disk gauges (see [`WalLedger::publish_gauges`]);
    /// without the `metrics` feature it does not even take the lock.
    pub(crate) fn publish_gauges(&self) {
        if crate::observe::handles::ENABLED {
            self.lock().publish_gauges(&self.metrics);
        }
    }

    /// Locks the ledger. A panic while holding the lock cannot leave it
    /// half-updated in a way that matters more than the panic itself, so a
    /// poisoned lock is used as is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, WalLedger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl WalLedger {
    /// Checks, in debug builds, the invariants the writer and the reader
    /// rely on; called after every change.
    pub(crate) fn debug_check(&self) {
        // Nothing is synced that is not written.
        debug_assert!(
            self.synced <= self.written,
            "synced {} past written {}",
            self.synced,
            self.written
        );
        // A commit never goes past the written end: the reader commits only
        // records it has read, and it reads only written ones.
        debug_assert!(
            self.committed <= self.written,
            "committed {} past written {}",
            self.committed,
            self.written
        );
        // The active segment is the newest one, and its first lsn is
        // written or the next to be.
        debug_assert_eq!(
            self.segments.last_key_value().map(|(&first, _)| first),
            Some(self.active),
            "the active segment is not the newest"
        );
        debug_assert!(self.active <= self.written);
        // What the cap is checked against is exactly the registry's total.
        debug_assert_eq!(
            self.bytes_on_disk,
            self.segments.values().sum::<u64>(),
            "bytes on disk differ from the sum of the segment sizes"
        );
        // Marks ascend by lsn: `appended_at` searches them by halving.
        debug_assert!(
            self.marks
                .iter()
                .zip(self.marks.iter().skip(1))
                .all(|(a, b)| a.first < b.first),
            "append marks out of order"
        );
    }

    /// Sets the backlog and disk gauges from the ledger. Called under the
    /// lock after every change they show, so that the last value set is the
    /// newest.
    pub(crate) fn publish_gauges(&self, metrics: &WalMetrics) {
        if !crate::observe::handles::ENABLED {
            return;
        }
        metrics
            .backlog_records
            .set(self.written.saturating_sub(self.delivered) as f64);
        metrics
            .backlog_bytes
            .set(self.payload_appended.saturating_sub(self.payload_delivered) as f64);
        metrics.disk_bytes.set(self.bytes_on_disk as f64);
    }

    /// First lsn of the segment that holds `lsn`.
    pub(crate) fn segment_containing(&self, lsn: u64) -> Option<u64> {
        self.segments.range(..=lsn).next_back().map(|(&f, _)| f)
    }

    /// First lsn of the segment after the one starting at `first`.
    pub(crate) fn segment_after(&self, first: u64) -> Option<u64> {
        self.segments
            .range(first.saturating_add(1)..)
            .next()
            .map(|(&f, _)| f)
    }

    /// Removes from the registry every segment, except the active one, that
    /// holds only lsns below `upto`; returns them. The caller deletes the
    /// files.
    pub(crate) fn take_segments_below(&mut self, upto: u64) -> Vec<SegmentSize> {
        let firsts: Vec<u64> = self.segments.keys().copied().collect();
        let mut out = Vec::new();
        for pair in firsts.windows(2) {
            let (first, next) = (pair[0], pair[1]);
            if next <= upto && first != self.active {
                if let Some(bytes) = self.segments.remove(&first) {
                    self.bytes_on_disk = self.bytes_on_disk.saturating_sub(bytes);
                    out.push(SegmentSize { first, bytes });
                }
            }
        }
        self.debug_check();
        out
    }

    /// Records that lsns from `first` were appended at `at`.
    pub(crate) fn mark(&mut self, first: u64, at: Instant) {
        // Marks are made in lsn order (one per group, at its first lsn).
        debug_assert!(self.marks.back().is_none_or(|m| m.first < first));
        if self.marks.len() < MAX_MARKS {
            self.marks.push_back(AppendMark { first, at });
        }
    }

    /// When the record `lsn` was appended (or earlier, see [`MAX_MARKS`]).
    pub(crate) fn appended_at(&self, lsn: u64) -> Option<Instant> {
        let idx = self.marks.partition_point(|m| m.first <= lsn);
        if idx == 0 {
            self.marks.front().map(|m| m.at)
        } else {
            Some(self.marks[idx - 1].at)
        }
    }

    /// Drops marks no longer needed once everything below `committed` is
    /// delivered.
    pub(crate) fn prune_marks(&mut self, committed: u64) {
        while self.marks.len() > 1 && self.marks[1].first <= committed {
            self.marks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger whose last segment is the active one, written up to its
    /// first lsn.
    fn ledger(segments: &[(u64, u64)], active: u64) -> WalLedger {
        WalLedger {
            segments: segments.iter().copied().collect(),
            active,
            bytes_on_disk: segments.iter().map(|s| s.1).sum(),
            written: active,
            synced: 0,
            committed: 0,
            payload_appended: 0,
            delivered: 0,
            payload_delivered: 0,
            marks: VecDeque::new(),
            group_writes: 0,
            fdatasyncs: 0,
        }
    }

    #[test]
    fn only_wholly_committed_non_active_segments_are_taken() {
        let mut st = ledger(&[(0, 100), (10, 100), (20, 100), (30, 50)], 30);
        assert!(st.take_segments_below(9).is_empty());
        let size = |first, bytes| SegmentSize { first, bytes };
        assert_eq!(
            st.take_segments_below(20),
            vec![size(0, 100), size(10, 100)]
        );
        assert_eq!(st.bytes_on_disk, 150);
        // The active segment stays even when everything in it is committed.
        assert_eq!(st.take_segments_below(1000), vec![size(20, 100)]);
        assert_eq!(st.segments.keys().copied().collect::<Vec<_>>(), vec![30]);
        assert_eq!(st.segment_containing(35), Some(30));
        assert_eq!(st.segment_after(30), None);
    }

    #[test]
    fn marks_give_the_append_time_of_a_record_and_are_bounded() {
        let t0 = Instant::now();
        let mut st = ledger(&[(0, 16)], 0);
        st.mark(0, t0);
        st.mark(5, t0 + std::time::Duration::from_secs(1));
        st.mark(9, t0 + std::time::Duration::from_secs(2));
        assert_eq!(st.appended_at(4), Some(t0));
        assert_eq!(
            st.appended_at(5),
            Some(t0 + std::time::Duration::from_secs(1))
        );
        assert_eq!(
            st.appended_at(100),
            Some(t0 + std::time::Duration::from_secs(2))
        );
        st.prune_marks(6);
        assert_eq!(st.marks.len(), 2, "the mark covering lsn 6 stays");
        assert_eq!(
            st.appended_at(6),
            Some(t0 + std::time::Duration::from_secs(1))
        );
        for i in 0..2 * MAX_MARKS as u64 {
            st.mark(100 + i, t0);
        }
        assert_eq!(st.marks.len(), MAX_MARKS);
    }
}
