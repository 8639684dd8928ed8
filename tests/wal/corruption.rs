//! Damage on disk: a torn tail is repaired silently, anything else is a
//! typed error naming file and offset, or is quarantined when asked for.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use unistream::wal::{Fsync, Lsn, OnCorruption, Wal, WalError, WalOptions};

use crate::support::wal::{drain, flip_byte, lsns, payload, segment_path};

/// 13-byte payloads: 25-byte frames. With 116-byte segments, 4 frames per
/// segment: frame k of a segment starts at 16 + 25 k.
const SEGMENT: u64 = 116;
const FRAME: u64 = 25;

fn options(dir: &Path, on_corruption: OnCorruption) -> WalOptions {
    WalOptions::new(dir)
        .segment_bytes(SEGMENT)
        .fsync(Fsync::Never)
        .on_corruption(on_corruption)
}

/// Writes records 0..n and closes the log.
async fn write_log(dir: &Path, n: u64) {
    let (writer, _reader, _) = Wal::open(options(dir, OnCorruption::Fail)).await.unwrap();
    writer.append((0..n).map(payload).collect()).await.unwrap();
}

#[tokio::test]
async fn flipped_payload_byte_in_an_old_segment_is_a_typed_error_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10).await;
    // Record 5 is frame 1 of segment 4..8; flip a byte of its payload.
    let file = segment_path(dir.path(), 4);
    let frame_offset = 16 + FRAME;
    flip_byte(&file, frame_offset + 12 + 3);

    // Opening does not read old segments: it succeeds.
    let (_writer, mut reader, recovery) = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap();
    assert_eq!(recovery.uncommitted_records, 10);
    let (before, err) = drain(&mut reader).await.unwrap_err();
    assert_eq!(
        lsns(&before),
        vec![0, 1, 2, 3, 4],
        "everything before the damage is returned first"
    );
    match &err {
        WalError::Corrupt {
            file: f,
            offset,
            reason,
        } => {
            assert_eq!(f, &file);
            assert_eq!(*offset, frame_offset);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // It stays an error: never skipped silently.
    assert!(reader
        .next_batch(3, usize::MAX)
        .await
        .unwrap_err()
        .is_corrupt());
    // And it converts into the crate error, still matchable.
    let crate_err: unistream::Error = err.into();
    assert!(matches!(
        crate_err,
        unistream::Error::Wal(WalError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn quarantined_payload_frame_is_moved_aside_and_everything_else_delivered() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10).await;
    let file = segment_path(dir.path(), 4);
    let frame_offset = 16 + FRAME;
    flip_byte(&file, frame_offset + 20);
    let damaged_frame = std::fs::read(&file).unwrap()
        [frame_offset as usize..(frame_offset + FRAME) as usize]
        .to_vec();
    let segment_before = std::fs::read(&file).unwrap();

    let (_writer, mut reader, _) = Wal::open(options(dir.path(), OnCorruption::Quarantine))
        .await
        .unwrap();
    let got = drain(&mut reader).await.unwrap();
    assert_eq!(lsns(&got), vec![0, 1, 2, 3, 4, 6, 7, 8, 9]);
    assert_eq!(got[5].payload, payload(6));
    let q = reader.quarantined();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].file, file);
    assert_eq!(q[0].offset, frame_offset);
    assert_eq!(q[0].bytes, FRAME);
    assert_eq!(q[0].lsns, (Lsn(5), Lsn(6)));
    assert_eq!(std::fs::read(&q[0].moved_to).unwrap(), damaged_frame);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&q[0].moved_to)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "quarantined bytes are private too");
    }
    assert!(q[0].moved_to.starts_with(dir.path().join("quarantine")));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        segment_before,
        "the segment is not rewritten"
    );
}

#[tokio::test]
async fn flipped_payload_byte_in_the_last_segment_is_found_when_read() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10).await;
    // Records 8 and 9 are in the last segment; damage record 9.
    let file = segment_path(dir.path(), 8);
    flip_byte(&file, 16 + FRAME + 12);
    let (writer, mut reader, recovery) = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap();
    assert_eq!(
        recovery.truncated_tail_bytes, 0,
        "a complete frame is not a torn tail"
    );
    assert_eq!(writer.stats().next_lsn, Lsn(10));
    let (before, err) = drain(&mut reader).await.unwrap_err();
    assert_eq!(lsns(&before), (0..9).collect::<Vec<_>>());
    assert!(
        matches!(err, WalError::Corrupt { file: ref f, offset, .. } if f == &file && offset == 16 + FRAME),
        "{err:?}"
    );
}

#[tokio::test]
async fn damaged_frame_header_in_an_old_segment_quarantines_that_frame_and_reading_resumes_after_it(
) {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 12).await;
    // The length field of record 6 (frame 2 of segment 4..8).
    let file = segment_path(dir.path(), 4);
    let frame_offset = 16 + 2 * FRAME;
    flip_byte(&file, frame_offset + 1);

    let (_w, mut reader, _) = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap();
    let (before, err) = drain(&mut reader).await.unwrap_err();
    assert_eq!(lsns(&before), vec![0, 1, 2, 3, 4, 5]);
    assert!(
        matches!(err, WalError::Corrupt { file: ref f, offset, .. } if f == &file && offset == frame_offset),
        "{err:?}"
    );
    drop((_w, reader));

    let (_w, mut reader, _) = Wal::open(options(dir.path(), OnCorruption::Quarantine))
        .await
        .unwrap();
    let got = drain(&mut reader).await.unwrap();
    // Record 7, after the damaged frame, is found again and delivered.
    assert_eq!(lsns(&got), vec![0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11]);
    assert_eq!(got[6].payload, payload(7));
    let q = reader.quarantined();
    assert_eq!(q.len(), 1);
    assert_eq!(
        (
            q[0].offset,
            q[0].bytes,
            q[0].lsns,
            q[0].records,
            q[0].records_exact
        ),
        (frame_offset, FRAME, (Lsn(6), Lsn(7)), 1, true)
    );
}

#[tokio::test]
async fn damaged_frame_header_in_the_last_segment_fails_open_or_is_quarantined_and_resumed_after() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 11).await;
    // Last segment 8..: records 8, 9, 10. Damage the header of record 9.
    let file = segment_path(dir.path(), 8);
    let frame_offset = 16 + FRAME;
    flip_byte(&file, frame_offset + 9);

    let err = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap_err();
    assert!(
        matches!(err, WalError::Corrupt { file: ref f, offset, .. } if f == &file && offset == frame_offset),
        "{err:?}"
    );

    let (writer, mut reader, recovery) = Wal::open(options(dir.path(), OnCorruption::Quarantine))
        .await
        .unwrap();
    assert_eq!(recovery.quarantined.len(), 1, "{recovery:?}");
    let q = &recovery.quarantined[0];
    assert_eq!(
        (q.offset, q.bytes, q.lsns, q.records, q.records_exact),
        (frame_offset, FRAME, (Lsn(9), Lsn(10)), 1, true)
    );
    assert_eq!(recovery.salvaged_records, 1, "record 10 is found again");
    // New records continue after every lsn the log ever gave.
    assert_eq!(recovery.next_lsn, Lsn(11));
    assert_eq!(writer.append(vec![payload(100)]).await.unwrap(), Lsn(11));
    let got = drain(&mut reader).await.unwrap();
    assert_eq!(lsns(&got), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11]);
    assert_eq!(got[9].payload, payload(10));
    assert_eq!(got[10].payload, payload(100));
    assert_eq!(reader.quarantined().len(), 1, "reported once, at open");
}

#[tokio::test]
async fn torn_tail_is_truncated_silently_and_everything_before_it_kept() {
    for cut in [1u64, 11, 12, 13, 24] {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 11).await;
        // Cut the last frame (record 10, frame 2 of segment 8..) short.
        let file = segment_path(dir.path(), 8);
        let full = std::fs::metadata(&file).unwrap().len();
        assert_eq!(full, 16 + 3 * FRAME);
        let keep = full - FRAME + cut;
        OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(keep)
            .unwrap();

        let (writer, mut reader, recovery) = Wal::open(options(dir.path(), OnCorruption::Fail))
            .await
            .unwrap();
        assert_eq!(recovery.truncated_tail_bytes, cut, "cut {cut}");
        assert_eq!(recovery.uncommitted_records, 10);
        assert!(recovery.quarantined.is_empty());
        assert_eq!(std::fs::metadata(&file).unwrap().len(), full - FRAME);
        assert_eq!(writer.append(vec![payload(10)]).await.unwrap(), Lsn(10));
        let got = drain(&mut reader).await.unwrap();
        assert_eq!(lsns(&got), (0..11).collect::<Vec<_>>(), "cut {cut}");
        assert_eq!(got[10].payload, payload(10));
    }
}

#[tokio::test]
async fn zero_filled_tail_is_space_for_frames_not_a_torn_tail() {
    // Zero bytes after the last frame are what `Fsync::Always` preallocates
    // (and what a crash that grew a file without its data leaves): not a
    // record and not damage. New records are written over them.
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 9).await;
    let file = segment_path(dir.path(), 8);
    let frames_end = std::fs::metadata(&file).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(&[0u8; 4096])
        .unwrap();
    let (writer, mut reader, recovery) = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap();
    assert_eq!(recovery.truncated_tail_bytes, 0);
    assert_eq!(recovery.uncommitted_records, 9);
    assert_eq!(writer.stats().next_lsn, Lsn(9));
    assert_eq!(writer.append(vec![payload(9)]).await.unwrap(), Lsn(9));
    let got = drain(&mut reader).await.unwrap();
    assert_eq!(lsns(&got), (0..10).collect::<Vec<_>>());
    assert_eq!(got[9].payload, payload(9));
    drop((writer, reader));

    // The new frame landed right after the old ones, inside the zeros.
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(
        bytes.len() as u64,
        frames_end + 4096,
        "nothing appended past the zeros"
    );
    assert_eq!(
        &bytes[(frames_end + 12) as usize..(frames_end + FRAME) as usize],
        payload(9)
    );
    let (_w, mut reader, recovery) = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap();
    assert_eq!(recovery.truncated_tail_bytes, 0);
    assert_eq!(
        lsns(&drain(&mut reader).await.unwrap()),
        (0..10).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn torn_segment_header_of_the_last_segment_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 8).await;
    // A crash right after creating segment 8: only part of its header.
    let file = segment_path(dir.path(), 8);
    std::fs::write(&file, b"UNIWA").unwrap();
    let (writer, mut reader, recovery) = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap();
    assert_eq!(recovery.truncated_tail_bytes, 5);
    assert_eq!(writer.append(vec![payload(8)]).await.unwrap(), Lsn(8));
    assert_eq!(
        lsns(&drain(&mut reader).await.unwrap()),
        (0..9).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_short_non_last_segment_is_corrupt_not_torn() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10).await;
    // Segment 4..8 loses the end of its last frame: no crash of ours does
    // that to a sealed (fdatasynced) segment.
    let file = segment_path(dir.path(), 4);
    OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(16 + 3 * FRAME + 7)
        .unwrap();
    let (_w, mut reader, recovery) = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap();
    assert_eq!(recovery.truncated_tail_bytes, 0);
    let (before, err) = drain(&mut reader).await.unwrap_err();
    assert_eq!(lsns(&before), vec![0, 1, 2, 3, 4, 5, 6]);
    assert!(
        matches!(err, WalError::Corrupt { file: ref f, offset, .. } if f == &file && offset == 16 + 3 * FRAME),
        "{err:?}"
    );
}

#[tokio::test]
async fn damaged_segment_header_is_corrupt_at_offset_zero() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10).await;
    let file = segment_path(dir.path(), 4);
    flip_byte(&file, 2);
    let (_w, mut reader, _) = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap();
    let (before, err) = drain(&mut reader).await.unwrap_err();
    assert_eq!(lsns(&before), vec![0, 1, 2, 3]);
    assert!(
        matches!(err, WalError::Corrupt { file: ref f, offset: 0, .. } if f == &file),
        "{err:?}"
    );
    drop((_w, reader));

    let (_w, mut reader, _) = Wal::open(options(dir.path(), OnCorruption::Quarantine))
        .await
        .unwrap();
    assert_eq!(
        lsns(&drain(&mut reader).await.unwrap()),
        vec![0, 1, 2, 3, 8, 9]
    );
    assert_eq!(reader.quarantined()[0].lsns, (Lsn(4), Lsn(8)));
}

#[tokio::test]
async fn damaged_position_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (writer, mut reader, _) = Wal::open(options(dir.path(), OnCorruption::Fail))
            .await
            .unwrap();
        writer.append(vec![payload(0), payload(1)]).await.unwrap();
        reader.next_batch(1, usize::MAX).await.unwrap();
        reader.commit(Lsn(1)).await.unwrap();
    }
    let position = dir.path().join("committed");
    flip_byte(&position, 10);
    let err = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap_err();
    assert!(
        matches!(err, WalError::BadPositionFile { ref path, .. } if path == &position),
        "{err:?}"
    );
}

#[tokio::test]
async fn committed_position_past_a_lost_tail_starts_a_fresh_segment_there() {
    // Power loss under Fsync::Never: records 8..11 had been delivered and
    // committed (the position file is durable) but their unsynced frames
    // are gone. New records must not reuse their lsns.
    let dir = tempfile::tempdir().unwrap();
    {
        let (writer, mut reader, _) = Wal::open(options(dir.path(), OnCorruption::Fail))
            .await
            .unwrap();
        writer.append((0..11).map(payload).collect()).await.unwrap();
        assert_eq!(drain(&mut reader).await.unwrap().len(), 11);
        reader.commit(Lsn(11)).await.unwrap();
    }
    let file = segment_path(dir.path(), 8);
    OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(16 + FRAME)
        .unwrap();
    let (writer, mut reader, recovery) = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap();
    assert_eq!(recovery.uncommitted_records, 0);
    assert_eq!(reader.committed(), Lsn(11));
    assert!(
        !file.exists(),
        "the wholly committed old segment is deleted"
    );
    assert_eq!(writer.append(vec![payload(11)]).await.unwrap(), Lsn(11));
    let got = drain(&mut reader).await.unwrap();
    assert_eq!(lsns(&got), vec![11]);
}

#[tokio::test]
async fn leftover_segments_below_the_committed_position_are_deleted_at_open() {
    // A crash between persisting a commit and deleting its segments.
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10).await;
    std::fs::write(dir.path().join("committed.tmp"), b"half-written").unwrap();
    {
        let (_w, mut reader, _) = Wal::open(options(dir.path(), OnCorruption::Fail))
            .await
            .unwrap();
        reader.next_batch(9, usize::MAX).await.unwrap();
        reader.commit(Lsn(9)).await.unwrap();
    }
    assert!(!segment_path(dir.path(), 0).exists());
    assert!(
        !dir.path().join("committed.tmp").exists(),
        "stale temporary file removed"
    );
    // Put a committed segment back, as if its deletion had not happened.
    std::fs::write(segment_path(dir.path(), 0), b"stale").unwrap();
    let (_w, mut reader, recovery) = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap();
    assert!(!segment_path(dir.path(), 0).exists());
    assert_eq!(recovery.uncommitted_records, 1);
    assert_eq!(lsns(&drain(&mut reader).await.unwrap()), vec![9]);
}

#[tokio::test]
async fn a_missing_middle_segment_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 12).await;
    std::fs::remove_file(segment_path(dir.path(), 4)).unwrap();
    let (_w, mut reader, _) = Wal::open(options(dir.path(), OnCorruption::Fail))
        .await
        .unwrap();
    let (before, err) = drain(&mut reader).await.unwrap_err();
    assert_eq!(lsns(&before), vec![0, 1, 2, 3]);
    match err {
        WalError::Corrupt {
            file,
            offset,
            reason,
        } => {
            assert_eq!(file, segment_path(dir.path(), 0));
            assert_eq!(offset, 16 + 4 * FRAME);
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    drop((_w, reader));
    // Under quarantine the gap is reported and reading goes on after it.
    let (_w, mut reader, _) = Wal::open(options(dir.path(), OnCorruption::Quarantine))
        .await
        .unwrap();
    assert_eq!(
        lsns(&drain(&mut reader).await.unwrap()),
        vec![0, 1, 2, 3, 8, 9, 10, 11]
    );
    let q = reader.quarantined();
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].lsns, q[0].bytes), ((Lsn(4), Lsn(8)), 0));
}
