//! The harness of the damage tests: logs of known layout written,
//! damaged byte by byte, opened in one corruption mode and read to the
//! end, then checked for lsns given twice.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use unistream::wal::{
    Fsync, Lsn, OnCorruption, QuarantinedFrame, Recovery, Wal, WalError, WalOptions, WalRecord,
};

use crate::support::wal::{drain, lsns, payload, segment_path};

/// 13-byte payloads: 25-byte frames. With 116-byte segments, 4 frames per
/// segment: record `i` is frame `i % 4` of segment `i - i % 4`, at byte
/// `16 + 25 (i % 4)`.
pub(super) const SEGMENT: u64 = 116;
pub(super) const FRAME: u64 = 25;
pub(super) const HEADER: u64 = 16;

pub(super) const MODES: [OnCorruption; 2] = [OnCorruption::Fail, OnCorruption::Quarantine];

pub(super) fn options(
    dir: &Path,
    segment_bytes: u64,
    fsync: Fsync,
    mode: OnCorruption,
) -> WalOptions {
    WalOptions::new(dir)
        .segment_bytes(segment_bytes)
        .fsync(fsync)
        .on_corruption(mode)
}

/// A log of `n` records `payload(0..n)`, the first `committed` of them
/// delivered and committed, closed.
pub(super) async fn write_log(
    dir: &Path,
    segment_bytes: u64,
    fsync: Fsync,
    n: u64,
    committed: u64,
) {
    let (writer, mut reader, _) = Wal::open(options(dir, segment_bytes, fsync, OnCorruption::Fail))
        .await
        .unwrap();
    writer.append((0..n).map(payload).collect()).await.unwrap();
    if committed > 0 {
        let mut got = 0;
        while got < committed {
            got += reader
                .next_batch((committed - got) as usize, usize::MAX)
                .await
                .unwrap()
                .len() as u64;
        }
        reader.commit(Lsn(committed)).await.unwrap();
    }
}

/// Where record `i` of a log of 116-byte segments is.
pub(super) fn frame_of(dir: &Path, i: u64) -> (PathBuf, u64) {
    (segment_path(dir, i - i % 4), HEADER + FRAME * (i % 4))
}

/// XORs `mask` into the bytes of `path` from `offset` on.
pub(super) fn xor_bytes(path: &Path, offset: u64, mask: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    for (i, m) in mask.iter().enumerate() {
        bytes[offset as usize + i] ^= m;
    }
    std::fs::write(path, bytes).unwrap();
}

/// What one open in one mode delivered.
pub(super) struct Opened {
    pub(super) recovery: Recovery,
    pub(super) delivered: Vec<WalRecord>,
    /// Quarantined ranges at open and while reading, from the writer side.
    pub(super) quarantined: Vec<QuarantinedFrame>,
    /// The lsns given to two records appended after reading everything.
    pub(super) appended: [Lsn; 2],
}

/// Opens the log, reads everything, appends two records; `Err` with what
/// was delivered before a typed error.
pub(super) async fn open_and_drain(
    options: WalOptions,
) -> Result<Opened, (Vec<WalRecord>, WalError)> {
    let (writer, mut reader, recovery) = Wal::open(options).await.map_err(|e| (Vec::new(), e))?;
    let delivered = drain(&mut reader).await?;
    let quarantined = writer.quarantined();
    assert_eq!(
        quarantined,
        reader.quarantined(),
        "the writer side reports what the reader found"
    );
    let first = writer.append(vec![b"new-a".to_vec()]).await.unwrap();
    let second = writer.append(vec![b"new-b".to_vec()]).await.unwrap();
    Ok(Opened {
        recovery,
        delivered,
        quarantined,
        appended: [first, second],
    })
}

/// Lsns never given twice: the appended ones are above every lsn
/// delivered or reported lost, and reopening delivers every record once
/// more under its lsn (nothing was committed) with the appended ones last.
pub(super) async fn check_no_lsn_reused(options: WalOptions, opened: &Opened) {
    let mut seen: BTreeSet<u64> = lsns(&opened.delivered).into_iter().collect();
    for q in &opened.quarantined {
        assert_eq!(q.records, q.lsns.1 .0 - q.lsns.0 .0, "{q:?}");
        seen.extend(q.lsns.0 .0..q.lsns.1 .0);
    }
    let highest = seen.last().copied();
    assert!(
        highest.is_none_or(|h| opened.appended[0].0 > h),
        "appended at {:?}, lsn {highest:?} was given before",
        opened.appended[0]
    );
    assert!(opened.recovery.next_lsn <= opened.appended[0]);
    assert_eq!(opened.appended[1].0, opened.appended[0].0 + 1);

    let (writer, mut reader, _) = Wal::open(options).await.unwrap();
    let again = drain(&mut reader).await.unwrap();
    let mut expected: Vec<(u64, Vec<u8>)> = opened
        .delivered
        .iter()
        .map(|r| (r.lsn.0, r.payload.to_vec()))
        .collect();
    expected.push((opened.appended[0].0, b"new-a".to_vec()));
    expected.push((opened.appended[1].0, b"new-b".to_vec()));
    let got: Vec<(u64, Vec<u8>)> = again
        .iter()
        .map(|r| (r.lsn.0, r.payload.to_vec()))
        .collect();
    assert_eq!(got, expected, "the same records under the same lsns");
    let next = writer.append(vec![b"new-c".to_vec()]).await.unwrap();
    assert_eq!(next.0, opened.appended[1].0 + 1);
}

pub(super) fn assert_corrupt_at(err: &WalError, file: &Path, offsets: &[u64]) {
    match err {
        WalError::Corrupt {
            file: f, offset, ..
        } => {
            assert_eq!(f, file, "{err}");
            assert!(
                offsets.contains(offset),
                "{err}: expected one of {offsets:?}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// The payloads of `records`.
pub(super) fn payloads(records: &[WalRecord]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.payload.to_vec()).collect()
}

/// `payload(i)` for every `i` in `range` but `lost`.
pub(super) fn intact(range: std::ops::Range<u64>, lost: &[u64]) -> Vec<Vec<u8>> {
    range.filter(|i| !lost.contains(i)).map(payload).collect()
}

pub(super) fn intact_lsns(range: std::ops::Range<u64>, lost: &[u64]) -> Vec<u64> {
    range.filter(|i| !lost.contains(i)).collect()
}

/// Under `OnCorruption::Fail`: the typed error, after exactly the intact
/// records before the damage (none when the open itself fails).
pub(super) fn check_fail(
    result: Result<Opened, (Vec<WalRecord>, WalError)>,
    file: &Path,
    offsets: &[u64],
    first_lost: u64,
) {
    match result {
        Err((before, err)) => {
            assert!(
                before.is_empty() || payloads(&before) == intact(0..first_lost, &[]),
                "delivered before the error: {:?}",
                lsns(&before)
            );
            assert_corrupt_at(&err, file, offsets);
        }
        Ok(_) => panic!("records still needed are damaged: Fail mode must fail"),
    }
}
