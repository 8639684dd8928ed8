//! `KinesisSink` throughput (figures in BENCHMARKS.md, "Kinesis producer").
//!
//! - `mocked/*`: the real SDK client, with `aws-smithy-mocks` answering
//!   every `PutRecords` at once with one success per record of the request,
//!   each naming the shard the record's hash key falls in (so the sink's
//!   shard prediction is checked and holds), and `ListShards` with a stream
//!   of many shards so that the per-shard pacing (on, as by default) never
//!   binds. 100-byte records over 10,000 partition keys, ordered mode.
//!   `wal+sink/*` forwards N records through `buffered_wal`
//!   (`Fsync::Interval(10 ms)`) into the sink and closes it (encoding, the
//!   log, delivery, decoding, the sink, the final commit); `sink/*` hands
//!   the sink pre-built batches, isolating its own cost.
//! - `moto/*`: a local moto server on loopback, a fresh 8-shard stream per
//!   iteration (moto slows as a shard fills), 5,000 records of 100 bytes
//!   with distinct keys: a raw SDK `PutRecords` loop (500 records per call)
//!   against `KinesisSink` (paced as by default, and unpaced), alone and
//!   behind `buffered_wal`. Compare within one run only.
//!
//! The machine is shared (2 cores, other builds running), so beside
//! criterion's wall-clock figures each `mocked` case prints its process CPU
//! time per record (all threads: tokio workers, the WAL's), which other
//! load does not inflate. Like the wall-clock time, it covers the measured
//! part of an iteration only, not the building of its input records.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::operation::list_shards::ListShardsOutput;
use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
use aws_sdk_kinesis::types::{
    HashKeyRange, PutRecordsRequestEntry, PutRecordsResultEntry, SequenceNumberRange, Shard,
};
use aws_sdk_kinesis::Client;
use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, RuleMode};
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use futures::{stream, SinkExt, StreamExt};
use unistream::kinesis::{HashKey, KinesisCodec, KinesisRecord, KinesisSink};
use unistream::sink::{WalConfig, WalSinkExt};
use unistream::wal::Fsync;

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::{bench_dir, process_cpu_time, runtime};

#[path = "../tests/support/mod.rs"]
mod test_support;
use test_support::emulators;
use test_support::kinesis::emulator_stream::create_stream;

/// Wall and CPU time spent per bench id, over all of criterion's calls.
static SPENT: std::sync::Mutex<Vec<(String, u64, Duration, Duration)>> =
    std::sync::Mutex::new(Vec::new());

/// Wall and process CPU time of the measured part of one iteration.
struct Spent {
    wall: Duration,
    cpu: Duration,
}

/// Starts measuring; [`Stopwatch::stop`] gives what was spent since.
struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    fn start() -> Self {
        Self {
            cpu: process_cpu_time(),
            wall: Instant::now(),
        }
    }

    fn stop(self) -> Spent {
        let wall = self.wall.elapsed();
        Spent {
            wall,
            cpu: process_cpu_time() - self.cpu,
        }
    }
}

/// Runs `once` `iters` times; returns the wall time and notes the CPU time.
async fn timed<F, Fut>(label: &str, records: u64, iters: u64, once: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Spent>,
{
    let mut total = Duration::ZERO;
    let mut cpu = Duration::ZERO;
    for _ in 0..iters {
        let spent = once().await;
        total += spent.wall;
        cpu += spent.cpu;
    }
    let mut spent = SPENT.lock().expect("bench bookkeeping");
    match spent.iter_mut().find(|(l, ..)| l == label) {
        Some(entry) => {
            entry.1 += records * iters;
            entry.2 += total;
            entry.3 += cpu;
        }
        None => spent.push((label.to_owned(), records * iters, total, cpu)),
    }
    total
}

/// Prints records per wall-second and per CPU-second of every id so far
/// (criterion's warm-up included).
fn print_cpu_figures() {
    for (label, records, wall, cpu) in SPENT.lock().expect("bench bookkeeping").iter() {
        println!(
            "{label}: {records} records, {:.0} per wall-second, {:.0} per CPU-second ({:.2} us CPU per record)",
            *records as f64 / wall.as_secs_f64(),
            *records as f64 / cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / *records as f64,
        );
    }
}

/// 100 bytes of data under one of 10,000 keys.
fn record(i: u64) -> KinesisRecord {
    let mut data = format!("event {i} ").into_bytes();
    data.resize(100, b'x');
    KinesisRecord::new(data, format!("user-{}", i % 10_000))
}

/// `shards` even hash-key ranges: (start, id).
fn shard_layout(shards: u32) -> Vec<(u128, String)> {
    let width = u128::MAX / u128::from(shards);
    (0..shards)
        .map(|i| (width * u128::from(i), format!("shardId-{i:012}")))
        .collect()
}

/// A client whose `PutRecords` and `ListShards` are answered in process.
fn mocked_client(shards: u32) -> Client {
    let layout = shard_layout(shards);
    let listed: Vec<Shard> = layout
        .iter()
        .enumerate()
        .map(|(i, (start, id))| {
            let end = layout.get(i + 1).map_or(u128::MAX, |(next, _)| next - 1);
            Shard::builder()
                .shard_id(id)
                .hash_key_range(
                    HashKeyRange::builder()
                        .starting_hash_key(start.to_string())
                        .ending_hash_key(end.to_string())
                        .build()
                        .expect("range"),
                )
                .sequence_number_range(
                    SequenceNumberRange::builder()
                        .starting_sequence_number("0")
                        .build()
                        .expect("sequence range"),
                )
                .build()
                .expect("shard")
        })
        .collect();
    let list = mock!(aws_sdk_kinesis::Client::list_shards).then_compute_output(move |_| {
        ListShardsOutput::builder()
            .set_shards(Some(listed.clone()))
            .build()
    });
    let put = mock!(aws_sdk_kinesis::Client::put_records).then_compute_output(move |input| {
        let results = input
            .records()
            .iter()
            .map(|entry| {
                let key = match entry.explicit_hash_key() {
                    Some(explicit) => {
                        HashKey::parse_explicit(explicit).expect("valid explicit key")
                    }
                    None => HashKey::from_partition_key(entry.partition_key().unwrap_or_default()),
                };
                let shard = layout.partition_point(|(start, _)| *start <= key.value()) - 1;
                PutRecordsResultEntry::builder()
                    .shard_id(&layout[shard].1)
                    .sequence_number("49590338271490256608559692538361571095921575989136588898")
                    .build()
            })
            .collect();
        PutRecordsOutput::builder()
            .failed_record_count(0)
            .set_records(Some(results))
            .build()
            .expect("output")
    });
    let interceptor = MockResponseInterceptor::new()
        .rule_mode(RuleMode::MatchAny)
        .with_rule(&list)
        .with_rule(&put);
    Client::from_conf(
        aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("bench", "bench", None, None, "static"))
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build(),
    )
}

struct Case {
    name: &'static str,
    records: u64,
    shards: u32,
    aggregation: bool,
    max_records: usize,
}

const CASES: [Case; 2] = [
    Case {
        name: "plain",
        records: 200_000,
        shards: 1000,
        aggregation: false,
        max_records: 500,
    },
    Case {
        name: "aggregated",
        records: 1_000_000,
        shards: 256,
        aggregation: true,
        max_records: 20_000,
    },
];

fn sink_for(case: &Case) -> KinesisSink {
    KinesisSink::builder_from_client(mocked_client(case.shards), "bench")
        .aggregation(case.aggregation)
        .build()
        .expect("a valid stream name")
}

async fn wal_and_sink_once(case: &Case) -> Spent {
    let dir = bench_dir();
    let sink = sink_for(case);
    let metrics = sink.metrics();
    let records: Vec<KinesisRecord> = (0..case.records).map(record).collect();
    let config = WalConfig::new(dir.path())
        .codec(KinesisCodec)
        .fsync(Fsync::Interval(Duration::from_millis(10)))
        .max_records(case.max_records)
        .max_bytes(64 << 20);
    let stopwatch = Stopwatch::start();
    let wal = sink.buffered_wal(config).await.expect("open");
    stream::iter(records)
        .map(Ok)
        .forward(wal)
        .await
        .expect("forward");
    let spent = stopwatch.stop();
    let m = metrics.snapshot();
    assert_eq!(m.records_sent, case.records);
    assert_eq!(m.shard_mispredictions, 0);
    spent
}

async fn sink_alone_once(case: &Case) -> Spent {
    let mut sink = sink_for(case);
    let metrics = sink.metrics();
    let batches: Vec<Vec<KinesisRecord>> = (0..case.records)
        .map(record)
        .collect::<Vec<_>>()
        .chunks(case.max_records)
        .map(<[KinesisRecord]>::to_vec)
        .collect();
    let stopwatch = Stopwatch::start();
    for batch in batches {
        sink.send(batch).await.expect("send");
    }
    let spent = stopwatch.stop();
    assert_eq!(metrics.snapshot().records_sent, case.records);
    spent
}

fn mocked(c: &mut Criterion) {
    let rt = runtime(2);
    let mut group = c.benchmark_group("mocked");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    for case in &CASES {
        group.throughput(Throughput::Elements(case.records));
        group.bench_with_input(BenchmarkId::new("wal+sink", case.name), case, |b, case| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let label = format!("mocked/wal+sink/{}", case.name);
                timed(&label, case.records, iters, || wal_and_sink_once(case)).await
            })
        });
        group.bench_with_input(BenchmarkId::new("sink", case.name), case, |b, case| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let label = format!("mocked/sink/{}", case.name);
                timed(&label, case.records, iters, || sink_alone_once(case)).await
            })
        });
    }
    group.finish();
    print_cpu_figures();
}

const MOTO_RECORDS: u64 = 5_000;

/// Distinct keys: every writer fills 500-record calls.
fn moto_record(i: u64) -> KinesisRecord {
    let mut data = format!("event {i} ").into_bytes();
    data.resize(100, b'x');
    KinesisRecord::new(data, format!("k{i}"))
}

/// A new 8-shard stream on moto, active.
async fn fresh_stream(client: &Client) -> String {
    let name = emulators::unique_name("bench");
    create_stream(client, &name, 8).await;
    name
}

#[derive(Clone, Copy)]
enum Writer {
    Raw,
    Sink { paced: bool },
    WalSink,
}

async fn moto_once(client: &Client, writer: Writer) -> Duration {
    let name = fresh_stream(client).await;
    let records: Vec<KinesisRecord> = (0..MOTO_RECORDS).map(moto_record).collect();
    let dir = bench_dir();
    let start = Instant::now();
    match writer {
        Writer::Raw => {
            for chunk in records.chunks(500) {
                let entries = chunk
                    .iter()
                    .map(|r| {
                        PutRecordsRequestEntry::builder()
                            .data(aws_smithy_types::Blob::new(r.data.to_vec()))
                            .partition_key(&r.partition_key)
                            .build()
                            .expect("entry")
                    })
                    .collect();
                let out = client
                    .put_records()
                    .stream_name(&name)
                    .set_records(Some(entries))
                    .send()
                    .await
                    .expect("put_records");
                assert_eq!(out.failed_record_count(), Some(0));
            }
        }
        Writer::Sink { paced } => {
            let mut builder = KinesisSink::builder_from_client(client.clone(), name.as_str());
            if !paced {
                builder = builder.no_rate_limit();
            }
            let mut sink = builder.build().expect("a valid stream name");
            for chunk in records.chunks(500) {
                sink.send(chunk.to_vec()).await.expect("send");
            }
        }
        Writer::WalSink => {
            let wal = KinesisSink::builder_from_client(client.clone(), name.as_str())
                .build()
                .expect("a valid stream name")
                .buffered_wal(WalConfig::new(dir.path()).codec(KinesisCodec))
                .await
                .expect("open");
            stream::iter(records)
                .map(Ok)
                .forward(wal)
                .await
                .expect("forward");
        }
    }
    start.elapsed()
}

fn moto(c: &mut Criterion) {
    // Set up only when this group can be selected: it starts moto.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| f.contains("moto")) {
        return;
    }
    let rt = runtime(2);
    let moto = emulators::moto();
    let client = rt.block_on(async { Client::new(&emulators::sdk_config(moto).await) });
    let mut group = c.benchmark_group("moto");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(MOTO_RECORDS));
    let writers = [
        ("raw_put_records", Writer::Raw),
        ("sink_paced", Writer::Sink { paced: true }),
        ("sink_unpaced", Writer::Sink { paced: false }),
        ("wal+sink_paced", Writer::WalSink),
    ];
    for (name, writer) in writers {
        let client = &client;
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += moto_once(client, writer).await;
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, mocked, moto);
criterion_main!(benches);
