//! Contract 1 of `buffered_wal`: an acknowledged record is in the log, and
//! fdatasynced per the `Fsync` policy.

use std::time::Duration;

use futures::SinkExt;
use unistream::sink::{MemorySink, WalConfig, WalSinkExt};
use unistream::wal::{Fsync, Lsn};

#[tokio::test]
async fn under_always_every_acknowledged_record_is_fdatasynced() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    target.handle().stall(); // nothing leaves the log during the test
    let mut sink = target
        .buffered_wal(WalConfig::new(dir.path()).fsync(Fsync::Always))
        .await
        .unwrap();
    for i in 0..20u64 {
        sink.send(i).await.unwrap();
        let stats = sink.wal_stats();
        assert_eq!(stats.next_lsn, Lsn(i + 1));
        assert_eq!(
            stats.synced_lsn,
            Lsn(i + 1),
            "record {i} acknowledged unsynced"
        );
    }
    // `feed` alone acknowledges nothing: the record is still in memory.
    sink.feed(20).await.unwrap();
    assert_eq!(sink.buffered_records(), 1);
    assert_eq!(sink.wal_stats().next_lsn, Lsn(20));
    sink.flush().await.unwrap();
    assert_eq!(sink.wal_stats().synced_lsn, Lsn(21));
}

#[tokio::test(start_paused = true)]
async fn under_interval_acknowledged_records_are_fdatasynced_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    target.handle().stall();
    let interval = Duration::from_millis(10);
    let mut sink = target
        .buffered_wal(WalConfig::new(dir.path()).fsync(Fsync::Interval(interval)))
        .await
        .unwrap();
    for i in 0..5u64 {
        sink.feed(i).await.unwrap();
    }
    sink.flush().await.unwrap();
    assert_eq!(sink.wal_stats().next_lsn, Lsn(5)); // written at once
    tokio::time::sleep(interval * 2).await;
    assert_eq!(sink.wal_stats().synced_lsn, Lsn(5)); // and synced by the tick
}

#[tokio::test]
async fn under_never_close_still_delivers_and_commits_everything() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let mut sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .fsync(Fsync::Never)
                .max_records(10),
        )
        .await
        .unwrap();
    for i in 0..1000u64 {
        sink.feed(i).await.unwrap();
    }
    sink.close().await.unwrap();
    assert_eq!(delivered.records(), (0..1000).collect::<Vec<_>>());
    assert_eq!(sink.wal_stats().committed_lsn, Lsn(1000));
}
