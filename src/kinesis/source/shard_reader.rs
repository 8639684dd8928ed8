//! One shard's `GetRecords` loop.
//!
//! A reader owns its shard's iterator and hands the consumer one chunk of
//! records per `GetRecords` response through a bounded channel. It reserves
//! a slot in the channel *before* calling `GetRecords`, so a consumer that
//! does not keep up stops the fetching instead of growing a buffer.
//!
//! Calls are paced to the configured rate; an empty response is followed by
//! the idle interval. The reader never stores iterators anywhere: it
//! derives them from a [`StartAt`] — the checkpoint at first, then "after the
//! last Kinesis record delivered" — whenever it needs one (at start, after
//! expiry).
//!
//! When the shard is closed (a response without a next iterator) the
//! reader waits until the store's checkpoint covers the last record it
//! delivered (the consumer processed and checkpointed everything), then
//! saves [`Position::End`] and reports the shard finished; the coordinator
//! then starts its children.

use std::sync::Arc;

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::get_records::{GetRecordsError, GetRecordsOutput};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::failure::{classify, Failure};
use super::iterator::StartAt;
use super::records::{unpack, UserRecord};
use super::shard_list::{list_shards, ListedShard};
use super::SourceShared;
use crate::aws::failure::HasStatus;
use crate::checkpoint::{CheckpointStore, CheckpointToken, PartitionControl, Position};
use crate::kinesis::{KinesisRecord, StreamTarget};
use crate::Error;

/// The records of one `GetRecords` response, as handed to the consumer.
pub(crate) type Chunk = Vec<(KinesisRecord, CheckpointToken)>;

/// How a reader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShardOutcome {
    /// The shard is closed, fully checkpointed, and `End` is stored.
    Finished,
    /// Fenced, failed (the error went to the consumer) or no consumer left.
    Stopped,
}

pub(crate) struct ShardReader<S> {
    shared: Arc<SourceShared<S>>,
    shard: Arc<str>,
    control: PartitionControl,
    tx: mpsc::Sender<Result<Chunk, Error>>,
    /// Where a new iterator starts.
    resume: StartAt,
    /// User records at or before this were processed before this run.
    skip: Option<Position>,
    /// Position of the last user record handed to the consumer.
    last_delivered: Option<Position>,
    /// Deliveries so far (the next token's `seq`).
    seq: u64,
    iterator: Option<String>,
    last_call: Option<Instant>,
}

impl<S: CheckpointStore> ShardReader<S> {
    pub(crate) fn new(
        shared: Arc<SourceShared<S>>,
        shard: Arc<str>,
        control: PartitionControl,
        tx: mpsc::Sender<Result<Chunk, Error>>,
        start: StartAt,
    ) -> Self {
        Self {
            shared,
            shard,
            control,
            tx,
            skip: start.skip_through(),
            resume: start,
            last_delivered: None,
            seq: 0,
            iterator: None,
            last_call: None,
        }
    }

    /// Reads the shard until it is finished, stopped (fenced or drained),
    /// failed or abandoned.
    pub(crate) async fn run(mut self) -> ShardOutcome {
        match self.read().await {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!(shard = %self.shard, error = %crate::ErrorChain(&err), "kinesis shard reader failed");
                let _ = self.tx.send(Err(err)).await;
                ShardOutcome::Stopped
            }
        }
    }

    async fn read(&mut self) -> Result<ShardOutcome, Error> {
        loop {
            if self.control.is_stopped() {
                return Ok(ShardOutcome::Stopped);
            }
            // Room for one more response first: back-pressure reaches
            // Kinesis instead of memory.
            let permit = tokio::select! {
                permit = self.tx.clone().reserve_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return Ok(ShardOutcome::Stopped),
                },
                () = self.control.stopped() => return Ok(ShardOutcome::Stopped),
            };
            let iterator = match self.iterator.take() {
                Some(iterator) => iterator,
                None => self.new_iterator().await?,
            };
            let Some(output) = self.get_records(&iterator).await? else {
                // Expired: the next round recreates it from `resume`.
                tracing::debug!(shard = %self.shard, "shard iterator expired; recreating");
                continue;
            };
            let GetRecordsOutput {
                records,
                next_shard_iterator,
                child_shards,
                millis_behind_latest,
                ..
            } = output;
            let was_empty = records.is_empty();
            let chunk = self.make_chunk(records);
            if !chunk.is_empty() {
                permit.send(Ok(chunk));
            } else if was_empty
                && millis_behind_latest.unwrap_or(0) == 0
                && self.shared.config.caught_up_after.is_some()
            {
                // At the tip: an empty chunk tells the merged stream.
                permit.send(Ok(Vec::new()));
            } else {
                drop(permit);
            }
            match next_shard_iterator {
                Some(next) => self.iterator = Some(next),
                None => return self.finish(child_shards).await,
            }
            if was_empty {
                self.sleep_or_stopped(self.shared.config.idle_interval)
                    .await;
            }
        }
    }

    /// Unpacks, skips what was processed before, and makes the tokens.
    fn make_chunk(&mut self, records: Vec<aws_sdk_kinesis::types::Record>) -> Chunk {
        let mut users: Vec<UserRecord> = Vec::with_capacity(records.len());
        let mut last_sequence = None;
        for record in records {
            last_sequence = Some(record.sequence_number.clone());
            unpack(&self.shard, record, &mut users);
        }
        if let Some(sequence) = last_sequence {
            // Every user record of that Kinesis record is delivered (or was
            // processed before): an expired iterator resumes after it.
            self.resume = StartAt::AfterSequence(sequence.into());
        }
        let mut chunk = Vec::with_capacity(users.len());
        for user in users {
            if let Some(skip) = &self.skip {
                if user.position <= *skip {
                    continue;
                }
                self.skip = None;
            }
            let token = CheckpointToken::new(self.shard.clone(), user.position, self.seq)
                .with_control(self.control.clone());
            self.seq += 1;
            chunk.push((user.record, token));
        }
        if let Some((_, token)) = chunk.last() {
            self.last_delivered = Some(token.position().clone());
        }
        chunk
    }

    async fn new_iterator(&mut self) -> Result<String, Error> {
        let (kind, sequence, timestamp) = self.resume.request();
        let mut transient = 0u32;
        let mut throttled = 0u32;
        loop {
            let mut request = self
                .shared
                .client
                .get_shard_iterator()
                .shard_id(&*self.shard)
                .shard_iterator_type(kind.clone())
                .set_starting_sequence_number(sequence.map(str::to_owned))
                .set_timestamp(timestamp);
            request = match &self.shared.stream {
                StreamTarget::Arn(arn) => request.stream_arn(arn),
                StreamTarget::Name(name) => request.stream_name(name),
            };
            match request.send().await {
                Ok(out) => {
                    return out.shard_iterator.ok_or_else(|| {
                        Error::target(
                            self.shared.target(&self.shard),
                            "GetShardIterator returned no iterator",
                        )
                    })
                }
                Err(err) => {
                    self.back_off(classify(&err), &mut transient, &mut throttled, err)
                        .await?
                }
            }
        }
    }

    /// One `GetRecords` call, paced and retried; `None` when the iterator
    /// expired.
    async fn get_records(&mut self, iterator: &str) -> Result<Option<GetRecordsOutput>, Error> {
        let mut transient = 0u32;
        let mut throttled = 0u32;
        loop {
            if let Some(last) = self.last_call {
                tokio::time::sleep_until(last + self.shared.config.min_call_interval).await;
            }
            self.last_call = Some(Instant::now());
            let mut request = self
                .shared
                .client
                .get_records()
                .shard_iterator(iterator)
                .limit(self.shared.config.records_per_call);
            if let StreamTarget::Arn(arn) = &self.shared.stream {
                request = request.stream_arn(arn);
            }
            match request.send().await {
                Ok(out) => return Ok(Some(out)),
                Err(err) => match classify_get_records(&err) {
                    Failure::ExpiredIterator => return Ok(None),
                    class => {
                        self.back_off(class, &mut transient, &mut throttled, err)
                            .await?
                    }
                },
            }
        }
    }

    /// Waits before retrying a failed call, or returns the error when the
    /// failure is fatal or out of retries.
    async fn back_off<E>(
        &self,
        class: Failure,
        transient: &mut u32,
        throttled: &mut u32,
        err: E,
    ) -> Result<(), Error>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let config = &self.shared.config;
        let delay = match class {
            Failure::Throttled => {
                let delay = config.throttle_backoff.backoff(*throttled);
                *throttled = throttled.saturating_add(1);
                tracing::debug!(shard = %self.shard, ?delay, "kinesis throttled; backing off");
                delay
            }
            Failure::Transient | Failure::ExpiredIterator => {
                *transient += 1;
                if !config.retry.allows_another(*transient) {
                    return Err(Error::target(self.shared.target(&self.shard), err));
                }
                tracing::debug!(shard = %self.shard, error = %crate::ErrorChain(&err), "transient kinesis failure; retrying");
                config.retry.backoff(*transient - 1)
            }
            Failure::Fatal => return Err(Error::target(self.shared.target(&self.shard), err)),
        };
        self.sleep_or_stopped(delay).await;
        Ok(())
    }

    async fn sleep_or_stopped(&self, delay: std::time::Duration) {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = self.control.stopped() => {}
        }
    }

    /// The shard is closed: once the store's checkpoint covers the last
    /// delivered record, save `End`.
    async fn finish(
        &mut self,
        children: Option<Vec<aws_sdk_kinesis::types::ChildShard>>,
    ) -> Result<ShardOutcome, Error> {
        let store = &self.shared.store;
        let mut failures = 0u32;
        if let Some(last) = self.last_delivered.clone() {
            loop {
                if self.control.is_stopped() {
                    return Ok(ShardOutcome::Stopped);
                }
                match store.load(&self.shard).await {
                    Ok(Some(position)) if position >= last => break,
                    Ok(_) => {}
                    Err(err) => {
                        failures += 1;
                        if !self.shared.config.retry.allows_another(failures) {
                            return Err(err.into());
                        }
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(self.shared.config.idle_interval) => {}
                    () = self.control.stopped() => return Ok(ShardOutcome::Stopped),
                    () = self.tx.closed() => return Ok(ShardOutcome::Stopped),
                }
            }
        }
        if let Some(leases) = &self.shared.leases {
            // The children's leases exist before the parent is finished, so
            // whoever sees the parent finished finds them.
            let mut failures = 0u32;
            loop {
                if self.control.is_stopped() {
                    return Ok(ShardOutcome::Stopped);
                }
                let listed = match &children {
                    Some(children) => children.iter().map(ListedShard::from_child).collect(),
                    // No `ChildShards` in the answer (older endpoints):
                    // the children are the listed shards naming this one.
                    None => list_shards(&self.shared)
                        .await?
                        .into_iter()
                        .filter(|s| s.parents.iter().any(|p| **p == *self.shard))
                        .collect(),
                };
                match leases.shard_ended(&self.shard, listed).await {
                    Ok(()) => break,
                    Err(err) if err.is_fenced() => {
                        self.control.fence();
                        return Ok(ShardOutcome::Stopped);
                    }
                    Err(err) => {
                        failures += 1;
                        if !self.shared.config.retry.allows_another(failures) {
                            return Err(err);
                        }
                        self.sleep_or_stopped(self.shared.config.retry.backoff(failures - 1))
                            .await;
                    }
                }
            }
        }
        let mut failures = 0u32;
        loop {
            match store.save(&self.shard, &Position::End).await {
                Ok(()) => {
                    tracing::debug!(shard = %self.shard, "shard end checkpointed");
                    return Ok(ShardOutcome::Finished);
                }
                Err(err) if err.is_fenced() => {
                    self.control.fence();
                    return Ok(ShardOutcome::Stopped);
                }
                Err(err) => {
                    failures += 1;
                    if !self.shared.config.retry.allows_another(failures) {
                        return Err(err.into());
                    }
                    self.sleep_or_stopped(self.shared.config.retry.backoff(failures - 1))
                        .await;
                }
            }
        }
    }
}

/// The class of a `GetRecords` failure: the modeled variants first (they
/// need no error code), then the code.
fn classify_get_records<R>(err: &SdkError<GetRecordsError, R>) -> Failure
where
    R: std::fmt::Debug + HasStatus,
{
    match err.as_service_error() {
        Some(e) if e.is_expired_iterator_exception() => Failure::ExpiredIterator,
        Some(e)
            if e.is_provisioned_throughput_exceeded_exception()
                || e.is_kms_throttling_exception() =>
        {
            Failure::Throttled
        }
        Some(e) if e.is_internal_failure_exception() => Failure::Transient,
        _ => classify(err),
    }
}
