//! `buffered_wal` throughput (figures in BENCHMARKS.md, "Producer core").
//!
//! - `interval_forward/*`: 100-byte JSON records `forward`ed from a stream
//!   through `buffered_wal` into a `MemorySink`, `Fsync::Interval(10 ms)`;
//!   one iteration sends N records and closes the sink, so the time covers
//!   encoding, the log, delivery, decoding and the final commit.
//! - `interval_forward_cpu/*`: the same, but the time criterion sees is the
//!   CPU time of the whole process (user + system, all threads, from
//!   `CLOCK_PROCESS_CPUTIME_ID`) instead of the wall-clock time: its "throughput" is
//!   records per CPU-second. On this machine (2 cores shared with other
//!   builds) wall-clock figures swing with the load; the CPU cost per
//!   record does much less.
//! - `file_forward/default`: the same records `forward`ed through
//!   `buffered_wal(WalConfig::new(dir))` with **default** settings (batches
//!   of 500, `Fsync::Interval(10 ms)`) into a `FileSink`; one iteration
//!   opens the file and the log, sends everything and closes, so every
//!   record is in the file, fdatasynced, and committed in the log.
//!   `benches/producer_fresh.rs` measures the same in fresh processes.
//! - `always_64_senders`: `Fsync::Always`, 64 tasks each sending records one
//!   `send()` at a time through its own clone of the sink (every `send` is
//!   acknowledged only after an fdatasync); group commit lets them share
//!   fdatasyncs. Compare with `fdatasync 100-byte writes/s` from
//!   `scripts/machine-limits.sh`.
//! - `always_64_senders` paired rounds (printed at the end): this machine's
//!   disk swings by 10× within a minute, so a ratio of figures taken minutes
//!   apart says little. Each round measures the raw rate of single 100-byte
//!   `write` + `fdatasync` calls on a file in the same directory the WAL
//!   uses, then one `always_64_senders` run, then the raw rate again; the
//!   round's ratio is the run's records/s over the mean of the two raw
//!   rates. The median over the rounds is the figure to compare with 20×.
//!   Also printed: the same ratio against single 100-byte *overwrites* of
//!   a zero-filled file, each fdatasynced (data-only flushes, faster than
//!   appends, which also write the inode): what the log itself pays per
//!   group under `Fsync::Always`, since it preallocates its segments.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::{stream, SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use unistream::sink::{FileSink, MemorySink, WalConfig, WalSinkExt};
use unistream::wal::Fsync;

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::{bench_dir, median, process_cpu_time, runtime};

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

/// What an iteration reports to criterion.
#[derive(Clone, Copy)]
enum Clock {
    Wall,
    Cpu,
}

/// Sends `n` records through a fresh `buffered_wal` and closes it.
async fn forward_once(n: u64, max_records: usize, clock: Clock) -> Duration {
    let dir = bench_dir();
    let target = MemorySink::<Event>::new();
    let delivered = target.handle();
    let config = WalConfig::new(dir.path())
        .fsync(Fsync::Interval(Duration::from_millis(10)))
        .max_records(max_records)
        .max_bytes(4 << 20);
    let records: Vec<Event> = (0..n).map(event).collect();
    let (start, cpu_start) = (Instant::now(), process_cpu_time());
    let sink = target.buffered_wal(config).await.expect("open");
    stream::iter(records)
        .map(Ok)
        .forward(sink)
        .await
        .expect("forward");
    let elapsed = match clock {
        Clock::Wall => start.elapsed(),
        Clock::Cpu => process_cpu_time() - cpu_start,
    };
    assert_eq!(delivered.record_count() as u64, n);
    elapsed
}

fn interval_forward(c: &mut Criterion, clock: Clock) {
    let rt = runtime(2);
    let n = 200_000u64;
    let mut group = c.benchmark_group(match clock {
        Clock::Wall => "interval_forward",
        Clock::Cpu => "interval_forward_cpu",
    });
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
                        total += forward_once(n, max_records, clock).await;
                    }
                    total
                })
            },
        );
    }
    group.finish();
}

/// Sends `n` records through a fresh `FileSink` + `buffered_wal` with
/// default settings and closes it.
async fn file_forward_once(n: u64) -> Duration {
    let dir = bench_dir();
    let records: Vec<Event> = (0..n).map(event).collect();
    let start = Instant::now();
    let sink = FileSink::<Event>::open(dir.path().join("out.jsonl"))
        .await
        .expect("open file")
        .buffered_wal(WalConfig::new(dir.path().join("wal")))
        .await
        .expect("open wal");
    stream::iter(records)
        .map(Ok)
        .forward(sink)
        .await
        .expect("forward");
    let elapsed = start.elapsed();
    let lines = std::fs::read(dir.path().join("out.jsonl"))
        .expect("read output")
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    assert_eq!(lines as u64, n, "every record in the file");
    elapsed
}

fn file_forward(c: &mut Criterion) {
    let rt = runtime(2);
    let n = 200_000u64;
    let mut group = c.benchmark_group("file_forward");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(n));
    group.bench_function("default", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += file_forward_once(n).await;
            }
            total
        })
    });
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
    let rt = runtime(2);
    let (senders, per_sender) = (64u64, 100u64);
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

/// Raw rate of single 100-byte writes each followed by an fdatasync, on a
/// fresh file in `dir`: appended (what `dd oflag=dsync` measures; each
/// flush also writes the inode of the grown file), or, with `preallocated`,
/// written over a zero-filled, synced file (`conv=notrunc`: data-only
/// flushes, what the log's preallocated segments pay under `Fsync::Always`).
fn raw_fdatasync_rate(dir: &std::path::Path, writes: u32, preallocated: bool) -> f64 {
    use std::os::unix::fs::FileExt;
    let path = dir.join("raw-fdatasync");
    let file = std::fs::File::create(&path).expect("probe file");
    if preallocated {
        file.write_all_at(&vec![0u8; 1 << 20], 0)
            .expect("zero-fill");
        file.sync_all().expect("fsync");
    }
    let block = [b'x'; 100];
    let start = Instant::now();
    for i in 0..u64::from(writes) {
        file.write_all_at(&block, i * 100).expect("write");
        file.sync_data().expect("fdatasync");
    }
    let rate = f64::from(writes) / start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(path).expect("remove probe");
    rate
}

/// `always_64_senders` against the raw fdatasync rate, in paired rounds
/// (see the module docs).
fn always_vs_raw_fdatasync_rounds() {
    // Criterion's name filter, if any, applies here too.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"always_64_senders".contains(f.as_str())) {
        return;
    }
    let rounds: usize = std::env::var("ALWAYS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let rt = runtime(2);
    let (senders, per_sender) = (64u64, 100u64);
    let probe = bench_dir();
    let (mut ratios, mut raws, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    let (mut overwrite_ratios, mut overwrites) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let before = raw_fdatasync_rate(probe.path(), 300, false);
        let overwrite_before = raw_fdatasync_rate(probe.path(), 300, true);
        let took = rt.block_on(always_once(senders, per_sender));
        let overwrite_after = raw_fdatasync_rate(probe.path(), 300, true);
        let after = raw_fdatasync_rate(probe.path(), 300, false);
        let raw = (before + after) / 2.0;
        let overwrite = (overwrite_before + overwrite_after) / 2.0;
        let rate = (senders * per_sender) as f64 / took.as_secs_f64();
        ratios.push(rate / raw);
        raws.push(raw);
        overwrite_ratios.push(rate / overwrite);
        overwrites.push(overwrite);
        rates.push(rate);
    }
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    println!(
        "always_64_senders vs raw fdatasync, {rounds} paired rounds: \
         median ratio {:.1}x (min {lo:.1}x, max {hi:.1}x); \
         median raw {:.0} fdatasyncs/s, median always {:.0} records/s; \
         against data-only fdatasyncs (overwrites of a preallocated file, median {:.0}/s): \
         median ratio {:.1}x",
        median(ratios),
        median(raws),
        median(rates),
        median(overwrites),
        median(overwrite_ratios),
    );
}

fn check_record_size() {
    let size = serde_json::to_vec(&event(1_234_567)).expect("json").len();
    assert_eq!(size, 100, "bench records must be 100 bytes of JSON");
}

fn benches(c: &mut Criterion) {
    check_record_size();
    interval_forward(c, Clock::Wall);
    interval_forward(c, Clock::Cpu);
    file_forward(c);
    always_64_senders(c);
    always_vs_raw_fdatasync_rounds();
}

criterion_group!(producer, benches);
criterion_main!(producer);
