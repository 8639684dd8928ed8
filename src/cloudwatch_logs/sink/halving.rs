//! Request halving: a `PutLogEvents` request refused whole as invalid
//! (`InvalidParameterException`) is split in two and the halves sent, again
//! and again, until the events at fault are alone; only they are rejected.
//!
//! # Guarantees
//!
//! - The parts of a request go out in the request's (timestamp) order, one
//!   after another, so the log stream receives its events in the same order
//!   as without halving.
//! - An event is rejected as invalid only after it was refused alone; the
//!   events `rejectedLogEventsInfo` names in an answer are rejected too (see
//!   [`rejected`](super::rejected)).
//! - Bounded: once more than [`MAX_INVALID_EVENTS_ISOLATED`] events of one
//!   request were refused alone, the request rather than its events is held
//!   at fault and the batch fails with [`Error::Target`].
//!
//! # Not guaranteed
//!
//! Nothing is remembered between batches: a batch that failed and is sent
//! again is halved again.

use super::put::PutLogEventsOutcome;
use super::rejected::map_rejected_info;
use super::writer::{LogStreamState, LogStreamWriter};
use crate::cloudwatch_logs::event::LogEvent;
use crate::error::{Error, RejectedRecord};

/// How many events of one request may be refused one by one as invalid
/// (after halving the request) before the sink concludes that the request,
/// not the events, is at fault and fails the batch instead. Bounds the
/// halving to about `2 * 16 * log2(10,000)` ≈ 430 calls.
const MAX_INVALID_EVENTS_ISOLATED: usize = 16;

impl LogStreamWriter {
    /// Sends the events of `request` (batch indices in send order). A part
    /// refused whole as invalid is halved until the invalid events are
    /// alone, so that only they are rejected.
    pub(super) async fn put_request(
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
}
