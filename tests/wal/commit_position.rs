//! The committed position on disk: two checksummed slots written in place
//! alternately (one data-only fdatasync per commit), the newer valid slot
//! in force, a commit torn by a crash leaving the previous position, and
//! version-1 files (one record replaced by rename) still read.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use unistream::wal::{Fsync, Lsn, Wal, WalError, WalOptions, WalReader};

use crate::support::wal::{drain, lsns, payload};

/// Bytes of the file: a slot at 0 and one at 4096, 28 bytes each.
const FILE_LEN: u64 = 4096 + 28;

fn options(dir: &Path) -> WalOptions {
    WalOptions::new(dir).fsync(Fsync::Never)
}

/// The lsns of everything left to read.
async fn read_all(reader: &mut WalReader) -> Vec<u64> {
    lsns(&drain(reader).await.unwrap())
}

/// Appends 0..10, reads them and commits 1, 2, …, `commits`.
async fn commit_one_by_one(dir: &Path, commits: u64) {
    let (writer, mut reader, _) = Wal::open(options(dir)).await.unwrap();
    writer.append((0..10).map(payload).collect()).await.unwrap();
    assert_eq!(read_all(&mut reader).await.len(), 10);
    for upto in 1..=commits {
        reader.commit(Lsn(upto)).await.unwrap();
    }
}

#[tokio::test]
async fn commits_rewrite_the_same_file_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let position = dir.path().join("committed");
    let (writer, mut reader, _) = Wal::open(options(dir.path())).await.unwrap();
    writer.append((0..10).map(payload).collect()).await.unwrap();
    read_all(&mut reader).await;
    reader.commit(Lsn(1)).await.unwrap();
    let inode = std::fs::metadata(&position).unwrap().ino();
    for upto in 2..=7 {
        reader.commit(Lsn(upto)).await.unwrap();
        let meta = std::fs::metadata(&position).unwrap();
        assert_eq!(meta.ino(), inode, "commit {upto} replaced the file");
        assert_eq!(meta.len(), FILE_LEN);
    }
    assert!(!dir.path().join("committed.tmp").exists());
    drop((writer, reader));

    let (_w, mut reader, recovery) = Wal::open(options(dir.path())).await.unwrap();
    assert_eq!(reader.committed(), Lsn(7));
    assert_eq!(recovery.uncommitted_records, 3);
    assert_eq!(read_all(&mut reader).await, vec![7, 8, 9]);
}

#[tokio::test]
async fn a_commit_torn_by_a_crash_leaves_the_previous_position() {
    for (commits, torn_slot_at) in [(4u64, 4096u64), (5, 0)] {
        let dir = tempfile::tempdir().unwrap();
        commit_one_by_one(dir.path(), commits).await;
        // The last commit's slot lost its end: what a crash in the middle
        // of that write leaves. Sequence 1 went to the first slot, so the
        // last of an even number of commits is in the second one.
        let position = dir.path().join("committed");
        let mut bytes = std::fs::read(&position).unwrap();
        let at = (torn_slot_at + 20) as usize;
        bytes[at..at + 8].fill(0);
        std::fs::write(&position, bytes).unwrap();

        let (writer, mut reader, recovery) = Wal::open(options(dir.path())).await.unwrap();
        assert_eq!(reader.committed(), Lsn(commits - 1), "{commits} commits");
        assert_eq!(recovery.uncommitted_records, 10 - (commits - 1));
        assert_eq!(
            read_all(&mut reader).await,
            (commits - 1..10).collect::<Vec<_>>(),
            "the torn commit's record comes again; nothing is lost"
        );
        // Commits go on from there, into the torn slot first.
        reader.commit(Lsn(commits + 2)).await.unwrap();
        drop((writer, reader));
        let (_w, reader, _) = Wal::open(options(dir.path())).await.unwrap();
        assert_eq!(reader.committed(), Lsn(commits + 2));
    }
}

#[tokio::test]
async fn both_slots_damaged_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    commit_one_by_one(dir.path(), 3).await;
    let position = dir.path().join("committed");
    let mut bytes = std::fs::read(&position).unwrap();
    bytes[10] ^= 1;
    bytes[4096 + 10] ^= 1;
    std::fs::write(&position, bytes).unwrap();
    let err = Wal::open(options(dir.path())).await.unwrap_err();
    assert!(
        matches!(err, WalError::BadPositionFile { ref path, ref reason } if path == &position && reason.contains("both slots")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_version_1_position_file_is_read_and_converted_at_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (writer, _reader, _) = Wal::open(options(dir.path())).await.unwrap();
        writer.append((0..10).map(payload).collect()).await.unwrap();
    }
    // Version 1: "UNIWALC\x01" | lsn | CRC32C of the 16 bytes before.
    let mut v1 = Vec::new();
    v1.extend_from_slice(b"UNIWALC\x01");
    v1.extend_from_slice(&4u64.to_le_bytes());
    let crc = crc32c::crc32c(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    let position = dir.path().join("committed");
    std::fs::write(&position, &v1).unwrap();

    let (writer, mut reader, recovery) = Wal::open(options(dir.path())).await.unwrap();
    assert_eq!(reader.committed(), Lsn(4));
    assert_eq!(recovery.uncommitted_records, 6);
    assert_eq!(read_all(&mut reader).await, (4..10).collect::<Vec<_>>());
    reader.commit(Lsn(6)).await.unwrap();
    assert_eq!(std::fs::metadata(&position).unwrap().len(), FILE_LEN);
    reader.commit(Lsn(8)).await.unwrap();
    drop((writer, reader));
    let (_w, reader, _) = Wal::open(options(dir.path())).await.unwrap();
    assert_eq!(reader.committed(), Lsn(8));
}
