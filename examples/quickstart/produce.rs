//! Quickstart, first half: produce records durably with `buffered_wal`.
//!
//! 1. 100,000 records flow through `buffered_wal` into a `FileSink` (one
//!    JSON line per record, fsynced per batch); the throughput is printed.
//! 2. A crash: more records are acknowledged (they are in the write-ahead
//!    log), then the sink is dropped without `close`, before delivering
//!    them. Opening the same log again delivers them first, and the file
//!    ends up holding every acknowledged record.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{stream, SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use unistream::sink::{FileSink, WalConfig, WalSinkExt};
use unistream::wal::Fsync;
use unistream::Error;

/// The records of the quickstart: about 100 bytes of JSON each.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    /// Unique and increasing: lets the demo check that nothing is missing.
    pub id: u64,
    /// Who ordered.
    pub customer: String,
    /// What it costs.
    pub amount_cents: u64,
    /// A free-text note.
    pub note: String,
}

fn order(id: u64) -> Order {
    Order {
        id,
        customer: format!("customer-{:04}", id % 1000),
        amount_cents: 100 + id % 9_900,
        note: "quickstart order, delivered at least once".to_string(),
    }
}

const FIRST_RUN: u64 = 100_000;
const CRASH_RUN: u64 = 5_000;

/// Runs the producer half in `dir`; returns the target file it wrote (JSON
/// lines of [`Order`]).
pub async fn run(dir: &Path) -> Result<PathBuf, Error> {
    let file = dir.join("orders.jsonl");
    let wal = dir.join("wal");
    let config = || {
        WalConfig::new(&wal)
            .max_records(500)
            .max_age(Duration::from_millis(200))
            .fsync(Fsync::Interval(Duration::from_millis(10)))
    };

    // 1. Throughput: `forward` sends the whole stream and closes the sink,
    //    which returns once everything is delivered and committed.
    let start = Instant::now();
    let sink = FileSink::<Order>::open(&file)
        .await?
        .buffered_wal(config())
        .await?;
    stream::iter((0..FIRST_RUN).map(order))
        .map(Ok)
        .forward(sink)
        .await?;
    let elapsed = start.elapsed();
    println!(
        "produce: {FIRST_RUN} records through buffered_wal into {} in {:.2} s ({:.0} records/s, delivered and committed)",
        file.file_name().unwrap_or_default().to_string_lossy(),
        elapsed.as_secs_f64(),
        FIRST_RUN as f64 / elapsed.as_secs_f64()
    );

    // 2. A crash. Acknowledge more records (`flush` returning Ok means they
    //    are in the write-ahead log), then drop the sink without `close`:
    //    its delivery stops at once, as if the process had died.
    let mut sink = FileSink::<Order>::open(&file)
        .await?
        .buffered_wal(config())
        .await?;
    let mut records = stream::iter((FIRST_RUN..FIRST_RUN + CRASH_RUN).map(order)).map(Ok);
    sink.send_all(&mut records).await?;
    let stats = sink.wal_stats();
    let pending = stats.next_lsn.0 - stats.committed_lsn.0;
    drop(sink);
    println!(
        "produce: crash! {CRASH_RUN} more records acknowledged, {pending} of them not yet delivered"
    );

    // Restart: opening the same log delivers what the crash left, first.
    let mut sink = FileSink::<Order>::open(&file)
        .await?
        .buffered_wal(config())
        .await?;
    let recovered = sink.recovery().uncommitted_records;
    sink.close().await?;
    println!(
        "produce: restarted; {recovered} records recovered from the write-ahead log and delivered"
    );

    // Check the file: every acknowledged record is there.
    let text = std::fs::read_to_string(&file).map_err(|e| Error::io("read", &file, e))?;
    let mut ids = HashSet::new();
    let mut lines = 0u64;
    for line in text.lines() {
        let order: Order = serde_json::from_str(line)
            .map_err(|e| Error::io("parse", &file, std::io::Error::other(e)))?;
        ids.insert(order.id);
        lines += 1;
    }
    let total = FIRST_RUN + CRASH_RUN;
    let missing = (0..total).filter(|id| !ids.contains(id)).count();
    println!(
        "produce: {} holds {} of {total} acknowledged records ({missing} missing, {} duplicates from the batch in flight at the crash)",
        file.file_name().unwrap_or_default().to_string_lossy(),
        ids.len(),
        lines - ids.len() as u64
    );
    if missing > 0 {
        return Err(Error::Config(format!(
            "{missing} acknowledged records are missing"
        )));
    }
    Ok(file)
}
