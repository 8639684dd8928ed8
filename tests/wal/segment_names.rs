//! Segment names come from disk: a name far past the records its
//! predecessor holds (a renamed or damaged directory) is stepped over by
//! quarantine like any damage, with memory and arithmetic that do not grow
//! with the size of the gap; a name at the end of the lsn space is
//! corruption.

use std::path::Path;

use unistream::wal::{Fsync, Lsn, OnCorruption, Wal, WalError, WalOptions};

use crate::support::wal::{drain, flip_byte, lsns, payload, segment_path};

/// 13-byte payloads: 25-byte frames; with 116-byte segments, 4 per segment.
const SEGMENT: u64 = 116;
const FRAME: u64 = 25;
/// Far enough that counting frame headers over the gap overflows a u64.
const FAR: u64 = 2_000_000_000_000_000_000;

fn options(dir: &Path, on_corruption: OnCorruption) -> WalOptions {
    WalOptions::new(dir)
        .segment_bytes(SEGMENT)
        .fsync(Fsync::Never)
        .on_corruption(on_corruption)
}

#[tokio::test]
async fn a_segment_named_far_past_a_damaged_one_is_reached_by_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (writer, _reader, _) = Wal::open(options(dir.path(), OnCorruption::Fail))
            .await
            .unwrap();
        writer.append((0..8).map(payload).collect()).await.unwrap();
    }
    // Segment 4..8 becomes segment FAR.., header and name alike.
    let moved = segment_path(dir.path(), FAR);
    std::fs::rename(segment_path(dir.path(), 4), &moved).unwrap();
    let mut bytes = std::fs::read(&moved).unwrap();
    bytes[8..16].copy_from_slice(&FAR.to_le_bytes());
    std::fs::write(&moved, bytes).unwrap();
    for stale in std::fs::read_dir(dir.path()).unwrap() {
        let path = stale.unwrap().path();
        let first: Option<u64> = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok());
        if path.extension().is_some_and(|e| e == "wal") && first.is_some_and(|f| f != 0 && f != FAR)
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    // The length field of record 2: the rest of segment 0 cannot be framed.
    flip_byte(&segment_path(dir.path(), 0), 16 + 2 * FRAME + 1);

    let (_writer, mut reader, recovery) = Wal::open(options(dir.path(), OnCorruption::Quarantine))
        .await
        .unwrap();
    assert_eq!(recovery.uncommitted_records, FAR + 4);
    let got = drain(&mut reader).await.unwrap();
    // Record 3, intact behind the damaged one, is salvaged: sealed
    // segments number what follows a damage back from the next segment's
    // name, so it comes as FAR - 1 and the lsns lost are 2..FAR - 1.
    assert_eq!(
        lsns(&got),
        vec![0, 1, FAR - 1, FAR, FAR + 1, FAR + 2, FAR + 3]
    );
    assert_eq!(
        &got[2].payload[..],
        &payload(3)[..],
        "the salvaged record is record 3"
    );
    assert_eq!(reader.quarantined()[0].lsns, (Lsn(2), Lsn(FAR - 1)));

    // Rewinding into the skipped lsns and committing past them work too.
    reader.rewind(Lsn(1));
    let again = drain(&mut reader).await.unwrap();
    assert_eq!(
        lsns(&again),
        vec![1, FAR - 1, FAR, FAR + 1, FAR + 2, FAR + 3]
    );
    reader.commit(Lsn(FAR + 2)).await.unwrap();
    assert_eq!(reader.backlog().records, 0);
}

#[tokio::test]
async fn a_segment_named_at_the_end_of_the_lsn_space_is_corrupt_in_both_modes() {
    for mode in [OnCorruption::Fail, OnCorruption::Quarantine] {
        let dir = tempfile::tempdir().unwrap();
        {
            let (writer, _reader, _) = Wal::open(options(dir.path(), OnCorruption::Fail))
                .await
                .unwrap();
            writer.append((0..2).map(payload).collect()).await.unwrap();
        }
        // Appending after it would run the lsns past u64::MAX.
        let last = segment_path(dir.path(), u64::MAX - 1);
        let mut header = b"UNIWAL\x00\x01".to_vec();
        header.extend_from_slice(&(u64::MAX - 1).to_le_bytes());
        std::fs::write(&last, header).unwrap();
        let err = Wal::open(options(dir.path(), mode)).await.unwrap_err();
        assert!(
            matches!(err, WalError::Corrupt { ref file, offset: 0, .. } if file == &last),
            "{mode:?}: {err:?}"
        );
    }
}
