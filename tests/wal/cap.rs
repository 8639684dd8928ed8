//! The cap on bytes on disk: backpressure (`WhenFull::Wait`) or an error
//! (`WhenFull::Error`), and space freed only by commits.

use std::time::Duration;

use unistream::wal::{Fsync, Lsn, Wal, WalError, WalOptions, WalReader, WhenFull};

use crate::support::wal::payload;

/// 116-byte segments: with [`payload`]'s 25-byte frames, 4 frames each.
fn options(dir: &std::path::Path, cap: u64, when_full: WhenFull) -> WalOptions {
    WalOptions::new(dir)
        .segment_bytes(116)
        .max_bytes(cap)
        .fsync(Fsync::Never)
        .when_full(when_full)
}

async fn deliver(reader: &mut WalReader, n: usize) -> Lsn {
    let batch = reader.next_batch(n, usize::MAX).await.unwrap();
    let end = batch
        .last()
        .map(|r| r.lsn.after(1))
        .unwrap_or(reader.committed());
    reader.commit(end).await.unwrap();
    end
}

#[tokio::test]
async fn error_mode_refuses_what_does_not_fit_until_a_commit_frees_space() {
    let dir = tempfile::tempdir().unwrap();
    // Two full segments: 2 * 116 = 232 bytes.
    let (writer, mut reader, _) = Wal::open(options(dir.path(), 232, WhenFull::Error))
        .await
        .unwrap();
    writer.append((0..8).map(payload).collect()).await.unwrap();
    assert_eq!(writer.stats().bytes_on_disk, 232);
    let err = writer.append(vec![payload(8)]).await.unwrap_err();
    // A new segment (16) and a frame (25) on top of 232.
    assert!(
        matches!(
            err,
            WalError::Full {
                bytes: 273,
                cap: 232
            }
        ),
        "{err:?}"
    );
    assert_eq!(writer.stats().next_lsn, Lsn(8), "nothing was appended");

    // Delivering the first segment deletes it: room for one more segment.
    deliver(&mut reader, 4).await;
    assert_eq!(writer.stats().bytes_on_disk, 116);
    assert_eq!(writer.append(vec![payload(8)]).await.unwrap(), Lsn(8));

    // A batch larger than the whole cap can never fit.
    let err = writer
        .append((0..20).map(payload).collect())
        .await
        .unwrap_err();
    assert!(matches!(err, WalError::Full { cap: 232, .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn wait_mode_blocks_the_append_until_a_commit_frees_space() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, _) = Wal::open(options(dir.path(), 232, WhenFull::Wait))
        .await
        .unwrap();
    writer.append((0..8).map(payload).collect()).await.unwrap();

    let blocked = tokio::spawn({
        let writer = writer.clone();
        async move { writer.append(vec![payload(8), payload(9)]).await }
    });
    // Later appends queue behind it, keeping order.
    let behind = tokio::spawn({
        let writer = writer.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            writer.append(vec![payload(10)]).await
        }
    });
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!blocked.is_finished(), "the append must wait for space");
    assert!(!behind.is_finished());
    assert_eq!(writer.stats().bytes_on_disk, 232);

    // Reading alone frees nothing; committing the first segment does.
    let first = reader.next_batch(4, usize::MAX).await.unwrap();
    assert_eq!(first.len(), 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!blocked.is_finished());
    reader.commit(Lsn(4)).await.unwrap();
    assert_eq!(blocked.await.unwrap().unwrap(), Lsn(8));
    assert_eq!(behind.await.unwrap().unwrap(), Lsn(10));
    assert!(writer.stats().bytes_on_disk <= 232);
}

#[tokio::test]
async fn a_batch_larger_than_the_cap_goes_through_in_parts_while_commits_free_space() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, _) = Wal::open(options(dir.path(), 232, WhenFull::Wait))
        .await
        .unwrap();
    let big = tokio::spawn({
        let writer = writer.clone();
        async move { writer.append((0..40).map(payload).collect()).await }
    });
    let mut received = Vec::new();
    while received.len() < 40 {
        reader.wait_for_records().await;
        let batch = reader.next_batch(3, usize::MAX).await.unwrap();
        assert!(writer.stats().bytes_on_disk <= 232, "{:?}", writer.stats());
        if let Some(last) = batch.last() {
            reader.commit(last.lsn.after(1)).await.unwrap();
        }
        received.extend(batch.into_iter().map(|r| r.payload));
    }
    assert_eq!(big.await.unwrap().unwrap(), Lsn(0));
    assert_eq!(received, (0..40).map(payload).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_cap_smaller_than_one_segment_is_freed_by_sealing_the_committed_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    // 1 KiB segments but a 200-byte cap: 16 + 7 frames of 25 = 191 bytes.
    let options = WalOptions::new(dir.path())
        .segment_bytes(1024)
        .max_bytes(200)
        .fsync(Fsync::Never);
    let (writer, mut reader, _) = Wal::open(options).await.unwrap();
    for round in 0..5u64 {
        let base = round * 7;
        let first = writer
            .append((base..base + 7).map(payload).collect())
            .await
            .unwrap();
        assert_eq!(first, Lsn(base));
        assert!(writer.stats().bytes_on_disk <= 200);
        // Everything is in the active segment; committing it lets the
        // writer start a new one and delete the old one.
        assert_eq!(deliver(&mut reader, 100).await, Lsn(base + 7));
    }
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wal")
        })
        .count();
    assert!(files <= 2, "{files} segment files left");
}

#[tokio::test]
async fn disk_use_stays_under_the_cap_while_far_more_than_the_cap_flows_through() {
    let dir = tempfile::tempdir().unwrap();
    let cap = 4 * 116;
    let (writer, mut reader, _) = Wal::open(options(dir.path(), cap, WhenFull::Wait))
        .await
        .unwrap();
    let total = 1_000u64;
    let producer = tokio::spawn({
        let writer = writer.clone();
        async move {
            for i in 0..total {
                writer.append(vec![payload(i)]).await.unwrap();
            }
        }
    });
    let mut next = 0u64;
    let mut peak = 0;
    while next < total {
        reader.wait_for_records().await;
        peak = peak.max(writer.stats().bytes_on_disk);
        for r in reader.next_batch(10, usize::MAX).await.unwrap() {
            assert_eq!(r.lsn, Lsn(next));
            assert_eq!(r.payload, payload(next));
            next += 1;
        }
        reader.commit(Lsn(next)).await.unwrap();
    }
    producer.await.unwrap();
    assert!(peak <= cap, "peak {peak} > cap {cap}");
    assert!(
        total * 25 > 50 * cap,
        "the test must move much more than the cap"
    );
}

#[tokio::test]
async fn appends_waiting_for_space_fail_when_the_reader_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, reader, _) = Wal::open(options(dir.path(), 232, WhenFull::Wait))
        .await
        .unwrap();
    writer.append((0..8).map(payload).collect()).await.unwrap();
    let waiting = tokio::spawn({
        let writer = writer.clone();
        async move { writer.append(vec![payload(8)]).await }
    });
    tokio::task::yield_now().await;
    drop(reader);
    let result = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the append must not wait forever")
        .unwrap();
    assert!(matches!(result, Err(WalError::Closed)), "{result:?}");
    drop(writer);
    // The directory is released: it opens again with the 8 records.
    let (_w, _r, recovery) = Wal::open(options(dir.path(), 232, WhenFull::Wait))
        .await
        .unwrap();
    assert_eq!(recovery.uncommitted_records, 8);
}
