//! [`CloudWatchLogsSinkBuilder`]: the options of a
//! [`CloudWatchLogsSink`], checked when it is built.
//!
//! # Guarantees
//!
//! - [`build`](CloudWatchLogsSinkBuilder::build) fails with
//!   [`Error::Config`], before anything is sent, on a log group or stream
//!   name the service cannot accept (see [`names`](super::names)) or a
//!   retention that `PutRetentionPolicy` does not accept.
//! - A retention shorter than the service's age limit
//!   ([`MAX_EVENT_AGE`]) lowers the batcher's age limit to it, never raises
//!   it, so that events the service would drop as expired are rejected
//!   before they are sent.
//! - Defaults: group and stream must exist, retention left as it is,
//!   [`RetryPolicy::default`], a 30 s limit on each call, the service's
//!   limits ([`Batcher::default`]), the system clock.
//!
//! # Not guaranteed
//!
//! `build` does no I/O: whether the group and stream exist, and whether the
//! credentials may write to them, is found out by the first batch or by
//! [`CloudWatchLogsSink::prepare`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatchlogs::Client;
use tokio::sync::Mutex;

use super::names::{check_group_name, check_stream_name};
use super::writer::{Clock, LogStreamState, LogStreamWriter};
use super::CloudWatchLogsSink;
use crate::cloudwatch_logs::batcher::Batcher;
use crate::cloudwatch_logs::limits::{MAX_EVENT_AGE, RETENTION_DAYS};
use crate::error::Error;
use crate::observe::cloudwatch_logs::CloudWatchLogsMetrics;
use crate::retry::RetryPolicy;

/// Default limit on one `PutLogEvents` call, including the SDK's own work.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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

impl CloudWatchLogsSinkBuilder {
    /// The default options for writing to `group`/`stream` through `client`.
    pub(super) fn new(client: Client, group: String, stream: String) -> Self {
        Self {
            client,
            group,
            stream,
            create_missing: false,
            retention_days: None,
            retry: RetryPolicy::default(),
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            batcher: Batcher::default(),
            clock: Arc::new(SystemTime::now),
        }
    }

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
        let metrics = CloudWatchLogsMetrics::new(&self.group, &self.stream);
        Ok(CloudWatchLogsSink::from_writer(LogStreamWriter {
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
            metrics,
        }))
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
