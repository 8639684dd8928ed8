//! The blocking part of [`WalReader::next_batch`](super::WalReader::next_batch):
//! reads up to a batch of records from the segment files, moving from
//! segment to segment, and decides what damage does.
//!
//! Guarantees:
//!
//! - Records are read in Lsn order from the segment that holds them, and
//!   no further than the bytes the writer has published for that segment
//!   (preallocated zeros past them are never read as frames).
//! - Every frame's payload checksum is verified before its record is
//!   returned.
//! - Damage is never skipped silently: under [`OnCorruption::Fail`] the
//!   records before it are returned and the read after them fails with
//!   [`WalError::Corrupt`] naming the file and offset; under
//!   [`OnCorruption::Quarantine`] the damaged bytes are copied aside,
//!   reported (a [`QuarantinedFrame`] with the lsns and number of records
//!   held, and an error event) and stepped over: one frame for a bad
//!   payload; after a bad header, the bytes up to the next intact frame of
//!   the segment (found by resynchronising; the record count of a sealed
//!   segment makes the number of records lost exact), or the rest of the
//!   segment when no frame follows.
//! - Damage before the record a read starts at (committed records, not
//!   needed) never stops it: the record's frame is found past the damage.
//!
//! Not guaranteed: damage in the active segment's unframeable rest cannot
//! be stepped over (there is no next segment to go on at), so it fails even
//! under quarantine; recovery never leaves known damage in the active
//! segment (it seals a damaged last segment and starts a new one). The batch is bounded by the request (records and
//! bytes), except that a single record larger than the byte limit is still
//! returned on its own.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::returned::ReturnedLens;
use crate::wal::ledger::WalShared;
use crate::wal::quarantine::{copy_aside, CopiedAside};
use crate::wal::recovery::ReaderStart;
use crate::wal::segment::{map_segment, FrameDamage, SegmentExtent, SegmentReader};
use crate::wal::{Lsn, OnCorruption, QuarantinedFrame, WalError, WalRecord};

/// What one blocking read produced.
pub(super) struct RecordsRead {
    /// Built from `data` and `spans` when the read ends (empty until then).
    pub(super) records: Vec<WalRecord>,
    /// Payloads of the records read, back to back.
    data: Vec<u8>,
    /// Where in `data` every record read is.
    spans: Vec<RecordSpan>,
    pub(super) quarantined: Vec<QuarantinedFrame>,
    /// Payload length of every lsn consumed (0 for skipped ones).
    pub(super) lens: ReturnedLens,
    /// Where the frame of every record read without damage is.
    pub(super) positions: Vec<FramePosition>,
    pub(super) next: u64,
}

/// Where the frame of a record is: lets a rewind into the last batch start
/// there without scanning its segment from the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FramePosition {
    pub(super) lsn: u64,
    /// First lsn of the segment holding it.
    pub(super) segment: u64,
    /// Byte offset of its frame in that segment.
    pub(super) offset: u64,
}

impl From<FramePosition> for ReaderStart {
    fn from(p: FramePosition) -> Self {
        ReaderStart {
            lsn: p.lsn,
            segment: p.segment,
            offset: Some(p.offset),
        }
    }
}

/// Where the payload of a record read is in [`RecordsRead::data`].
#[derive(Debug, Clone, Copy)]
struct RecordSpan {
    lsn: u64,
    start: usize,
    end: usize,
}

/// The blocking part of `next_batch`.
pub(super) struct ReadJob {
    pub(super) shared: Arc<WalShared>,
    pub(super) start: Option<ReaderStart>,
    pub(super) next: u64,
    pub(super) written: u64,
    pub(super) max_records: usize,
    pub(super) max_bytes: u64,
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

    pub(super) fn run(&self, cursor: &mut Option<SegmentReader>) -> Result<RecordsRead, WalError> {
        // Sized once: the batch is bounded by the request and the backlog.
        let expected = (self.written - self.next)
            .min(self.max_records as u64)
            .min(1 << 16) as usize;
        let mut batch = RecordsRead {
            records: Vec::new(),
            // Grows by doubling from a guess of ~128 bytes per record.
            data: Vec::with_capacity((expected * 128).min(self.max_bytes as usize)),
            spans: Vec::with_capacity(expected),
            quarantined: Vec::new(),
            lens: ReturnedLens::starting_at(self.next),
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
                    }) => match self.on_rest_damage(&mut batch, &file, offset, reason, cursor)? {
                        AfterDamage::Continue => {
                            boundary = self.boundary_of(cursor.as_ref());
                            continue;
                        }
                        AfterDamage::Stop => break,
                    },
                    Err(e) => return Err(e),
                }
            }
            let Some(c) = cursor.as_mut() else { break };
            // The cursor is in the segment holding `lsn` (at its frame).
            debug_assert!(c.first <= lsn && boundary.is_none_or(|b| lsn < b));
            match c.peek_len()? {
                Ok(len) => {
                    if !batch.spans.is_empty() && bytes + u64::from(len) > self.max_bytes {
                        break;
                    }
                }
                Err(damage) => {
                    let file = c.path.clone();
                    *cursor = None;
                    match self.on_damage(&mut batch, &file, damage, cursor)? {
                        AfterDamage::Continue => {
                            boundary = self.boundary_of(cursor.as_ref());
                            continue;
                        }
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
                    // The lsns of a batch strictly increase.
                    debug_assert!(batch.spans.last().is_none_or(|s| s.lsn < lsn));
                    batch.positions.push(FramePosition {
                        lsn,
                        segment,
                        offset,
                    });
                    batch.spans.push(RecordSpan { lsn, start, end });
                    batch.lens.push(len);
                    batch.next += 1;
                }
                Err(damage) => {
                    let file = c.path.clone();
                    if matches!(damage, FrameDamage::Rest { .. })
                        || self.shared.options.on_corruption == OnCorruption::Fail
                    {
                        // The cursor is no longer at the frame of `batch.next`.
                        *cursor = None;
                    }
                    match self.on_damage(&mut batch, &file, damage, cursor)? {
                        AfterDamage::Continue => {
                            boundary = self.boundary_of(cursor.as_ref());
                            continue;
                        }
                        AfterDamage::Stop => break,
                    }
                }
            }
        }
        // One payload length per lsn consumed, skipped ones included: the
        // reader's rewind and commit arithmetic counts on it.
        debug_assert_eq!(batch.lens.end(), batch.next);
        let data = Bytes::from(std::mem::take(&mut batch.data));
        batch.records = batch
            .spans
            .drain(..)
            .map(|span| WalRecord {
                lsn: Lsn(span.lsn),
                payload: data.slice(span.start..span.end),
            })
            .collect();
        Ok(batch)
    }

    /// First lsn of the segment after the cursor's (what `run` calls its
    /// boundary), once damage handling may have moved the cursor.
    fn boundary_of(&self, cursor: Option<&SegmentReader>) -> Option<u64> {
        cursor.and_then(|c| self.shared.lock().segment_after(c.first))
    }

    /// What is known of the segment starting at `first`, and its published
    /// bytes.
    fn extent_of(&self, first: u64) -> (SegmentExtent, u64) {
        let st = self.shared.lock();
        let published = st.segments.get(&first).copied().unwrap_or(0);
        let extent = match st.segment_after(first) {
            Some(next) => SegmentExtent::Sealed {
                records: next - first,
            },
            None => SegmentExtent::Last,
        };
        (extent, published)
    }

    /// Opens the segment holding `lsn` and positions it at that frame. On
    /// the way there, damage before it (records below the committed
    /// position, not needed) is stepped over by resynchronising; damage
    /// holding `lsn` itself is [`WalError::Corrupt`].
    fn open_at(&self, lsn: u64) -> Result<SegmentReader, WalError> {
        let (first, published) = {
            let st = self.shared.lock();
            let first = st.segment_containing(lsn).ok_or_else(|| WalError::Failed {
                reason: format!("internal: no segment holds lsn {lsn}"),
            })?;
            (first, st.segments.get(&first).copied().unwrap_or(0))
        };
        debug_assert!(first <= lsn);
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
                        FrameDamage::Rest { offset, reason } => (offset, reason),
                        FrameDamage::Payload { offset, .. } => {
                            (offset, "payload checksum mismatch".to_owned())
                        }
                    };
                    let (extent, len) = self.extent_of(first);
                    let map = map_segment(&reader.path, len, extent)?;
                    return match map.locate(&reader.path, len, lsn - first)? {
                        Ok(Some(found)) => {
                            reader.seek_to(found.offset)?;
                            Ok(reader)
                        }
                        Err(damage) => Err(WalError::Corrupt {
                            file: reader.path.clone(),
                            offset: damage.offset,
                            reason: damage.reason.clone(),
                        }),
                        Ok(None) => Err(WalError::Corrupt {
                            file: reader.path.clone(),
                            offset,
                            reason,
                        }),
                    };
                }
            }
        }
        Ok(reader)
    }

    fn on_damage(
        &self,
        batch: &mut RecordsRead,
        file: &Path,
        damage: FrameDamage,
        cursor: &mut Option<SegmentReader>,
    ) -> Result<AfterDamage, WalError> {
        match damage {
            FrameDamage::Rest { offset, reason } => {
                self.on_rest_damage(batch, file, offset, reason, cursor)
            }
            FrameDamage::Payload {
                offset,
                frame_len,
                len,
            } => {
                let reason = "payload checksum mismatch".to_owned();
                if self.shared.options.on_corruption == OnCorruption::Fail {
                    return fail(batch, file, offset, reason);
                }
                let copied = copy_aside(self.dir(), file, offset, Some(frame_len))?;
                let lsn = batch.next;
                report(batch, file, offset, lsn..lsn + 1, true, reason, copied);
                batch.lens.push(len);
                batch.next += 1;
                Ok(AfterDamage::Continue)
            }
        }
    }

    /// Damage after which the next frame cannot be found by reading on:
    /// under quarantine, resynchronise on the next intact frame of the
    /// segment (see [`segment`](crate::wal::segment)), copy the damaged
    /// bytes aside, report the records they held, and go on after them (at
    /// the next segment when no frame follows).
    fn on_rest_damage(
        &self,
        batch: &mut RecordsRead,
        file: &Path,
        offset: u64,
        reason: String,
        cursor: &mut Option<SegmentReader>,
    ) -> Result<AfterDamage, WalError> {
        if self.shared.options.on_corruption == OnCorruption::Fail {
            return fail(batch, file, offset, reason);
        }
        let lsn = batch.next;
        let segment = self.shared.lock().segment_containing(lsn);
        let (first, extent, len) = match segment {
            Some(first) => {
                let (extent, len) = self.extent_of(first);
                (first, extent, len)
            }
            None => (lsn, SegmentExtent::Last, 0),
        };
        let SegmentExtent::Sealed { records } = extent else {
            // Damage in the segment being appended to: nothing to step to.
            return fail(
                batch,
                file,
                offset,
                format!("{reason} (in the active segment: cannot step over)"),
            );
        };
        let next_first = first + records;
        // The next segment starts after every lsn of the damaged one, so
        // stepping over damage in it moves forward.
        debug_assert!(next_first > lsn);
        *cursor = None;
        let map = map_segment(file, len, extent)?;
        if let Some(damage) = &map.damage {
            let lost = first + map.head.frames..first + map.head.frames + damage.records;
            if lost.contains(&lsn) {
                let copied = copy_aside(self.dir(), file, damage.offset, Some(damage.bytes))?;
                report(
                    batch,
                    file,
                    damage.offset,
                    lost.clone(),
                    damage.exact,
                    damage.reason.clone(),
                    copied,
                );
                batch.lens.skip(lost.end.saturating_sub(lsn));
                batch.next = lost.end;
                if lost.end < next_first {
                    let mut resumed = SegmentReader::open(self.dir(), first, len)?;
                    resumed.seek_to(damage.offset + damage.bytes)?;
                    *cursor = Some(resumed);
                }
                return Ok(AfterDamage::Continue);
            }
        }
        // The damage map does not explain where reading stopped: step over
        // the rest of the segment.
        let copied = copy_aside(self.dir(), file, offset, None)?;
        report(batch, file, offset, lsn..next_first, true, reason, copied);
        let skipped = next_first.saturating_sub(lsn);
        batch.lens.skip(skipped);
        batch.next = next_first.max(lsn);
        Ok(AfterDamage::Continue)
    }
}

/// Under `OnCorruption::Fail`: return what was read, or the error when
/// nothing was.
fn fail(
    batch: &RecordsRead,
    file: &Path,
    offset: u64,
    reason: String,
) -> Result<AfterDamage, WalError> {
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

/// Logs and records damaged bytes at `offset` of `file`, copied aside,
/// whose records `lsns` are skipped.
fn report(
    batch: &mut RecordsRead,
    file: &Path,
    offset: u64,
    lsns: Range<u64>,
    records_exact: bool,
    reason: String,
    copied: CopiedAside,
) {
    let CopiedAside { moved_to, bytes } = copied;
    tracing::error!(
        file = %file.display(),
        offset,
        bytes,
        first_lsn = lsns.start,
        end_lsn = lsns.end,
        moved_to = %moved_to.display(),
        %reason,
        "WAL: damaged frame quarantined and skipped"
    );
    batch.quarantined.push(QuarantinedFrame {
        file: file.to_path_buf(),
        offset,
        bytes,
        lsns: (Lsn(lsns.start), Lsn(lsns.end)),
        records: lsns.end - lsns.start,
        records_exact,
        reason,
        moved_to,
    });
}
