//! Delivering batches: validation, aggregation, call planning, pacing,
//! `PutRecords`, partial-failure retries.
//!
//! A *run* delivers the batches a sink is fed until none is left: each
//! batch becomes *entries* (one Kinesis record each: a user record, or an
//! aggregate of several) at the back of one queue, and batches fed while
//! the run works join the same queue (through the [`Feed`]), so a batch's
//! records go to shards with room while an earlier batch still waits for
//! room on others. With aggregation, a shard's records of a later batch
//! join the shard's last aggregate while it waits (its *open* aggregate,
//! sealed when it is planned into a call or another aggregate follows it,
//! and when the shard map changes), so small batches fed one after the
//! other make full aggregates (full for the shard: where the pacing cut a
//! shard's allowance, its new aggregates are cut in proportion, so that
//! an attempt refused costs less). Calls are planned from the front of the
//! queue: at most 500 entries and 5 MiB per call, and no more per shard
//! than the shard has room for in the rate limiter now (the rest of a
//! shard's entries wait for its room; other shards' entries go). Up to
//! `max_calls_in_flight` calls are in flight at once, each planned from
//! the entries not already in one.
//! After each answer, the entries that succeeded leave the queue; the
//! failed ones stay where they were and go out again in a later call, after
//! their own back-off, until the [`RetryPolicy`] runs out. When it runs out
//! on a transient failure, no new call starts, no batch is taken any more,
//! and the calls in flight are answered first, so the progress of each
//! batch knows everything that was stored.
//!
//! **Ordering.** `PutRecords` does not order the records of one call: a
//! failed record does not stop later ones. So in ordered mode a call carries
//! at most one entry per *lane* — the partition key, or with aggregation the
//! predicted shard (an aggregate is atomic, and all of a key's records go to
//! its shard's aggregates) — and the next entry of a lane is only sent once
//! the previous one succeeded (or was rejected): calls in flight at the same
//! time never share a lane, across batches as within one. A failed record
//! for key K thus holds back every later record for K, of its batch and of
//! the batches after it. Unordered mode fills calls freely.
//!
//! **Outcome.** Each batch ends *finished* — every record stored, or
//! rejected (invalid, or a permanent failure that exhausted the policy;
//! listed in its [`PutProgress`] for the caller to dead-letter) — or, when
//! a transient failure exhausted the policy, *unfinished*: records may have
//! been stored already, and the caller sends the batch again — its
//! [`PutProgress`] then makes the sink send only what is left. A batch
//! finished after an earlier one failed has no record that a failed record
//! of the earlier one would have had to precede (in ordered mode).
//!
//! This module persists nothing (a crash loses the progress;
//! `buffered_wal` redelivers).
//!
//! | file | concept |
//! |---|---|
//! | `mod.rs` | a run: taking batches, validation, the delivery loop |
//! | `feed.rs` | [`Feed`]: the batches handed to a run and back |
//! | `queue.rs` | the run's entries by position, with their state |
//! | `shared.rs` | [`SinkShared`]: what a sink's clones share, and shard-map reloads |
//! | `entries.rs` | the entries of a batch, with KPL aggregation (open aggregates that later batches join; two threads for large batches) |
//! | `plan.rs` | which entries go in the next call (limits, pacing, ordered mode) |
//! | `call.rs` | one `PutRecords` call and its partial failures (retry, reject, give up) |
//! | `progress.rs` | [`PutProgress`]: how far a batch got, to resume it |
//! | `resume.rs` | [`Resumption`]: the batches of a failed flush, resumed record by record when sent again |
//!
//! [`RetryPolicy`]: crate::RetryPolicy

mod call;
mod entries;
mod feed;
mod plan;
mod progress;
mod queue;
mod resume;
mod shared;

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use hashbrown::HashMap;
use tokio::time::Instant;

use crate::kinesis::sink::validation::validate_with;
use crate::kinesis::KinesisRecord;
use crate::Error;

use crate::kinesis::sink::shard_map::ShardMap;
use entries::{build_entries, Lane, LaterRecords, OpenAggregate, PutEntry, ValidRecord};
pub(crate) use feed::Feed;
pub(crate) use progress::PutProgress;
use queue::Queue;
pub(crate) use resume::Resumption;
pub(crate) use shared::{SinkOptions, SinkShared};

/// How a run ended.
pub(crate) struct RunEnd {
    /// The transient failure that exhausted the policy; `None` when every
    /// batch it took is finished (and handed back through the feed).
    pub error: Option<Error>,
    /// With an error: the batches it took and did not hand back, in feed
    /// order (some may be finished, behind an unfinished one).
    pub unfinished: Vec<PutProgress>,
}

/// Delivers the batches fed through `feed` until none is left or a
/// transient failure exhausted the policy (see the module documentation).
pub(crate) async fn run_batches(shared: Arc<SinkShared>, feed: Arc<Feed>) -> RunEnd {
    let mut run = PutRun::new(&shared, &feed);
    let result = run.deliver().await;
    run.hand_on_finished();
    {
        let mut state = feed.state();
        state.waiting = 0;
        state.waiting_bytes = 0;
    }
    let unfinished = run.batches.into_iter().map(|b| b.progress).collect();
    RunEnd {
        error: result.err(),
        unfinished,
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

/// A batch a run took.
struct RunBatch {
    progress: PutProgress,
    /// Its entries still in the queue.
    pending: usize,
}

/// One delivery run.
struct PutRun<'a> {
    shared: &'a SinkShared,
    feed: &'a Feed,
    /// The batches taken and not handed back; `batches[0]` has the number
    /// `first_batch` (entries name their batch by number).
    batches: VecDeque<RunBatch>,
    first_batch: usize,
    queue: Queue,
    /// Everything before `head` in the queue is done.
    head: usize,
    /// Pending entries per lane (ordered mode).
    lane_counts: HashMap<Lane, usize>,
    /// With aggregation: each shard's open aggregate (by index in
    /// `open_map`), which the next batch's records for the shard join.
    open: Vec<Option<OpenAggregate>>,
    open_map: Option<Arc<ShardMap>>,
    /// Entries pending in the queue, and those of them in calls in flight
    /// (with their billed bytes).
    pending: usize,
    in_calls: usize,
    pending_bytes: u64,
    in_call_bytes: u64,
}

impl<'a> PutRun<'a> {
    fn new(shared: &'a SinkShared, feed: &'a Feed) -> Self {
        Self {
            shared,
            feed,
            batches: VecDeque::new(),
            first_batch: 0,
            queue: Queue::default(),
            head: 0,
            lane_counts: HashMap::new(),
            open: Vec::new(),
            open_map: None,
            pending: 0,
            in_calls: 0,
            pending_bytes: 0,
            in_call_bytes: 0,
        }
    }

    /// Takes the batches fed since the last look; whether there were any.
    async fn take_fed(&mut self) -> bool {
        let fed = std::mem::take(&mut self.feed.state().incoming);
        let any = !fed.is_empty();
        for progress in fed {
            self.add_batch(progress).await;
        }
        any
    }

    /// Validates what is left of a batch and queues its entries.
    async fn add_batch(&mut self, mut progress: PutProgress) {
        // One flag per record of the batch, whether fresh or resumed.
        debug_assert_eq!(progress.done.len(), progress.batch.len());
        let shared = self.shared;
        let number = self.first_batch + self.batches.len();
        let mut valid = Vec::with_capacity(progress.batch.len());
        let mut invalid = Vec::new();
        {
            let mut hash_keys = shared.hash_keys();
            for (index, record) in progress.batch.iter().enumerate() {
                if progress.done[index] {
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
            progress.reject(&[index], reason.to_string());
        }
        // The entries holding records of this batch (new ones, and earlier
        // batches' open aggregates its records joined): the run counts
        // only the new ones.
        let mut pending = 0;
        let mut new_entries = 0;
        if !valid.is_empty() {
            let map = shared.current_shard_map().await;
            if shared.options.aggregation.is_some() {
                self.open_aggregates_of(&map);
            }
            let max_bytes = self.aggregate_sizes(&map);
            let open_bytes_before = self.open_bytes();
            let built = build_entries(
                shared,
                &progress.batch,
                valid,
                &map,
                &mut self.open,
                &max_bytes,
            );
            for refused in built.refused {
                progress.reject(&[refused.index], refused.reason.to_string());
            }
            // Records that joined the open aggregate of an earlier batch:
            // that entry now carries records of this batch too.
            for joined in built.joined {
                let position = self.open.get(joined.shard).and_then(|o| o.as_ref());
                let entry = position.and_then(|open| self.queue.entry_mut(open.position));
                // Records join only an open aggregate, whose entry is
                // pending.
                debug_assert!(entry.is_some());
                if let Some(entry) = entry {
                    entry.later.push(LaterRecords {
                        batch: number,
                        indices: joined.indices,
                    });
                    pending += 1;
                }
            }
            self.pending_bytes += self.open_bytes() - open_bytes_before;
            let mut opened: HashMap<usize, _> = built.opened.into_iter().collect();
            new_entries = built.entries.len();
            pending += new_entries;
            for mut entry in built.entries {
                entry.batch = number;
                let position = self.queue.end();
                let billed = match (entry.lane, entry.is_open()) {
                    (Lane::Shard(shard), true) => match opened.remove(&shard) {
                        Some(aggregator) => {
                            // The shard's earlier open aggregate is full.
                            self.seal_open(shard);
                            let billed = aggregator.billed_bytes();
                            if let Some(slot) = self.open.get_mut(shard) {
                                *slot = Some(OpenAggregate {
                                    position,
                                    aggregator,
                                });
                            }
                            billed
                        }
                        // Every open entry has its aggregator.
                        None => {
                            debug_assert!(false, "an open entry without its aggregate");
                            0
                        }
                    },
                    _ => entry
                        .record(&progress.batch)
                        .map_or(0, |record| record.billed_bytes()),
                };
                self.pending_bytes += billed as u64;
                if shared.options.ordered {
                    *self.lane_counts.entry(entry.lane).or_default() += 1;
                }
                self.queue.push(entry);
            }
        }
        self.pending += new_entries;
        self.batches.push_back(RunBatch { progress, pending });
        self.hand_on_finished();
    }

    /// Hands the finished batches at the front back through the feed.
    fn hand_on_finished(&mut self) {
        let mut finished = Vec::new();
        while self.batches.front().is_some_and(|b| b.pending == 0) {
            if let Some(batch) = self.batches.pop_front() {
                finished.push(batch.progress);
            }
            self.first_batch += 1;
        }
        if !finished.is_empty() {
            self.feed.state().finished.extend(finished);
        }
    }

    /// The batch numbered `number`.
    fn batch_mut(&mut self, number: usize) -> &mut PutProgress {
        &mut self.batches[number - self.first_batch].progress
    }

    /// The Kinesis record `entry` puts (`None` while it is an open
    /// aggregate).
    fn record_of<'e>(&'e self, entry: &'e PutEntry) -> Option<&'e KinesisRecord> {
        entry.record(&self.batches[entry.batch - self.first_batch].progress.batch)
    }

    /// The billed bytes of what `entry` puts (of an open aggregate: so far).
    fn billed_of(&self, entry: &PutEntry) -> usize {
        match self.record_of(entry) {
            Some(record) => record.billed_bytes(),
            None => match entry.lane {
                Lane::Shard(shard) => self
                    .open
                    .get(shard)
                    .and_then(|open| open.as_ref())
                    .map_or(0, |open| open.aggregator.billed_bytes()),
                _ => 0,
            },
        }
    }

    /// Makes `map` the map of the open aggregates: those of another map
    /// are sealed (a shard index names another shard in another map).
    fn open_aggregates_of(&mut self, map: &Arc<ShardMap>) {
        if self
            .open_map
            .as_ref()
            .is_some_and(|open_map| Arc::ptr_eq(open_map, map))
        {
            return;
        }
        for shard in 0..self.open.len() {
            self.seal_open(shard);
        }
        self.open = std::iter::repeat_with(|| None).take(map.len()).collect();
        self.open_map = Some(map.clone());
    }

    /// The size limit of new aggregates per shard of `map` (empty without
    /// aggregation or pacing): the configured one times the share of the
    /// shard the pacing allows now, so that where producers share a shard
    /// (and the allowance is cut) an overshoot costs a smaller aggregate.
    fn aggregate_sizes(&self, map: &ShardMap) -> Vec<usize> {
        let (Some(max_bytes), Some(_)) = (
            self.shared.options.aggregation,
            self.shared.options.rate_limit,
        ) else {
            return Vec::new();
        };
        let limiter = self.shared.limiter();
        let now = Instant::now();
        map.shard_ids()
            .map(|id| ((max_bytes as f64 * limiter.share(id, now)) as usize).max(1))
            .collect()
    }

    /// Billed bytes of the open aggregates.
    fn open_bytes(&self) -> u64 {
        self.open
            .iter()
            .flatten()
            .map(|open| open.aggregator.billed_bytes() as u64)
            .sum()
    }

    /// Seals the open aggregate of `shard`, if any: it takes no more
    /// records.
    fn seal_open(&mut self, shard: usize) {
        let Some(mut open) = self.open.get_mut(shard).and_then(Option::take) else {
            return;
        };
        // An open aggregate's entry is pending (it is sealed before it is
        // sent).
        debug_assert!(self
            .queue
            .entry(open.position)
            .is_some_and(PutEntry::is_open));
        if let Some(entry) = self.queue.entry_mut(open.position) {
            entry.seal(&mut open.aggregator);
        }
    }

    /// Seals the entry at `position` if it is an open aggregate (it is
    /// about to be sent).
    fn seal_if_open(&mut self, position: usize) {
        let Some(entry) = self.queue.entry(position) else {
            return;
        };
        if let (true, Lane::Shard(shard)) = (entry.is_open(), entry.lane) {
            debug_assert!(self.open[shard]
                .as_ref()
                .is_some_and(|open| open.position == position));
            self.seal_open(shard);
        }
    }

    /// Sends the queue until each entry is stored or rejected and no batch
    /// is left to take, with up to the configured number of calls in
    /// flight.
    async fn deliver(&mut self) -> Result<(), Error> {
        let shared = self.shared;
        let max_in_flight = shared.options.max_calls_in_flight.max(1);
        let mut in_flight = FuturesUnordered::new();
        // A transient failure that exhausted the policy, or a request that
        // could not be built: no new calls and no new batch, the calls in
        // flight end first (what they store is then known and never sent
        // again).
        let mut failure: Option<Error> = None;
        loop {
            if failure.is_none() {
                self.take_fed().await;
            }
            let mut wake = None;
            while failure.is_none()
                && in_flight.len() < max_in_flight
                && self.head < self.queue.end()
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
                    self.seal_if_open(i);
                    self.queue.set_slot(i, Slot::InFlight);
                }
                self.in_calls += plan.entries.len();
                match self.prepare(plan.entries, now, &map) {
                    Ok(call) => {
                        self.in_call_bytes += call.bytes;
                        in_flight.push(call::send(shared, call));
                    }
                    Err(err) => failure = Some(err),
                }
            }
            {
                let mut state = self.feed.state();
                state.waiting = self.pending - self.in_calls;
                state.waiting_bytes = self.pending_bytes.saturating_sub(self.in_call_bytes);
            }
            if in_flight.is_empty() {
                if let Some(err) = failure {
                    return Err(err);
                }
                if self.head == self.queue.end() {
                    // Nothing pending: done, unless a batch was fed while
                    // this loop waited for the shard map.
                    if self.feed.state().incoming.is_empty() {
                        return Ok(());
                    }
                    continue;
                }
            }
            let sleep_until = wake.filter(|_| failure.is_none());
            let idle = in_flight.is_empty();
            if idle && sleep_until.is_none() {
                // A pending entry that is neither in flight nor waiting
                // for a back-off or room would have been planned.
                debug_assert!(false, "nothing in flight and nothing to wait for");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
            let waited_from = Instant::now();
            // (Without a wake the sleep branch is disabled: its instant is
            // never waited for.)
            let wake_at = sleep_until.map_or(waited_from, |w| w.at);
            let answered = tokio::select! {
                answered = in_flight.next(), if !idle => answered,
                () = tokio::time::sleep_until(wake_at), if sleep_until.is_some() => {
                    if idle && sleep_until.is_some_and(|w| w.for_room) {
                        shared.record_metrics(|m| m.rate_limit_wait += Instant::now() - waited_from);
                    }
                    None
                }
                () = self.feed.arrived.notified(), if failure.is_none() => None,
            };
            let Some(answered) = answered else { continue };
            self.in_calls -= answered.call.entries.len();
            self.in_call_bytes -= answered.call.bytes;
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
            while self.head < self.queue.end() && self.queue.entry(self.head).is_none() {
                self.head += 1;
            }
            self.queue.drop_done_before(self.head);
            self.hand_on_finished();
        }
    }

    /// Takes entry `i` out of the queue (stored or rejected): its records
    /// are done and its lane moves on.
    fn finish_entry(&mut self, i: usize) -> Option<PutEntry> {
        let entry = self.queue.take(i)?;
        // Only sent entries finish, and they are sealed.
        debug_assert!(!entry.is_open());
        self.pending -= 1;
        self.pending_bytes -= self.billed_of(&entry) as u64;
        for (number, indices) in entry.records() {
            let batch = &mut self.batches[number - self.first_batch];
            batch.pending -= 1;
            for &index in indices {
                batch.progress.done[index] = true;
            }
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
