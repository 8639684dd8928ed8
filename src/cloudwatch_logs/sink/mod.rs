//! [`CloudWatchLogsSink`]: a batch sink that sends log events to one
//! CloudWatch Logs log stream with `PutLogEvents`.
//!
//! # Guarantees
//!
//! - Every batch is planned by a [`Batcher`]: requests within the service's
//!   count, byte and 24-hour limits, in stable timestamp order.
//! - **One request in flight per sink**: requests of a batch, and batches,
//!   are sent one after another, never concurrently. Two sinks writing the
//!   *same* log stream are not coordinated; the service accepts that today
//!   (it ignores sequence tokens), but ordering across the two sinks is then
//!   the caller's problem.
//! - Throttling (`ThrottlingException`), `ServiceUnavailableException`, HTTP
//!   5xx and 429, timeouts and connection failures are retried with backoff
//!   per the sink's [`RetryPolicy`]. When the sink is built from an
//!   `SdkConfig` the SDK's own retries are turned off so that this policy is
//!   the only one; a [`Client`] you pass in keeps its own retry settings.
//! - Sequence tokens, for endpoints that still use them: the token of each
//!   response is sent with the next request; `InvalidSequenceTokenException`
//!   is retried with the token it names, and `DataAlreadyAcceptedException`
//!   counts as delivered.
//! - It follows the crate's batch-sink protocol (see [`Error`]): a failed
//!   batch leaves the sink usable and may be sent again. Events that can
//!   never be accepted — empty, too large, too old, too new (by the
//!   [`Batcher`] against the sink's clock), named by the service's
//!   `rejectedLogEventsInfo`, or refused alone with
//!   `InvalidParameterException` — are not retried: the rest of the batch is
//!   delivered first, then they are reported by their index in the batch
//!   through [`Error::Rejected`], so `buffered_wal` dead-letters exactly
//!   them.
//!
//! # Not guaranteed
//!
//! - Exactly once: a batch that fails half way (some requests sent, one
//!   exhausted its retries) is failed whole, and sending it again repeats
//!   the requests already delivered. A request that timed out may also have
//!   been stored.
//! - Halving a request refused as invalid stops after
//!   16 events were refused one by one: the batch then fails with
//!   [`Error::Target`] rather than dead-lettering events that are likely
//!   fine (a request-level problem).
//! - Creating the log group and stream (when asked) happens before the first
//!   request and again if the stream disappears; a failure there fails the
//!   batch and is not retried inside the sink.
//!
//! # Layout
//!
//! - `builder`: the options and their checks ([`CloudWatchLogsSinkBuilder`]);
//!   `names`: the log group and stream name rules.
//! - `writer`: what a sink writes with, and the delivery of one batch.
//! - `halving`: a request refused whole as invalid, halved until the
//!   offending events are alone.
//! - `put`: one `PutLogEvents` request with its timeout, retries and
//!   sequence tokens.
//! - `setup`: `CreateLogGroup`, `CreateLogStream`, `PutRetentionPolicy`.
//! - `rejected`: `rejectedLogEventsInfo` mapped back to batch indices.
//!
//! [`Batcher`]: crate::cloudwatch_logs::Batcher
//! [`RetryPolicy`]: crate::RetryPolicy

mod builder;
mod halving;
mod names;
mod put;
mod rejected;
mod setup;
mod writer;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_config::SdkConfig;
use aws_sdk_cloudwatchlogs::Client;
use futures::Sink;

pub use builder::CloudWatchLogsSinkBuilder;
use writer::LogStreamWriter;

use super::event::LogEvent;
use crate::error::Error;

/// The delivery of the batch in flight.
type DeliveryFuture = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// A `Sink<Vec<LogEvent>>` writing to one CloudWatch Logs log stream.
///
/// Build it with [`CloudWatchLogsSink::builder`] (from an `SdkConfig`) or
/// [`CloudWatchLogsSink::builder_from_client`]; make it durable and batched
/// with `buffered_wal`.
///
/// ```no_run
/// use futures::SinkExt;
/// use unistream::cloudwatch_logs::{CloudWatchLogsSink, LogEvent};
/// use unistream::RetryPolicy;
///
/// # async fn run() -> Result<(), unistream::Error> {
/// let config = aws_config::load_from_env().await;
/// let mut sink = CloudWatchLogsSink::builder(&config, "/app/orders", "host-1")
///     .create_missing(true)
///     .retention_days(30)
///     .retry_policy(RetryPolicy::new().max_attempts(5))
///     .build()?;
/// sink.send(vec![LogEvent::now("order 1 placed"), LogEvent::now("order 2 placed")])
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "sinks do nothing unless polled"]
pub struct CloudWatchLogsSink {
    writer: Arc<LogStreamWriter>,
    in_flight: Option<DeliveryFuture>,
}

impl CloudWatchLogsSink {
    /// A sink with default options writing to `group`/`stream` (which must
    /// exist), with a client built from `config` with the SDK's own retries
    /// off (the sink's [`RetryPolicy`](crate::RetryPolicy) is the one retry
    /// layer; see the crate docs, "AWS clients and retries").
    ///
    /// # Errors
    ///
    /// [`Error::Config`] as [`CloudWatchLogsSinkBuilder::build`].
    pub fn new(
        config: &SdkConfig,
        group: impl Into<String>,
        stream: impl Into<String>,
    ) -> Result<Self, Error> {
        Self::builder(config, group, stream).build()
    }

    /// A sink with default options writing to `group`/`stream` through
    /// `client` as it is (its own retry settings stay in force, below the
    /// sink's policy).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] as [`CloudWatchLogsSinkBuilder::build`].
    pub fn from_client(
        client: Client,
        group: impl Into<String>,
        stream: impl Into<String>,
    ) -> Result<Self, Error> {
        Self::builder_from_client(client, group, stream).build()
    }

    /// Options for a sink writing to `group`/`stream`, with a client built
    /// from `config` as [`new`](Self::new) does.
    pub fn builder(
        config: &SdkConfig,
        group: impl Into<String>,
        stream: impl Into<String>,
    ) -> CloudWatchLogsSinkBuilder {
        Self::builder_from_client(crate::aws::clients::cloudwatch_logs(config), group, stream)
    }

    /// Options for a sink writing to `group`/`stream` through `client` as
    /// it is.
    pub fn builder_from_client(
        client: Client,
        group: impl Into<String>,
        stream: impl Into<String>,
    ) -> CloudWatchLogsSinkBuilder {
        CloudWatchLogsSinkBuilder::new(client, group.into(), stream.into())
    }

    /// The sink over `writer`, as built by [`CloudWatchLogsSinkBuilder::build`].
    fn from_writer(writer: LogStreamWriter) -> Self {
        Self {
            writer: Arc::new(writer),
            in_flight: None,
        }
    }

    /// The log group written to.
    pub fn log_group(&self) -> &str {
        &self.writer.group
    }

    /// The log stream written to.
    pub fn log_stream(&self) -> &str {
        &self.writer.stream
    }

    /// Creates the group and stream (when configured to) and sets the
    /// retention now rather than before the first request. Idempotent.
    pub async fn prepare(&self) -> Result<(), Error> {
        let mut state = self.writer.log_stream_state.lock().await;
        self.writer.prepare(&mut state).await
    }
}

impl fmt::Debug for CloudWatchLogsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudWatchLogsSink")
            .field("group", &self.writer.group)
            .field("stream", &self.writer.stream)
            .field("in_flight", &self.in_flight.is_some())
            .finish_non_exhaustive()
    }
}

impl Sink<Vec<LogEvent>> for CloudWatchLogsSink {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // One batch at a time: ready once the previous one is done.
        self.poll_flush(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, batch: Vec<LogEvent>) -> Result<(), Error> {
        if self.in_flight.is_some() {
            return Err(Error::Config(
                "CloudWatchLogsSink::start_send called before poll_ready returned Ready".into(),
            ));
        }
        if !batch.is_empty() {
            let span = tracing::info_span!(
                "cloudwatch_logs_put",
                log_group = %self.writer.group,
                log_stream = %self.writer.stream
            );
            self.in_flight = Some(Box::pin(tracing::Instrument::instrument(
                self.writer.clone().deliver(batch),
                span,
            )));
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Some(delivery) = self.in_flight.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let result = futures::ready!(delivery.as_mut().poll(cx));
        self.in_flight = None;
        Poll::Ready(result)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush(cx)
    }
}
