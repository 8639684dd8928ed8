//! Delivering one batch: validation, aggregation, call planning, pacing,
//! `PutRecords`, partial-failure retries.
//!
//! The batch becomes a queue of *entries* (one Kinesis record each: a user
//! record, or an aggregate of several). Calls are planned from the front of
//! the queue: at most 500 entries and 5 MiB per call, and no more per shard
//! than the shard has room for in the rate limiter now (the rest of a
//! shard's entries wait for its room; other shards' entries go). Up to
//! `max_calls_in_flight` calls are in flight at once, each planned from the
//! entries not already in one. After each answer, the entries that
//! succeeded leave the queue; the failed ones stay where they were and go
//! out again in a later call, after their own back-off, until the
//! [`RetryPolicy`] runs out. When it runs out on a transient failure, no
//! new call starts and the calls in flight are answered first, so the
//! progress handed back knows everything that was stored.
//!
//! **Ordering.** `PutRecords` does not order the records of one call: a
//! failed record does not stop later ones. So in ordered mode a call carries
//! at most one entry per *lane* — the partition key, or with aggregation the
//! predicted shard (an aggregate is atomic, and all of a key's records go to
//! its shard's aggregates) — and the next entry of a lane is only sent once
//! the previous one succeeded (or was rejected): calls in flight at the same
//! time never share a lane. A failed record for key K
//! thus holds back every later record for K. Unordered mode fills calls
//! freely.
//!
//! **Outcome.** `Ok(())`: every record is stored. `Err(Error::Rejected)`:
//! every record is stored except those listed (invalid, or a permanent
//! failure that exhausted the policy), which the caller dead-letters.
//! `Err(Error::Target)`: a transient failure exhausted the policy; records
//! may have been stored already, and the caller sends the batch again — the
//! run's [`PutProgress`] then makes the sink send only what is left.
//!
//! This module guarantees the above for one batch at a time; it does not
//! order batches (the sink has one batch in flight) nor persist anything (a crash
//! loses the progress; `buffered_wal` redelivers).
//!
//! | file | concept |
//! |---|---|
//! | `mod.rs` | one run of a batch: validation, the queue, the delivery loop |
//! | `shared.rs` | [`SinkShared`]: what a sink's clones share, and shard-map reloads |
//! | `entries.rs` | the entries of a batch, with KPL aggregation (two threads for large batches) |
//! | `plan.rs` | which entries go in the next call (limits, pacing, ordered mode) |
//! | `call.rs` | one `PutRecords` call and its partial failures (retry, reject, give up) |
//! | `progress.rs` | [`PutProgress`]: how far a failed batch got, to resume it |
//!
//! [`RetryPolicy`]: crate::RetryPolicy

mod call;
mod entries;
mod plan;
mod progress;
mod shared;

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use hashbrown::HashMap;
use tokio::time::Instant;

use crate::kinesis::sink::validation::validate_with;
use crate::kinesis::KinesisRecord;
use crate::Error;

use entries::{build_entries, Lane, PutEntry, ValidRecord};
use plan::Wake;
pub(crate) use progress::PutProgress;
pub(crate) use shared::{SinkOptions, SinkShared};

/// What delivering one batch came to: the batch-sink outcome, and the
/// progress to resume from when it failed.
pub(crate) struct PutOutcome {
    pub result: Result<(), Error>,
    /// `Some` exactly when `result` is an error other than
    /// [`Error::Rejected`].
    pub progress: Option<PutProgress>,
}

/// Delivers `batch` (see the module documentation for the outcome).
/// When `previous` is the progress of a failed run of the same batch,
/// only what it did not finish is sent. A failed run returns its own
/// progress.
pub(crate) async fn put_batch(
    shared: Arc<SinkShared>,
    batch: Vec<KinesisRecord>,
    previous: Option<PutProgress>,
) -> PutOutcome {
    let progress = match previous {
        Some(progress) if progress.is_of(&batch) => {
            tracing::debug!(
                target: "unistream::kinesis",
                stream = %shared.label,
                remaining = progress.remaining(),
                "resuming a batch that failed before"
            );
            progress
        }
        _ => {
            shared.record_metrics(|m| {
                for record in &batch {
                    m.record_bytes
                        .saturating_record(record.billed_bytes() as u64);
                }
            });
            PutProgress::fresh(batch)
        }
    };
    let mut run = PutRun::new(&shared, progress);
    match run.run().await {
        Ok(()) => {
            // `Ok` from a run: every record of the batch is stored or
            // rejected.
            debug_assert!(run.progress.done.iter().all(|done| *done));
            let mut rejected = run.progress.rejected;
            if rejected.is_empty() {
                return PutOutcome {
                    result: Ok(()),
                    progress: None,
                };
            }
            rejected.sort_by_key(|r| r.index);
            // Each record is rejected at most once, by its index in the
            // batch.
            debug_assert!(rejected.windows(2).all(|w| w[0].index < w[1].index));
            debug_assert!(rejected
                .last()
                .is_none_or(|r| r.index < run.progress.batch.len()));
            shared.record_metrics(|m| m.records_dead_lettered += rejected.len() as u64);
            PutOutcome {
                result: Err(Error::Rejected(rejected)),
                progress: None,
            }
        }
        Err(err) => PutOutcome {
            result: Err(err),
            progress: Some(run.progress),
        },
    }
}

/// Where a pending entry of the queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// May go in the next call.
    Ready,
    /// In a call not answered yet.
    InFlight,
    /// Failed; may go again from this instant.
    BackingOff(Instant),
}

/// One delivery run of a batch.
struct PutRun<'a> {
    shared: &'a SinkShared,
    /// Which records of the batch are done (stored or rejected).
    progress: PutProgress,
    queue: Vec<Option<PutEntry>>,
    /// Where each entry of the queue is (one per queue position).
    slots: Vec<Slot>,
    /// Everything before `head` in the queue is done.
    head: usize,
    /// Pending entries per lane (ordered mode).
    lane_counts: HashMap<Lane, usize>,
}

impl<'a> PutRun<'a> {
    fn new(shared: &'a SinkShared, progress: PutProgress) -> Self {
        // One flag per record of the batch, whether fresh or resumed.
        debug_assert_eq!(progress.done.len(), progress.batch.len());
        Self {
            shared,
            progress,
            queue: Vec::new(),
            slots: Vec::new(),
            head: 0,
            lane_counts: HashMap::new(),
        }
    }

    /// Validates what is left of the batch, then sends it until each record
    /// is stored or rejected.
    async fn run(&mut self) -> Result<(), Error> {
        let shared = self.shared;
        let batch = &self.progress.batch;
        let mut valid = Vec::with_capacity(batch.len());
        let mut invalid = Vec::new();
        {
            let mut hash_keys = shared.hash_keys();
            for (index, record) in batch.iter().enumerate() {
                if self.progress.done[index] {
                    continue;
                }
                match validate_with(record, &mut hash_keys) {
                    Ok(hash_key) => valid.push(ValidRecord { index, hash_key }),
                    Err(reason) => invalid.push((index, reason)),
                }
            }
        }
        for (index, reason) in invalid {
            tracing::warn!(
                target: "unistream::kinesis",
                stream = %shared.label, index, %reason,
                "record rejected before sending"
            );
            self.progress.reject(&[index], reason.to_string());
        }
        if valid.is_empty() {
            return Ok(());
        }
        let map = shared.current_shard_map().await;
        let built = build_entries(shared, &self.progress.batch, valid, &map);
        for refused in built.refused {
            self.progress
                .reject(&[refused.index], refused.reason.to_string());
        }
        let entries = built.entries;
        if shared.options.ordered {
            for entry in &entries {
                *self.lane_counts.entry(entry.lane).or_default() += 1;
            }
        }
        self.slots = vec![Slot::Ready; entries.len()];
        self.queue = entries.into_iter().map(Some).collect();
        self.deliver().await
    }

    /// Sends the queue until each entry is stored or rejected, with up to
    /// the configured number of calls in flight.
    async fn deliver(&mut self) -> Result<(), Error> {
        let shared = self.shared;
        let max_in_flight = shared.options.max_calls_in_flight.max(1);
        let mut in_flight = FuturesUnordered::new();
        // A transient failure that exhausted the policy, or a request that
        // could not be built: no new calls, the ones in flight end first
        // (what they store is then known and never sent again).
        let mut failure: Option<Error> = None;
        loop {
            let mut wake = None;
            while failure.is_none()
                && in_flight.len() < max_in_flight
                && self.head < self.queue.len()
            {
                let map = shared.current_shard_map().await;
                let now = Instant::now();
                let plan = self.plan_call(&map, now);
                wake = plan.wake;
                if plan.entries.is_empty() {
                    break;
                }
                if !plan.portions.is_empty() {
                    shared.limiter().record_sent(now, &plan.portions);
                }
                for &i in &plan.entries {
                    self.slots[i] = Slot::InFlight;
                }
                match self.prepare(plan.entries, now, &map) {
                    Ok(call) => in_flight.push(call::send(shared, call)),
                    Err(err) => failure = Some(err),
                }
            }
            if in_flight.is_empty() {
                if let Some(err) = failure {
                    return Err(err);
                }
                if self.head == self.queue.len() {
                    return Ok(());
                }
            }
            let answered = match wake {
                Some(Wake { at, for_room }) if failure.is_none() => {
                    let idle = in_flight.is_empty();
                    let waited_from = Instant::now();
                    tokio::select! {
                        answered = in_flight.next(), if !idle => answered,
                        () = tokio::time::sleep_until(at) => {
                            if idle && for_room {
                                shared.record_metrics(|m| m.rate_limit_wait += Instant::now() - waited_from);
                            }
                            None
                        }
                    }
                }
                _ if in_flight.is_empty() => {
                    // A pending entry that is neither in flight nor waiting
                    // for a back-off or room would have been planned.
                    debug_assert!(false, "nothing in flight and nothing to wait for");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    None
                }
                _ => in_flight.next().await,
            };
            let Some(answered) = answered else { continue };
            let outcome = self.apply(&answered);
            {
                let mut limiter = shared.limiter();
                let now = Instant::now();
                for (shard, throttled) in &outcome.throttled_shards {
                    limiter.on_throttle(shard, answered.call.sent_at, *throttled, now);
                }
            }
            if let Some(reason) = outcome.exhausted {
                failure.get_or_insert_with(|| {
                    Error::target(
                        shared.label.clone(),
                        format!(
                            "records still failing after {} attempt(s): {reason}",
                            shared.options.retry.attempt_limit().unwrap_or(u32::MAX)
                        ),
                    )
                });
            }
            while self.head < self.queue.len() && self.queue[self.head].is_none() {
                self.head += 1;
            }
        }
    }

    /// Takes entry `i` out of the queue (stored or rejected): its records
    /// are done and its lane moves on.
    fn finish_entry(&mut self, i: usize) -> Option<PutEntry> {
        let entry = self.queue[i].take()?;
        for &index in entry.indices.as_slice() {
            self.progress.done[index] = true;
        }
        // In ordered mode every pending entry is counted in its lane.
        debug_assert!(!self.shared.options.ordered || self.lane_counts.contains_key(&entry.lane));
        if let Some(count) = self.lane_counts.get_mut(&entry.lane) {
            *count -= 1;
            if *count == 0 {
                self.lane_counts.remove(&entry.lane);
            }
        }
        Some(entry)
    }
}
