//! A deterministic simulation of lease coordination: tens of workers on
//! one in-memory table, each through its own seeded faulty table, on
//! paused time, with every invariant checked every 100 ms of simulated
//! time (see `cluster`). Each run prints its seed; `UNISTREAM_SEED=<seed>`
//! runs that seed alone, so a failure replays exactly.
//!
//! The same scenarios at 100 workers × 1,000 leases are
//! `benches/lease_simulation.rs`.

pub mod cluster;
pub mod scenario;

use std::time::Duration;

use cluster::{seeds, Cluster, ClusterSettings, RedeliveryCause};
use unistream::checkpoint::Position;
use unistream::lease::{LeaseCheckpoint, LeaseConfig, LeaseWorker, MemoryLeaseTable};

use crate::consumer::{spawn_consumer, ConsumerBehaviour};

#[tokio::test(start_paused = true)]
async fn twenty_workers_share_two_hundred_leases_and_fail_over_without_losing_a_record() {
    for seed in seeds(&[1]) {
        let settings = ClusterSettings::new(seed, 200);
        let config = settings.config.clone();
        let checkpoint_every = settings.consumer.checkpoint_every;
        let report = scenario::scale(settings, 20, Duration::from_secs(60)).await;
        eprintln!("{report}");
        let fail = |what: String| -> ! { panic!("seed {seed}: {what}\n{report}") };

        for steady in [&report.steady, &report.steady_after] {
            if steady.moves_per_minute != 0.0 {
                fail(format!("leases moved at steady state: {steady}"));
            }
            // One renewal per lease per renew interval, one scan per scan
            // interval (±10 % jitter).
            let renewals = 60.0 / config.effective_renew_interval().as_secs_f64();
            if (steady.renewals_per_lease_minute - renewals).abs() > 1.0 {
                fail(format!("renewals: {steady}"));
            }
            if !(27.0..=33.0).contains(&steady.lists_per_minute) {
                fail(format!("scans: {steady}"));
            }
        }
        // A crashed worker's leases move once they expire: after the lease
        // duration less the time since the last renewal, and within one
        // more scan to notice the counter and one to find it expired.
        let (crashed, took) = report.crash_failover;
        let duration = Duration::from_secs(10);
        let renew = config.effective_renew_interval();
        let scan = Duration::from_millis(2_200);
        if crashed == 0 || took < duration - renew || took > duration + 2 * scan + cluster::STEP {
            fail(format!("crash failover of {crashed} leases took {took:?}"));
        }
        // A graceful stop hands over within a scan or two.
        let (stopped, took) = report.stop_failover;
        if stopped == 0 || took > Duration::from_secs(5) {
            fail(format!(
                "graceful failover of {stopped} leases took {took:?}"
            ));
        }
        // Only the crash re-delivered, and only what followed each of its
        // leases' last checkpoint.
        let crash = report
            .redeliveries
            .get(&RedeliveryCause::Crash)
            .copied()
            .unwrap_or(0);
        if report.redeliveries.len() > 1 || crash > crashed as u64 * checkpoint_every {
            fail(format!("re-deliveries {:?}", report.redeliveries));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn faults_never_give_a_partition_two_readers_or_lose_a_record() {
    for seed in seeds(&[11, 12, 13, 14, 15]) {
        let report =
            scenario::faults(ClusterSettings::new(seed, 200), 20, Duration::from_secs(90)).await;
        eprintln!("{report}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_seed_replays_exactly() {
    let seed = seeds(&[5])[0];
    let run = || scenario::faults(ClusterSettings::new(seed, 30), 6, Duration::from_secs(45));
    let first = run().await;
    let second = run().await;
    assert_eq!(
        (first.fingerprint, &first.timeline, first.delivered),
        (second.fingerprint, &second.timeline, second.delivered),
        "seed {seed} ran differently twice:\n{first}\n{second}"
    );
}

/// Runs `cluster` through `scenario` and returns the violation it panics
/// with (`None`: it passed).
async fn violation<F, Fut>(cluster: Cluster, scenario: F) -> Option<String>
where
    F: FnOnce(Cluster) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let outcome = tokio::spawn(async move { scenario(cluster).await }).await;
    let panic = outcome.err()?.into_panic();
    Some(
        panic
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "a panic without a message".into()),
    )
}

// A check that cannot fail proves nothing: the next two tests break the
// invariants behind the coordinator's back and expect the cluster to say so.

#[tokio::test(start_paused = true)]
async fn the_checks_catch_a_second_reader_of_a_partition() {
    let mut cluster = Cluster::new(ClusterSettings::new(7, 1));
    cluster.start("a");
    let caught = violation(cluster, |mut cluster| async move {
        // A worker of another table that also has a lease named like ours:
        // it reads the same partition, and nothing in our table stops it.
        let elsewhere = MemoryLeaseTable::new("elsewhere");
        elsewhere.put(cluster.table.snapshot().remove(0));
        let rogue = LeaseWorker::start(elsewhere, "rogue", LeaseConfig::new().seed(1));
        // It never delivers a record, so only the overlap of its reading
        // with a's can give it away.
        let silent = ConsumerBehaviour {
            record_every: Duration::from_secs(3_600),
            ..cluster.settings.consumer.clone()
        };
        let _consumer = spawn_consumer(&rogue, &cluster.ledger, silent);
        cluster.run_for(Duration::from_secs(30)).await;
    })
    .await;
    let caught = caught.expect("a second reader went unnoticed");
    assert!(caught.contains("at once"), "{caught}");
}

#[tokio::test(start_paused = true)]
async fn the_checks_catch_a_checkpoint_ahead_of_what_was_delivered() {
    let mut cluster = Cluster::new(ClusterSettings::new(8, 1));
    let a = cluster.start("a");
    let caught = violation(cluster, move |mut cluster| async move {
        cluster.run_for(Duration::from_secs(3)).await;
        // The table claims records 1..=1000 processed just as a crashes:
        // the next holder starts after 1000.
        let mut lease = cluster.table.snapshot().remove(0);
        lease.checkpoint = LeaseCheckpoint::At(Position::Offset(1_000));
        lease.counter += 1;
        cluster.table.put(lease);
        cluster.crash(a);
        cluster.start("b");
        cluster.run_for(Duration::from_secs(30)).await;
    })
    .await;
    let caught = caught.expect("lost records went unnoticed");
    assert!(caught.contains("records lost"), "{caught}");
}
