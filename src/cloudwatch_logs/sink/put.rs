//! One `PutLogEvents` request, sent until it has an answer the sink can act
//! on: the timeout of each call, retries with backoff, sequence tokens, and
//! the classification of failures.
//!
//! # Guarantees
//!
//! - Throttling (`ThrottlingException`), `ServiceUnavailableException`, HTTP
//!   5xx and 429, timeouts and connection failures are retried after the
//!   writer's [`RetryPolicy`](crate::RetryPolicy) backoff while the policy
//!   allows another attempt; then the request fails with [`Error::Target`]
//!   naming the attempts and the last error.
//! - A failure the crate-wide rule (`crate::aws::failure`) holds permanent,
//!   such as a denied access, fails the request at once; any other failure
//!   is retried like those above.
//! - Sequence tokens: the token of each answer is sent with the next request;
//!   `InvalidSequenceTokenException` is answered with the token it names, up
//!   to [`MAX_SEQUENCE_TOKEN_REFRESHES`] times per request, without using up
//!   attempts; `DataAlreadyAcceptedException` counts as delivered.
//! - `InvalidParameterException` is not retried: it comes back as
//!   [`PutLogEventsOutcome::Invalid`], for the halving to find the events at
//!   fault.
//! - `ResourceNotFoundException`, when the sink creates missing resources,
//!   sets the destination up again and then retries (using an attempt).
//!
//! # Not guaranteed
//!
//! A call that timed out may have been stored anyway: its retry can store
//! the events twice.

use aws_sdk_cloudwatchlogs::config::http::HttpResponse;
use aws_sdk_cloudwatchlogs::error::SdkError;
use aws_sdk_cloudwatchlogs::operation::put_log_events::{PutLogEventsError, PutLogEventsOutput};
use aws_sdk_cloudwatchlogs::types::{InputLogEvent, RejectedLogEventsInfo};

use super::writer::{LogStreamState, LogStreamWriter};
use crate::cloudwatch_logs::event::LogEvent;
use crate::error::{BoxError, Error};

/// How many `InvalidSequenceTokenException`s one request may answer with the
/// expected token before it counts as a failure. Each is a protocol step,
/// not a fault, so they do not use up the retry policy's attempts.
const MAX_SEQUENCE_TOKEN_REFRESHES: u32 = 5;

/// What became of one `PutLogEvents` request.
pub(super) enum PutLogEventsOutcome {
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
    /// Sends the events of `batch` at the indices `part`, in that order, as
    /// one request, retrying as the module describes.
    pub(super) async fn put_with_retry(
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
            let started = crate::observe::handles::start_timer();
            let result =
                crate::aws::request_timeout::within(self.request_timeout, "PutLogEvents", call)
                    .await;
            self.metrics.calls.increment(1);
            crate::observe::handles::record_since(&self.metrics.call_seconds, started);
            let failure = match result {
                Ok(output) => return Ok(self.delivered(state, output)),
                // A call abandoned by `request_timeout` is the SDK's timeout
                // error, which `classify` retries.
                Err(err) => match err.as_service_error() {
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
                    self.metrics.retries.increment(1);
                    let delay = self.retry.backoff(attempts - 1);
                    tracing::debug!(
                        target_name = %self.target,
                        attempts,
                        ?delay,
                        error = %crate::ErrorChain(&*source),
                        "PutLogEvents failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Keeps the answer's sequence token for the next request.
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
}

/// Classifies a failed `PutLogEvents` call that has no special handling:
/// the modeled `ServiceUnavailableException` first (it need not carry a
/// code), then the crate-wide rule (`crate::aws::failure`). Throttled and
/// transient failures are retried, permanent ones fail the batch.
fn classify(err: SdkError<PutLogEventsError, HttpResponse>) -> PutFailure {
    let modeled_unavailable = err
        .as_service_error()
        .is_some_and(|e| e.is_service_unavailable_exception());
    if !modeled_unavailable && crate::aws::failure::classify_sdk_error(&err).is_permanent() {
        PutFailure::Permanent(Box::new(err))
    } else {
        PutFailure::Retryable(Box::new(err))
    }
}

/// The last error of a request that used up its attempts.
#[derive(Debug, thiserror::Error)]
#[error("PutLogEvents failed after {attempts} attempt(s)")]
struct RetriesExhausted {
    attempts: u32,
    #[source]
    source: BoxError,
}
