//! [`PartitionControl`]: the shared state of one partition between the
//! source that reads it, the checkpointer that saves how far it is
//! processed, and (for leased partitions) the lease worker that holds it.
//!
//! Its states, and what each promises, are documented on
//! [`PartitionControl`], where users read them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::Waker;

use futures::task::AtomicWaker;

use super::fencing::FencingToken;

/// What a partition's control says the source may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionState {
    /// Read and checkpoint as usual.
    Active,
    /// Stop reading; finish and checkpoint what was yielded.
    Draining,
    /// The lease is lost: stop at once, checkpoint nothing more.
    Fenced,
}

const ACTIVE: u8 = 0;
const DRAINING: u8 = 1;
const FENCED: u8 = 2;

/// The shared state of one partition between its source, its checkpointer
/// and the lease worker holding it.
///
/// - **Fenced** (one-way): the partition's lease is lost. The source stops
///   reading it at once and drops what it had fetched; the checkpointer
///   drops its later items and never saves it again.
/// - **Draining** (one-way, until fenced): the worker is handing the lease
///   over (rebalance, shutdown). The source stops reading and ends the
///   partition's records; what was already yielded is still processed and
///   checkpointed.
/// - **Checkpoint requests**: whoever waits for a partition to be saved (a
///   drain) asks the checkpointer to save it now rather than at its next
///   `n` tokens or interval. Requests of all partitions of one source go
///   through one shared hub, so a checkpointer looks at one flag, not one
///   per partition.
/// - **Durable progress**: after every completed save the checkpointer
///   publishes how many of the partition's tokens (in delivery order, the
///   token's `seq`) the saved position covers, so a drain can tell that
///   everything the source yielded is saved without comparing positions.
///
/// A new lease gets a new control: nothing here ever goes back. When a
/// worker takes a partition again (a new lease, perhaps after losing the
/// old one), the source reads it under the new control with tokens
/// numbered from 0 again; a checkpointer that sees a token with a new
/// control for a partition it tracks starts that partition afresh, and
/// drops tokens of a control it has replaced (a lower lease epoch, or
/// fenced) that arrive late.
///
/// When a checkpoint write for the partition is fenced (the lease moved to
/// another worker), the checkpointer calls [`fence`](Self::fence), and the
/// source stops reading the partition.
#[derive(Debug, Clone)]
pub struct PartitionControl {
    inner: Arc<ControlInner>,
}

#[derive(Debug)]
struct ControlInner {
    state: AtomicU8,
    /// Wakes tasks waiting for a state change.
    changed: tokio::sync::Notify,
    checkpoint_wanted: AtomicBool,
    /// Tokens (from `seq` 0) covered by the last completed save, plus one
    /// so that 0 means "nothing saved yet".
    durable_tokens: AtomicU64,
    hub: Arc<ControlHub>,
    /// The lease the partition is read under, for leased partitions.
    fencing: Option<FencingToken>,
}

/// How the control of a token stands to the one a checkpointer follows for
/// the token's partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Incarnation {
    /// The same run of the partition.
    Same,
    /// A new run (the partition taken again under a new lease): the
    /// checkpointer's state of the old run is over; tokens start at 0.
    Newer,
    /// A run that is over (its lease lost, or older than the one followed):
    /// the token is dropped.
    Stale,
}

/// Where the partitions of one source raise checkpoint requests: one flag
/// and one waker for the checkpointer, whatever the number of partitions.
#[derive(Debug, Default)]
pub(crate) struct ControlHub {
    wanted: AtomicBool,
    waker: AtomicWaker,
}

impl ControlHub {
    /// Registers the checkpointer's waker, then takes the "something was
    /// requested" flag (register first, so a request in between is seen).
    pub(crate) fn poll_requests(&self, waker: &Waker) -> bool {
        self.waker.register(waker);
        self.wanted.swap(false, Ordering::AcqRel)
    }

    /// Takes the flag without registering a waker.
    pub(crate) fn take_requests(&self) -> bool {
        self.wanted.swap(false, Ordering::AcqRel)
    }
}

impl Default for PartitionControl {
    fn default() -> Self {
        Self::with_hub(Arc::default())
    }
}

impl PartitionControl {
    /// A new, active control with a hub of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new, active control sharing this one's checkpoint-request hub (the
    /// controls of one source's partitions).
    pub fn sibling(&self) -> Self {
        Self::with_hub(self.inner.hub.clone())
    }

    /// A [`sibling`](Self::sibling) for a partition read under a lease.
    pub fn leased_sibling(&self, fencing: FencingToken) -> Self {
        Self::with_hub_and_fencing(self.inner.hub.clone(), Some(fencing))
    }

    /// The lease the partition is read under, when it is leased.
    pub fn fencing(&self) -> Option<&FencingToken> {
        self.inner.fencing.as_ref()
    }

    /// How this control (a token's) stands to `followed`, the one a
    /// checkpointer follows for the partition: the same, a newer run
    /// (a higher lease epoch, or any other control when the partition is
    /// not leased), or a run that is over (fenced, or an epoch not above
    /// the followed one).
    pub(crate) fn incarnation_against(&self, followed: &PartitionControl) -> Incarnation {
        if Arc::ptr_eq(&self.inner, &followed.inner) {
            return Incarnation::Same;
        }
        if self.is_fenced() {
            return Incarnation::Stale;
        }
        match (self.fencing(), followed.fencing()) {
            (Some(token), Some(followed)) if token.epoch() <= followed.epoch() => {
                Incarnation::Stale
            }
            _ => Incarnation::Newer,
        }
    }

    fn with_hub(hub: Arc<ControlHub>) -> Self {
        Self::with_hub_and_fencing(hub, None)
    }

    fn with_hub_and_fencing(hub: Arc<ControlHub>, fencing: Option<FencingToken>) -> Self {
        Self {
            inner: Arc::new(ControlInner {
                state: AtomicU8::new(ACTIVE),
                changed: tokio::sync::Notify::new(),
                checkpoint_wanted: AtomicBool::new(false),
                durable_tokens: AtomicU64::new(0),
                hub,
                fencing,
            }),
        }
    }

    /// Marks the partition as lost to this worker and wakes waiters.
    pub fn fence(&self) {
        self.inner.state.store(FENCED, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    /// Asks the source to stop reading the partition and end its records
    /// (no effect once fenced).
    pub fn drain(&self) {
        let _ =
            self.inner
                .state
                .compare_exchange(ACTIVE, DRAINING, Ordering::SeqCst, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    /// The current state.
    pub fn state(&self) -> PartitionState {
        match self.inner.state.load(Ordering::SeqCst) {
            ACTIVE => PartitionState::Active,
            DRAINING => PartitionState::Draining,
            _ => PartitionState::Fenced,
        }
    }

    /// Whether [`fence`](Self::fence) was called.
    #[inline]
    pub fn is_fenced(&self) -> bool {
        self.inner.state.load(Ordering::SeqCst) == FENCED
    }

    /// Whether the source must stop reading: draining or fenced.
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.inner.state.load(Ordering::SeqCst) != ACTIVE
    }

    /// Resolves once the partition is fenced.
    pub async fn fenced(&self) {
        loop {
            let notified = self.inner.changed.notified();
            if self.is_fenced() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves once the partition is draining or fenced.
    pub async fn stopped(&self) {
        loop {
            let notified = self.inner.changed.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }

    /// Asks the checkpointer to save this partition now.
    pub fn request_checkpoint(&self) {
        self.inner.checkpoint_wanted.store(true, Ordering::Release);
        self.inner.hub.wanted.store(true, Ordering::Release);
        self.inner.hub.waker.wake();
    }

    /// Takes this partition's checkpoint request, if any.
    pub(crate) fn take_checkpoint_request(&self) -> bool {
        self.inner.checkpoint_wanted.swap(false, Ordering::AcqRel)
    }

    /// The hub this control raises requests on.
    pub(crate) fn hub(&self) -> &Arc<ControlHub> {
        &self.inner.hub
    }

    /// Records that the saved position covers the partition's first
    /// `tokens` tokens (`seq < tokens`). Never goes back.
    pub fn set_durable_tokens(&self, tokens: u64) {
        self.inner
            .durable_tokens
            .fetch_max(tokens.saturating_add(1), Ordering::AcqRel);
    }

    /// How many of the partition's tokens (from `seq` 0) the last completed
    /// save covers; `None` before any save completed.
    pub fn durable_tokens(&self) -> Option<u64> {
        match self.inner.durable_tokens.load(Ordering::Acquire) {
            0 => None,
            n => Some(n - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn control_wakes_waiters() {
        let control = PartitionControl::new();
        let waiter = {
            let c = control.clone();
            tokio::spawn(async move { c.fenced().await })
        };
        tokio::task::yield_now().await;
        assert!(!control.is_fenced());
        control.fence();
        waiter.await.unwrap();
        assert!(control.is_fenced());
    }

    #[tokio::test]
    async fn draining_stops_the_source_but_is_not_fenced_and_fencing_wins() {
        let control = PartitionControl::new();
        let stopped = {
            let c = control.clone();
            tokio::spawn(async move { c.stopped().await })
        };
        tokio::task::yield_now().await;
        assert_eq!(control.state(), PartitionState::Active);
        control.drain();
        stopped.await.unwrap();
        assert_eq!(control.state(), PartitionState::Draining);
        assert!(control.is_stopped() && !control.is_fenced());
        control.fence();
        control.drain();
        assert_eq!(control.state(), PartitionState::Fenced);
    }

    #[test]
    fn checkpoint_requests_reach_the_shared_hub_once() {
        let a = PartitionControl::new();
        let b = a.sibling();
        let waker = futures::task::noop_waker();
        assert!(!a.hub().poll_requests(&waker));
        b.request_checkpoint();
        assert!(a.hub().poll_requests(&waker), "one hub for siblings");
        assert!(!a.hub().take_requests(), "taken once");
        assert!(!a.take_checkpoint_request());
        assert!(b.take_checkpoint_request());
        assert!(!b.take_checkpoint_request());
    }

    #[test]
    fn durable_tokens_only_grow() {
        let control = PartitionControl::new();
        assert_eq!(control.durable_tokens(), None);
        control.set_durable_tokens(0);
        assert_eq!(control.durable_tokens(), Some(0));
        control.set_durable_tokens(10);
        control.set_durable_tokens(4);
        assert_eq!(control.durable_tokens(), Some(10));
    }
}
