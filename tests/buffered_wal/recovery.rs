//! `buffered_wal` across restarts: records acknowledged by a sink that was
//! dropped without `close` are delivered by the next open of the same
//! directory, first and in order.

use std::time::Duration;

use futures::{stream, SinkExt, StreamExt};
use unistream::sink::{MemorySink, WalConfig, WalSinkExt};
use unistream::wal::Lsn;

#[tokio::test]
async fn acknowledged_records_are_redelivered_first_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let stuck = MemorySink::<u64>::new();
    stuck.handle().stall();
    let mut sink = stuck
        .buffered_wal(WalConfig::new(dir.path()).max_records(7))
        .await
        .unwrap();
    for i in 0..50u64 {
        sink.send(i).await.unwrap();
    }
    drop(sink); // no close: like a crash, as far as the log is concerned

    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let sink = target
        .buffered_wal(WalConfig::new(dir.path()).max_records(7))
        .await
        .unwrap();
    assert_eq!(sink.recovery().uncommitted_records, 50);
    stream::iter(50..60u64).map(Ok).forward(sink).await.unwrap();
    assert_eq!(delivered.records(), (0..60).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn committed_records_are_not_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    let first = target.handle();
    let mut sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .max_records(5)
                .max_age(Duration::from_millis(1)),
        )
        .await
        .unwrap();
    for i in 0..20u64 {
        sink.send(i).await.unwrap();
    }
    while sink.wal_stats().committed_lsn < Lsn(20) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    first.stall();
    for i in 20..30u64 {
        sink.send(i).await.unwrap();
    }
    drop(sink);
    assert_eq!(first.records(), (0..20).collect::<Vec<_>>());

    let target = MemorySink::<u64>::new();
    let second = target.handle();
    let mut sink = target
        .buffered_wal(WalConfig::new(dir.path()).max_records(5))
        .await
        .unwrap();
    sink.close().await.unwrap();
    // The batch that was stuck in the first target's hands comes again
    // (at least once); nothing committed does.
    assert_eq!(second.records(), (20..30).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn under_a_steady_backlog_the_delivered_position_is_committed_every_interval() {
    use std::sync::{Arc, Mutex};
    use unistream::wal::Fsync;

    // A target that takes 1 ms (of tokio's paused clock) per batch of 10,
    // behind a backlog of 2,000 records: 200 ms of delivery during which a
    // full batch is always waiting (and read ahead while the target works).
    let delivered = Arc::new(Mutex::new(0u64));
    let counter = delivered.clone();
    let target = futures::sink::unfold((), move |(), batch: Vec<u64>| {
        let counter = counter.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            *counter.lock().unwrap() += batch.len() as u64;
            Ok::<_, unistream::Error>(())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::new(dir.path())
        .fsync(Fsync::Interval(Duration::from_millis(10)))
        .max_records(10);
    let mut sink = target.buffered_wal(config).await.unwrap();
    sink.send_all(&mut stream::iter(0..2_000u64).map(Ok))
        .await
        .unwrap();
    let mut committed_while_busy = Vec::new();
    while *delivered.lock().unwrap() < 1_500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let committed = sink.wal_stats().committed_lsn.0;
        if committed > 0 && committed < 2_000 {
            committed_while_busy.push(committed);
        }
    }
    // Positions persisted before delivery finished, and never far behind
    // it: about one interval (10 batches) plus the persist.
    assert!(
        committed_while_busy.len() >= 5,
        "commits while busy: {committed_while_busy:?}"
    );
    let behind = *delivered.lock().unwrap() - committed_while_busy.last().unwrap();
    assert!(
        behind <= 300,
        "committed position {behind} records behind delivery"
    );
    sink.close().await.unwrap();
    assert_eq!(*delivered.lock().unwrap(), 2_000);
    assert_eq!(sink.wal_stats().committed_lsn, Lsn(2_000));
}
