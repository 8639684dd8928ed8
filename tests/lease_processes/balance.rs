//! Three worker processes on twelve shards, records produced while they
//! start one after another: they converge to four leases each (± 1) and
//! every record is processed at least once. The leases the later workers
//! get move by handoff, so nothing is processed twice.

use std::time::Duration;

use super::cluster::{redelivered, Cluster};
use crate::support::seed::seed;

const SHARDS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_converge_to_four_leases_each_and_process_every_record() {
    let seed = seed(
        module_path!(),
        "three_workers_converge_to_four_leases_each_and_process_every_record",
    );
    let cluster = Cluster::new("balance", SHARDS as i32, seed).await;
    let producer = cluster.produce(200);
    for worker in ["a", "b", "c"] {
        cluster.start(worker);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let running = cluster.running();
    let took = cluster
        .until_balanced(SHARDS, Duration::from_secs(90))
        .await;
    println!("balanced {took:?} after the third worker started");
    let owners = cluster.owners().await;
    for worker in &running {
        let held = owners.get(worker).map_or(0, Vec::len);
        assert!((3..=5).contains(&held), "{worker} holds {held}: {owners:?}");
    }
    let (produced, handled) = cluster.drain(producer, Duration::from_secs(60)).await;
    let again = redelivered(&handled);
    assert!(
        again.is_empty(),
        "{} of {produced} records processed twice while leases moved by handoff: {:?}",
        again.len(),
        again.iter().take(10).collect::<Vec<_>>()
    );
    for worker in running {
        cluster.stop(&worker, Duration::from_secs(30)).await;
    }
}
