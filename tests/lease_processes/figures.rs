//! The failover figures with `LeaseConfig`'s default timings (lease 10 s,
//! renew every 3.33 s, scan every 2 s): how long after a graceful stop
//! (SIGTERM) and after a SIGKILL the stopped worker's shards are read again
//! by the others. Ignored in the test suite (it takes minutes); run by
//! `scripts/lease-failover.sh`, figures in BENCHMARKS.md.
//!
//! Two figures per trial, both from the signal: "taken", until the table
//! shows every moved lease owned by another worker (polled, so up to one
//! table read late), and "read again", until another worker handled a
//! record of each moved shard (the slowest shard; records are produced at
//! 240 a second, 20 a shard). The second adds the emulator's read latency
//! (`GetShardIterator`, `GetRecords`) to the first.

use std::collections::BTreeSet;
use std::time::Duration;

use super::cluster::{now_millis, until, Cluster};
use super::worker::Timings;
use crate::support::seed::seed;

const SHARDS: usize = 12;
/// Trials of each kind (`UNISTREAM_FAILOVER_TRIALS`, default 3).
fn trials() -> usize {
    std::env::var("UNISTREAM_FAILOVER_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: run by scripts/lease-failover.sh"]
async fn failover_with_default_timings() {
    let seed = seed(module_path!(), "failover_with_default_timings");
    let cluster = Cluster::with_timings("figures", SHARDS as i32, seed, Timings::Default).await;
    let producer = cluster.produce(240);
    let mut names = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
    for name in &names {
        cluster.start(name);
    }
    cluster
        .until_balanced(SHARDS, Duration::from_secs(240))
        .await;
    // The emulators' own speed in this sitting: one lease table scan
    // (moto) and one GetRecords of a shard (kinesis-mock).
    let mut scans = Vec::new();
    let mut reads = Vec::new();
    let shard = cluster.leases().await[0].key.clone();
    for _ in 0..20 {
        let start = std::time::Instant::now();
        cluster.leases().await;
        scans.push(start.elapsed());
        let iterator = cluster
            .kinesis
            .get_shard_iterator()
            .stream_name(&cluster.stream)
            .shard_id(&shard)
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::Latest)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        let start = std::time::Instant::now();
        cluster
            .kinesis
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .unwrap();
        reads.push(start.elapsed());
    }
    scans.sort();
    reads.sort();
    println!(
        "emulators: lease table scan median {:?} (max {:?}), GetRecords median {:?} (max {:?})",
        scans[10], scans[19], reads[10], reads[19]
    );
    let mut figures = Vec::new();
    let trials = trials();
    for trial in 0..2 * trials {
        let took = cluster
            .until_balanced(SHARDS, Duration::from_secs(240))
            .await;
        // Let every lease checkpoint and renew at least once.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let slot = trial % names.len();
        let victim = names[slot].clone();
        let moved: BTreeSet<String> = cluster
            .owners()
            .await
            .remove(&victim)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let graceful = trial < trials;
        let signalled = now_millis();
        if graceful {
            cluster.stop(&victim, Duration::from_secs(60)).await;
        } else {
            cluster.kill(&victim);
        }
        let taken = until(Duration::from_secs(120), "moved leases taken", || async {
            let owners = cluster.owners().await;
            moved.iter().all(|shard| {
                owners.iter().any(|(owner, keys)| {
                    owner != &victim && !owner.is_empty() && keys.contains(shard)
                })
            })
        })
        .await;
        let taken_ms = now_millis() - signalled;
        let read_again = until(
            Duration::from_secs(120),
            "moved shards read again",
            || async {
                let handled = cluster.handled();
                moved.iter().all(|shard| {
                    handled
                        .iter()
                        .any(|h| &h.shard == shard && h.worker != victim && h.millis > signalled)
                })
            },
        )
        .await;
        let handled = cluster.handled();
        let slowest = moved
            .iter()
            .map(|shard| {
                handled
                    .iter()
                    .filter(|h| &h.shard == shard && h.worker != victim && h.millis > signalled)
                    .map(|h| h.millis)
                    .min()
                    .expect("read again")
                    - signalled
            })
            .max()
            .unwrap_or(0);
        let kind = if graceful { "graceful stop" } else { "SIGKILL" };
        println!(
            "trial {trial}: {kind} of {victim} ({} leases; balanced {took:?} before): \
             taken by the others after {taken_ms} ms ({taken:?} after the signal returned), \
             read again after {slowest} ms (seen {read_again:?} later)",
            moved.len()
        );
        figures.push((kind, taken_ms, slowest));
        names[slot] = format!("{victim}{trial}");
        cluster.start(&names[slot]);
    }
    cluster.drain(producer, Duration::from_secs(120)).await;
    for kind in ["graceful stop", "SIGKILL"] {
        let mut taken: Vec<u64> = figures
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, taken, _)| *taken)
            .collect();
        let mut read: Vec<u64> = figures
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, _, read)| *read)
            .collect();
        taken.sort();
        read.sort();
        println!("{kind}: taken after {taken:?} ms, read again after {read:?} ms");
    }
    for name in names {
        cluster.stop(&name, Duration::from_secs(60)).await;
    }
}
