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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_cloudwatchlogs::config::http::HttpResponse;
use aws_sdk_cloudwatchlogs::config::retry::RetryConfig;
use aws_sdk_cloudwatchlogs::error::SdkError;
use aws_sdk_cloudwatchlogs::operation::put_log_events::{PutLogEventsError, PutLogEventsOutput};
use aws_sdk_cloudwatchlogs::types::{InputLogEvent, RejectedLogEventsInfo};
use aws_sdk_cloudwatchlogs::Client;
use futures::Sink;
use tokio::sync::Mutex;

use super::batcher::Batcher;
use super::event::LogEvent;
use super::limits::{
    MAX_EVENT_AGE, MAX_LOG_GROUP_NAME_CHARS, MAX_LOG_STREAM_NAME_CHARS, RETENTION_DAYS,
};
use crate::error::{BoxError, Error, RejectedRecord};
use crate::retry::RetryPolicy;

/// How many `InvalidSequenceTokenException`s in a row one request may answer
/// with the expected token before it counts as a failure. Each is a protocol
/// step, not a fault, so they do not use up the retry policy's attempts.
const MAX_SEQUENCE_TOKEN_REFRESHES: u32 = 5;

/// How many events of one request may be refused one by one as invalid
/// (after halving the request) before the sink concludes that the request,
/// not the events, is at fault and fails the batch instead. Bounds the
/// halving to about `2 * 16 * log2(10,000)` ≈ 430 calls.
const MAX_INVALID_EVENTS_ISOLATED: usize = 16;

/// Default limit on one `PutLogEvents` call, including the SDK's own work.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;
type Delivery = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// A `Sink<Vec<LogEvent>>` writing to one CloudWatch Logs log stream.
///
/// Build it with [`CloudWatchLogsSink::builder`] (from an `SdkConfig`) or
/// [`CloudWatchLogsSink::builder_with_client`]; make it durable and batched
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
    in_flight: Option<Delivery>,
}

/// Options of a [`CloudWatchLogsSink`]; see [`CloudWatchLogsSink::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct CloudWatchLogsSinkBuilder {
    client: Client,
    group: String,
    stream: String,
    create_missing: bool,
    retention_days: Option<i32>,
    retry: RetryPolicy,
    request_timeout: Option<Duration>,
    batcher: Batcher,
    clock: Clock,
}

/// What a sink writes with: its client, destination and options, and the
/// log stream's state. Shared (`Arc`) between the sink and the delivery
/// future of the batch in flight.
struct LogStreamWriter {
    client: Client,
    group: String,
    stream: String,
    /// "cloudwatch logs GROUP/STREAM", for errors.
    target: String,
    create_missing: bool,
    retention_days: Option<i32>,
    retry: RetryPolicy,
    request_timeout: Option<Duration>,
    batcher: Batcher,
    clock: Clock,
    /// Held for the whole of a batch: one request in flight at a time.
    log_stream_state: Mutex<LogStreamState>,
}

/// What the sink knows about its log stream between requests.
#[derive(Default)]
struct LogStreamState {
    /// The token the endpoint expects next (always `None` against current
    /// AWS, which neither returns nor checks tokens).
    sequence_token: Option<String>,
    /// Group, stream and retention are set up.
    destination_ready: bool,
}

impl CloudWatchLogsSink {
    /// Options for a sink writing to `group`/`stream`, with a client built
    /// from `config`. The SDK's retries are disabled: the sink retries by its
    /// own [`RetryPolicy`].
    pub fn builder(
        config: &SdkConfig,
        group: impl Into<String>,
        stream: impl Into<String>,
    ) -> CloudWatchLogsSinkBuilder {
        let conf = aws_sdk_cloudwatchlogs::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .build();
        Self::builder_with_client(Client::from_conf(conf), group, stream)
    }

    /// Options for a sink writing to `group`/`stream` through `client`
    /// (whose own retry settings stay in force, under the sink's policy).
    pub fn builder_with_client(
        client: Client,
        group: impl Into<String>,
        stream: impl Into<String>,
    ) -> CloudWatchLogsSinkBuilder {
        CloudWatchLogsSinkBuilder {
            client,
            group: group.into(),
            stream: stream.into(),
            create_missing: false,
            retention_days: None,
            retry: RetryPolicy::default(),
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            batcher: Batcher::default(),
            clock: Arc::new(SystemTime::now),
        }
    }

    /// A sink with default options (group and stream must exist).
    pub fn new(
        config: &SdkConfig,
        group: impl Into<String>,
        stream: impl Into<String>,
    ) -> Result<Self, Error> {
        Self::builder(config, group, stream).build()
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

impl CloudWatchLogsSinkBuilder {
    /// Creates the log group and the log stream when they do not exist
    /// (default: off). Also recreates the stream if it disappears.
    pub fn create_missing(mut self, create: bool) -> Self {
        self.create_missing = create;
        self
    }

    /// Sets the log group's retention (`PutRetentionPolicy`), in days; one
    /// of [`RETENTION_DAYS`]. A retention shorter than 14 days also becomes
    /// the age limit of events.
    pub fn retention_days(mut self, days: i32) -> Self {
        self.retention_days = Some(days);
        self
    }

    /// How requests that fail with a retryable error are retried (default:
    /// [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Limit on each `PutLogEvents` call (default 30 s); a call that takes
    /// longer is abandoned and retried. `None` waits forever.
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The request builder, for stricter limits (default: the service's).
    pub fn batcher(mut self, batcher: Batcher) -> Self {
        self.batcher = batcher;
        self
    }

    /// The clock events' ages are checked against (default: the system
    /// clock). For tests, and for hosts that know their clock's skew.
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the names and the retention and builds the sink. Nothing is
    /// sent until the first batch (or [`CloudWatchLogsSink::prepare`]).
    pub fn build(self) -> Result<CloudWatchLogsSink, Error> {
        check_group_name(&self.group)?;
        check_stream_name(&self.stream)?;
        let mut batcher = self.batcher;
        if let Some(days) = self.retention_days {
            if !RETENTION_DAYS.contains(&days) {
                return Err(Error::Config(format!(
                    "log group retention of {days} days is not one CloudWatch Logs accepts \
                     ({RETENTION_DAYS:?})"
                )));
            }
            // Events older than the retention come back as expired: do not
            // send them at all.
            let retention = Duration::from_secs(u64::from(days.unsigned_abs()) * 86_400);
            if retention < MAX_EVENT_AGE {
                let age = retention.min(batcher.age_limit());
                batcher = batcher.max_age(age);
            }
        }
        let target = format!("cloudwatch logs {}/{}", self.group, self.stream);
        Ok(CloudWatchLogsSink {
            writer: Arc::new(LogStreamWriter {
                client: self.client,
                group: self.group,
                stream: self.stream,
                target,
                create_missing: self.create_missing,
                retention_days: self.retention_days,
                retry: self.retry,
                request_timeout: self.request_timeout,
                batcher,
                clock: self.clock,
                log_stream_state: Mutex::new(LogStreamState::default()),
            }),
            in_flight: None,
        })
    }
}

fn check_group_name(name: &str) -> Result<(), Error> {
    let chars = name.chars().count();
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#'));
    if chars == 0 || chars > MAX_LOG_GROUP_NAME_CHARS || !valid_chars {
        return Err(Error::Config(format!(
            "invalid log group name {name:?}: 1 to {MAX_LOG_GROUP_NAME_CHARS} characters \
             from a-z A-Z 0-9 . - _ / #"
        )));
    }
    Ok(())
}

fn check_stream_name(name: &str) -> Result<(), Error> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_LOG_STREAM_NAME_CHARS || name.contains([':', '*']) {
        return Err(Error::Config(format!(
            "invalid log stream name {name:?}: 1 to {MAX_LOG_STREAM_NAME_CHARS} characters, \
             no ':' or '*'"
        )));
    }
    Ok(())
}

/// What became of one `PutLogEvents` request.
enum PutLogEventsOutcome {
    /// Stored, except what `rejectedLogEventsInfo` names.
    Delivered(Option<RejectedLogEventsInfo>),
    /// Refused whole with `InvalidParameterException` (the message).
    Invalid(String),
}

/// A failed `PutLogEvents` call, classified.
enum PutFailure {
    /// Worth another attempt after a backoff.
    Retryable(BoxError),
    /// Retrying the same request cannot help.
    Permanent(BoxError),
}

impl LogStreamWriter {
    async fn deliver(self: Arc<Self>, batch: Vec<LogEvent>) -> Result<(), Error> {
        let mut plan = self.batcher.plan(&batch, (self.clock)());
        let mut rejected = plan.take_rejected();
        if plan.request_count() > 0 {
            let mut state = self.log_stream_state.lock().await;
            if !state.destination_ready {
                self.prepare(&mut state).await?;
            }
            for request in plan.requests() {
                self.put_request(&mut state, &batch, request, &mut rejected)
                    .await?;
            }
        }
        if rejected.is_empty() {
            return Ok(());
        }
        // An event can be named twice (e.g. both expired and too old).
        rejected.sort_by_key(|r| r.index);
        rejected.dedup_by_key(|r| r.index);
        tracing::warn!(
            target_name = %self.target,
            rejected = rejected.len(),
            first = %rejected[0],
            "log events rejected permanently"
        );
        Err(Error::Rejected(rejected))
    }

    /// Sends the events of `request` (batch indices in send order). A part
    /// refused whole as invalid is halved until the invalid events are
    /// alone, so that only they are rejected.
    async fn put_request(
        &self,
        state: &mut LogStreamState,
        batch: &[LogEvent],
        request: &[usize],
        rejected: &mut Vec<RejectedRecord>,
    ) -> Result<(), Error> {
        // Last in, first out: the first half is pushed last so that parts go
        // out in timestamp order.
        let mut work = vec![request];
        let mut invalid_alone = 0;
        while let Some(part) = work.pop() {
            match self.put_with_retry(state, batch, part).await? {
                PutLogEventsOutcome::Delivered(None) => {}
                PutLogEventsOutcome::Delivered(Some(info)) => {
                    map_rejected_info(&info, part, rejected)
                }
                PutLogEventsOutcome::Invalid(message) if part.len() == 1 => {
                    invalid_alone += 1;
                    if invalid_alone > MAX_INVALID_EVENTS_ISOLATED {
                        // So many events refused alone smells of a problem
                        // with the request itself, not with the events:
                        // fail the batch rather than dead-letter all of it.
                        return Err(Error::target(
                            &self.target,
                            format!(
                                "more than {MAX_INVALID_EVENTS_ISOLATED} events of one request \
                                 refused one by one with InvalidParameterException: {message}"
                            ),
                        ));
                    }
                    rejected.push(RejectedRecord::new(
                        part[0],
                        format!(
                            "rejected by CloudWatch Logs: InvalidParameterException: {message}"
                        ),
                    ));
                }
                PutLogEventsOutcome::Invalid(message) => {
                    tracing::debug!(
                        target_name = %self.target,
                        events = part.len(),
                        %message,
                        "request refused as invalid; halving it to find the invalid events"
                    );
                    let (first, second) = part.split_at(part.len() / 2);
                    work.push(second);
                    work.push(first);
                }
            }
        }
        Ok(())
    }

    async fn put_with_retry(
        &self,
        state: &mut LogStreamState,
        batch: &[LogEvent],
        part: &[usize],
    ) -> Result<PutLogEventsOutcome, Error> {
        let mut attempts = 0u32;
        let mut token_refreshes = 0u32;
        loop {
            attempts += 1;
            // Built afresh for each attempt (the SDK consumes its input):
            // one copy of the messages per attempt, none kept in between.
            let events = part
                .iter()
                .map(|&i| {
                    InputLogEvent::builder()
                        .timestamp(batch[i].timestamp)
                        .message(batch[i].message.clone())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::target(&self.target, e))?;
            let call = self
                .client
                .put_log_events()
                .log_group_name(&self.group)
                .log_stream_name(&self.stream)
                .set_log_events(Some(events))
                .set_sequence_token(state.sequence_token.clone())
                .send();
            let result = match self.request_timeout {
                Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| {
                    PutFailure::Retryable(
                        format!("PutLogEvents timed out after {limit:?} (request_timeout)").into(),
                    )
                }),
                None => Ok(call.await),
            };
            let failure = match result {
                Ok(Ok(output)) => return Ok(self.delivered(state, output)),
                Ok(Err(err)) => match err.as_service_error() {
                    Some(PutLogEventsError::DataAlreadyAcceptedException(e)) => {
                        // An older endpoint saw this request before (a retry
                        // after a lost response): it is stored.
                        state.sequence_token = e.expected_sequence_token().map(str::to_owned);
                        return Ok(PutLogEventsOutcome::Delivered(None));
                    }
                    Some(PutLogEventsError::InvalidSequenceTokenException(e))
                        if token_refreshes < MAX_SEQUENCE_TOKEN_REFRESHES =>
                    {
                        state.sequence_token = e.expected_sequence_token().map(str::to_owned);
                        token_refreshes += 1;
                        attempts -= 1; // a protocol step, not a failed attempt
                        continue;
                    }
                    Some(PutLogEventsError::InvalidParameterException(e)) => {
                        return Ok(PutLogEventsOutcome::Invalid(
                            e.message().unwrap_or("no message").to_owned(),
                        ));
                    }
                    Some(PutLogEventsError::ResourceNotFoundException(_))
                        if self.create_missing =>
                    {
                        // The stream (or group) went away: set it up again.
                        state.destination_ready = false;
                        self.prepare(state).await?;
                        PutFailure::Retryable(Box::new(err))
                    }
                    _ => classify(err),
                },
                Err(timeout) => timeout,
            };
            match failure {
                PutFailure::Permanent(source) => {
                    return Err(Error::target(&self.target, source));
                }
                PutFailure::Retryable(source) if !self.retry.allows_another(attempts) => {
                    return Err(Error::target(
                        &self.target,
                        RetriesExhausted { attempts, source },
                    ));
                }
                PutFailure::Retryable(source) => {
                    let delay = self.retry.backoff(attempts - 1);
                    tracing::debug!(
                        target_name = %self.target,
                        attempts,
                        ?delay,
                        error = %source,
                        "PutLogEvents failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn delivered(
        &self,
        state: &mut LogStreamState,
        output: PutLogEventsOutput,
    ) -> PutLogEventsOutcome {
        if let Some(token) = output.next_sequence_token {
            state.sequence_token = Some(token);
        }
        PutLogEventsOutcome::Delivered(output.rejected_log_events_info)
    }

    async fn prepare(&self, state: &mut LogStreamState) -> Result<(), Error> {
        if self.create_missing {
            let created = self
                .client
                .create_log_group()
                .log_group_name(&self.group)
                .send()
                .await;
            match created {
                Ok(_) => tracing::info!(group = %self.group, "created log group"),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_already_exists_exception()) => {}
                Err(e) => return Err(self.setup_error("CreateLogGroup", e)),
            }
            let created = self
                .client
                .create_log_stream()
                .log_group_name(&self.group)
                .log_stream_name(&self.stream)
                .send()
                .await;
            match created {
                Ok(_) => tracing::info!(target_name = %self.target, "created log stream"),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_already_exists_exception()) => {}
                Err(e) => return Err(self.setup_error("CreateLogStream", e)),
            }
        }
        if let Some(days) = self.retention_days {
            self.client
                .put_retention_policy()
                .log_group_name(&self.group)
                .retention_in_days(days)
                .send()
                .await
                .map_err(|e| self.setup_error("PutRetentionPolicy", e))?;
        }
        state.destination_ready = true;
        Ok(())
    }

    fn setup_error<E, R>(&self, operation: &'static str, err: SdkError<E, R>) -> Error
    where
        E: std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        Error::target(
            &self.target,
            SetupFailed {
                operation,
                source: Box::new(err),
            },
        )
    }
}

/// Classifies a failed `PutLogEvents` call that has no special handling:
/// the modeled `ServiceUnavailableException` first (it need not carry a
/// code), then the crate-wide rule (`crate::aws_failure`). Throttled and
/// transient failures are retried, permanent ones fail the batch.
fn classify(err: SdkError<PutLogEventsError, HttpResponse>) -> PutFailure {
    let modeled_unavailable = err
        .as_service_error()
        .is_some_and(|e| e.is_service_unavailable_exception());
    if !modeled_unavailable && crate::aws_failure::classify_sdk_error(&err).is_permanent() {
        PutFailure::Permanent(Box::new(err))
    } else {
        PutFailure::Retryable(Box::new(err))
    }
}

/// Adds the events `info` names to `rejected`, mapping positions in `part`
/// (the request as sent) back to batch indices.
///
/// `tooNewLogEventStartIndex` is an inclusive start. The two end indices
/// are documented as exclusive but described as "the index of the last log
/// event that is too old", and emulators (moto) return the last rejected
/// event's index. Reading them as inclusive can only dead-letter one event
/// that was in fact stored (a duplicate); reading them as exclusive could
/// lose one silently. So they are read as inclusive.
fn map_rejected_info(
    info: &RejectedLogEventsInfo,
    part: &[usize],
    rejected: &mut Vec<RejectedRecord>,
) {
    let len = part.len();
    // Clamped into 0..=len; a negative index names nothing.
    let position = |i: i32| usize::try_from(i).map(|i| i.min(len)).ok();
    let mut reject = |positions: std::ops::Range<usize>, reason: &str| {
        rejected.extend(
            part[positions]
                .iter()
                .map(|&index| RejectedRecord::new(index, reason)),
        );
    };
    if let Some(last) = info.expired_log_event_end_index().and_then(position) {
        reject(
            0..(last + 1).min(len),
            "expired: older than the log group's retention, rejected by CloudWatch Logs \
             (rejectedLogEventsInfo.expiredLogEventEndIndex)",
        );
    }
    if let Some(last) = info.too_old_log_event_end_index().and_then(position) {
        reject(
            0..(last + 1).min(len),
            "too old: rejected by CloudWatch Logs (rejectedLogEventsInfo.tooOldLogEventEndIndex)",
        );
    }
    if let Some(first) = info.too_new_log_event_start_index() {
        let first = usize::try_from(first).unwrap_or(0).min(len);
        reject(
            first..len,
            "too new: rejected by CloudWatch Logs (rejectedLogEventsInfo.tooNewLogEventStartIndex)",
        );
    }
}

/// The last error of a request that used up its attempts.
#[derive(Debug, thiserror::Error)]
#[error("PutLogEvents failed after {attempts} attempt(s): {source}")]
struct RetriesExhausted {
    attempts: u32,
    #[source]
    source: BoxError,
}

/// A failed setup call (create group or stream, set retention).
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {source}")]
struct SetupFailed {
    operation: &'static str,
    #[source]
    source: BoxError,
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

impl fmt::Debug for CloudWatchLogsSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudWatchLogsSinkBuilder")
            .field("group", &self.group)
            .field("stream", &self.stream)
            .field("create_missing", &self.create_missing)
            .field("retention_days", &self.retention_days)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("batcher", &self.batcher)
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
            self.in_flight = Some(Box::pin(self.writer.clone().deliver(batch)));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn info(old: Option<i32>, new: Option<i32>, expired: Option<i32>) -> RejectedLogEventsInfo {
        RejectedLogEventsInfo::builder()
            .set_too_old_log_event_end_index(old)
            .set_too_new_log_event_start_index(new)
            .set_expired_log_event_end_index(expired)
            .build()
    }

    #[test]
    fn rejected_info_maps_positions_back_to_batch_indices() {
        // The request as sent: batch indices in timestamp order.
        let part = [7, 3, 9, 0, 5];
        let mut rejected = Vec::new();
        map_rejected_info(&info(Some(1), Some(4), None), &part, &mut rejected);
        let indices: Vec<_> = rejected.iter().map(|r| r.index).collect();
        assert_eq!(indices, vec![7, 3, 5]);
        assert!(rejected[0].reason.starts_with("too old"));
        assert!(rejected[1].reason.starts_with("too old"));
        assert!(rejected[2].reason.starts_with("too new"));
    }

    #[test]
    fn rejected_info_end_indices_are_read_inclusively() {
        // moto answers one too-old event at position 0 with end index 0.
        let mut rejected = Vec::new();
        map_rejected_info(&info(Some(0), None, None), &[4, 2], &mut rejected);
        assert_eq!(
            rejected,
            vec![RejectedRecord::new(4, rejected[0].reason.clone())]
        );
    }

    #[test]
    fn rejected_info_out_of_range_is_clamped() {
        let part = [1, 2];
        let mut rejected = Vec::new();
        map_rejected_info(&info(Some(-3), Some(99), Some(99)), &part, &mut rejected);
        let indices: Vec<_> = rejected.iter().map(|r| r.index).collect();
        assert_eq!(indices, vec![1, 2], "expired covers all; old and new none");
        assert!(rejected.iter().all(|r| r.reason.starts_with("expired")));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_group_name("/aws/lambda/my-fn_1.#").is_ok());
        assert!(check_group_name("").is_err());
        assert!(check_group_name("bad group").is_err());
        assert!(check_group_name(&"g".repeat(513)).is_err());
        assert!(check_stream_name("2024/01/01/[$LATEST]abc").is_ok());
        assert!(check_stream_name("a:b").is_err());
        assert!(check_stream_name("a*").is_err());
        assert!(check_stream_name("").is_err());
    }
}
