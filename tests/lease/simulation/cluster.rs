//! A simulated cluster: many lease workers on one [`MemoryLeaseTable`],
//! each through its own seeded [`FaultyLeaseTable`] (so faults are per
//! worker), each with a simulated consumer writing into one [`Ledger`].
//! Time is tokio's paused clock: the cluster advances it in steps of
//! [`STEP`] and checks every invariant after each step.
//!
//! Invariants, checked every step (and, for deliveries, on every record):
//!
//! - **One reader.** Two workers never read one partition at once for
//!   longer than one renew interval (the ledger's readings), and no lease
//!   is in two workers' held sets for longer.
//! - **Nothing lost.** No record is delivered ahead of what was delivered
//!   before (the ledger), and at the end no partition has a gap.
//! - **Re-delivery only without consent.** A record is delivered again only
//!   when the reading that delivered it before ended by a crash, or by the
//!   lease being lost (fenced) or frozen on a worker that had a fault
//!   injected while it read. Every re-delivery is counted by that cause.
//! - **Balance at steady state.** During a [steady window](Cluster::measure_steady)
//!   every lease is held and every live worker holds `target - 1` or
//!   `target` leases, `target = ceil(leases / workers)` (within ±1 of it,
//!   and where the balance rules move nothing more).
//!
//! A violation panics at once with the seed and the simulated time, so
//! `UNISTREAM_SEED=<seed>` replays the failing run exactly, and
//! `UNISTREAM_SIM_LOG=unistream=debug` traces it in simulated time. (A
//! seed replays across processes and within one: nothing in a run depends
//! on wall time or on an unseeded random choice.)
//!
//! What it does not model: a worker's own tasks pausing (a frozen worker's
//! coordinator keeps its clock; only its consumer stops and its table is
//! cut off), or clocks running at different rates.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use unistream::lease::{
    FaultyLeaseTable, Lease, LeaseCheckpoint, LeaseConfig, LeaseFaults, LeaseMetrics,
    LeaseRequestCounts, LeaseWorker, MemoryLeaseTable,
};

use crate::consumer::{
    spawn_consumer, ConsumerBehaviour, ConsumerHandle, Ledger, PauseGate, ReadingEnd, Redelivery,
};

/// How far simulated time moves between two checks.
pub const STEP: Duration = Duration::from_millis(100);

/// The environment variable that picks the seed of a run.
pub const SEED_VAR: &str = "UNISTREAM_SEED";

/// The environment variable that turns on a trace of a run on stderr: its
/// value is a `tracing` filter (`unistream=debug` shows every decision of
/// every worker and the scenario's events), its timestamps simulated time.
pub const TRACE_VAR: &str = "UNISTREAM_SIM_LOG";

/// Installs the trace [`TRACE_VAR`] asks for (once per process; times
/// count from the first cluster).
fn install_trace() {
    struct SimulatedTime(Instant);
    impl tracing_subscriber::fmt::time::FormatTime for SimulatedTime {
        fn format_time(
            &self,
            w: &mut tracing_subscriber::fmt::format::Writer<'_>,
        ) -> std::fmt::Result {
            write!(w, "{:>10.3}s", self.0.elapsed().as_secs_f64())
        }
    }
    if let Ok(filter) = std::env::var(TRACE_VAR) {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_timer(SimulatedTime(Instant::now()))
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// The seeds to run: the one in [`SEED_VAR`] alone when set, else `fixed`.
pub fn seeds(fixed: &[u64]) -> Vec<u64> {
    match std::env::var(SEED_VAR) {
        Ok(seed) => vec![seed
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={seed:?} is not a u64"))],
        Err(_) => fixed.to_vec(),
    }
}

/// The table a simulated worker writes through.
pub type SimTable = FaultyLeaseTable<MemoryLeaseTable>;

/// What a cluster is made of.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub seed: u64,
    pub leases: usize,
    /// Every worker's configuration (each gets its own seed, and
    /// `lease_duration`).
    pub config: LeaseConfig,
    pub lease_duration: Duration,
    /// Every consumer's behaviour (each gets its own pause gate).
    pub consumer: ConsumerBehaviour,
    /// What every worker's table does when no fault is injected: the
    /// latency of a real table.
    pub base_faults: LeaseFaults,
}

impl ClusterSettings {
    /// `leases` leases, default timings (lease duration 10 s), a record a
    /// second checkpointed every 5, and 2–10 ms per table request.
    pub fn new(seed: u64, leases: usize) -> Self {
        Self {
            seed,
            leases,
            config: LeaseConfig::new(),
            lease_duration: Duration::from_secs(10),
            consumer: ConsumerBehaviour {
                record_every: Duration::from_secs(1),
                checkpoint_every: 5,
                ..ConsumerBehaviour::default()
            },
            base_faults: LeaseFaults {
                latency: Duration::from_millis(2),
                jitter: Duration::from_millis(8),
                ..LeaseFaults::default()
            },
        }
    }
}

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Live,
    /// Shut down, draining.
    Stopping,
    /// Stopped gracefully or crashed.
    Gone,
}

/// One worker of the cluster and its consumer.
pub struct Member {
    pub name: String,
    pub table: SimTable,
    pub state: MemberState,
    worker: Option<LeaseWorker<SimTable>>,
    consumer: Option<ConsumerHandle>,
    pause: PauseGate,
    stopped: Arc<AtomicBool>,
    faults: FaultLog,
}

/// When a member had faults injected (other than the base latency).
#[derive(Debug, Default)]
struct FaultLog {
    injected: bool,
    cut_off: bool,
    /// Closed spans, and when the open one began.
    spans: Vec<(Instant, Instant)>,
    since: Option<Instant>,
}

impl FaultLog {
    fn update(&mut self) {
        let now = Instant::now();
        match (self.injected || self.cut_off, self.since) {
            (true, None) => self.since = Some(now),
            (false, Some(since)) => {
                self.spans.push((since, now));
                self.since = None;
            }
            _ => {}
        }
    }

    /// Whether a fault was on at some time in `[from, to]`.
    fn overlap(&self, from: Instant, to: Instant) -> bool {
        self.since.is_some_and(|since| since <= to)
            || self.spans.iter().any(|&(a, b)| a <= to && from <= b)
    }
}

impl Member {
    /// The leases it holds now (none once gone).
    pub fn held(&self) -> Vec<String> {
        self.worker.as_ref().map(|w| w.held()).unwrap_or_default()
    }

    pub fn metrics(&self) -> LeaseMetrics {
        self.worker
            .as_ref()
            .map(|w| w.metrics())
            .unwrap_or_default()
    }
}

/// Why a re-delivery happened, as the invariants see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RedeliveryCause {
    /// The earlier reader crashed.
    Crash,
    /// The earlier reader's lease was taken without its consent (expired
    /// or a forced handoff) while it had faults: cut off, failing or slow;
    /// it has stopped reading.
    LostLease,
    /// The earlier reader was frozen and its lease taken meanwhile.
    Frozen,
    /// Both read at once: one had lost the lease (cut off or frozen) and
    /// not yet noticed by its own clock.
    StaleReader,
}

/// Requests and counters of every live worker, at one moment.
#[derive(Debug, Clone)]
struct Counts {
    at: Instant,
    members: BTreeMap<String, (LeaseRequestCounts, LeaseMetrics)>,
}

/// A steady-state window: what the workers did while nothing happened.
#[derive(Debug, Clone)]
pub struct SteadyWindow {
    pub length: Duration,
    pub workers: usize,
    pub leases: usize,
    /// Table requests per worker per minute: mean, min, max.
    pub requests_per_minute: (f64, u64, u64),
    /// Of those, per worker per minute: scans (`list`), writes, gets.
    pub lists_per_minute: f64,
    pub writes_per_minute: f64,
    pub gets_per_minute: f64,
    /// Per held lease per minute.
    pub renewals_per_lease_minute: f64,
    pub checkpoints_per_lease_minute: f64,
    /// Leases that changed hands (handoffs requested, expired, unowned and
    /// forced takes), all workers, per minute.
    pub moves_per_minute: f64,
}

/// A simulated cluster; see the [module docs](self).
pub struct Cluster {
    pub settings: ClusterSettings,
    pub table: MemoryLeaseTable,
    pub ledger: Ledger,
    pub members: Vec<Member>,
    rng: fastrand::Rng,
    /// Names that ever had a fault injected.
    /// Since when each lease held by several workers has been.
    shared_since: HashMap<String, Instant>,
    expect_balance: bool,
    redeliveries_checked: usize,
    causes: BTreeMap<RedeliveryCause, u64>,
    pub started: Instant,
}

impl Cluster {
    pub fn new(settings: ClusterSettings) -> Self {
        let table = MemoryLeaseTable::new("leases");
        for i in 0..settings.leases {
            table.put(Lease::new(
                format!("shard-{i:05}"),
                LeaseCheckpoint::TrimHorizon,
            ));
        }
        install_trace();
        eprintln!(
            "lease simulation: seed {} ({}={} reruns it, {}=unistream=debug traces it), {} leases",
            settings.seed, SEED_VAR, settings.seed, TRACE_VAR, settings.leases
        );
        Self {
            rng: fastrand::Rng::with_seed(settings.seed),
            settings,
            table,
            ledger: Ledger::default(),
            members: Vec::new(),
            shared_since: HashMap::new(),
            expect_balance: false,
            redeliveries_checked: 0,
            causes: BTreeMap::new(),
            started: Instant::now(),
        }
    }

    /// The scenario's own random choices (drawn from the seed).
    pub fn rng(&mut self) -> &mut fastrand::Rng {
        &mut self.rng
    }

    pub fn renew_interval(&self) -> Duration {
        self.settings.config.effective_renew_interval()
    }

    /// Starts a worker called `name` and its consumer; returns its index.
    pub fn start(&mut self, name: impl Into<String>) -> usize {
        let name = name.into();
        let table = FaultyLeaseTable::new(self.table.clone(), self.rng.u64(..));
        table.set_faults(self.settings.base_faults.clone());
        let config = self
            .settings
            .config
            .clone()
            .lease_duration(self.settings.lease_duration)
            .seed(self.rng.u64(..));
        let worker = LeaseWorker::start(table.clone(), name.clone(), config);
        let pause = PauseGate::default();
        let behaviour = ConsumerBehaviour {
            pause: pause.clone(),
            ..self.settings.consumer.clone()
        };
        let consumer = spawn_consumer(&worker, &self.ledger, behaviour);
        self.members.push(Member {
            name,
            table,
            state: MemberState::Live,
            worker: Some(worker),
            consumer: Some(consumer),
            pause,
            stopped: Arc::default(),
            faults: FaultLog::default(),
        });
        self.members.len() - 1
    }

    /// Indices of the live members (not stopping, not gone).
    pub fn live(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].state == MemberState::Live)
            .collect()
    }

    /// Crashes member `i`: its consumer aborted, its worker dropped.
    pub fn crash(&mut self, i: usize) -> Vec<String> {
        let member = &mut self.members[i];
        let held = member.held();
        if let Some(consumer) = member.consumer.take() {
            consumer.abort();
        }
        member.worker = None;
        member.state = MemberState::Gone;
        self.ledger.crashed(&member.name);
        held
    }

    /// Starts a graceful stop of member `i`; returns what it held.
    pub fn leave(&mut self, i: usize) -> Vec<String> {
        let member = &mut self.members[i];
        let held = member.held();
        let worker = member.worker.clone().expect("a live member has a worker");
        worker.shutdown();
        member.state = MemberState::Stopping;
        let stopped = member.stopped.clone();
        tokio::spawn(async move {
            worker.stopped().await;
            stopped.store(true, Ordering::SeqCst);
        });
        held
    }

    /// Replaces member `i`'s faults (`None`: back to the base faults).
    pub fn set_faults(&mut self, i: usize, faults: Option<LeaseFaults>) {
        let member = &mut self.members[i];
        member.faults.injected = faults.is_some();
        member
            .table
            .set_faults(faults.unwrap_or_else(|| self.settings.base_faults.clone()));
        member.faults.update();
    }

    /// Cuts member `i` off from the table, or restores it.
    pub fn cut_off(&mut self, i: usize, cut_off: bool) {
        let member = &mut self.members[i];
        member.faults.cut_off = cut_off;
        member.table.set_cut_off(cut_off);
        member.faults.update();
    }

    /// Freezes member `i` (cut off, consumer paused) or thaws it.
    pub fn freeze(&mut self, i: usize, frozen: bool) {
        self.cut_off(i, frozen);
        let pause = &self.members[i].pause;
        if frozen {
            pause.pause();
        } else {
            pause.resume();
        }
    }

    /// Every fault off, every worker restored and thawed.
    pub fn heal(&mut self) {
        for i in 0..self.members.len() {
            self.cut_off(i, false);
            self.set_faults(i, None);
            self.members[i].pause.resume();
        }
    }

    /// Whether the leases are balanced: every lease held by exactly one
    /// live worker, each holding `target - 1` or `target` where `target =
    /// ceil(leases / live workers)` (so within ±1 of it, and nothing left
    /// for the balance rules to move), no handoff under way, nobody
    /// stopping.
    pub fn balanced(&self) -> bool {
        self.imbalance().is_none()
    }

    fn imbalance(&self) -> Option<String> {
        let live = self.live();
        if live.is_empty() {
            return Some("no live worker".into());
        }
        if self
            .members
            .iter()
            .any(|m| m.state == MemberState::Stopping)
        {
            return Some("a worker is stopping".into());
        }
        let target = self.settings.leases.div_ceil(live.len());
        let mut held = BTreeSet::new();
        let mut counts = Vec::new();
        for &i in &live {
            let mine = self.members[i].held();
            counts.push((self.members[i].name.as_str(), mine.len()));
            held.extend(mine);
        }
        let total: usize = counts.iter().map(|(_, n)| n).sum();
        if held.len() != self.settings.leases || total != self.settings.leases {
            return Some(format!(
                "{} of {} leases held ({total} holdings)",
                held.len(),
                self.settings.leases
            ));
        }
        // The balance rules stop moving leases exactly here: nobody above
        // the target (it would be asked for one), nobody two below (it
        // would ask).
        if let Some((name, n)) = counts.iter().find(|(_, n)| *n > target || *n + 1 < target) {
            return Some(format!("{name} holds {n}, target {target}"));
        }
        // Last, as it reads the whole table: a handoff still under way is
        // a lease about to move.
        self.table
            .snapshot()
            .into_iter()
            .find(|lease| lease.handoff_pending())
            .map(|lease| {
                format!(
                    "{} is being handed over by {} to {} (target {target}, holdings {counts:?})",
                    lease.key,
                    lease.checkpoint_owner.as_deref().unwrap_or("-"),
                    lease.owner.as_deref().unwrap_or("-"),
                )
            })
    }

    /// Fails the run: a violation, with what replays it.
    #[track_caller]
    pub fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "lease simulation, seed {} ({}={} reruns it), at {:?} simulated: {what}",
            self.settings.seed,
            SEED_VAR,
            self.settings.seed,
            self.started.elapsed()
        )
    }

    /// Advances one [`STEP`] and checks every invariant.
    pub async fn step(&mut self) {
        tokio::time::sleep(STEP).await;
        for member in &mut self.members {
            if member.state == MemberState::Stopping && member.stopped.load(Ordering::SeqCst) {
                member.state = MemberState::Gone;
                member.worker = None;
                member.consumer = None;
            }
        }
        self.check();
    }

    fn check(&mut self) {
        let renew = self.renew_interval();
        if let Some(violation) = self.ledger.violations().first() {
            self.fail(violation);
        }
        if let Some(overlap) = self.ledger.worst_overlap() {
            if overlap.length > renew {
                self.fail(format!(
                    "{} and {} read {} at once for {:?} (from {:?} after the start), longer than the renew interval {renew:?}",
                    overlap.workers.0,
                    overlap.workers.1,
                    overlap.partition,
                    overlap.length,
                    overlap.from - self.started
                ));
            }
        }
        for again in self.ledger.redeliveries_since(self.redeliveries_checked) {
            self.redeliveries_checked += 1;
            match self.cause(&again) {
                Some(cause) => *self.causes.entry(cause).or_default() += 1,
                None => self.fail(format!("a re-delivery no fault explains: {again:?}")),
            }
        }
        let now = Instant::now();
        let mut holders: HashMap<String, Vec<&str>> = HashMap::new();
        for member in &self.members {
            for key in member.held() {
                holders.entry(key).or_default().push(&member.name);
            }
        }
        self.shared_since
            .retain(|key, _| holders.get(key).is_some_and(|h| h.len() > 1));
        for (key, who) in holders.iter().filter(|(_, who)| who.len() > 1) {
            let since = *self.shared_since.entry(key.clone()).or_insert(now);
            if now - since > renew {
                self.fail(format!(
                    "{key} held by {who:?} at once for {:?}",
                    now - since
                ));
            }
        }
        if self.expect_balance {
            if let Some(why) = self.imbalance() {
                self.fail(format!("not balanced at steady state: {why}"));
            }
        }
    }

    /// Why `again` may happen, `None` when nothing explains it.
    fn cause(&self, again: &Redelivery) -> Option<RedeliveryCause> {
        let now = Instant::now();
        let faulty = |worker: &str, from: Instant, to: Instant| {
            self.members
                .iter()
                .filter(|m| m.name == worker)
                .any(|m| m.faults.overlap(from, to))
        };
        // The earlier reader answers for the lease until the next one took
        // it (a fault after it stopped reading, while its last checkpoint
        // or its release was still to be written, counts too).
        let taken = again.by_from.max(again.earlier_to.unwrap_or(now));
        let earlier_faulty = faulty(&again.earlier, again.earlier_from, taken);
        match again.earlier_end {
            Some(ReadingEnd::Crashed) => Some(RedeliveryCause::Crash),
            Some(ReadingEnd::Fenced) if earlier_faulty => Some(RedeliveryCause::LostLease),
            Some(ReadingEnd::Paused) if earlier_faulty => Some(RedeliveryCause::Frozen),
            // Both still reading: one of them has lost the lease without
            // knowing yet (cut off, or thawed before its own clock ran
            // out). It had a fault within a lease duration before it began
            // this reading; how long the two overlap is the overlap check's.
            None => {
                let since = |from: Instant| {
                    from.checked_sub(self.settings.lease_duration)
                        .unwrap_or(self.started)
                };
                (earlier_faulty || faulty(&again.by, since(again.by_from), now))
                    .then_some(RedeliveryCause::StaleReader)
            }
            _ => None,
        }
    }

    /// Runs for `length`, checking every step.
    pub async fn run_for(&mut self, length: Duration) {
        let until = Instant::now() + length;
        while Instant::now() < until {
            self.step().await;
        }
    }

    /// Runs until `done` (checked every step); returns how long it took.
    /// Fails the run past `limit`.
    pub async fn run_until(
        &mut self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&Cluster) -> bool,
    ) -> Duration {
        let start = Instant::now();
        while !done(self) {
            if start.elapsed() > limit {
                let why = self.imbalance().unwrap_or_default();
                self.fail(format!("{what}: not reached within {limit:?} ({why})"));
            }
            self.step().await;
        }
        start.elapsed()
    }

    /// Runs until [`balanced`](Self::balanced) (within 15 simulated
    /// minutes); returns how long it took.
    pub async fn run_until_balanced(&mut self, what: &str) -> Duration {
        self.run_until(what, Duration::from_secs(900), Cluster::balanced)
            .await
    }

    /// Runs until every key in `keys` is read by a live worker other than
    /// `departed`; returns how long it took.
    pub async fn run_until_read_elsewhere(
        &mut self,
        what: &str,
        keys: &[String],
        departed: &str,
        limit: Duration,
    ) -> Duration {
        self.run_until(what, limit, |cluster| {
            keys.iter().all(|key| {
                cluster.ledger.readers(key).iter().any(|reader| {
                    reader != departed
                        && cluster
                            .members
                            .iter()
                            .any(|m| &m.name == reader && m.state == MemberState::Live)
                })
            })
        })
        .await
    }

    fn counts(&self) -> Counts {
        Counts {
            at: Instant::now(),
            members: self
                .live()
                .into_iter()
                .map(|i| {
                    let m = &self.members[i];
                    (m.name.clone(), (m.table.requests(), m.metrics()))
                })
                .collect(),
        }
    }

    /// Runs `length` with balance required at every step, and measures what
    /// the live workers did meanwhile.
    pub async fn measure_steady(&mut self, length: Duration) -> SteadyWindow {
        self.expect_balance = true;
        let before = self.counts();
        self.run_for(length).await;
        let after = self.counts();
        self.expect_balance = false;
        let minutes = (after.at - before.at).as_secs_f64() / 60.0;
        let mut requests = Vec::new();
        let (mut lists, mut writes, mut gets) = (0, 0, 0);
        let (mut renewals, mut checkpoints, mut moves, mut held) = (0, 0, 0, 0);
        for (name, (r1, m1)) in &after.members {
            let Some((r0, m0)) = before.members.get(name) else {
                self.fail(format!("{name} joined during a steady window"));
            };
            requests.push(r1.total() - r0.total());
            lists += r1.lists - r0.lists;
            writes += r1.writes - r0.writes;
            gets += r1.gets - r0.gets;
            renewals += m1.renewals - m0.renewals;
            checkpoints += m1.checkpoints - m0.checkpoints;
            moves += (m1.handoffs_requested - m0.handoffs_requested)
                + (m1.taken_expired - m0.taken_expired)
                + (m1.taken_unowned - m0.taken_unowned)
                + (m1.handoffs_forced - m0.handoffs_forced);
            held += m1.held;
        }
        let workers = requests.len();
        let per_worker = |n: u64| n as f64 / workers as f64 / minutes;
        let per_lease = |n: u64| n as f64 / held.max(1) as f64 / minutes;
        SteadyWindow {
            length: after.at - before.at,
            workers,
            leases: held as usize,
            requests_per_minute: (
                per_worker(requests.iter().sum()),
                (*requests.iter().min().unwrap_or(&0) as f64 / minutes) as u64,
                (*requests.iter().max().unwrap_or(&0) as f64 / minutes) as u64,
            ),
            lists_per_minute: per_worker(lists),
            writes_per_minute: per_worker(writes),
            gets_per_minute: per_worker(gets),
            renewals_per_lease_minute: per_lease(renewals),
            checkpoints_per_lease_minute: per_lease(checkpoints),
            moves_per_minute: moves as f64 / minutes,
        }
    }

    /// The final checks (no gaps anywhere), then everything stopped.
    pub fn finish(mut self) -> BTreeMap<RedeliveryCause, u64> {
        self.check();
        let gaps = self.ledger.gaps();
        if !gaps.is_empty() {
            self.fail(format!("records never delivered: {gaps:?}"));
        }
        // Every checkpoint in the table is a delivered record.
        for lease in self.table.snapshot() {
            if let LeaseCheckpoint::At(unistream::checkpoint::Position::Offset(saved)) =
                lease.checkpoint
            {
                let delivered = self
                    .ledger
                    .readings(&lease.key)
                    .iter()
                    .filter_map(|r| r.delivered.map(|(_, last)| last))
                    .max()
                    .unwrap_or(0);
                if saved > delivered {
                    self.fail(format!(
                        "{} checkpointed at {saved} but delivered only up to {delivered}",
                        lease.key
                    ));
                }
            }
        }
        for member in &mut self.members {
            if let Some(consumer) = member.consumer.take() {
                consumer.abort();
            }
            member.worker = None;
        }
        self.causes
    }

    /// A fingerprint of the run so far: the table (owners, counters,
    /// checkpoints) and every reading.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for lease in self.table.snapshot() {
            lease.key.hash(&mut hasher);
            lease.owner.hash(&mut hasher);
            lease.counter.hash(&mut hasher);
            lease.checkpoint.to_string().hash(&mut hasher);
            for reading in self.ledger.readings(&lease.key) {
                reading.worker.hash(&mut hasher);
                (reading.from - self.started).hash(&mut hasher);
                reading.to.map(|t| t - self.started).hash(&mut hasher);
                reading.delivered.hash(&mut hasher);
            }
        }
        hasher.finish()
    }
}
