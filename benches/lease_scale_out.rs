//! Scale-out without coordination overhead: `KinesisSource::leased` on 12
//! in-process shards (answering at once with canned records), workers
//! sharing one in-memory lease table, a handler that *waits* 1 ms per
//! record (no CPU: this machine has 2 cores, so the figure measures
//! waiting) and handles a worker's records one at a time, in order, then
//! `checkpoint_batched(1000, 1 s)` through the worker's lease store.
//!
//! For 1 and 3 workers: start them, wait until every worker holds its
//! share (`ceil(12 / workers)`), then count records handled in a 10 s
//! window. Target: 3 workers ≥ 2.7× the records per second of 1.
//!
//! Run: `cargo bench --features kinesis --bench lease_scale_out`. One
//! fresh process; what is timed is the window, after balance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::Record;
use futures::TryStreamExt;
use unistream::checkpoint::CheckpointStreamExt;
use unistream::kinesis::KinesisSource;
use unistream::lease::{LeaseConfig, LeaseWorker, MemoryLeaseTable};

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/support/mod.rs"]
mod test_support;
use test_support::kinesis::fake_read_stream::FakeReadStream;

const SHARDS: usize = 12;
const PER_CALL: usize = 500;
const WINDOW: Duration = Duration::from_secs(10);

fn canned() -> Vec<Record> {
    (0..PER_CALL)
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
        .collect()
}

/// Records per second handled by `workers` workers, after balance.
async fn run(workers: usize) -> f64 {
    let fake = FakeReadStream::canned(SHARDS, canned());
    let table = MemoryLeaseTable::new("scale-out");
    let handled = Arc::new(AtomicU64::new(0));
    let config = LeaseConfig::new().scan_interval(Duration::from_millis(200));
    let mut running = Vec::new();
    for w in 0..workers {
        let worker = LeaseWorker::start(
            table.clone(),
            format!("w{w}"),
            config.clone().seed(w as u64),
        );
        let source = KinesisSource::leased_from_client(fake.client(), "scale", worker.clone());
        let store = worker.checkpoint_store();
        let handled = handled.clone();
        let pipeline = tokio::spawn(async move {
            source
                .stream()
                .and_then(|(_record, token)| {
                    let handled = handled.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        handled.fetch_add(1, Ordering::Relaxed);
                        Ok(token)
                    }
                })
                .checkpoint_batched(1_000, Duration::from_secs(1), store)
                .try_collect::<()>()
                .await
        });
        running.push((worker, pipeline));
    }
    let share = SHARDS.div_ceil(workers);
    let started = Instant::now();
    while !running.iter().all(|(w, _)| w.held().len() == share) {
        assert!(started.elapsed() < Duration::from_secs(120), "no balance");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let balanced_after = started.elapsed();
    let before = handled.load(Ordering::Relaxed);
    let window = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let rate = (handled.load(Ordering::Relaxed) - before) as f64 / window.elapsed().as_secs_f64();
    println!(
        "lease_scale_out/{workers}_workers: {rate:.0} records/s (balanced after {balanced_after:.1?}, {share} shards each)"
    );
    for (worker, _) in &running {
        worker.shutdown();
    }
    for (worker, pipeline) in running {
        pipeline.await.unwrap().unwrap();
        worker.stopped().await;
    }
    rate
}

fn main() {
    let rt = support::runtime(2);
    rt.block_on(async {
        let one = run(1).await;
        let three = run(3).await;
        println!(
            "lease_scale_out: 3 workers / 1 worker = {:.2} (target >= 2.7)",
            three / one
        );
    });
}
