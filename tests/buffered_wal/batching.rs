//! `buffered_wal` batching: by record count, by encoded bytes, by age (with
//! paused time), and `close` delivering everything, in order.

use std::time::Duration;

use futures::{stream, SinkExt, StreamExt};
use tokio::time::Instant;
use unistream::sink::{MemorySink, WalConfig, WalSinkExt};
use unistream::RawCodec;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn batches_hold_at_most_max_records_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let sink = target
        .buffered_wal(WalConfig::new(dir.path()).max_records(7).max_age(HOUR))
        .await
        .unwrap();

    stream::iter(0..100u64).map(Ok).forward(sink).await.unwrap();

    let batches = delivered.batches();
    assert_eq!(delivered.records(), (0..100).collect::<Vec<_>>());
    assert!(batches.iter().all(|b| b.len() <= 7), "{batches:?}");
    // 100 records cannot travel in fewer than 15 batches of at most 7.
    assert!(batches.len() >= 15, "{} batches", batches.len());
}

#[tokio::test(start_paused = true)]
async fn batches_are_full_when_the_backlog_reaches_max_records() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let mut sink = target
        .buffered_wal(WalConfig::new(dir.path()).max_records(10).max_age(HOUR))
        .await
        .unwrap();

    // Nine records: below every trigger (max_age is an hour), so nothing
    // is delivered while we wait for the tenth.
    for i in 0..9u64 {
        sink.feed(i).await.unwrap();
    }
    sink.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(delivered.record_count(), 0);

    sink.send(9).await.unwrap();
    delivered.wait_for_records(10).await;
    assert_eq!(delivered.batches(), vec![(0..10).collect::<Vec<_>>()]);
    sink.close().await.unwrap();
}

#[tokio::test]
async fn max_bytes_counts_encoded_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<Vec<u8>>::new();
    let delivered = target.handle();
    // Raw records of 100 bytes: 3 fit in 350 encoded bytes, a 4th does not.
    let sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .codec(RawCodec)
                .max_records(1000)
                .max_bytes(350)
                .max_age(HOUR),
        )
        .await
        .unwrap();

    let records: Vec<Vec<u8>> = (0..30u8).map(|i| vec![i; 100]).collect();
    stream::iter(records.clone())
        .map(Ok)
        .forward(sink)
        .await
        .unwrap();

    let batches = delivered.batches();
    assert_eq!(delivered.records(), records);
    for batch in &batches {
        let bytes: usize = batch.iter().map(Vec::len).sum();
        assert!(bytes <= 350, "a batch of {bytes} encoded bytes");
    }
    assert!(batches.len() >= 10, "{} batches", batches.len());
}

#[tokio::test]
async fn a_record_larger_than_max_bytes_travels_alone() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<Vec<u8>>::new();
    let delivered = target.handle();
    let sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .codec(RawCodec)
                .max_bytes(10)
                .max_age(HOUR),
        )
        .await
        .unwrap();
    let records = vec![vec![1u8; 3], vec![2u8; 50], vec![3u8; 3]];
    stream::iter(records.clone())
        .map(Ok)
        .forward(sink)
        .await
        .unwrap();
    assert_eq!(delivered.records(), records);
    assert!(delivered.batches().contains(&vec![vec![2u8; 50]]));
}

#[tokio::test(start_paused = true)]
async fn age_based_delivery_while_the_caller_is_idle() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let max_age = Duration::from_millis(200);
    let mut sink = target
        .buffered_wal(WalConfig::new(dir.path()).max_age(max_age))
        .await
        .unwrap();

    sink.feed(1).await.unwrap();
    sink.feed(2).await.unwrap();
    sink.flush().await.unwrap();
    let acknowledged = Instant::now();

    // The caller now does nothing. Just before max_age nothing has moved...
    tokio::time::sleep(max_age - Duration::from_millis(1)).await;
    assert_eq!(delivered.record_count(), 0);

    // ...and at max_age the batch is delivered without any call on the sink.
    delivered.wait_for_records(2).await;
    let at = acknowledged.elapsed();
    assert!(at >= max_age, "delivered after {at:?}");
    assert!(
        at < max_age + Duration::from_millis(50),
        "delivered after {at:?}"
    );
    assert_eq!(delivered.batches(), vec![vec![1, 2]]);

    // A new record starts a new linger period.
    sink.send(3).await.unwrap();
    let sent = Instant::now();
    delivered.wait_for_records(3).await;
    assert!(sent.elapsed() >= max_age);
    sink.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn close_delivers_without_waiting_for_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let mut sink = target
        .buffered_wal(WalConfig::new(dir.path()).max_age(HOUR))
        .await
        .unwrap();
    sink.send(1).await.unwrap();
    let start = Instant::now();
    sink.close().await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(delivered.records(), vec![1]);
    assert_eq!(sink.wal_stats().committed_lsn, sink.wal_stats().next_lsn);
}

#[tokio::test]
async fn concurrent_clones_each_deliver_in_their_own_order() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<(u32, u32)>::new();
    let delivered = target.handle();
    let sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .max_records(50)
                .max_age(Duration::from_millis(5)),
        )
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for sender in 0..8u32 {
        let mut sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200u32 {
                sink.send((sender, i)).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut sink = sink;
    sink.close().await.unwrap();

    let records = delivered.records();
    assert_eq!(records.len(), 8 * 200);
    for sender in 0..8u32 {
        let mine: Vec<u32> = records
            .iter()
            .filter(|(s, _)| *s == sender)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(mine, (0..200).collect::<Vec<_>>(), "sender {sender}");
    }
}

#[tokio::test]
async fn an_unencodable_record_is_refused_alone() {
    use std::collections::HashMap;
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<HashMap<Vec<u8>, u8>>::new();
    let delivered = target.handle();
    let mut sink = target
        .buffered_wal(WalConfig::new(dir.path()))
        .await
        .unwrap();
    let good: HashMap<Vec<u8>, u8> = HashMap::new();
    let bad = HashMap::from([(vec![1u8], 1u8)]); // JSON keys must be strings

    sink.feed(good.clone()).await.unwrap();
    let err = sink.feed(bad).await.unwrap_err();
    assert!(matches!(err, unistream::Error::Codec(_)), "{err:?}");
    sink.feed(good.clone()).await.unwrap();
    sink.close().await.unwrap();
    assert_eq!(delivered.records(), vec![good.clone(), good]);
}

#[tokio::test]
async fn a_record_too_large_for_the_log_is_refused_alone() {
    use unistream::wal::WalError;
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<Vec<u8>>::new();
    let delivered = target.handle();
    let mut sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .codec(RawCodec)
                .segment_bytes(4096),
        )
        .await
        .unwrap();
    sink.feed(vec![1u8; 10]).await.unwrap();
    let err = sink.feed(vec![2u8; 10_000]).await.unwrap_err();
    assert!(
        matches!(
            err,
            unistream::Error::Wal(WalError::RecordTooLarge { bytes: 10_000, .. })
        ),
        "{err:?}"
    );
    sink.feed(vec![3u8; 10]).await.unwrap();
    sink.close().await.unwrap();
    assert_eq!(delivered.records(), vec![vec![1u8; 10], vec![3u8; 10]]);
}

#[tokio::test(start_paused = true)]
async fn a_large_backlog_goes_out_in_full_batches_and_the_rest_waits() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    delivered.stall();
    let mut sink = target
        .buffered_wal(WalConfig::new(dir.path()).max_records(10).max_age(HOUR))
        .await
        .unwrap();
    for i in 0..25u64 {
        sink.feed(i).await.unwrap();
    }
    sink.flush().await.unwrap();

    // Two full batches are due; the last five records are not (max_age is
    // an hour away), even though the log holds them all.
    delivered.resume();
    delivered.wait_for_records(20).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        delivered.batches(),
        vec![(0..10).collect::<Vec<_>>(), (10..20).collect()]
    );

    sink.close().await.unwrap();
    assert_eq!(delivered.batches().last(), Some(&(20..25).collect()));
}
