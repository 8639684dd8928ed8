//! Preallocated segment space under `Fsync::Always`: the active segment is
//! zero-filled ahead of its frames so that an fdatasync does not also write
//! the inode of a growing file. The zeros must never be read as records,
//! a write cut short inside them must be a torn tail (not corruption), real
//! damage must still be corruption, and sealed segments hold exactly their
//! frames.

use std::path::Path;

use unistream::wal::{Fsync, Lsn, OnCorruption, Wal, WalError, WalOptions};

use crate::support::wal::{drain, flip_byte, lsns, payload, segment_path};

/// `record-000000`: 13-byte payloads, 25-byte frames after a 16-byte
/// segment header.
const FRAME: u64 = 25;
const HEADER: u64 = 16;

fn options(dir: &Path) -> WalOptions {
    WalOptions::new(dir)
        .fsync(Fsync::Always)
        .on_corruption(OnCorruption::Fail)
}

/// Appends records `0..n` one append each (one group write each) and
/// closes the log; returns the length of the segment file.
async fn write_one_by_one(dir: &Path, n: u64) -> u64 {
    {
        let (writer, _reader, _) = Wal::open(options(dir)).await.unwrap();
        for i in 0..n {
            writer.append(vec![payload(i)]).await.unwrap();
        }
    }
    // Reopening waits for the closed instance's tasks; this one reads
    // nothing and changes nothing.
    drop(Wal::open(options(dir)).await.unwrap());
    std::fs::metadata(segment_path(dir, 0)).unwrap().len()
}

fn zero_range(path: &Path, from: u64, to: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[from as usize..to as usize].fill(0);
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn zeros_ahead_of_the_frames_are_never_read_as_records() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, _) = Wal::open(options(dir.path())).await.unwrap();
    writer.append(vec![payload(0)]).await.unwrap();
    let file = segment_path(dir.path(), 0);
    let len = std::fs::metadata(&file).unwrap().len();
    assert!(
        len >= HEADER + FRAME + (512 << 10),
        "the first write preallocates ({len} bytes)"
    );
    assert_eq!(writer.stats().bytes_on_disk, HEADER + FRAME);

    // The reader's buffer must not keep the zeros it could have read after
    // the first frame: later frames overwrite them.
    assert_eq!(
        lsns(&reader.next_batch(10, usize::MAX).await.unwrap()),
        vec![0]
    );
    for i in 1..4 {
        writer.append(vec![payload(i)]).await.unwrap();
    }
    let got = reader.next_batch(10, usize::MAX).await.unwrap();
    assert_eq!(lsns(&got), vec![1, 2, 3]);
    assert_eq!(got[2].payload, payload(3));
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        len,
        "written into the zeros"
    );

    // A clean close keeps the space; the next open writes into it.
    drop((writer, reader));
    let (writer, mut reader, recovery) = Wal::open(options(dir.path())).await.unwrap();
    assert_eq!(recovery.truncated_tail_bytes, 0);
    assert_eq!(recovery.uncommitted_records, 4);
    assert_eq!(writer.stats().bytes_on_disk, HEADER + 4 * FRAME);
    assert_eq!(writer.append(vec![payload(4)]).await.unwrap(), Lsn(4));
    let got = drain(&mut reader).await.unwrap();
    assert_eq!(lsns(&got), (0..5).collect::<Vec<_>>());
    assert_eq!(got[4].payload, payload(4));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), len);
}

#[tokio::test]
async fn a_payload_cut_short_by_zero_fill_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let len = write_one_by_one(dir.path(), 5).await;
    // A crash in the middle of writing frame 4: its header and part of its
    // payload reached the file, the rest is still the preallocated zeros.
    let file = segment_path(dir.path(), 0);
    let frame4 = HEADER + 4 * FRAME;
    zero_range(&file, frame4 + 12 + 6, frame4 + FRAME);

    let (writer, mut reader, recovery) = Wal::open(options(dir.path())).await.unwrap();
    assert_eq!(recovery.truncated_tail_bytes, len - frame4);
    assert!(recovery.quarantined.is_empty());
    assert_eq!(writer.append(vec![payload(4)]).await.unwrap(), Lsn(4));
    let got = drain(&mut reader).await.unwrap();
    assert_eq!(lsns(&got), (0..5).collect::<Vec<_>>());
    assert_eq!(got[4].payload, payload(4));
}

#[tokio::test]
async fn a_header_cut_short_by_zero_fill_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let len = write_one_by_one(dir.path(), 5).await;
    // Only the length field of frame 4's header reached the file.
    let file = segment_path(dir.path(), 0);
    let frame4 = HEADER + 4 * FRAME;
    zero_range(&file, frame4 + 4, frame4 + FRAME);

    let (writer, mut reader, recovery) = Wal::open(options(dir.path())).await.unwrap();
    assert_eq!(recovery.truncated_tail_bytes, len - frame4);
    assert_eq!(writer.append(vec![payload(4)]).await.unwrap(), Lsn(4));
    assert_eq!(
        lsns(&drain(&mut reader).await.unwrap()),
        (0..5).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn damage_that_zero_fill_does_not_explain_is_still_corruption() {
    // Frame 2 of 5 damaged: frames follow it, so no crash did that.
    let dir = tempfile::tempdir().unwrap();
    write_one_by_one(dir.path(), 5).await;
    let file = segment_path(dir.path(), 0);
    let frame2 = HEADER + 2 * FRAME;
    zero_range(&file, frame2 + 12 + 6, frame2 + FRAME);
    let (_w, mut reader, recovery) = Wal::open(options(dir.path())).await.unwrap();
    assert_eq!(recovery.truncated_tail_bytes, 0);
    let (before, err) = drain(&mut reader).await.unwrap_err();
    assert_eq!(lsns(&before), vec![0, 1]);
    assert!(
        matches!(&err, WalError::Corrupt { file: f, offset, .. } if f == &file && *offset == frame2),
        "{err:?}"
    );

    // The last frame with a flipped byte (its payload does not end in zero
    // fill): corruption too, not a torn tail.
    let dir = tempfile::tempdir().unwrap();
    write_one_by_one(dir.path(), 5).await;
    let file = segment_path(dir.path(), 0);
    let frame4 = HEADER + 4 * FRAME;
    flip_byte(&file, frame4 + 12 + 3);
    let (_w, mut reader, recovery) = Wal::open(options(dir.path())).await.unwrap();
    assert_eq!(recovery.truncated_tail_bytes, 0);
    assert_eq!(recovery.uncommitted_records, 5);
    let (before, err) = drain(&mut reader).await.unwrap_err();
    assert_eq!(lsns(&before), vec![0, 1, 2, 3]);
    assert!(
        matches!(&err, WalError::Corrupt { file: f, offset, .. } if f == &file && *offset == frame4),
        "{err:?}"
    );
}

#[tokio::test]
async fn sealed_segments_hold_exactly_their_frames() {
    // 4 frames per segment: every segment but the last is sealed.
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path()).segment_bytes(HEADER + 4 * FRAME);
    let (writer, mut reader, _) = Wal::open(options.clone()).await.unwrap();
    for i in 0..10 {
        writer.append(vec![payload(i)]).await.unwrap();
    }
    for first in [0, 4] {
        let len = std::fs::metadata(segment_path(dir.path(), first))
            .unwrap()
            .len();
        assert_eq!(len, HEADER + 4 * FRAME, "segment {first}");
    }
    // The active one is preallocated up to the segment size, no further.
    let active = std::fs::metadata(segment_path(dir.path(), 8))
        .unwrap()
        .len();
    assert_eq!(active, HEADER + 4 * FRAME);
    assert_eq!(writer.stats().bytes_on_disk, 3 * HEADER + 10 * FRAME);
    assert_eq!(
        lsns(&drain(&mut reader).await.unwrap()),
        (0..10).collect::<Vec<_>>()
    );
}
