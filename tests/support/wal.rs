//! Functions for the write-ahead-log tests that look at segment files.

use std::path::{Path, PathBuf};

use unistream::wal::{WalError, WalReader, WalRecord};

/// `record-000000`: 13-byte payloads, so 25-byte frames (12-byte header)
/// after a segment's 16-byte header.
pub fn payload(i: u64) -> Vec<u8> {
    format!("record-{i:06}").into_bytes()
}

/// The file of the segment whose first record is `first`.
pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.wal"))
}

/// Flips some bits of the byte at `offset` of `path`.
pub fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// Reads everything, three records at a time; on an error, what was read
/// before it and the error.
pub async fn drain(reader: &mut WalReader) -> Result<Vec<WalRecord>, (Vec<WalRecord>, WalError)> {
    let mut all = Vec::new();
    loop {
        match reader.next_batch(3, usize::MAX).await {
            Ok(batch) if batch.is_empty() => return Ok(all),
            Ok(batch) => all.extend(batch),
            Err(e) => return Err((all, e)),
        }
    }
}

/// The lsns of `records`.
pub fn lsns(records: &[WalRecord]) -> Vec<u64> {
    records.iter().map(|r| r.lsn.0).collect()
}

/// Byte offsets of the frames of the segment at `path`, by walking its
/// frame lengths (the file must be intact).
pub fn frame_offsets(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    let mut offsets = Vec::new();
    let mut at = 16usize;
    while at + 12 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        offsets.push(at as u64);
        at += 12 + len;
    }
    offsets
}
