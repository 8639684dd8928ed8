//! `KinesisSink` pacing and calls in flight against the local Kinesis stub
//! (`tests/support/kinesis/stub`), which answers after a round trip and
//! counts each shard's records and bytes on arrival in fixed one-second
//! windows, refusing the excess record by record as Kinesis does (figures
//! in BENCHMARKS.md, "Kinesis producer: pacing against the stub").
//!
//! - `limits/*` and `latency/*`: timed runs, not criterion loops (a share
//!   of a limit is a steady-state rate: each case runs for its seconds,
//!   and the stub's windows after a warm-up are counted). Per case: the
//!   share of the stream's record limit (plain) or byte limit (aggregated)
//!   accepted, the share of record attempts throttled, and CPU per user
//!   record of the producers (the process's CPU time less the stub's own
//!   thread's).
//!   Batches handed to the sink directly are fed (`feed`, one `flush` at
//!   the end), so the sink takes a batch while earlier ones are delivered.
//!   - `limits/*`: default sink settings, one producer or two sharing the
//!     stream (two sinks, no coordination), 1 and 4 shards, 5 ms round
//!     trips with up to 2 ms of jitter each way; `limits/wal/*` the same
//!     behind `buffered_wal` with its defaults.
//!   - `latency/*`: 20 ms round trips (up to 5 ms jitter each way), 4, 16
//!     and 64 shards, one sink with its default eight calls in flight;
//!     ordered against unordered mode with only ten keys; and `latency/wal/*`
//!     through `buffered_wal` with its default batches of 500 records
//!     against bigger ones.
//! - `unthrottled/*` (criterion): the stub without limits and without
//!   latency; 200,000 records of 100 bytes over 10,000 keys, 1,000 shards
//!   (so that the sink's pacing never binds): a
//!   raw SDK loop keeping eight `PutRecords` of 500 records in flight,
//!   against `KinesisSink` (default settings: ordered, paced, eight calls)
//!   fed batches of 4,000.
//!
//! The stub runs on its own single-thread runtime (its CPU time is measured
//! apart), the producers on a two-worker runtime. Select groups by name:
//! `cargo bench --features kinesis --bench kinesis_pacing -- limits`.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use criterion::{Criterion, SamplingMode, Throughput};
use futures::SinkExt;
use unistream::kinesis::{KinesisCodec, KinesisRecord, KinesisSink};
use unistream::sink::{WalConfig, WalSinkExt};

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::{process_cpu_time, runtime, thread_cpu_time};

#[path = "../tests/support/mod.rs"]
mod test_support;
use test_support::kinesis::stub::{KinesisStub, StubConfig};

/// One timed case.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    shards: u32,
    producers: usize,
    aggregated: bool,
    /// Ordered mode (the default).
    ordered: bool,
    /// Bytes of data per user record.
    record_bytes: usize,
    /// Partition keys per producer.
    keys: u64,
    /// User records per batch handed to the sink.
    batch: usize,
    /// Clones of each producer's sink, each sending its own batches
    /// (sharing the sink's shard map and pacing; no order between them).
    clones: usize,
    /// Through `buffered_wal` (`KinesisCodec`, `max_records(batch)`, a
    /// 16 MiB log) rather than batches sent to the sink directly.
    wal: bool,
    round_trip: Duration,
    jitter: Duration,
    warm_up: Duration,
    measured: Duration,
}

const fn plain(name: &'static str, shards: u32, producers: usize) -> Case {
    Case {
        name,
        shards,
        producers,
        aggregated: false,
        ordered: true,
        record_bytes: 100,
        keys: 10_000,
        batch: 500,
        clones: 1,
        wal: false,
        round_trip: Duration::from_millis(5),
        jitter: Duration::from_millis(2),
        warm_up: Duration::from_secs(4),
        // A paced shard sends 1,000 records per 1.025 s: its bursts drift
        // through the stub's one-second windows by 25 ms a second, so only
        // a whole 40-second drift keeps one window too many or too few
        // from biasing the share.
        measured: Duration::from_secs(40),
    }
}

const fn aggregated(name: &'static str, shards: u32, producers: usize) -> Case {
    Case {
        aggregated: true,
        // 2,000 records of 500 bytes fill a shard's 1 MiB/s: the byte limit
        // binds, the record limit (1,000 aggregates/s) never does.
        record_bytes: 500,
        ..plain(name, shards, producers)
    }
}

const fn far(case: Case, batch: usize) -> Case {
    Case {
        // Keys sent in turn load each shard in proportion to its share of
        // them: 10,000 keys over 64 shards give the fullest shard 1.2 times
        // the mean, which caps any in-order producer at 83 % of the stream
        // (the `key-spread ceiling` column); a million keys at 98 %.
        keys: 1_000_000,
        round_trip: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        batch,
        ..case
    }
}

const LIMITS: [Case; 16] = [
    plain("limits/plain/1-shard/1-producer", 1, 1),
    plain("limits/plain/4-shards/1-producer", 4, 1),
    plain("limits/plain/1-shard/2-producers", 1, 2),
    plain("limits/plain/4-shards/2-producers", 4, 2),
    aggregated("limits/aggregated/1-shard/1-producer", 1, 1),
    aggregated("limits/aggregated/4-shards/1-producer", 4, 1),
    aggregated("limits/aggregated/1-shard/2-producers", 1, 2),
    aggregated("limits/aggregated/4-shards/2-producers", 4, 2),
    // The same behind `buffered_wal` with its defaults (batches of 500).
    through_wal(plain("limits/wal/plain/1-shard/1-producer", 1, 1)),
    through_wal(plain("limits/wal/plain/4-shards/1-producer", 4, 1)),
    through_wal(plain("limits/wal/plain/1-shard/2-producers", 1, 2)),
    through_wal(plain("limits/wal/plain/4-shards/2-producers", 4, 2)),
    through_wal(aggregated("limits/wal/aggregated/1-shard/1-producer", 1, 1)),
    through_wal(aggregated(
        "limits/wal/aggregated/4-shards/1-producer",
        4,
        1,
    )),
    through_wal(aggregated(
        "limits/wal/aggregated/1-shard/2-producers",
        1,
        2,
    )),
    through_wal(aggregated(
        "limits/wal/aggregated/4-shards/2-producers",
        4,
        2,
    )),
];

/// Batches big enough to keep every shard busy through a 20 ms round
/// trip (a batch's last call is answered before the next batch starts).
const fn few_keys(case: Case, ordered: bool) -> Case {
    Case {
        keys: 10,
        ordered,
        ..case
    }
}

const fn clones(case: Case, clones: usize) -> Case {
    Case { clones, ..case }
}

const fn through_wal(case: Case) -> Case {
    Case { wal: true, ..case }
}

const LATENCY: [Case; 21] = [
    far(plain("latency/plain/4-shards", 4, 1), 4_000),
    far(plain("latency/plain/16-shards", 16, 1), 4_000),
    far(plain("latency/plain/64-shards", 64, 1), 16_000),
    far(aggregated("latency/aggregated/4-shards", 4, 1), 10_000),
    far(aggregated("latency/aggregated/16-shards", 16, 1), 40_000),
    far(aggregated("latency/aggregated/64-shards", 64, 1), 160_000),
    // Fed batches share the calls in flight, and a shard's records of a
    // later batch join its last aggregate while that waits, so batches of
    // the default size do as well.
    far(
        aggregated("latency/aggregated/4-shards/batches-of-500", 4, 1),
        500,
    ),
    far(
        aggregated("latency/aggregated/16-shards/batches-of-500", 16, 1),
        500,
    ),
    far(
        aggregated("latency/aggregated/64-shards/batches-of-500", 64, 1),
        500,
    ),
    // A batch ends with its most loaded shard: bigger batches, or clones
    // of the sink each with a batch of its own, even the load out.
    far(
        plain("latency/plain/64-shards/batches-of-64000", 64, 1),
        64_000,
    ),
    clones(
        far(
            plain("latency/plain/64-shards/4-clones-unordered", 64, 1),
            16_000,
        ),
        4,
    ),
    clones(
        far(
            aggregated("latency/aggregated/64-shards/4-clones-unordered", 64, 1),
            160_000,
        ),
        4,
    ),
    // Ordered mode with ten keys: one record per key per call without
    // aggregation, one aggregate per shard per call with it.
    few_keys(
        far(plain("latency/plain/4-shards/10-keys", 4, 1), 4_000),
        true,
    ),
    few_keys(
        far(
            plain("latency/plain/4-shards/10-keys/unordered", 4, 1),
            4_000,
        ),
        false,
    ),
    few_keys(
        far(
            aggregated("latency/aggregated/4-shards/10-keys", 4, 1),
            10_000,
        ),
        true,
    ),
    // Behind `buffered_wal`: its default batches of 500 records are one
    // call each, so the calls in flight need bigger batches.
    through_wal(far(
        plain("latency/wal/plain/16-shards/batches-of-500", 16, 1),
        500,
    )),
    through_wal(far(
        plain("latency/wal/plain/16-shards/batches-of-4000", 16, 1),
        4_000,
    )),
    through_wal(far(
        plain("latency/wal/plain/64-shards/batches-of-500", 64, 1),
        500,
    )),
    through_wal(far(
        plain("latency/wal/plain/64-shards/batches-of-16000", 64, 1),
        16_000,
    )),
    // Aggregated behind `buffered_wal` with its defaults: a shard's records
    // of later batches join its last aggregate while it waits.
    through_wal(far(
        aggregated("latency/wal/aggregated/16-shards/batches-of-500", 16, 1),
        500,
    )),
    through_wal(far(
        aggregated("latency/wal/aggregated/64-shards/batches-of-500", 64, 1),
        500,
    )),
];

/// What one case measured.
struct Row {
    name: &'static str,
    used: f64,
    /// The most a producer sending the case's keys in turn can use: the
    /// mean shard's share of the keys over the largest share (a shard's
    /// records arrive in proportion to its keys, and the fullest shard
    /// sets the pace for all).
    ceiling: f64,
    throttled: f64,
    user_records_per_sec: f64,
    cpu_per_record: Duration,
    stub_cpu_share: f64,
}

fn record(producer: usize, i: u64, case: &Case) -> KinesisRecord {
    let key = format!("p{producer}-k{}", i % case.keys);
    let mut data = format!("{key}/{i:012}/").into_bytes();
    data.resize(case.record_bytes.max(data.len()), b'.');
    KinesisRecord::new(data, key)
}

/// Sends batches until `until` from each clone of one sink; returns the
/// user records sent.
async fn produce(
    client: Client,
    stream: String,
    producer: usize,
    case: Case,
    until: Instant,
) -> u64 {
    let sink = KinesisSink::builder_from_client(client, stream)
        .aggregation(case.aggregated)
        .ordered(case.ordered && case.clones == 1)
        .build()
        .expect("sink");
    if case.wal {
        return produce_through_wal(sink, producer, case, until).await;
    }
    let clones = (0..case.clones).map(|clone| {
        let mut sink = sink.clone();
        async move {
            let mut sent = 0u64;
            let mut i = clone as u64;
            while Instant::now() < until {
                let batch: Vec<KinesisRecord> = (0..case.batch)
                    .map(|_| {
                        i += case.clones as u64;
                        record(producer, i, &case)
                    })
                    .collect();
                // Fed, not flushed: the sink takes the next batch while
                // the previous ones are still being delivered.
                sink.feed(batch).await.expect("feed");
                sent += case.batch as u64;
            }
            sink.flush().await.expect("flush");
            sent
        }
    });
    futures::future::join_all(clones).await.into_iter().sum()
}

/// Forwards records through `buffered_wal` into `sink` until `until`, then
/// closes it (delivering the log's backlog); returns the records accepted.
async fn produce_through_wal(
    sink: KinesisSink,
    producer: usize,
    case: Case,
    until: Instant,
) -> u64 {
    let dir = support::bench_dir();
    let mut wal = sink
        .buffered_wal(
            WalConfig::new(dir.path().join("wal"))
                .codec(KinesisCodec)
                .max_records(case.batch)
                // Backpressure: the producer outruns the stream; the log
                // holds a few seconds of it at most.
                .max_wal_bytes(16 << 20)
                .segment_bytes(1 << 20),
        )
        .await
        .expect("open wal");
    let mut sent = 0u64;
    while Instant::now() < until {
        let records = (0..case.batch as u64).map(|n| Ok(record(producer, sent + n, &case)));
        wal.send_all(&mut futures::stream::iter(records))
            .await
            .expect("send");
        sent += case.batch as u64;
    }
    wal.close().await.expect("close");
    sent
}

fn run_case(case: &Case) -> Row {
    let stub_rt = runtime(1);
    let producers_rt = runtime(2);
    let stub = stub_rt
        .block_on(KinesisStub::start(
            StubConfig::new(case.shards)
                .round_trip(case.round_trip, case.jitter, 42)
                .keep_records(false),
        ))
        .expect("stub");
    let stub_cpu = || {
        stub_rt
            .block_on(stub_rt.spawn(async { thread_cpu_time() }))
            .expect("stub thread")
    };
    let began = Instant::now();
    let measure_from = began + case.warm_up;
    let until = measure_from + case.measured;
    // The stub's windows started with it (just before `began`); count the
    // whole windows inside the measured span.
    let first_window = case.warm_up.as_secs() + 1;
    let last_window = (case.warm_up + case.measured).as_secs();
    let (cpu_before, stub_before) = (process_cpu_time(), stub_cpu());
    let sent: u64 = producers_rt.block_on(async {
        let tasks: Vec<_> = (0..case.producers)
            .map(|p| tokio::spawn(produce(stub.client(), stub.stream(), p, *case, until)))
            .collect();
        let mut sent = 0;
        for task in tasks {
            sent += task.await.expect("producer");
        }
        sent
    });
    let elapsed = began.elapsed();
    let (cpu, stub_cpu) = (process_cpu_time() - cpu_before, stub_cpu() - stub_before);
    let mut accepted_records = 0u64;
    let mut accepted_bytes = 0u64;
    let mut throttled = 0u64;
    for (_, windows) in stub.windows_by_shard() {
        for w in windows
            .iter()
            .filter(|w| (first_window..last_window).contains(&w.index))
        {
            accepted_records += w.records;
            accepted_bytes += w.bytes;
            throttled += w.throttled;
        }
    }
    let windows = (last_window - first_window) as f64;
    let shards = f64::from(case.shards);
    let used = if case.aggregated {
        accepted_bytes as f64 / (1024.0 * 1024.0 * shards * windows)
    } else {
        accepted_records as f64 / (1000.0 * shards * windows)
    };
    let producer_cpu = cpu.saturating_sub(stub_cpu);
    Row {
        name: case.name,
        used,
        ceiling: key_spread_ceiling(case),
        throttled: throttled as f64 / (accepted_records + throttled).max(1) as f64,
        user_records_per_sec: sent as f64 / elapsed.as_secs_f64(),
        cpu_per_record: producer_cpu.div_f64(sent.max(1) as f64),
        stub_cpu_share: stub_cpu.as_secs_f64() / elapsed.as_secs_f64(),
    }
}

/// See [`Row::ceiling`]; shards split the hash key range evenly, as the
/// stub's do.
fn key_spread_ceiling(case: &Case) -> f64 {
    let width = u128::MAX / u128::from(case.shards);
    let mut keys_per_shard = vec![0u64; case.shards as usize];
    for producer in 0..case.producers {
        for k in 0..case.keys {
            let key = format!("p{producer}-k{k}");
            let hash = unistream::kinesis::HashKey::from_partition_key(&key).value();
            let shard = ((hash / width) as usize).min(case.shards as usize - 1);
            keys_per_shard[shard] += 1;
        }
    }
    let total: u64 = keys_per_shard.iter().sum();
    let max = keys_per_shard.iter().copied().max().unwrap_or(0).max(1);
    total as f64 / f64::from(case.shards) / max as f64
}

fn timed_group(cases: &[Case], filters: &[String]) {
    let chosen: Vec<&Case> = cases
        .iter()
        .filter(|case| filters.is_empty() || filters.iter().any(|f| case.name.contains(f.as_str())))
        .collect();
    if chosen.is_empty() {
        return;
    }
    println!("| case | limit used | key-spread ceiling | attempts throttled | user records/s (whole run) | producer CPU per user record | stub CPU (cores) |");
    println!("|---|---|---|---|---|---|---|");
    for case in chosen {
        let row = run_case(case);
        println!(
            "| `{}` | {:.1} % | {:.1} % | {:.2} % | {:.0} | {:.2} µs | {:.2} |",
            row.name,
            row.used * 100.0,
            row.ceiling * 100.0,
            row.throttled * 100.0,
            row.user_records_per_sec,
            row.cpu_per_record.as_secs_f64() * 1e6,
            row.stub_cpu_share,
        );
    }
}

// ---------------------------------------------------------------------------
// Unthrottled: the sink against a raw SDK loop.

const UNTHROTTLED_RECORDS: u64 = 200_000;
/// Enough shards that the sink's pacing (on, as by default) never binds:
/// 200 records per shard per iteration.
const UNTHROTTLED_SHARDS: u32 = 1000;

fn unthrottled_record(i: u64) -> KinesisRecord {
    let key = format!("k{}", i % 10_000);
    let mut data = format!("{key}/{i:012}/").into_bytes();
    data.resize(100, b'.');
    KinesisRecord::new(data, key)
}

/// Eight `PutRecords` of 500 records in flight until every record is
/// stored (retrying nothing: the stub refuses nothing).
async fn raw_loop(client: &Client, stream: &str, records: &[KinesisRecord]) {
    let calls = records.chunks(500).map(|chunk| {
        let entries = chunk
            .iter()
            .map(|r| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(r.data.to_vec()))
                    .partition_key(&r.partition_key)
                    .build()
                    .expect("entry")
            })
            .collect::<Vec<_>>();
        let client = client.clone();
        let stream = stream.to_owned();
        async move {
            let out = client
                .put_records()
                .stream_name(stream)
                .set_records(Some(entries))
                .send()
                .await
                .expect("put");
            assert_eq!(out.failed_record_count(), Some(0));
        }
    });
    futures::StreamExt::for_each_concurrent(futures::stream::iter(calls), 8, |call| call).await;
}

async fn sink_loop(client: &Client, stream: &str, records: &[KinesisRecord], defaults: bool) {
    let builder = KinesisSink::builder_from_client(client.clone(), stream);
    let builder = if defaults {
        builder
    } else {
        builder.ordered(false).no_rate_limit()
    };
    let mut sink = builder.build().expect("sink");
    for batch in records.chunks(4_000) {
        sink.feed(batch.to_vec()).await.expect("feed");
    }
    sink.flush().await.expect("flush");
}

/// Who writes in the unthrottled group.
#[derive(Debug, Clone, Copy)]
enum Writer {
    Raw,
    Sink { defaults: bool },
}

fn unthrottled(c: &mut Criterion) {
    let stub_rt = runtime(1);
    let rt = runtime(2);
    let stub = stub_rt
        .block_on(KinesisStub::start(
            StubConfig::new(UNTHROTTLED_SHARDS)
                .unlimited()
                .keep_records(false),
        ))
        .expect("stub");
    let client = stub.client();
    let stream = stub.stream();
    let records: Vec<KinesisRecord> = (0..UNTHROTTLED_RECORDS).map(unthrottled_record).collect();
    let mut group = c.benchmark_group("unthrottled");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(UNTHROTTLED_RECORDS));
    // Interleaved per iteration would be fairer still; criterion runs one
    // id after the other, so compare them within one run only. Beside
    // criterion's wall-clock figures, each id's CPU per record (the
    // process's less the stub thread's, warm-up included) is printed.
    let stub_cpu = || {
        stub_rt
            .block_on(stub_rt.spawn(async { thread_cpu_time() }))
            .expect("stub thread")
    };
    let writers: [(&str, Writer); 3] = [
        ("raw_sdk_8_in_flight", Writer::Raw),
        ("sink_default", Writer::Sink { defaults: true }),
        ("sink_unordered_unpaced", Writer::Sink { defaults: false }),
    ];
    let mut cpu_per_record = Vec::new();
    for (name, writer) in writers {
        let spent = std::cell::Cell::new((0u64, Duration::ZERO));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let (cpu, stub) = (process_cpu_time(), stub_cpu());
                let began = Instant::now();
                rt.block_on(async {
                    for _ in 0..iters {
                        match writer {
                            Writer::Raw => raw_loop(&client, &stream, &records).await,
                            Writer::Sink { defaults } => {
                                sink_loop(&client, &stream, &records, defaults).await
                            }
                        }
                    }
                });
                let wall = began.elapsed();
                let producers = (process_cpu_time() - cpu).saturating_sub(stub_cpu() - stub);
                let (n, total) = spent.get();
                spent.set((n + iters * UNTHROTTLED_RECORDS, total + producers));
                wall
            })
        });
        let (n, total) = spent.get();
        cpu_per_record.push((name, total.div_f64(n.max(1) as f64)));
    }
    group.finish();
    let stats = stub.stats();
    for (name, cpu) in cpu_per_record {
        println!(
            "{name}: {:.2} us of producer CPU per record",
            cpu.as_secs_f64() * 1e6
        );
    }
    println!(
        "stub served {} PutRecords calls, {} records, refused {}",
        stats.put_records_calls,
        stats.accepted_records(),
        stats.throttled_records()
    );
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected = |group: &str| {
        filters.is_empty()
            || filters
                .iter()
                .any(|f| f.contains(group) || group.contains(f.as_str()))
    };
    timed_group(&LIMITS, &filters);
    timed_group(&LATENCY, &filters);
    if selected("unthrottled") {
        let mut criterion = Criterion::default().configure_from_args();
        unthrottled(&mut criterion);
        criterion.final_summary();
    }
}
