//! The read side's handle: [`WalReader`], the single consumer of a log,
//! returns appended records in Lsn order and commits delivered ones;
//! [`Backlog`] and [`WalRecord`] are what it reports and returns.
//!
//! Guarantees:
//!
//! - Records come back in Lsn order, each once, continuing after the
//!   previously returned ones; [`WalReader::rewind`] hands back records not
//!   yet committed, and nothing else can make one come back before a
//!   restart.
//! - A commit never goes past the records returned so far
//!   ([`WalError::CommitBeyondReturned`]), and once durable it is never
//!   undone: a crash afterwards starts reading at that position.
//! - Reading holds one segment open with a bounded buffer
//!   ([`READ_BUFFER_BYTES`](super::segment::READ_BUFFER_BYTES)); memory does
//!   not grow with the backlog. Each frame's checksum is verified as it is
//!   read, which is where damage in segments that recovery did not scan is
//!   found (see [`read_job`]).
//!
//! Not guaranteed: under
//! [`OnCorruption::Quarantine`](super::OnCorruption::Quarantine) damaged
//! frames are skipped, so the lsns returned then have gaps. A record
//! committed with [`WalReader::start_commit`] but not yet persisted is
//! delivered again after a crash (at least once, never lost).

mod read_job;
mod returned;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use super::committer::PersistedPosition;
use super::error::join_error;
use super::ledger::WalShared;
use super::recovery::ReaderStart;
use super::segment::SegmentReader;
use super::{Lsn, QuarantinedFrame, WalError};
use read_job::{FramePosition, ReadJob};
use returned::ReturnedLens;

/// Records appended and not yet returned by [`WalReader::next_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// How many records.
    pub records: u64,
    /// Their payload bytes (encoded record bytes, frame headers excluded).
    pub bytes: u64,
    /// When the oldest of them was appended (records recovered at open count
    /// as appended at open). `None` when there are none.
    pub oldest_appended_at: Option<Instant>,
}

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// Its sequence number.
    pub lsn: Lsn,
    /// The bytes that were appended. The records of one
    /// [`next_batch`](WalReader::next_batch) share one buffer, which stays
    /// allocated until the last of them is dropped.
    pub payload: Bytes,
}

/// The single consumer of a log (the delivery task): reads records back in
/// order and commits the delivered ones.
///
/// Memory: one segment read buffer, the records of the batch being read,
/// 4 bytes per record returned but not yet committed (to restore the
/// backlog on [`rewind`](Self::rewind); lsns stepped over by quarantine
/// take one range however many they are) and 24 bytes per record of the last
/// batch (where each frame is, so that rewinding into it does not rescan
/// its segment); a reader that commits what it delivers stays bounded
/// whatever the backlog on disk.
pub struct WalReader {
    shared: Arc<WalShared>,
    written_rx: watch::Receiver<u64>,
    /// Positions for the committer task to persist.
    commit_tx: watch::Sender<u64>,
    /// What the committer task has persisted.
    persisted_rx: watch::Receiver<PersistedPosition>,
    /// Open segment positioned at the frame of `next`, if any.
    cursor: Option<SegmentReader>,
    /// Where the next read starts, when known without scanning its segment
    /// from the top: the committed position found by recovery, or the
    /// target of a [`rewind`](Self::rewind) into the last batch returned.
    start: Option<ReaderStart>,
    /// Segment and byte offset of every record of the last batch returned
    /// that was read without damage, by lsn (for cheap rewinds).
    last_positions: Vec<FramePosition>,
    /// Next lsn to return.
    next: u64,
    /// Every lsn below is committed.
    committed: u64,
    /// Payload length of every lsn in `[committed, next)` (0 for skipped).
    returned: ReturnedLens,
    /// Payload bytes of the lsns from the open-time committed position to
    /// `next`.
    consumed_payload: u64,
    quarantined: Vec<QuarantinedFrame>,
    seen: HashSet<(PathBuf, u64)>,
}

impl std::fmt::Debug for WalReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalReader")
            .field("dir", &self.shared.options.dir)
            .field("next", &self.next)
            .field("committed", &self.committed)
            .finish()
    }
}

impl WalReader {
    pub(crate) fn new(
        shared: Arc<WalShared>,
        written_rx: watch::Receiver<u64>,
        commit_tx: watch::Sender<u64>,
        persisted_rx: watch::Receiver<PersistedPosition>,
        start: ReaderStart,
        recovered_quarantine: &[QuarantinedFrame],
    ) -> Self {
        shared
            .quarantined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(recovered_quarantine);
        Self {
            shared,
            written_rx,
            commit_tx,
            persisted_rx,
            cursor: None,
            start: Some(start),
            next: start.lsn,
            committed: start.lsn,
            returned: ReturnedLens::starting_at(start.lsn),
            last_positions: Vec::new(),
            consumed_payload: 0,
            quarantined: recovered_quarantine.to_vec(),
            seen: recovered_quarantine
                .iter()
                .map(|q| (q.file.clone(), q.offset))
                .collect(),
        }
    }

    /// Records appended and not yet returned by [`next_batch`](Self::next_batch).
    pub fn backlog(&self) -> Backlog {
        let st = self.shared.lock();
        let records = st.written.saturating_sub(self.next);
        if records == 0 {
            return Backlog {
                records: 0,
                bytes: 0,
                oldest_appended_at: None,
            };
        }
        Backlog {
            records,
            bytes: st.payload_appended.saturating_sub(self.consumed_payload),
            oldest_appended_at: st.appended_at(self.next),
        }
    }

    /// Resolves when [`backlog`](Self::backlog)`().records > 0` (at once if
    /// already so), or when every [`WalWriter`](super::WalWriter) is gone so
    /// that no record can arrive any more.
    pub async fn wait_for_records(&mut self) {
        loop {
            if *self.written_rx.borrow_and_update() > self.next {
                return;
            }
            if self.written_rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Returns up to `max_records` records and `max_bytes` payload bytes (at
    /// least one record if any is available, even one larger than
    /// `max_bytes`) in Lsn order, continuing after the previously returned
    /// ones; an empty `Vec` when nothing is available (or `max_records` is
    /// 0).
    ///
    /// Records are read from the segment files, verifying each frame's
    /// checksum. A damaged frame is [`WalError::Corrupt`] (with
    /// [`OnCorruption::Fail`](super::OnCorruption::Fail); records before it
    /// are returned first, the error comes with the next call and again on
    /// every later call), or is quarantined and skipped (with
    /// [`OnCorruption::Quarantine`](super::OnCorruption::Quarantine), see
    /// [`quarantined`](Self::quarantined)).
    ///
    /// Cancel safety: if the future is dropped, no record counts as
    /// returned; the next call returns them.
    pub async fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<WalRecord>, WalError> {
        let written = *self.written_rx.borrow();
        if max_records == 0 || self.next >= written {
            return Ok(Vec::new());
        }
        let cursor = self.cursor.take();
        let job = ReadJob {
            shared: self.shared.clone(),
            start: self.start.filter(|s| s.lsn == self.next),
            next: self.next,
            written,
            max_records,
            max_bytes: max_bytes as u64,
        };
        let (cursor, result) = tokio::task::spawn_blocking(move || {
            let mut cursor = cursor;
            let result = job.run(&mut cursor);
            (cursor, result)
        })
        .await
        .map_err(join_error)?;
        self.cursor = cursor;
        let batch = result?;
        self.start = None;
        for q in batch.quarantined {
            if self.seen.insert((q.file.clone(), q.offset)) {
                self.shared
                    .quarantined
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(q.clone());
                self.quarantined.push(q);
            }
        }
        self.consumed_payload += batch.lens.payload();
        self.returned.append(batch.lens);
        self.last_positions = batch.positions;
        // Reading only moves forward (a rewind is what moves it back), and
        // never past the written end: only published records are read.
        debug_assert!(batch.next >= self.next);
        debug_assert!(batch.next <= self.shared.lock().written);
        self.next = batch.next;
        self.debug_check();
        Ok(batch.records)
    }

    /// Makes [`next_batch`](Self::next_batch) return records from `from`
    /// again (after a failed delivery whose records the caller dropped).
    /// `from` is clamped to `[committed, next not yet returned]`.
    pub fn rewind(&mut self, from: Lsn) {
        let from = from.0.clamp(self.committed, self.next);
        if from == self.next {
            return;
        }
        let handed_back = self.returned.rewind(from);
        self.consumed_payload = self.consumed_payload.saturating_sub(handed_back);
        self.next = from;
        self.debug_check();
        self.cursor = None;
        // Into the last batch (the usual case: its tail is handed back),
        // the record's frame is known: no scan from the segment's top.
        self.start = self
            .last_positions
            .binary_search_by_key(&from, |p| p.lsn)
            .ok()
            .map(|i| ReaderStart::from(self.last_positions[i]));
    }

    /// Persists that every record with lsn < `upto` is delivered, and
    /// resolves once that is durable: the position goes into the older of
    /// the committed-position file's two checksummed slots, written in
    /// place and fdatasynced (see the [module docs](super)), then every
    /// segment holding only records below `upto` is deleted (segments are
    /// never rewritten), the directory fsynced and cap space freed (waking
    /// appends waiting for it).
    ///
    /// `upto` at or below [`committed`](Self::committed) does nothing
    /// beyond waiting for it to be durable; `upto` beyond the records
    /// returned so far is [`WalError::CommitBeyondReturned`].
    ///
    /// Each call costs an fdatasync (and a directory fsync when segments
    /// are deleted) when awaited one after the other; a
    /// reader committing after every small batch on a slow disk can use
    /// [`start_commit`](Self::start_commit) instead and await durability
    /// only when it matters (before shutting down).
    pub async fn commit(&mut self, upto: Lsn) -> Result<(), WalError> {
        self.start_commit(upto)?;
        self.wait_committed(upto).await
    }

    /// Records that every record with lsn < `upto` is delivered and hands
    /// the position to the background committer, returning at once. The
    /// committer persists the newest position given (coalescing the ones
    /// given while it was busy) exactly as [`commit`](Self::commit) does, and
    /// only then deletes segments and frees cap space.
    ///
    /// Until it is persisted, a crash redelivers these records (at least
    /// once, never lost). [`committed`](Self::committed) and
    /// [`rewind`](Self::rewind) see the new position at once.
    ///
    /// Returns the error of an earlier background persist that failed (the
    /// position is retried with this one).
    pub fn start_commit(&mut self, upto: Lsn) -> Result<(), WalError> {
        let upto = upto.0;
        if upto > self.next {
            return Err(WalError::CommitBeyondReturned {
                upto: Lsn(upto),
                returned: Lsn(self.next),
            });
        }
        let earlier_failure = self
            .persisted_rx
            .borrow()
            .failed
            .as_ref()
            .map(|f| f.error.duplicate());
        let advanced = upto > self.committed;
        if advanced {
            let payload = self.returned.commit(upto);
            self.committed = upto;
            self.debug_check();
            if crate::observe::handles::ENABLED {
                // Only the backlog gauges read these.
                let mut st = self.shared.lock();
                st.delivered = st.delivered.max(upto);
                st.payload_delivered += payload;
                st.publish_gauges(&self.shared.metrics);
            }
        }
        if advanced || earlier_failure.is_some() {
            // A failed position is retried with this request.
            self.commit_tx
                .send(self.committed)
                .map_err(|_| WalError::Closed)?;
        }
        match earlier_failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Resolves once every record below `upto` is durably committed (see
    /// [`start_commit`](Self::start_commit)), or with the error of the
    /// background persist that covered it.
    pub async fn wait_committed(&mut self, upto: Lsn) -> Result<(), WalError> {
        loop {
            {
                let persisted = self.persisted_rx.borrow_and_update();
                if persisted.lsn >= upto.0 {
                    return Ok(());
                }
                if let Some(failed) = &persisted.failed {
                    if failed.upto >= upto.0 {
                        return Err(failed.error.duplicate());
                    }
                }
            }
            self.persisted_rx
                .changed()
                .await
                .map_err(|_| WalError::Closed)?;
        }
    }

    /// Every record below this Lsn is durably committed (persisted by
    /// [`commit`](Self::commit) or the background committer).
    pub fn durable_committed(&self) -> Lsn {
        Lsn(self.persisted_rx.borrow().lsn)
    }

    /// Every record below this Lsn is committed (given to
    /// [`commit`](Self::commit) or [`start_commit`](Self::start_commit); see
    /// [`durable_committed`](Self::durable_committed) for what is on disk).
    pub fn committed(&self) -> Lsn {
        Lsn(self.committed)
    }

    /// The Lsn of the next record [`next_batch`](Self::next_batch) returns.
    pub fn next_lsn(&self) -> Lsn {
        Lsn(self.next)
    }

    /// Damaged bytes moved aside so far (at open and while reading), each
    /// reported once.
    pub fn quarantined(&self) -> &[QuarantinedFrame] {
        &self.quarantined
    }

    /// Checks, in debug builds, what rewinding and committing rely on.
    fn debug_check(&self) {
        // Nothing is committed that was not returned.
        debug_assert!(self.committed <= self.next);
        // One payload length per lsn in `[committed, next)`: rewinding and
        // committing index into it by lsn.
        debug_assert_eq!(
            self.returned.end(),
            self.next,
            "payload lengths out of step with the lsns returned"
        );
        debug_assert!(self.returned.consistent());
        // Rewinding finds a position by halving.
        debug_assert!(
            self.last_positions.windows(2).all(|w| w[0].lsn < w[1].lsn),
            "frame positions out of order"
        );
    }
}

impl Drop for WalReader {
    fn drop(&mut self) {
        // Appends waiting for space would wait forever: let them fail.
        self.shared
            .reader_gone
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.space_freed.notify_one();
    }
}
