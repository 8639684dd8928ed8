//! A local Kinesis endpoint that behaves like the service where the
//! emulators do not: it answers after a network round trip and enforces
//! the per-shard write limits, for producer pacing and concurrency tests
//! and benches.
//!
//! [`KinesisStub::start`] listens on a free loopback port and speaks the
//! SDK's protocol (awsJson1.1 over plain HTTP/1.1, see `api.rs`):
//! `ListShards`, `DescribeStreamSummary`, `PutRecords` and `PutRecord` for
//! one provisioned stream of evenly split shards. Each request waits half a
//! round trip (plus a random jitter) before it *arrives* — where it is
//! counted against its shards' fixed one-second windows (`windows.rs`:
//! 1,000 records and 1 MiB per shard by default) — and half a round trip
//! (plus jitter) more before its answer leaves. Records over a window's
//! limits fail one by one with `ProvisionedThroughputExceededException`, as
//! Kinesis does. Per shard it counts accepted and throttled records and
//! accepted bytes, and can keep the accepted records to be read back.
//!
//! Time is `tokio::time`. [`KinesisStub::start`] serves real sockets, in
//! real time; [`KinesisStub::in_process`] answers the SDK client's requests
//! without a network (an HTTP client below the SDK hands them to the same
//! code), so a test on paused time sees the same windows, round trips and
//! throttling on a virtual clock, exactly and fast. It can also fail
//! records at random with a transient `InternalFailure`
//! ([`StubConfig::failing_records`]), and leave `PutRecords` calls
//! unanswered, before or after serving them
//! ([`StubConfig::stalled_puts`], [`StubConfig::lost_put_answers`]). It does not do resharding, reads,
//! TLS or authentication (any signature passes).

mod api;
mod http;
mod windows;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::Client;
use aws_smithy_runtime_api::client::http::HttpConnectorFuture;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use unistream::kinesis::KinesisRecord;

use windows::ShardWindow;
pub use windows::{Limits, WindowCount};

use super::super::http_client::AnsweringHttpClient;
use super::shard_id;

/// How the stub behaves.
#[derive(Debug, Clone)]
pub struct StubConfig {
    /// The stream's name.
    pub stream: String,
    /// Its shards, splitting the hash-key space evenly.
    pub shards: u32,
    /// The round trip added to every request (half before it arrives, half
    /// after).
    pub round_trip: Duration,
    /// Up to this much more, uniformly at random, on each half.
    pub jitter: Duration,
    /// Seed of the jitter.
    pub seed: u64,
    /// Per-shard limits per one-second window; `None`: unlimited.
    pub limits: Option<Limits>,
    /// Keep the accepted records (to read them back).
    pub keep_records: bool,
    /// The first this many `PutRecords` calls fail whole with HTTP 500
    /// `InternalFailure` (a transient failure every retry layer retries).
    pub failing_puts: u64,
    /// Records that arrive fail, each with this probability (from the
    /// seeded generator), with the per-record error `InternalFailure`
    /// (transient), before the limits are applied. 0: none.
    pub failing_records: f64,
    /// The next this many `PutRecords` calls never arrive: they hang
    /// before the stub reads them (a connection gone silent), so nothing
    /// of them is stored.
    pub stalled_puts: u64,
    /// The next this many `PutRecords` calls are served — their records
    /// stored or throttled as usual — but their answers never leave.
    pub lost_put_answers: u64,
}

impl StubConfig {
    /// `shards` shards with the Kinesis limits, instant answers, records
    /// kept.
    pub fn new(shards: u32) -> Self {
        Self {
            stream: "stub-stream".to_owned(),
            shards,
            round_trip: Duration::ZERO,
            jitter: Duration::ZERO,
            seed: 0,
            limits: Some(Limits {
                records: 1000,
                bytes: 1024 * 1024,
            }),
            keep_records: true,
            failing_puts: 0,
            failing_records: 0.0,
            stalled_puts: 0,
            lost_put_answers: 0,
        }
    }

    pub fn round_trip(mut self, round_trip: Duration, jitter: Duration, seed: u64) -> Self {
        self.round_trip = round_trip;
        self.jitter = jitter;
        self.seed = seed;
        self
    }

    pub fn unlimited(mut self) -> Self {
        self.limits = None;
        self
    }

    pub fn fail_put_records(mut self, calls: u64) -> Self {
        self.failing_puts = calls;
        self
    }

    pub fn fail_records(mut self, probability: f64) -> Self {
        self.failing_records = probability;
        self
    }

    pub fn stall_put_records(mut self, calls: u64) -> Self {
        self.stalled_puts = calls;
        self
    }

    pub fn lose_put_records_answers(mut self, calls: u64) -> Self {
        self.lost_put_answers = calls;
        self
    }

    pub fn keep_records(mut self, keep: bool) -> Self {
        self.keep_records = keep;
        self
    }
}

/// One shard of the stub.
pub(super) struct StubShard {
    pub(super) id: String,
    pub(super) start: u128,
    pub(super) end: u128,
    pub(super) window: ShardWindow,
    pub(super) accepted_records: u64,
    pub(super) accepted_bytes: u64,
    pub(super) throttled_records: u64,
    pub(super) stored: Vec<KinesisRecord>,
}

/// Everything the stub knows, behind one lock.
pub(super) struct StubState {
    pub(super) config: StubConfig,
    pub(super) epoch: Instant,
    pub(super) shards: Vec<StubShard>,
    pub(super) put_records_calls: u64,
    pub(super) list_shards_calls: u64,
    pub(super) failed_records: u64,
    pub(super) abandoned_requests: u64,
    pub(super) rng: fastrand::Rng,
}

/// What one shard took and refused so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub id: String,
    pub accepted_records: u64,
    pub accepted_bytes: u64,
    pub throttled_records: u64,
}

/// What the stub served so far.
#[derive(Debug, Clone, Default)]
pub struct StubStats {
    pub shards: Vec<ShardStats>,
    pub put_records_calls: u64,
    pub list_shards_calls: u64,
    /// Records failed on purpose ([`StubConfig::failing_records`]).
    pub failed_records: u64,
}

impl StubStats {
    pub fn accepted_records(&self) -> u64 {
        self.shards.iter().map(|s| s.accepted_records).sum()
    }

    pub fn accepted_bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.accepted_bytes).sum()
    }

    pub fn throttled_records(&self) -> u64 {
        self.shards.iter().map(|s| s.throttled_records).sum()
    }
}

/// A running stub; it stops when dropped.
pub struct KinesisStub {
    serving: Serving,
    state: Arc<Mutex<StubState>>,
}

/// Where the stub's requests come from.
enum Serving {
    /// A loopback port.
    Socket {
        addr: SocketAddr,
        server: JoinHandle<()>,
    },
    /// The HTTP client of [`KinesisStub::client`], in this process.
    InProcess,
}

fn even_ranges(count: u32) -> Vec<(u128, u128)> {
    let width = u128::MAX / u128::from(count);
    (0..count)
        .map(|i| {
            let start = width * u128::from(i);
            let end = if i + 1 == count {
                u128::MAX
            } else {
                start + width - 1
            };
            (start, end)
        })
        .collect()
}

impl KinesisStub {
    /// Starts a stub on a free loopback port (on the current runtime).
    pub async fn start(config: StubConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = new_state(config);
        let handler_state = state.clone();
        let server = tokio::spawn(http::serve(listener, move |request| {
            serve(handler_state.clone(), request)
        }));
        Ok(Self {
            serving: Serving::Socket { addr, server },
            state,
        })
    }

    /// A stub answering only the clients of [`Self::client`], in process
    /// (no socket; on paused time as well as real time). Its windows count
    /// from now.
    pub fn in_process(config: StubConfig) -> Self {
        Self {
            serving: Serving::InProcess,
            state: new_state(config),
        }
    }

    /// `http://127.0.0.1:PORT` (for an in-process stub, an address nothing
    /// listens on: use [`Self::client`]).
    pub fn endpoint(&self) -> String {
        match &self.serving {
            Serving::Socket { addr, .. } => format!("http://{addr}"),
            Serving::InProcess => "http://127.0.0.1:9".to_owned(),
        }
    }

    /// The stream's name.
    pub fn stream(&self) -> String {
        lock(&self.state).config.stream.clone()
    }

    /// A real SDK client for the stub: static credentials, the SDK's
    /// standard retries (as a user has them).
    pub fn client(&self) -> Client {
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .endpoint_url(self.endpoint());
        let config = match self.serving {
            Serving::Socket { .. } => config,
            Serving::InProcess => config.http_client(self.in_process_http_client()),
        };
        Client::from_conf(config.build())
    }

    /// An HTTP client handing every request to [`serve`].
    fn in_process_http_client(&self) -> AnsweringHttpClient {
        let state = self.state.clone();
        AnsweringHttpClient::new(move |request| {
            let request = http::Request {
                headers: request
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
                    .collect(),
                body: request.body().bytes().unwrap_or_default().to_vec(),
            };
            let state = state.clone();
            HttpConnectorFuture::new(async move {
                let pending = Abandoned(Some(state.clone()));
                let response = serve(state, request).await;
                pending.answered();
                Ok(HttpResponse::new(
                    StatusCode::try_from(response.status).expect("a valid status"),
                    SdkBody::from(response.body),
                ))
            })
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> StubStats {
        let state = lock(&self.state);
        StubStats {
            shards: state
                .shards
                .iter()
                .map(|s| ShardStats {
                    id: s.id.clone(),
                    accepted_records: s.accepted_records,
                    accepted_bytes: s.accepted_bytes,
                    throttled_records: s.throttled_records,
                })
                .collect(),
            put_records_calls: state.put_records_calls,
            list_shards_calls: state.list_shards_calls,
            failed_records: state.failed_records,
        }
    }

    /// Per shard, what each one-second window that saw an arrival took
    /// and refused, in window order.
    pub fn windows_by_shard(&self) -> Vec<(String, Vec<WindowCount>)> {
        lock(&self.state)
            .shards
            .iter()
            .map(|s| (s.id.clone(), s.window.counts()))
            .collect()
    }

    /// The accepted records of each shard, in arrival order (when kept).
    pub fn stored_by_shard(&self) -> Vec<(String, Vec<KinesisRecord>)> {
        lock(&self.state)
            .shards
            .iter()
            .map(|s| (s.id.clone(), s.stored.clone()))
            .collect()
    }

    /// From now on, records fail with this probability
    /// ([`StubConfig::failing_records`]).
    pub fn set_failing_records(&self, probability: f64) {
        lock(&self.state).config.failing_records = probability;
    }

    /// Requests whose client gave up on them before the answer (the future
    /// answering them was dropped), in process only.
    pub fn abandoned_requests(&self) -> u64 {
        lock(&self.state).abandoned_requests
    }

    /// Zeroes the counters and forgets the kept records (the windows stay).
    pub fn reset_counters(&self) {
        let mut state = lock(&self.state);
        state.put_records_calls = 0;
        state.list_shards_calls = 0;
        state.failed_records = 0;
        state.abandoned_requests = 0;
        for shard in &mut state.shards {
            shard.accepted_records = 0;
            shard.accepted_bytes = 0;
            shard.throttled_records = 0;
            shard.stored.clear();
        }
    }
}

impl Drop for KinesisStub {
    fn drop(&mut self) {
        if let Serving::Socket { server, .. } = &self.serving {
            server.abort();
        }
    }
}

/// Counts its request as abandoned when dropped before [`Self::answered`].
struct Abandoned(Option<Arc<Mutex<StubState>>>);

impl Abandoned {
    fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            lock(&state).abandoned_requests += 1;
        }
    }
}

fn new_state(config: StubConfig) -> Arc<Mutex<StubState>> {
    let shards = even_ranges(config.shards.max(1))
        .into_iter()
        .enumerate()
        .map(|(i, (start, end))| StubShard {
            id: shard_id(i),
            start,
            end,
            window: ShardWindow::default(),
            accepted_records: 0,
            accepted_bytes: 0,
            throttled_records: 0,
            stored: Vec::new(),
        })
        .collect();
    Arc::new(Mutex::new(StubState {
        rng: fastrand::Rng::with_seed(config.seed),
        config,
        epoch: Instant::now(),
        shards,
        put_records_calls: 0,
        list_shards_calls: 0,
        failed_records: 0,
        abandoned_requests: 0,
    }))
}

/// One request: half a round trip in, the answer on arrival, half a round
/// trip out.
async fn serve(state: Arc<Mutex<StubState>>, request: http::Request) -> http::Response {
    let put = request
        .header("x-amz-target")
        .is_some_and(|target| target.ends_with(".PutRecords"));
    if put && take_one(&state, |config| &mut config.stalled_puts) {
        std::future::pending::<()>().await;
    }
    let inbound = half_trip(&state);
    if !inbound.is_zero() {
        tokio::time::sleep(inbound).await;
    }
    let response = {
        let mut state = lock(&state);
        api::answer(&mut state, &request, Instant::now())
    };
    if put && take_one(&state, |config| &mut config.lost_put_answers) {
        std::future::pending::<()>().await;
    }
    let outbound = half_trip(&state);
    if !outbound.is_zero() {
        tokio::time::sleep(outbound).await;
    }
    response
}

/// Counts down one of the config's counters; `true` if it was above 0.
fn take_one(state: &Mutex<StubState>, counter: impl Fn(&mut StubConfig) -> &mut u64) -> bool {
    let mut state = lock(state);
    let left = counter(&mut state.config);
    if *left == 0 {
        return false;
    }
    *left -= 1;
    true
}

fn lock(state: &Mutex<StubState>) -> MutexGuard<'_, StubState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Half the round trip plus this half's jitter.
fn half_trip(state: &Mutex<StubState>) -> Duration {
    let mut state = lock(state);
    let half = state.config.round_trip / 2;
    let jitter = state.config.jitter;
    if jitter.is_zero() {
        return half;
    }
    half + jitter.mul_f64(state.rng.f64())
}
