//! Polling retrieval: `GetShardIterator` + `GetRecords`, the default.
//!
//! Calls are paced to the configured rate; an empty response is followed by
//! the idle interval. Iterators live only here, between calls: a new one is
//! derived from the reader's resume position whenever one is needed (at
//! start, after expiry), never stored. A response without a next iterator
//! is the shard's end.

use std::sync::Arc;

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::get_records::{GetRecordsError, GetRecordsOutput};
use tokio::time::Instant;

use super::failure::{classify, Failure};
use super::iterator::StartAt;
use super::retrieval::{Batch, BoxFuture, Retries, Retrieval, ShardContext};
use super::SourceShared;
use crate::aws::failure::HasStatus;
use crate::aws::request_timeout::within;
use crate::kinesis::StreamTarget;
use crate::Error;

/// One shard read by `GetRecords`.
pub(crate) struct PollingRetrieval<S> {
    shared: Arc<SourceShared<S>>,
    cx: ShardContext,
    iterator: Option<String>,
    last_call: Option<Instant>,
    /// The last response was empty: wait the idle interval first.
    idle: bool,
}

impl<S: Send + Sync + 'static> PollingRetrieval<S> {
    pub(crate) fn new(shared: Arc<SourceShared<S>>, cx: ShardContext) -> Self {
        Self {
            shared,
            cx,
            iterator: None,
            last_call: None,
            idle: false,
        }
    }

    async fn next(&mut self, resume: &StartAt) -> Result<Batch, Error> {
        if std::mem::take(&mut self.idle) {
            self.cx
                .sleep_or_stopped(self.shared.config.idle_interval)
                .await;
        }
        loop {
            let iterator = match self.iterator.take() {
                Some(iterator) => iterator,
                None => self.new_iterator(resume).await?,
            };
            let Some(output) = self.get_records(&iterator).await? else {
                // Expired: recreated from the resume position.
                tracing::debug!(shard = %self.cx.shard, "shard iterator expired; recreating");
                continue;
            };
            let GetRecordsOutput {
                records,
                next_shard_iterator,
                child_shards,
                millis_behind_latest,
                ..
            } = output;
            self.idle = records.is_empty();
            // Every user record of the last Kinesis record is delivered with
            // this batch: a new iterator starts after it.
            let resume = records
                .last()
                .map(|r| StartAt::AfterSequence(r.sequence_number.clone().into()));
            let end = match next_shard_iterator {
                Some(next) => {
                    self.iterator = Some(next);
                    None
                }
                None => Some(child_shards),
            };
            return Ok(Batch {
                records,
                resume,
                end,
                millis_behind_latest,
            });
        }
    }

    async fn new_iterator(&mut self, resume: &StartAt) -> Result<String, Error> {
        let (kind, sequence, timestamp) = resume.request();
        let mut retries = Retries::new();
        loop {
            let mut request = self
                .shared
                .client
                .get_shard_iterator()
                .shard_id(&*self.cx.shard)
                .shard_iterator_type(kind.clone())
                .set_starting_sequence_number(sequence.map(str::to_owned))
                .set_timestamp(timestamp);
            request = match &self.shared.stream {
                StreamTarget::Arn(arn) => request.stream_arn(arn),
                StreamTarget::Name(name) => request.stream_name(name),
            };
            let limit = self.shared.config.request_timeout;
            let sent = within(limit, "GetShardIterator", request.send()).await;
            match sent {
                Ok(out) => {
                    return out.shard_iterator.ok_or_else(|| {
                        Error::target(
                            self.cx.target.clone(),
                            "GetShardIterator returned no iterator",
                        )
                    })
                }
                Err(err) => {
                    let class = classify(&err);
                    self.cx
                        .back_off(&mut retries, class, &self.shared.config, err)
                        .await?
                }
            }
        }
    }

    /// One `GetRecords` call, paced and retried; `None` when the iterator
    /// expired.
    async fn get_records(&mut self, iterator: &str) -> Result<Option<GetRecordsOutput>, Error> {
        let mut retries = Retries::new();
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
            let limit = self.shared.config.request_timeout;
            let sent = within(limit, "GetRecords", request.send()).await;
            self.cx.metrics.get_records_calls.increment(1);
            match sent {
                Ok(out) => return Ok(Some(out)),
                Err(err) => match classify_get_records(&err) {
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
}

impl<S: Send + Sync + 'static> Retrieval for PollingRetrieval<S> {
    fn next_batch<'a>(&'a mut self, resume: &'a StartAt) -> BoxFuture<'a, Result<Batch, Error>> {
        Box::pin(self.next(resume))
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
