//! How a shard reader gets its records: the retrieval behind a
//! [`ShardReader`](super::shard_reader::ShardReader).
//!
//! A retrieval turns "the shard from this position on" into batches of
//! Kinesis records. Two exist: polling (`GetShardIterator` + `GetRecords`,
//! the default) and enhanced fan-out (`SubscribeToShard`). Everything the
//! consumer sees is the reader's and the same for both: tokens, KPL
//! deaggregation and the skip inside an aggregate after a restart, the
//! bounded channel, fencing, and the end of a shard (`SHARD_END` once the
//! checkpoint covers the last delivered record, children after that).
//!
//! The contract of a retrieval:
//!
//! - [`next_batch`](Retrieval::next_batch) is given the reader's resume
//!   position. The retrieval may keep a handle (an iterator, a
//!   subscription) between calls, but whenever it needs a new one it
//!   starts it at that position, never elsewhere. The reader moves the
//!   position to a batch's [`resume`](Batch::resume) only once the batch's
//!   records are handed to the consumer: a batch lost in a failure is read
//!   again, a delivered one never.
//! - A batch with [`end`](Batch::end) set is the shard's last: the shard is
//!   closed and every record in it was returned.
//! - Failures it can wait out (throttling, transient errors within the
//!   source's retry policy, expired iterators, subscriptions that end) are
//!   handled inside; an error returned ends the shard's reading and goes to
//!   the consumer.
//! - Its future may be dropped at any await (the partition was fenced or
//!   the consumer went away): the retrieval is then dropped too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::types::{ChildShard, Record};

use super::failure::Failure;
use super::iterator::StartAt;
use super::SourceConfig;
use crate::checkpoint::PartitionControl;
use crate::Error;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The next records of a shard.
pub(crate) struct Batch {
    /// Kinesis records in shard order (KPL aggregates still packed).
    pub(crate) records: Vec<Record>,
    /// Where reading resumes once these records are delivered; `None`
    /// keeps the current position.
    pub(crate) resume: Option<StartAt>,
    /// The shard ended with this batch; its children, when the answer
    /// named them (`None`: look them up).
    pub(crate) end: Option<Option<Vec<ChildShard>>>,
    /// How far behind the tip of the stream the answer was (`None`: not
    /// said).
    pub(crate) millis_behind_latest: Option<i64>,
}

/// A source of one shard's batches; see the [module docs](self).
pub(crate) trait Retrieval: Send + Sync {
    /// The next batch, reading from `resume` when a new iterator or
    /// subscription is needed.
    fn next_batch<'a>(&'a mut self, resume: &'a StartAt) -> BoxFuture<'a, Result<Batch, Error>>;
}

/// Retries of one call: throttling waited out without limit, transient
/// failures within the source's retry policy.
pub(crate) struct Retries {
    transient: u32,
    throttled: u32,
}

impl Retries {
    pub(crate) fn new() -> Self {
        Self {
            transient: 0,
            throttled: 0,
        }
    }

    /// The delay before the next attempt after a failure of `class`, or
    /// `None` when it must not be retried (fatal, or out of attempts).
    pub(crate) fn delay(&mut self, class: Failure, config: &SourceConfig) -> Option<Duration> {
        match class {
            Failure::Throttled => {
                let delay = config.throttle_backoff.backoff(self.throttled);
                self.throttled = self.throttled.saturating_add(1);
                Some(delay)
            }
            Failure::Transient | Failure::ExpiredIterator => {
                self.transient += 1;
                if !config.retry.allows_another(self.transient) {
                    return None;
                }
                Some(config.retry.backoff(self.transient - 1))
            }
            Failure::Fatal => None,
        }
    }
}

/// What a retrieval knows of its shard.
#[derive(Clone)]
pub(crate) struct ShardContext {
    pub(crate) shard: Arc<str>,
    /// `"kinesis stream NAME shard ID"`, the target named in errors.
    pub(crate) target: String,
    pub(crate) control: PartitionControl,
    /// The shard's metrics (see [`crate::observe`]).
    pub(crate) metrics: crate::observe::kinesis_source::ShardMetrics,
}

impl ShardContext {
    /// Sleeps for `delay`, or less when the partition stops.
    pub(crate) async fn sleep_or_stopped(&self, delay: Duration) {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = self.control.stopped() => {}
        }
    }

    /// Waits before retrying a failure of `class`, or returns it as the
    /// shard's error when it is fatal or out of retries.
    pub(crate) async fn back_off<E>(
        &self,
        retries: &mut Retries,
        class: Failure,
        config: &SourceConfig,
        err: E,
    ) -> Result<(), Error>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>> + std::fmt::Display,
    {
        if class == Failure::Throttled {
            self.metrics.throttles.increment(1);
        }
        match retries.delay(class, config) {
            Some(delay) => {
                tracing::debug!(shard = %self.shard, ?class, ?delay, error = %err, "kinesis call failed; retrying");
                self.sleep_or_stopped(delay).await;
                Ok(())
            }
            None => Err(Error::target(self.target.clone(), err)),
        }
    }
}
