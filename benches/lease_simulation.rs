//! The lease-coordination simulation at scale: 100 workers × 1,000 leases
//! on the in-memory table, paused time, every invariant checked every
//! 100 ms of simulated time (the scenarios of `tests/lease/simulation/`).
//!
//! Not a criterion bench: one seeded run per scenario, whose figures are
//! simulated times and request counts, plus the wall time the run took.
//!
//! ```text
//! cargo bench --bench lease_simulation            # seed 1
//! UNISTREAM_SEED=42 cargo bench --bench lease_simulation
//! ```
//!
//! 1. `scale`, 100 × 1,000: convergence from all workers started together,
//!    a steady window, a crash, a graceful stop, a join.
//! 2. `scale`, 10 × 1,000: the same with 100 leases per worker, for the
//!    request rate of a worker holding 100 leases against the KCL 2.x
//!    defaults.
//! 3. `faults`, 100 × 1,000: slow, flaky, cut-off, frozen, crashed and
//!    restarted, leaving and joining workers; then healed and steady.

use std::time::Duration;

#[path = "../tests/lease/consumer.rs"]
#[allow(dead_code)]
mod consumer;

#[path = "../tests/lease/simulation"]
#[allow(dead_code)]
mod simulation {
    pub mod cluster;
    pub mod scenario;
}

use simulation::cluster::{seeds, ClusterSettings, SteadyWindow};
use simulation::scenario;
use unistream::checkpoint::Position;
use unistream::lease::{Lease, LeaseCheckpoint, LeaseTable, MemoryLeaseTable};

/// The KCL 2.x defaults: `failoverTimeMillis` 10 s, `epsilonMillis` 25 ms,
/// a renewal of each held lease every `failover / 3 - epsilon` and a
/// lease-taker scan every `(failover + epsilon) × 2`.
const KCL_RENEW_INTERVAL_SECS: f64 = 10.0 / 3.0 - 0.025;
const KCL_TAKER_INTERVAL_SECS: f64 = (10.0 + 0.025) * 2.0;

/// Requests per minute the KCL 2.x defaults make for a worker holding
/// `leases`, checkpoints aside.
fn kcl_requests_per_minute(leases: f64) -> f64 {
    leases * 60.0 / KCL_RENEW_INTERVAL_SECS + 60.0 / KCL_TAKER_INTERVAL_SECS
}

fn compare_with_kcl(steady: &SteadyWindow) {
    let per_worker = steady.leases as f64 / steady.workers as f64;
    let ours = steady.requests_per_minute.0;
    let checkpoints = steady.checkpoints_per_lease_minute * per_worker;
    let kcl = kcl_requests_per_minute(per_worker);
    println!(
        "  per worker holding {per_worker:.0} leases: {ours:.0} requests a minute, of which \
         {checkpoints:.0} checkpoints (the consumer's, every 5 records of 1 s) and \
         {:.0} coordination ({:.1} scans + {:.0} renewals); \
         the KCL 2.x defaults: {kcl:.0} ({:.1} scans + {:.0} renewals)",
        ours - checkpoints,
        steady.lists_per_minute,
        steady.renewals_per_lease_minute * per_worker,
        60.0 / KCL_TAKER_INTERVAL_SECS,
        per_worker * 60.0 / KCL_RENEW_INTERVAL_SECS,
    );
}

/// The wall time of one `MemoryLeaseTable::list` of `leases` owned,
/// checkpointed leases (what every scan of every simulated worker costs
/// before the worker looks at it).
async fn list_cost(leases: usize) -> std::time::Duration {
    let table = MemoryLeaseTable::new("list");
    for i in 0..leases {
        let mut lease = Lease::new(
            format!("shard-{i:05}"),
            LeaseCheckpoint::At(Position::Offset(i as u64)),
        );
        lease.owner = Some(format!("w{:03}", i % 100));
        lease.counter = 1_000 + i as u64;
        table.put(lease);
    }
    const ROUNDS: u32 = 2_000;
    let started = std::time::Instant::now();
    for _ in 0..ROUNDS {
        let listed = table.list().await.expect("in memory");
        assert_eq!(listed.len(), leases);
    }
    started.elapsed() / ROUNDS
}

fn main() {
    let seed = seeds(&[1])[0];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        println!(
            "MemoryLeaseTable::list of 1,000 leases: {:.1} µs",
            list_cost(1_000).await.as_secs_f64() * 1e6
        );
        for workers in [100, 10] {
            let settings = ClusterSettings::new(seed, 1_000);
            let report = scenario::scale(settings, workers, Duration::from_secs(120)).await;
            println!("{report}");
            compare_with_kcl(&report.steady);
        }

        let report = scenario::faults(
            ClusterSettings::new(seed, 1_000),
            100,
            Duration::from_secs(90),
        )
        .await;
        println!("{report}");
    });
}
