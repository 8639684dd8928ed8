//! Moving leases when a worker process goes: after a SIGKILL the others
//! take its leases once they expire and re-deliver only what came after
//! the moved leases' last checkpoints; after a graceful stop (SIGTERM) and
//! when a fourth worker joins, leases move without any record processed
//! twice, and the balance is restored.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use unistream::checkpoint::SequenceNumber;

use super::cluster::{balanced, checkpoint_sequence, redelivered, until, Cluster};
use super::worker::{LEASE_DURATION, SCAN_INTERVAL};
use crate::support::seed::seed;

const SHARDS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_shards_are_read_again_from_their_checkpoints() {
    let seed = seed(
        module_path!(),
        "a_killed_workers_shards_are_read_again_from_their_checkpoints",
    );
    let (cluster, producer) = Cluster::three_balanced("sigkill", SHARDS, seed).await;
    // Let every worker checkpoint a few times.
    tokio::time::sleep(Duration::from_secs(2)).await;

    cluster.kill("c");
    let killed = Instant::now();
    // What the others will resume from: the checkpoints of c's leases as
    // the table holds them once c is gone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let moved: BTreeMap<String, Option<SequenceNumber>> = cluster
        .leases()
        .await
        .into_iter()
        .filter(|lease| lease.owner.as_deref() == Some("c"))
        .map(|lease| (lease.key.clone(), checkpoint_sequence(&lease)))
        .collect();
    assert!(!moved.is_empty(), "c held no lease when killed");

    let running = cluster.running();
    until(Duration::from_secs(30), "c's leases taken", || async {
        cluster.check_alive();
        let owners = cluster.owners().await;
        !owners.contains_key("c") && balanced(&owners, &running, SHARDS)
    })
    .await;
    let failover = killed.elapsed();
    println!(
        "c's {} leases taken {failover:?} after the SIGKILL",
        moved.len()
    );
    assert!(
        failover >= LEASE_DURATION - LEASE_DURATION / 3,
        "taken {failover:?} after the kill: before c's leases expired"
    );

    let (produced, handled) = cluster.drain(producer, Duration::from_secs(60)).await;
    let again = redelivered(&handled);
    let moved_shards: BTreeSet<&String> = moved.keys().collect();
    for h in handled.iter().filter(|h| again.contains_key(&h.id)) {
        assert!(
            moved_shards.contains(&h.shard),
            "record {} of {} (not one of c's shards) processed twice",
            h.id,
            h.shard
        );
        if let Some(checkpoint) = &moved[&h.shard] {
            assert!(
                h.sequence > *checkpoint,
                "record {} at {} of {} processed twice, though its lease's checkpoint {checkpoint} covered it",
                h.id,
                h.sequence,
                h.shard
            );
        }
    }
    println!(
        "{} of {produced} records processed twice, all after the moved checkpoints",
        again.len()
    );
    for worker in running {
        cluster.stop(&worker, Duration::from_secs(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_and_a_new_worker_move_leases_without_redelivery() {
    let seed = seed(
        module_path!(),
        "a_graceful_stop_and_a_new_worker_move_leases_without_redelivery",
    );
    let (cluster, producer) = Cluster::three_balanced("graceful", SHARDS, seed).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Held by b: its own, and those it is handing over (not those handed
    // to it that it has not taken yet).
    let b_held = cluster
        .leases()
        .await
        .iter()
        .filter(|l| l.holder() == Some("b"))
        .count();
    let stopping = Instant::now();
    cluster.stop("b", Duration::from_secs(30)).await;
    let stopped = stopping.elapsed();
    let running = cluster.running();
    let failover = until(Duration::from_secs(30), "b's leases taken", || async {
        cluster.check_alive();
        let owners = cluster.owners().await;
        !owners.contains_key("b") && !owners.contains_key("") && balanced(&owners, &running, SHARDS)
    })
    .await;
    println!(
        "b stopped in {stopped:?}; its leases held by the others {failover:?} later \
         (lease {LEASE_DURATION:?}, scan {SCAN_INTERVAL:?})"
    );

    cluster.start("d");
    let running = cluster.running();
    cluster
        .until_balanced(SHARDS, Duration::from_secs(90))
        .await;
    let owners = cluster.owners().await;
    assert!(owners.get("d").map_or(0, Vec::len) >= 3, "{owners:?}");

    let (produced, handled) = cluster.drain(producer, Duration::from_secs(60)).await;
    let again = redelivered(&handled);
    assert!(
        again.is_empty(),
        "{} of {produced} records processed twice: {:?}",
        again.len(),
        again.iter().take(10).collect::<Vec<_>>()
    );
    assert!(
        handled.iter().any(|h| h.worker == "d"),
        "d processed nothing"
    );
    for worker in running {
        cluster.stop(&worker, Duration::from_secs(30)).await;
    }
    let metrics = cluster.metrics();
    let b = metrics
        .iter()
        .find(|(name, _)| name.starts_with("b-"))
        .expect("b's metrics");
    println!("b: {}", b.1);
    // b handed everything over by releasing it: nothing lost, nothing
    // left to expire (how fast the others took the released leases with
    // default timings is in BENCHMARKS.md).
    let number = |text: &str, field: &str| -> u64 {
        text.split(&format!("{field}: "))
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in {text}"))
    };
    assert_eq!(number(b.1, "lost"), 0, "b: {}", b.1);
    assert_eq!(number(b.1, "held"), 0, "b: {}", b.1);
    assert!(
        number(b.1, "released") + number(b.1, "handoffs_given") >= b_held as u64,
        "b released fewer than the {b_held} leases it held: {}",
        b.1
    );
}
