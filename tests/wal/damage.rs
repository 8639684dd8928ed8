//! Damage tests: bytes of a closed log flipped in known places, then the
//! log opened in both corruption modes. Every case checks that every intact
//! acknowledged record is delivered (or, under `OnCorruption::Fail` for
//! damage in records still needed, a typed error naming the file and
//! offset), that the report's counts are exact (or, where the damage hides
//! them, reported as bounds), and that no lsn is given twice after
//! reopening and appending.

use unistream::wal::{Fsync, Lsn, OnCorruption, Wal};

use super::damage_harness::{
    assert_corrupt_at, check_fail, check_no_lsn_reused, frame_of, intact, intact_lsns,
    open_and_drain, options, payloads, write_log, xor_bytes, FRAME, HEADER, MODES, SEGMENT,
};
use crate::support::seed::rng;
use crate::support::wal::{lsns, payload, segment_path};

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

#[tokio::test]
async fn a_damaged_segment_header_of_the_last_segment_never_lets_its_lsns_be_reused() {
    // Records 8, 9, 10 in the last segment, whose own header is damaged:
    // its frames cannot be trusted to be its records.
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), SEGMENT, Fsync::Never, 11, 0).await;
    let file = segment_path(dir.path(), 8);
    xor_bytes(&file, 3, &[0x01]);
    let opts = |mode| options(dir.path(), SEGMENT, Fsync::Never, mode);
    let err = Wal::open(opts(OnCorruption::Fail)).await.unwrap_err();
    assert_corrupt_at(&err, &file, &[0]);

    let opened = open_and_drain(opts(OnCorruption::Quarantine))
        .await
        .unwrap_or_else(|(_, e)| panic!("{e}"));
    assert_eq!(payloads(&opened.delivered), intact(0..8, &[]));
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
        (0, HEADER + 3 * FRAME, (Lsn(8), Lsn(11)), 3, true)
    );
    assert_eq!(opened.recovery.next_lsn, Lsn(11));
    assert_eq!(opened.appended[0], Lsn(11));
    check_no_lsn_reused(opts(OnCorruption::Quarantine), &opened).await;
}
