//! The write-ahead log's and `buffered_wal`'s metrics for known workloads:
//! 1,000 records through `buffered_wal` into a `MemorySink`, a stuck target
//! (the backlog gauges), a failing one (retries, dead letters) and one that
//! rejects records.

use std::time::Duration;

use futures::SinkExt;
use unistream::observe::names::*;
use unistream::sink::{MemorySink, WalConfig, WalSinkExt};
use unistream::wal::{Fsync, Wal, WalOptions};
use unistream::DeadLetter;

use crate::recorder::{run, until, TestRecorder};
use crate::support::retry::deterministic;

/// JSON bytes of the records `0..n` (what the log stores of each).
fn json_bytes(n: u64) -> u64 {
    (0..n).map(|i| i.to_string().len() as u64).sum()
}

#[test]
fn a_thousand_records_through_buffered_wal_are_counted_once_each() {
    let recorder = TestRecorder::default();
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    run(&recorder, async {
        let mut sink = target
            .buffered_wal(WalConfig::new(dir.path()).name("orders").max_records(100))
            .await
            .unwrap();
        for i in 0..1_000u64 {
            sink.feed(i).await.unwrap();
        }
        sink.close().await.unwrap();
        until("the last group write counted", || {
            recorder.counter(WAL_APPENDED_RECORDS, &[(LABEL_WAL, "orders")]) == 1_000
        })
        .await;
    });
    assert_eq!(delivered.record_count(), 1_000);

    let wal = [(LABEL_WAL, "orders")];
    assert_eq!(recorder.counter(WAL_APPENDED_RECORDS, &wal), 1_000);
    assert_eq!(
        recorder.counter(WAL_APPENDED_BYTES, &wal),
        json_bytes(1_000)
    );
    let group_writes = recorder.counter(WAL_GROUP_WRITES, &wal);
    assert!(group_writes >= 1);
    assert_eq!(
        recorder.histogram(WAL_GROUP_WRITE_SECONDS, &wal).len() as u64,
        group_writes,
        "one latency per group write"
    );
    let commits = recorder.counter(WAL_COMMITS, &wal);
    assert!(commits >= 1, "close waits for a durable commit");
    assert_eq!(
        recorder.histogram(WAL_COMMIT_SECONDS, &wal).len() as u64,
        commits
    );
    assert_eq!(recorder.counter(WAL_COMMIT_FAILURES, &wal), 0);
    assert_eq!(recorder.gauge(WAL_BACKLOG_RECORDS, &wal), Some(0.0));
    assert_eq!(recorder.gauge(WAL_BACKLOG_BYTES, &wal), Some(0.0));
    assert!(recorder.gauge(WAL_DISK_BYTES, &wal).unwrap() > 0.0);

    let delivery = [(LABEL_WAL, "orders"), (LABEL_TARGET, "MemorySink<u64>")];
    assert_eq!(recorder.counter(DELIVERY_RECORDS, &delivery), 1_000);
    let batches = recorder.counter(DELIVERY_BATCHES, &delivery);
    assert_eq!(batches, delivered.batch_count() as u64);
    assert!(batches >= 10, "batches of at most 100 records: {batches}");
    assert_eq!(
        recorder.histogram(DELIVERY_SECONDS, &delivery).len() as u64,
        batches
    );
    assert_eq!(recorder.counter(DELIVERY_RETRIES, &delivery), 0);
    assert_eq!(recorder.counter(DELIVERY_DEAD_LETTERS, &delivery), 0);
    assert_eq!(recorder.counter(DELIVERY_REJECTED_RECORDS, &delivery), 0);
}

#[test]
fn the_backlog_gauges_show_what_a_stuck_target_has_not_taken() {
    let recorder = TestRecorder::default();
    let dir = tempfile::tempdir().unwrap();
    let label = dir.path().display().to_string();
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    delivered.stall();
    let (stuck, after) = run(&recorder, async {
        let mut sink = target
            .buffered_wal(WalConfig::new(dir.path()).max_age(Duration::ZERO))
            .await
            .unwrap();
        for i in 0..10u64 {
            sink.feed(i).await.unwrap();
        }
        sink.flush().await.unwrap();
        let wal = [(LABEL_WAL, label.as_str())];
        until("the appends counted", || {
            recorder.counter(WAL_APPENDED_RECORDS, &wal) == 10
        })
        .await;
        let stuck = (
            recorder.gauge(WAL_BACKLOG_RECORDS, &wal),
            recorder.gauge(WAL_BACKLOG_BYTES, &wal),
            recorder.counter(DELIVERY_RECORDS, &wal),
        );
        delivered.resume();
        sink.close().await.unwrap();
        let after = (
            recorder.gauge(WAL_BACKLOG_RECORDS, &wal),
            recorder.gauge(WAL_BACKLOG_BYTES, &wal),
            recorder.counter(DELIVERY_RECORDS, &wal),
        );
        (stuck, after)
    });
    // Without a name the log is labelled with its directory.
    assert_eq!(stuck, (Some(10.0), Some(json_bytes(10) as f64), 0));
    assert_eq!(after, (Some(0.0), Some(0.0), 10));
}

#[test]
fn retries_and_dead_letters_of_a_failing_target_are_counted() {
    let recorder = TestRecorder::default();
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    let handle = target.handle();
    let dead_letter = MemorySink::<DeadLetter<u64>>::new();
    let dead = dead_letter.handle();
    run(&recorder, async {
        let mut sink = target
            .buffered_wal(
                WalConfig::new(dir.path())
                    .name("failing")
                    .max_records(3)
                    .retry(deterministic(3))
                    .dead_letter(dead_letter),
            )
            .await
            .unwrap();
        // First batch: fails twice, then goes through (2 retries).
        handle.fail_next(2);
        for i in 0..3u64 {
            sink.feed(i).await.unwrap();
        }
        sink.flush().await.unwrap();
        handle.wait_for_records(3).await;
        // Second batch: fails all 3 attempts (2 retries), dead-lettered.
        handle.fail_next(u64::MAX);
        for i in 3..6u64 {
            sink.feed(i).await.unwrap();
        }
        sink.flush().await.unwrap();
        dead.wait_for_records(3).await;
        handle.heal();
        sink.close().await.unwrap();
        until("the appends counted", || {
            recorder.counter(WAL_APPENDED_RECORDS, &[(LABEL_WAL, "failing")]) == 6
        })
        .await;
    });
    let wal = [(LABEL_WAL, "failing")];
    assert_eq!(recorder.counter(DELIVERY_RETRIES, &wal), 4);
    assert_eq!(recorder.counter(DELIVERY_DEAD_LETTERS, &wal), 3);
    assert_eq!(recorder.counter(DELIVERY_RECORDS, &wal), 3);
    assert_eq!(recorder.counter(DELIVERY_BATCHES, &wal), 1);
    assert_eq!(recorder.counter(DELIVERY_REJECTED_RECORDS, &wal), 0);
    assert_eq!(recorder.counter(WAL_APPENDED_RECORDS, &wal), 6);
    assert_eq!(recorder.gauge(WAL_BACKLOG_RECORDS, &wal), Some(0.0));
}

#[test]
fn rejected_records_are_counted_and_dead_lettered() {
    let recorder = TestRecorder::default();
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    let handle = target.handle();
    handle.reject_where(|x| (x % 2 == 0).then(|| "even".to_owned()));
    let dead_letter = MemorySink::<DeadLetter<u64>>::new();
    let dead = dead_letter.handle();
    run(&recorder, async {
        let mut sink = target
            .buffered_wal(
                WalConfig::new(dir.path())
                    .name("picky")
                    .max_records(10)
                    .dead_letter(dead_letter),
            )
            .await
            .unwrap();
        for i in 0..10u64 {
            sink.feed(i).await.unwrap();
        }
        sink.close().await.unwrap();
    });
    assert_eq!(dead.record_count(), 5);
    assert_eq!(handle.record_count(), 5);
    let wal = [(LABEL_WAL, "picky")];
    assert_eq!(recorder.counter(DELIVERY_REJECTED_RECORDS, &wal), 5);
    assert_eq!(recorder.counter(DELIVERY_DEAD_LETTERS, &wal), 5);
    assert_eq!(recorder.counter(DELIVERY_RECORDS, &wal), 5);
    assert_eq!(recorder.counter(DELIVERY_BATCHES, &wal), 1);
}

#[test]
fn the_log_alone_counts_appends_and_commits_under_fsync_always() {
    let recorder = TestRecorder::default();
    let dir = tempfile::tempdir().unwrap();
    run(&recorder, async {
        let (writer, mut reader, _) =
            Wal::open(WalOptions::new(dir.path()).name("raw").fsync(Fsync::Always))
                .await
                .unwrap();
        writer
            .append(vec![b"one".to_vec(), b"three".to_vec()])
            .await
            .unwrap();
        writer.append(vec![b"four".to_vec()]).await.unwrap();
        let wal = [(LABEL_WAL, "raw")];
        until("both group writes counted", || {
            recorder.counter(WAL_GROUP_WRITES, &wal) == 2
        })
        .await;
        assert_eq!(recorder.gauge(WAL_BACKLOG_RECORDS, &wal), Some(3.0));
        assert_eq!(recorder.gauge(WAL_BACKLOG_BYTES, &wal), Some(12.0));
        let batch = reader.next_batch(2, 1 << 20).await.unwrap();
        reader.commit(batch[1].lsn.after(1)).await.unwrap();
        assert_eq!(recorder.gauge(WAL_BACKLOG_RECORDS, &wal), Some(1.0));
        assert_eq!(recorder.gauge(WAL_BACKLOG_BYTES, &wal), Some(4.0));
        assert_eq!(recorder.counter(WAL_APPENDED_RECORDS, &wal), 3);
        assert_eq!(recorder.counter(WAL_APPENDED_BYTES, &wal), 12);
        // Two appends one after the other: two group writes.
        assert_eq!(recorder.counter(WAL_GROUP_WRITES, &wal), 2);
        assert_eq!(recorder.counter(WAL_COMMITS, &wal), 1);
    });
}

#[test]
fn a_failed_persist_of_the_committed_position_is_counted() {
    let recorder = TestRecorder::default();
    let dir = tempfile::tempdir().unwrap();
    run(&recorder, async {
        let (writer, mut reader, _) = Wal::open(WalOptions::new(dir.path()).name("blocked"))
            .await
            .unwrap();
        // A fresh log creates its `committed` file at the first commit, by
        // renaming a temporary file over it: a directory in the way makes
        // that fail.
        let in_the_way = dir.path().join("committed");
        std::fs::create_dir_all(in_the_way.join("x")).unwrap();
        writer.append(vec![b"one".to_vec()]).await.unwrap();
        let batch = reader.next_batch(10, 1 << 20).await.unwrap();
        let upto = batch[0].lsn.after(1);
        reader.commit(upto).await.unwrap_err();
        let wal = [(LABEL_WAL, "blocked")];
        assert_eq!(recorder.counter(WAL_COMMIT_FAILURES, &wal), 1);
        assert_eq!(recorder.counter(WAL_COMMITS, &wal), 0);
        // Out of the way: the next commit persists the position.
        std::fs::remove_dir_all(&in_the_way).unwrap();
        // `start_commit` reports the earlier failure and hands the position
        // to the committer again.
        assert!(reader.start_commit(upto).is_err());
        until("the retried persist counted", || {
            recorder.counter(WAL_COMMITS, &wal) == 1
        })
        .await;
        assert_eq!(reader.durable_committed(), upto);
        assert_eq!(recorder.counter(WAL_COMMIT_FAILURES, &wal), 1);
        assert_eq!(recorder.histogram(WAL_COMMIT_SECONDS, &wal).len(), 2);
    });
}
