//! Producer throughput measured open-to-close, each run in a fresh process
//! (figures in BENCHMARKS.md, "Producer core"), beside the machine's limits
//! measured in the same sitting.
//!
//! ```text
//! cargo bench --bench producer_fresh                 # every row, 3 runs each
//! cargo bench --bench producer_fresh -- file 5       # one row, 5 runs
//! ```
//!
//! The parent process re-runs this binary once per measurement (a fresh
//! process: cold allocator, no warm page cache of the log, a new runtime)
//! and prints the median, lowest and highest of the runs. Records are
//! 100-byte JSON objects (`{"id":…,"kind":"click","body":"xx…"}`), built
//! before the clock starts. A tokio multi-thread runtime with 2 workers; the
//! log and the output file live in a fresh directory under `target/`.
//!
//! What each row times (wall clock):
//!
//! - `limits`: the machine. `seq write`: 256 MiB written in 1 MiB `write`
//!   calls to a new file, then one fdatasync. `fdatasync`: 100-byte appends,
//!   each followed by an fdatasync, for 2 s. `bufwriter+serde_json`: the
//!   records serialized with `serde_json::to_writer` into a
//!   `BufWriter<File>` (64 KiB), one line each, then flushed and
//!   fdatasynced once.
//! - `file`: `FileSink::open` + `buffered_wal(WalConfig::new(dir))` with
//!   **default** settings (batches of 500 records, `Fsync::Interval(10 ms)`),
//!   the records `forward`ed from a stream (which closes the sink: every
//!   record delivered to the file, fdatasynced, committed in the log).
//! - `file-decoded`: the same with `max_held_bytes(0)`: every record is
//!   decoded from the log on its way to the target, as before records were
//!   held in memory for the delivery (and as after a restart).
//! - `memory`: the same as `file` into a `MemorySink`.
//! - `wal`: the log alone, without the sink: `Wal::open`, one task appending
//!   the records serialized with `serde_json` into `WalBatch`es of 4096,
//!   another reading them back (`next_batch(4096, 4 MiB)`) and committing
//!   each batch, until everything is committed and durable.
//! - `replay`: a log holding a backlog of uncommitted records (written by a
//!   separate process that then exits without closing, as a crash does):
//!   the time from `buffered_wal` open to the first batch arriving at the
//!   target, then, in the same process, from `Wal::open` of a copy of the
//!   log to the first `next_batch` returned. The page cache holds the log
//!   (just written). Recovery reads the whole last segment (to find its
//!   torn tail), so the figure depends on how full it is: `replay` has
//!   2,000,000 records (the last of 14 segments of 16 MiB about 35 % full),
//!   `replay-full` 14 segments less 1,000 records (the last one 99 % full,
//!   the worst case of the default segment size).

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::{stream, Sink, StreamExt};
use serde::{Deserialize, Serialize};
use unistream::sink::{batch_target, FileSink, MemorySink, WalConfig, WalSinkExt};
use unistream::wal::{Lsn, Wal, WalBatch, WalError, WalOptions};

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::{bench_dir, median, runtime};

/// Records of the throughput rows.
const RECORDS: u64 = 1_000_000;
/// Records of the crashed backlog of the `replay` row.
const BACKLOG: u64 = 2_000_000;
/// Frames of 100-byte records in a default (16 MiB) segment: its 16-byte
/// header, then 112-byte frames.
const FRAMES_PER_SEGMENT: u64 = ((16 << 20) - 16) / 112;
/// Records of the `replay-full` row: the last segment 99 % full.
const BACKLOG_FULL: u64 = 14 * FRAMES_PER_SEGMENT - 1_000;

/// A record of exactly 100 bytes of JSON (checked in `main`).
#[derive(Clone, Serialize, Deserialize)]
struct Event {
    id: u64,
    kind: String,
    body: String,
}

fn event(id: u64) -> Event {
    let head = format!(r#"{{"id":{id},"kind":"click","body":""}}"#).len();
    Event {
        id,
        kind: "click".to_string(),
        body: "x".repeat(100 - head),
    }
}

/// What encoding a record straight into a `WalBatch` can fail with.
#[derive(Debug)]
#[allow(dead_code)] // read through `Debug` by `expect`
enum EncodeError {
    Wal(WalError),
    Json(serde_json::Error),
}

impl From<WalError> for EncodeError {
    fn from(e: WalError) -> Self {
        EncodeError::Wal(e)
    }
}

fn events(n: u64) -> Vec<Event> {
    (0..n).map(event).collect()
}

fn rate(n: u64, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// Opens `target`, puts `buffered_wal(config)` in front of it and forwards
/// the records through it (which closes it): the time from the open to
/// the close.
fn forward_through_wal<S>(target: impl Future<Output = S>, config: WalConfig) -> Duration
where
    S: Sink<Vec<Event>> + Send + 'static,
    S::Error: Into<unistream::Error>,
{
    let records = events(RECORDS);
    let rt = runtime(2);
    rt.block_on(async {
        let start = Instant::now();
        let sink = target.await.buffered_wal(config).await.expect("open wal");
        stream::iter(records)
            .map(Ok)
            .forward(sink)
            .await
            .expect("forward");
        start.elapsed()
    })
}

/// The `file` rows: `FileSink` + `buffered_wal(config)`, open to close.
fn file_row(name: &str, dir: &Path, config: WalConfig) {
    let path = dir.join("out.jsonl");
    let open = async { FileSink::<Event>::open(&path).await.expect("open file") };
    let took = forward_through_wal(open, config);
    let lines = std::fs::read(&path)
        .expect("read output")
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    assert_eq!(lines as u64, RECORDS, "every record in the file");
    println!("{name} {:.0} records/s", rate(RECORDS, took));
    // Includes the records built before the clock started.
    println!("{name}-peak-rss {} MiB", peak_rss_kib() / 1024);
}

/// `VmHWM` (peak resident set) of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("read /proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// One run of a row, in this (fresh) process: prints `name value unit`
/// lines for the parent.
fn child(row: &str) {
    let dir = bench_dir();
    match row {
        "limits" => limits(dir.path()),
        "file" => file_row("file", dir.path(), WalConfig::new(dir.path().join("wal"))),
        "file-decoded" => file_row(
            "file-decoded",
            dir.path(),
            WalConfig::new(dir.path().join("wal")).max_held_bytes(0),
        ),
        "memory" => {
            let target = MemorySink::<Event>::new();
            let delivered = target.handle();
            let took = forward_through_wal(
                std::future::ready(target),
                WalConfig::new(dir.path().join("wal")),
            );
            assert_eq!(delivered.record_count() as u64, RECORDS);
            println!("memory {:.0} records/s", rate(RECORDS, took));
        }
        "wal" => {
            let records = events(RECORDS);
            let rt = runtime(2);
            let took = rt.block_on(wal_alone(dir.path(), records));
            println!("wal {:.0} records/s", rate(RECORDS, took));
        }
        "replay-prepare" => {
            // Runs in its own process, which exits without closing the log.
            let rt = runtime(2);
            let wal = std::env::var("PRODUCER_FRESH_WAL").expect("wal dir");
            let backlog: u64 = std::env::var("PRODUCER_FRESH_BACKLOG")
                .expect("backlog")
                .parse()
                .expect("a number");
            rt.block_on(async {
                let (writer, _reader, _) = Wal::open(WalOptions::new(&wal)).await.expect("open");
                let mut id = 0;
                while id < backlog {
                    let mut batch = WalBatch::with_capacity(4096, 4096 * 100);
                    for _ in 0..4096.min(backlog - id) {
                        batch
                            .push_with(|buf| {
                                serde_json::to_writer(buf, &event(id)).map_err(EncodeError::Json)
                            })
                            .expect("encode");
                        id += 1;
                    }
                    writer.append_batch(batch).await.expect("append");
                }
                writer.sync().await.expect("sync");
                std::process::exit(0); // no close, no drop: as a crash leaves it
            });
        }
        "replay" | "replay-full" => {
            let backlog = if row == "replay" {
                BACKLOG
            } else {
                BACKLOG_FULL
            };
            let wal = dir.path().join("wal");
            let status = Command::new(std::env::current_exe().expect("exe"))
                .args(["--child", "replay-prepare"])
                .env("PRODUCER_FRESH_WAL", &wal)
                .env("PRODUCER_FRESH_BACKLOG", backlog.to_string())
                .status()
                .expect("prepare");
            assert!(status.success());
            // The last segment (named by its first lsn, zero-padded): what
            // recovery reads.
            let last_segment = std::fs::read_dir(&wal)
                .expect("read dir")
                .map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "wal"))
                .max()
                .expect("a segment");
            let last_len = std::fs::metadata(&last_segment).expect("stat").len();
            println!(
                "{row}-last-segment {:.1} MiB",
                last_len as f64 / f64::from(1 << 20)
            );
            let copy = dir.path().join("wal-copy");
            copy_dir(&wal, &copy);
            let rt = runtime(2);
            let (sink_first, wal_first) = rt.block_on(async {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let target = batch_target(move |batch: Vec<Event>| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send((Instant::now(), batch.len()));
                        Ok(())
                    }
                });
                let start = Instant::now();
                let sink = target
                    .buffered_wal(WalConfig::new(&wal))
                    .await
                    .expect("open");
                let (at, _) = rx.recv().await.expect("a first batch");
                let sink_first = at - start;
                drop(sink); // stop delivering: this row times the first batch only

                let start = Instant::now();
                let (_writer, mut reader, recovery) =
                    Wal::open(WalOptions::new(&copy)).await.expect("open");
                let first = reader.next_batch(500, 4 << 20).await.expect("read");
                let wal_first = start.elapsed();
                assert_eq!(first.len(), 500);
                assert_eq!(first[0].lsn, Lsn(0));
                assert_eq!(recovery.uncommitted_records, backlog);
                (sink_first, wal_first)
            });
            println!(
                "{row}-buffered_wal {:.3} ms",
                sink_first.as_secs_f64() * 1e3
            );
            println!("{row}-wal {:.3} ms", wal_first.as_secs_f64() * 1e3);
        }
        other => panic!("unknown row {other}"),
    }
}

/// The `wal` row: append and read back + commit, concurrently.
async fn wal_alone(dir: &Path, records: Vec<Event>) -> Duration {
    let start = Instant::now();
    let (writer, mut reader, _) = Wal::open(WalOptions::new(dir.join("wal")))
        .await
        .expect("open");
    let append = tokio::spawn(async move {
        for chunk in records.chunks(4096) {
            let mut batch = WalBatch::with_capacity(chunk.len(), chunk.len() * 100);
            for record in chunk {
                batch
                    .push_with(|buf| serde_json::to_writer(buf, record).map_err(EncodeError::Json))
                    .expect("encode");
            }
            writer.append_batch(batch).await.expect("append");
        }
        writer.sync().await.expect("sync");
    });
    let mut read = 0u64;
    while read < RECORDS {
        reader.wait_for_records().await;
        let batch = reader.next_batch(4096, 4 << 20).await.expect("read");
        if let Some(last) = batch.last() {
            read += batch.len() as u64;
            reader.start_commit(Lsn(last.lsn.0 + 1)).expect("commit");
        }
    }
    reader.wait_committed(Lsn(RECORDS)).await.expect("durable");
    append.await.expect("appender");
    start.elapsed()
}

fn limits(dir: &Path) {
    // Sequential write bandwidth.
    let chunk = vec![7u8; 1 << 20];
    let path = dir.join("seq");
    let mut file = std::fs::File::create(&path).expect("create");
    let start = Instant::now();
    for _ in 0..256 {
        file.write_all(&chunk).expect("write");
    }
    file.sync_data().expect("fdatasync");
    let took = start.elapsed();
    println!("seq-write {:.0} MiB/s", 256.0 / took.as_secs_f64());
    drop(file);
    std::fs::remove_file(&path).expect("remove");

    // fdatasync rate of small appends.
    let mut file = std::fs::File::create(dir.join("sync")).expect("create");
    let line = [b'x'; 100];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        file.write_all(&line).expect("write");
        file.sync_data().expect("fdatasync");
        n += 1;
    }
    println!("fdatasync {:.0} /s", rate(n, start.elapsed()));

    // The plain loop a producer is compared with.
    let records = events(RECORDS);
    let start = Instant::now();
    let file = std::fs::File::create(dir.join("plain.jsonl")).expect("create");
    let mut out = std::io::BufWriter::with_capacity(64 << 10, file);
    for record in &records {
        serde_json::to_writer(&mut out, record).expect("encode");
        out.write_all(b"\n").expect("write");
    }
    let file = out.into_inner().expect("flush");
    file.sync_data().expect("fdatasync");
    println!(
        "bufwriter+serde_json {:.0} records/s",
        rate(RECORDS, start.elapsed())
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        // The lock file is the open log's own; the copy gets a fresh one.
        if entry.file_type().expect("type").is_file() && name != "lock" {
            std::fs::copy(entry.path(), to.join(&name)).expect("copy");
        }
    }
}

fn main() {
    assert_eq!(serde_json::to_vec(&event(123_456)).unwrap().len(), 100);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1]);
        return;
    }
    // `cargo bench` passes `--bench`; anything else names a row and a count.
    let rest: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let rows: Vec<&str> = match rest.first() {
        Some(row) => vec![row.as_str()],
        None => vec![
            "limits",
            "file",
            "file-decoded",
            "memory",
            "wal",
            "replay",
            "replay-full",
            "limits",
        ],
    };
    let runs: usize = rest.get(1).and_then(|n| n.parse().ok()).unwrap_or(3);
    let exe = std::env::current_exe().expect("exe");
    for row in rows {
        let mut figures: Vec<(String, String, Vec<f64>)> = Vec::new();
        for _ in 0..runs {
            let out = Command::new(&exe)
                .args(["--child", row])
                .output()
                .expect("run child");
            assert!(
                out.status.success(),
                "row {row} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let [name, value, unit] = parts[..] else {
                    continue;
                };
                let value: f64 = value.parse().expect("a number");
                match figures.iter_mut().find(|f| f.0 == name) {
                    Some(f) => f.2.push(value),
                    None => figures.push((name.to_string(), unit.to_string(), vec![value])),
                }
            }
        }
        for (name, unit, values) in figures {
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            println!(
                "{name:<24} median {:>12.3} {unit:<10} (low {lo:.3}, high {hi:.3}, {} runs)",
                median(values.clone()),
                values.len()
            );
        }
    }
}
