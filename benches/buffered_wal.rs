//! `buffered_wal` throughput (figures in BENCHMARKS.md, "Producer core").
//!
//! - `interval_forward/*`: 100-byte JSON records `forward`ed from a stream
//!   through `buffered_wal` into a `MemorySink`, `Fsync::Interval(10 ms)`;
//!   one iteration sends N records and closes the sink, so the time covers
//!   encoding, the log, delivery, decoding and the final commit.
//! - `always_64_senders`: `Fsync::Always`, 64 tasks each sending records one
//!   `send()` at a time through its own clone of the sink (every `send` is
//!   acknowledged only after an fdatasync); group commit lets them share
//!   fdatasyncs. Compare with `fdatasync 100-byte writes/s` from
//!   `scripts/machine-limits.sh`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::{stream, SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use unistream::sink::{MemorySink, WalConfig, WalSinkExt};
use unistream::wal::Fsync;

/// A record of exactly 100 bytes of JSON (checked in `main`).
#[derive(Clone, Serialize, Deserialize)]
struct Event {
    id: u64,
    kind: String,
    body: String,
}

fn event(id: u64) -> Event {
    // `{"id":1234567,"kind":"click","body":"…"}`: padded to 100 bytes.
    let head = format!(r#"{{"id":{id},"kind":"click","body":""}}"#).len();
    Event {
        id,
        kind: "click".to_string(),
        body: "x".repeat(100 - head),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_dir() -> tempfile::TempDir {
    // The target directory sits on the disk `machine-limits.sh` measures.
    let root = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    std::fs::create_dir_all(&root).expect("bench root");
    tempfile::tempdir_in(root).expect("bench dir")
}

/// Sends `n` records through a fresh `buffered_wal` and closes it.
async fn forward_once(n: u64, max_records: usize) -> Duration {
    let dir = bench_dir();
    let target = MemorySink::<Event>::new();
    let delivered = target.handle();
    let config = WalConfig::new(dir.path())
        .fsync(Fsync::Interval(Duration::from_millis(10)))
        .max_records(max_records)
        .max_bytes(4 << 20);
    let records: Vec<Event> = (0..n).map(event).collect();
    let start = Instant::now();
    let sink = target.buffered_wal(config).await.expect("open");
    stream::iter(records)
        .map(Ok)
        .forward(sink)
        .await
        .expect("forward");
    let elapsed = start.elapsed();
    assert_eq!(delivered.record_count() as u64, n);
    elapsed
}

fn interval_forward(c: &mut Criterion) {
    let rt = runtime();
    let n = 200_000u64;
    let mut group = c.benchmark_group("interval_forward");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(n));
    for max_records in [500usize, 10_000] {
        group.bench_with_input(
            BenchmarkId::new("max_records", max_records),
            &max_records,
            |b, &max_records| {
                b.to_async(&rt).iter_custom(|iters| async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += forward_once(n, max_records).await;
                    }
                    total
                })
            },
        );
    }
    group.finish();
}

/// 64 senders, each `send()`ing `per_sender` records under `Fsync::Always`.
async fn always_once(senders: u64, per_sender: u64) -> Duration {
    let dir = bench_dir();
    let target = MemorySink::<Event>::new();
    let delivered = target.handle();
    let config = WalConfig::new(dir.path()).fsync(Fsync::Always);
    let mut sink = target.buffered_wal(config).await.expect("open");
    let start = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|s| {
            let mut sink = sink.clone();
            tokio::spawn(async move {
                for i in 0..per_sender {
                    sink.send(event(s * per_sender + i)).await.expect("send");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sender");
    }
    // Every send above was acknowledged durable; that is what is measured.
    let elapsed = start.elapsed();
    sink.close().await.expect("close");
    assert_eq!(delivered.record_count() as u64, senders * per_sender);
    elapsed
}

fn always_64_senders(c: &mut Criterion) {
    let rt = runtime();
    let (senders, per_sender) = (64u64, 40u64);
    let mut group = c.benchmark_group("always_64_senders");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(senders * per_sender));
    group.bench_function("send", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += always_once(senders, per_sender).await;
            }
            total
        })
    });
    group.finish();
}

fn check_record_size() {
    let size = serde_json::to_vec(&event(1_234_567)).expect("json").len();
    assert_eq!(size, 100, "bench records must be 100 bytes of JSON");
}

fn benches(c: &mut Criterion) {
    check_record_size();
    interval_forward(c);
    always_64_senders(c);
}

criterion_group!(producer, benches);
criterion_main!(producer);
