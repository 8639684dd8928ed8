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
//! **Batches fed together.** `poll_ready` does not wait for a batch to be
//! stored: the sink takes the next batch while the earlier ones are still
//! being delivered (until little is left waiting for a call), and all of
//! them share one queue, the calls in flight and, in ordered mode, the
//! ordering lanes — so a batch's records go to shards with room while an
//! earlier batch waits for room on others, and per-key order holds across
//! batches as within one. Outcomes are reported by `poll_flush`, which
//! completes every batch fed since the previous flush: `send` (feed and
//! flush) reports its own batch as before; `buffered_wal` flushes the
//! batches it fed before each commit (every 10 ms by default). When
//! several batches were fed and not all went through, the flush reports
//! one [`Error::Target`] for the group: sending each again with a flush of
//! its own gives each its own outcome (which is what `buffered_wal` does).
//!
//! A failed batch may have been partly stored. The sink remembers how far
//! the batches of a failed flush got: when their records are sent again
//! in the same order (as `buffered_wal` does, one batch and flush at a
//! time, cut into batches as it likes), only the records not yet stored
//! or rejected go out, so a retry neither stores records twice nor starts
//! over — under a steady failure rate, every retry makes progress. Any
//! other batch starts afresh.
//!
//! It works alone, and made durable by `buffered_wal`, which hands it
//! batches from its write-ahead log and dead-letters rejected records.
//!
//! What it does per batch — limits, shard prediction, pacing, aggregation,
//! partial-failure retries and ordering — is described in the builder's
//! options and in the modules [`rate_limit`](super::rate_limit) and
//! [`aggregation`](crate::kinesis::aggregation).
//!
//! A sink has up to
//! [`max_calls_in_flight`](KinesisSinkBuilder::max_calls_in_flight) calls
//! in flight for all its batches; clones share the shard map, the rate
//! limiter and the metrics, and each has its own batches, calls and order.
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
use super::put::{run_batches, Feed, PutProgress, Resumption, RunEnd, SinkOptions, SinkShared};
use super::rate_limit::ShardRateLimit;
use crate::kinesis::limits::{MAX_PUT_RECORDS_COUNT, MAX_RECORD_BYTES};
use crate::kinesis::{KinesisRecord, StreamTarget};
use crate::{Error, RetryPolicy};

/// The default size limit of an aggregated record (see
/// `KinesisSinkBuilder::max_aggregate_bytes`).
const DEFAULT_MAX_AGGREGATE_BYTES: usize = 64 * 1024;

/// Calls a sink may have in flight by default (see
/// `KinesisSinkBuilder::max_calls_in_flight` for why eight).
const DEFAULT_MAX_CALLS_IN_FLIGHT: usize = 8;

/// The default limit on one call (see `KinesisSinkBuilder::request_timeout`).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type RunFuture = Pin<Box<dyn Future<Output = RunEnd> + Send>>;

/// `poll_ready` is ready while the run has fewer entries than this waiting
/// for a call (and fewer bytes than [`READY_BELOW_WAITING_BYTES`]): enough
/// to fill the next calls as answers come back, little enough that a crash
/// or a failure concerns about a second of a shard's records at most.
const READY_BELOW_WAITING_ENTRIES: usize = 2 * MAX_PUT_RECORDS_COUNT;
/// See [`READY_BELOW_WAITING_ENTRIES`].
const READY_BELOW_WAITING_BYTES: u64 = 4 << 20;

/// Finished batches remembered since the last flush, in bytes of records
/// (those with rejections are always kept): a flush that fails for the
/// group makes the sink resume each batch sent again, and a batch
/// forgotten beyond this bound is stored again then (never lost).
const MAX_REMEMBERED_BYTES: u64 = 32 << 20;

/// A `Sink<Vec<KinesisRecord>>` putting each batch into a Kinesis stream.
///
/// Batches fed one after the other (`feed`, `send_all`, `buffered_wal`)
/// are delivered together: `poll_ready` takes the next batch while earlier
/// ones are still in flight, their records share the calls in flight and
/// per-key order holds across them; `poll_flush` completes them all and
/// reports how they went — for one batch (as `send` does) its own outcome,
/// for several of which not all went through one [`Error::Target`] for the
/// group: send each again with a flush of its own for each outcome (the
/// sink resumes each where it got, storing nothing twice).
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
    /// The batches handed to the run, and back.
    feed: Arc<Feed>,
    /// The run delivering the batches fed, while it has any.
    run: Option<RunFuture>,
    /// How the last run failed, with its unfinished batches, until a
    /// flush reports it; no batch is sent meanwhile.
    failed: Option<(Error, Vec<PutProgress>)>,
    /// Batches fed since the last flush.
    fed: usize,
    /// The finished ones, in feed order, within [`MAX_REMEMBERED_BYTES`].
    finished: Vec<PutProgress>,
    finished_bytes: u64,
    /// Finished batches not remembered, since the last flush.
    forgotten: usize,
    /// The batches of a failed flush, to resume when they are sent again.
    resume: Resumption,
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
            feed: Arc::default(),
            run: None,
            failed: None,
            fed: 0,
            finished: Vec::new(),
            finished_bytes: 0,
            forgotten: 0,
            resume: Resumption::default(),
        }
    }

    /// Drives the run, if any; keeps the batches it finished, and how it
    /// ended. Ready when no run is left.
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let ended = match self.run.as_mut() {
            Some(run) => match run.as_mut().poll(cx) {
                Poll::Ready(end) => Some(end),
                Poll::Pending => None,
            },
            None => None,
        };
        let finished = std::mem::take(&mut self.feed.state().finished);
        for batch in finished {
            self.remember_finished(batch);
        }
        if let Some(RunEnd { error, unfinished }) = ended {
            self.run = None;
            if let Some(error) = error {
                self.failed = Some((error, unfinished));
            }
        }
        if self.run.is_none() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn remember_finished(&mut self, batch: PutProgress) {
        if !batch.has_rejections() {
            let bytes = batch.bytes();
            if self.finished_bytes + bytes > MAX_REMEMBERED_BYTES {
                self.forgotten += 1;
                return;
            }
            self.finished_bytes += bytes;
        }
        self.finished.push(batch);
    }

    /// The outcome of the batches fed since the last flush, once the run
    /// is done with them.
    fn report(&mut self) -> Result<(), Error> {
        let fed = std::mem::take(&mut self.fed);
        let forgotten = std::mem::take(&mut self.forgotten);
        self.finished_bytes = 0;
        let (failure, unfinished) = match self.failed.take() {
            Some((error, unfinished)) => (Some(error), unfinished),
            None => (None, Vec::new()),
        };
        let mut group = std::mem::take(&mut self.finished);
        group.extend(unfinished);
        group.extend(self.feed.state().incoming.drain(..));
        if failure.is_none() && group.iter().all(|b| !b.has_rejections()) {
            return Ok(());
        }
        // Whatever the error, the batches are remembered: a caller that
        // sends them again (as `buffered_wal` does after a failed flush)
        // resumes each where it got, and one that sends other batches
        // forgets them.
        if fed == 1 && group.len() == 1 {
            let batch = &mut group[0];
            let result = if batch.remaining() == 0 {
                let result = batch.finished_result();
                if let Err(Error::Rejected(rejected)) = &result {
                    if !batch.rejections_reported {
                        batch.rejections_reported = true;
                        self.shared
                            .record_metrics(|m| m.records_dead_lettered += rejected.len() as u64);
                    }
                }
                result
            } else {
                Err(failure.unwrap_or_else(|| {
                    Error::target(self.shared.label.clone(), "a batch was left unfinished")
                }))
            };
            self.remember_for_resumption(group);
            return result;
        }
        let unfinished = group.iter().filter(|b| b.remaining() > 0).count();
        let rejected: usize = group.iter().map(PutProgress::rejected_count).sum();
        let cause = match &failure {
            Some(error) => format!("; {}", crate::ErrorChain(error)),
            None => String::new(),
        };
        let forgotten = if forgotten > 0 {
            format!(" ({forgotten} finished batch(es) not remembered are stored again)")
        } else {
            String::new()
        };
        self.remember_for_resumption(group);
        Err(Error::target(
            self.shared.label.clone(),
            format!(
                "of {fed} batches fed since the last flush, {unfinished} are unfinished and \
                 {rejected} record(s) were rejected{cause}; send each batch again with a flush \
                 of its own for its outcome: the sink resumes each where it got{forgotten}"
            ),
        ))
    }

    /// Keeps `batches` to resume them when they are sent again, within
    /// [`MAX_REMEMBERED_BYTES`] (the oldest are dropped first).
    fn remember_for_resumption(&mut self, batches: Vec<PutProgress>) {
        self.resume.put_back(batches);
        self.resume.keep_within(MAX_REMEMBERED_BYTES);
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
            .field("running", &self.run.is_some())
            .field("fed", &self.fed)
            .finish()
    }
}

impl Sink<Vec<KinesisRecord>> for KinesisSink {
    type Error = Error;

    /// Ready while the batches fed leave little waiting for a call: the
    /// next batch joins them, and its records go to shards with room while
    /// earlier records wait for theirs. Reports no outcome: `poll_flush`
    /// does.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.poll_run(cx).is_ready() || this.failed.is_some() {
            return Poll::Ready(Ok(()));
        }
        let state = this.feed.state();
        if state.incoming.is_empty()
            && state.waiting < READY_BELOW_WAITING_ENTRIES
            && state.waiting_bytes < READY_BELOW_WAITING_BYTES
        {
            Poll::Ready(Ok(()))
        } else {
            // The run wakes this task as calls are answered.
            Poll::Pending
        }
    }

    /// Hands `batch` to the run (starting one if none is going); a batch
    /// of a failed flush resumes where it got.
    fn start_send(self: Pin<&mut Self>, batch: Vec<KinesisRecord>) -> Result<(), Error> {
        let this = self.get_mut();
        if batch.is_empty() {
            return Ok(());
        }
        this.fed += 1;
        let (progress, resumed) = this.resume.progress_of(batch);
        if resumed {
            tracing::debug!(
                target: "unistream::kinesis",
                stream = %this.shared.label,
                remaining = progress.remaining(),
                "resuming records that failed before"
            );
        } else {
            this.shared.record_metrics(|m| {
                for record in progress.records() {
                    m.record_bytes
                        .saturating_record(record.billed_bytes() as u64);
                }
            });
        }
        this.feed.push(progress);
        // After a failure nothing is sent until a flush reported it.
        if this.run.is_none() && this.failed.is_none() {
            let span = tracing::info_span!(
                "kinesis_put",
                stream = %this.shared.target.label_name()
            );
            this.run = Some(Box::pin(tracing::Instrument::instrument(
                run_batches(this.shared.clone(), this.feed.clone()),
                span,
            )));
        }
        Ok(())
    }

    /// Completes every batch fed since the last flush and reports them:
    /// `Ok` when all went through. For one batch, its outcome
    /// ([`Error::Rejected`] by index, or the failure that exhausted the
    /// policy); for several of which not all went through, an
    /// [`Error::Target`] for the group — send each again with a flush of
    /// its own (as `buffered_wal` does) for its own outcome: the sink
    /// resumes each where it got, storing no record twice.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        futures::ready!(this.poll_run(cx));
        Poll::Ready(this.report())
    }

    /// As `poll_flush`: there is nothing else to close.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush(cx)
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
    ///
    /// A shard's aggregate stays open while it waits for a call (in
    /// ordered mode a shard has one aggregate in flight): the shard's
    /// records of the batches fed meanwhile join it, so small batches spread
    /// over many shards still make full aggregates. Against the local
    /// Kinesis stub at 20 ms round trips (BENCHMARKS.md, "Aggregates across
    /// fed batches"), batches of 500 records of 500 bytes fed one after the
    /// other used 97 % of 4 and 16 shards' byte limit and 95 % of 64 (13 %
    /// when each batch made aggregates of its own). A `flush` waits until
    /// every batch fed is stored, and nothing is fed meanwhile: behind
    /// `buffered_wal`, which flushes before each commit (every 10 ms), a
    /// shard's lane drains once per commit, and 16 shards were 89 % used,
    /// 64 shards 58 %.
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
    ///
    /// With pacing, a shard whose allowance the adaptive pacing cut (other
    /// producers write to it) gets aggregates cut in the same proportion:
    /// an aggregate is one attempt, and an overshoot then costs a smaller
    /// one. Two producers sharing one shard at 5 ms round trips: 1.4 % of
    /// attempts throttled at 96 % of the byte limit, against 2.3 % with
    /// full-size aggregates.
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

    /// How many `PutRecords` calls the sink may have in flight at once
    /// (default 8, at least 1), for all the batches it was fed.
    ///
    /// A batch larger than one call (500 records, 5 MiB), one the pacing
    /// splits because some shards have no room yet, or several batches fed
    /// one after the other go out in several calls. With one call in
    /// flight a producer is capped at 500 records per round trip (25,000
    /// records/s at 20 ms); with eight, at 4,000 (200,000 records/s, the
    /// limit of 200 shards). Eight is the default because it covers a
    /// 4,000-record round trip while keeping what a failure or a slow
    /// endpoint holds up small (the KPL allows 24 requests in flight,
    /// zio-kinesis 8).
    ///
    /// Batches are fed without waiting for the earlier ones to be stored
    /// (see [`KinesisSink`]): behind
    /// [`buffered_wal`](crate::sink::WalSinkExt::buffered_wal) the default
    /// batches of 500 records fill the calls in flight as well as large
    /// ones do. `send` (a flush per batch) still waits for each batch.
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
