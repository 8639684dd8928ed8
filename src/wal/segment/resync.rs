//! Mapping a segment around a damaged frame header: where its frames
//! resume after the damage, and how many records the damaged bytes held.
//!
//! A frame header carries no lsn: a record's lsn is its place in its
//! segment. After a damaged header at byte `D` the frames are found again
//! by *resynchronising* on the first offset `X > D` where
//!
//! - 12 bytes pass as a frame header (their own CRC32C),
//! - the payload they announce fits in the segment and passes its CRC32C,
//! - the frames from `X` on follow one another, every header passing, to
//!   exactly the segment's end (the end of the file for a sealed segment;
//!   for the last one the end of the file, zero fill, or a torn last frame),
//! - and, in a sealed segment, whose record count is known (the next
//!   segment's first lsn minus its own), the frames before `D` and from `X`
//!   on leave at least one record to the damaged bytes.
//!
//! A false resynchronisation on garbage needs two independent 32-bit
//! checksums to pass by chance at one offset and then every later header
//! to pass too. One inside a payload that itself holds well-formed frames
//! is ruled out when the damaged frame's length can still be trusted (its
//! header is one byte away from passing, or its length and payload
//! checksum fields agree with the bytes after it: frames resume no earlier
//! than its end), and in sealed segments by the count (those frames would
//! be counted twice); a damaged header hiding its length in the last
//! segment, before a payload made of frames, is the one case this cannot
//! tell apart.
//!
//! Counting the records lost is exact in a sealed segment. In the last
//! segment it is exact when the damaged frames can be walked from `D` to
//! `X` (each header passes, or passes with one byte changed, or its length
//! and payload checksum fields agree with the bytes after it, or its length
//! or payload checksum field reaches exactly `X`); otherwise
//! it is the most records the damaged bytes could have held (a frame takes
//! at least [`FRAME_HEADER_LEN`] bytes), marked as not exact, so that no
//! lsn a lost record had is ever given to another record.
//!
//! In the last segment, nonzero bytes after the last frame where no frame
//! starts (the header there is all zero, or the nonzero bytes span fewer
//! than [`UNPUBLISHED_BURST_BYTES`] and follow no frame-like header) are
//! damage in space never published (preallocated zero fill), not records.

use std::fs::File;
use std::path::Path;

use super::damaged_frames::{
    most_frames_in, nonzero_span, read_at_most, trusted_frame_len, walk, WalkEnd,
};
use super::scan::{scan_frames, scan_frames_from, ScanEnd, SegmentScan};
use super::READ_BUFFER_BYTES;
use crate::wal::format::{decode_frame_header, FRAME_HEADER_LEN};
use crate::wal::WalError;

/// Nonzero bytes after the last frame of the last segment that span less
/// than this, and do not start with anything like a frame header, are
/// damage in unpublished space. A published frame spans at least its
/// 12-byte header, which ends with a checksum.
pub(crate) const UNPUBLISHED_BURST_BYTES: u64 = 16;

/// What is known of the segment being mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentExtent {
    /// A sealed segment holding exactly this many records.
    Sealed { records: u64 },
    /// The last segment: its record count is what its frames say, and
    /// zero fill may follow them.
    Last,
}

/// Damaged bytes of a segment and the records they held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DamagedBytes {
    /// Where they start: the first frame header that does not pass.
    pub(crate) offset: u64,
    /// How many (frames resume right after them, if any follow).
    pub(crate) bytes: u64,
    /// Records they held: exact when `exact`, else the most they can
    /// have held.
    pub(crate) records: u64,
    pub(crate) exact: bool,
    pub(crate) reason: String,
}

/// The frames of a segment around its damage.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMap {
    /// The frames from the segment header on, up to the damage (or all).
    pub(crate) head: SegmentScan,
    /// Damaged bytes after `head`, if any.
    pub(crate) damage: Option<DamagedBytes>,
    /// The frames after the damaged bytes (`None` without damage).
    pub(crate) tail: Option<SegmentScan>,
    /// Last segment only: the bytes from `head.end` on hold no published
    /// frame but are not all zero (damage in preallocated space); they are
    /// to be cut off.
    pub(crate) unpublished_damage: bool,
}

impl SegmentMap {
    /// Records (lsns) the segment accounts for: intact frames and the
    /// records of the damaged bytes.
    pub(crate) fn records(&self) -> u64 {
        self.head.frames
            + self.damage.as_ref().map_or(0, |d| d.records)
            + self.tail.as_ref().map_or(0, |t| t.frames)
    }

    /// Where the frame of the `index`-th record of the segment (counted
    /// from 0) is, or `Err` with the damage when that record is in the
    /// damaged bytes. `Ok(None)`: past the records of the segment.
    pub(crate) fn locate(
        &self,
        path: &Path,
        len: u64,
        index: u64,
    ) -> Result<Result<Option<FrameLocation>, &DamagedBytes>, WalError> {
        if let Some(damage) = &self.damage {
            let resumed_at = self.head.frames + damage.records;
            if (self.head.frames..resumed_at).contains(&index) {
                return Ok(Err(damage));
            }
            if index >= resumed_at {
                let skip = index - resumed_at;
                let scan = scan_frames_from(path, len, damage.offset + damage.bytes, skip)?;
                return Ok(Ok((scan.frames == skip).then_some(FrameLocation {
                    offset: scan.end,
                    payload_before: self.head.payload + scan.payload,
                })));
            }
        }
        let scan = scan_frames(path, len, index)?;
        Ok(Ok((scan.frames == index).then_some(FrameLocation {
            offset: scan.end,
            payload_before: scan.payload,
        })))
    }
}

/// Where a record's frame is in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameLocation {
    /// Byte offset of the frame.
    pub(crate) offset: u64,
    /// Payload bytes of the intact frames before it in the segment.
    pub(crate) payload_before: u64,
}

/// Maps the segment at `path` (`len` bytes, segment header already
/// checked): its frames, and where a damaged frame header is, the damaged
/// bytes, how many records they held and the frames after them.
pub(crate) fn map_segment(
    path: &Path,
    len: u64,
    extent: SegmentExtent,
) -> Result<SegmentMap, WalError> {
    let head = scan_frames(path, len, u64::MAX)?;
    let no_damage = |head: SegmentScan| SegmentMap {
        head,
        damage: None,
        tail: None,
        unpublished_damage: false,
    };
    let reason = match &head.end_kind {
        ScanEnd::BadHeader(reason) => reason.clone(),
        _ => {
            if let SegmentExtent::Sealed { records } = extent {
                if head.frames < records {
                    // A sealed segment that ends early (cut off, or the
                    // next one is missing): the records it lacks are lost.
                    let damage = DamagedBytes {
                        offset: head.end,
                        bytes: len.saturating_sub(head.end),
                        records: records - head.frames,
                        exact: true,
                        reason: "segment ends before the records it should hold (truncated, or a segment is missing)".to_owned(),
                    };
                    return Ok(SegmentMap {
                        tail: None,
                        damage: Some(damage),
                        head,
                        unpublished_damage: false,
                    });
                }
            }
            return Ok(no_damage(head));
        }
    };
    let file = File::open(path).map_err(|e| WalError::io("open segment", path, e))?;
    let damaged_at = head.end;
    // When the damaged frame's length can still be trusted, frames resume
    // no earlier than its end: nothing inside its payload (which may hold
    // anything, well-formed frames too) is taken for a frame.
    let resume_from =
        trusted_frame_len(&file, path, damaged_at, len)?.map_or(damaged_at + 1, |n| damaged_at + n);
    let mut candidates = Candidates::new(&file, path, resume_from, len);
    while let Some(resume) = candidates.next_candidate()? {
        let tail = scan_frames_from(path, len, resume, u64::MAX)?;
        let runs_to_the_end = match extent {
            SegmentExtent::Sealed { .. } => tail.end_kind == ScanEnd::Clean && tail.end == len,
            SegmentExtent::Last => !matches!(tail.end_kind, ScanEnd::BadHeader(_)),
        };
        if !runs_to_the_end {
            continue;
        }
        let (records, exact) = match extent {
            SegmentExtent::Sealed { records } => {
                match records.checked_sub(head.frames + tail.frames) {
                    Some(lost) if lost >= 1 => (lost, true),
                    // The frames found would be counted twice: they lie
                    // inside a damaged frame's payload.
                    _ => continue,
                }
            }
            SegmentExtent::Last => match walk(&file, path, damaged_at, resume, WalkEnd::At)? {
                Some((records, _)) => (records, true),
                None => (most_frames_in(resume - damaged_at), false),
            },
        };
        return Ok(SegmentMap {
            damage: Some(DamagedBytes {
                offset: damaged_at,
                bytes: resume - damaged_at,
                records,
                exact,
                reason,
            }),
            head,
            tail: Some(tail),
            unpublished_damage: false,
        });
    }

    // No frame follows the damage.
    if let SegmentExtent::Sealed { records } = extent {
        let damage = DamagedBytes {
            offset: damaged_at,
            bytes: len - damaged_at,
            records: records.saturating_sub(head.frames),
            exact: true,
            reason,
        };
        return Ok(SegmentMap {
            tail: None,
            damage: Some(damage),
            head,
            unpublished_damage: false,
        });
    }
    let window = read_at_most(&file, path, damaged_at, FRAME_HEADER_LEN, len)?;
    let unpublished = |mut head: SegmentScan| {
        head.end_kind = ScanEnd::ZeroFill;
        SegmentMap {
            head,
            damage: None,
            tail: None,
            unpublished_damage: true,
        }
    };
    if window.iter().all(|&b| b == 0) {
        // Nothing was published where the next frame would start.
        return Ok(unpublished(head));
    }
    if let Some((records, end)) = walk(&file, path, damaged_at, len, WalkEnd::RestZero)? {
        let tail = SegmentScan {
            frames: 0,
            end,
            payload: 0,
            end_kind: if end == len {
                ScanEnd::Clean
            } else {
                ScanEnd::ZeroFill
            },
        };
        return Ok(SegmentMap {
            damage: Some(DamagedBytes {
                offset: damaged_at,
                bytes: end - damaged_at,
                records,
                exact: true,
                reason,
            }),
            head,
            tail: Some(tail),
            unpublished_damage: false,
        });
    }
    let Some((first_nonzero, last_nonzero)) = nonzero_span(&file, path, damaged_at, len)? else {
        return Ok(unpublished(head));
    };
    if last_nonzero - first_nonzero < UNPUBLISHED_BURST_BYTES {
        return Ok(unpublished(head));
    }
    let end = last_nonzero + 1;
    let tail = SegmentScan {
        frames: 0,
        end,
        payload: 0,
        end_kind: if end == len {
            ScanEnd::Clean
        } else {
            ScanEnd::ZeroFill
        },
    };
    Ok(SegmentMap {
        damage: Some(DamagedBytes {
            offset: damaged_at,
            bytes: end - damaged_at,
            records: most_frames_in(end - damaged_at),
            exact: false,
            reason,
        }),
        head,
        tail: Some(tail),
        unpublished_damage: false,
    })
}

/// Offsets where a frame with a passing header and a passing payload
/// starts, in order, read through one bounded buffer.
struct Candidates<'a> {
    file: &'a File,
    path: &'a Path,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    next: u64,
}

impl<'a> Candidates<'a> {
    fn new(file: &'a File, path: &'a Path, from: u64, end: u64) -> Self {
        Self {
            file,
            path,
            end,
            buf: Vec::new(),
            buf_start: from,
            next: from,
        }
    }

    fn next_candidate(&mut self) -> Result<Option<u64>, WalError> {
        while self.next + FRAME_HEADER_LEN <= self.end {
            let at = self.next;
            self.next += 1;
            if at + FRAME_HEADER_LEN > self.buf_start + self.buf.len() as u64 {
                self.buf =
                    read_at_most(self.file, self.path, at, READ_BUFFER_BYTES as u64, self.end)?;
                self.buf_start = at;
            }
            let i = (at - self.buf_start) as usize;
            let mut raw = [0u8; FRAME_HEADER_LEN as usize];
            raw.copy_from_slice(&self.buf[i..i + FRAME_HEADER_LEN as usize]);
            let Ok(header) = decode_frame_header(&raw) else {
                continue;
            };
            let payload_at = at + FRAME_HEADER_LEN;
            if payload_at + u64::from(header.len) > self.end {
                continue;
            }
            let payload = read_at_most(
                self.file,
                self.path,
                payload_at,
                u64::from(header.len),
                self.end,
            )?;
            if header.payload_ok(&payload) {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }
}
