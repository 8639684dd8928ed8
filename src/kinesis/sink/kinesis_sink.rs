//! [`KinesisSink`]: a batch sink writing to a Kinesis data stream with
//! `PutRecords`.
//!
//! It follows the crate's batch-sink protocol (see [`Error`]): a batch is
//! delivered whole (`Ok`), or delivered except the records listed in
//! [`Error::Rejected`] (invalid records and permanent failures, for the
//! dead-letter path), or failed ([`Error::Target`], after the retry policy
//! ran out on a transient failure) — and then the sink stays usable and the
//! same batch may be sent again. Records are never dropped silently.
//!
//! A failed batch may have been partly stored. The sink remembers how far
//! it got: when the *same* batch is sent next (as `buffered_wal` does), only
//! the records not yet stored or rejected go out, so a retry neither stores
//! records twice nor starts over — under a steady failure rate, every retry
//! makes progress. Any other batch starts afresh.
//!
//! It works alone, and made durable by `buffered_wal`, which hands it
//! batches from its write-ahead log and dead-letters rejected records.
//!
//! What it does per batch — limits, shard prediction, pacing, aggregation,
//! partial-failure retries and ordering — is described in the builder's
//! options and in the modules [`rate_limit`](super::rate_limit) and
//! [`aggregation`](crate::kinesis::aggregation).
//!
//! One batch is in flight at a time per sink, in up to
//! [`max_calls_in_flight`](KinesisSinkBuilder::max_calls_in_flight) calls;
//! clones share the shard map, the rate limiter and the metrics, and each
//! has its own batch in flight.
//! Built from an `SdkConfig`, the sink's client has the SDK's retries off:
//! the sink's [`RetryPolicy`] is the one layer retrying calls and records.
//! A client passed to [`KinesisSink::from_client`] keeps its own retry
//! settings, which then run below the sink's policy.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Sink;

use super::metrics::KinesisMetricsHandle;
use super::put::{put_batch, PutOutcome, PutProgress, SinkOptions, SinkShared};
use super::rate_limit::ShardRateLimit;
use crate::kinesis::limits::MAX_RECORD_BYTES;
use crate::kinesis::{KinesisRecord, StreamTarget};
use crate::{Error, RetryPolicy};

/// The default size limit of an aggregated record (see
/// `KinesisSinkBuilder::max_aggregate_bytes`).
const DEFAULT_MAX_AGGREGATE_BYTES: usize = 64 * 1024;

/// Calls one batch may have in flight by default (see
/// `KinesisSinkBuilder::max_calls_in_flight` for why eight).
const DEFAULT_MAX_CALLS_IN_FLIGHT: usize = 8;

/// The default limit on one call (see `KinesisSinkBuilder::request_timeout`).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type PutFuture = Pin<Box<dyn Future<Output = PutOutcome> + Send>>;

/// A `Sink<Vec<KinesisRecord>>` putting each batch into a Kinesis stream.
///
/// ```
/// use futures::SinkExt;
/// use unistream::kinesis::{KinesisRecord, KinesisSink};
/// use unistream::{Error, RejectedRecord};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let config = aws_config::SdkConfig::builder()
///     .behavior_version(aws_config::BehaviorVersion::latest())
///     .region(aws_config::Region::new("us-east-1"))
///     .build();
/// let mut sink = KinesisSink::builder(&config, "orders")
///     .aggregation(true)
///     .build()?;
///
/// // A record Kinesis can never take is rejected by index, never sent:
/// // with nothing else in the batch, no request is made at all.
/// let err = sink.send(vec![KinesisRecord::new("x", "")]).await.unwrap_err();
/// match err {
///     Error::Rejected(records) => {
///         assert_eq!(records[0].index, 0);
///         assert!(records[0].reason.contains("partition key"));
///     }
///     other => panic!("{other}"),
/// }
/// assert_eq!(sink.metrics().snapshot().records_dead_lettered, 1);
///
/// // A name Kinesis cannot accept is refused when the sink is built.
/// assert!(matches!(
///     KinesisSink::new(&config, "no spaces"),
///     Err(Error::Config(_))
/// ));
/// # Ok(())
/// # }
/// ```
#[must_use = "sinks do nothing unless polled"]
pub struct KinesisSink {
    shared: Arc<SinkShared>,
    in_flight: Option<PutFuture>,
    /// How far the last batch got, when it failed.
    progress: Option<PutProgress>,
}

impl KinesisSink {
    /// A sink with default options for `stream` (a name, or an ARN starting
    /// with `arn:`), using a client built from `config` with the SDK's own
    /// retries off (the sink's [`RetryPolicy`] is the one retry layer; see
    /// the crate docs, "AWS clients and retries").
    ///
    /// # Errors
    ///
    /// [`Error::Config`] as [`KinesisSinkBuilder::build`].
    pub fn new(
        config: &aws_config::SdkConfig,
        stream: impl Into<StreamTarget>,
    ) -> Result<Self, Error> {
        Self::builder(config, stream).build()
    }

    /// A sink with default options for `stream`, using `client` as it is
    /// (its own retry settings stay in force, below the sink's policy).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] as [`KinesisSinkBuilder::build`].
    pub fn from_client(
        client: aws_sdk_kinesis::Client,
        stream: impl Into<StreamTarget>,
    ) -> Result<Self, Error> {
        Self::builder_from_client(client, stream).build()
    }

    /// A builder to set options (see [`KinesisSinkBuilder`]), with a client
    /// built from `config` as [`new`](Self::new) does.
    pub fn builder(
        config: &aws_config::SdkConfig,
        stream: impl Into<StreamTarget>,
    ) -> KinesisSinkBuilder {
        Self::builder_from_client(crate::aws::clients::kinesis(config), stream)
    }

    /// A builder to set options, using `client` as it is.
    pub fn builder_from_client(
        client: aws_sdk_kinesis::Client,
        stream: impl Into<StreamTarget>,
    ) -> KinesisSinkBuilder {
        KinesisSinkBuilder::new(client, stream.into())
    }

    /// The live metrics (shared with clones and with any sink built with
    /// the same handle).
    pub fn metrics(&self) -> KinesisMetricsHandle {
        self.shared.metrics.clone()
    }

    /// The stream written to.
    pub fn stream(&self) -> &StreamTarget {
        &self.shared.target
    }

    /// A sink over `shared` with no batch in flight.
    fn from_shared(shared: Arc<SinkShared>) -> Self {
        Self {
            shared,
            in_flight: None,
            progress: None,
        }
    }

    /// Drives the batch in flight, if any, to its end.
    fn poll_in_flight(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Some(future) = self.in_flight.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let PutOutcome { result, progress } = futures::ready!(future.as_mut().poll(cx));
        self.in_flight = None;
        self.progress = progress;
        Poll::Ready(result)
    }
}

impl Clone for KinesisSink {
    /// A sink sharing this one's client, options, shard map, rate limiter
    /// and metrics, with no batch in flight.
    fn clone(&self) -> Self {
        Self::from_shared(self.shared.clone())
    }
}

impl fmt::Debug for KinesisSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KinesisSink")
            .field("stream", &self.shared.target)
            .field("options", &self.shared.options)
            .field("in_flight", &self.in_flight.is_some())
            .finish()
    }
}

impl Sink<Vec<KinesisRecord>> for KinesisSink {
    type Error = Error;

    /// Ready once the previous batch is done; its outcome is returned here
    /// if it was not yet returned by `poll_flush`.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_in_flight(cx)
    }

    /// Starts delivering `batch`; `poll_flush` reports how it went.
    fn start_send(self: Pin<&mut Self>, batch: Vec<KinesisRecord>) -> Result<(), Error> {
        let this = self.get_mut();
        if this.in_flight.is_some() {
            return Err(Error::Config(
                "KinesisSink::start_send called before poll_ready returned Ready".into(),
            ));
        }
        if !batch.is_empty() {
            let previous = this.progress.take();
            let span = tracing::info_span!(
                "kinesis_put",
                stream = %this.shared.target.label_name()
            );
            this.in_flight = Some(Box::pin(tracing::Instrument::instrument(
                put_batch(this.shared.clone(), batch, previous),
                span,
            )));
        }
        Ok(())
    }

    /// Completes the batch in flight.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_in_flight(cx)
    }

    /// Completes the batch in flight; there is nothing else to close.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_in_flight(cx)
    }
}

/// Options of a [`KinesisSink`].
///
/// | option | default |
/// |---|---|
/// | [`ordered`](Self::ordered) | on: per-partition-key order is kept through retries |
/// | [`aggregation`](Self::aggregation) | off |
/// | [`max_aggregate_bytes`](Self::max_aggregate_bytes) | 64 KiB |
/// | [`retry_policy`](Self::retry_policy) | [`RetryPolicy::default`] (10 attempts, 100 ms doubling to 10 s, jitter) |
/// | [`rate_limit`](Self::rate_limit) | [`ShardRateLimit::default`] (1000 records/s, 1 MiB/s per shard, adaptive) |
/// | [`max_calls_in_flight`](Self::max_calls_in_flight) | 8 |
/// | [`shard_map_refresh`](Self::shard_map_refresh) | 60 s |
/// | [`request_timeout`](Self::request_timeout) | 10 s per call |
/// | [`metrics`](Self::metrics) | a new handle |
#[derive(Debug)]
#[must_use = "a builder does nothing until built"]
pub struct KinesisSinkBuilder {
    client: aws_sdk_kinesis::Client,
    target: StreamTarget,
    ordered: bool,
    aggregation: bool,
    max_aggregate_bytes: usize,
    retry: RetryPolicy,
    rate_limit: Option<ShardRateLimit>,
    max_calls_in_flight: usize,
    shard_map_refresh: Duration,
    request_timeout: Option<Duration>,
    metrics: KinesisMetricsHandle,
}

impl KinesisSinkBuilder {
    fn new(client: aws_sdk_kinesis::Client, target: StreamTarget) -> Self {
        Self {
            client,
            target,
            ordered: true,
            aggregation: false,
            max_aggregate_bytes: DEFAULT_MAX_AGGREGATE_BYTES,
            retry: RetryPolicy::default(),
            rate_limit: Some(ShardRateLimit::default()),
            max_calls_in_flight: DEFAULT_MAX_CALLS_IN_FLIGHT,
            shard_map_refresh: Duration::from_secs(60),
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            metrics: KinesisMetricsHandle::default(),
        }
    }

    /// Keep per-partition-key order through retries (default on).
    ///
    /// `PutRecords` stores the records of one call independently: a failed
    /// record does not stop later ones. Ordered mode therefore sends at most
    /// one record per partition key per call (with aggregation: one
    /// aggregate per shard), and a key's next record only after the previous
    /// one is stored, so a failed record holds back the later records of
    /// its key. A batch with few distinct keys makes more, smaller calls;
    /// aggregation restores large calls. Off, calls are filled freely and a
    /// retried record may land after a later record of its key.
    ///
    /// What it costs with few keys: without aggregation, a key carries one
    /// record per round trip whatever [`max_calls_in_flight`](Self::max_calls_in_flight)
    /// is. Measured against the local Kinesis stub with 20 ms round trips,
    /// 4 shards and only 10 partition keys (100-byte records; BENCHMARKS.md,
    /// "Kinesis producer: pacing against the stub"): ordered 354 records/s,
    /// unordered 1,991 records/s, ordered with aggregation 4,021 records/s
    /// of 500 bytes (one aggregate per shard per call) — the last two
    /// bound by the one shard that five of the ten keys hash to. With
    /// 10,000 keys, ordered mode without aggregation fills the shards
    /// (95 % of 4 shards).
    pub fn ordered(mut self, on: bool) -> Self {
        self.ordered = on;
        self
    }

    /// Pack user records bound for the same predicted shard into KPL
    /// aggregated records (default off). Consumers must deaggregate (the
    /// KCL does; so does this crate's source).
    pub fn aggregation(mut self, on: bool) -> Self {
        self.aggregation = on;
        self
    }

    /// Size limit of an aggregated record, in billed bytes (default 64 KiB);
    /// values above the 1 MiB record limit are lowered to it.
    ///
    /// The pacing sends whole records: an aggregate waits until its shard
    /// has room for all of it, so the room left over when the next
    /// aggregate does not fit goes unused, and in ordered mode a shard has
    /// one aggregate in flight at a time. Aggregates of 64 KiB (the KPL's
    /// default is 50 KB) waste at most 1/16 of a shard's 1 MiB/s and carry
    /// a full shard at round trips up to about 60 ms in ordered mode.
    /// Against the local Kinesis stub (BENCHMARKS.md, "Kinesis producer:
    /// pacing against the stub"), aggregates of 1 MiB used 62–81 % of the
    /// byte limit and drew 21 % throttled attempts when two producers
    /// shared the shards (an adaptive cut below one aggregate cannot take
    /// effect).
    pub fn max_aggregate_bytes(mut self, bytes: usize) -> Self {
        self.max_aggregate_bytes = bytes.min(MAX_RECORD_BYTES);
        self
    }

    /// Attempts and back-off for failed records and calls. When attempts
    /// run out, permanent failures are rejected (dead-letter path) and
    /// transient ones fail the batch.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Per-shard pacing (on by default with the Kinesis shard limits).
    pub fn rate_limit(mut self, limit: ShardRateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Turns per-shard pacing off: calls go out as fast as answers come
    /// back, and throttling is handled by retries alone.
    pub fn no_rate_limit(mut self) -> Self {
        self.rate_limit = None;
        self
    }

    /// How many `PutRecords` calls of one batch may be in flight at once
    /// (default 8, at least 1).
    ///
    /// A batch larger than one call (500 records, 5 MiB), or one the pacing
    /// splits because some shards have no room yet, goes out in several
    /// calls. With one call in flight a producer is capped at 500 records
    /// per round trip (25,000 records/s at 20 ms); with eight, at 4,000
    /// (200,000 records/s, the limit of 200 shards). Eight is the default
    /// because it covers a 4,000-record batch in one round trip while
    /// keeping what a failure or a slow endpoint holds up small (the KPL
    /// allows 24 requests in flight, zio-kinesis 8).
    ///
    /// Behind [`buffered_wal`](crate::sink::WalSinkExt::buffered_wal),
    /// which hands the sink one batch at a time, the calls in flight carry
    /// only what one batch holds: its default batches of 500 records are one
    /// call each, about 20,000 records/s at 20 ms round trips, enough for
    /// about 16 shards. For larger streams raise
    /// [`WalConfig::max_records`](crate::sink::WalConfig::max_records) with
    /// them (4,000 = eight calls of 500). Against the local Kinesis stub at
    /// 20 ms (BENCHMARKS.md), 64 shards took 24 % of their limit with
    /// batches of 500 and 80 % with batches of 16,000.
    ///
    /// Calls in flight never share an ordering lane, so every guarantee of
    /// the sink holds at any setting: in ordered mode a partition key
    /// without aggregation, or a shard with aggregation, has at most one
    /// record in flight. Concurrency therefore adds throughput across keys
    /// (shards), never within one — see [`ordered`](Self::ordered) for what
    /// that costs with few keys. When a transient failure exhausts the
    /// retry policy, no new call starts and the batch fails only once the
    /// calls in flight are answered, so the progress kept for a resend
    /// knows every record stored.
    pub fn max_calls_in_flight(mut self, calls: usize) -> Self {
        self.max_calls_in_flight = calls.max(1);
        self
    }

    /// How often the shard map is reloaded (it is also reloaded when a
    /// record lands on another shard than predicted, at most once a second).
    pub fn shard_map_refresh(mut self, every: Duration) -> Self {
        self.shard_map_refresh = every;
        self
    }

    /// Limit on each `PutRecords` (and `ListShards`) call (default 10 s);
    /// a call that takes longer is
    /// abandoned and its records fail as after a lost connection (transient:
    /// retried per the [`retry_policy`](Self::retry_policy)). `None` waits
    /// as long as the SDK client does — without an operation timeout in
    /// its `SdkConfig`, forever, on a connection that went silent.
    ///
    /// A call normally takes tens of milliseconds; the limit is for the
    /// silent connection, not for a slow one (the KPL's `RequestTimeout` is
    /// 6 s). An abandoned call may still have been stored — its answer is
    /// what was lost — so its records can be stored twice, as after any
    /// network failure, and in ordered mode the late copy can land after a
    /// later record of its key.
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Records into `handle` (for example one shared by several sinks).
    pub fn metrics(mut self, handle: KinesisMetricsHandle) -> Self {
        self.metrics = handle;
        self
    }

    /// Checks the options and builds the sink. Nothing is sent until the
    /// first batch.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a stream name Kinesis cannot accept (1 to 128
    /// characters of `a-z A-Z 0-9 _ . -`) or an ARN that does not name a
    /// Kinesis stream.
    pub fn build(self) -> Result<KinesisSink, Error> {
        self.target.check()?;
        let options = SinkOptions {
            ordered: self.ordered,
            aggregation: self.aggregation.then_some(self.max_aggregate_bytes),
            retry: self.retry,
            rate_limit: self.rate_limit,
            max_calls_in_flight: self.max_calls_in_flight,
            shard_map_refresh: self.shard_map_refresh,
            request_timeout: self.request_timeout,
        };
        Ok(KinesisSink::from_shared(Arc::new(SinkShared::new(
            self.client,
            self.target,
            options,
            self.metrics,
        ))))
    }
}
