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
//! may have been stored already, and the caller sends the batch again
//! (at-least-once).
//!
//! [`RetryPolicy`]: crate::RetryPolicy

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_smithy_types::Blob;
use tokio::time::Instant;

use super::aggregation::{Aggregator, TryAddError};
use super::failure::{classify_code, classify_sdk_error, FailureKind};
use super::hash_key::HashKey;
use super::limits::{MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_COUNT};
use super::metrics::KinesisMetricsHandle;
use super::rate_limit::{Portion, RateLimiter, ShardRateLimit};
use super::shard_map::{self, ShardMap};
use super::target::StreamTarget;
use super::validation::validate;
use super::KinesisRecord;
use crate::{Error, RejectedRecord, RetryPolicy};

/// Never reload the shard map more often than this, whatever triggers it.
const MIN_SHARD_MAP_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

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

/// One Kinesis record to put.
#[derive(Debug)]
struct Entry {
    record: KinesisRecord,
    hash_key: HashKey,
    lane: Lane,
    indices: Indices,
    attempts: u32,
}

/// What one call did to the queue.
#[derive(Default)]
struct CallOutcome {
    any_failed: bool,
    throttled_shards: HashSet<Arc<str>>,
    /// A transient failure that exhausted the policy: the batch fails.
    exhausted: Option<String>,
    /// Lanes of the entries that left the queue (stored or rejected).
    done_lanes: Vec<Lane>,
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
        }
    }

    /// Delivers `batch` (see the module documentation for the outcome).
    pub(crate) async fn put_batch(self: Arc<Self>, batch: Vec<KinesisRecord>) -> Result<(), Error> {
        let mut rejected = Vec::new();
        let mut valid = Vec::with_capacity(batch.len());
        self.metrics.update(|m| {
            for record in &batch {
                m.record_bytes
                    .saturating_record(record.billed_bytes() as u64);
            }
        });
        for (index, record) in batch.into_iter().enumerate() {
            match validate(&record) {
                Ok(hash_key) => valid.push((index, record, hash_key)),
                Err(reason) => {
                    tracing::warn!(
                        target: "unistream::kinesis",
                        stream = %self.label, index, %reason,
                        "record rejected before sending"
                    );
                    rejected.push(RejectedRecord::new(index, reason.to_string()));
                }
            }
        }
        if !valid.is_empty() {
            let map = self.current_shard_map().await;
            let entries = self.build_entries(valid, &map, &mut rejected);
            self.deliver(entries, &mut rejected).await?;
        }
        if rejected.is_empty() {
            return Ok(());
        }
        rejected.sort_by_key(|r| r.index);
        self.metrics
            .update(|m| m.records_dead_lettered += rejected.len() as u64);
        Err(Error::Rejected(rejected))
    }

    /// Turns validated records into entries, aggregating when enabled.
    fn build_entries(
        &self,
        valid: Vec<(usize, KinesisRecord, HashKey)>,
        map: &ShardMap,
        rejected: &mut Vec<RejectedRecord>,
    ) -> Vec<Entry> {
        let Some(max_bytes) = self.options.aggregation else {
            return valid
                .into_iter()
                .map(|(index, record, hash_key)| {
                    let lane = Lane::Key(match record.explicit_hash_key {
                        None => hash_key.value(),
                        Some(_) => HashKey::from_partition_key(&record.partition_key).value(),
                    });
                    Entry {
                        record,
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
        let mut groups: HashMap<Lane, Group> = HashMap::new();
        let mut entries = Vec::new();
        let finish = |lane: Lane, group: &mut Group, entries: &mut Vec<Entry>| {
            if let (Some(record), Some(hash_key)) =
                (group.aggregator.finish(), group.hash_key.take())
            {
                let indices = std::mem::take(&mut group.indices);
                entries.push(Entry {
                    record,
                    hash_key,
                    lane,
                    indices: match indices.as_slice() {
                        [one] => Indices::One(*one),
                        _ => Indices::Many(indices),
                    },
                    attempts: 0,
                });
            }
        };
        for (index, record, hash_key) in valid {
            let lane = match map.shard_for(hash_key) {
                Some((shard, _)) => Lane::Shard(shard),
                None => Lane::HashKey(hash_key.value()),
            };
            let group = groups.entry(lane).or_insert_with(|| Group {
                aggregator: Aggregator::new(max_bytes),
                indices: Vec::new(),
                hash_key: None,
            });
            let mut record = record;
            loop {
                match group.aggregator.try_add(record) {
                    Ok(()) => {
                        group.indices.push(index);
                        group.hash_key.get_or_insert(hash_key);
                        break;
                    }
                    Err(TryAddError::Full(back)) => {
                        finish(lane, group, &mut entries);
                        record = back;
                    }
                    // Validation checked the hash key already; kept for
                    // completeness, never silently dropped.
                    Err(TryAddError::InvalidHashKey { reason, .. }) => {
                        rejected.push(RejectedRecord::new(index, reason.to_string()));
                        break;
                    }
                }
            }
        }
        for (lane, group) in groups.iter_mut() {
            finish(*lane, group, &mut entries);
        }
        // Lanes must keep batch order; across lanes any order would do, and
        // batch order is the natural one.
        entries.sort_by_key(|e| e.indices.as_slice()[0]);
        entries
    }

    /// Sends `entries` until each is stored or rejected.
    async fn deliver(
        &self,
        entries: Vec<Entry>,
        rejected: &mut Vec<RejectedRecord>,
    ) -> Result<(), Error> {
        let ordered = self.options.ordered;
        let mut lane_counts: HashMap<Lane, usize> = HashMap::new();
        if ordered {
            for entry in &entries {
                *lane_counts.entry(entry.lane).or_default() += 1;
            }
        }
        let mut queue: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
        let mut head = 0;
        let mut failed_calls = 0u32;

        while head < queue.len() {
            if failed_calls > 0 {
                let delay = self.options.retry.backoff(failed_calls - 1);
                tracing::debug!(
                    target: "unistream::kinesis",
                    stream = %self.label, ?delay, "backing off before retrying failed records"
                );
                tokio::time::sleep(delay).await;
            }
            let map = self.current_shard_map().await;
            let (chosen, portions) = self.plan_call(&queue, head, &map, &lane_counts);
            if !portions.is_empty() {
                let now = Instant::now();
                let ready = self.limiter().reserve(now, &portions);
                if ready > now {
                    self.metrics.update(|m| m.rate_limit_wait += ready - now);
                    tokio::time::sleep_until(ready).await;
                }
            }
            let outcome = self.call(&mut queue, &chosen, &map, rejected).await?;

            {
                let mut limiter = self.limiter();
                for (shard, _) in &portions {
                    if outcome.throttled_shards.contains(shard) {
                        limiter.on_throttle(shard);
                    } else {
                        limiter.on_success(shard);
                    }
                }
            }
            for lane in &outcome.done_lanes {
                if let Some(count) = lane_counts.get_mut(lane) {
                    *count -= 1;
                    if *count == 0 {
                        lane_counts.remove(lane);
                    }
                }
            }
            if let Some(reason) = outcome.exhausted {
                return Err(Error::target(
                    self.label.clone(),
                    format!(
                        "records still failing after {} attempt(s): {reason}",
                        self.options.retry.attempt_limit().unwrap_or(u32::MAX)
                    ),
                ));
            }
            failed_calls = if outcome.any_failed {
                failed_calls + 1
            } else {
                0
            };
            while head < queue.len() && queue[head].is_none() {
                head += 1;
            }
        }
        Ok(())
    }

    /// Picks the entries of the next call from the front of the queue.
    fn plan_call(
        &self,
        queue: &[Option<Entry>],
        head: usize,
        map: &ShardMap,
        lane_counts: &HashMap<Lane, usize>,
    ) -> (Vec<usize>, Vec<(Arc<str>, Portion)>) {
        let ordered = self.options.ordered;
        let limiter = self.options.rate_limit.is_some().then(|| self.limiter());
        let mut chosen = Vec::new();
        let mut bytes = 0usize;
        let mut seen_lanes = HashSet::new();
        let mut portions: HashMap<usize, (Arc<str>, Portion)> = HashMap::new();
        for (i, slot) in queue.iter().enumerate().skip(head) {
            let Some(entry) = slot else { continue };
            if chosen.len() == MAX_PUT_RECORDS_COUNT {
                break;
            }
            // A lane's first pending entry blocks the rest of the lane,
            // whether or not it fits in this call.
            if ordered && !seen_lanes.insert(entry.lane) {
                continue;
            }
            let billed = entry.record.billed_bytes();
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
            if ordered && seen_lanes.len() == lane_counts.len() {
                break;
            }
        }
        (chosen, portions.into_values().collect())
    }

    /// Makes one `PutRecords` call with the `chosen` entries and applies
    /// the answer to the queue.
    async fn call(
        &self,
        queue: &mut [Option<Entry>],
        chosen: &[usize],
        map: &ShardMap,
        rejected: &mut Vec<RejectedRecord>,
    ) -> Result<CallOutcome, Error> {
        let mut request = Vec::with_capacity(chosen.len());
        let mut predicted = Vec::with_capacity(chosen.len());
        let mut call_bytes = 0u64;
        for &i in chosen {
            let Some(entry) = &queue[i] else { continue };
            let record = &entry.record;
            call_bytes += record.billed_bytes() as u64;
            predicted.push(map.shard_for(entry.hash_key).map(|(_, id)| id.clone()));
            let built = PutRecordsRequestEntry::builder()
                .data(Blob::new(record.data.to_vec()))
                .partition_key(record.partition_key.clone())
                .set_explicit_hash_key(record.explicit_hash_key.clone())
                .build()
                // Only a missing data or partition key fails, and both are set.
                .map_err(|e| Error::target(self.label.clone(), e))?;
            request.push(built);
        }

        let started = Instant::now();
        let result = self
            .client
            .put_records()
            .set_stream_name(self.target.name().map(str::to_owned))
            .set_stream_arn(self.target.arn().map(str::to_owned))
            .set_records(Some(request))
            .send()
            .await;
        let latency = started.elapsed();
        self.metrics.update(|m| {
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
                            if let Some(entry) = queue[i].take() {
                                sent += entry.indices.count();
                                kinesis_sent += 1;
                                outcome.done_lanes.push(entry.lane);
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
                            self.fail(
                                queue,
                                i,
                                predicted[k].as_ref(),
                                kind,
                                &reason,
                                rejected,
                                &mut outcome,
                            );
                        }
                    }
                }
                if mispredicted > 0 {
                    tracing::info!(
                        target: "unistream::kinesis",
                        stream = %self.label, mispredicted,
                        "records landed on other shards than predicted; reloading the shard map"
                    );
                    self.shard_map_state().stale = true;
                }
                self.metrics.update(|m| {
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
                    queue,
                    chosen,
                    &predicted,
                    FailureKind::Transient,
                    &reason,
                    rejected,
                    &mut outcome,
                );
            }
            Err(err) => {
                let (kind, reason) = classify_sdk_error(&err);
                self.fail_call(
                    queue,
                    chosen,
                    &predicted,
                    kind,
                    &format!("PutRecords failed: {reason}"),
                    rejected,
                    &mut outcome,
                );
            }
        }
        if outcome.any_failed {
            tracing::debug!(
                target: "unistream::kinesis",
                stream = %self.label, records = chosen.len(),
                throttled_shards = outcome.throttled_shards.len(),
                "PutRecords had failures"
            );
        }
        Ok(outcome)
    }

    /// Every entry of a call that failed as a whole.
    #[allow(clippy::too_many_arguments)]
    fn fail_call(
        &self,
        queue: &mut [Option<Entry>],
        chosen: &[usize],
        predicted: &[Option<Arc<str>>],
        kind: FailureKind,
        reason: &str,
        rejected: &mut Vec<RejectedRecord>,
        outcome: &mut CallOutcome,
    ) {
        tracing::warn!(
            target: "unistream::kinesis",
            stream = %self.label, records = chosen.len(), ?kind, %reason,
            "PutRecords call failed"
        );
        self.metrics.update(|m| {
            m.put_records_call_failures += 1;
            if kind == FailureKind::Throttled {
                m.throttles += 1;
            }
        });
        for (k, &i) in chosen.iter().enumerate() {
            // A throttled call counts once above, not per record.
            let kind = if kind == FailureKind::Throttled {
                if let Some(shard) = &predicted[k] {
                    outcome.throttled_shards.insert(shard.clone());
                }
                FailureKind::Transient
            } else {
                kind
            };
            self.fail(queue, i, None, kind, reason, rejected, outcome);
        }
    }

    /// One entry failed: retry it later, reject it, or give up on the batch.
    #[allow(clippy::too_many_arguments)]
    fn fail(
        &self,
        queue: &mut [Option<Entry>],
        i: usize,
        predicted: Option<&Arc<str>>,
        kind: FailureKind,
        reason: &str,
        rejected: &mut Vec<RejectedRecord>,
        outcome: &mut CallOutcome,
    ) {
        outcome.any_failed = true;
        let Some(entry) = queue[i].as_mut() else {
            return;
        };
        entry.attempts += 1;
        let users = entry.indices.count();
        if kind == FailureKind::Throttled {
            if let Some(shard) = predicted {
                outcome.throttled_shards.insert(shard.clone());
            }
        }
        let retry = self.options.retry.allows_another(entry.attempts);
        self.metrics.update(|m| {
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
            let attempts = entry.attempts;
            if let Some(entry) = queue[i].take() {
                tracing::warn!(
                    target: "unistream::kinesis",
                    stream = %self.label, records = users, attempts, %reason,
                    "records failed permanently; reporting them as rejected"
                );
                let reason = format!("{reason} (after {attempts} attempt(s))");
                for &index in entry.indices.as_slice() {
                    rejected.push(RejectedRecord::new(index, reason.clone()));
                }
                outcome.done_lanes.push(entry.lane);
            }
        } else if outcome.exhausted.is_none() {
            outcome.exhausted = Some(reason.to_owned());
        }
    }

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
}
