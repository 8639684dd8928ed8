//! Reopening a WAL that holds a large uncommitted backlog.
//!
//! For backlogs of 64 MiB, 256 MiB and 1 GiB of 100-byte records (created
//! once with `Fsync::Never` under `$CARGO_TARGET_DIR/wal-replay-bench/` and
//! reused by later runs):
//!
//! - criterion measures the time from `Wal::open` to the first
//!   `next_batch` result (warm page cache: the files were just written or
//!   read; recovery reads only the last segment, so this must not grow with
//!   the backlog);
//! - then, for each size, a child process (this binary re-executed) replays
//!   the whole backlog the way a delivery task does (batches of 10,000
//!   records, `start_commit` after each) on a hard-linked copy of the log,
//!   and reports its peak resident memory (`VmHWM`) and replay rate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use unistream::wal::{Fsync, Lsn, Wal, WalOptions};

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::{runtime, target_dir};

const SIZES: [(&str, u64); 3] = [
    ("64MiB", 64 << 20),
    ("256MiB", 256 << 20),
    ("1GiB", 1 << 30),
];
const RECORD_BYTES: usize = 100;
const CHILD_ENV: &str = "UNISTREAM_WAL_REPLAY_CHILD";

fn bench_root() -> PathBuf {
    target_dir().join("wal-replay-bench")
}

fn options(dir: &Path, size: u64) -> WalOptions {
    WalOptions::new(dir)
        .fsync(Fsync::Never)
        .max_bytes(size + (256 << 20))
}

/// A 100-byte JSON-ish record carrying its number.
fn record(i: u64) -> Vec<u8> {
    let mut r = format!("{{\"id\":{i:012},\"pad\":\"").into_bytes();
    r.resize(RECORD_BYTES - 2, b'x');
    r.extend_from_slice(b"\"}");
    r
}

/// Creates the log of `size` bytes in `dir` unless a previous run did;
/// returns its record count.
async fn ensure_log(dir: &Path, size: u64) -> u64 {
    let marker = dir.with_extension("complete");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        if let Ok(n) = text.trim().parse() {
            return n;
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    let started = Instant::now();
    let (writer, _reader, _) = Wal::open(options(dir, size)).await.unwrap();
    let mut next = 0u64;
    while writer.stats().bytes_on_disk < size {
        let batch: Vec<Vec<u8>> = (next..next + 10_000).map(record).collect();
        writer.append(batch).await.unwrap();
        next += 10_000;
    }
    writer.sync().await.unwrap();
    drop(writer);
    std::fs::write(&marker, next.to_string()).unwrap();
    eprintln!(
        "created {} ({next} records) in {:.1?}",
        dir.display(),
        started.elapsed()
    );
    next
}

fn open_to_first_batch(c: &mut Criterion) {
    let runtime = runtime(2);
    let root = bench_root();
    std::fs::create_dir_all(&root).unwrap();
    let mut group = c.benchmark_group("wal_replay");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (label, size) in SIZES {
        let dir = root.join(label);
        runtime.block_on(ensure_log(&dir, size));
        group.bench_with_input(
            BenchmarkId::new("open_to_first_batch", label),
            &dir,
            |b, dir| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let options = options(dir, size);
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let start = Instant::now();
                            let (writer, mut reader, recovery) =
                                Wal::open(options.clone()).await.unwrap();
                            let batch = reader.next_batch(1000, 1 << 20).await.unwrap();
                            total += start.elapsed();
                            assert_eq!(batch.len(), 1000);
                            assert_eq!(batch[0].lsn, Lsn(0));
                            assert!(recovery.uncommitted_records > 0);
                            drop((writer, reader));
                        }
                        total
                    }
                })
            },
        );
    }
    group.finish();
}

/// `VmHWM` (peak resident set) of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The child: replays a hard-linked copy of the log in `source` and
/// prints one `REPLAY …` line.
fn child(source: &Path, expected: u64) {
    let baseline_kib = peak_rss_kib();
    let copy = source.with_extension(format!("replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        std::fs::hard_link(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let runtime = runtime(2);
    let runtime_kib = peak_rss_kib();
    let (first_batch, total, records) = runtime.block_on(async {
        let start = Instant::now();
        let (writer, mut reader, recovery) = Wal::open(options(&copy, 1 << 40)).await.unwrap();
        assert_eq!(recovery.uncommitted_records, expected);
        let mut first_batch = None;
        let mut records = 0u64;
        loop {
            let batch = reader.next_batch(10_000, 4 << 20).await.unwrap();
            let Some(last) = batch.last() else { break };
            first_batch.get_or_insert_with(|| start.elapsed());
            assert_eq!(batch[0].lsn, Lsn(records), "records in order, none missing");
            records += batch.len() as u64;
            reader.start_commit(last.lsn.after(1)).unwrap();
        }
        reader.wait_committed(Lsn(records)).await.unwrap();
        drop((writer, reader));
        (first_batch.unwrap_or_default(), start.elapsed(), records)
    });
    drop(runtime);
    let peak_kib = peak_rss_kib();
    let _ = std::fs::remove_dir_all(&copy);
    println!(
        "REPLAY records={records} first_batch_ms={:.2} total_s={:.2} records_per_s={:.0} \
         baseline_hwm_kib={baseline_kib} runtime_hwm_kib={runtime_kib} peak_hwm_kib={peak_kib}",
        first_batch.as_secs_f64() * 1e3,
        total.as_secs_f64(),
        records as f64 / total.as_secs_f64(),
    );
}

/// Runs the child for every size and prints a summary.
fn replay_memory() {
    let exe = std::env::current_exe().unwrap();
    println!(
        "\nwal_replay full replay in a child process (batches of 10,000, start_commit after each):"
    );
    for (label, size) in SIZES {
        let dir = bench_root().join(label);
        let records = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(ensure_log(&dir, size));
        let out = Command::new(&exe)
            .env(CHILD_ENV, format!("{}|{records}", dir.display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("REPLAY"))
            .unwrap_or("REPLAY failed");
        println!("  {label:>7}: {line}");
        if !out.status.success() {
            println!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

criterion_group!(benches, open_to_first_batch);

fn main() {
    if let Ok(arg) = std::env::var(CHILD_ENV) {
        let (dir, records) = arg.rsplit_once('|').unwrap();
        child(Path::new(dir), records.parse().unwrap());
        return;
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    // Skipped when criterion only lists or tests the benches.
    if !std::env::args().any(|a| a == "--list" || a == "--test") {
        replay_memory();
    }
}
