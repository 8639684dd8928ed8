//! `KinesisSource::leased` on kinesis-mock with in-process lease workers on
//! one in-memory lease table: sharing the shards, handoff and graceful stop
//! without re-delivery, and resharding across workers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use unistream::checkpoint::{CheckpointStreamExt, Position};
use unistream::kinesis::KinesisSource;
use unistream::lease::{LeaseCheckpoint, LeaseConfig, LeaseWorker, MemoryLeaseTable};

use crate::support::emulators::{kinesis_mock, sdk_config, unique_name};
use crate::support::kinesis::emulator_stream::{create_stream, put_ids, split_in_half};

/// Short timings for real time on an emulator.
fn config(seed: u64) -> LeaseConfig {
    LeaseConfig::new()
        .lease_duration(Duration::from_secs(3))
        .renew_interval(Duration::from_millis(500))
        .scan_interval(Duration::from_millis(200))
        .seed(seed)
}

/// Every record handled, by whom, in order.
#[derive(Clone, Default)]
struct Handled(Arc<Mutex<Vec<(String, String, u64)>>>);

impl Handled {
    fn ids(&self) -> Vec<u64> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, id)| *id)
            .collect()
    }

    fn distinct(&self) -> usize {
        self.ids().into_iter().collect::<HashSet<_>>().len()
    }

    fn by_worker(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for (worker, _, _) in self.0.lock().unwrap().iter() {
            *out.entry(worker.clone()).or_default() += 1;
        }
        out
    }
}

/// A consumer pipeline on `worker`: handled records go to `handled`; the
/// task ends when the worker's stream ends (after a shutdown).
fn run_pipeline(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    worker: &LeaseWorker<MemoryLeaseTable>,
    handled: &Handled,
) -> tokio::task::JoinHandle<Result<(), unistream::Error>> {
    let source = KinesisSource::leased_from_client(client.clone(), stream, worker.clone())
        .idle_interval(Duration::from_millis(50))
        .shard_refresh_interval(Duration::from_secs(1));
    let store = worker.checkpoint_store();
    let name = worker.id().to_owned();
    let handled = handled.clone();
    tokio::spawn(async move {
        source
            .stream()
            .and_then(move |(record, token)| {
                let handled = handled.clone();
                let name = name.clone();
                async move {
                    let id = std::str::from_utf8(&record.data).unwrap().parse().unwrap();
                    handled
                        .0
                        .lock()
                        .unwrap()
                        .push((name, token.partition().to_owned(), id));
                    Ok(token)
                }
            })
            .checkpoint_batched(50, Duration::from_millis(500), store)
            .try_collect::<()>()
            .await
    })
}

async fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_workers_share_the_shards_and_hand_them_over_without_redelivery() {
    let conf = sdk_config(kinesis_mock()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("leased");
    create_stream(&client, &name, 4).await;
    put_ids(&client, &name, 0..2_000).await;

    let table = MemoryLeaseTable::new("leased-consumer");
    let handled = Handled::default();
    let a = LeaseWorker::start(table.clone(), "a", config(1));
    let pipeline_a = run_pipeline(&client, &name, &a, &handled);
    until(Duration::from_secs(30), "a holds all four", || {
        a.held().len() == 4
    })
    .await;
    let b = LeaseWorker::start(table.clone(), "b", config(2));
    let pipeline_b = run_pipeline(&client, &name, &b, &handled);
    until(Duration::from_secs(30), "balanced", || {
        a.held().len() == 2 && b.held().len() == 2
    })
    .await;
    until(Duration::from_secs(60), "the first 2,000", || {
        handled.distinct() == 2_000
    })
    .await;
    assert_eq!(b.metrics().handoffs_received, 2, "{:?}", b.metrics());

    // More records, then a graceful stop of a: b takes every shard and goes
    // on from a's checkpoints.
    put_ids(&client, &name, 2_000..3_000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = tokio::time::Instant::now();
    a.shutdown();
    pipeline_a.await.unwrap().unwrap();
    a.stopped().await;
    until(Duration::from_secs(10), "b holds all four", || {
        b.held().len() == 4
    })
    .await;
    let moved_in = stopping.elapsed();
    until(Duration::from_secs(60), "all 3,000", || {
        handled.distinct() == 3_000
    })
    .await;

    let ids = handled.ids();
    assert_eq!(
        ids.len(),
        3_000,
        "no record handled twice: {:?}",
        handled.by_worker()
    );
    assert!(moved_in < Duration::from_secs(5), "{moved_in:?}");
    assert!(table
        .snapshot()
        .iter()
        .all(|l| l.owner.as_deref() == Some("b")));
    b.shutdown();
    pipeline_b.await.unwrap().unwrap();
    b.stopped().await;
    assert!(
        table.snapshot().iter().all(|l| l.owner.is_none()),
        "released at the stop"
    );
}

#[tokio::test]
async fn a_split_read_by_two_workers_finishes_the_parent_before_either_child() {
    let conf = sdk_config(kinesis_mock()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("leased-split");
    create_stream(&client, &name, 1).await;
    put_ids(&client, &name, 0..300).await;

    let table = MemoryLeaseTable::new("leased-split");
    let handled = Handled::default();
    let a = LeaseWorker::start(table.clone(), "a", config(3));
    let pipeline_a = run_pipeline(&client, &name, &a, &handled);
    let b = LeaseWorker::start(table.clone(), "b", config(4));
    let pipeline_b = run_pipeline(&client, &name, &b, &handled);
    until(Duration::from_secs(60), "the first 300", || {
        handled.distinct() == 300
    })
    .await;
    let parent = table.snapshot()[0].key.clone();

    let (start, end) = split_in_half(&client, &name, &parent).await;
    put_ids(&client, &name, 300..600).await;
    until(Duration::from_secs(60), "all 600", || {
        handled.distinct() == 600
    })
    .await;

    let records = handled.0.lock().unwrap().clone();
    let first_child = records
        .iter()
        .position(|(_, shard, _)| *shard != parent)
        .unwrap();
    assert_eq!(
        first_child, 300,
        "every parent record before any child record"
    );
    assert!(records[first_child..]
        .iter()
        .all(|(_, shard, _)| *shard != parent));
    assert_eq!(records.len(), 600, "nothing twice");

    let leases = table.snapshot();
    let parent_lease = leases.iter().find(|l| l.key == parent).unwrap();
    assert_eq!(parent_lease.checkpoint, LeaseCheckpoint::At(Position::End));
    assert_eq!(parent_lease.owner, None, "a finished lease is released");
    let mut children: Vec<_> = leases.iter().filter(|l| l.key != parent).collect();
    children.sort_by_key(|l| l.key.clone());
    assert_eq!(children.len(), 2);
    let mut recorded = parent_lease.children.clone();
    recorded.sort();
    assert_eq!(
        recorded,
        children.iter().map(|l| l.key.clone()).collect::<Vec<_>>()
    );
    for child in &children {
        assert_eq!(child.parents, vec![parent.clone()]);
        let range = child.hash_range.expect("hash range written");
        assert!(range.start >= start && range.end <= end);
    }
    // Both children moved on from the start, whoever read them.
    assert!(children
        .iter()
        .all(|l| matches!(l.checkpoint, LeaseCheckpoint::At(Position::Sequence { .. }))));

    a.shutdown();
    b.shutdown();
    pipeline_a.await.unwrap().unwrap();
    pipeline_b.await.unwrap().unwrap();
}
