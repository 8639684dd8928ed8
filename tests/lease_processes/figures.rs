//! The failover figures with `LeaseConfig`'s default timings (lease 10 s,
//! renew every 3.33 s, scan every 2 s): how long after a graceful stop
//! (SIGTERM) and after a SIGKILL the stopped worker's shards are read again
//! by the others. Ignored in the test suite (it takes minutes); run by
//! `scripts/lease-failover.sh`, figures in BENCHMARKS.md.
//!
//! "Read again" is measured from the signal to the first record of each
//! moved shard handled by another worker; a trial's figure is its slowest
//! shard. Records are produced at 240 a second (20 a shard), so the figure
//! is at most ~50 ms late.

use std::collections::BTreeSet;
use std::time::Duration;

use super::cluster::{balanced, missing, now_millis, until, Cluster};
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
    let mut figures = Vec::new();
    let trials = trials();
    for trial in 0..2 * trials {
        let running = cluster.running();
        let took = until(Duration::from_secs(240), "balanced", || async {
            cluster.check_alive();
            balanced(&cluster.owners().await, &running, SHARDS)
        })
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
             read again by the others after {slowest} ms (seen {read_again:?})",
            moved.len()
        );
        figures.push((kind, slowest));
        names[slot] = format!("{victim}{trial}");
        cluster.start(&names[slot]);
    }
    let produced = producer.finish().await;
    until(
        Duration::from_secs(120),
        "every record processed",
        || async { missing(&cluster.handled(), produced).is_empty() },
    )
    .await;
    for kind in ["graceful stop", "SIGKILL"] {
        let mut ms: Vec<u64> = figures
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, ms)| *ms)
            .collect();
        ms.sort();
        println!("{kind}: read again after {ms:?} ms");
    }
    for name in names {
        cluster.stop(&name, Duration::from_secs(60)).await;
    }
}
