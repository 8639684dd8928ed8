//! Append throughput of the WAL engine on the real disk of the target
//! directory, with a consumer reading everything back and committing it
//! (as `buffered_wal`'s delivery task does), so the log never fills up.
//!
//! - `interval_10ms/batch_1000`: one appender, batches of 1,000 100-byte
//!   records, `Fsync::Interval(10 ms)`.
//! - `always/appenders_1` and `always/appenders_64`: one record per append,
//!   `Fsync::Always`; with 64 concurrent appenders group commit shares each
//!   fdatasync among everything queued while the previous one ran. Compare
//!   with the raw fdatasync rate from `scripts/machine-limits.sh`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use unistream::wal::{Fsync, Wal, WalOptions, WalReader, WalWriter};

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::{runtime, target_dir};

fn bench_root() -> PathBuf {
    let root = target_dir().join("wal-append-bench");
    std::fs::create_dir_all(&root).unwrap();
    root
}

fn record(i: u64) -> Vec<u8> {
    let mut r = format!("{{\"id\":{i:012},\"pad\":\"").into_bytes();
    r.resize(98, b'x');
    r.extend_from_slice(b"\"}");
    r
}

/// Reads everything back and commits it, until the writers are gone.
async fn consume(mut reader: WalReader) {
    loop {
        reader.wait_for_records().await;
        let batch = reader.next_batch(10_000, 4 << 20).await.unwrap();
        let Some(last) = batch.last() else { break };
        reader.start_commit(last.lsn.after(1)).unwrap();
    }
    let end = reader.committed();
    reader.wait_committed(end).await.unwrap();
}

async fn open(fsync: Fsync) -> (tempfile::TempDir, WalWriter, tokio::task::JoinHandle<()>) {
    let dir = tempfile::tempdir_in(bench_root()).unwrap();
    let (writer, reader, _) = Wal::open(WalOptions::new(dir.path()).fsync(fsync))
        .await
        .unwrap();
    let consumer = tokio::spawn(consume(reader));
    (dir, writer, consumer)
}

/// Lets the consumer read and commit everything before the directory goes.
fn close(
    runtime: &tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    writer: WalWriter,
    consumer: tokio::task::JoinHandle<()>,
) {
    drop(writer);
    runtime.block_on(consumer).unwrap();
    drop(dir);
}

fn append(c: &mut Criterion) {
    let runtime = runtime(2);

    let mut group = c.benchmark_group("wal_append");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    group.throughput(Throughput::Elements(1000));
    group.bench_function("interval_10ms/batch_1000", |b| {
        let (dir, writer, consumer) =
            runtime.block_on(open(Fsync::Interval(Duration::from_millis(10))));
        let mut next = 0u64;
        b.to_async(&runtime).iter_batched(
            || {
                next += 1000;
                (next - 1000..next).map(record).collect::<Vec<_>>()
            },
            |batch| {
                let writer = writer.clone();
                async move { writer.append(batch).await.unwrap() }
            },
            BatchSize::SmallInput,
        );
        close(&runtime, dir, writer, consumer);
    });

    for appenders in [1u64, 64] {
        let per_appender = if appenders == 1 { 20 } else { 10 };
        group.throughput(Throughput::Elements(appenders * per_appender));
        group.bench_with_input(
            BenchmarkId::new("always", format!("appenders_{appenders}")),
            &appenders,
            |b, &appenders| {
                let (dir, writer, consumer) = runtime.block_on(open(Fsync::Always));
                b.to_async(&runtime).iter_custom(|iters| {
                    let writer = writer.clone();
                    async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let tasks: Vec<_> = (0..appenders)
                                .map(|a| {
                                    let writer = writer.clone();
                                    tokio::spawn(async move {
                                        for i in 0..per_appender {
                                            writer
                                                .append(vec![record(a * 1000 + i)])
                                                .await
                                                .unwrap();
                                        }
                                    })
                                })
                                .collect();
                            for t in tasks {
                                t.await.unwrap();
                            }
                        }
                        start.elapsed()
                    }
                });
                close(&runtime, dir, writer, consumer);
            },
        );
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
