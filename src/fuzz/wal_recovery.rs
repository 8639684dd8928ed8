//! Fuzz body of WAL recovery and frame reading: a log directory built from
//! the fuzzer's bytes is opened in both corruption modes and read to its
//! end. Opening and reading return records or a typed [`WalError`], never
//! panic, never loop; what they return keeps the log's contracts (see
//! [`run`]).
//!
//! Input layout (so that a real log directory, [`encode_dir`], is an input):
//!
//! ```text
//! byte 0        options: bits 0-1 segment size (64 B, 4 KiB, 1 MiB, 16 MiB),
//!               bit 2 a 64 KiB cap on the log's bytes
//! then entries  tag (u8) | length (u16 LE) | bytes (the last entry may be cut short)
//!   tag % 4 == 0  the `committed` position file
//!   tag % 4 == 2  a leftover `committed.tmp`
//!   otherwise     a segment file named after the first lsn in its header
//!                 (bytes 8..16, 0 when shorter) plus (tag >> 2) % 8
//! ```

use std::path::Path;

use super::scratch::ScratchDir;
use crate::wal::{
    Fsync, Lsn, OnCorruption, Wal, WalError, WalOptions, WhenFull, DEFAULT_SEGMENT_BYTES,
    MIN_SEGMENT_BYTES,
};

const TAG_COMMITTED: u8 = 0;
const TAG_SEGMENT: u8 = 1;
const TAG_TEMP: u8 = 2;
/// Calls to `next_batch` allowed per input beyond one per input byte: more
/// means reading does not advance.
const SPARE_BATCHES: usize = 16;

/// Builds the directory described by `data`, then for each corruption mode
/// (on its own copy) opens it, reads every record, and checks:
/// - lsns increase; under `OnCorruption::Fail` they are consecutive, a
///   corrupt frame fails every later read again, and a clean read returns
///   exactly the records recovery counted as uncommitted;
/// - after a clean read, committing and appending work, and the appended
///   record is read back.
pub fn run(data: &[u8]) {
    let Some((&options, entries)) = data.split_first() else {
        return;
    };
    for mode in [OnCorruption::Fail, OnCorruption::Quarantine] {
        let scratch = ScratchDir::new();
        let dir = scratch.path().join("wal");
        if !write_dir(&dir, entries) {
            return;
        }
        let options = wal_options(&dir, options, mode);
        super::runtime().block_on(open_and_read(options, mode, data.len() + SPARE_BATCHES));
    }
}

fn wal_options(dir: &Path, byte: u8, mode: OnCorruption) -> WalOptions {
    let segment_bytes =
        [MIN_SEGMENT_BYTES, 4096, 1 << 20, DEFAULT_SEGMENT_BYTES][usize::from(byte & 3)];
    let mut options = WalOptions::new(dir)
        .segment_bytes(segment_bytes)
        .fsync(Fsync::Never)
        .on_corruption(mode)
        // Waiting for space that no commit frees would hang.
        .when_full(WhenFull::Error);
    if byte & 4 != 0 {
        options = options.max_bytes(64 << 10);
    }
    options
}

/// Writes the files described by `entries` into `dir`; `false` when a file
/// cannot be written (the input names nothing the log could meet).
fn write_dir(dir: &Path, mut entries: &[u8]) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    while let [tag, rest @ ..] = entries {
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            _ => (rest.len(), &[][..]),
        };
        let (bytes, rest) = rest.split_at(len.min(rest.len()));
        entries = rest;
        let name = match tag % 4 {
            TAG_COMMITTED => "committed".to_owned(),
            TAG_TEMP => "committed.tmp".to_owned(),
            _ => {
                let mut first = [0u8; 8];
                if let Some(header_lsn) = bytes.get(8..16) {
                    first.copy_from_slice(header_lsn);
                }
                let first = u64::from_le_bytes(first).wrapping_add(u64::from((tag >> 2) % 8));
                format!("{first:020}.wal")
            }
        };
        if std::fs::write(dir.join(name), bytes).is_err() {
            return false;
        }
    }
    true
}

async fn open_and_read(options: WalOptions, mode: OnCorruption, max_batches: usize) {
    let Ok((writer, mut reader, recovery)) = Wal::open(options).await else {
        return;
    };
    let mut read = 0u64;
    let mut last: Option<Lsn> = None;
    let mut clean = false;
    for _ in 0..max_batches {
        match reader.next_batch(7, 1 << 16).await {
            Ok(batch) if batch.is_empty() => {
                clean = true;
                break;
            }
            Ok(batch) => {
                for record in batch {
                    if let Some(last) = last {
                        assert!(record.lsn > last, "lsns increase");
                        if mode == OnCorruption::Fail {
                            assert_eq!(record.lsn.0, last.0 + 1, "nothing is skipped");
                        }
                    }
                    last = Some(record.lsn);
                    read += 1;
                }
            }
            Err(error) => {
                if mode == OnCorruption::Fail && error.is_corrupt() {
                    assert!(
                        reader.next_batch(7, 1 << 16).await.is_err(),
                        "a corrupt frame fails every later read: {error}"
                    );
                }
                return;
            }
        }
    }
    assert!(clean, "reading a log of {max_batches} bytes ends");
    if mode == OnCorruption::Fail {
        assert_eq!(
            read, recovery.uncommitted_records,
            "a clean read returns every uncommitted record"
        );
    }
    if reader.commit(reader.next_lsn()).await.is_err() {
        return;
    }
    let appended = match writer.append(vec![b"after recovery".to_vec()]).await {
        Ok(lsn) => lsn,
        Err(WalError::Full { .. }) => return,
        Err(error) => panic!("append to a recovered log failed: {error}"),
    };
    reader.wait_for_records().await;
    let batch = reader
        .next_batch(7, 1 << 16)
        .await
        .expect("reading the record just appended");
    assert_eq!(batch.len(), 1, "the appended record is read back");
    assert_eq!(batch[0].lsn, appended);
    assert_eq!(&batch[0].payload[..], b"after recovery");
}

/// The input that builds `dir` (a log directory) again, with `options` as
/// its first byte; files too large for one entry are cut.
pub fn encode_dir(dir: &Path, options: u8) -> std::io::Result<Vec<u8>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut out = vec![options];
    for name in names {
        let tag = if name == "committed" {
            TAG_COMMITTED
        } else if name.ends_with(".wal") {
            TAG_SEGMENT
        } else {
            continue;
        };
        let mut bytes = std::fs::read(dir.join(&name))?;
        bytes.truncate(usize::from(u16::MAX));
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}
