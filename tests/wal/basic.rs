//! Append, read back, commit and reopen: the ordinary life of a WAL.

use std::path::Path;
use std::time::Duration;

use unistream::wal::{Fsync, Lsn, Wal, WalError, WalOptions, WalReader, WalRecord};

use crate::support::wal::payload;

fn payloads(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| payload(i.into())).collect()
}

/// Reads until nothing is left, in batches of at most `n` records.
async fn drain(reader: &mut WalReader, n: usize) -> Vec<WalRecord> {
    let mut all = Vec::new();
    loop {
        let batch = reader.next_batch(n, usize::MAX).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn appended_records_come_back_in_order_with_dense_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, recovery) = Wal::open(WalOptions::new(dir.path())).await.unwrap();
    assert_eq!(recovery.uncommitted_records, 0);
    assert_eq!(writer.append(payloads(0..3)).await.unwrap(), Lsn(0));
    assert_eq!(writer.append(payloads(3..10)).await.unwrap(), Lsn(3));
    assert_eq!(writer.append(Vec::new()).await.unwrap(), Lsn(10));
    let got = drain(&mut reader, 4).await;
    let lsns: Vec<u64> = got.iter().map(|r| r.lsn.0).collect();
    assert_eq!(lsns, (0..10).collect::<Vec<_>>());
    let bodies: Vec<Vec<u8>> = got.into_iter().map(|r| r.payload.to_vec()).collect();
    assert_eq!(bodies, payloads(0..10));
    assert_eq!(writer.stats().next_lsn, Lsn(10));
}

#[tokio::test]
async fn batches_respect_record_and_byte_limits_but_always_return_one() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, _) = Wal::open(WalOptions::new(dir.path())).await.unwrap();
    writer
        .append(vec![vec![1; 10], vec![2; 10], vec![3; 100], vec![4; 10]])
        .await
        .unwrap();
    let a = reader.next_batch(10, 25).await.unwrap();
    assert_eq!(
        a.len(),
        2,
        "10 + 10 fit in 25 bytes, the 100-byte record does not"
    );
    let b = reader.next_batch(10, 25).await.unwrap();
    assert_eq!(
        b.len(),
        1,
        "a record larger than max_bytes still comes alone"
    );
    assert_eq!(b[0].payload.len(), 100);
    let c = reader.next_batch(1, usize::MAX).await.unwrap();
    assert_eq!(c[0].lsn, Lsn(3));
    assert!(reader.next_batch(10, 25).await.unwrap().is_empty());
    assert!(reader.next_batch(0, 25).await.unwrap().is_empty());
}

#[tokio::test]
async fn reopening_redelivers_uncommitted_records_only() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (writer, mut reader, _) = Wal::open(WalOptions::new(dir.path()).fsync(Fsync::Always))
            .await
            .unwrap();
        writer.append(payloads(0..100)).await.unwrap();
        let first = reader.next_batch(40, usize::MAX).await.unwrap();
        assert_eq!(first.len(), 40);
        reader.commit(Lsn(40)).await.unwrap();
        // Read but not committed: must come back after the restart.
        assert_eq!(reader.next_batch(10, usize::MAX).await.unwrap().len(), 10);
    }
    let (writer, mut reader, recovery) = Wal::open(WalOptions::new(dir.path())).await.unwrap();
    assert_eq!(recovery.uncommitted_records, 60);
    assert_eq!(recovery.truncated_tail_bytes, 0);
    assert_eq!(reader.committed(), Lsn(40));
    assert_eq!(writer.append(payloads(100..101)).await.unwrap(), Lsn(100));
    let got = drain(&mut reader, 7).await;
    let lsns: Vec<u64> = got.iter().map(|r| r.lsn.0).collect();
    assert_eq!(lsns, (40..101).collect::<Vec<_>>());
    assert_eq!(got[0].payload, &b"record-000040"[..]);
}

#[tokio::test]
async fn commit_deletes_whole_segments_below_it_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // 13-byte payloads + 12-byte headers = 25-byte frames; 16-byte segment
    // header: 4 frames per 116-byte segment.
    let options = WalOptions::new(dir.path()).segment_bytes(116);
    let (writer, mut reader, _) = Wal::open(options.clone()).await.unwrap();
    writer.append(payloads(0..10)).await.unwrap();
    assert_eq!(
        segment_files(dir.path()),
        vec![
            "00000000000000000000.wal",
            "00000000000000000004.wal",
            "00000000000000000008.wal"
        ]
    );
    assert_eq!(writer.stats().bytes_on_disk, 3 * 16 + 10 * 25);
    let got = reader.next_batch(6, usize::MAX).await.unwrap();
    assert_eq!(got.len(), 6);
    reader.commit(Lsn(6)).await.unwrap();
    // Segment 0..4 is wholly committed, 4..8 is not.
    assert_eq!(
        segment_files(dir.path()),
        vec!["00000000000000000004.wal", "00000000000000000008.wal"]
    );
    assert_eq!(writer.stats().bytes_on_disk, 2 * 16 + 6 * 25);
    assert_eq!(writer.stats().committed_lsn, Lsn(6));
    drop((writer, reader));

    let (_writer, mut reader, recovery) = Wal::open(options).await.unwrap();
    assert_eq!(recovery.uncommitted_records, 4);
    let lsns: Vec<u64> = drain(&mut reader, 100)
        .await
        .iter()
        .map(|r| r.lsn.0)
        .collect();
    assert_eq!(lsns, vec![6, 7, 8, 9]);
}

#[tokio::test]
async fn commit_beyond_what_was_returned_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, _) = Wal::open(WalOptions::new(dir.path())).await.unwrap();
    writer.append(payloads(0..5)).await.unwrap();
    reader.next_batch(2, usize::MAX).await.unwrap();
    let err = reader.commit(Lsn(3)).await.unwrap_err();
    assert!(
        matches!(
            err,
            WalError::CommitBeyondReturned {
                upto: Lsn(3),
                returned: Lsn(2)
            }
        ),
        "{err:?}"
    );
    reader.commit(Lsn(2)).await.unwrap();
    reader.commit(Lsn(1)).await.unwrap(); // below committed: nothing to do
    assert_eq!(reader.committed(), Lsn(2));
}

#[tokio::test]
async fn rewind_returns_records_again_and_restores_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, _) = Wal::open(WalOptions::new(dir.path())).await.unwrap();
    writer.append(payloads(0..8)).await.unwrap();
    assert_eq!(reader.backlog().records, 8);
    assert_eq!(reader.backlog().bytes, 8 * 13);
    let a = reader.next_batch(5, usize::MAX).await.unwrap();
    assert_eq!(reader.backlog().records, 3);
    assert_eq!(reader.backlog().bytes, 3 * 13);
    reader.commit(Lsn(2)).await.unwrap();
    reader.rewind(Lsn(0)); // clamped to the committed position
    assert_eq!(reader.next_lsn(), Lsn(2));
    assert_eq!(reader.backlog().records, 6);
    assert_eq!(reader.backlog().bytes, 6 * 13);
    let b = reader.next_batch(3, usize::MAX).await.unwrap();
    assert_eq!(b, a[2..5].to_vec());
    reader.rewind(Lsn(4));
    let c = reader.next_batch(100, usize::MAX).await.unwrap();
    let lsns: Vec<u64> = c.iter().map(|r| r.lsn.0).collect();
    assert_eq!(lsns, vec![4, 5, 6, 7]);
    assert_eq!(reader.backlog().records, 0);
    assert_eq!(reader.backlog().bytes, 0);
}

#[tokio::test]
async fn backlog_after_reopen_counts_recovered_bytes_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions::new(dir.path()).segment_bytes(116);
    {
        let (writer, mut reader, _) = Wal::open(options.clone()).await.unwrap();
        writer.append(payloads(0..11)).await.unwrap();
        reader.next_batch(3, usize::MAX).await.unwrap();
        reader.commit(Lsn(3)).await.unwrap();
    }
    let (_writer, reader, _) = Wal::open(options).await.unwrap();
    let backlog = reader.backlog();
    assert_eq!(backlog.records, 8);
    assert_eq!(backlog.bytes, 8 * 13);
    assert!(backlog.oldest_appended_at.is_some());
}

#[tokio::test]
async fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, _) = Wal::open(WalOptions::new(dir.path())).await.unwrap();
    writer.append(payloads(0..3)).await.unwrap();
    reader.next_batch(2, usize::MAX).await.unwrap();
    reader.commit(Lsn(2)).await.unwrap();
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{:?}", entry.file_name());
        checked.push(entry.file_name().to_string_lossy().into_owned());
    }
    checked.sort();
    assert_eq!(
        checked.len(),
        3,
        "one segment, the committed file and the lock: {checked:?}"
    );
    assert_eq!(&checked[1..], ["committed", "lock"], "{checked:?}");
}

#[tokio::test]
async fn records_larger_than_a_segment_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions::new(dir.path()).segment_bytes(128);
    let limit = options.max_record_bytes();
    assert_eq!(limit, 128 - 16 - 12);
    let (writer, mut reader, _) = Wal::open(options).await.unwrap();
    let err = writer
        .append(vec![b"small".to_vec(), vec![0; limit as usize + 1]])
        .await
        .unwrap_err();
    assert!(
        matches!(err, WalError::RecordTooLarge { bytes, limit: l } if bytes == limit + 1 && l == limit),
        "{err:?}"
    );
    assert_eq!(
        reader.backlog().records,
        0,
        "nothing of the batch was appended"
    );
    writer.append(vec![vec![7; limit as usize]]).await.unwrap();
    assert_eq!(
        reader.next_batch(1, 1).await.unwrap()[0].payload.len(),
        limit as usize
    );
}

#[tokio::test]
async fn fsync_always_acknowledges_synced_records() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, _reader, _) = Wal::open(WalOptions::new(dir.path()).fsync(Fsync::Always))
        .await
        .unwrap();
    writer.append(payloads(0..5)).await.unwrap();
    let stats = writer.stats();
    assert_eq!(stats.synced_lsn, Lsn(5));
    assert_eq!(stats.next_lsn, Lsn(5));
}

#[tokio::test(start_paused = true)]
async fn fsync_interval_syncs_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions::new(dir.path()).fsync(Fsync::Interval(Duration::from_millis(50)));
    let (writer, _reader, _) = Wal::open(options).await.unwrap();
    writer.append(payloads(0..5)).await.unwrap();
    assert_eq!(
        writer.stats().synced_lsn,
        Lsn(0),
        "acknowledged before the fdatasync"
    );
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(writer.stats().synced_lsn, Lsn(0));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(writer.stats().synced_lsn, Lsn(5));
}

#[tokio::test]
async fn explicit_sync_under_never() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, _reader, _) = Wal::open(WalOptions::new(dir.path()).fsync(Fsync::Never))
        .await
        .unwrap();
    writer.append(payloads(0..5)).await.unwrap();
    assert_eq!(writer.stats().synced_lsn, Lsn(0));
    writer.sync().await.unwrap();
    assert_eq!(writer.stats().synced_lsn, Lsn(5));
}

#[tokio::test]
async fn wait_for_records_wakes_on_append_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, _) = Wal::open(WalOptions::new(dir.path())).await.unwrap();
    let mut waiting = tokio_test::task::spawn(reader.wait_for_records());
    tokio_test::assert_pending!(waiting.poll());
    writer.append(payloads(0..1)).await.unwrap();
    assert!(waiting.is_woken());
    tokio_test::assert_ready!(waiting.poll());
    drop(waiting);
    reader.next_batch(10, usize::MAX).await.unwrap();
    let mut waiting = tokio_test::task::spawn(reader.wait_for_records());
    tokio_test::assert_pending!(waiting.poll());
    drop(writer);
    // The writer task ends once every handle is gone.
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_appenders_each_get_consecutive_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, _) = Wal::open(WalOptions::new(dir.path()).fsync(Fsync::Always))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            let mut firsts = Vec::new();
            for round in 0..5u32 {
                let recs: Vec<Vec<u8>> = (0..3)
                    .map(|i| format!("{t}:{round}:{i}").into_bytes())
                    .collect();
                firsts.push((round, writer.append(recs).await.unwrap()));
            }
            (t, firsts)
        }));
    }
    let mut expected = std::collections::HashMap::new();
    for task in tasks {
        let (t, firsts) = task.await.unwrap();
        for (round, lsn) in firsts {
            for i in 0..3 {
                expected.insert(lsn.0 + i, format!("{t}:{round}:{i}").into_bytes());
            }
        }
    }
    let got = drain(&mut reader, 1000).await;
    assert_eq!(got.len(), 16 * 5 * 3);
    for r in got {
        assert_eq!(
            expected.get(&r.lsn.0),
            Some(&r.payload.to_vec()),
            "lsn {}",
            r.lsn
        );
    }
}

#[tokio::test]
async fn start_commit_persists_in_the_background_and_coalesces() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions::new(dir.path()).segment_bytes(116);
    let (writer, mut reader, _) = Wal::open(options.clone()).await.unwrap();
    writer.append(payloads(0..12)).await.unwrap();
    for end in 1..=12u64 {
        let batch = reader.next_batch(1, usize::MAX).await.unwrap();
        assert_eq!(batch[0].lsn, Lsn(end - 1));
        reader.start_commit(Lsn(end)).unwrap();
        assert_eq!(reader.committed(), Lsn(end), "visible at once");
    }
    assert!(matches!(
        reader.start_commit(Lsn(13)),
        Err(WalError::CommitBeyondReturned { .. })
    ));
    reader.wait_committed(Lsn(12)).await.unwrap();
    assert_eq!(reader.durable_committed(), Lsn(12));
    assert_eq!(writer.stats().committed_lsn, Lsn(12));
    // Sealed segments below 12 are gone; the active one (8..12) stays.
    assert_eq!(segment_files(dir.path()), vec!["00000000000000000008.wal"]);
}

#[tokio::test]
async fn reopening_right_after_drop_sees_the_last_background_commit() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions::new(dir.path());
    for round in 0..5u32 {
        let (writer, mut reader, recovery) = Wal::open(options.clone()).await.unwrap();
        assert_eq!(recovery.uncommitted_records, 0, "round {round}");
        writer
            .append(payloads(round * 10..round * 10 + 10))
            .await
            .unwrap();
        let got = drain(&mut reader, 3).await;
        assert_eq!(got.len(), 10);
        assert_eq!(
            got[0].payload,
            format!("record-{:06}", round * 10).into_bytes()
        );
        reader.start_commit(got[9].lsn.after(1)).unwrap();
        // Dropped without waiting: the next open waits for the committer.
    }
}

#[tokio::test(start_paused = true)]
async fn a_directory_open_with_live_handles_cannot_be_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, reader, _) = Wal::open(WalOptions::new(dir.path())).await.unwrap();
    let err = Wal::open(WalOptions::new(dir.path())).await.unwrap_err();
    assert!(matches!(err, WalError::AlreadyOpen { .. }), "{err:?}");
    drop((writer, reader));
    Wal::open(WalOptions::new(dir.path())).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_appends_under_always_share_one_write_and_one_fdatasync() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, _) = Wal::open(WalOptions::new(dir.path()).fsync(Fsync::Always))
        .await
        .unwrap();
    writer.append(payloads(0..1)).await.unwrap();
    // The append is answered from the writer's blocking thread, possibly
    // before the writer task has finished with its group: let it go idle.
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    let before = writer.stats();
    // On one thread, all 64 tasks send before the writer task runs again:
    // it finds them all queued and writes them as one group.
    let tasks: Vec<_> = (1..65u32)
        .map(|i| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.append(payloads(i..i + 1)).await.unwrap() })
        })
        .collect();
    let mut firsts = Vec::new();
    for t in tasks {
        firsts.push(t.await.unwrap().0);
    }
    firsts.sort_unstable();
    assert_eq!(firsts, (1..65).collect::<Vec<u64>>());
    let after = writer.stats();
    assert_eq!(
        after.group_writes - before.group_writes,
        1,
        "{before:?} {after:?}"
    );
    assert_eq!(
        after.fdatasyncs - before.fdatasyncs,
        1,
        "{before:?} {after:?}"
    );
    assert_eq!(after.synced_lsn, Lsn(65));
    assert_eq!(drain(&mut reader, 100).await.len(), 65);
}

#[tokio::test(flavor = "current_thread")]
async fn appenders_answered_by_a_group_rejoin_the_next_one_instead_of_alternating() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, _) = Wal::open(WalOptions::new(dir.path()).fsync(Fsync::Always))
        .await
        .unwrap();
    let (appenders, rounds) = (16u32, 40u32);
    let spawn = |a: u32| {
        let writer = writer.clone();
        tokio::spawn(async move {
            for r in 0..rounds {
                let i = a * rounds + r;
                writer.append(payloads(i..i + 1)).await.unwrap();
            }
        })
    };
    // Task 0 appends first; once its group is being written (a blocking
    // fdatasync), the other 15 start and queue behind it. Without gathering
    // the groups would then alternate between those two sets forever (each
    // set appends again while the other's group is written: about two
    // groups per round). The writer waits for the tasks it just answered,
    // so from the second group on every group carries all 16.
    let mut tasks = vec![spawn(0)];
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    tasks.extend((1..appenders).map(spawn));
    for t in tasks {
        t.await.unwrap();
    }
    let stats = writer.stats();
    assert_eq!(stats.next_lsn, Lsn(u64::from(appenders * rounds)));
    assert!(
        stats.group_writes <= u64::from(rounds) + 3,
        "{} groups for {rounds} rounds of {appenders} appenders: {stats:?}",
        stats.group_writes
    );
    assert_eq!(stats.synced_lsn, stats.next_lsn);
    assert_eq!(
        drain(&mut reader, 1_000).await.len(),
        (appenders * rounds) as usize
    );
}

#[tokio::test]
async fn a_cancelled_next_batch_returns_nothing_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut reader, _) = Wal::open(WalOptions::new(dir.path())).await.unwrap();
    writer.append(payloads(0..30_000)).await.unwrap();
    assert_eq!(reader.next_batch(3, usize::MAX).await.unwrap().len(), 3);
    let mut cancelled_while_pending = 0;
    for _ in 0..5 {
        let before = reader.next_lsn();
        // Polled once (the read of 5,000 records starts on a blocking
        // thread), then dropped.
        let polled = {
            let mut read = tokio_test::task::spawn(reader.next_batch(5_000, usize::MAX));
            read.poll()
        };
        match polled {
            std::task::Poll::Pending => {
                cancelled_while_pending += 1;
                assert_eq!(reader.next_lsn(), before, "nothing counts as returned");
            }
            // The blocking read won the race: those records were returned.
            std::task::Poll::Ready(batch) => {
                let batch = batch.unwrap();
                assert_eq!(batch[0].lsn, before);
                assert_eq!(reader.next_lsn(), before.after(batch.len() as u64));
            }
        }
    }
    assert!(
        cancelled_while_pending > 0,
        "no read was cancelled while in progress"
    );
    let from = reader.next_lsn().0;
    assert_eq!(reader.backlog().records, 30_000 - from);
    let lsns: Vec<u64> = drain(&mut reader, 4_000)
        .await
        .iter()
        .map(|r| r.lsn.0)
        .collect();
    assert_eq!(lsns, (from..30_000).collect::<Vec<_>>());
}
