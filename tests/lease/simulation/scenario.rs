//! The scripted runs of a [`Cluster`], shared by the test suite (small, in
//! a debug build) and `benches/lease_simulation.rs` (large, release):
//!
//! - [`scale`]: workers started together, convergence, a steady window,
//!   a crash, a graceful stop, a join, another steady window — every
//!   figure the coordinator is judged by, with no fault injected;
//! - [`faults`]: the same cluster under seeded faults — slow and failing
//!   tables, lost answers, a worker cut off, one frozen, one crashed and
//!   restarted under its name, one leaving, one joining — then healed,
//!   balanced again, and steady.
//!
//! Both check every invariant of the cluster at every step; they return
//! what they measured and fail the run (with its seed) on any violation.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use unistream::lease::LeaseFaults;

use super::cluster::{Cluster, ClusterSettings, RedeliveryCause, SteadyWindow};
use crate::consumer::Overlap;

/// What [`scale`] measured.
#[derive(Debug, Clone)]
pub struct ScaleReport {
    pub seed: u64,
    pub workers: usize,
    pub leases: usize,
    /// From every worker started to balanced.
    pub convergence: Duration,
    pub steady: SteadyWindow,
    /// A crashed worker's leases: how many, and the time until each is
    /// read by another worker.
    pub crash_failover: (usize, Duration),
    /// From the crash to balanced again.
    pub crash_rebalanced: Duration,
    /// The same for a graceful stop.
    pub stop_failover: (usize, Duration),
    pub stop_rebalanced: Duration,
    /// From a new worker started to balanced.
    pub join_rebalanced: Duration,
    pub steady_after: SteadyWindow,
    pub redeliveries: BTreeMap<RedeliveryCause, u64>,
    pub delivered: u64,
    pub simulated: Duration,
    pub wall: std::time::Duration,
}

/// Workers started together, then a crash, a graceful stop and a join;
/// see the [module docs](self).
pub async fn scale(settings: ClusterSettings, workers: usize, steady: Duration) -> ScaleReport {
    let wall = std::time::Instant::now();
    let (seed, leases) = (settings.seed, settings.leases);
    let mut cluster = Cluster::new(settings);
    for i in 0..workers {
        cluster.start(format!("w{i:03}"));
    }
    let convergence = cluster.run_until_balanced("convergence").await;
    let steady_window = cluster.measure_steady(steady).await;

    let (crash_failover, crash_rebalanced) = departure(&mut cluster, Departure::Crash).await;
    let (stop_failover, stop_rebalanced) = departure(&mut cluster, Departure::Stop).await;

    cluster.start("joined");
    let join_rebalanced = cluster.run_until_balanced("balance after a join").await;
    let steady_after = cluster.measure_steady(steady).await;
    let delivered = cluster.ledger.delivered();
    let simulated = cluster.started.elapsed();
    let redeliveries = cluster.finish();
    ScaleReport {
        seed,
        workers,
        leases,
        convergence,
        steady: steady_window,
        crash_failover,
        crash_rebalanced,
        stop_failover,
        stop_rebalanced,
        join_rebalanced,
        steady_after,
        redeliveries,
        delivered,
        simulated,
        wall: wall.elapsed(),
    }
}

/// How a worker leaves in [`scale`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Departure {
    Crash,
    Stop,
}

/// A random live worker leaves: returns how many leases it held and the
/// time until each is read by another worker, and the time until the
/// cluster is balanced again.
async fn departure(cluster: &mut Cluster, how: Departure) -> ((usize, Duration), Duration) {
    let live = cluster.live();
    let leaver = live[cluster.rng().usize(..live.len())];
    let name = cluster.members[leaver].name.clone();
    let (keys, what) = match how {
        Departure::Crash => (cluster.crash(leaver), "a crash"),
        Departure::Stop => (cluster.leave(leaver), "a graceful stop"),
    };
    let limit = Duration::from_secs(60);
    let took = cluster
        .run_until_read_elsewhere(&format!("failover after {what}"), &keys, &name, limit)
        .await;
    let what = format!("balance after {what}");
    let rebalanced = cluster.run_until_balanced(&what).await;
    ((keys.len(), took), took + rebalanced)
}

/// One thing that happens to a worker in [`faults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Slow(usize),
    Flaky(usize),
    CutOff(usize),
    Restore(usize),
    Freeze(usize),
    Thaw(usize),
    Crash(usize),
    Restart(usize),
    Leave(usize),
    Join,
}

impl Event {
    /// The member it happens to (`None`: a new one).
    fn member(self) -> Option<usize> {
        match self {
            Event::Slow(i)
            | Event::Flaky(i)
            | Event::CutOff(i)
            | Event::Restore(i)
            | Event::Freeze(i)
            | Event::Thaw(i)
            | Event::Crash(i)
            | Event::Restart(i)
            | Event::Leave(i) => Some(i),
            Event::Join => None,
        }
    }
}

/// What [`faults`] did and measured.
#[derive(Debug, Clone)]
pub struct FaultReport {
    pub seed: u64,
    pub workers: usize,
    pub leases: usize,
    /// What happened when (simulated, from the start of the fault window).
    pub timeline: Vec<String>,
    /// From the faults healed to balanced.
    pub healed_rebalanced: Duration,
    pub steady: SteadyWindow,
    pub redeliveries: BTreeMap<RedeliveryCause, u64>,
    /// Leases lost, all workers (taken without consent, or given up).
    pub lost: u64,
    pub forced: u64,
    /// The longest two workers read one partition at once.
    pub worst_overlap: Option<Overlap>,
    pub delivered: u64,
    pub simulated: Duration,
    pub wall: std::time::Duration,
    pub fingerprint: u64,
}

/// The cluster under seeded faults drawn within `window`, healed 2 s
/// after the last; see the [module docs](self). Needs at least 6 workers
/// (one per role).
pub async fn faults(settings: ClusterSettings, workers: usize, window: Duration) -> FaultReport {
    assert!(workers >= 6, "one worker per role");
    let wall = std::time::Instant::now();
    let (seed, leases) = (settings.seed, settings.leases);
    let mut cluster = Cluster::new(settings);
    for i in 0..workers {
        cluster.start(format!("w{i:03}"));
    }
    cluster.run_until_balanced("convergence").await;

    let mut roles: Vec<usize> = cluster.live();
    cluster.rng().shuffle(&mut roles);
    let rng = cluster.rng();
    let mut at = |from: f64, to: f64| Duration::from_secs_f64(from + rng.f64() * (to - from));
    let w = window.as_secs_f64();
    let mut events = vec![(Duration::ZERO, Event::Slow(roles[0]))];
    events.push((Duration::ZERO, Event::Flaky(roles[1])));
    let cut = at(0.0, w / 2.0);
    events.push((cut, Event::CutOff(roles[2])));
    events.push((cut + at(5.0, 25.0), Event::Restore(roles[2])));
    let frozen = at(0.0, w / 2.0);
    events.push((frozen, Event::Freeze(roles[3])));
    events.push((frozen + at(5.0, 25.0), Event::Thaw(roles[3])));
    let crash = at(0.0, w / 2.0);
    events.push((crash, Event::Crash(roles[4])));
    events.push((crash + at(5.0, 30.0), Event::Restart(roles[4])));
    events.push((at(0.0, w * 0.75), Event::Leave(roles[5])));
    events.push((at(0.0, w * 0.75), Event::Join));
    events.sort_by_key(|(t, _)| *t);

    let start = tokio::time::Instant::now();
    let mut timeline = Vec::new();
    for (when, event) in events {
        while start.elapsed() < when {
            cluster.step().await;
        }
        let who = event
            .member()
            .map(|i| cluster.members[i].name.clone())
            .unwrap_or_default();
        let line = match event {
            Event::Slow(i) => {
                cluster.set_faults(
                    i,
                    Some(LeaseFaults {
                        latency: Duration::from_millis(300),
                        jitter: Duration::from_millis(700),
                        ..LeaseFaults::default()
                    }),
                );
                format!("{who} slow (0.3–1 s a request)")
            }
            Event::Flaky(i) => {
                cluster.set_faults(
                    i,
                    Some(LeaseFaults {
                        fail: 0.15,
                        lost_answer: 0.1,
                        ..cluster.settings.base_faults.clone()
                    }),
                );
                format!("{who} flaky (15 % of requests fail, 10 % of writes lose their answer)")
            }
            Event::CutOff(i) => {
                // A partition: requests hang until they time out.
                cluster.set_faults(
                    i,
                    Some(LeaseFaults {
                        latency: Duration::from_millis(500),
                        jitter: Duration::from_millis(1_000),
                        ..LeaseFaults::default()
                    }),
                );
                cluster.cut_off(i, true);
                format!("{who} cut off (requests fail after 0.5–1.5 s)")
            }
            Event::Restore(i) => {
                cluster.cut_off(i, false);
                cluster.set_faults(i, None);
                format!("{who} restored")
            }
            Event::Freeze(i) => {
                cluster.freeze(i, true);
                format!("{who} frozen")
            }
            Event::Thaw(i) => {
                cluster.freeze(i, false);
                format!("{who} thawed")
            }
            Event::Crash(i) => {
                let held = cluster.crash(i);
                format!("{who} crashed holding {}", held.len())
            }
            Event::Restart(_) => {
                cluster.start(who.clone());
                format!("{who} restarted under its name")
            }
            Event::Leave(i) => {
                let held = cluster.leave(i);
                format!("{who} shut down holding {}", held.len())
            }
            Event::Join => {
                cluster.start("joined");
                "joined started".to_owned()
            }
        };
        tracing::info!(target: "unistream::simulation", "{line}");
        timeline.push(format!("{:>6.1} s  {line}", when.as_secs_f64()));
    }
    // Healed soon after the last event, while the cluster still moves.
    let heal_at = start.elapsed() + Duration::from_secs(2);
    while start.elapsed() < heal_at {
        cluster.step().await;
    }
    cluster.heal();
    timeline.push(format!(
        "{:>6.1} s  every fault healed",
        start.elapsed().as_secs_f64()
    ));
    let healed_rebalanced = cluster.run_until_balanced("balance after the faults").await;
    let steady = cluster.measure_steady(Duration::from_secs(30)).await;
    if steady.moves_per_minute > 0.0 {
        cluster.fail(format!("leases moved at steady state: {steady:?}"));
    }
    let (mut lost, mut forced) = (0, 0);
    for member in &cluster.members {
        let metrics = member.metrics();
        lost += metrics.lost;
        forced += metrics.handoffs_forced;
    }
    let worst_overlap = cluster.ledger.worst_overlap();
    let delivered = cluster.ledger.delivered();
    let simulated = cluster.started.elapsed();
    let fingerprint = cluster.fingerprint();
    let redeliveries = cluster.finish();
    FaultReport {
        seed,
        workers,
        leases,
        timeline,
        healed_rebalanced,
        steady,
        redeliveries,
        lost,
        forced,
        worst_overlap,
        delivered,
        simulated,
        wall: wall.elapsed(),
        fingerprint,
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

impl fmt::Display for SteadyWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mean, min, max) = self.requests_per_minute;
        write!(
            f,
            "{} workers, {} leases held, over {}: {mean:.0} table requests per worker per minute \
             (min {min}, max {max}; {:.1} scans, {:.1} writes, {:.2} gets), \
             {:.2} renewals and {:.2} checkpoints per lease per minute, {:.2} lease moves per minute",
            self.workers,
            self.leases,
            secs(self.length),
            self.lists_per_minute,
            self.writes_per_minute,
            self.gets_per_minute,
            self.renewals_per_lease_minute,
            self.checkpoints_per_lease_minute,
            self.moves_per_minute
        )
    }
}

impl fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} workers × {} leases, seed {}",
            self.workers, self.leases, self.seed
        )?;
        writeln!(
            f,
            "  convergence (all started → balanced): {}",
            secs(self.convergence)
        )?;
        writeln!(f, "  steady: {}", self.steady)?;
        writeln!(
            f,
            "  crash: {} leases read elsewhere after {}, balanced after {}",
            self.crash_failover.0,
            secs(self.crash_failover.1),
            secs(self.crash_rebalanced)
        )?;
        writeln!(
            f,
            "  graceful stop: {} leases read elsewhere after {}, balanced after {}",
            self.stop_failover.0,
            secs(self.stop_failover.1),
            secs(self.stop_rebalanced)
        )?;
        writeln!(f, "  join: balanced after {}", secs(self.join_rebalanced))?;
        writeln!(f, "  steady after: {}", self.steady_after)?;
        writeln!(
            f,
            "  {} records delivered, re-delivered by cause: {:?}",
            self.delivered, self.redeliveries
        )?;
        write!(
            f,
            "  {} simulated in {:.2} s wall",
            secs(self.simulated),
            self.wall.as_secs_f64()
        )
    }
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} workers × {} leases under faults, seed {}",
            self.workers, self.leases, self.seed
        )?;
        for line in &self.timeline {
            writeln!(f, "  {line}")?;
        }
        writeln!(
            f,
            "  balanced {} after healing; steady: {}",
            secs(self.healed_rebalanced),
            self.steady
        )?;
        writeln!(
            f,
            "  {} records delivered, re-delivered by cause: {:?}; leases lost {}, handoffs forced {}",
            self.delivered, self.redeliveries, self.lost, self.forced
        )?;
        match &self.worst_overlap {
            Some(o) if !o.length.is_zero() => writeln!(
                f,
                "  longest two readers at once: {:?} ({} and {} on {})",
                o.length, o.workers.0, o.workers.1, o.partition
            )?,
            _ => writeln!(f, "  never two readers at once")?,
        }
        write!(
            f,
            "  {} simulated in {:.2} s wall, fingerprint {:016x}",
            secs(self.simulated),
            self.wall.as_secs_f64(),
            self.fingerprint
        )
    }
}
