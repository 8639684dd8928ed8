//! Enhanced fan-out: a [`KinesisSource`](super::KinesisSource) reading its
//! shards with `SubscribeToShard` instead of polling them.
//!
//! Polling shares each shard's 2 MiB/s and 5 calls/s between every consumer
//! of a stream and adds up to a poll interval of latency. A registered
//! consumer gets its own 2 MiB/s per shard, pushed over HTTP/2. Turn it on
//! with [`KinesisSource::enhanced_fan_out`](super::KinesisSource::enhanced_fan_out);
//! polling stays the default.
//!
//! # What it guarantees
//!
//! Everything the module docs of [`KinesisSource`](super::KinesisSource)
//! say of polling holds: the same tokens, KPL aggregates unpacked and a
//! restart resuming inside one, `checkpoint_batched`, fencing, leased mode,
//! parents finished before children. Only the retrieval differs:
//!
//! - **The consumer.** On first use the source registers the consumer
//!   (`RegisterStreamConsumer`; one that exists already —
//!   `ResourceInUseException` — is looked up with
//!   `DescribeStreamConsumer`) and waits until it is `ACTIVE`, at most
//!   [`activation_timeout`](EnhancedFanOut::activation_timeout). With
//!   [`deregister_on_shutdown`](EnhancedFanOut::deregister_on_shutdown) it
//!   is deregistered when the source's stream is dropped or ends.
//! - **Subscriptions.** Each shard subscribes at its checkpoint
//!   (`AT_SEQUENCE_NUMBER`, skipping what was processed inside an
//!   aggregate, as polling does) or at the initial position. Kinesis ends a
//!   subscription after about 5 minutes (or earlier); the shard subscribes
//!   again `AFTER_SEQUENCE_NUMBER` the continuation sequence number of the
//!   last event handed to the consumer, so nothing is lost or repeated. At
//!   most one `SubscribeToShard` per second per shard. A
//!   `ResourceInUseException` within 5 s of the shard's previous
//!   subscription (Kinesis still holds the old one) is retried after a
//!   pause without counting as a failure; later ones, throttling
//!   (`LimitExceededException`) and transient failures (network, a broken
//!   event stream, 5xx) are retried per the source's retry and throttle
//!   policies.
//! - **Shard end.** An event with a null continuation sequence number or
//!   with child shards is the shard's last: the shard ends exactly as a
//!   polled one without a next iterator does (`SHARD_END` once everything
//!   delivered is checkpointed, then the children). An idle subscription
//!   (an event without records) also checks at most every 5 s, with one
//!   `GetShardIterator` + `GetRecords` (`Limit` 1) after the continuation,
//!   whether the shard is closed with nothing left: endpoints that keep a
//!   closed shard's subscription open without ever ending it (kinesis-mock
//!   0.6) end it that way. These calls count against the shard's polling
//!   limit (5 calls/s shared by every polling consumer); a shard that
//!   receives records makes none.
//! - **Back-pressure.** A shard asks its event stream for the next event
//!   only when the consumer has room for it (the same bound as polling:
//!   [`prefetch_batches`](super::KinesisSource::prefetch_batches) events
//!   plus the one being handed out). Events not asked for stay in the
//!   HTTP/2 stream: once its flow-control window is full (the SDK's hyper
//!   client: 2 MiB per stream, 5 MiB per connection), Kinesis stops sending
//!   on that subscription. Nothing accumulates in memory beyond those
//!   bounds; a subscription stalled until its end is subscribed again from
//!   the last delivered event when the consumer catches up.
//!
//! # What it needs against AWS
//!
//! `SubscribeToShard` is served over HTTP/2 only. The SDK's default HTTPS
//! client (the `default-https-client` feature of `aws-sdk-kinesis`, which
//! this crate enables) offers `h2` by ALPN on TLS connections, so the
//! default client works; a custom HTTP client must speak HTTP/2. Over plain
//! `http://` endpoints (local emulators) the SDK uses HTTP/1.1, which
//! kinesis-mock accepts for event streams. The credentials need
//! `kinesis:RegisterStreamConsumer`, `kinesis:DescribeStreamConsumer`,
//! `kinesis:SubscribeToShard` and `kinesis:DescribeStreamSummary` (to find
//! the stream ARN when the stream is named), plus
//! `kinesis:DeregisterStreamConsumer` with deregistration on. A stream has
//! at most 20 registered consumers, each billed per shard-hour.

mod consumer;
mod error;
mod subscription;

use std::time::Duration;

pub use error::FanOutError;

pub(crate) use consumer::FanOutConsumer;
pub(crate) use subscription::FanOutRetrieval;

/// The enhanced fan-out settings of a [`KinesisSource`](super::KinesisSource);
/// see the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use unistream::kinesis::EnhancedFanOut;
///
/// let fan_out = EnhancedFanOut::new("orders-billing")
///     .activation_timeout(Duration::from_secs(120));
/// assert_eq!(fan_out.consumer_name(), "orders-billing");
/// ```
#[derive(Debug, Clone)]
pub struct EnhancedFanOut {
    consumer_name: String,
    deregister_on_shutdown: bool,
    activation_timeout: Duration,
    activation_poll: Duration,
}

impl EnhancedFanOut {
    /// Reading as the registered consumer `consumer_name` (1–128 of
    /// `[a-zA-Z0-9_.-]`), registered if it does not exist. Every worker of
    /// one application uses the same name.
    pub fn new(consumer_name: impl Into<String>) -> Self {
        Self {
            consumer_name: consumer_name.into(),
            deregister_on_shutdown: false,
            activation_timeout: Duration::from_secs(300),
            activation_poll: Duration::from_secs(1),
        }
    }

    /// The consumer's name.
    pub fn consumer_name(&self) -> &str {
        &self.consumer_name
    }

    /// Deregisters the consumer when the source's stream ends or is
    /// dropped (on drop: from a task spawned on the current Tokio runtime,
    /// so not if the runtime itself is shutting down). Default: off. Turn
    /// it on only when no other process reads as the same consumer: their
    /// subscriptions end with it.
    pub fn deregister_on_shutdown(mut self, on: bool) -> Self {
        self.deregister_on_shutdown = on;
        self
    }

    /// How long to wait for the consumer to become `ACTIVE` before the
    /// source fails with [`FanOutError::NotActive`]. Default: 5 minutes
    /// (registration takes seconds on AWS).
    pub fn activation_timeout(mut self, timeout: Duration) -> Self {
        self.activation_timeout = timeout;
        self
    }

    /// How often the consumer's status is read while waiting for it to
    /// become `ACTIVE`. Default: 1 s.
    pub fn activation_poll_interval(mut self, interval: Duration) -> Self {
        self.activation_poll = interval;
        self
    }
}
