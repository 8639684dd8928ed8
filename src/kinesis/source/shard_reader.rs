//! One shard's reading loop, whatever the retrieval.
//!
//! A reader hands the consumer one chunk of records per batch of its
//! [`Retrieval`] (a `GetRecords` response, or a `SubscribeToShard` event)
//! through a bounded channel. It reserves a slot in the channel *before*
//! asking for the next batch, so a consumer that does not keep up stops the
//! fetching instead of growing a buffer.
//!
//! The reader owns the shard's resume position: the checkpoint at first,
//! then where the retrieval says reading continues after the last batch
//! handed over. It makes the tokens, unpacks KPL aggregates and skips the
//! user records a restart inside an aggregate has already processed, the
//! same for every retrieval.
//!
//! When the shard is closed (the retrieval's last batch) the reader waits
//! until the store's checkpoint covers the last record it delivered (the
//! consumer processed and checkpointed everything), then saves
//! [`Position::End`] and reports the shard finished; the coordinator then
//! starts its children.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::fan_out::FanOutRetrieval;
use super::iterator::StartAt;
use super::polling::PollingRetrieval;
use super::records::{unpack, UserRecord};
use super::retrieval::{Batch, Retrieval, ShardContext};
use super::shard_list::{list_shards, ListedShard};
use super::SourceShared;
use crate::checkpoint::{CheckpointStore, CheckpointToken, PartitionControl, Position};
use crate::kinesis::KinesisRecord;
use crate::observe::kinesis_source::ShardMetrics;
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
    /// Where the retrieval starts a new iterator or subscription.
    resume: StartAt,
    /// User records at or before this were processed before this run.
    skip: Option<Position>,
    /// Position of the last user record handed to the consumer.
    last_delivered: Option<Position>,
    /// Deliveries so far (the next token's `seq`).
    seq: u64,
    retrieval: Box<dyn Retrieval>,
    /// Counted once per batch (see [`crate::observe`]).
    metrics: ShardMetrics,
}

impl<S: CheckpointStore> ShardReader<S> {
    pub(crate) fn new(
        shared: Arc<SourceShared<S>>,
        shard: Arc<str>,
        control: PartitionControl,
        tx: mpsc::Sender<Result<Chunk, Error>>,
        start: StartAt,
    ) -> Self {
        let metrics = ShardMetrics::new(shared.stream_label(), &shard);
        let cx = ShardContext {
            shard: shard.clone(),
            target: shared.target(&shard),
            control: control.clone(),
            metrics: metrics.clone(),
        };
        let retrieval: Box<dyn Retrieval> = match &shared.fan_out {
            Some(consumer) => Box::new(FanOutRetrieval::new(shared.clone(), consumer.clone(), cx)),
            None => Box::new(PollingRetrieval::new(shared.clone(), cx)),
        };
        Self {
            shared,
            shard,
            control,
            tx,
            skip: start.skip_through(),
            resume: start,
            last_delivered: None,
            seq: 0,
            retrieval,
            metrics,
        }
    }

    /// Reads the shard until it is finished, stopped (fenced or drained),
    /// failed or abandoned, inside a `kinesis_shard` span naming the stream
    /// and the shard (so both ways it is spawned, with and without leases,
    /// get it).
    pub(crate) async fn run(self) -> ShardOutcome {
        let span = tracing::info_span!(
            "kinesis_shard",
            stream = %self.shared.stream_label(),
            shard = %self.shard
        );
        tracing::Instrument::instrument(self.run_in_span(), span).await
    }

    async fn run_in_span(mut self) -> ShardOutcome {
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
            // Room for one more batch first: back-pressure reaches
            // Kinesis instead of memory.
            let permit = tokio::select! {
                permit = self.tx.clone().reserve_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return Ok(ShardOutcome::Stopped),
                },
                () = self.control.stopped() => return Ok(ShardOutcome::Stopped),
            };
            let batch = tokio::select! {
                batch = self.retrieval.next_batch(&self.resume) => batch?,
                () = self.control.stopped() => return Ok(ShardOutcome::Stopped),
            };
            let Batch {
                records,
                resume,
                end,
                millis_behind_latest,
            } = batch;
            let was_empty = records.is_empty();
            let chunk = self.make_chunk(records);
            self.metrics.records.increment(chunk.len() as u64);
            if let Some(millis) = millis_behind_latest {
                self.metrics.millis_behind.set(millis as f64);
            }
            if let Some(resume) = resume {
                self.resume = resume;
            }
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
            if let Some(children) = end {
                return self.finish(children).await;
            }
        }
    }

    /// Unpacks, skips what was processed before, and makes the tokens.
    fn make_chunk(&mut self, records: Vec<aws_sdk_kinesis::types::Record>) -> Chunk {
        let mut users: Vec<UserRecord> = Vec::with_capacity(records.len());
        for record in records {
            unpack(&self.shard, record, &mut users);
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
