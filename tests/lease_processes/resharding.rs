//! A split and a merge while three worker processes read the stream: each
//! parent is finished (every record handled, `SHARD_END` checkpointed) by
//! whichever worker holds it before any worker handles a record of its
//! children, a merged child waits for both parents, and the table holds
//! the lineage both ways.

use std::collections::BTreeMap;
use std::time::Duration;

use unistream::checkpoint::Position;
use unistream::lease::LeaseCheckpoint;

use super::cluster::{until, Cluster, Handled};
use crate::support::kinesis::emulator_stream::{merge, split_in_half};
use crate::support::seed::seed;

const SHARDS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parents_finish_before_children_across_workers_after_a_split_and_a_merge() {
    let seed = seed(
        module_path!(),
        "parents_finish_before_children_across_workers_after_a_split_and_a_merge",
    );
    let (cluster, producer) = Cluster::three_balanced("reshard", SHARDS, seed).await;
    let running = cluster.running();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let client = cluster.kinesis.clone();
    let shards = client
        .list_shards()
        .stream_name(&cluster.stream)
        .send()
        .await
        .unwrap()
        .shards()
        .to_vec();
    let mut by_start: Vec<_> = shards
        .iter()
        .map(|s| {
            let range = s.hash_key_range().unwrap();
            let start: u128 = range.starting_hash_key().parse().unwrap();
            let end: u128 = range.ending_hash_key().parse().unwrap();
            (start, end, s.shard_id().to_owned())
        })
        .collect();
    by_start.sort();
    let split = by_start[0].2.clone();
    split_in_half(&client, &cluster.stream, &split).await;
    let (merge_a, merge_b) = (by_start[3].2.clone(), by_start[4].2.clone());
    merge(&client, &cluster.stream, &merge_a, &merge_b).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    cluster.drain(producer, Duration::from_secs(90)).await;
    // The children's leases exist and every parent is at SHARD_END.
    let waited = until(Duration::from_secs(30), "parents at SHARD_END", || async {
        let leases = cluster.leases().await;
        [&split, &merge_a, &merge_b].iter().all(|parent| {
            leases
                .iter()
                .any(|l| &&l.key == parent && l.checkpoint == LeaseCheckpoint::At(Position::End))
        })
    })
    .await;
    println!("parents at SHARD_END {waited:?} after the last record was processed");
    let leases = cluster.leases().await;
    let lease = |key: &str| {
        leases
            .iter()
            .find(|l| l.key == key)
            .unwrap_or_else(|| panic!("no lease {key}: {leases:?}"))
    };
    let split_children = lease(&split).children.clone();
    assert_eq!(split_children.len(), 2, "{:?}", lease(&split));
    for child in &split_children {
        assert_eq!(lease(child).parents, vec![split.clone()]);
        assert!(lease(child).hash_range.is_some(), "{:?}", lease(child));
    }
    let merged = lease(&merge_a).children.clone();
    assert_eq!(merged.len(), 1, "{:?}", lease(&merge_a));
    assert_eq!(lease(&merge_b).children, merged);
    let mut parents = lease(&merged[0]).parents.clone();
    parents.sort();
    let mut expected = vec![merge_a.clone(), merge_b.clone()];
    expected.sort();
    assert_eq!(parents, expected);

    let handled = cluster.handled();
    let mut first: BTreeMap<&str, &Handled> = BTreeMap::new();
    let mut last: BTreeMap<&str, &Handled> = BTreeMap::new();
    for h in &handled {
        let f = first.entry(&h.shard).or_insert(h);
        if h.millis < f.millis {
            *f = h;
        }
        let l = last.entry(&h.shard).or_insert(h);
        if h.millis > l.millis {
            *l = h;
        }
    }
    let mut across_workers = 0;
    for (children, parents) in [
        (split_children.clone(), vec![split.clone()]),
        (merged.clone(), vec![merge_a.clone(), merge_b.clone()]),
    ] {
        for child in &children {
            let Some(child_first) = first.get(child.as_str()) else {
                panic!("no record of child {child} handled");
            };
            for parent in &parents {
                let parent_last = last[parent.as_str()];
                assert!(
                    parent_last.millis <= child_first.millis,
                    "{child}'s first record ({child_first:?}) handled before its parent \
                     {parent}'s last ({parent_last:?})"
                );
                if parent_last.worker != child_first.worker {
                    across_workers += 1;
                }
            }
        }
    }
    println!("{across_workers} parent -> child steps changed workers");
    for worker in running {
        cluster.stop(&worker, Duration::from_secs(30)).await;
    }
}
