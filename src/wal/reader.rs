//! The read side: [`WalReader`] returns appended records in Lsn order, read
//! back from the segment files, and commits delivered ones.
//!
//! Reading holds one segment open with a bounded buffer
//! ([`READ_BUFFER_BYTES`](super::segment::READ_BUFFER_BYTES)); memory does
//! not grow with the backlog. Each frame's checksum is verified as it is
//! read, which is where damage in segments that recovery did not scan is
//! found.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use super::committer::Persisted;
use super::error::join_error;
use super::quarantine::copy_aside;
use super::recovery::ReaderStart;
use super::segment::{Damage, SegmentReader};
use super::shared::Shared;
use super::{Lsn, OnCorruption, QuarantinedFrame, WalError};

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
/// backlog on [`rewind`](Self::rewind)) and 24 bytes per record of the last
/// batch (where each frame is, so that rewinding into it does not rescan
/// its segment); a reader that commits what it delivers stays bounded
/// whatever the backlog on disk.
pub struct WalReader {
    shared: Arc<Shared>,
    written_rx: watch::Receiver<u64>,
    /// Positions for the committer task to persist.
    commit_tx: watch::Sender<u64>,
    /// What the committer task has persisted.
    persisted_rx: watch::Receiver<Persisted>,
    /// Open segment positioned at the frame of `next`, if any.
    cursor: Option<SegmentReader>,
    /// Where the next read starts, when known without scanning its segment
    /// from the top: the committed position found by recovery, or the
    /// target of a [`rewind`](Self::rewind) into the last batch returned.
    start: Option<ReaderStart>,
    /// Segment and byte offset of every record of the last batch returned
    /// that was read without damage, by lsn (for cheap rewinds).
    last_positions: Vec<(u64, u64, u64)>,
    /// Next lsn to return.
    next: u64,
    /// Every lsn below is committed.
    committed: u64,
    /// Payload length of every lsn in `[committed, next)` (0 for skipped).
    returned: VecDeque<u32>,
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
        shared: Arc<Shared>,
        written_rx: watch::Receiver<u64>,
        commit_tx: watch::Sender<u64>,
        persisted_rx: watch::Receiver<Persisted>,
        start: ReaderStart,
        recovered_quarantine: &[QuarantinedFrame],
    ) -> Self {
        Self {
            shared,
            written_rx,
            commit_tx,
            persisted_rx,
            cursor: None,
            start: Some(start),
            next: start.lsn,
            committed: start.lsn,
            returned: VecDeque::new(),
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
    /// [`OnCorruption::Fail`]; records before it are returned first, the
    /// error comes with the next call and again on every later call), or is
    /// quarantined and skipped (with [`OnCorruption::Quarantine`], see
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
                self.quarantined.push(q);
            }
        }
        for &len in &batch.lens {
            self.consumed_payload += u64::from(len);
        }
        self.returned.extend(batch.lens);
        self.last_positions = batch.positions;
        self.next = batch.next;
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
        let keep = (from - self.committed) as usize;
        for len in self.returned.drain(keep..) {
            self.consumed_payload = self.consumed_payload.saturating_sub(u64::from(len));
        }
        self.next = from;
        self.cursor = None;
        // Into the last batch (the usual case: its tail is handed back),
        // the record's frame is known: no scan from the segment's top.
        self.start = self
            .last_positions
            .binary_search_by_key(&from, |&(lsn, _, _)| lsn)
            .ok()
            .map(|i| {
                let (lsn, segment, offset) = self.last_positions[i];
                ReaderStart {
                    lsn,
                    segment,
                    offset: Some(offset),
                }
            });
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
            .map(|(_, e)| e.duplicate());
        let advanced = upto > self.committed;
        if advanced {
            let records = (upto - self.committed) as usize;
            self.returned.drain(..records.min(self.returned.len()));
            self.committed = upto;
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
                if let Some((target, e)) = &persisted.failed {
                    if *target >= upto.0 {
                        return Err(e.duplicate());
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
}

/// What one blocking read produced.
struct Batch {
    /// Built from `data` and `spans` when the read ends (empty until then).
    records: Vec<WalRecord>,
    /// Payloads of the records read, back to back.
    data: Vec<u8>,
    /// (lsn, start, end in `data`) of every record read.
    spans: Vec<(u64, usize, usize)>,
    quarantined: Vec<QuarantinedFrame>,
    /// Payload length of every lsn consumed (0 for skipped ones).
    lens: Vec<u32>,
    /// (lsn, segment, frame offset) of every record read without damage.
    positions: Vec<(u64, u64, u64)>,
    next: u64,
}

/// The blocking part of `next_batch`.
struct ReadJob {
    shared: Arc<Shared>,
    start: Option<ReaderStart>,
    next: u64,
    written: u64,
    max_records: usize,
    max_bytes: u64,
}

/// How reading goes on after damage.
enum AfterDamage {
    /// Stepped over it; go on reading at the (new) lsn.
    Continue,
    /// Stop here and return what was read.
    Stop,
}

impl ReadJob {
    fn dir(&self) -> &Path {
        &self.shared.options.dir
    }

    fn run(&self, cursor: &mut Option<SegmentReader>) -> Result<Batch, WalError> {
        // Sized once: the batch is bounded by the request and the backlog.
        let expected = (self.written - self.next)
            .min(self.max_records as u64)
            .min(1 << 16) as usize;
        let mut batch = Batch {
            records: Vec::new(),
            // Grows by doubling from a guess of ~128 bytes per record.
            data: Vec::with_capacity((expected * 128).min(self.max_bytes as usize)),
            spans: Vec::with_capacity(expected),
            quarantined: Vec::new(),
            lens: Vec::with_capacity(expected),
            positions: Vec::with_capacity(expected),
            next: self.next,
        };
        let mut bytes = 0u64;
        // First lsn of the segment after the cursor's. Segment boundaries
        // never change, and a segment created after `written` was published
        // starts at or above it, so it is looked up once per segment.
        let mut boundary = None;
        if let Some(c) = cursor.as_mut() {
            let st = self.shared.lock();
            boundary = st.segment_after(c.first);
            if let Some(&published) = st.segments.get(&c.first) {
                c.set_limit(published);
            }
        }
        while batch.spans.len() < self.max_records && batch.next < self.written {
            let lsn = batch.next;
            // Move to the segment holding `lsn` when the cursor is not there.
            let switch = cursor.is_none() || boundary.is_some_and(|b| lsn >= b);
            if switch {
                *cursor = None;
                match self.open_at(lsn) {
                    Ok(c) => {
                        boundary = self.shared.lock().segment_after(c.first);
                        *cursor = Some(c);
                    }
                    Err(WalError::Corrupt {
                        file,
                        offset,
                        reason,
                    }) => match self.on_rest_damage(&mut batch, &file, offset, reason)? {
                        AfterDamage::Continue => continue,
                        AfterDamage::Stop => break,
                    },
                    Err(e) => return Err(e),
                }
            }
            let Some(c) = cursor.as_mut() else { break };
            match c.peek_len()? {
                Ok(len) => {
                    if !batch.spans.is_empty() && bytes + u64::from(len) > self.max_bytes {
                        break;
                    }
                }
                Err(damage) => {
                    let file = c.path.clone();
                    *cursor = None;
                    match self.on_damage(&mut batch, &file, damage)? {
                        AfterDamage::Continue => continue,
                        AfterDamage::Stop => break,
                    }
                }
            }
            let (segment, offset) = (c.first, c.offset);
            let start = batch.data.len();
            match c.next_frame(&mut batch.data)? {
                Ok(()) => {
                    let end = batch.data.len();
                    let len = (end - start) as u32;
                    bytes += u64::from(len);
                    batch.positions.push((lsn, segment, offset));
                    batch.spans.push((lsn, start, end));
                    batch.lens.push(len);
                    batch.next += 1;
                }
                Err(damage) => {
                    let file = c.path.clone();
                    if matches!(damage, Damage::Rest { .. })
                        || self.shared.options.on_corruption == OnCorruption::Fail
                    {
                        // The cursor is no longer at the frame of `batch.next`.
                        *cursor = None;
                    }
                    match self.on_damage(&mut batch, &file, damage)? {
                        AfterDamage::Continue => continue,
                        AfterDamage::Stop => break,
                    }
                }
            }
        }
        let data = Bytes::from(std::mem::take(&mut batch.data));
        batch.records = batch
            .spans
            .drain(..)
            .map(|(lsn, start, end)| WalRecord {
                lsn: Lsn(lsn),
                payload: data.slice(start..end),
            })
            .collect();
        Ok(batch)
    }

    /// Opens the segment holding `lsn` and positions it at that frame.
    fn open_at(&self, lsn: u64) -> Result<SegmentReader, WalError> {
        let (first, published) = {
            let st = self.shared.lock();
            let first = st.segment_containing(lsn).ok_or_else(|| WalError::Failed {
                reason: format!("internal: no segment holds lsn {lsn}"),
            })?;
            (first, st.segments.get(&first).copied().unwrap_or(0))
        };
        let mut reader = SegmentReader::open(self.dir(), first, published)?;
        if let Some(start) = self.start.filter(|s| s.lsn == lsn && s.segment == first) {
            if let Some(offset) = start.offset {
                reader.seek_to(offset)?;
                return Ok(reader);
            }
        }
        let mut at = first;
        while at < lsn {
            match reader.skip_frame()? {
                Ok(_) => at += 1,
                Err(damage) => {
                    let (offset, reason) = match damage {
                        Damage::Rest { offset, reason } => (offset, reason),
                        Damage::Payload { offset, .. } => {
                            (offset, "payload checksum mismatch".to_owned())
                        }
                    };
                    return Err(WalError::Corrupt {
                        file: reader.path.clone(),
                        offset,
                        reason,
                    });
                }
            }
        }
        Ok(reader)
    }

    fn on_damage(
        &self,
        batch: &mut Batch,
        file: &Path,
        damage: Damage,
    ) -> Result<AfterDamage, WalError> {
        match damage {
            Damage::Rest { offset, reason } => self.on_rest_damage(batch, file, offset, reason),
            Damage::Payload {
                offset,
                frame_len,
                len,
            } => {
                let reason = "payload checksum mismatch".to_owned();
                if self.shared.options.on_corruption == OnCorruption::Fail {
                    return fail(batch, file, offset, reason);
                }
                let (moved_to, copied) = copy_aside(self.dir(), file, offset, Some(frame_len))?;
                let lsn = batch.next;
                report(
                    batch,
                    file,
                    offset,
                    copied,
                    (lsn, lsn + 1),
                    reason,
                    moved_to,
                );
                batch.lens.push(len);
                batch.next += 1;
                Ok(AfterDamage::Continue)
            }
        }
    }

    /// Damage after which the rest of the segment cannot be framed: under
    /// quarantine, copy the rest aside and go on at the next segment.
    fn on_rest_damage(
        &self,
        batch: &mut Batch,
        file: &Path,
        offset: u64,
        reason: String,
    ) -> Result<AfterDamage, WalError> {
        if self.shared.options.on_corruption == OnCorruption::Fail {
            return fail(batch, file, offset, reason);
        }
        let lsn = batch.next;
        let next_segment = {
            let st = self.shared.lock();
            st.segment_containing(lsn).and_then(|f| st.segment_after(f))
        };
        let Some(next_first) = next_segment else {
            // Damage in the segment being appended to: nothing to step to.
            return fail(
                batch,
                file,
                offset,
                format!("{reason} (in the active segment: cannot step over)"),
            );
        };
        let (moved_to, copied) = copy_aside(self.dir(), file, offset, None)?;
        report(
            batch,
            file,
            offset,
            copied,
            (lsn, next_first),
            reason,
            moved_to,
        );
        let skipped = next_first.saturating_sub(lsn);
        batch
            .lens
            .extend(std::iter::repeat_n(0u32, skipped as usize));
        batch.next = next_first.max(lsn);
        Ok(AfterDamage::Continue)
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

/// Under `OnCorruption::Fail`: return what was read, or the error when
/// nothing was.
fn fail(batch: &Batch, file: &Path, offset: u64, reason: String) -> Result<AfterDamage, WalError> {
    if batch.spans.is_empty() {
        Err(WalError::Corrupt {
            file: file.to_path_buf(),
            offset,
            reason,
        })
    } else {
        Ok(AfterDamage::Stop)
    }
}

fn report(
    batch: &mut Batch,
    file: &Path,
    offset: u64,
    bytes: u64,
    lsns: (u64, u64),
    reason: String,
    moved_to: PathBuf,
) {
    tracing::error!(
        file = %file.display(),
        offset,
        bytes,
        first_lsn = lsns.0,
        end_lsn = lsns.1,
        moved_to = %moved_to.display(),
        %reason,
        "WAL: damaged frame quarantined and skipped"
    );
    batch.quarantined.push(QuarantinedFrame {
        file: file.to_path_buf(),
        offset,
        bytes,
        lsns: (Lsn(lsns.0), Lsn(lsns.1)),
        reason,
        moved_to,
    });
}
