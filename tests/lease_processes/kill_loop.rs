//! Three worker processes SIGKILLed and restarted at random, at least 100
//! kills in all, while records are produced: every record is processed at
//! least once; and, with each record's effect committed with the
//! checkpoint in one DynamoDB transaction (`checkpoint_transactional`),
//! every record's effect is in the output table exactly once. A restart
//! comes back under the same name (and may reclaim its own leases at once)
//! or under a new one (its old leases wait out their expiry), as
//! deployments do both: leases move between workers all along.

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
    let (produced, handled, names) = kill_loop(&cluster, &mut rng, 200).await;
    println!(
        "all {produced} records processed; {} processed more than once",
        redelivered(&handled).len()
    );
    for name in names {
        cluster.stop(&name, Duration::from_secs(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_random_kills_leave_every_records_effect_exactly_once() {
    let mut rng = rng(
        module_path!(),
        "a_hundred_random_kills_leave_every_records_effect_exactly_once",
    );
    let cluster = Cluster::with_outputs("killtx", SHARDS, rng.u64(..)).await;
    // 50 records a second, not 200: moto's TransactWriteItems copies each
    // table it touches once per action, so its cost grows with the output
    // tables (a few milliseconds on DynamoDB).
    let (produced, handled, names) = kill_loop(&cluster, &mut rng, 50).await;
    // Handled is not committed: the records a killed worker handled after
    // its last commit are committed by the next holder, once it reads them.
    let start = Instant::now();
    let writes = loop {
        let writes = cluster.output_writes().await;
        if writes.len() as u64 >= produced || start.elapsed() > Duration::from_secs(120) {
            break writes;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let missing: Vec<u64> = (0..produced)
        .filter(|id| !writes.contains_key(id))
        .collect();
    let repeated: Vec<(&u64, &u64)> = writes.iter().filter(|(_, w)| **w != 1).collect();
    println!(
        "{produced} records, {} handled more than once, {} effects in the table",
        redelivered(&handled).len(),
        writes.len()
    );
    assert!(
        missing.is_empty(),
        "effects missing: {:?}",
        &missing[..missing.len().min(20)]
    );
    assert!(repeated.is_empty(), "effects repeated: {repeated:?}");
    assert_eq!(
        writes.len() as u64,
        produced,
        "no effect of a record never produced"
    );
    assert!(
        !redelivered(&handled).is_empty(),
        "the kills made workers handle records again (else the test shows nothing)"
    );
    for name in names {
        cluster.stop(&name, Duration::from_secs(30)).await;
    }
    let after = cluster.output_writes().await;
    assert!(
        after.values().all(|w| *w == 1),
        "graceful stops repeat no effect"
    );
}

/// Starts three workers, kills one at random [`KILLS`] times (restarting
/// it under its name or a new one) while `per_second` records are
/// produced, then waits
/// until every record produced was handled. Returns how many were
/// produced, what was handled and the names running.
async fn kill_loop(
    cluster: &Cluster,
    rng: &mut fastrand::Rng,
    per_second: u64,
) -> (u64, Vec<super::cluster::Handled>, Vec<String>) {
    let producer = cluster.produce(per_second);
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
    println!(
        "all {produced} records handled {:?} after the last restart",
        draining.elapsed()
    );
    (produced, handled, names)
}
