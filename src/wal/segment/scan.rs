//! Scanning a segment's frame headers (at recovery): how many whole
//! frames it holds, where they end, and how the file ends after them.
//!
//! Guarantees: a scan reads the file once with a bounded buffer and tells
//! a clean end, preallocated zero fill, a torn tail (what a crash in the
//! middle of a write leaves) and a damaged frame header apart. Not
//! guaranteed: payload checksums are not verified (reading does), except
//! the last frame's when zero fill follows it, to tell a write cut short by
//! a crash from damage.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::READ_BUFFER_BYTES;
use crate::wal::format::{decode_frame_header, FrameHeader, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::wal::WalError;

/// How a scan of a segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// At the end of the file, or after the requested number of frames.
    Clean,
    /// The frames end where only zero bytes follow to the end of the file:
    /// space preallocated for frames to come (or left by a crash that
    /// extended the file without its data). Not a frame, not damage.
    ZeroFill,
    /// An incomplete frame ends the file, or a frame cut short by zero
    /// fill: what a crash in the middle of a write leaves.
    Torn(String),
    /// A complete frame header with a bad checksum: the rest of the segment
    /// cannot be framed.
    BadHeader(String),
}

/// The result of scanning a segment's frame headers.
#[derive(Debug, Clone)]
pub(crate) struct SegmentScan {
    /// Whole frames found.
    pub(crate) frames: u64,
    /// Offset just past the last whole frame.
    pub(crate) end: u64,
    /// Payload bytes of those frames.
    pub(crate) payload: u64,
    pub(crate) end_kind: ScanEnd,
}

/// Scans the frame headers of the segment at `path` (`len` bytes, header
/// already checked), stopping after `max_frames` frames. Payloads are
/// skipped, not read: a scan costs one pass over the file with a bounded
/// buffer and does not verify payload checksums (reading does) — except
/// the last frame's when zero fill follows it: a crash in the middle of a
/// write into preallocated space leaves a frame with a good header and a
/// payload cut short by zeros, which is torn, not corrupt.
pub(crate) fn scan_frames(path: &Path, len: u64, max_frames: u64) -> Result<SegmentScan, WalError> {
    scan_frames_from(path, len, SEGMENT_HEADER_LEN, max_frames)
}

/// [`scan_frames`] starting at byte `start` (where a frame begins: after
/// the segment header, or where frames resume after damage).
pub(crate) fn scan_frames_from(
    path: &Path,
    len: u64,
    start: u64,
    max_frames: u64,
) -> Result<SegmentScan, WalError> {
    let file = File::open(path).map_err(|e| WalError::io("open segment", path, e))?;
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    reader
        .seek(SeekFrom::Start(start))
        .map_err(|e| WalError::io("seek in segment", path, e))?;
    let mut scan = SegmentScan {
        frames: 0,
        end: start,
        payload: 0,
        end_kind: ScanEnd::Clean,
    };
    let mut last: Option<(u64, FrameHeader)> = None;
    while scan.frames < max_frames {
        let remaining = len.saturating_sub(scan.end);
        if remaining == 0 {
            break;
        }
        let mut raw = [0u8; FRAME_HEADER_LEN as usize];
        let got = remaining.min(FRAME_HEADER_LEN) as usize;
        reader
            .read_exact(&mut raw[..got])
            .map_err(|e| WalError::io("read segment", path, e))?;
        let header = if got < raw.len() {
            Err(format!("incomplete frame header ({remaining} bytes)"))
        } else {
            decode_frame_header(&raw)
        };
        let header = match header {
            Ok(h) => h,
            Err(reason) => {
                // Only zeros after it: zero fill when the header is zeros
                // too, else a header cut short by a crash.
                scan.end_kind = if !rest_is_zero(path, scan.end + FRAME_HEADER_LEN, len)? {
                    ScanEnd::BadHeader(reason)
                } else if raw.iter().all(|&b| b == 0) {
                    ScanEnd::ZeroFill
                } else {
                    ScanEnd::Torn(reason)
                };
                break;
            }
        };
        if header.frame_len() > remaining {
            scan.end_kind = ScanEnd::Torn(format!(
                "frame of {} bytes extends past the end of the file ({remaining} bytes left)",
                header.frame_len()
            ));
            break;
        }
        reader
            .seek_relative(i64::from(header.len))
            .map_err(|e| WalError::io("seek in segment", path, e))?;
        last = Some((scan.end, header));
        scan.frames += 1;
        scan.end += header.frame_len();
        scan.payload += u64::from(header.len);
    }
    let at_the_end = scan.end == len || scan.end_kind == ScanEnd::ZeroFill;
    if let Some((offset, header)) = last.filter(|_| at_the_end) {
        check_last_frame(reader.get_ref(), path, &mut scan, offset, header)?;
    }
    Ok(scan)
}

/// The last frame of a segment (only zero fill, or nothing, after it):
/// when its payload fails its checksum and ends in a zero byte, it is a
/// write cut short by a crash (the zeros are preallocated space, or file
/// growth, that the write did not reach), so the scan ends before it as
/// torn. Damaged any other way, it is left for the reader to report.
fn check_last_frame(
    file: &File,
    path: &Path,
    scan: &mut SegmentScan,
    offset: u64,
    header: FrameHeader,
) -> Result<(), WalError> {
    let mut payload = vec![0u8; header.len as usize];
    file.read_exact_at(&mut payload, offset + FRAME_HEADER_LEN)
        .map_err(|e| WalError::io("read segment", path, e))?;
    if payload.last() == Some(&0) && !header.payload_ok(&payload) {
        scan.frames -= 1;
        scan.end = offset;
        scan.payload -= u64::from(header.len);
        scan.end_kind = ScanEnd::Torn(format!(
            "frame of {} bytes cut short by zero fill (payload checksum mismatch)",
            header.frame_len()
        ));
    }
    Ok(())
}

/// Whether every byte of `path` from `from` to `len` is zero (what some
/// file systems leave after a crash that extended a file without its data).
pub(crate) fn rest_is_zero(path: &Path, from: u64, len: u64) -> Result<bool, WalError> {
    let mut file = File::open(path).map_err(|e| WalError::io("open segment", path, e))?;
    file.seek(SeekFrom::Start(from))
        .map_err(|e| WalError::io("seek in segment", path, e))?;
    let mut reader = file.take(len.saturating_sub(from));
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = reader
            .read(&mut chunk)
            .map_err(|e| WalError::io("read segment", path, e))?;
        if n == 0 {
            return Ok(true);
        }
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}
