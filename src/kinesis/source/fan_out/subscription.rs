//! Fan-out retrieval: one shard's `SubscribeToShard` subscriptions, one
//! after the other, as batches for the shard reader.
//!
//! Each event of a subscription is one batch. A subscription that ends
//! (Kinesis closes it after about 5 minutes) or breaks (the event stream
//! fails, possibly in the middle of an event) is replaced by a new one
//! starting at the reader's resume position: after the continuation
//! sequence number of the last event handed over. An event cut off by a
//! break was never returned, so its records come again with the new
//! subscription, and no returned event is ever repeated.
//!
//! Pacing: at most one `SubscribeToShard` per second per shard. A
//! `ResourceInUseException` within 5 s of this shard's previous
//! subscription is Kinesis still holding that one: the next attempt waits
//! until the 5 s are over and is not counted as a failure.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardError;
use aws_sdk_kinesis::primitives::event_stream::EventReceiver;
use aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError;
use aws_sdk_kinesis::types::{
    StartingPosition, SubscribeToShardEvent, SubscribeToShardEventStream,
};
use tokio::time::Instant;

use super::FanOutConsumer;
use crate::aws::request_timeout::within;
use crate::checkpoint::SequenceNumber;
use crate::kinesis::source::failure::{classify, Failure};
use crate::kinesis::source::iterator::StartAt;
use crate::kinesis::source::retrieval::{Batch, BoxFuture, Retries, Retrieval, ShardContext};
use crate::kinesis::source::SourceShared;
use crate::kinesis::StreamTarget;
use crate::Error;

/// Subscribe calls per shard: at most one per this interval.
const MIN_SUBSCRIBE_INTERVAL: Duration = Duration::from_secs(1);

/// How often an idle subscription checks by one `GetRecords` whether its
/// shard has ended without saying so.
const END_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Kinesis refuses a new subscription to a shard this long after the
/// previous one (`ResourceInUseException`).
const SUBSCRIPTION_HOLD: Duration = Duration::from_secs(5);

type Events = EventReceiver<SubscribeToShardEventStream, SubscribeToShardEventStreamError>;

/// One shard read by enhanced fan-out.
pub(crate) struct FanOutRetrieval<S> {
    shared: Arc<SourceShared<S>>,
    consumer: Arc<FanOutConsumer>,
    cx: ShardContext,
    events: Option<Events>,
    /// When the last `SubscribeToShard` was sent.
    last_attempt: Option<Instant>,
    /// When the last successful subscription was sent.
    subscribed_at: Option<Instant>,
    /// Failures of event streams since the last event.
    stream_failures: Retries,
    /// When the shard's end was last checked by polling.
    last_end_check: Option<Instant>,
}

impl<S: Send + Sync + 'static> FanOutRetrieval<S> {
    pub(crate) fn new(
        shared: Arc<SourceShared<S>>,
        consumer: Arc<FanOutConsumer>,
        cx: ShardContext,
    ) -> Self {
        Self {
            shared,
            consumer,
            cx,
            events: None,
            last_attempt: None,
            subscribed_at: None,
            stream_failures: Retries::new(),
            last_end_check: None,
        }
    }

    async fn next(&mut self, resume: &StartAt) -> Result<Batch, Error> {
        loop {
            if self.events.is_none() {
                let events = self.subscribe(resume).await?;
                self.events = Some(events);
            }
            let Some(events) = self.events.as_mut() else {
                continue;
            };
            match events.recv().await {
                Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => {
                    self.stream_failures = Retries::new();
                    let mut batch = batch_of(event, resume);
                    if batch.records.is_empty() && batch.end.is_none() {
                        if let Some(StartAt::AfterSequence(after)) = &batch.resume {
                            if let Some(children) = self.ended_after(after).await? {
                                batch.end = Some(children);
                            }
                        }
                    }
                    return Ok(batch);
                }
                Ok(Some(other)) => {
                    tracing::debug!(shard = %self.cx.shard, event = ?other, "unknown fan-out event ignored");
                }
                Ok(None) => {
                    tracing::debug!(shard = %self.cx.shard, "subscription ended; subscribing again");
                    self.events = None;
                }
                Err(err) => {
                    self.events = None;
                    let class = classify_stream(&err);
                    tracing::debug!(shard = %self.cx.shard, error = %aws_sdk_kinesis::error::DisplayErrorContext(&err), "fan-out event stream failed");
                    self.cx
                        .back_off(&mut self.stream_failures, class, &self.shared.config, err)
                        .await?;
                }
            }
        }
    }

    async fn subscribe(&mut self, resume: &StartAt) -> Result<Events, Error> {
        let consumer_arn = self
            .consumer
            .arn(&self.shared.stream, &self.shared.config)
            .await?
            .to_owned();
        let (kind, sequence, timestamp) = resume.request();
        let position = StartingPosition::builder()
            .r#type(kind)
            .set_sequence_number(sequence.map(str::to_owned))
            .set_timestamp(timestamp)
            .build()
            .map_err(|e| Error::target(self.cx.target.clone(), e))?;
        let mut retries = Retries::new();
        loop {
            if let Some(last) = self.last_attempt {
                self.sleep_until(last + MIN_SUBSCRIBE_INTERVAL).await;
            }
            let attempt = Instant::now();
            self.last_attempt = Some(attempt);
            let request = self
                .shared
                .client
                .subscribe_to_shard()
                .consumer_arn(&consumer_arn)
                .shard_id(&*self.cx.shard)
                .starting_position(position.clone())
                .send();
            let limit = self.shared.config.request_timeout;
            // Up to the subscription's start; its events are not limited.
            let result = within(limit, "SubscribeToShard", request).await;
            match result {
                Ok(out) => {
                    tracing::debug!(shard = %self.cx.shard, ?resume, "subscribed to shard");
                    self.subscribed_at = Some(attempt);
                    return Ok(out.event_stream);
                }
                Err(err) => {
                    if is_in_use(&err) {
                        if let Some(held_until) = self
                            .subscribed_at
                            .map(|at| at + SUBSCRIPTION_HOLD)
                            .filter(|until| attempt < *until)
                        {
                            tracing::debug!(shard = %self.cx.shard, "previous subscription still held; waiting");
                            self.sleep_until(held_until).await;
                            continue;
                        }
                    }
                    let class = classify_subscribe(&err);
                    self.cx
                        .back_off(&mut retries, class, &self.shared.config, err)
                        .await?;
                }
            }
        }
    }

    /// Whether the shard is closed with nothing after `after`, by one
    /// `GetShardIterator` + `GetRecords` at most every
    /// [`END_CHECK_INTERVAL`]; `Some(children)` when it is. Kinesis ends a
    /// closed shard's subscription with child shards; endpoints that keep
    /// an idle subscription open on a closed shard (kinesis-mock) are
    /// caught by this check. Records found are left to the subscription.
    async fn ended_after(
        &mut self,
        after: &SequenceNumber,
    ) -> Result<Option<Option<Vec<aws_sdk_kinesis::types::ChildShard>>>, Error> {
        let now = Instant::now();
        if self
            .last_end_check
            .is_some_and(|last| now < last + END_CHECK_INTERVAL)
        {
            return Ok(None);
        }
        self.last_end_check = Some(now);
        let mut retries = Retries::new();
        let iterator = loop {
            let mut request = self
                .shared
                .client
                .get_shard_iterator()
                .shard_id(&*self.cx.shard)
                .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(after.as_str());
            request = match &self.shared.stream {
                StreamTarget::Arn(arn) => request.stream_arn(arn),
                StreamTarget::Name(name) => request.stream_name(name),
            };
            let limit = self.shared.config.request_timeout;
            match within(limit, "GetShardIterator", request.send()).await {
                Ok(out) => break out.shard_iterator,
                Err(err) => {
                    let class = classify(&err);
                    self.cx
                        .back_off(&mut retries, class, &self.shared.config, err)
                        .await?
                }
            }
        };
        let Some(iterator) = iterator else {
            return Ok(None);
        };
        let mut retries = Retries::new();
        loop {
            let mut request = self
                .shared
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(1);
            if let StreamTarget::Arn(arn) = &self.shared.stream {
                request = request.stream_arn(arn);
            }
            let limit = self.shared.config.request_timeout;
            let sent = within(limit, "GetRecords", request.send()).await;
            self.cx.metrics.get_records_calls.increment(1);
            match sent {
                Ok(out) if out.records.is_empty() && out.next_shard_iterator.is_none() => {
                    tracing::debug!(shard = %self.cx.shard, "closed shard found by polling; ending it");
                    return Ok(Some(out.child_shards));
                }
                Ok(_) => return Ok(None),
                Err(err) => match classify(&err) {
                    Failure::ExpiredIterator => return Ok(None),
                    class => {
                        self.cx
                            .back_off(&mut retries, class, &self.shared.config, err)
                            .await?
                    }
                },
            }
        }
    }

    async fn sleep_until(&self, at: Instant) {
        self.cx
            .sleep_or_stopped(at.saturating_duration_since(Instant::now()))
            .await;
    }
}

impl<S: Send + Sync + 'static> Retrieval for FanOutRetrieval<S> {
    fn next_batch<'a>(&'a mut self, resume: &'a StartAt) -> BoxFuture<'a, Result<Batch, Error>> {
        Box::pin(self.next(resume))
    }
}

/// An event as a batch: its records, where a new subscription starts after
/// it, and whether it ends the shard (a null continuation, or children).
fn batch_of(event: SubscribeToShardEvent, resume: &StartAt) -> Batch {
    let SubscribeToShardEvent {
        records,
        continuation_sequence_number,
        child_shards,
        millis_behind_latest,
        ..
    } = event;
    let children = child_shards.filter(|c| !c.is_empty());
    if continuation_sequence_number.is_empty() || children.is_some() {
        return Batch {
            records,
            resume: None,
            end: Some(children),
            millis_behind_latest: Some(millis_behind_latest),
        };
    }
    let continuation = SequenceNumber::from(continuation_sequence_number);
    let last_record = records
        .last()
        .map(|r| SequenceNumber::from(r.sequence_number.as_str()));
    let next = match (last_record, resume) {
        // A continuation is never before the event's last record; trust the
        // record if it were.
        (Some(last), _) => Some(last.max(continuation)),
        // An empty event right after a restart inside an aggregate: only a
        // continuation past the checkpointed record may replace the start
        // at it (which skips what was processed).
        (None, StartAt::AfterCheckpoint { sequence, .. }) if continuation <= *sequence => None,
        (None, _) => Some(continuation),
    };
    Batch {
        records,
        resume: next.map(StartAt::AfterSequence),
        end: None,
        millis_behind_latest: Some(millis_behind_latest),
    }
}

fn is_in_use<R>(err: &SdkError<SubscribeToShardError, R>) -> bool {
    matches!(err, SdkError::ServiceError(e) if e.err().is_resource_in_use_exception())
}

/// The class of a failed `SubscribeToShard`: `ResourceInUseException`
/// (another subscription to the shard, or one Kinesis still holds) is
/// retried per the policy; the rest as every read call.
fn classify_subscribe<R>(err: &SdkError<SubscribeToShardError, R>) -> Failure
where
    R: std::fmt::Debug + crate::aws::failure::HasStatus,
{
    if is_in_use(err) {
        return Failure::Transient;
    }
    classify(err)
}

/// The class of a failed event stream: a broken connection or an
/// undecodable frame is transient (subscribe again); the modeled errors
/// by their meaning.
fn classify_stream<R>(err: &SdkError<SubscribeToShardEventStreamError, R>) -> Failure {
    let SdkError::ServiceError(service) = err else {
        return match err {
            SdkError::ConstructionFailure(_) => Failure::Fatal,
            _ => Failure::Transient,
        };
    };
    let e = service.err();
    if e.is_kms_throttling_exception() {
        Failure::Throttled
    } else if e.is_internal_failure_exception() || e.is_resource_in_use_exception() {
        Failure::Transient
    } else if e.is_resource_not_found_exception()
        || e.is_kms_disabled_exception()
        || e.is_kms_invalid_state_exception()
        || e.is_kms_access_denied_exception()
        || e.is_kms_not_found_exception()
        || e.is_kms_opt_in_required()
    {
        Failure::Fatal
    } else {
        match e.code() {
            Some("LimitExceededException" | "ProvisionedThroughputExceededException") => {
                Failure::Throttled
            }
            _ => Failure::Transient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::{ChildShard, HashKeyRange, Record};

    fn record(seq: &str) -> Record {
        Record::builder()
            .sequence_number(seq)
            .partition_key("k")
            .data(Blob::new("d"))
            .build()
            .unwrap()
    }

    fn event(records: &[&str], continuation: &str) -> SubscribeToShardEvent {
        SubscribeToShardEvent::builder()
            .set_records(Some(records.iter().map(|s| record(s)).collect()))
            .continuation_sequence_number(continuation)
            .millis_behind_latest(0)
            .build()
            .unwrap()
    }

    #[test]
    fn an_event_resumes_after_its_continuation() {
        let batch = batch_of(event(&["10", "11"], "15"), &StartAt::TrimHorizon);
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.resume, Some(StartAt::AfterSequence("15".into())));
        assert!(batch.end.is_none());
    }

    #[test]
    fn an_empty_event_after_a_checkpoint_keeps_the_skip() {
        let start = StartAt::AfterCheckpoint {
            sequence: "20".into(),
            sub: 3,
        };
        assert_eq!(batch_of(event(&[], "20"), &start).resume, None);
        assert_eq!(
            batch_of(event(&[], "21"), &start).resume,
            Some(StartAt::AfterSequence("21".into()))
        );
    }

    #[test]
    fn a_null_continuation_or_children_end_the_shard() {
        let ended = batch_of(event(&["5"], ""), &StartAt::TrimHorizon);
        assert_eq!(ended.records.len(), 1);
        assert!(matches!(ended.end, Some(None)));
        let child = ChildShard::builder()
            .shard_id("shardId-000000000002")
            .parent_shards("shardId-000000000000")
            .hash_key_range(
                HashKeyRange::builder()
                    .starting_hash_key("0")
                    .ending_hash_key("9")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let mut with_children = event(&[], "7");
        with_children.child_shards = Some(vec![child]);
        let ended = batch_of(with_children, &StartAt::TrimHorizon);
        assert!(matches!(ended.end, Some(Some(ref c)) if c.len() == 1));
    }
}
