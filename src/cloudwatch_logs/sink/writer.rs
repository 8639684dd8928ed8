//! [`LogStreamWriter`]: what a [`CloudWatchLogsSink`](super::CloudWatchLogsSink)
//! writes with, and the delivery of one batch through it.
//!
//! # Guarantees
//!
//! - One batch at a time: the log stream's state is locked for the whole of
//!   a batch, so no two requests of one writer are ever in flight together.
//! - A batch is planned by the writer's [`Batcher`] against the writer's
//!   clock; the destination is set up (when it is not yet) before the first
//!   request; the requests go out in the plan's order.
//! - Every event the plan or the service rejected is reported once, in index
//!   order, through [`Error::Rejected`], and only after all the other events
//!   of the batch were delivered.
//!
//! # Not guaranteed
//!
//! - A batch that fails part way (with any error but [`Error::Rejected`]) is
//!   failed whole: the requests already delivered are sent again with it.
//! - A batch whose events are all rejected by the plan sends nothing and
//!   leaves the destination as it is (not set up yet, maybe).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatchlogs::Client;
use tokio::sync::Mutex;

use super::rejected::sort_and_dedup;
use crate::cloudwatch_logs::batcher::Batcher;
use crate::cloudwatch_logs::event::LogEvent;
use crate::error::Error;
use crate::observe::cloudwatch_logs::CloudWatchLogsMetrics;
use crate::retry::RetryPolicy;

/// The clock events' ages are checked against.
pub(super) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What a sink writes with: its client, destination and options, and the
/// log stream's state. Shared (`Arc`) between the sink and the delivery
/// future of the batch in flight.
pub(super) struct LogStreamWriter {
    pub(super) client: Client,
    pub(super) group: String,
    pub(super) stream: String,
    /// "cloudwatch logs GROUP/STREAM", for errors.
    pub(super) target: String,
    pub(super) create_missing: bool,
    pub(super) retention_days: Option<i32>,
    pub(super) retry: RetryPolicy,
    pub(super) request_timeout: Option<Duration>,
    pub(super) batcher: Batcher,
    pub(super) clock: Clock,
    /// Held for the whole of a batch: one request in flight at a time.
    pub(super) log_stream_state: Mutex<LogStreamState>,
    /// Counted once per call or batch (see [`crate::observe`]).
    pub(super) metrics: CloudWatchLogsMetrics,
}

/// What the sink knows about its log stream between requests.
#[derive(Default)]
pub(super) struct LogStreamState {
    /// The token the endpoint expects next (always `None` against current
    /// AWS, which neither returns nor checks tokens).
    pub(super) sequence_token: Option<String>,
    /// Group, stream and retention are set up.
    pub(super) destination_ready: bool,
}

impl LogStreamWriter {
    /// Delivers `batch`: `Ok` when every event was stored, or
    /// [`Error::Rejected`] naming those that never can be once the others
    /// were stored.
    pub(super) async fn deliver(self: Arc<Self>, batch: Vec<LogEvent>) -> Result<(), Error> {
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
        sort_and_dedup(&mut rejected);
        let stored = batch.len().saturating_sub(rejected.len());
        self.metrics.events.increment(stored as u64);
        self.metrics
            .rejected_events
            .increment(rejected.len() as u64);
        if rejected.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            target_name = %self.target,
            rejected = rejected.len(),
            first = %rejected[0],
            "log events rejected permanently"
        );
        Err(Error::Rejected(rejected))
    }
}
