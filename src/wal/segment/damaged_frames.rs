//! Telling how long damaged frames were: walking frame by frame through
//! damaged bytes of a segment, and repairing a frame header one damaged
//! byte away from passing its checksum.
//!
//! Guarantees: a frame's length is only trusted when its header passes,
//! passes with exactly one byte changed (unique: two different one-byte
//! repairs both passing would be a 2^-32 coincidence), or its length and
//! payload checksum fields agree with the bytes after it, or, walking to
//! where frames resume, its length or payload checksum field reaches
//! exactly there. Not guaranteed: a walk may fail (then the caller counts
//! the most frames the bytes can hold); it is bounded to
//! [`MAX_WALKED_FRAMES`] frames.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::scan::rest_is_zero;
use super::READ_BUFFER_BYTES;
use crate::wal::format::{decode_frame_header, FrameHeader, FRAME_HEADER_LEN};
use crate::wal::WalError;

/// Frames walked through damaged bytes at most, to bound the work.
const MAX_WALKED_FRAMES: u64 = 1 << 16;

/// The most frames `bytes` bytes can hold (at least one: damage where a
/// frame header should be means a frame was there).
pub(super) fn most_frames_in(bytes: u64) -> u64 {
    (bytes / FRAME_HEADER_LEN).max(1)
}

/// Where a walk through damaged frames must end.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum WalkEnd {
    /// Exactly at the given end (where frames resume).
    At,
    /// Where only zero bytes follow to the given end.
    RestZero,
}

/// Walks frame by frame from `from` towards `end` through damaged bytes,
/// stepping over each frame whose length can be trusted (its header
/// passes, or passes with one byte changed, or its length and payload
/// checksum fields agree with the bytes after it, or, walking to where
/// frames resume, its length field or payload checksum field reaches
/// exactly there). `Some((frames, at))`
/// when the walk ends as `how` says, after at least one frame.
pub(super) fn walk(
    file: &File,
    path: &Path,
    from: u64,
    end: u64,
    how: WalkEnd,
) -> Result<Option<(u64, u64)>, WalError> {
    let mut at = from;
    let mut frames = 0u64;
    loop {
        if frames > 0 {
            let done = match how {
                WalkEnd::At => at == end,
                WalkEnd::RestZero => rest_is_zero(path, at, end)?,
            };
            if done {
                return Ok(Some((frames, at)));
            }
        }
        if frames >= MAX_WALKED_FRAMES || at + FRAME_HEADER_LEN > end {
            return Ok(None);
        }
        let window = read_at_most(file, path, at, FRAME_HEADER_LEN, end)?;
        let Ok(raw) = <[u8; FRAME_HEADER_LEN as usize]>::try_from(&window[..]) else {
            return Ok(None);
        };
        let frame_len = match decode_frame_header(&raw)
            .ok()
            .or_else(|| repair_one_byte(&raw))
        {
            Some(header) => Some(header.frame_len()),
            None => fields_agree(file, path, at, &raw, end, how)?,
        };
        match frame_len {
            Some(n) if at + n <= end => {
                at += n;
                frames += 1;
            }
            _ => return Ok(None),
        }
    }
}

/// A damaged header whose checksum fails: the frame length when its
/// length and payload checksum fields agree with the bytes that follow
/// (only the header checksum is damaged), or, walking to a known end,
/// when the payload checksum field matches everything up to that end.
pub(super) fn fields_agree(
    file: &File,
    path: &Path,
    at: u64,
    raw: &[u8; FRAME_HEADER_LEN as usize],
    end: u64,
    how: WalkEnd,
) -> Result<Option<u64>, WalError> {
    let len = u64::from(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]));
    let payload_crc = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
    let payload_at = at + FRAME_HEADER_LEN;
    if payload_at + len <= end {
        let payload = read_at_most(file, path, payload_at, len, end)?;
        if crc32c::crc32c(&payload) == payload_crc {
            return Ok(Some(FRAME_HEADER_LEN + len));
        }
    }
    if how == WalkEnd::At {
        // Walking to where frames resume: a length field that reaches
        // exactly there is the frame's (a damaged one landing exactly on
        // the next intact frame would be a coincidence).
        if payload_at + len == end {
            return Ok(Some(end - at));
        }
        let payload = read_at_most(file, path, payload_at, end - payload_at, end)?;
        if crc32c::crc32c(&payload) == payload_crc {
            return Ok(Some(end - at));
        }
    }
    Ok(None)
}

/// The length of the frame at `at` (header included) when its damaged
/// header still tells it: one byte away from passing, or its length and
/// payload checksum fields agree with the bytes after it.
pub(super) fn trusted_frame_len(
    file: &File,
    path: &Path,
    at: u64,
    end: u64,
) -> Result<Option<u64>, WalError> {
    if at + FRAME_HEADER_LEN > end {
        return Ok(None);
    }
    let window = read_at_most(file, path, at, FRAME_HEADER_LEN, end)?;
    let Ok(raw) = <[u8; FRAME_HEADER_LEN as usize]>::try_from(&window[..]) else {
        return Ok(None);
    };
    if let Some(header) = repair_one_byte(&raw) {
        return Ok(Some(header.frame_len()).filter(|&n| at + n <= end));
    }
    fields_agree(file, path, at, &raw, end, WalkEnd::RestZero)
}

/// The header that `raw` is with exactly one byte changed back, when there
/// is exactly one such header (a checksum tells them apart: two different
/// one-byte repairs both passing would be a coincidence of 2^-32).
pub(crate) fn repair_one_byte(raw: &[u8; FRAME_HEADER_LEN as usize]) -> Option<FrameHeader> {
    let mut found = None;
    for i in 0..raw.len() {
        for value in 0..=u8::MAX {
            if value == raw[i] {
                continue;
            }
            let mut candidate = *raw;
            candidate[i] = value;
            if let Ok(header) = decode_frame_header(&candidate) {
                if found.is_some() {
                    return None;
                }
                found = Some(header);
            }
        }
    }
    found
}

/// Reads up to `want` bytes at `at`, no further than `end`.
pub(super) fn read_at_most(
    file: &File,
    path: &Path,
    at: u64,
    want: u64,
    end: u64,
) -> Result<Vec<u8>, WalError> {
    let n = want.min(end.saturating_sub(at)) as usize;
    let mut buf = vec![0u8; n];
    file.read_exact_at(&mut buf, at)
        .map_err(|e| WalError::io("read segment", path, e))?;
    Ok(buf)
}

/// Offsets of the first and last nonzero byte in `[from, end)`.
pub(super) fn nonzero_span(
    file: &File,
    path: &Path,
    from: u64,
    end: u64,
) -> Result<Option<(u64, u64)>, WalError> {
    let mut span = None;
    let mut at = from;
    while at < end {
        let chunk = read_at_most(file, path, at, READ_BUFFER_BYTES as u64, end)?;
        for (i, &b) in chunk.iter().enumerate() {
            if b != 0 {
                let offset = at + i as u64;
                span = Some(span.map_or((offset, offset), |(first, _)| (first, offset)));
            }
        }
        at += chunk.len() as u64;
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::format::push_frame;

    #[test]
    fn one_damaged_byte_of_a_header_is_repaired_uniquely() {
        let mut frame = Vec::new();
        push_frame(&mut frame, b"record-000001");
        let good: [u8; 12] = frame[..12].try_into().unwrap();
        let expected = decode_frame_header(&good).unwrap();
        for i in 0..12 {
            for flip in [0x01u8, 0x5a, 0xff] {
                let mut bad = good;
                bad[i] ^= flip;
                assert_eq!(
                    repair_one_byte(&bad),
                    Some(expected),
                    "byte {i} ^ {flip:#x}"
                );
            }
        }
        assert_eq!(repair_one_byte(&[0u8; 12]), None, "zero fill is no header");
    }
}
