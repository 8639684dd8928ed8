//! A simulated consumer of a worker's leases: it "reads" each acquired
//! partition by yielding one record every `record_every` (positions
//! `Offset(start + i)`), checkpoints what it yielded every `checkpoint_every`
//! records through the worker's store, and stops when the lease's control
//! says so, reporting how many records it yielded — what a source does.
//!
//! Everything it yields is recorded per partition in a shared [`Ledger`],
//! with the worker and the lease's activity, so tests can check
//! re-delivery and overlapping holders.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
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

/// A time span during which a worker read a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub worker: String,
    pub from: Instant,
    pub to: Option<Instant>,
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
}

impl Ledger {
    pub fn deliveries(&self, key: &str) -> Vec<Delivery> {
        self.inner
            .lock()
            .unwrap()
            .deliveries
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    pub fn readings(&self, key: &str) -> Vec<Reading> {
        self.inner
            .lock()
            .unwrap()
            .readings
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// Offsets delivered more than once, per partition.
    pub fn redelivered(&self) -> BTreeMap<String, Vec<u64>> {
        let inner = self.inner.lock().unwrap();
        let mut out = BTreeMap::new();
        for (key, deliveries) in &inner.deliveries {
            let mut seen = std::collections::HashSet::new();
            let again: Vec<u64> = deliveries
                .iter()
                .filter(|d| !seen.insert(d.offset))
                .map(|d| d.offset)
                .collect();
            if !again.is_empty() {
                out.insert(key.clone(), again);
            }
        }
        out
    }

    /// Offsets missing from 1..=highest delivered, per partition.
    pub fn gaps(&self) -> BTreeMap<String, Vec<u64>> {
        let inner = self.inner.lock().unwrap();
        let mut out = BTreeMap::new();
        for (key, deliveries) in &inner.deliveries {
            let offsets: std::collections::BTreeSet<u64> =
                deliveries.iter().map(|d| d.offset).collect();
            let Some(&max) = offsets.iter().next_back() else {
                continue;
            };
            let missing: Vec<u64> = (1..=max).filter(|o| !offsets.contains(o)).collect();
            if !missing.is_empty() {
                out.insert(key.clone(), missing);
            }
        }
        out
    }

    /// The longest time two workers read one partition at once.
    pub fn longest_overlap(&self) -> Duration {
        let inner = self.inner.lock().unwrap();
        let now = Instant::now();
        let mut longest = Duration::ZERO;
        for readings in inner.readings.values() {
            for (i, a) in readings.iter().enumerate() {
                for b in &readings[i + 1..] {
                    if a.worker == b.worker {
                        continue;
                    }
                    let start = a.from.max(b.from);
                    let end = a.to.unwrap_or(now).min(b.to.unwrap_or(now));
                    longest = longest.max(end.saturating_duration_since(start));
                }
            }
        }
        longest
    }

    fn deliver(&self, key: &str, delivery: Delivery) {
        self.inner
            .lock()
            .unwrap()
            .deliveries
            .entry(key.to_owned())
            .or_default()
            .push(delivery);
    }

    fn start_reading(&self, key: &str, worker: &str) -> usize {
        let mut inner = self.inner.lock().unwrap();
        let readings = inner.readings.entry(key.to_owned()).or_default();
        readings.push(Reading {
            worker: worker.to_owned(),
            from: Instant::now(),
            to: None,
        });
        readings.len() - 1
    }

    fn stop_reading(&self, key: &str, index: usize) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(reading) = inner.readings.get_mut(key).and_then(|r| r.get_mut(index)) {
            reading.to = Some(Instant::now());
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
}

impl Default for ConsumerBehaviour {
    fn default() -> Self {
        Self {
            record_every: Duration::from_millis(100),
            checkpoint_every: 5,
            reports_stop: true,
        }
    }
}

/// Runs a simulated consumer for `worker` until its acquired leases end.
pub fn spawn_consumer<T: LeaseTable>(
    worker: &LeaseWorker<T>,
    ledger: &Ledger,
    behaviour: ConsumerBehaviour,
) -> tokio::task::JoinHandle<()> {
    let mut acquired = worker.acquired().expect("one consumer per worker");
    let store = worker.checkpoint_store();
    let name = worker.id().to_owned();
    let ledger = ledger.clone();
    tokio::spawn(async move {
        let mut partitions = tokio::task::JoinSet::new();
        while let Some(lease) = acquired.next().await {
            let store = store.clone();
            let ledger = ledger.clone();
            let name = name.clone();
            let behaviour = behaviour.clone();
            partitions.spawn(async move {
                let key = lease.key().to_owned();
                let mut offset = match lease.lease().checkpoint {
                    LeaseCheckpoint::At(Position::Offset(o)) => o,
                    _ => 0,
                };
                let reading = ledger.start_reading(&key, &name);
                let control = lease.control().clone();
                let mut yielded = 0u64;
                let mut unsaved = 0u64;
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(behaviour.record_every) => {}
                        () = control.stopped() => {}
                    }
                    if control.is_stopped() {
                        break;
                    }
                    offset += 1;
                    yielded += 1;
                    unsaved += 1;
                    ledger.deliver(
                        &key,
                        Delivery {
                            worker: name.clone(),
                            offset,
                            at: Instant::now(),
                        },
                    );
                    if unsaved >= behaviour.checkpoint_every {
                        if store.save(&key, &Position::Offset(offset)).await.is_err() {
                            break;
                        }
                        control.set_durable_tokens(yielded);
                        unsaved = 0;
                    }
                }
                ledger.stop_reading(&key, reading);
                if control.is_fenced() || !behaviour.reports_stop {
                    if !behaviour.reports_stop {
                        std::mem::forget(lease);
                    }
                    return;
                }
                // Draining: save what was yielded (as checkpoint_batched
                // does when asked), then report.
                if unsaved > 0 && store.save(&key, &Position::Offset(offset)).await.is_ok() {
                    control.set_durable_tokens(yielded);
                }
                lease.stopped(yielded);
            });
        }
        while partitions.join_next().await.is_some() {}
    })
}
