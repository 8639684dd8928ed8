//! `KinesisSource`: every shard of a Kinesis stream as one checkpointed
//! stream of `(KinesisRecord, CheckpointToken)`.
//!
//! # What it guarantees
//!
//! - **Resumes after the checkpoint.** Each shard starts after the position
//!   its [`CheckpointStore`] holds (inside a KPL aggregate if the checkpoint
//!   points there), or at the configured [`InitialPosition`] when there is
//!   none. Checkpoints hold sequence numbers, never iterators.
//! - **Tokens.** Every record comes with a [`CheckpointToken`] whose
//!   partition is the shard id, whose position is
//!   `Position::Sequence { sequence, sub }` (`sub` = index inside a KPL
//!   aggregate, 0 otherwise), whose `seq` counts the shard's deliveries from
//!   0, and which carries the shard's [`PartitionControl`]: when a checkpoint
//!   write is fenced the checkpointer flips it and the source stops reading
//!   that shard (its records still buffered are dropped, the other shards go
//!   on).
//! - **Fair and bounded.** Shards are read concurrently, one task each, at
//!   most [`max_calls_per_second`](KinesisSource::max_calls_per_second)
//!   `GetRecords` calls per shard; their records are merged round-robin.
//!   Each shard buffers at most
//!   [`prefetch_batches`](KinesisSource::prefetch_batches) responses ahead of
//!   the consumer: a slow consumer slows fetching, memory does not grow.
//! - **Failures.** An expired iterator is recreated from the last delivered
//!   record; throttling backs off and retries without limit; transient
//!   errors (network, timeouts, 5xx) are retried within the
//!   [`retry_policy`](KinesisSource::retry_policy); anything else ends the
//!   stream with [`Error::Target`] naming the stream and shard.
//! - **Resharding.** The shard list is refreshed every
//!   [`shard_refresh_interval`](KinesisSource::shard_refresh_interval) (and
//!   at once when a shard ends). A shard starts only after every parent
//!   shard's checkpoint is [`Position::End`](crate::Position::End) (`SHARD_END`), as in the KCL.
//!   When a shard is closed (no next iterator), the source waits until the
//!   store holds a checkpoint at or past the shard's last delivered record —
//!   that is, until the checkpointer has saved it — and then saves
//!   `Position::End` itself. So `End` is stored only after all the shard's
//!   records are checkpointed, whatever checkpointer is used, and the
//!   children start after that.
//!
//! # Retrieval
//!
//! Shards are polled (`GetRecords`) unless
//! [`enhanced_fan_out`](KinesisSource::enhanced_fan_out) is set: then each
//! shard is read through `SubscribeToShard` as a registered consumer, with
//! everything above unchanged (see [`fan_out`] for what differs: consumer
//! registration, subscriptions, back-pressure on the HTTP/2 stream, what
//! is needed against AWS). Calls per second and records per call are
//! polling settings; fan-out ignores them.
//!
//! # What it does not do
//!
//! - Lease balancing between several workers: a source reads every shard.
//!   Run one per stream, or give each worker its own stream; a
//!   [`DynamoDbCheckpointStore`] still fences a second writer.
//!
//! [`DynamoDbCheckpointStore`]: https://docs.rs/unistream/latest/unistream/checkpoint/struct.DynamoDbCheckpointStore.html
//! [`PartitionControl`]: crate::checkpoint::PartitionControl

mod caught_up;
mod failure;
pub mod fan_out;
mod iterator;
mod leased;
mod lineage;
mod merge;
mod polling;
mod records;
mod retrieval;
mod shard_list;
mod shard_reader;
mod shard_stream;

use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::{CheckpointStore, CheckpointToken};
use crate::kinesis::limits::{MAX_GET_RECORDS_CALLS_PER_SEC, MAX_GET_RECORDS_COUNT};
use crate::kinesis::{KinesisRecord, StreamTarget};
use crate::lease::{LeaseCheckpointStore, LeaseTable, LeaseWorker};
use crate::retry::RetryPolicy;
use crate::Error;
use fan_out::FanOutConsumer;
use leased::LeaseDriver;

pub use fan_out::{EnhancedFanOut, FanOutError};
pub use iterator::InitialPosition;
pub use merge::KinesisStream;

/// Reads every shard of a Kinesis stream; see the [module docs](self).
///
/// Build it with [`new`](Self::new) from an SDK configuration (or
/// [`from_client`](Self::from_client)), tune it, and call
/// [`stream`](Self::stream). Here the client answers from a canned stream
/// (`aws-smithy-mocks`), so the example runs anywhere:
///
/// ```
/// # use aws_sdk_kinesis::operation::{get_records::GetRecordsOutput,
/// #     get_shard_iterator::GetShardIteratorOutput, list_shards::ListShardsOutput};
/// # use aws_sdk_kinesis::{primitives::Blob, types::{Record, Shard}, Client};
/// # use aws_smithy_mocks::{mock, MockResponseInterceptor, RuleMode};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), unistream::Error> {
/// # let list = mock!(Client::list_shards).then_output(|| ListShardsOutput::builder()
/// #     .shards(Shard::builder().shard_id("shardId-000000000000").build().unwrap()).build());
/// # let iterator = mock!(Client::get_shard_iterator)
/// #     .then_output(|| GetShardIteratorOutput::builder().shard_iterator("it").build());
/// # let records = mock!(Client::get_records).then_output(|| GetRecordsOutput::builder()
/// #     .records(Record::builder().sequence_number("7").partition_key("k")
/// #         .data(Blob::new("hello")).build().unwrap())
/// #     .next_shard_iterator("it").build().unwrap());
/// # let client = Client::from_conf(aws_sdk_kinesis::Config::builder()
/// #     .behavior_version(aws_config::BehaviorVersion::latest())
/// #     .region(aws_config::Region::new("us-east-1"))
/// #     .credentials_provider(aws_credential_types::Credentials::new("a", "b", None, None, "doc"))
/// #     .http_client(aws_smithy_mocks::create_mock_http_client())
/// #     .interceptor(MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny)
/// #         .with_rule(&list).with_rule(&iterator).with_rule(&records))
/// #     .build());
/// use futures::TryStreamExt;
/// use unistream::checkpoint::MemoryCheckpointStore;
/// use unistream::kinesis::{InitialPosition, KinesisSource};
/// use unistream::Position;
///
/// let store = MemoryCheckpointStore::new(); // DynamoDbCheckpointStore in production
/// let mut records = KinesisSource::from_client(client, "orders", store)
///     .initial_position(InitialPosition::TrimHorizon)
///     .records_per_call(1_000)
///     .stream();
/// let (record, token) = records.try_next().await?.expect("a record");
/// assert_eq!(&record.data[..], b"hello");
/// assert_eq!(token.partition(), "shardId-000000000000");
/// assert_eq!(token.position(), &Position::sequence("7"));
/// assert_eq!(token.seq(), 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a source does nothing until `.stream()` is polled"]
pub struct KinesisSource<S> {
    client: aws_sdk_kinesis::Client,
    stream: StreamTarget,
    store: S,
    config: SourceConfig,
    leases: Option<Arc<dyn LeaseDriver>>,
    fan_out: Option<EnhancedFanOut>,
}

/// Tunables of a [`KinesisSource`].
#[derive(Debug, Clone)]
pub(crate) struct SourceConfig {
    pub(crate) initial_position: InitialPosition,
    pub(crate) records_per_call: i32,
    pub(crate) idle_interval: Duration,
    pub(crate) min_call_interval: Duration,
    pub(crate) prefetch_batches: usize,
    pub(crate) shard_refresh_interval: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) throttle_backoff: RetryPolicy,
    /// Batch mode: end the stream once caught up for this long.
    pub(crate) caught_up_after: Option<Duration>,
    /// Limit on each `GetRecords`, `GetShardIterator` and `ListShards`
    /// call; `None`: none.
    pub(crate) request_timeout: Option<Duration>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            initial_position: InitialPosition::TrimHorizon,
            records_per_call: MAX_GET_RECORDS_COUNT,
            idle_interval: Duration::from_secs(1),
            min_call_interval: Duration::from_secs(1) / MAX_GET_RECORDS_CALLS_PER_SEC,
            prefetch_batches: 1,
            shard_refresh_interval: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            throttle_backoff: RetryPolicy::forever()
                .initial_backoff(Duration::from_millis(200))
                .max_backoff(Duration::from_secs(5)),
            caught_up_after: None,
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
        }
    }
}

/// The default of [`KinesisSource::request_timeout`].
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl<S: CheckpointStore> KinesisSource<S> {
    /// A source reading `stream` (a name or an ARN) with a client built from
    /// `sdk_config` (the SDK's own retries off: the source's retry policy is
    /// the one layer), checkpoints loaded from (and `SHARD_END` saved to)
    /// `store`.
    ///
    /// Give the checkpointer a clone of the same `store`: stores that fence
    /// by lease counter ([`DynamoDbCheckpointStore`]) share the counters
    /// between clones, while two separately built stores would fence each
    /// other when the source saves `SHARD_END`.
    ///
    /// [`DynamoDbCheckpointStore`]: https://docs.rs/unistream/latest/unistream/checkpoint/struct.DynamoDbCheckpointStore.html
    pub fn new(
        sdk_config: &aws_config::SdkConfig,
        stream: impl Into<StreamTarget>,
        store: S,
    ) -> Self {
        Self::from_client(crate::aws::clients::kinesis(sdk_config), stream, store)
    }

    /// A source using `client` as it is (its own retry settings stay in
    /// force, below the source's [`retry_policy`](Self::retry_policy)).
    pub fn from_client(
        client: aws_sdk_kinesis::Client,
        stream: impl Into<StreamTarget>,
        store: S,
    ) -> Self {
        Self {
            client,
            stream: stream.into(),
            store,
            config: SourceConfig::default(),
            leases: None,
            fan_out: None,
        }
    }

    /// Where shards without a checkpoint start. Default: `TrimHorizon`.
    pub fn initial_position(mut self, position: InitialPosition) -> Self {
        self.config.initial_position = position;
        self
    }

    /// Records asked for per `GetRecords` call (its `Limit`). Default and
    /// maximum: 10,000.
    ///
    /// # Panics
    ///
    /// When `limit` is 0 or above 10,000.
    #[track_caller]
    pub fn records_per_call(mut self, limit: u32) -> Self {
        assert!(
            (1..=MAX_GET_RECORDS_COUNT as u32).contains(&limit),
            "records_per_call must be in 1..=10000, got {limit}"
        );
        self.config.records_per_call = limit as i32;
        self
    }

    /// How long a shard waits before polling again after a `GetRecords`
    /// call returned no records. Default: 1 s. Never shorter than the call
    /// rate allows.
    pub fn idle_interval(mut self, interval: Duration) -> Self {
        self.config.idle_interval = interval;
        self
    }

    /// `GetRecords` calls per shard per second. Default and maximum: 5, the
    /// Kinesis limit.
    ///
    /// # Panics
    ///
    /// When `calls` is 0 or above 5.
    #[track_caller]
    pub fn max_calls_per_second(mut self, calls: u32) -> Self {
        assert!(
            (1..=MAX_GET_RECORDS_CALLS_PER_SEC).contains(&calls),
            "max_calls_per_second must be in 1..=5, got {calls}"
        );
        self.config.min_call_interval = Duration::from_secs(1) / calls;
        self
    }

    /// `GetRecords` responses each shard may buffer ahead of the consumer.
    /// Default: 1 (with one more being handed out, at most two responses —
    /// 2 × `records_per_call` records — per shard are in memory).
    ///
    /// # Panics
    ///
    /// When `batches` is 0.
    #[track_caller]
    pub fn prefetch_batches(mut self, batches: usize) -> Self {
        assert!(batches >= 1, "prefetch_batches must be at least 1");
        self.config.prefetch_batches = batches;
        self
    }

    /// How often the shard list is refreshed to find shards created by
    /// resharding. Default: 60 s. A shard that ends triggers a refresh at
    /// once.
    pub fn shard_refresh_interval(mut self, interval: Duration) -> Self {
        self.config.shard_refresh_interval = interval;
        self
    }

    /// Retries of transient failures (network, timeouts, 5xx). Default:
    /// [`RetryPolicy::default`].
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Limit on each `GetRecords`, `GetShardIterator` and `ListShards` call
    /// (default 30 s); a call that takes longer is abandoned and retried
    /// as a transient failure (per the [`retry_policy`](Self::retry_policy)).
    /// `None` waits as long as the SDK client does — without an operation
    /// timeout in its `SdkConfig`, forever, on a connection that went
    /// silent, and the shard is not read meanwhile.
    ///
    /// A `GetRecords` answer carries up to 10 MiB, hence a limit above the
    /// sink's; an abandoned read only costs the call (the same iterator is
    /// used again). With enhanced fan-out it limits the `SubscribeToShard`
    /// call up to the subscription's start and the end-of-shard checks, not
    /// the wait for the subscription's events, nor the consumer
    /// registration calls at start-up.
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Backoff while throttled. Attempts are not limited whatever the
    /// policy says: throttling is waited out. Default: 200 ms doubling to
    /// 5 s, with jitter.
    pub fn throttle_backoff(mut self, policy: RetryPolicy) -> Self {
        self.config.throttle_backoff = policy;
        self
    }

    /// Reads every shard by enhanced fan-out (`SubscribeToShard`) as the
    /// registered consumer `fan_out` names, registering it if needed,
    /// instead of polling. See [`fan_out`] for what it guarantees and
    /// needs. Default: polling.
    pub fn enhanced_fan_out(mut self, fan_out: EnhancedFanOut) -> Self {
        self.fan_out = Some(fan_out);
        self
    }

    /// For batch jobs: end the stream once it is caught up, that is, once
    /// every shard read is at the tip of the stream (its last `GetRecords`
    /// response had no records and `MillisBehindLatest` 0), every record
    /// fetched has been yielded, and nothing changed for `idle` (no record,
    /// no shard started or ended). The pipeline then ends as usual:
    /// `checkpoint_batched` saves the final positions. Records put while the
    /// job runs are read as long as they arrive before it is caught up.
    /// Default: off, the stream never ends by itself.
    pub fn stop_when_caught_up(mut self, idle: Duration) -> Self {
        self.config.caught_up_after = Some(idle);
        self
    }

    /// The merged stream of every shard's records. Reading starts when it is
    /// first polled, which must happen inside a Tokio runtime; dropping it
    /// stops every shard task.
    pub fn stream(self) -> KinesisStream {
        let fan_out = self
            .fan_out
            .map(|settings| Arc::new(FanOutConsumer::new(settings, self.client.clone())));
        let shared = Arc::new(SourceShared {
            fan_out,
            client: self.client,
            stream: self.stream,
            store: self.store,
            config: self.config,
            leases: self.leases,
        });
        let caught_up = shared
            .config
            .caught_up_after
            .map(caught_up::CaughtUpWatch::new);
        KinesisStream::new(
            caught_up,
            Box::new(move |out| match shared.leases.clone() {
                Some(driver) => {
                    tokio::spawn(leased::LeasedCoordinator::new(shared, driver, out).run())
                }
                None => tokio::spawn(lineage::Coordinator::new(shared, out).run()),
            }),
        )
    }
}

impl<T: LeaseTable> KinesisSource<LeaseCheckpointStore<T>> {
    /// A source reading the shards whose leases `worker` holds, with a
    /// client built from `sdk_config`: several workers on one lease table
    /// share the stream's shards (see [`crate::lease`]). Checkpoint with
    /// `worker.checkpoint_store()`; stop with `worker.shutdown()`, and the
    /// stream ends once every shard is handed back.
    pub fn leased(
        sdk_config: &aws_config::SdkConfig,
        stream: impl Into<StreamTarget>,
        worker: LeaseWorker<T>,
    ) -> Self {
        Self::leased_from_client(crate::aws::clients::kinesis(sdk_config), stream, worker)
    }

    /// A leased source using an existing client; see [`leased`](Self::leased).
    pub fn leased_from_client(
        client: aws_sdk_kinesis::Client,
        stream: impl Into<StreamTarget>,
        worker: LeaseWorker<T>,
    ) -> Self {
        let store = worker.checkpoint_store();
        let mut source = Self::from_client(client, stream, store);
        source.leases = Some(Arc::new(worker));
        source
    }
}

/// What the coordinator and the shard tasks share.
pub(crate) struct SourceShared<S> {
    pub(crate) client: aws_sdk_kinesis::Client,
    pub(crate) stream: StreamTarget,
    pub(crate) store: S,
    pub(crate) config: SourceConfig,
    /// The lease worker, in leased mode.
    pub(crate) leases: Option<Arc<dyn LeaseDriver>>,
    /// The registered consumer, with enhanced fan-out.
    pub(crate) fan_out: Option<Arc<FanOutConsumer>>,
}

impl<S> SourceShared<S> {
    /// `"kinesis stream NAME shard ID"`, the target named in errors.
    pub(crate) fn target(&self, shard: &str) -> String {
        format!("{} shard {shard}", self.stream)
    }

    /// The stream in metrics labels and spans: its name, or its ARN.
    pub(crate) fn stream_label(&self) -> &str {
        self.stream.label_name()
    }
}

/// Items of the merged stream.
pub(crate) type Item = Result<(KinesisRecord, CheckpointToken), Error>;
