//! Kinesis consumer throughput.
//!
//! - `mocked/*`: `KinesisSource` + `checkpoint_batched(1000, 1 s)` into a
//!   `MemoryCheckpointStore`, over a client whose `GetRecords` answers
//!   instantly (aws-smithy-mocks) with 10,000 canned records of 100 bytes.
//!   20 shards, one response each: 200,000 records per iteration, startup
//!   (ListShards, 20 iterators, 20 checkpoint loads) included. Target:
//!   ≥ 500,000 records/s.
//! - `emulator/*`: against moto (started by the test harness code),
//!   one shard of 10,000 records, the same `GetRecords` limit (10,000) and
//!   the same pacing (≥ 200 ms between call starts): a raw
//!   `GetShardIterator` + `GetRecords` loop that only counts records,
//!   versus `KinesisSource` (records converted, tokens made). Target ratio
//!   source/raw ≥ 0.9.

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{Record, ShardIteratorType};
use aws_sdk_kinesis::Client;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::future::ready;
use futures::{SinkExt, StreamExt, TryStreamExt};
use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore};
use unistream::kinesis::{KinesisRecord, KinesisSink, KinesisSource};

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::{process_cpu_time, runtime};

#[path = "../tests/support/mod.rs"]
mod test_support;
use test_support::emulators;
use test_support::kinesis::emulator_stream::create_stream;
use test_support::kinesis::fake_read_stream::FakeReadStream;

const SHARDS: usize = 20;
const PER_CALL: usize = 10_000;

/// A client of `SHARDS` in-process shards answering every `GetRecords`
/// at once with the same `PER_CALL` records of 100 bytes.
fn mocked_client() -> Client {
    let canned: Vec<Record> = (0..PER_CALL)
        .map(|i| {
            Record::builder()
                .sequence_number(format!(
                    "49590338271490256608559692538361571095921575989{i:09}"
                ))
                .partition_key(format!("key-{i}"))
                .data(Blob::new(vec![b'x'; 100]))
                .build()
                .unwrap()
        })
        .collect();
    FakeReadStream::canned(SHARDS, canned).client()
}

fn mocked(c: &mut Criterion) {
    let rt = runtime(2);
    let _guard = rt.enter();
    let client = mocked_client();
    let total = SHARDS * PER_CALL;
    let mut group = c.benchmark_group("kinesis_source/mocked");
    group.throughput(Throughput::Elements(total as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("wall/source_plus_checkpoint_batched/20_shards", |b| {
        b.to_async(&rt).iter(|| {
            let client = client.clone();
            async move {
                let store = MemoryCheckpointStore::new();
                let n = KinesisSource::from_client(client, "bench", store.clone())
                    .stream()
                    .take(total)
                    .checkpoint_batched(1000, Duration::from_secs(1), store)
                    .try_fold(0usize, |n, record| ready(Ok(n + record.data.len() / 100)))
                    .await
                    .unwrap();
                assert_eq!(n, total);
            }
        })
    });
    // The same work measured in CPU time of the whole process (the source's
    // tasks, the consumer, and the mocked SDK calls that build the canned
    // responses): records per CPU-second, independent of how much of the
    // shared machine's cores the process got.
    group.bench_function("cpu/source_plus_checkpoint_batched/20_shards", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let client = client.clone();
            async move {
                let start = process_cpu_time();
                for _ in 0..iters {
                    let store = MemoryCheckpointStore::new();
                    let n = KinesisSource::from_client(client.clone(), "bench", store.clone())
                        .stream()
                        .take(total)
                        .checkpoint_batched(1000, Duration::from_secs(1), store)
                        .try_fold(0usize, |n, record| ready(Ok(n + record.data.len() / 100)))
                        .await
                        .unwrap();
                    assert_eq!(n, total);
                }
                process_cpu_time() - start
            }
        })
    });
    group.finish();
}

const EMU_RECORDS: usize = 10_000;

async fn emulator_stream() -> (Client, String) {
    let conf = emulators::sdk_config(emulators::moto()).await;
    let client = Client::new(&conf);
    let name = emulators::unique_name("bench");
    create_stream(&client, &name, 1).await;
    // The sink paces to 1,000 records/s per shard and retries throttled
    // records, so every record lands.
    let mut sink =
        KinesisSink::from_client(client.clone(), name.as_str()).expect("a valid stream name");
    for batch in 0..EMU_RECORDS / 500 {
        let records = (0..500)
            .map(|i| KinesisRecord::new(vec![b'x'; 100], format!("key-{batch}-{i}")))
            .collect::<Vec<_>>();
        sink.send(records).await.unwrap();
    }
    sink.close().await.unwrap();
    (client, name)
}

/// What any correct consumer must do at least: iterate and page, paced at
/// 5 calls/s (start to start), counting records.
async fn raw_loop(client: &Client, stream: &str) -> usize {
    let shard = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .shards()[0]
        .shard_id()
        .to_owned();
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let mut seen = 0;
    let mut last: Option<tokio::time::Instant> = None;
    while seen < EMU_RECORDS {
        if let Some(last) = last {
            tokio::time::sleep_until(last + Duration::from_millis(200)).await;
        }
        last = Some(tokio::time::Instant::now());
        let out = client
            .get_records()
            .shard_iterator(&iterator)
            .limit(PER_CALL as i32)
            .send()
            .await
            .unwrap();
        seen += out
            .records()
            .iter()
            .filter(|r| !r.data().as_ref().is_empty())
            .count();
        iterator = out.next_shard_iterator.unwrap();
    }
    seen
}

fn emulator(c: &mut Criterion) {
    let rt = runtime(2);
    // Set up only when this group is selected (it takes ~10 s).
    if !std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .all(|f| "kinesis_source/emulator".contains(f.as_str()) || f.contains("emulator"))
    {
        return;
    }
    let (client, stream) = rt.block_on(emulator_stream());
    let mut group = c.benchmark_group("kinesis_source/emulator");
    group.throughput(Throughput::Elements(EMU_RECORDS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("raw_get_records_loop/1_shard", |b| {
        b.to_async(&rt).iter(|| async {
            assert_eq!(raw_loop(&client, &stream).await, EMU_RECORDS);
        })
    });
    group.bench_function("kinesis_source/1_shard", |b| {
        b.to_async(&rt)
            .iter(|| async { assert_eq!(source_read(&client, &stream).await, EMU_RECORDS) })
    });
    group.finish();

    // The emulator's response time and the shared machine's load swing
    // from one second to the next, so the two criterion runs above (one
    // after the other) can differ by ±50% either way. A paired measurement
    // is steadier: rounds alternate raw/source and source/raw, and the
    // ratio is of the summed times.
    let rounds = 10;
    let (mut raw, mut source) = (Duration::ZERO, Duration::ZERO);
    rt.block_on(async {
        for round in 0..rounds {
            for which in [round % 2, 1 - round % 2] {
                let start = std::time::Instant::now();
                if which == 0 {
                    assert_eq!(raw_loop(&client, &stream).await, EMU_RECORDS);
                    raw += start.elapsed();
                } else {
                    assert_eq!(source_read(&client, &stream).await, EMU_RECORDS);
                    source += start.elapsed();
                }
            }
        }
    });
    println!(
        "kinesis_source/emulator/paired ({rounds} alternating rounds of {EMU_RECORDS} records): \
         raw {:.0} records/s, source {:.0} records/s, source/raw throughput ratio {:.2}",
        (rounds * EMU_RECORDS) as f64 / raw.as_secs_f64(),
        (rounds * EMU_RECORDS) as f64 / source.as_secs_f64(),
        raw.as_secs_f64() / source.as_secs_f64()
    );
}

async fn source_read(client: &Client, stream: &str) -> usize {
    KinesisSource::from_client(client.clone(), stream, MemoryCheckpointStore::new())
        .stream()
        .take(EMU_RECORDS)
        .try_fold(0usize, |n, _| ready(Ok(n + 1)))
        .await
        .unwrap()
}

criterion_group!(benches, mocked, emulator);
criterion_main!(benches);
