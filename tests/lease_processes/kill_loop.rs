//! Three worker processes SIGKILLed and restarted at random, at least 100
//! kills in all, while records are produced: every record is processed at
//! least once. A restart comes back under the same name (and may reclaim
//! its own leases at once) or under a new one (its old leases wait out
//! their expiry), as deployments do both.

use std::time::{Duration, Instant};

use super::cluster::{redelivered, Cluster};
use crate::support::seed::rng;

const SHARDS: i32 = 12;
const KILLS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_random_kills_and_restarts_lose_no_record() {
    let mut rng = rng(
        module_path!(),
        "a_hundred_random_kills_and_restarts_lose_no_record",
    );
    let cluster = Cluster::new("killloop", SHARDS, rng.u64(..)).await;
    let producer = cluster.produce(200);
    let mut names = vec!["w0".to_owned(), "w1".to_owned(), "w2".to_owned()];
    for name in &names {
        cluster.start(name);
    }
    let mut generation = 0;
    let start = Instant::now();
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.u64(200..1_500))).await;
        cluster.check_alive();
        let slot = rng.usize(..names.len());
        cluster.kill(&names[slot]);
        if rng.bool() {
            generation += 1;
            names[slot] = format!("w{slot}g{generation}");
        }
        cluster.start(&names[slot]);
    }
    println!("{KILLS} kills in {:?}", start.elapsed());
    let draining = std::time::Instant::now();
    let (produced, handled) = cluster.drain(producer, Duration::from_secs(120)).await;
    let took = draining.elapsed();
    println!(
        "all {produced} records processed {took:?} after the last restart; {} processed more than once",
        redelivered(&handled).len()
    );
    for name in names {
        cluster.stop(&name, Duration::from_secs(30)).await;
    }
}
