//! Appended records held in memory for the delivery
//! (`WalConfig::max_held_bytes`): a delivery that keeps up hands the target
//! the values that were sent instead of decoding them from the log; what was
//! not held is decoded; either way every record arrives once, in order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{stream, SinkExt, StreamExt};
use unistream::codec::CodecError;
use unistream::sink::{MemorySink, WalConfig, WalSinkExt};
use unistream::{Codec, JsonCodec};

/// JSON that counts its decodes.
#[derive(Clone, Default)]
struct CountingJson(Arc<AtomicU64>);

impl CountingJson {
    fn decodes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Codec<u64> for CountingJson {
    fn encode(&self, item: &u64, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        JsonCodec.encode(item, buf)
    }
    fn decode(&self, bytes: &[u8]) -> Result<u64, CodecError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        JsonCodec.decode(bytes)
    }
}

const RECORDS: u64 = 100_000;

/// Forwards records `0..RECORDS` through `buffered_wal(config)` (with a
/// counting codec) into a `MemorySink`: what it delivered, and how many
/// records were decoded.
async fn forward_all(config: impl FnOnce(WalConfig) -> WalConfig) -> (Vec<u64>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let codec = CountingJson::default();
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let sink = target
        .buffered_wal(config(WalConfig::new(dir.path())).codec(codec.clone()))
        .await
        .unwrap();
    stream::iter(0..RECORDS)
        .map(Ok)
        .forward(sink)
        .await
        .unwrap();
    (delivered.records(), codec.decodes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_keeps_up_decodes_nothing() {
    let (delivered, decodes) = forward_all(|config| config).await;
    assert_eq!(delivered, (0..RECORDS).collect::<Vec<_>>());
    // The log's writer hands each append's records over before it
    // publishes the append, so the delivery never reads one that is not
    // held (far below the bound here). Without them, every record is
    // decoded.
    assert_eq!(decodes, 0, "records decoded");
}

#[tokio::test]
async fn with_nothing_held_every_record_is_decoded_once() {
    let (delivered, decodes) = forward_all(|config| config.max_held_bytes(0)).await;
    assert_eq!(delivered, (0..RECORDS).collect::<Vec<_>>());
    assert_eq!(decodes, RECORDS);
}

#[tokio::test]
async fn a_delivery_further_behind_than_the_bound_decodes_the_rest_and_keeps_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let codec = CountingJson::default();
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    delivered.stall();
    // Records 0..5,000 take 18,890 encoded bytes; at most 2,000 are held.
    let mut sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .codec(codec.clone())
                .max_held_bytes(2_000),
        )
        .await
        .unwrap();
    // Appends of 100 records (about 390 bytes): a few of them fit.
    for chunk in (0..5_000u64).collect::<Vec<_>>().chunks(100) {
        sink.send_all(&mut stream::iter(chunk.iter().copied().map(Ok)))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    delivered.resume();
    sink.close().await.unwrap();

    assert_eq!(delivered.records(), (0..5_000).collect::<Vec<_>>());
    let decodes = codec.decodes();
    assert!(
        decodes > 0 && decodes < 5_000,
        "{decodes} of 5,000 records decoded: some held, the rest decoded"
    );
}

#[tokio::test]
async fn records_recovered_at_open_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let stuck = MemorySink::<u64>::new();
    stuck.handle().stall();
    let mut sink = stuck
        .buffered_wal(WalConfig::new(dir.path()))
        .await
        .unwrap();
    sink.send_all(&mut stream::iter(0..1_000u64).map(Ok))
        .await
        .unwrap();
    drop(sink);

    let codec = CountingJson::default();
    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let mut sink = target
        .buffered_wal(WalConfig::new(dir.path()).codec(codec.clone()))
        .await
        .unwrap();
    sink.close().await.unwrap();
    assert_eq!(delivered.records(), (0..1_000).collect::<Vec<_>>());
    assert_eq!(codec.decodes(), 1_000);
}
