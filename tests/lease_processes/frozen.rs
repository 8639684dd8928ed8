//! A worker frozen (SIGSTOP) past its lease duration, then resumed: the
//! others have taken its leases meanwhile; once it runs again its renewals
//! are fenced and it stops those shards within one renew interval, so it
//! does not process them alongside their new owners beyond that.

use std::collections::BTreeSet;
use std::time::Duration;

use super::cluster::{now_millis, redelivered, until, Cluster};
use super::worker::{LEASE_DURATION, RENEW_INTERVAL};
use crate::support::seed::seed;

const SHARDS: usize = 12;

/// Scheduling slack on a loaded machine, beyond the one renew interval the
/// rule allows.
const SLACK: Duration = Duration::from_millis(700);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_is_fenced_and_stops_its_moved_shards_when_it_resumes() {
    let seed = seed(
        module_path!(),
        "a_frozen_worker_is_fenced_and_stops_its_moved_shards_when_it_resumes",
    );
    let (cluster, producer) = Cluster::three_balanced("frozen", SHARDS, seed).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    cluster.freeze("c");
    let frozen_at = now_millis();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // What c held when it froze: leases the table shows it holding whose
    // shards it was reading (a lease released to c that it had not
    // acquired yet is c's in the table only).
    let reading: BTreeSet<String> = cluster
        .handled()
        .into_iter()
        .filter(|h| h.worker == "c" && h.millis + 1_500 > frozen_at)
        .map(|h| h.shard)
        .collect();
    let frozen_leases: BTreeSet<String> = cluster
        .leases()
        .await
        .into_iter()
        .filter(|l| l.holder() == Some("c") && reading.contains(&l.key))
        .map(|l| l.key)
        .collect();
    assert!(
        !frozen_leases.is_empty(),
        "c was reading nothing when it froze"
    );
    let others = ["a", "b"];
    until(Duration::from_secs(30), "c's leases taken", || async {
        let leases = cluster.leases().await;
        frozen_leases.iter().all(|key| {
            leases
                .iter()
                .any(|l| &l.key == key && l.holder().is_some_and(|h| others.contains(&h)))
        })
    })
    .await;
    // Well past the lease duration, records flowing to the new owners.
    tokio::time::sleep(LEASE_DURATION / 2).await;
    cluster.resume("c");
    let resumed = now_millis();
    tokio::time::sleep(4 * RENEW_INTERVAL).await;
    cluster.check_alive();

    let (_, handled) = cluster.drain(producer, Duration::from_secs(60)).await;
    let again = redelivered(&handled);
    let deadline = resumed + (RENEW_INTERVAL + SLACK).as_millis() as u64;
    let late: Vec<_> = handled
        .iter()
        .filter(|h| {
            h.worker == "c"
                && frozen_leases.contains(&h.shard)
                && h.millis > deadline
                && again.contains_key(&h.id)
        })
        .collect();
    assert!(
        late.is_empty(),
        "c processed {} records of its moved shards alongside their new owners \
         more than {RENEW_INTERVAL:?} after it resumed: {:?}",
        late.len(),
        late.iter().take(5).collect::<Vec<_>>()
    );
    let window = handled
        .iter()
        .filter(|h| h.worker == "c" && frozen_leases.contains(&h.shard) && h.millis >= resumed)
        .count();
    println!(
        "after resuming, c processed {window} records of its {} moved shards before it stopped them",
        frozen_leases.len()
    );
    for worker in cluster.running() {
        cluster.stop(&worker, Duration::from_secs(30)).await;
    }
    let metrics = cluster.metrics();
    let c = metrics
        .iter()
        .find(|(name, _)| name.starts_with("c-"))
        .expect("c's metrics")
        .1;
    println!("c: {c}");
    let lost: u64 = c
        .split("lost: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("lost in c's metrics");
    assert!(
        lost >= frozen_leases.len() as u64,
        "c lost {lost} leases, not the {} taken while it was frozen",
        frozen_leases.len()
    );
}
