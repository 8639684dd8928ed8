//! The `checkpoint_batched` combinator: saves, per partition, the position
//! up to which every token is seen — every `n` tokens, every `interval`, at
//! the end and before an error is passed on — never past an unseen token.
//! The rules are documented on [`CheckpointBatched`], where users read them.
//!
//! One concept, the combinator's poll loop and its saves, past 500 lines
//! for its user documentation (a hundred lines on the type); the partition
//! table it keeps is in `partitions.rs`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{Fuse, FusedStream, IntoStream, Stream, StreamExt, TryStream, TryStreamExt};
use pin_project::pin_project;
use tokio::time::{Instant, Sleep};

use super::control::{ControlHub, Incarnation};
use super::held_back::{describe, HeldBackTokens};
use super::position::Position;
use super::store::{CheckpointError, CheckpointStore};
use super::token::{AsCheckpointToken, CheckpointToken};
use super::tracker::PositionTracker;
use crate::error::Error;
use crate::observe::checkpoint::CheckpointMetrics;
use crate::observe::handles::{record_since, start_timer};

mod partitions;

use partitions::Partitions;

/// Tokens waiting behind a gap from which (and at every doubling) a
/// warning is logged.
const WAITING_WARN_FROM: usize = 1 << 14;

/// While upstream keeps yielding, the interval deadline is looked at once
/// per this many tokens.
const TIMER_CHECK_EVERY: u32 = 32;

type SaveFuture = Pin<Box<dyn Future<Output = Result<(), CheckpointError>> + Send>>;

/// Stream for [`CheckpointStreamExt::checkpoint_batched`](super::CheckpointStreamExt::checkpoint_batched).
///
/// It sits at the end of a consumer pipeline, after the
/// records are processed, and saves how far each partition is processed.
///
/// # When it saves
///
/// - **Every `n` tokens of a partition**: when a partition has `n` tokens not
///   covered by a save already started, that partition is saved.
/// - **Every `interval`**: the clock (`tokio::time`) starts at the first
///   token not covered by a save already started, as in tokio-stream's
///   `chunks_timeout`; when it elapses, every partition with unsaved progress
///   is saved (in one [`save_many`](CheckpointStore::save_many) call).
///   While upstream yields items without ever pausing, the deadline is
///   looked at once every 32 tokens (a timer poll per token would cost more
///   than the rest of the combinator), so such a save may come up to 32
///   tokens late; whenever upstream pauses, it is looked at at once.
/// - **At the end of the stream**, and **before an upstream error is passed
///   on**: everything unsaved is saved, then the end or the error follows.
/// - **When a partition's [`PartitionControl`](super::PartitionControl)
///   asks** ([`request_checkpoint`](super::PartitionControl::request_checkpoint):
///   a lease worker draining the partition for a handoff or a shutdown):
///   everything unsaved is saved at once. Requests are looked at whenever
///   upstream pauses and every 32 tokens.
///
/// # What it saves
///
/// Per partition, the *safe* position: the position of the largest `seq` `s`
/// such that every token `seq ≤ s` of the partition (in this run) has been
/// seen ([`PositionTracker`]). After each completed save, the
/// partition's control (when its tokens carry one) learns how many tokens
/// the saved position covers
/// ([`durable_tokens`](super::PartitionControl::durable_tokens)). Tokens may arrive in any order (after
/// `buffer_unordered`); the saved position never passes a token that has not
/// been seen. Sources number every partition's tokens from 0 on each run.
/// A partition read again under a new [`PartitionControl`](super::PartitionControl)
/// (a lease this worker took again) starts a new run here too: its tokens
/// count from 0, the new control learns what is saved, and late tokens of
/// the control it replaced (fenced, or of a lower lease epoch) are dropped.
///
/// Every token must reach the checkpointer. A token that is dropped on the
/// way (a filter that discards items, an error swallowed with its token)
/// holds its partition's checkpoint back for the rest of the run, and the
/// tokens behind it pile up in memory (a warning is logged from 16,384 on).
/// To skip a record, still pass its token on:
/// [`try_filter_checkpointed`](super::CheckpointStreamExt::try_filter_checkpointed)
/// is `try_filter` that does.
///
/// # Tokens held back at the end
///
/// When the input ends while tokens still wait behind one that never
/// arrived, the final save covers each partition up to the missing token,
/// and then:
///
/// - a `WARN` event is logged (target `unistream::checkpoint::batched`)
///   with the number of tokens held back and the partitions, each with its
///   missing `seq`;
/// - [`held_back`](Self::held_back) lists them ([`HeldBackTokens`]), for a
///   caller that drives the stream by reference (`(&mut stream).try_collect()`);
/// - by default the stream then ends as usual (`None`): the saves it could
///   make are made, and the records from the missing token on are read again
///   after a restart. With [`fail_on_held_back`](Self::fail_on_held_back) it
///   yields [`CheckpointError::HeldBack`] (as [`Error::Checkpoint`]) first,
///   so that `try_collect` and `?` fail — what a pipeline that must not
///   lose checkpoint progress silently wants.
///
/// A token dropped after the last one a partition delivers holds nothing
/// back and cannot be told from a record still in flight: only its record is
/// read again after a restart.
///
/// # How much is seen again after a crash
///
/// At most one save is in flight; tokens keep flowing while it runs, except
/// that the stream stops pulling from upstream while a partition has `n`
/// tokens not yet durably saved. So for in-order tokens, at most `n` records
/// per partition are processed again after a crash (plus, when processing
/// runs concurrently, the tokens held behind a gap: at most the concurrency).
///
/// # What it yields
///
/// Every item without its token, once the token is counted: `()` for a bare
/// [`CheckpointToken`], `value` for a `(value, token)` pair (see
/// [`AsCheckpointToken`]). The token is consumed here, so it cannot be
/// counted twice. A stream of tokens is driven to the end with
/// `.try_collect::<()>()`.
///
/// # Errors
///
/// - An upstream error is yielded after the flush described above; the
///   stream then goes on with upstream (which may or may not end).
/// - A failed save (other than a fence) is yielded as
///   [`Error::Checkpoint`] and ends the stream: nothing after it is saved.
/// - A **fenced** save ([`CheckpointError::Fenced`]: another worker took the
///   partition's lease) ends *that partition* cleanly: its
///   [`PartitionControl`](super::PartitionControl) is fenced (so the source
///   stops reading it), a `WARN` event is logged (target
///   `unistream::checkpoint::batched`), its later items are dropped — not
///   yielded and not saved — and the other partitions go on. The stream
///   itself does not fail. Partitions saved in the same call as the fenced
///   one are saved again right away.
#[pin_project(project = CheckpointBatchedProj)]
#[must_use = "streams do nothing unless polled"]
pub struct CheckpointBatched<St: TryStream, S> {
    #[pin]
    stream: Fuse<IntoStream<St>>,
    store: S,
    n: u64,
    interval: Duration,
    partitions: Partitions,
    deadline: Option<Pin<Box<Sleep>>>,
    armed: bool,
    /// Tokens until the deadline is looked at again while upstream keeps
    /// yielding: polling a timer per token would cost more than the rest of
    /// the combinator. It is always looked at before returning `Pending`.
    timer_countdown: u32,
    want: Want,
    saving: Option<InFlight>,
    /// The checkpoint-request hubs of the partitions' controls (one per
    /// source, usually): looked at with the interval deadline.
    hubs: Vec<Arc<ControlHub>>,
    /// A partition has `n` tokens not durably saved: do not pull upstream
    /// until the save in flight completes.
    blocked: bool,
    upstream_done: bool,
    /// An upstream error, yielded once everything is saved.
    pending_error: Option<Error>,
    /// A save error to yield after the pending upstream error.
    trailing_error: Option<Error>,
    terminated: bool,
    /// Yield [`CheckpointError::HeldBack`] at the end when tokens are held
    /// back behind a missing one.
    fail_on_held_back: bool,
    /// Counted once per save (see [`crate::observe`]).
    metrics: CheckpointMetrics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Want {
    Nothing,
    /// Partitions with `n` tokens since their last save.
    Due,
    /// Every partition with unsaved progress.
    All,
}

struct InFlight {
    future: SaveFuture,
    covered: Vec<Covered>,
    /// When it started (read only when metrics are recorded).
    started: Option<std::time::Instant>,
}

/// What a save in flight covers for one partition.
struct Covered {
    /// Index in [`Partitions::states`].
    partition: usize,
    /// The position handed to the store.
    position: Position,
    /// The partition's `seen` when the save started.
    seen: u64,
    /// Tokens from `seq` 0 that `position` covers (the tracker's next seq).
    tokens: u64,
    /// The partition's run the save belongs to.
    run: u64,
}

impl<St, S> CheckpointBatched<St, S>
where
    St: TryStream,
    St::Ok: AsCheckpointToken,
    St::Error: Into<Error>,
    S: CheckpointStore,
{
    pub(super) fn new(stream: St, n: u64, interval: Duration, store: S) -> Self {
        Self {
            stream: stream.into_stream().fuse(),
            store,
            n,
            interval,
            partitions: Partitions::default(),
            deadline: None,
            armed: false,
            timer_countdown: 0,
            want: Want::Nothing,
            saving: None,
            hubs: Vec::new(),
            blocked: false,
            upstream_done: false,
            pending_error: None,
            trailing_error: None,
            terminated: false,
            fail_on_held_back: false,
            metrics: CheckpointMetrics::new::<S>(),
        }
    }

    /// Makes the end of the input with tokens held back behind a missing
    /// one an error: after the final save the stream yields
    /// [`Error::Checkpoint`]`(`[`CheckpointError::HeldBack`]`)`, then ends.
    /// See [Tokens held back at the end](Self#tokens-held-back-at-the-end).
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::{future, TryStreamExt};
    /// use unistream::checkpoint::{CheckpointError, CheckpointStreamExt, MemoryCheckpointStore};
    /// use unistream::source::MemorySource;
    /// use unistream::Error;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store = MemoryCheckpointStore::new();
    /// // `try_filter` drops record 2 with its token: 3 and 4 are held back.
    /// let result = MemorySource::new([("p0", vec![1u32, 2, 3, 4])])
    ///     .try_filter(|(record, _)| future::ready(*record != 2))
    ///     .checkpoint_batched(10, Duration::from_secs(60), store.clone())
    ///     .fail_on_held_back()
    ///     .try_collect::<Vec<u32>>()
    ///     .await;
    /// match result {
    ///     Err(Error::Checkpoint(CheckpointError::HeldBack { partitions })) => {
    ///         assert_eq!((partitions[0].tokens, partitions[0].missing_seq), (2, 1));
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// # }
    /// ```
    pub fn fail_on_held_back(mut self) -> Self {
        self.fail_on_held_back = true;
        self
    }

    /// The partitions whose tokens wait behind one that never arrived, in
    /// the order they were first seen; empty when nothing is held back.
    /// Fenced partitions are not listed.
    pub fn held_back(&self) -> Vec<HeldBackTokens> {
        self.partitions.held_back()
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &St {
        self.stream.get_ref().get_ref()
    }

    /// The checkpoint store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

/// What `observe` decided about an item.
enum Observed {
    Pass,
    /// The item's partition is fenced: drop the item.
    Drop,
}

impl<St, S> CheckpointBatchedProj<'_, St, S>
where
    St: TryStream,
    S: CheckpointStore,
{
    #[inline]
    fn observe(&mut self, token: &CheckpointToken) -> Observed {
        let n = *self.n;
        let index = self.partitions.index_of(token);
        if let Some(control) = token.control() {
            let state = &mut self.partitions.states[index];
            let adopt = match &state.control {
                None => {
                    state.control = Some(control.clone());
                    true
                }
                Some(followed) => match control.incarnation_against(followed) {
                    Incarnation::Same => false,
                    Incarnation::Stale => return Observed::Drop,
                    Incarnation::Newer => {
                        self.partitions
                            .restart(index, token.partition_arc(), control.clone());
                        self.recompute_blocked();
                        true
                    }
                },
            };
            if adopt {
                let hub = control.hub();
                if !self.hubs.iter().any(|h| Arc::ptr_eq(h, hub)) {
                    self.hubs.push(hub.clone());
                }
            }
        }
        let state = &mut self.partitions.states[index];
        if state.fenced {
            return Observed::Drop;
        }
        state.seen += 1;
        if !state.tracker.observe(token.seq(), token.position().clone()) {
            let waiting = state.tracker.waiting();
            if waiting >= WAITING_WARN_FROM && waiting.is_power_of_two() {
                tracing::warn!(
                    partition = %state.name,
                    waiting,
                    missing_seq = state.tracker.next_seq(),
                    "checkpoint held back: tokens wait for one that never arrived (was a token dropped or filtered out? try_filter_checkpointed keeps the tokens of skipped records)"
                );
            }
        }
        if state.seen - state.started >= n && *self.want < Want::Due {
            *self.want = Want::Due;
        }
        if state.seen - state.durable_seen >= n {
            *self.blocked = true;
        }
        if !*self.armed {
            self.arm();
        }
        Observed::Pass
    }

    fn arm(&mut self) {
        let now = Instant::now();
        // An interval too large to add means "never by time" (about 30 years).
        let at = now
            .checked_add(*self.interval)
            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
        match self.deadline.as_mut() {
            Some(sleep) => sleep.as_mut().reset(at),
            None => *self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
        }
        *self.armed = true;
    }

    /// Polls the interval deadline when it is armed; `true` when it fired
    /// (a save of every partition is then wanted).
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> bool {
        if !*self.armed {
            return false;
        }
        let Some(deadline) = self.deadline.as_mut() else {
            return false;
        };
        if deadline.as_mut().poll(cx).is_pending() {
            return false;
        }
        *self.armed = false;
        *self.want = Want::All;
        true
    }

    /// Starts a save of what `self.want` asks for, when there is anything
    /// to save. Only called with no save in flight.
    fn start_save(&mut self) {
        let kind = std::mem::replace(self.want, Want::Nothing);
        let n = *self.n;
        let mut entries = Vec::new();
        let mut covered = Vec::new();
        for (index, state) in self.partitions.states.iter_mut().enumerate() {
            if state.fenced || (kind == Want::Due && state.seen - state.started < n) {
                continue;
            }
            if let Some(safe) = state.unsaved().cloned() {
                entries.push((state.name.to_string(), safe.clone()));
                covered.push(Covered {
                    partition: index,
                    position: safe.clone(),
                    seen: state.seen,
                    tokens: state.tracker.next_seq(),
                    run: state.run,
                });
                state.saved = Some(safe);
            } else {
                // Nothing new is safe to save (the tokens wait behind a gap,
                // or are saved already): they count as handled so that they
                // neither re-trigger a save nor hold the stream back, which
                // would deadlock a stage still processing the gap.
                state.durable_seen = state.seen;
            }
            state.started = state.seen;
        }
        if !self.partitions.states.iter().any(|s| s.unsaved().is_some()) {
            *self.armed = false;
        }
        self.recompute_blocked();
        if entries.is_empty() {
            return;
        }
        let store = self.store.clone();
        let future: SaveFuture = Box::pin(async move { store.save_many(&entries).await });
        *self.saving = Some(InFlight {
            future,
            covered,
            started: start_timer(),
        });
    }

    /// Sets the held-back gauge: tokens waiting behind a missing one, over
    /// the partitions not fenced (after a save, not per token).
    fn observe_held_back(&self) {
        let waiting: usize = self
            .partitions
            .states
            .iter()
            .filter(|s| !s.fenced)
            .map(|s| s.tracker.waiting())
            .sum();
        self.metrics.held_back_tokens.set(waiting as f64);
    }

    fn recompute_blocked(&mut self) {
        let n = *self.n;
        *self.blocked = self
            .partitions
            .states
            .iter()
            .any(|s| !s.fenced && s.seen - s.durable_seen >= n);
    }

    /// Polls the save in flight; `Err` is a save failure that ends the
    /// stream.
    fn poll_save(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        let Some(in_flight) = self.saving.as_mut() else {
            return Ok(());
        };
        let Poll::Ready(result) = in_flight.future.as_mut().poll(cx) else {
            return Ok(());
        };
        let (covered, started) = match self.saving.take() {
            Some(done) => (done.covered, done.started),
            None => (Vec::new(), None),
        };
        record_since(&self.metrics.save_seconds, started);
        match &result {
            Ok(()) => self.metrics.saves.increment(1),
            Err(_) => self.metrics.save_failures.increment(1),
        }
        if result.is_ok() {
            self.observe_held_back();
        }
        match result {
            Ok(()) => {
                for done in covered {
                    let state = &mut self.partitions.states[done.partition];
                    if state.run != done.run {
                        // Saved for a run that is over: says nothing of this one.
                        continue;
                    }
                    state.durable = Some(done.position);
                    state.durable_seen = state.durable_seen.max(done.seen);
                    if let Some(control) = &state.control {
                        control.set_durable_tokens(done.tokens);
                    }
                }
            }
            Err(CheckpointError::Fenced { partition, reason })
                if covered
                    .iter()
                    .any(|c| *self.partitions.states[c.partition].name == *partition) =>
            {
                for done in covered {
                    let state = &mut self.partitions.states[done.partition];
                    if state.run != done.run {
                        continue;
                    }
                    if *state.name == *partition {
                        tracing::warn!(
                            partition = %partition,
                            reason = %reason,
                            "checkpoint fenced: another worker holds the partition; releasing it"
                        );
                        state.fenced = true;
                        state.tracker = PositionTracker::new();
                        if let Some(control) = &state.control {
                            control.fence();
                        }
                    } else {
                        // Saved in the same call, which did not complete:
                        // save again.
                        state.saved = state.durable.clone();
                        state.started = state.durable_seen;
                        *self.want = Want::All;
                    }
                }
            }
            Err(other) => return Err(Error::Checkpoint(other)),
        }
        self.recompute_blocked();
        let n = *self.n;
        if *self.want < Want::Due
            && self
                .partitions
                .states
                .iter()
                .any(|s| !s.fenced && s.seen - s.started >= n)
        {
            *self.want = Want::Due;
        }
        Ok(())
    }

    /// Looks at the partitions' checkpoint requests (a drain waiting for
    /// its partition to be saved): when there is one, everything unsaved is
    /// saved now. With `cx`, the task is woken by the next request.
    fn poll_requests(&mut self, cx: Option<&mut Context<'_>>) {
        let mut requested = false;
        match cx {
            Some(cx) => {
                for hub in self.hubs.iter() {
                    requested |= hub.poll_requests(cx.waker());
                }
            }
            None => {
                for hub in self.hubs.iter() {
                    requested |= hub.take_requests();
                }
            }
        }
        if !requested {
            return;
        }
        let mut any = false;
        for state in &self.partitions.states {
            if let Some(control) = &state.control {
                any |= control.take_checkpoint_request();
            }
        }
        if any {
            *self.want = Want::All;
        }
    }

    /// The input ended: tokens held back behind a missing one are logged,
    /// and returned as an error when the stream fails on them.
    fn report_held_back(&self) -> Option<Error> {
        let held_back = self.partitions.held_back();
        if held_back.is_empty() {
            return None;
        }
        tracing::warn!(
            tokens = held_back.iter().map(|h| h.tokens).sum::<usize>(),
            partitions = %describe(&held_back),
            "checkpoint_batched input ended with tokens held back behind tokens that never \
             arrived (dropped or filtered out? use try_filter_checkpointed); their records are \
             read again after a restart"
        );
        (*self.fail_on_held_back).then(|| {
            Error::Checkpoint(CheckpointError::HeldBack {
                partitions: held_back,
            })
        })
    }

    /// A save failed: yield the failure (after a pending upstream error)
    /// and end.
    fn fail(&mut self, error: Error) -> Error {
        match self.pending_error.take() {
            Some(upstream) => {
                *self.trailing_error = Some(error);
                upstream
            }
            None => {
                *self.terminated = true;
                error
            }
        }
    }
}

impl<St, S> Stream for CheckpointBatched<St, S>
where
    St: TryStream,
    St::Ok: AsCheckpointToken,
    St::Error: Into<Error>,
    S: CheckpointStore,
{
    type Item = Result<<St::Ok as AsCheckpointToken>::Value, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(error) = this.trailing_error.take() {
                *this.terminated = true;
                return Poll::Ready(Some(Err(error)));
            }
            if *this.terminated {
                return Poll::Ready(None);
            }

            if let Err(error) = this.poll_save(cx) {
                return Poll::Ready(Some(Err(this.fail(error))));
            }

            if *this.timer_countdown == 0 {
                *this.timer_countdown = TIMER_CHECK_EVERY;
                this.poll_deadline(cx);
                this.poll_requests(None);
            }

            if this.saving.is_none() && *this.want != Want::Nothing {
                this.start_save();
                if this.saving.is_some() {
                    continue; // poll it right away
                }
            }

            if *this.upstream_done || this.pending_error.is_some() {
                if this.saving.is_some() {
                    return Poll::Pending;
                }
                if this.partitions.states.iter().any(|s| s.unsaved().is_some()) {
                    *this.want = Want::All;
                    continue;
                }
                if let Some(error) = this.pending_error.take() {
                    return Poll::Ready(Some(Err(error)));
                }
                *this.terminated = true;
                return Poll::Ready(this.report_held_back().map(Err));
            }

            if *this.blocked && this.saving.is_some() {
                // Waiting for the save: keep the deadline registered so an
                // interval that elapses meanwhile is not missed.
                this.poll_deadline(cx);
                this.poll_requests(Some(cx));
                return Poll::Pending;
            }

            let polled = this.stream.as_mut().poll_next(cx);
            let Poll::Ready(polled) = polled else {
                if this.poll_deadline(cx) {
                    continue;
                }
                this.poll_requests(Some(cx));
                if *this.want != Want::Nothing && this.saving.is_none() {
                    continue;
                }
                return Poll::Pending;
            };
            match polled {
                Some(Ok(item)) => {
                    *this.timer_countdown = this.timer_countdown.saturating_sub(1);
                    if let Observed::Drop = this.observe(item.checkpoint_token()) {
                        continue;
                    }
                    if this.saving.is_none() && *this.want != Want::Nothing {
                        this.start_save();
                        // Give a fast store the chance to finish at once;
                        // a failure is reported on the next poll.
                        if let Err(error) = this.poll_save(cx) {
                            *this.trailing_error = Some(error);
                        }
                    }
                    return Poll::Ready(Some(Ok(item.into_value())));
                }
                Some(Err(error)) => *this.pending_error = Some(error.into()),
                None => *this.upstream_done = true,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.terminated {
            return (0, Some(0));
        }
        let extra =
            usize::from(self.pending_error.is_some()) + usize::from(self.trailing_error.is_some());
        let (lower, upper) = self.stream.size_hint();
        let lower = if self.partitions.any_fenced() {
            0
        } else {
            lower
        };
        (
            lower.saturating_add(extra),
            upper.and_then(|u| u.checked_add(extra)),
        )
    }
}

impl<St, S> FusedStream for CheckpointBatched<St, S>
where
    St: TryStream,
    St::Ok: AsCheckpointToken,
    St::Error: Into<Error>,
    S: CheckpointStore,
{
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl<St: TryStream, S: fmt::Debug> fmt::Debug for CheckpointBatched<St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointBatched")
            .field("store", &self.store)
            .field("n", &self.n)
            .field("interval", &self.interval)
            .field("partitions", &self.partitions.states.len())
            .field("saving", &self.saving.is_some())
            .field("terminated", &self.terminated)
            .finish()
    }
}
