//! A simulated consumer of a worker's leases: it "reads" each acquired
//! partition by yielding one record every `record_every` (positions
//! `Offset(start + i)`), checkpoints what it yielded every `checkpoint_every`
//! records through the worker's store, and stops when the lease's control
//! says so, reporting how many records it yielded — what a source does.
//!
//! Everything it yields is recorded per partition in a shared [`Ledger`]:
//! each delivery, and each *reading*, a span of time during which one
//! worker delivered one partition, with how it ended. The ledger checks as
//! records come (a delivery ahead of everything delivered is a lost record,
//! a delivery after its reading ended is a reader that did not stop) and
//! attributes every re-delivered record to how the reading that delivered
//! it first ended, so tests can tell re-delivery after a crash from any
//! other.
//!
//! A consumer can be paused through its [`PauseGate`] (a frozen process):
//! it then delivers nothing and its reading ends; on resume it starts a new
//! reading only if the lease is still active.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use unistream::checkpoint::{CheckpointStore, Position};
use unistream::lease::{LeaseCheckpoint, LeaseTable, LeaseWorker};

/// One record delivered to a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub worker: String,
    pub offset: u64,
    pub at: Instant,
}

/// How a reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReadingEnd {
    /// The lease was drained (handoff, shutdown); `saved`: every record it
    /// delivered was checkpointed before it reported.
    Drained { saved: bool },
    /// The lease was lost: its control fenced the partition.
    Fenced,
    /// The consumer was paused (a frozen worker).
    Paused,
    /// The worker crashed: its consumer was aborted.
    Crashed,
}

/// A time span during which a worker read a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub worker: String,
    pub from: Instant,
    pub to: Option<Instant>,
    pub end: Option<ReadingEnd>,
    /// The first and last offsets it delivered (contiguous).
    pub delivered: Option<(u64, u64)>,
}

/// A record delivered again, and why it could be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redelivery {
    pub partition: String,
    pub offset: u64,
    /// The worker delivering it again, and when its reading began.
    pub by: String,
    pub by_from: Instant,
    /// The worker of the latest earlier reading that delivered it, and
    /// when that reading began and ended.
    pub earlier: String,
    pub earlier_from: Instant,
    pub earlier_to: Option<Instant>,
    /// How that reading had ended by then (`None`: still open, two
    /// readers at once).
    pub earlier_end: Option<ReadingEnd>,
}

/// Two workers reading one partition at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    pub partition: String,
    pub workers: (String, String),
    pub from: Instant,
    pub length: Duration,
}

/// What every simulated consumer did, by partition.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    inner: Arc<Mutex<LedgerInner>>,
}

#[derive(Debug, Default)]
struct LedgerInner {
    deliveries: BTreeMap<String, Vec<Delivery>>,
    readings: BTreeMap<String, Vec<Reading>>,
    /// Indices of the open readings, by partition.
    open: BTreeMap<String, BTreeSet<usize>>,
    /// The highest offset delivered, by partition.
    highest: BTreeMap<String, u64>,
    redeliveries: Vec<Redelivery>,
    /// The longest overlap of two readings both closed.
    longest_closed: Option<Overlap>,
    /// Deliveries that no correct coordinator allows.
    violations: Vec<String>,
    delivered: u64,
}

impl Ledger {
    pub fn deliveries(&self, key: &str) -> Vec<Delivery> {
        self.lock().deliveries.get(key).cloned().unwrap_or_default()
    }

    pub fn readings(&self, key: &str) -> Vec<Reading> {
        self.lock().readings.get(key).cloned().unwrap_or_default()
    }

    /// Records delivered so far, re-deliveries included.
    pub fn delivered(&self) -> u64 {
        self.lock().delivered
    }

    /// Offsets delivered more than once, per partition (once per extra
    /// delivery).
    pub fn redelivered(&self) -> BTreeMap<String, Vec<u64>> {
        let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for again in &self.lock().redeliveries {
            out.entry(again.partition.clone())
                .or_default()
                .push(again.offset);
        }
        out
    }

    /// The re-deliveries from the `from`-th on.
    pub fn redeliveries_since(&self, from: usize) -> Vec<Redelivery> {
        self.lock()
            .redeliveries
            .get(from..)
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    /// Deliveries the ledger found wrong as they came: a record delivered
    /// ahead of everything delivered before (the records between were
    /// checkpointed without being delivered), a delivery by a reading that
    /// had ended, or one that skipped an offset.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Offsets missing from 1..=highest delivered, per partition.
    pub fn gaps(&self) -> BTreeMap<String, Vec<u64>> {
        let inner = self.lock();
        let mut out = BTreeMap::new();
        for (key, readings) in &inner.readings {
            let mut ranges: Vec<(u64, u64)> = readings.iter().filter_map(|r| r.delivered).collect();
            ranges.sort_unstable();
            let mut missing = Vec::new();
            let mut covered = 0u64;
            for (first, last) in ranges {
                missing.extend(covered + 1..first);
                covered = covered.max(last);
            }
            if !missing.is_empty() {
                out.insert(key.clone(), missing);
            }
        }
        out
    }

    /// The longest time two workers read one partition at once, open
    /// readings counted up to now.
    pub fn longest_overlap(&self) -> Duration {
        self.worst_overlap().map_or(Duration::ZERO, |o| o.length)
    }

    /// The longest overlap of two workers' readings of one partition, open
    /// readings counted up to now.
    pub fn worst_overlap(&self) -> Option<Overlap> {
        let inner = self.lock();
        let now = Instant::now();
        let mut worst = inner.longest_closed.clone();
        for (key, open) in &inner.open {
            let readings = &inner.readings[key];
            for (i, &a) in open.iter().enumerate() {
                for &b in open.iter().skip(i + 1) {
                    let overlap = overlap_of(key, &readings[a], &readings[b], now);
                    worst = longer(worst, overlap);
                }
            }
        }
        worst
    }

    /// The workers reading `key` now.
    pub fn readers(&self, key: &str) -> Vec<String> {
        let inner = self.lock();
        let Some(open) = inner.open.get(key) else {
            return Vec::new();
        };
        open.iter()
            .map(|&i| inner.readings[key][i].worker.clone())
            .collect()
    }

    /// Ends every open reading of `worker`: its consumer was aborted.
    pub fn crashed(&self, worker: &str) {
        let mut inner = self.lock();
        let open: Vec<(String, usize)> = inner
            .open
            .iter()
            .flat_map(|(key, open)| open.iter().map(move |&i| (key.clone(), i)))
            .filter(|(key, i)| inner.readings[key][*i].worker == worker)
            .collect();
        for (key, index) in open {
            inner.stop(&key, index, ReadingEnd::Crashed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deliver(&self, key: &str, reading: usize, offset: u64) {
        let mut inner = self.lock();
        inner.delivered += 1;
        let now = Instant::now();
        let readings = inner.readings.get(key).expect("a reading was started");
        let worker = readings[reading].worker.clone();
        let mut violations = Vec::new();
        if readings[reading].to.is_some() {
            violations.push(format!(
                "{worker} delivered {key} offset {offset} after its reading ended"
            ));
        }
        if let Some((_, last)) = readings[reading].delivered {
            if offset != last + 1 {
                violations.push(format!(
                    "{worker} delivered {key} offset {offset} right after {last}"
                ));
            }
        }
        let highest = inner.highest.get(key).copied().unwrap_or(0);
        let mut again = None;
        if offset <= highest {
            let earlier = readings
                .iter()
                .enumerate()
                .rev()
                .filter(|(i, _)| *i != reading)
                .find(|(_, r)| r.delivered.is_some_and(|(a, b)| (a..=b).contains(&offset)));
            if let Some((_, earlier)) = earlier {
                again = Some(Redelivery {
                    partition: key.to_owned(),
                    offset,
                    by: worker.clone(),
                    by_from: readings[reading].from,
                    earlier: earlier.worker.clone(),
                    earlier_from: earlier.from,
                    earlier_to: earlier.to,
                    earlier_end: earlier.end,
                });
            }
        } else if offset > highest + 1 {
            violations.push(format!(
                "{worker} delivered {key} offset {offset} but only up to {highest} was ever delivered: {} records lost",
                offset - highest - 1
            ));
        }
        let current = &mut inner.readings.get_mut(key).expect("started")[reading];
        current.delivered = Some(match current.delivered {
            Some((first, _)) => (first, offset),
            None => (offset, offset),
        });
        inner.highest.insert(key.to_owned(), highest.max(offset));
        inner.redeliveries.extend(again);
        inner.violations.extend(violations);
        inner
            .deliveries
            .entry(key.to_owned())
            .or_default()
            .push(Delivery {
                worker,
                offset,
                at: now,
            });
    }

    fn start_reading(&self, key: &str, worker: &str) -> usize {
        let mut inner = self.lock();
        let readings = inner.readings.entry(key.to_owned()).or_default();
        readings.push(Reading {
            worker: worker.to_owned(),
            from: Instant::now(),
            to: None,
            end: None,
            delivered: None,
        });
        let index = readings.len() - 1;
        inner.open.entry(key.to_owned()).or_default().insert(index);
        index
    }

    fn stop_reading(&self, key: &str, index: usize, end: ReadingEnd) {
        self.lock().stop(key, index, end);
    }

    /// Corrects how a closed reading ended (known only after its last save).
    fn set_end(&self, key: &str, index: usize, end: ReadingEnd) {
        if let Some(reading) = self
            .lock()
            .readings
            .get_mut(key)
            .and_then(|r| r.get_mut(index))
        {
            reading.end = Some(end);
        }
    }
}

impl LedgerInner {
    fn stop(&mut self, key: &str, index: usize, end: ReadingEnd) {
        let now = Instant::now();
        let Some(open) = self.open.get_mut(key) else {
            return;
        };
        if !open.remove(&index) {
            return;
        }
        let others: Vec<usize> = open.iter().copied().collect();
        if open.is_empty() {
            self.open.remove(key);
        }
        let readings = self.readings.get_mut(key).expect("open implies started");
        readings[index].to = Some(now);
        readings[index].end = Some(end);
        // Each pair is measured once, when the first of the two closes.
        let mut worst = self.longest_closed.take();
        for other in others {
            worst = longer(
                worst,
                overlap_of(key, &readings[index], &readings[other], now),
            );
        }
        self.longest_closed = worst;
    }
}

fn overlap_of(key: &str, a: &Reading, b: &Reading, now: Instant) -> Option<Overlap> {
    if a.worker == b.worker {
        return None;
    }
    let from = a.from.max(b.from);
    let to = a.to.unwrap_or(now).min(b.to.unwrap_or(now));
    Some(Overlap {
        partition: key.to_owned(),
        workers: (a.worker.clone(), b.worker.clone()),
        from,
        length: to.saturating_duration_since(from),
    })
}

fn longer(a: Option<Overlap>, b: Option<Overlap>) -> Option<Overlap> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.length > a.length { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Pauses a consumer (a frozen process) and resumes it. Clones share the
/// gate.
///
/// A `Notify`, not a `watch`: a watch channel wakes its waiters in a random
/// order, which would make the partitions of a thawed consumer resume in a
/// different order from run to run, and a seed no longer replay exactly.
#[derive(Debug, Clone, Default)]
pub struct PauseGate {
    inner: Arc<PauseState>,
}

#[derive(Debug, Default)]
struct PauseState {
    paused: std::sync::atomic::AtomicBool,
    changed: tokio::sync::Notify,
}

impl PauseGate {
    pub fn pause(&self) {
        self.set(true);
    }

    pub fn resume(&self) {
        self.set(false);
    }

    fn set(&self, paused: bool) {
        self.inner
            .paused
            .store(paused, std::sync::atomic::Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn wait_for(&self, paused: bool) {
        loop {
            // Created before the check: a change between the two wakes it.
            let changed = self.inner.changed.notified();
            if self.is_paused() == paused {
                return;
            }
            changed.await;
        }
    }
}

/// How a simulated consumer behaves.
#[derive(Debug, Clone)]
pub struct ConsumerBehaviour {
    pub record_every: Duration,
    pub checkpoint_every: u64,
    /// When false, the consumer never reports that it stopped (a stuck
    /// pipeline): the worker's drain must time out.
    pub reports_stop: bool,
    /// Pauses every partition of the consumer.
    pub pause: PauseGate,
}

impl Default for ConsumerBehaviour {
    fn default() -> Self {
        Self {
            record_every: Duration::from_millis(100),
            checkpoint_every: 5,
            reports_stop: true,
            pause: PauseGate::default(),
        }
    }
}

/// A running simulated consumer.
#[derive(Debug)]
pub struct ConsumerHandle {
    task: JoinHandle<()>,
    partitions: Arc<Mutex<Vec<AbortHandle>>>,
}

impl ConsumerHandle {
    /// Stops the consumer and every partition it reads at once, as a crash
    /// does: none of them runs again.
    pub fn abort(&self) {
        for partition in self.partitions.lock().unwrap().drain(..) {
            partition.abort();
        }
        self.task.abort();
    }
}

/// Runs a simulated consumer for `worker` until its acquired leases end.
pub fn spawn_consumer<T: LeaseTable>(
    worker: &LeaseWorker<T>,
    ledger: &Ledger,
    behaviour: ConsumerBehaviour,
) -> ConsumerHandle {
    let mut acquired = worker.acquired().expect("one consumer per worker");
    let store = worker.checkpoint_store();
    let name = worker.id().to_owned();
    let ledger = ledger.clone();
    let partitions: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
    let handles = partitions.clone();
    let task = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        while let Some(lease) = acquired.next().await {
            let store = store.clone();
            let ledger = ledger.clone();
            let name = name.clone();
            let behaviour = behaviour.clone();
            let handle = tasks.spawn(async move {
                let key = lease.key().to_owned();
                let mut offset = match lease.lease().checkpoint {
                    LeaseCheckpoint::At(Position::Offset(o)) => o,
                    _ => 0,
                };
                let mut reading = Some(ledger.start_reading(&key, &name));
                let control = lease.control().clone();
                let mut yielded = 0u64;
                let mut unsaved = 0u64;
                loop {
                    tokio::select! {
                        biased;
                        () = control.stopped() => {}
                        () = behaviour.pause.wait_for(true) => {}
                        () = tokio::time::sleep(behaviour.record_every) => {}
                    }
                    if behaviour.pause.is_paused() {
                        if let Some(index) = reading.take() {
                            ledger.stop_reading(&key, index, ReadingEnd::Paused);
                        }
                        behaviour.pause.wait_for(false).await;
                    }
                    if control.is_stopped() {
                        break;
                    }
                    let Some(index) = reading else {
                        // Resumed with the lease still active.
                        reading = Some(ledger.start_reading(&key, &name));
                        continue;
                    };
                    offset += 1;
                    yielded += 1;
                    unsaved += 1;
                    ledger.deliver(&key, index, offset);
                    if unsaved >= behaviour.checkpoint_every {
                        if store.save(&key, &Position::Offset(offset)).await.is_err() {
                            break;
                        }
                        control.set_durable_tokens(yielded);
                        unsaved = 0;
                    }
                }
                let end = if control.is_fenced() {
                    ReadingEnd::Fenced
                } else {
                    ReadingEnd::Drained {
                        saved: unsaved == 0,
                    }
                };
                let closed = reading.take();
                if let Some(index) = closed {
                    ledger.stop_reading(&key, index, end);
                }
                if control.is_fenced() || !behaviour.reports_stop {
                    if !behaviour.reports_stop {
                        std::mem::forget(lease);
                    }
                    return;
                }
                // Draining: save what was yielded (as checkpoint_batched
                // does when asked), then report.
                if unsaved > 0 {
                    let saved = store.save(&key, &Position::Offset(offset)).await.is_ok();
                    if saved {
                        control.set_durable_tokens(yielded);
                    }
                    if let Some(index) = closed {
                        let end = if control.is_fenced() {
                            ReadingEnd::Fenced
                        } else {
                            ReadingEnd::Drained { saved }
                        };
                        ledger.set_end(&key, index, end);
                    }
                }
                lease.stopped(yielded);
            });
            let mut handles = handles.lock().unwrap();
            handles.retain(|h| !h.is_finished());
            handles.push(handle);
        }
        while tasks.join_next().await.is_some() {}
    });
    ConsumerHandle { task, partitions }
}
