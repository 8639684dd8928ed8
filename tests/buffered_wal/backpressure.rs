//! `buffered_wal` against a stuck target with a small log cap: senders wait
//! (or fail, by configuration), memory and disk stay bounded, and nothing is
//! lost once the target recovers.

use std::time::Duration;

use futures::SinkExt;
use unistream::sink::{MemorySink, WalConfig, WalSinkExt};
use unistream::wal::{Lsn, WhenFull};
use unistream::{Error, RawCodec};

const CAP: u64 = 16 * 1024;
const MAX_RECORDS: usize = 8;

fn record(i: u32) -> Vec<u8> {
    let mut bytes = i.to_be_bytes().to_vec();
    bytes.resize(100, b'x');
    bytes
}

fn config(dir: &std::path::Path) -> WalConfig<RawCodec> {
    WalConfig::new(dir)
        .codec(RawCodec)
        .segment_bytes(2048)
        .max_wal_bytes(CAP)
        .max_records(MAX_RECORDS)
        .max_age(Duration::ZERO)
}

#[tokio::test(start_paused = true)]
async fn senders_wait_at_the_cap_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<Vec<u8>>::new();
    let delivered = target.handle();
    delivered.stall();
    let mut sink = target.buffered_wal(config(dir.path())).await.unwrap();

    // Send until a send has waited for a (virtual) minute: the log is full.
    let mut acknowledged = 0u32;
    loop {
        let send = sink.send(record(acknowledged));
        match tokio::time::timeout(Duration::from_secs(60), send).await {
            Ok(result) => result.unwrap(),
            Err(_elapsed) => break,
        }
        acknowledged += 1;
        assert!(acknowledged < 10_000, "the cap never pushed back");
    }
    let stats = sink.wal_stats();
    assert!(
        stats.bytes_on_disk <= CAP,
        "{} bytes on disk",
        stats.bytes_on_disk
    );
    // The record of the blocked send is in the append waiting for space,
    // not piling up in memory.
    assert_eq!(sink.buffered_records(), 0);
    // Roughly a cap's worth of 100-byte records got in, not more.
    assert!(
        u64::from(acknowledged) * 100 <= CAP,
        "{acknowledged} records"
    );
    assert!(acknowledged > 0);

    // Still waiting an hour later: backpressure, not a lost wake-up.
    let blocked = sink.send(record(acknowledged + 1));
    assert!(tokio::time::timeout(Duration::from_secs(3600), blocked)
        .await
        .is_err());
    assert!(sink.wal_stats().bytes_on_disk <= CAP);

    // The target recovers: everything acknowledged (and the two blocked
    // sends, which were accepted) is delivered, in order.
    delivered.resume();
    sink.close().await.unwrap();
    let expected: Vec<Vec<u8>> = (0..=acknowledged + 1).map(record).collect();
    assert_eq!(delivered.records(), expected);
}

#[tokio::test(start_paused = true)]
async fn senders_get_an_error_at_the_cap_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<Vec<u8>>::new();
    let delivered = target.handle();
    delivered.stall();
    let mut sink = target
        .buffered_wal(config(dir.path()).when_full(WhenFull::Error))
        .await
        .unwrap();

    let mut acknowledged = 0u32;
    let err = loop {
        match sink.send(record(acknowledged)).await {
            Ok(()) => acknowledged += 1,
            Err(err) => break err,
        }
        assert!(acknowledged < 10_000, "the cap never pushed back");
    };
    assert!(matches!(err, Error::Wal(_)), "{err:?}");
    assert!(sink.wal_stats().bytes_on_disk <= CAP);
    assert!(acknowledged > 0);

    // The refused record was not acknowledged and is not delivered; once
    // the target drained the log and the commit freed its space, sending
    // works again.
    delivered.resume();
    delivered.wait_for_records(acknowledged as usize).await;
    while sink.wal_stats().committed_lsn < Lsn(u64::from(acknowledged)) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    sink.send(record(acknowledged)).await.unwrap();
    sink.close().await.unwrap();
    let expected: Vec<Vec<u8>> = (0..=acknowledged).map(record).collect();
    assert_eq!(delivered.records(), expected);
}

#[tokio::test]
async fn the_local_buffer_is_bounded_by_max_bytes_without_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemorySink::<Vec<u8>>::new();
    let delivered = target.handle();
    let mut sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .codec(RawCodec)
                .max_bytes(1000)
                .max_age(Duration::ZERO),
        )
        .await
        .unwrap();
    let mut peak = 0;
    for i in 0..5_000u32 {
        sink.feed(record(i)).await.unwrap(); // no flush: only poll_ready drains
        peak = peak.max(sink.buffered_bytes());
    }
    // Filled to max_bytes (ten 100-byte records), then appended.
    assert_eq!(peak, 1000);
    sink.close().await.unwrap();
    assert_eq!(delivered.record_count(), 5_000);
}
