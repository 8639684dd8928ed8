//! Lease workers on the DynamoDB table, on real time with short durations
//! (lease 2 s, renew every 667 ms, scan every 300 ms): two workers share
//! four leases; one stops gracefully and the other has them all without a
//! record read twice; one crashes (dropped) and the other takes its leases
//! once they expire, re-reading only what was not checkpointed.
//!
//! The simulated consumer reads each partition as Kinesis sequence numbers
//! 1, 2, 3, … (one every 50 ms after the checkpoint), checkpoints every
//! [`CHECKPOINT_EVERY`] records through the worker's store, and on a drain
//! saves what it yielded and reports it, as `checkpoint_batched` and a
//! source do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use unistream::checkpoint::{CheckpointStore, Position};
use unistream::dynamodb::DynamoDbLeaseTable;
use unistream::lease::{Lease, LeaseCheckpoint, LeaseConfig, LeaseTable, LeaseWorker};

use crate::env::Env;

const LEASES: usize = 4;
const CHECKPOINT_EVERY: u64 = 3;
const LEASE_DURATION: Duration = Duration::from_secs(2);
const SCAN_INTERVAL: Duration = Duration::from_millis(300);

fn config(seed: u64) -> LeaseConfig {
    LeaseConfig::new()
        .lease_duration(LEASE_DURATION)
        .scan_interval(SCAN_INTERVAL)
        .handoff_timeout(Duration::from_secs(5))
        .drain_timeout(Duration::from_secs(5))
        .seed(seed)
}

/// One record read by a worker.
#[derive(Debug, Clone)]
struct Delivery {
    worker: String,
    sequence: u64,
}

/// Every record each partition delivered.
#[derive(Debug, Clone, Default)]
struct Ledger(Arc<Mutex<BTreeMap<String, Vec<Delivery>>>>);

impl Ledger {
    fn deliver(&self, key: &str, worker: &str, sequence: u64) {
        self.0
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default()
            .push(Delivery {
                worker: worker.to_owned(),
                sequence,
            });
    }

    /// Sequence numbers delivered more than once, per partition.
    fn redelivered(&self) -> BTreeMap<String, Vec<u64>> {
        let ledger = self.0.lock().unwrap();
        let mut out = BTreeMap::new();
        for (key, deliveries) in ledger.iter() {
            let mut seen = std::collections::BTreeSet::new();
            let again: Vec<u64> = deliveries
                .iter()
                .filter(|d| !seen.insert(d.sequence))
                .map(|d| d.sequence)
                .collect();
            if !again.is_empty() {
                out.insert(key.clone(), again);
            }
        }
        out
    }

    /// Partitions whose sequence numbers 1..=highest are not all there.
    fn gaps(&self) -> Vec<String> {
        let ledger = self.0.lock().unwrap();
        ledger
            .iter()
            .filter(|(_, deliveries)| {
                let seen: std::collections::BTreeSet<u64> =
                    deliveries.iter().map(|d| d.sequence).collect();
                let max = seen.iter().next_back().copied().unwrap_or(0);
                (1..=max).any(|s| !seen.contains(&s))
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    fn readers(&self, key: &str) -> Vec<String> {
        let ledger = self.0.lock().unwrap();
        let mut readers: Vec<String> = ledger
            .get(key)
            .into_iter()
            .flatten()
            .map(|d| d.worker.clone())
            .collect();
        readers.dedup();
        readers
    }
}

fn resume_after(lease: &Lease) -> u64 {
    match &lease.checkpoint {
        LeaseCheckpoint::At(Position::Sequence { sequence, .. }) => sequence
            .as_str()
            .parse()
            .expect("the test's sequence numbers"),
        _ => 0,
    }
}

/// Reads every lease `worker` acquires until its leases end.
fn spawn_consumer(
    worker: &LeaseWorker<DynamoDbLeaseTable>,
    ledger: &Ledger,
) -> tokio::task::JoinHandle<()> {
    let mut acquired = worker.acquired().expect("one consumer per worker");
    let store = worker.checkpoint_store();
    let name = worker.id().to_owned();
    let ledger = ledger.clone();
    tokio::spawn(async move {
        let mut partitions = tokio::task::JoinSet::new();
        while let Some(lease) = acquired.next().await {
            let (store, ledger, name) = (store.clone(), ledger.clone(), name.clone());
            partitions.spawn(async move {
                let key = lease.key().to_owned();
                let control = lease.control().clone();
                let mut sequence = resume_after(lease.lease());
                let (mut yielded, mut unsaved) = (0u64, 0u64);
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                        () = control.stopped() => {}
                    }
                    if control.is_stopped() {
                        break;
                    }
                    sequence += 1;
                    yielded += 1;
                    unsaved += 1;
                    ledger.deliver(&key, &name, sequence);
                    if unsaved >= CHECKPOINT_EVERY {
                        let position = Position::sequence(sequence.to_string());
                        if store.save(&key, &position).await.is_err() {
                            return;
                        }
                        control.set_durable_tokens(yielded);
                        unsaved = 0;
                    }
                }
                if control.is_fenced() {
                    return;
                }
                let position = Position::sequence(sequence.to_string());
                if unsaved > 0 && store.save(&key, &position).await.is_ok() {
                    control.set_durable_tokens(yielded);
                }
                lease.stopped(yielded);
            });
        }
        while partitions.join_next().await.is_some() {}
    })
}

async fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

async fn table_with_leases(env: &Env) {
    for i in 0..LEASES {
        let lease = Lease::new(format!("shardId-{i:012}"), LeaseCheckpoint::TrimHorizon);
        env.table.create(lease).await.unwrap();
    }
}

/// Two workers, each on its own handle of the table (two processes),
/// sharing the leases evenly.
async fn two_balanced_workers(
    env: &Env,
    ledger: &Ledger,
) -> [(LeaseWorker<DynamoDbLeaseTable>, tokio::task::JoinHandle<()>); 2] {
    table_with_leases(env).await;
    let a = LeaseWorker::start(env.fresh_handle(), "worker-a", config(1));
    let consumer_a = spawn_consumer(&a, ledger);
    until(Duration::from_secs(5), "a takes every lease", || {
        a.held().len() == LEASES
    })
    .await;
    let b = LeaseWorker::start(env.fresh_handle(), "worker-b", config(2));
    let consumer_b = spawn_consumer(&b, ledger);
    until(Duration::from_secs(20), "a hands b half the leases", || {
        a.held().len() == LEASES / 2 && b.held().len() == LEASES / 2
    })
    .await;
    // Let both read and checkpoint for a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    [(a, consumer_a), (b, consumer_b)]
}

async fn all_held_by(env: &Env, worker: &str) -> bool {
    let leases = env.fresh_handle().list().await.unwrap();
    leases.len() == LEASES
        && leases
            .iter()
            .all(|l| l.owner.as_deref() == Some(worker) && !l.handoff_pending())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_every_lease_over_without_reading_a_record_twice() {
    let env = Env::new().await;
    let ledger = Ledger::default();
    let [(a, consumer_a), (b, _consumer_b)] = two_balanced_workers(&env, &ledger).await;
    assert_eq!(
        ledger.redelivered(),
        BTreeMap::new(),
        "the rebalance was a handoff"
    );

    a.shutdown();
    tokio::time::timeout(Duration::from_secs(10), a.stopped())
        .await
        .expect("a stops within its drain timeout");
    tokio::time::timeout(Duration::from_secs(5), consumer_a)
        .await
        .expect("a's consumer ends with its leases")
        .unwrap();
    assert!(a.held().is_empty());
    until(Duration::from_secs(5), "b takes every lease", || {
        b.held().len() == LEASES
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(all_held_by(&env, "worker-b").await);
    assert_eq!(
        ledger.redelivered(),
        BTreeMap::new(),
        "a graceful stop re-delivers nothing"
    );
    assert_eq!(ledger.gaps(), Vec::<String>::new(), "nothing skipped");
    let moved = (0..LEASES)
        .map(|i| ledger.readers(&format!("shardId-{i:012}")))
        .filter(|readers| readers.len() > 1)
        .count();
    assert!(moved >= LEASES / 2, "a's leases moved to b");
    let metrics = b.metrics();
    assert!(metrics.taken_expired == 0, "{metrics:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_the_other_worker_takes_the_leases_once_they_expire() {
    let env = Env::new().await;
    let ledger = Ledger::default();
    let [(a, consumer_a), (b, _consumer_b)] = two_balanced_workers(&env, &ledger).await;
    let a_leases = a.held();
    assert_eq!(a_leases.len(), LEASES / 2);

    // The crash: every handle of a is gone at once, nothing is released.
    consumer_a.abort();
    let _ = consumer_a.await;
    drop(a);
    let crashed = Instant::now();
    until(Duration::from_secs(10), "b takes a's leases", || {
        b.held().len() == LEASES
    })
    .await;
    let failover = crashed.elapsed();
    println!("a's leases taken {failover:?} after the crash");
    // a renewed at most one renew interval (lease / 3) before the crash,
    // and b waits a whole lease duration from when it saw that renewal.
    assert!(
        failover >= LEASE_DURATION - LEASE_DURATION / 3,
        "taken after {failover:?}: before a's leases expired"
    );
    assert!(
        failover <= LEASE_DURATION + 4 * SCAN_INTERVAL + Duration::from_secs(1),
        "taken after {failover:?}"
    );
    assert!(b.metrics().taken_expired >= a_leases.len() as u64);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(all_held_by(&env, "worker-b").await);
    // Only records after a's last checkpoint are read again.
    for (key, again) in ledger.redelivered() {
        assert!(a_leases.contains(&key), "{key} was not a's: {again:?}");
        assert!(
            again.len() as u64 <= CHECKPOINT_EVERY,
            "{key}: {again:?} re-delivered"
        );
    }
    assert_eq!(ledger.gaps(), Vec::<String>::new(), "nothing skipped");
}
