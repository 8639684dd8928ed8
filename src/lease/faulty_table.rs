//! [`FaultyLeaseTable`]: any lease table made slow, unreliable or
//! unreachable on purpose, with every request counted — for tests and
//! simulations of many workers.
//!
//! Faults are drawn from a seeded generator, so a run on paused time with
//! the same seed and the same schedule repeats exactly. The faults are the
//! ones real tables show:
//!
//! - latency (a base plus a uniform jitter) on every request;
//! - a request that fails without being applied;
//! - a write that is applied but reported as failed (the answer was lost):
//!   the caller sees an error although the counter moved;
//! - a worker cut off from the table: every request fails until restored.
//!
//! Counts cover every request made, failed ones included.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::record::Lease;
use super::table::{Created, LeaseError, LeaseTable};
use super::transactional::{OutputFootprint, TransactionLimits, TransactionalLeaseTable};
use super::write::LeaseWrite;

/// What goes wrong, and how often; see the [`lease`](super) module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseFaults {
    /// Added to every request.
    pub latency: Duration,
    /// Up to this much more, uniformly drawn per request.
    pub jitter: Duration,
    /// Probability that a request fails without effect.
    pub fail: f64,
    /// Probability that a write is applied but reported as failed.
    pub lost_answer: f64,
}

impl Default for LeaseFaults {
    /// No faults, no latency.
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            fail: 0.0,
            lost_answer: 0.0,
        }
    }
}

/// Requests made through a [`FaultyLeaseTable`], by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseRequestCounts {
    /// `list` calls.
    pub lists: u64,
    /// `get` calls.
    pub gets: u64,
    /// `create` calls.
    pub creates: u64,
    /// `write` calls.
    pub writes: u64,
}

impl LeaseRequestCounts {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.lists + self.gets + self.creates + self.writes
    }
}

/// A lease table with injected faults and request counts; see the
/// [`lease`](super) module docs. Clones share the faults, the counts and the
/// generator.
#[derive(Debug, Clone)]
pub struct FaultyLeaseTable<T> {
    inner: T,
    state: Arc<FaultState>,
}

#[derive(Debug)]
struct FaultState {
    faults: Mutex<LeaseFaults>,
    rng: Mutex<fastrand::Rng>,
    cut_off: AtomicBool,
    lists: AtomicU64,
    gets: AtomicU64,
    creates: AtomicU64,
    writes: AtomicU64,
}

/// The fault a request meets.
enum Fate {
    Pass,
    Fail,
    LoseAnswer,
}

impl<T: LeaseTable> FaultyLeaseTable<T> {
    /// `inner` with no faults yet, drawing from a generator seeded with
    /// `seed`.
    pub fn new(inner: T, seed: u64) -> Self {
        Self {
            inner,
            state: Arc::new(FaultState {
                faults: Mutex::new(LeaseFaults::default()),
                rng: Mutex::new(fastrand::Rng::with_seed(seed)),
                cut_off: AtomicBool::new(false),
                lists: AtomicU64::new(0),
                gets: AtomicU64::new(0),
                creates: AtomicU64::new(0),
                writes: AtomicU64::new(0),
            }),
        }
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: LeaseFaults) {
        *self.state.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// Cuts this table off (every request fails) or restores it.
    pub fn set_cut_off(&self, cut_off: bool) {
        self.state.cut_off.store(cut_off, Ordering::SeqCst);
    }

    /// Requests made so far.
    pub fn requests(&self) -> LeaseRequestCounts {
        LeaseRequestCounts {
            lists: self.state.lists.load(Ordering::Relaxed),
            gets: self.state.gets.load(Ordering::Relaxed),
            creates: self.state.creates.load(Ordering::Relaxed),
            writes: self.state.writes.load(Ordering::Relaxed),
        }
    }

    /// The table behind the faults.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// Waits the request's latency and draws its fate.
    async fn fate(&self, counter: &AtomicU64, is_write: bool) -> Fate {
        counter.fetch_add(1, Ordering::Relaxed);
        let (delay, fate) = {
            let faults = self
                .state
                .faults
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let mut rng = self.state.rng.lock().unwrap_or_else(|p| p.into_inner());
            let jitter = if faults.jitter.is_zero() {
                Duration::ZERO
            } else {
                faults.jitter.mul_f64(rng.f64())
            };
            let draw = rng.f64();
            let fate = if draw < faults.fail {
                Fate::Fail
            } else if is_write && draw < faults.fail + faults.lost_answer {
                Fate::LoseAnswer
            } else {
                Fate::Pass
            };
            (faults.latency + jitter, fate)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.state.cut_off.load(Ordering::SeqCst) {
            return Fate::Fail;
        }
        fate
    }

    fn injected(&self, what: &str) -> LeaseError {
        LeaseError::backend(
            self.inner.name().to_owned(),
            format!("injected fault: {what}"),
        )
    }
}

impl<T: LeaseTable> LeaseTable for FaultyLeaseTable<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        match self.fate(&self.state.lists, false).await {
            Fate::Pass => self.inner.list().await,
            _ => Err(self.injected("list failed")),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Lease>, LeaseError> {
        match self.fate(&self.state.gets, false).await {
            Fate::Pass => self.inner.get(key).await,
            _ => Err(self.injected("get failed")),
        }
    }

    async fn create(&self, lease: Lease) -> Result<Created, LeaseError> {
        match self.fate(&self.state.creates, false).await {
            Fate::Pass => self.inner.create(lease).await,
            _ => Err(self.injected("create failed")),
        }
    }

    async fn write(
        &self,
        key: &str,
        expected: u64,
        write: LeaseWrite,
    ) -> Result<Lease, LeaseError> {
        match self.fate(&self.state.writes, true).await {
            Fate::Pass => self.inner.write(key, expected, write).await,
            Fate::Fail => Err(self.injected("write failed")),
            Fate::LoseAnswer => {
                let _ = self.inner.write(key, expected, write).await;
                Err(self.injected("write applied, answer lost"))
            }
        }
    }
}

impl<T: TransactionalLeaseTable> TransactionalLeaseTable for FaultyLeaseTable<T> {
    type Output = T::Output;

    fn limits(&self) -> TransactionLimits {
        self.inner.limits()
    }

    fn footprint(&self, output: &T::Output) -> OutputFootprint {
        self.inner.footprint(output)
    }

    async fn prepare(&self, outputs: &[T::Output]) -> Result<(), LeaseError> {
        self.inner.prepare(outputs).await
    }

    /// Counted as a write, and meets a write's faults: a transaction that
    /// fails unapplied, or one applied whose answer is lost.
    async fn write_with(
        &self,
        key: &str,
        expected: u64,
        write: LeaseWrite,
        outputs: &[T::Output],
        request: &str,
    ) -> Result<Lease, LeaseError> {
        match self.fate(&self.state.writes, true).await {
            Fate::Pass => {
                self.inner
                    .write_with(key, expected, write, outputs, request)
                    .await
            }
            Fate::Fail => Err(self.injected("transaction failed")),
            Fate::LoseAnswer => {
                let _ = self
                    .inner
                    .write_with(key, expected, write, outputs, request)
                    .await;
                Err(self.injected("transaction applied, answer lost"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{LeaseCheckpoint, MemoryLeaseTable};

    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_applies_the_write_and_cut_off_fails_everything() {
        let memory = MemoryLeaseTable::new("t");
        let table = FaultyLeaseTable::new(memory.clone(), 7);
        table
            .create(Lease::new("k", LeaseCheckpoint::TrimHorizon))
            .await
            .unwrap();
        table.set_faults(LeaseFaults {
            lost_answer: 1.0,
            latency: Duration::from_millis(5),
            ..LeaseFaults::default()
        });
        let started = tokio::time::Instant::now();
        let err = table.write("k", 0, LeaseWrite::Renew).await.unwrap_err();
        assert!(!err.is_conflict());
        assert_eq!(started.elapsed(), Duration::from_millis(5));
        assert_eq!(
            memory.snapshot()[0].counter,
            1,
            "applied although reported failed"
        );
        table.set_faults(LeaseFaults::default());
        table.set_cut_off(true);
        assert!(table.list().await.is_err());
        table.set_cut_off(false);
        assert_eq!(table.list().await.unwrap().len(), 1);
        let counts = table.requests();
        assert_eq!((counts.creates, counts.writes, counts.lists), (1, 1, 2));
    }
}
