//! Enhanced fan-out against polling on kinesis-mock (started by the test
//! harness code), one fresh process, both modes in the same run, default
//! settings of each mode:
//!
//! - `emulator`: the emulator's own round trip, `PutRecords` of one record
//!   and `GetRecords` on an empty shard (p50), so the figures below can be
//!   read against it.
//! - `latency`: one shard; 200 records put one at a time 50 ms apart, each
//!   carrying its put time; put-to-delivery (the record handed out by the
//!   source's stream) p50 / p99.
//! - `throughput`: 4 shards of 5,000 records written before the start;
//!   time from `stream()` to the 20,000th record through
//!   `checkpoint_batched(1000, 1 s)` into a `MemoryCheckpointStore`
//!   (consumer registration and subscriptions included); records/s per
//!   shard.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use futures::{StreamExt, TryStreamExt};
use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore};
use unistream::kinesis::{EnhancedFanOut, KinesisSource, KinesisStream};

#[path = "../tests/support/mod.rs"]
mod test_support;
use test_support::emulators;
use test_support::kinesis::emulator_stream::{create_stream, put_ids};

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn source(client: &Client, name: &str, fan_out: bool) -> KinesisStream {
    let source = KinesisSource::from_client(client.clone(), name, MemoryCheckpointStore::new());
    if fan_out {
        source
            .enhanced_fan_out(EnhancedFanOut::new(format!("{name}-app")))
            .stream()
    } else {
        source.stream()
    }
}

async fn emulator_round_trips(client: &Client) {
    let name = emulators::unique_name("bench-rtt");
    create_stream(client, &name, 1).await;
    let mut puts = Vec::new();
    let mut gets = Vec::new();
    let iterator = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let mut iterator = Some(iterator);
    for _ in 0..50 {
        let t = Instant::now();
        let out = client
            .get_records()
            .shard_iterator(iterator.take().unwrap())
            .send()
            .await
            .unwrap();
        gets.push(t.elapsed());
        iterator = out.next_shard_iterator;
    }
    for i in 0..50 {
        let t = Instant::now();
        client
            .put_record()
            .stream_name(&name)
            .partition_key("k")
            .data(Blob::new(format!("{i}")))
            .send()
            .await
            .unwrap();
        puts.push(t.elapsed());
    }
    puts.sort();
    gets.sort();
    println!(
        "emulator: PutRecord p50 {:?}, GetRecords (empty) p50 {:?}",
        pct(&puts, 0.5),
        pct(&gets, 0.5)
    );
}

async fn latency(client: &Client, fan_out: bool) {
    let name = emulators::unique_name("bench-latency");
    create_stream(client, &name, 1).await;
    let mut stream = source(client, &name, fan_out);
    // Warm up: one record through, so the reader (and its subscription)
    // runs before the timed records are put.
    put_ids(client, &name, 0..1).await;
    stream.try_next().await.unwrap().unwrap();
    let producer = {
        let client = client.clone();
        let name = name.clone();
        tokio::spawn(async move {
            for _ in 0..200 {
                client
                    .put_record()
                    .stream_name(&name)
                    .partition_key("k")
                    .data(Blob::new(micros_now().to_string()))
                    .send()
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut lat = Vec::new();
    while lat.len() < 200 {
        let (record, _) = stream.try_next().await.unwrap().unwrap();
        let put: u64 = std::str::from_utf8(&record.data).unwrap().parse().unwrap();
        lat.push(Duration::from_micros(micros_now().saturating_sub(put)));
    }
    producer.await.unwrap();
    lat.sort();
    println!(
        "latency {}: p50 {:?} p99 {:?} max {:?} (n = {})",
        if fan_out { "fan-out" } else { "polling" },
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[lat.len() - 1],
        lat.len()
    );
}

async fn throughput(client: &Client, fan_out: bool) {
    const SHARDS: i32 = 4;
    const TOTAL: u64 = 20_000;
    let name = emulators::unique_name("bench-throughput");
    create_stream(client, &name, SHARDS).await;
    put_ids(client, &name, 0..TOTAL).await;
    let store = MemoryCheckpointStore::new();
    let start = Instant::now();
    let mut base = KinesisSource::from_client(client.clone(), &name, store.clone());
    if fan_out {
        base = base.enhanced_fan_out(EnhancedFanOut::new(format!("{name}-app")));
    }
    let mut stream = base
        .stream()
        .map_ok(|(_, token)| token)
        .checkpoint_batched(1000, Duration::from_secs(1), store.clone())
        .boxed();
    let mut n = 0u64;
    while n < TOTAL {
        stream.try_next().await.unwrap().unwrap();
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "throughput {}: {TOTAL} records in {secs:.2} s = {:.0} records/s per shard ({SHARDS} shards)",
        if fan_out { "fan-out" } else { "polling" },
        TOTAL as f64 / secs / SHARDS as f64
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conf = emulators::sdk_config(emulators::kinesis_mock()).await;
        let client = Client::new(&conf);
        emulator_round_trips(&client).await;
        for fan_out in [false, true] {
            latency(&client, fan_out).await;
        }
        for fan_out in [false, true] {
            throughput(&client, fan_out).await;
        }
    });
}
