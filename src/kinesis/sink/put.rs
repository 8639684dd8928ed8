//! Delivering one batch: validation, aggregation, call planning, pacing,
//! `PutRecords`, partial-failure retries.
//!
//! The batch becomes a queue of *entries* (one Kinesis record each: a user
//! record, or an aggregate of several). Calls are planned from the front of
//! the queue: at most 500 entries and 5 MiB per call, and no more per shard
//! than the rate limiter allows. After each call, the entries that succeeded
//! leave the queue; the failed ones stay where they were and go out again in
//! a later call, after a back-off, until the [`RetryPolicy`] runs out.
//!
//! **Ordering.** `PutRecords` does not order the records of one call: a
//! failed record does not stop later ones. So in ordered mode a call carries
//! at most one entry per *lane* — the partition key, or with aggregation the
//! predicted shard (an aggregate is atomic, and all of a key's records go to
//! its shard's aggregates) — and the next entry of a lane is only sent once
//! the previous one succeeded (or was rejected). A failed record for key K
//! thus holds back every later record for K. Unordered mode fills calls
//! freely.
//!
//! **Outcome.** `Ok(())`: every record is stored. `Err(Error::Rejected)`:
//! every record is stored except those listed (invalid, or a permanent
//! failure that exhausted the policy), which the caller dead-letters.
//! `Err(Error::Target)`: a transient failure exhausted the policy; records
//! may have been stored already, and the caller sends the batch again — the
//! run's [`Progress`] then makes the sink send only what is left.
//!
//! [`RetryPolicy`]: crate::RetryPolicy

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_smithy_types::Blob;
use tokio::time::Instant;

use super::failure::{classify_code, classify_put_records_error, FailureKind};
use super::metrics::KinesisMetricsHandle;
use super::rate_limit::{Portion, RateLimiter, ShardRateLimit};
use super::shard_map::{self, ShardMap};
use super::validation::validate_with;
use crate::kinesis::aggregation::{Aggregator, Refused};
use crate::kinesis::hash_key::{HashKey, HashKeyCache, InvalidHashKey};
use crate::kinesis::limits::{MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_COUNT};
use crate::kinesis::KinesisRecord;
use crate::kinesis::StreamTarget;
use crate::{Error, RejectedRecord, RetryPolicy};

/// Never reload the shard map more often than this, whatever triggers it.
const MIN_SHARD_MAP_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Batches of at least this many records (bound for known shards) are
/// aggregated by two threads; below it, a thread costs more than it saves.
pub(crate) const PARALLEL_AGGREGATION_RECORDS: usize = 8192;

/// How the sink delivers (set through the builder).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub ordered: bool,
    /// Aggregate size limit, `None` when aggregation is off.
    pub aggregation: Option<usize>,
    pub retry: RetryPolicy,
    pub rate_limit: Option<ShardRateLimit>,
    pub shard_map_refresh: Duration,
}

/// State shared by a sink and its clones.
#[derive(Debug)]
pub(crate) struct Shared {
    pub client: aws_sdk_kinesis::Client,
    pub target: StreamTarget,
    pub label: String,
    pub options: Options,
    pub metrics: KinesisMetricsHandle,
    shard_map: Mutex<ShardMapState>,
    limiter: Mutex<RateLimiter>,
    hash_keys: Mutex<HashKeyCache>,
}

#[derive(Debug, Default)]
struct ShardMapState {
    map: Arc<ShardMap>,
    loaded_at: Option<Instant>,
    attempted_at: Option<Instant>,
    stale: bool,
}

/// The ordering unit of ordered mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    /// Records of one partition key (by its MD5).
    Key(u128),
    /// Aggregates bound for one predicted shard (by index in the map used
    /// to build them) or, without a prediction, for one hash key.
    Shard(usize),
    HashKey(u128),
}

/// The user records an entry carries, by index in the batch.
#[derive(Debug)]
enum Indices {
    One(usize),
    Many(Vec<usize>),
}

impl Indices {
    fn as_slice(&self) -> &[usize] {
        match self {
            Indices::One(i) => std::slice::from_ref(i),
            Indices::Many(v) => v,
        }
    }

    fn count(&self) -> u64 {
        self.as_slice().len() as u64
    }
}

/// What an entry puts: one user record of the batch, or an aggregate.
#[derive(Debug)]
enum Body {
    User(usize),
    Aggregate(KinesisRecord),
}

/// One Kinesis record to put.
#[derive(Debug)]
struct Entry {
    body: Body,
    hash_key: HashKey,
    lane: Lane,
    indices: Indices,
    attempts: u32,
}

impl Entry {
    fn record<'a>(&'a self, batch: &'a [KinesisRecord]) -> &'a KinesisRecord {
        match &self.body {
            Body::User(index) => &batch[*index],
            Body::Aggregate(record) => record,
        }
    }
}

/// What one call did to the queue.
#[derive(Default)]
struct CallOutcome {
    any_failed: bool,
    throttled_shards: HashSet<Arc<str>>,
    /// A transient failure that exhausted the policy: the batch fails.
    exhausted: Option<String>,
}

/// How far a failed batch got: which records are stored or rejected
/// already. Sending the same batch again resumes from here instead of
/// storing its delivered records a second time.
#[derive(Debug)]
pub(crate) struct Progress {
    batch: Arc<Vec<KinesisRecord>>,
    done: Vec<bool>,
    rejected: Vec<RejectedRecord>,
}

/// One delivery run of a batch.
struct Attempt<'a> {
    shared: &'a Shared,
    batch: Arc<Vec<KinesisRecord>>,
    /// Stored or rejected, per record of the batch.
    done: Vec<bool>,
    rejected: Vec<RejectedRecord>,
    queue: Vec<Option<Entry>>,
    /// Everything before `head` in the queue is done.
    head: usize,
    /// Pending entries per lane (ordered mode).
    lane_counts: HashMap<Lane, usize>,
}

impl Shared {
    pub(crate) fn new(
        client: aws_sdk_kinesis::Client,
        target: StreamTarget,
        options: Options,
        metrics: KinesisMetricsHandle,
    ) -> Self {
        let limiter = RateLimiter::new(options.rate_limit.unwrap_or_default());
        Self {
            client,
            label: target.to_string(),
            target,
            options,
            metrics,
            shard_map: Mutex::new(ShardMapState::default()),
            limiter: Mutex::new(limiter),
            hash_keys: Mutex::default(),
        }
    }

    /// Delivers `batch` (see the module documentation for the outcome).
    /// When `previous` is the progress of a failed run of the same batch,
    /// only what it did not finish is sent. A failed run returns its own
    /// progress.
    pub(crate) async fn put_batch(
        self: Arc<Self>,
        batch: Vec<KinesisRecord>,
        previous: Option<Progress>,
    ) -> (Result<(), Error>, Option<Progress>) {
        let mut attempt = match previous {
            Some(progress) if *progress.batch == batch => {
                tracing::debug!(
                    target: "unistream::kinesis",
                    stream = %self.label,
                    remaining = progress.done.iter().filter(|d| !**d).count(),
                    "resuming a batch that failed before"
                );
                Attempt::new(&self, progress.batch, progress.done, progress.rejected)
            }
            _ => {
                self.metrics.update(|m| {
                    for record in &batch {
                        m.record_bytes
                            .saturating_record(record.billed_bytes() as u64);
                    }
                });
                let done = vec![false; batch.len()];
                Attempt::new(&self, Arc::new(batch), done, Vec::new())
            }
        };
        match attempt.run().await {
            Ok(()) => {
                let mut rejected = attempt.rejected;
                if rejected.is_empty() {
                    return (Ok(()), None);
                }
                rejected.sort_by_key(|r| r.index);
                self.metrics
                    .update(|m| m.records_dead_lettered += rejected.len() as u64);
                (Err(Error::Rejected(rejected)), None)
            }
            Err(err) => {
                let progress = Progress {
                    batch: attempt.batch,
                    done: attempt.done,
                    rejected: attempt.rejected,
                };
                (Err(err), Some(progress))
            }
        }
    }
}

impl<'a> Attempt<'a> {
    fn new(
        shared: &'a Shared,
        batch: Arc<Vec<KinesisRecord>>,
        done: Vec<bool>,
        rejected: Vec<RejectedRecord>,
    ) -> Self {
        Self {
            shared,
            batch,
            done,
            rejected,
            queue: Vec::new(),
            head: 0,
            lane_counts: HashMap::new(),
        }
    }

    /// Validates what is left of the batch, then sends it until each record
    /// is stored or rejected.
    async fn run(&mut self) -> Result<(), Error> {
        let shared = self.shared;
        let mut valid = Vec::with_capacity(self.batch.len());
        let mut invalid = Vec::new();
        {
            let mut hash_keys = shared.hash_keys();
            for (index, record) in self.batch.iter().enumerate() {
                if self.done[index] {
                    continue;
                }
                match validate_with(record, &mut hash_keys) {
                    Ok(hash_key) => valid.push((index, hash_key)),
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
            self.reject(&[index], reason.to_string());
        }
        if valid.is_empty() {
            return Ok(());
        }
        let map = shared.current_shard_map().await;
        let entries = self.build_entries(valid, &map);
        if shared.options.ordered {
            for entry in &entries {
                *self.lane_counts.entry(entry.lane).or_default() += 1;
            }
        }
        self.queue = entries.into_iter().map(Some).collect();
        self.deliver().await
    }

    fn reject(&mut self, indices: &[usize], reason: String) {
        for &index in indices {
            self.done[index] = true;
            self.rejected
                .push(RejectedRecord::new(index, reason.clone()));
        }
    }

    /// Turns validated records into entries, aggregating when enabled
    /// (with two threads from [`PARALLEL_AGGREGATION_RECORDS`] records).
    fn build_entries(&mut self, valid: Vec<(usize, HashKey)>, map: &ShardMap) -> Vec<Entry> {
        let batch = self.batch.clone();
        let Some(max_bytes) = self.shared.options.aggregation else {
            let mut hash_keys = self.shared.hash_keys();
            return valid
                .into_iter()
                .map(|(index, hash_key)| {
                    let record = &batch[index];
                    let lane = Lane::Key(match record.explicit_hash_key {
                        None => hash_key.value(),
                        Some(_) => hash_keys.of_partition_key(&record.partition_key).value(),
                    });
                    Entry {
                        body: Body::User(index),
                        hash_key,
                        lane,
                        indices: Indices::One(index),
                        attempts: 0,
                    }
                })
                .collect();
        };

        struct Group {
            aggregator: Aggregator,
            indices: Vec<usize>,
            hash_key: Option<HashKey>,
        }
        fn finish(lane: Lane, group: &mut Group, entries: &mut Vec<Entry>) {
            let (Some(record), Some(hash_key)) = (group.aggregator.finish(), group.hash_key.take())
            else {
                return;
            };
            let indices = std::mem::take(&mut group.indices);
            let (body, indices) = match indices.as_slice() {
                // Alone, the "aggregate" is the user record itself.
                [one] => (Body::User(*one), Indices::One(*one)),
                _ => (Body::Aggregate(record), Indices::Many(indices)),
            };
            entries.push(Entry {
                body,
                hash_key,
                lane,
                indices,
                attempts: 0,
            });
        }
        /// Adds a record to its lane's aggregate, finishing the aggregate
        /// first when it is full; a record it cannot take goes to `invalid`.
        fn add(
            lane: Lane,
            group: &mut Group,
            record: &KinesisRecord,
            index: usize,
            hash_key: HashKey,
            entries: &mut Vec<Entry>,
            invalid: &mut Vec<(usize, InvalidHashKey)>,
        ) {
            loop {
                // The hash key is valid: validation computed it.
                match group.aggregator.try_add_with_hash_key(record, hash_key) {
                    Ok(()) => {
                        group.indices.push(index);
                        group.hash_key.get_or_insert(hash_key);
                        return;
                    }
                    // The first record of an aggregate is always taken, so
                    // this loops at most twice.
                    Err(Refused::Full) => finish(lane, group, entries),
                    // Kept so that nothing is ever dropped silently.
                    Err(Refused::InvalidHashKey(reason)) => {
                        invalid.push((index, reason));
                        return;
                    }
                }
            }
        }
        let new_group = |records: usize, bytes: usize| {
            let mut aggregator = Aggregator::new(max_bytes);
            aggregator.reserve(records, bytes);
            Group {
                aggregator,
                indices: Vec::with_capacity(records),
                hash_key: None,
            }
        };
        // Lanes by shard index; records outside the map (a reshard in
        // progress) by hash key. A first pass counts each shard's records
        // and bytes, so that its aggregates are allocated once.
        let shards: Vec<Option<usize>> = valid
            .iter()
            .map(|&(_, hash_key)| map.shard_for(hash_key).map(|(shard, _)| shard))
            .collect();
        let mut shard_totals = vec![(0usize, 0usize); map.len()];
        for (&(index, _), shard) in valid.iter().zip(&shards) {
            if let Some(shard) = *shard {
                shard_totals[shard].0 += 1;
                shard_totals[shard].1 += batch[index].data.len();
            }
        }
        // Each shard's records in batch order (a stable counting sort), so
        // that one aggregator fills a shard's aggregates at a time: what it
        // works on stays in the CPU caches, instead of one aggregator per
        // shard being touched in turn.
        let mut next = Vec::with_capacity(map.len());
        let mut placed = 0;
        for &(records, _) in &shard_totals {
            next.push(placed);
            placed += records;
        }
        let mut by_shard = vec![(0usize, HashKey::MIN); placed];
        let mut unplaced = Vec::new();
        for (&(index, hash_key), shard) in valid.iter().zip(&shards) {
            match *shard {
                Some(shard) => {
                    by_shard[next[shard]] = (index, hash_key);
                    next[shard] += 1;
                }
                None => unplaced.push((index, hash_key)),
            }
        }
        // Fills the aggregates of the shards in `shards`, whose records
        // start at `start` in `by_shard`.
        let aggregate = |shards: std::ops::Range<usize>, mut start: usize| {
            let mut entries = Vec::new();
            let mut invalid = Vec::new();
            let mut group = new_group(0, 0);
            for shard in shards {
                let (records, bytes) = shard_totals[shard];
                if records == 0 {
                    continue;
                }
                let lane = Lane::Shard(shard);
                group.aggregator.reserve(records, bytes);
                group.indices.reserve(records);
                for &(index, hash_key) in &by_shard[start..start + records] {
                    add(
                        lane,
                        &mut group,
                        &batch[index],
                        index,
                        hash_key,
                        &mut entries,
                        &mut invalid,
                    );
                }
                finish(lane, &mut group, &mut entries);
                start += records;
            }
            (entries, invalid)
        };
        // A large batch is aggregated by two threads, each taking the shards
        // of about half its records: building aggregates (copies, the MD5
        // the format requires) is most of the CPU time of a batch, and it
        // sits on the delivery path. Entries are put in batch order below,
        // whichever thread built them.
        let (mut entries, mut invalid) = if placed >= PARALLEL_AGGREGATION_RECORDS {
            let (mut split, mut before) = (0, 0);
            while split < shard_totals.len() && before + shard_totals[split].0 <= placed / 2 {
                before += shard_totals[split].0;
                split += 1;
            }
            std::thread::scope(|scope| {
                let first_half = scope.spawn(|| aggregate(0..split, 0));
                let (mut entries, mut invalid) = aggregate(split..shard_totals.len(), before);
                match first_half.join() {
                    Ok((more, more_invalid)) => {
                        entries.extend(more);
                        invalid.extend(more_invalid);
                    }
                    Err(panic) => std::panic::resume_unwind(panic),
                }
                (entries, invalid)
            })
        } else {
            aggregate(0..shard_totals.len(), 0)
        };
        let mut by_hash_key: HashMap<u128, Group> = HashMap::new();
        for (index, hash_key) in unplaced {
            let lane = Lane::HashKey(hash_key.value());
            let group = by_hash_key
                .entry(hash_key.value())
                .or_insert_with(|| new_group(0, 0));
            add(
                lane,
                group,
                &batch[index],
                index,
                hash_key,
                &mut entries,
                &mut invalid,
            );
        }
        for (hash_key, group) in by_hash_key.iter_mut() {
            finish(Lane::HashKey(*hash_key), group, &mut entries);
        }
        for (index, reason) in invalid {
            self.reject(&[index], reason.to_string());
        }
        // Lanes must keep batch order; across lanes any order would do, and
        // batch order is the natural one.
        entries.sort_by_key(|e| e.indices.as_slice()[0]);
        entries
    }

    /// Sends the queue until each entry is stored or rejected.
    async fn deliver(&mut self) -> Result<(), Error> {
        let shared = self.shared;
        let mut failed_calls = 0u32;
        while self.head < self.queue.len() {
            if failed_calls > 0 {
                let delay = shared.options.retry.backoff(failed_calls - 1);
                tracing::debug!(
                    target: "unistream::kinesis",
                    stream = %shared.label, ?delay, "backing off before retrying failed records"
                );
                tokio::time::sleep(delay).await;
            }
            let map = shared.current_shard_map().await;
            let (chosen, portions) = self.plan_call(&map);
            if !portions.is_empty() {
                let now = Instant::now();
                let ready = shared.limiter().reserve(now, &portions);
                if ready > now {
                    shared.metrics.update(|m| m.rate_limit_wait += ready - now);
                    tokio::time::sleep_until(ready).await;
                }
            }
            let outcome = self.call(&chosen, &map).await?;
            {
                let mut limiter = shared.limiter();
                for (shard, _) in &portions {
                    if outcome.throttled_shards.contains(shard) {
                        limiter.on_throttle(shard);
                    } else {
                        limiter.on_success(shard);
                    }
                }
            }
            if let Some(reason) = outcome.exhausted {
                return Err(Error::target(
                    shared.label.clone(),
                    format!(
                        "records still failing after {} attempt(s): {reason}",
                        shared.options.retry.attempt_limit().unwrap_or(u32::MAX)
                    ),
                ));
            }
            failed_calls = if outcome.any_failed {
                failed_calls + 1
            } else {
                0
            };
            while self.head < self.queue.len() && self.queue[self.head].is_none() {
                self.head += 1;
            }
        }
        Ok(())
    }

    /// Picks the entries of the next call from the front of the queue.
    fn plan_call(&self, map: &ShardMap) -> (Vec<usize>, Vec<(Arc<str>, Portion)>) {
        let shared = self.shared;
        let ordered = shared.options.ordered;
        let limiter = shared
            .options
            .rate_limit
            .is_some()
            .then(|| shared.limiter());
        let mut chosen = Vec::new();
        let mut bytes = 0usize;
        let mut seen_lanes = HashSet::new();
        let mut portions: HashMap<usize, (Arc<str>, Portion)> = HashMap::new();
        for (i, slot) in self.queue.iter().enumerate().skip(self.head) {
            let Some(entry) = slot else { continue };
            if chosen.len() == MAX_PUT_RECORDS_COUNT {
                break;
            }
            // A lane's first pending entry blocks the rest of the lane,
            // whether or not it fits in this call.
            if ordered && !seen_lanes.insert(entry.lane) {
                continue;
            }
            let billed = entry.record(&self.batch).billed_bytes();
            let fits_call = bytes + billed <= MAX_PUT_RECORDS_BYTES;
            let shard = map.shard_for(entry.hash_key);
            let fits_shard = match (&limiter, shard) {
                (Some(limiter), Some((index, id))) => {
                    let portion = portions.get(&index).map_or(Portion::default(), |p| p.1);
                    limiter.call_has_room(id, portion, billed as u64)
                }
                _ => true,
            };
            if fits_call && fits_shard {
                chosen.push(i);
                bytes += billed;
                if let (Some(_), Some((index, id))) = (&limiter, shard) {
                    let p = &mut portions
                        .entry(index)
                        .or_insert_with(|| (id.clone(), Portion::default()))
                        .1;
                    p.records += 1;
                    p.bytes += billed as u64;
                }
            }
            // Every lane has had its turn: nothing further can go.
            if ordered && seen_lanes.len() == self.lane_counts.len() {
                break;
            }
        }
        (chosen, portions.into_values().collect())
    }

    /// Makes one `PutRecords` call with the `chosen` entries and applies
    /// the answer to the queue.
    async fn call(&mut self, chosen: &[usize], map: &ShardMap) -> Result<CallOutcome, Error> {
        let shared = self.shared;
        let mut request = Vec::with_capacity(chosen.len());
        let mut predicted = Vec::with_capacity(chosen.len());
        let mut call_bytes = 0u64;
        for &i in chosen {
            let Some(entry) = &self.queue[i] else {
                continue;
            };
            let record = entry.record(&self.batch);
            call_bytes += record.billed_bytes() as u64;
            predicted.push(map.shard_for(entry.hash_key).map(|(_, id)| id.clone()));
            let built = PutRecordsRequestEntry::builder()
                // Shares the record's buffer instead of copying it.
                .data(Blob::from_maybe_shared(record.data.clone()))
                .partition_key(record.partition_key.clone())
                .set_explicit_hash_key(record.explicit_hash_key.clone())
                .build()
                // Only a missing data or partition key fails, and both are set.
                .map_err(|e| Error::target(shared.label.clone(), e))?;
            request.push(built);
        }

        let started = Instant::now();
        let result = shared
            .client
            .put_records()
            .set_stream_name(shared.target.name().map(str::to_owned))
            .set_stream_arn(shared.target.arn().map(str::to_owned))
            .set_records(Some(request))
            .send()
            .await;
        let latency = started.elapsed();
        shared.metrics.update(|m| {
            m.put_records_calls += 1;
            m.latency_us.saturating_record(latency.as_micros() as u64);
            m.call_records.saturating_record(chosen.len() as u64);
            m.call_bytes.saturating_record(call_bytes);
        });

        let mut outcome = CallOutcome::default();
        match result {
            Ok(output) if output.records().len() == chosen.len() => {
                let mut sent = 0u64;
                let mut kinesis_sent = 0u64;
                let mut mispredicted = 0u64;
                for (k, (&i, result)) in chosen.iter().zip(output.records()).enumerate() {
                    match result.error_code() {
                        None => {
                            if let Some(entry) = self.finish_entry(i) {
                                sent += entry.indices.count();
                                kinesis_sent += 1;
                            }
                            if let (Some(actual), Some(expected)) =
                                (result.shard_id(), &predicted[k])
                            {
                                if actual != &**expected {
                                    mispredicted += 1;
                                }
                            }
                        }
                        Some(code) => {
                            let kind = classify_code(code);
                            let reason = match result.error_message() {
                                Some(message) => format!("{code}: {message}"),
                                None => code.to_owned(),
                            };
                            self.fail(i, predicted[k].as_ref(), kind, &reason, &mut outcome);
                        }
                    }
                }
                if mispredicted > 0 {
                    tracing::info!(
                        target: "unistream::kinesis",
                        stream = %shared.label, mispredicted,
                        "records landed on other shards than predicted; reloading the shard map"
                    );
                    shared.shard_map_state().stale = true;
                }
                shared.metrics.update(|m| {
                    m.records_sent += sent;
                    m.kinesis_records_sent += kinesis_sent;
                    m.shard_mispredictions += mispredicted;
                });
            }
            Ok(output) => {
                let reason = format!(
                    "PutRecords answered {} results for {} records",
                    output.records().len(),
                    chosen.len()
                );
                self.fail_call(
                    chosen,
                    &predicted,
                    FailureKind::Transient,
                    &reason,
                    &mut outcome,
                );
            }
            Err(err) => {
                let (kind, reason) = classify_put_records_error(&err);
                let reason = format!("PutRecords failed: {reason}");
                self.fail_call(chosen, &predicted, kind, &reason, &mut outcome);
            }
        }
        if outcome.any_failed {
            tracing::debug!(
                target: "unistream::kinesis",
                stream = %shared.label, records = chosen.len(),
                throttled_shards = outcome.throttled_shards.len(),
                "PutRecords had failures"
            );
        }
        Ok(outcome)
    }

    /// Takes entry `i` out of the queue (stored or rejected): its records
    /// are done and its lane moves on.
    fn finish_entry(&mut self, i: usize) -> Option<Entry> {
        let entry = self.queue[i].take()?;
        for &index in entry.indices.as_slice() {
            self.done[index] = true;
        }
        if let Some(count) = self.lane_counts.get_mut(&entry.lane) {
            *count -= 1;
            if *count == 0 {
                self.lane_counts.remove(&entry.lane);
            }
        }
        Some(entry)
    }

    /// Every entry of a call that failed as a whole.
    fn fail_call(
        &mut self,
        chosen: &[usize],
        predicted: &[Option<Arc<str>>],
        kind: FailureKind,
        reason: &str,
        outcome: &mut CallOutcome,
    ) {
        let shared = self.shared;
        tracing::warn!(
            target: "unistream::kinesis",
            stream = %shared.label, records = chosen.len(), ?kind, %reason,
            "PutRecords call failed"
        );
        shared.metrics.update(|m| {
            m.put_records_call_failures += 1;
            if kind == FailureKind::Throttled {
                m.throttles += 1;
            }
        });
        for (k, &i) in chosen.iter().enumerate() {
            // A throttled call counts once above, not once per record.
            let kind = if kind == FailureKind::Throttled {
                if let Some(shard) = &predicted[k] {
                    outcome.throttled_shards.insert(shard.clone());
                }
                FailureKind::Transient
            } else {
                kind
            };
            self.fail(i, None, kind, reason, outcome);
        }
    }

    /// One entry failed: retry it later, reject it, or give up on the batch.
    fn fail(
        &mut self,
        i: usize,
        predicted: Option<&Arc<str>>,
        kind: FailureKind,
        reason: &str,
        outcome: &mut CallOutcome,
    ) {
        let shared = self.shared;
        outcome.any_failed = true;
        let Some(entry) = self.queue[i].as_mut() else {
            return;
        };
        entry.attempts += 1;
        let attempts = entry.attempts;
        let users = entry.indices.count();
        if kind == FailureKind::Throttled {
            if let Some(shard) = predicted {
                outcome.throttled_shards.insert(shard.clone());
            }
        }
        let retry = shared.options.retry.allows_another(attempts);
        shared.metrics.update(|m| {
            m.records_failed += users;
            if kind == FailureKind::Throttled {
                m.throttles += 1;
            }
            if retry {
                m.records_retried += users;
            }
        });
        if retry {
            return;
        }
        if kind.is_permanent() {
            tracing::warn!(
                target: "unistream::kinesis",
                stream = %shared.label, records = users, attempts, %reason,
                "records failed permanently; reporting them as rejected"
            );
            if let Some(entry) = self.finish_entry(i) {
                let reason = format!("{reason} (after {attempts} attempt(s))");
                for &index in entry.indices.as_slice() {
                    self.rejected
                        .push(RejectedRecord::new(index, reason.clone()));
                }
            }
        } else if outcome.exhausted.is_none() {
            outcome.exhausted = Some(reason.to_owned());
        }
    }
}

impl Shared {
    /// The shard map, reloaded first when it is due (first use, periodic
    /// refresh, or a misprediction). Without rate limiting and aggregation
    /// no map is needed and none is loaded. A failed load keeps the old map
    /// (possibly empty: records are then neither paced nor grouped by shard).
    async fn current_shard_map(&self) -> Arc<ShardMap> {
        if self.options.rate_limit.is_none() && self.options.aggregation.is_none() {
            return Arc::default();
        }
        let now = Instant::now();
        {
            let mut state = self.shard_map_state();
            let due = match state.loaded_at {
                None => true,
                Some(at) => state.stale || now >= at + self.options.shard_map_refresh,
            };
            let allowed = state
                .attempted_at
                .is_none_or(|at| now >= at + MIN_SHARD_MAP_RELOAD_INTERVAL);
            if !(due && allowed) {
                return state.map.clone();
            }
            state.attempted_at = Some(now);
        }
        match shard_map::load(&self.client, &self.target).await {
            Ok(map) => {
                tracing::debug!(
                    target: "unistream::kinesis",
                    stream = %self.label, open_shards = map.len(), "shard map loaded"
                );
                let map = Arc::new(map);
                self.limiter().retain_shards(|id| map.contains(id));
                self.metrics.update(|m| m.shard_map_refreshes += 1);
                let mut state = self.shard_map_state();
                state.map = map.clone();
                state.loaded_at = Some(Instant::now());
                state.stale = false;
                map
            }
            Err(err) => {
                tracing::warn!(
                    target: "unistream::kinesis",
                    stream = %self.label, error = %err,
                    "cannot load the shard map; keeping the previous one"
                );
                self.shard_map_state().map.clone()
            }
        }
    }

    fn shard_map_state(&self) -> MutexGuard<'_, ShardMapState> {
        // Plain data, consistent at every unlock: a panic elsewhere does
        // not make it unusable.
        self.shard_map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn limiter(&self) -> MutexGuard<'_, RateLimiter> {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hash_keys(&self) -> MutexGuard<'_, HashKeyCache> {
        // A cache: any state it is left in is valid.
        self.hash_keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}
