//! Damage tests: bytes of a closed log flipped in known places, then the
//! log opened in both corruption modes. Every case checks that every intact
//! acknowledged record is delivered (or, under `OnCorruption::Fail` for
//! damage in records still needed, a typed error naming the file and
//! offset), that the report's counts are exact, and that no lsn is given
//! twice after reopening and appending.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use unistream::wal::{
    Fsync, Lsn, OnCorruption, QuarantinedFrame, Recovery, Wal, WalError, WalOptions, WalRecord,
};

use crate::support::seed::rng;
use crate::support::wal::{drain, lsns, payload, segment_path};

/// 13-byte payloads: 25-byte frames. With 116-byte segments, 4 frames per
/// segment: record `i` is frame `i % 4` of segment `i - i % 4`, at byte
/// `16 + 25 (i % 4)`.
pub(super) const SEGMENT: u64 = 116;
pub(super) const FRAME: u64 = 25;
pub(super) const HEADER: u64 = 16;

const MODES: [OnCorruption; 2] = [OnCorruption::Fail, OnCorruption::Quarantine];

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
fn frame_of(dir: &Path, i: u64) -> (PathBuf, u64) {
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

#[tokio::test]
async fn header_flip_in_the_last_segment_loses_only_that_record() {
    // Records 0..11: the last segment holds 8, 9, 10. One bit of every
    // byte of the header of record 9 (the middle frame) and of record 10
    // (the last), each bit position once per header.
    for victim in [9u64, 10] {
        for bit in (0..12u64).map(|byte| byte * 8 + (byte + victim) % 8) {
            let dir = tempfile::tempdir().unwrap();
            write_log(dir.path(), SEGMENT, Fsync::Never, 11, 0).await;
            let (file, offset) = frame_of(dir.path(), victim);
            xor_bytes(&file, offset + bit / 8, &[1 << (bit % 8)]);
            let case = format!("record {victim}, header bit {bit}");

            let opts = |mode| options(dir.path(), SEGMENT, Fsync::Never, mode);
            let err = Wal::open(opts(OnCorruption::Fail)).await.unwrap_err();
            assert_corrupt_at(&err, &file, &[offset]);

            let opened = open_and_drain(opts(OnCorruption::Quarantine))
                .await
                .unwrap_or_else(|(_, e)| panic!("{case}: {e}"));
            assert_eq!(
                payloads(&opened.delivered),
                intact(0..11, &[victim]),
                "{case}"
            );
            let q = &opened.recovery.quarantined;
            assert_eq!(q.len(), 1, "{case}: {q:?}");
            assert_eq!(
                (q[0].file.clone(), q[0].offset, q[0].bytes),
                (file.clone(), offset, FRAME),
                "{case}"
            );
            assert_eq!(
                (q[0].lsns, q[0].records, q[0].records_exact),
                ((Lsn(victim), Lsn(victim + 1)), 1, true),
                "{case}"
            );
            assert_eq!(std::fs::read(&q[0].moved_to).unwrap().len() as u64, FRAME);
            assert_eq!(opened.recovery.salvaged_records, 10 - victim, "{case}");
            assert_eq!(opened.recovery.uncommitted_records, 10, "{case}");
            assert_eq!(opened.recovery.truncated_tail_bytes, 0, "{case}");
            assert_eq!(opened.recovery.next_lsn, Lsn(11), "{case}");
            assert_eq!(opened.quarantined, *q, "{case}: reported once, at open");
            check_no_lsn_reused(opts(OnCorruption::Quarantine), &opened).await;
        }
    }
}

#[tokio::test]
async fn header_flip_in_a_sealed_segment_loses_only_that_record() {
    // Record 6: frame 2 of segment 4..8; one flipped bit in each header byte.
    for byte in 0..12u64 {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), SEGMENT, Fsync::Never, 12, 0).await;
        let (file, offset) = frame_of(dir.path(), 6);
        xor_bytes(&file, offset + byte, &[0x10]);
        let opts = |mode| options(dir.path(), SEGMENT, Fsync::Never, mode);

        check_fail(
            open_and_drain(opts(OnCorruption::Fail)).await,
            &file,
            &[offset],
            6,
        );

        let opened = open_and_drain(opts(OnCorruption::Quarantine))
            .await
            .unwrap_or_else(|(_, e)| panic!("{e}"));
        assert!(opened.recovery.quarantined.is_empty(), "found by reading");
        assert_eq!(
            payloads(&opened.delivered),
            intact(0..12, &[6]),
            "byte {byte}"
        );
        assert_eq!(lsns(&opened.delivered), intact_lsns(0..12, &[6]));
        let q = &opened.quarantined;
        assert_eq!(q.len(), 1, "{q:?}");
        assert_eq!(
            (
                q[0].offset,
                q[0].bytes,
                q[0].lsns,
                q[0].records,
                q[0].records_exact
            ),
            (offset, FRAME, (Lsn(6), Lsn(7)), 1, true)
        );
        check_no_lsn_reused(opts(OnCorruption::Quarantine), &opened).await;
    }
}

pub(super) fn intact_lsns(range: std::ops::Range<u64>, lost: &[u64]) -> Vec<u64> {
    range.filter(|i| !lost.contains(i)).collect()
}

/// Under `OnCorruption::Fail`: the typed error, after exactly the intact
/// records before the damage (none when the open itself fails).
fn check_fail(
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

#[tokio::test]
async fn a_burst_over_a_payload_and_the_next_header_in_a_sealed_segment_loses_both_records_exactly()
{
    // Bytes 20..32 of record 5's frame: its payload end and 7 bytes of the
    // header of record 6 (segment 4..8). XOR 0x80 leaves no byte zero
    // (zeros would look like a torn write).
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), SEGMENT, Fsync::Never, 12, 0).await;
    let (file, offset) = frame_of(dir.path(), 5);
    xor_bytes(&file, offset + 20, &[0x80; 12]);
    let opts = |mode| options(dir.path(), SEGMENT, Fsync::Never, mode);
    check_fail(
        open_and_drain(opts(OnCorruption::Fail)).await,
        &file,
        &[offset],
        5,
    );

    let opened = open_and_drain(opts(OnCorruption::Quarantine))
        .await
        .unwrap_or_else(|(_, e)| panic!("{e}"));
    assert_eq!(payloads(&opened.delivered), intact(0..12, &[5, 6]));
    assert_eq!(lsns(&opened.delivered), intact_lsns(0..12, &[5, 6]));
    let ranges: Vec<_> = opened
        .quarantined
        .iter()
        .map(|q| (q.offset, q.bytes, q.lsns, q.records, q.records_exact))
        .collect();
    assert_eq!(
        ranges,
        vec![
            (offset, FRAME, (Lsn(5), Lsn(6)), 1, true),
            (offset + FRAME, FRAME, (Lsn(6), Lsn(7)), 1, true),
        ]
    );
    check_no_lsn_reused(opts(OnCorruption::Quarantine), &opened).await;
}

#[tokio::test]
async fn a_burst_over_a_header_in_the_last_segment_is_resumed_after_and_counted_at_most() {
    // Records 8..12 in the last segment; bytes 20..32 of record 9's frame:
    // its payload end and 7 bytes of record 10's header (length and
    // payload checksum fields both damaged, so the frame's length is lost).
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), SEGMENT, Fsync::Never, 12, 0).await;
    let (file, offset) = frame_of(dir.path(), 9);
    let header_at = offset + FRAME;
    xor_bytes(&file, offset + 20, &[0x80; 12]);
    let opts = |mode| options(dir.path(), SEGMENT, Fsync::Never, mode);
    check_fail(
        open_and_drain(opts(OnCorruption::Fail)).await,
        &file,
        &[header_at],
        9,
    );

    let opened = open_and_drain(opts(OnCorruption::Quarantine))
        .await
        .unwrap_or_else(|(_, e)| panic!("{e}"));
    // Every intact record is delivered: 0..9 and 11.
    assert_eq!(payloads(&opened.delivered), intact(0..12, &[9, 10]));
    // Record 10's 25 bytes could have held two frames (a frame takes at
    // least 12 bytes): lsns 10 and 11 are reported lost, not exactly, and
    // record 11 gets lsn 12, so that no lsn can have been given twice.
    let q = &opened.recovery.quarantined;
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(
        (
            q[0].offset,
            q[0].bytes,
            q[0].lsns,
            q[0].records,
            q[0].records_exact
        ),
        (header_at, FRAME, (Lsn(10), Lsn(12)), 2, false)
    );
    assert_eq!(opened.recovery.salvaged_records, 1);
    assert_eq!(opened.recovery.next_lsn, Lsn(13));
    assert_eq!(opened.delivered.last().map(|r| r.lsn), Some(Lsn(12)));
    // Record 9's damaged payload is found by reading: exactly one record.
    let by_reading: Vec<_> = opened.quarantined[1..]
        .iter()
        .map(|q| (q.offset, q.lsns, q.records, q.records_exact))
        .collect();
    assert_eq!(by_reading, vec![(offset, (Lsn(9), Lsn(10)), 1, true)]);
    check_no_lsn_reused(opts(OnCorruption::Quarantine), &opened).await;
}

#[tokio::test]
async fn a_flip_in_preallocated_zero_fill_never_blocks_an_open() {
    // Fsync::Always zero-fills the active segment ahead of its frames.
    let mut rng = rng(
        module_path!(),
        "a_flip_in_preallocated_zero_fill_never_blocks_an_open",
    );
    let segment_bytes = 64 << 10;
    for trial in 0..12 {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            write_log(dir.path(), segment_bytes, Fsync::Always, 10, 0).await;
            let file = segment_path(dir.path(), 0);
            let len = std::fs::metadata(&file).unwrap().len();
            let frames_end = HEADER + 10 * FRAME;
            assert!(len > frames_end + 1024, "preallocated: {len} bytes");
            let at = match trial {
                0 => frames_end,
                1 => frames_end + 11,
                2 => frames_end + 12,
                3 => len - 1,
                _ => rng.u64(frames_end..len),
            };
            xor_bytes(&file, at, &[1 << rng.u32(0..8)]);
            let opts = options(dir.path(), segment_bytes, Fsync::Always, mode);
            let opened = open_and_drain(opts.clone())
                .await
                .unwrap_or_else(|(_, e)| panic!("{mode:?}, flip at {at}: {e}"));
            assert_eq!(payloads(&opened.delivered), intact(0..10, &[]));
            assert!(opened.quarantined.is_empty());
            assert_eq!(opened.recovery.uncommitted_records, 10);
            assert_eq!(
                opened.recovery.truncated_tail_bytes,
                len - frames_end,
                "the damaged unpublished space is cut off"
            );
            assert_eq!(opened.appended[0], Lsn(10));
            check_no_lsn_reused(opts, &opened).await;
        }
    }
}

#[tokio::test]
async fn damage_in_committed_frames_never_blocks_the_uncommitted_ones() {
    // Committed up to 3: the damaged header of record 1 (segment 0..4) is
    // not needed. Also in a log of one large (last) segment.
    for segment_bytes in [SEGMENT, 64 << 10] {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            write_log(dir.path(), segment_bytes, Fsync::Never, 12, 3).await;
            let file = segment_path(dir.path(), 0);
            let offset = HEADER + FRAME;
            xor_bytes(&file, offset + 2, &[0x21]);
            let opts = options(dir.path(), segment_bytes, Fsync::Never, mode);
            let opened = open_and_drain(opts.clone())
                .await
                .unwrap_or_else(|(_, e)| panic!("{segment_bytes}, {mode:?}: {e}"));
            assert_eq!(payloads(&opened.delivered), intact(3..12, &[]));
            assert_eq!(lsns(&opened.delivered), (3..12).collect::<Vec<_>>());
            assert_eq!(opened.recovery.uncommitted_records, 9);
            let q = &opened.recovery.quarantined;
            assert_eq!(q.len(), 1, "reported, not failed: {q:?}");
            assert_eq!(
                (
                    q[0].file.clone(),
                    q[0].offset,
                    q[0].bytes,
                    q[0].lsns,
                    q[0].records,
                    q[0].records_exact
                ),
                (file.clone(), offset, FRAME, (Lsn(1), Lsn(2)), 1, true)
            );
            assert_eq!(opened.appended[0], Lsn(12));
            check_no_lsn_reused(opts, &opened).await;
        }
    }
}

/// A payload made of well-formed frames (what a log of logs would store).
fn payload_of_frames() -> Vec<u8> {
    let mut out = Vec::new();
    for inner in [b"inner-frame-a".as_slice(), b"inner-frame-b"] {
        let mut header = [0u8; 12];
        header[..4].copy_from_slice(&(inner.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&crc32c::crc32c(inner).to_le_bytes());
        let header_crc = crc32c::crc32c(&header[..8]);
        header[8..].copy_from_slice(&header_crc.to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(inner);
    }
    out
}

#[tokio::test]
async fn frames_inside_a_damaged_records_payload_are_never_taken_for_records() {
    // Record 1's payload is two well-formed frames; its header is damaged.
    // In the last (only) segment, and in a sealed one (150-byte segments:
    // records 0..3 in the first, 3 and 4 in the next).
    for segment_bytes in [64 << 10, 150u64] {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let records = vec![
                payload(0),
                payload_of_frames(),
                payload(2),
                payload(3),
                payload(4),
            ];
            {
                let opts = options(dir.path(), segment_bytes, Fsync::Never, OnCorruption::Fail);
                let (writer, _reader, _) = Wal::open(opts).await.unwrap();
                writer.append(records.clone()).await.unwrap();
            }
            let file = segment_path(dir.path(), 0);
            let sealed = segment_path(dir.path(), 3).exists();
            assert_eq!(sealed, segment_bytes == 150);
            let offset = crate::support::wal::frame_offsets(&file)[1];
            xor_bytes(&file, offset + 3, &[0x04]);
            let opts = options(dir.path(), segment_bytes, Fsync::Never, mode);
            let case = format!("{segment_bytes}-byte segments, {mode:?}");
            match (mode, open_and_drain(opts.clone()).await) {
                (OnCorruption::Fail, Err((before, err))) => {
                    assert!(
                        before.is_empty() || payloads(&before) == records[..1],
                        "{case}"
                    );
                    assert_corrupt_at(&err, &file, &[offset]);
                }
                (OnCorruption::Fail, Ok(_)) => {
                    panic!("{case}: needed record damaged, yet no error")
                }
                (_, Err((_, err))) => panic!("{case}: {err}"),
                (_, Ok(opened)) => {
                    let expected: Vec<Vec<u8>> = records
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != 1)
                        .map(|(_, r)| r.clone())
                        .collect();
                    assert_eq!(payloads(&opened.delivered), expected, "{case}");
                    assert_eq!(lsns(&opened.delivered), vec![0, 2, 3, 4], "{case}");
                    let q = &opened.quarantined;
                    assert_eq!(q.len(), 1, "{case}: {q:?}");
                    assert_eq!(
                        (
                            q[0].offset,
                            q[0].bytes,
                            q[0].lsns,
                            q[0].records,
                            q[0].records_exact
                        ),
                        (offset, 12 + 50, (Lsn(1), Lsn(2)), 1, true),
                        "{case}"
                    );
                    check_no_lsn_reused(opts, &opened).await;
                }
            }
        }
    }
}
