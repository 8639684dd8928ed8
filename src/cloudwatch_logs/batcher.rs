//! Request building for `PutLogEvents`: validate, sort, split.
//!
//! [`Batcher::plan`] turns a batch of [`LogEvent`]s into a [`Plan`]: the
//! requests to send, in order, each a list of indices into the batch, plus
//! the events the service can never accept, each with its reason. It is
//! pure (no I/O, the clock is an argument) and linear apart from the sort,
//! which is skipped when the batch is already in timestamp order.
//!
//! # Guarantees
//!
//! - Every event of the batch is either in exactly one request or rejected.
//! - Within the plan, events are in timestamp order, and events with equal
//!   timestamps keep their order in the batch (the sort is stable), so the
//!   requests concatenated are the batch stably sorted.
//! - Each request holds at most [`MAX_EVENTS_PER_REQUEST`] events and
//!   [`MAX_REQUEST_BYTES`] bytes (UTF-8 message bytes plus
//!   [`EVENT_OVERHEAD_BYTES`] per event), and the newest event of a request
//!   is less than [`MAX_BATCH_SPAN`] after its oldest.
//! - Rejected, with a reason: an empty message; an event larger than
//!   [`MAX_EVENT_BYTES`] (overhead included); a timestamp more than
//!   [`MAX_EVENT_AGE`] before `now` or more than [`MAX_EVENT_FUTURE`] after
//!   it.
//!
//! # Not guaranteed
//!
//! The age limits are checked against the caller's clock, not the service's:
//! an event near a boundary may still come back in `rejectedLogEventsInfo`,
//! which the sink reads. A log group's retention period (when shorter than 14
//! days) also limits the age; the sink lowers [`Batcher::max_age`] when it
//! knows the retention.
//!
//! # Why one file
//!
//! The file is past 500 lines, some 230 of them tests. What it holds is one
//! piece: the limits ([`Batcher`]), the single pass over a batch that checks,
//! sorts and cuts it ([`Batcher::plan`]), that pass's result ([`Plan`]) and
//! the wording of its rejections (`RejectionReason`). Each would be read
//! only through the others, and the property test checks them together.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::event::{unix_millis, LogEvent};
use super::limits::{
    EVENT_OVERHEAD_BYTES, MAX_BATCH_SPAN, MAX_EVENTS_PER_REQUEST, MAX_EVENT_AGE, MAX_EVENT_BYTES,
    MAX_EVENT_FUTURE, MAX_REQUEST_BYTES,
};
use crate::error::RejectedRecord;

/// Splits batches of log events into valid `PutLogEvents` requests.
///
/// The defaults are the service's limits; the setters only make them
/// stricter (values beyond a service limit are clamped to it), so a plan is
/// always acceptable to the service.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use unistream::cloudwatch_logs::{Batcher, LogEvent};
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let ms = 1_700_000_000_000;
/// let batch = vec![
///     LogEvent::new(ms - 2_000, "second"),
///     LogEvent::new(ms - 3_000, "first"),
///     LogEvent::new(ms - 30 * 86_400_000, "a month old"),
///     LogEvent::new(ms - 1_000, "third"),
/// ];
/// let plan = Batcher::new().max_events(2).plan(&batch, now);
/// let requests: Vec<&[usize]> = plan.requests().collect();
/// assert_eq!(requests, vec![&[1, 0][..], &[3][..]]);
/// assert_eq!(plan.rejected()[0].index, 2);
/// assert!(plan.rejected()[0].reason.starts_with("too old"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a batcher does nothing until `plan` is called"]
pub struct Batcher {
    max_events: usize,
    max_request_bytes: usize,
    max_event_bytes: usize,
    max_span: Duration,
    max_age: Duration,
    max_future: Duration,
}

impl Default for Batcher {
    /// The service's limits.
    fn default() -> Self {
        Self {
            max_events: MAX_EVENTS_PER_REQUEST,
            max_request_bytes: MAX_REQUEST_BYTES,
            max_event_bytes: MAX_EVENT_BYTES,
            max_span: MAX_BATCH_SPAN,
            max_age: MAX_EVENT_AGE,
            max_future: MAX_EVENT_FUTURE,
        }
    }
}

impl Batcher {
    /// A batcher with the service's limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Events per request, clamped to `1..=MAX_EVENTS_PER_REQUEST`.
    pub fn max_events(mut self, events: usize) -> Self {
        self.max_events = events.clamp(1, MAX_EVENTS_PER_REQUEST);
        self
    }

    /// Bytes per request (overhead included), clamped to
    /// `EVENT_OVERHEAD_BYTES + 1..=MAX_REQUEST_BYTES` so that a one-byte
    /// event always fits.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes.clamp(EVENT_OVERHEAD_BYTES + 1, MAX_REQUEST_BYTES);
        self
    }

    /// Bytes per event (overhead included), clamped to
    /// `EVENT_OVERHEAD_BYTES + 1..=MAX_EVENT_BYTES`; larger events are
    /// rejected. Use [`LEGACY_MAX_EVENT_BYTES`](super::limits::LEGACY_MAX_EVENT_BYTES)
    /// for endpoints that still enforce 256 KiB.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes.clamp(EVENT_OVERHEAD_BYTES + 1, MAX_EVENT_BYTES);
        self
    }

    /// Time span of one request, at most [`MAX_BATCH_SPAN`] (and at least
    /// 1 ms).
    pub fn max_span(mut self, span: Duration) -> Self {
        self.max_span = span.clamp(Duration::from_millis(1), MAX_BATCH_SPAN);
        self
    }

    /// Oldest accepted event relative to `now`, at most [`MAX_EVENT_AGE`].
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age.min(MAX_EVENT_AGE);
        self
    }

    /// How far ahead of `now` an event may be, at most [`MAX_EVENT_FUTURE`].
    pub fn max_future(mut self, ahead: Duration) -> Self {
        self.max_future = ahead.min(MAX_EVENT_FUTURE);
        self
    }

    /// The oldest accepted event relative to `now`.
    pub fn age_limit(&self) -> Duration {
        self.max_age
    }

    /// Validates, sorts and splits `events` as of `now`.
    pub fn plan(&self, events: &[LogEvent], now: SystemTime) -> Plan {
        let now_ms = unix_millis(now);
        let oldest_ms = now_ms.saturating_sub(millis(self.max_age));
        let newest_ms = now_ms.saturating_add(millis(self.max_future));
        let event_limit = self.max_event_bytes.min(self.max_request_bytes);

        let mut rejected = Vec::new();
        // (timestamp, index): ordering these pairs is a stable sort by
        // timestamp, and an unstable sort of pairs is the fastest way there.
        let mut keys: Vec<(i64, usize)> = Vec::with_capacity(events.len());
        let mut sorted = true;
        let mut last_ts = i64::MIN;
        for (index, event) in events.iter().enumerate() {
            let reason = if event.message.is_empty() {
                Some(RejectionReason::Empty)
            } else if event.billed_bytes() > event_limit {
                Some(RejectionReason::TooLarge {
                    bytes: event.billed_bytes(),
                    limit: event_limit,
                })
            } else if event.timestamp < oldest_ms {
                Some(RejectionReason::TooOld {
                    timestamp: event.timestamp,
                    age: self.max_age,
                    now_ms,
                })
            } else if event.timestamp > newest_ms {
                Some(RejectionReason::TooNew {
                    timestamp: event.timestamp,
                    ahead: self.max_future,
                    now_ms,
                })
            } else {
                None
            };
            match reason {
                Some(reason) => rejected.push(RejectedRecord::new(index, reason.to_string())),
                None => {
                    sorted &= event.timestamp >= last_ts;
                    last_ts = event.timestamp;
                    keys.push((event.timestamp, index));
                }
            }
        }
        if !sorted {
            keys.sort_unstable();
        }

        let span_ms = millis(self.max_span);
        let mut ends = Vec::new();
        let mut count = 0;
        let mut bytes = 0;
        let mut first_ts = 0;
        for (pos, &(ts, index)) in keys.iter().enumerate() {
            let size = events[index].billed_bytes();
            if count > 0
                && (count == self.max_events
                    || bytes + size > self.max_request_bytes
                    || ts - first_ts >= span_ms)
            {
                ends.push(pos);
                count = 0;
                bytes = 0;
            }
            if count == 0 {
                first_ts = ts;
            }
            count += 1;
            bytes += size;
        }
        if count > 0 {
            ends.push(keys.len());
        }
        Plan {
            order: keys.into_iter().map(|(_, index)| index).collect(),
            ends,
            rejected,
        }
    }
}

/// The requests for one batch, and the events that can never be sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use = "a plan sends nothing: its requests are to be sent and its rejected events reported"]
pub struct Plan {
    /// Indices of the accepted events, in send order.
    order: Vec<usize>,
    /// Where each request ends in `order` (exclusive), ascending.
    ends: Vec<usize>,
    /// Events that can never be accepted, in index order.
    rejected: Vec<RejectedRecord>,
}

impl Plan {
    /// The requests in send order, each the batch indices of its events in
    /// send (timestamp) order.
    pub fn requests(&self) -> impl ExactSizeIterator<Item = &[usize]> + '_ {
        (0..self.ends.len()).map(move |k| {
            let start = if k == 0 { 0 } else { self.ends[k - 1] };
            &self.order[start..self.ends[k]]
        })
    }

    /// Number of requests.
    pub fn request_count(&self) -> usize {
        self.ends.len()
    }

    /// Number of events that will be sent.
    pub fn event_count(&self) -> usize {
        self.order.len()
    }

    /// Events that can never be accepted, with reasons, in index order.
    pub fn rejected(&self) -> &[RejectedRecord] {
        &self.rejected
    }

    /// Takes the rejected events out of the plan.
    pub fn take_rejected(&mut self) -> Vec<RejectedRecord> {
        std::mem::take(&mut self.rejected)
    }
}

/// Why an event is never acceptable (rendered into the dead-letter reason).
enum RejectionReason {
    Empty,
    TooLarge {
        bytes: usize,
        limit: usize,
    },
    TooOld {
        timestamp: i64,
        age: Duration,
        now_ms: i64,
    },
    TooNew {
        timestamp: i64,
        ahead: Duration,
        now_ms: i64,
    },
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectionReason::Empty => {
                write!(f, "empty message: CloudWatch Logs needs at least 1 byte")
            }
            RejectionReason::TooLarge { bytes, limit } => write!(
                f,
                "too large: {bytes} bytes with the {EVENT_OVERHEAD_BYTES}-byte event overhead, \
                 limit {limit}"
            ),
            RejectionReason::TooOld {
                timestamp,
                age,
                now_ms,
            } => write!(
                f,
                "too old: timestamp {timestamp} ms is more than {} before now ({now_ms} ms)",
                HumanDuration(*age)
            ),
            RejectionReason::TooNew {
                timestamp,
                ahead,
                now_ms,
            } => write!(
                f,
                "too new: timestamp {timestamp} ms is more than {} after now ({now_ms} ms)",
                HumanDuration(*ahead)
            ),
        }
    }
}

struct HumanDuration(Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        if self.0.subsec_nanos() == 0 && secs >= 86_400 && secs.is_multiple_of(86_400) {
            write!(f, "{} days", secs / 86_400)
        } else if self.0.subsec_nanos() == 0 && secs >= 3_600 && secs.is_multiple_of(3_600) {
            write!(f, "{} h", secs / 3_600)
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use proptest::prelude::*;

    use super::*;

    const NOW_MS: i64 = 1_700_000_000_000;
    const HOUR_MS: i64 = 3_600_000;
    const DAY_MS: i64 = 24 * HOUR_MS;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(NOW_MS as u64)
    }

    fn requests(plan: &Plan) -> Vec<Vec<usize>> {
        plan.requests().map(<[usize]>::to_vec).collect()
    }

    #[test]
    fn unsorted_input_is_stably_sorted() {
        let batch = vec![
            LogEvent::new(NOW_MS - 10, "c"),
            LogEvent::new(NOW_MS - 30, "a"),
            LogEvent::new(NOW_MS - 10, "d"),
            LogEvent::new(NOW_MS - 20, "b"),
            LogEvent::new(NOW_MS - 30, "a2"),
        ];
        let plan = Batcher::new().plan(&batch, now());
        assert_eq!(requests(&plan), vec![vec![1, 4, 3, 0, 2]]);
        assert!(plan.rejected().is_empty());
    }

    #[test]
    fn three_days_split_into_requests_under_a_day() {
        // One event per hour over three days, oldest first, ending now.
        let batch: Vec<_> = (0..72)
            .map(|h| LogEvent::new(NOW_MS - (71 - h) * HOUR_MS, format!("h{h}")))
            .collect();
        let plan = Batcher::new().plan(&batch, now());
        let reqs = requests(&plan);
        assert_eq!(reqs.len(), 3);
        for req in &reqs {
            let first = batch[req[0]].timestamp;
            let last = batch[*req.last().unwrap()].timestamp;
            assert!(last - first < DAY_MS, "request spans {} ms", last - first);
        }
        assert_eq!(reqs.concat(), (0..72).collect::<Vec<_>>());
    }

    #[test]
    fn count_and_byte_limits_split_requests() {
        let batch: Vec<_> = (0..25_000)
            .map(|i| LogEvent::new(NOW_MS, format!("{i:05}")))
            .collect();
        let plan = Batcher::new().plan(&batch, now());
        let sizes: Vec<_> = plan.requests().map(<[usize]>::len).collect();
        assert_eq!(sizes, vec![10_000, 10_000, 5_000]);

        // 1000-byte messages: 1026 billed, so 1022 fit in 1,048,576 bytes.
        let big: Vec<_> = (0..2_500)
            .map(|_| LogEvent::new(NOW_MS, "x".repeat(1000)))
            .collect();
        let plan = Batcher::new().plan(&big, now());
        let sizes: Vec<_> = plan.requests().map(<[usize]>::len).collect();
        assert_eq!(sizes, vec![1022, 1022, 456]);
        assert_eq!(1022 * 1026, 1_048_572);
    }

    #[test]
    fn a_largest_event_fits_alone_and_one_byte_more_is_rejected() {
        let max_message = MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES;
        let batch = vec![
            LogEvent::new(NOW_MS, "a"),
            LogEvent::new(NOW_MS, "x".repeat(max_message)),
            LogEvent::new(NOW_MS, "y".repeat(max_message + 1)),
            LogEvent::new(NOW_MS, "b"),
        ];
        let plan = Batcher::new().plan(&batch, now());
        assert_eq!(requests(&plan), vec![vec![0], vec![1], vec![3]]);
        assert_eq!(plan.rejected().len(), 1);
        assert_eq!(plan.rejected()[0].index, 2);
        assert!(
            plan.rejected()[0]
                .reason
                .starts_with("too large: 1048577 bytes"),
            "{}",
            plan.rejected()[0].reason
        );
    }

    #[test]
    fn legacy_event_limit_is_configurable() {
        let batch = vec![LogEvent::new(NOW_MS, "x".repeat(300 * 1024))];
        let plan = Batcher::new()
            .max_event_bytes(crate::cloudwatch_logs::limits::LEGACY_MAX_EVENT_BYTES)
            .plan(&batch, now());
        assert_eq!(plan.request_count(), 0);
        assert!(plan.rejected()[0].reason.contains("limit 262144"));
    }

    #[test]
    fn too_old_too_new_and_empty_are_rejected_with_reasons() {
        let batch = vec![
            LogEvent::new(NOW_MS - 14 * DAY_MS - 1, "old"),
            LogEvent::new(NOW_MS - 14 * DAY_MS, "just in"),
            LogEvent::new(NOW_MS + 2 * HOUR_MS, "just in too"),
            LogEvent::new(NOW_MS + 2 * HOUR_MS + 1, "new"),
            LogEvent::new(NOW_MS, ""),
        ];
        let plan = Batcher::new().plan(&batch, now());
        // The two accepted events are 14 days apart: two requests.
        assert_eq!(requests(&plan), vec![vec![1], vec![2]]);
        let rejected = plan.rejected();
        assert_eq!(
            rejected.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![0, 3, 4]
        );
        assert!(
            rejected[0].reason.starts_with("too old"),
            "{}",
            rejected[0].reason
        );
        assert!(
            rejected[0].reason.contains("14 days"),
            "{}",
            rejected[0].reason
        );
        assert!(
            rejected[1].reason.starts_with("too new"),
            "{}",
            rejected[1].reason
        );
        assert!(rejected[1].reason.contains("2 h"), "{}", rejected[1].reason);
        assert!(rejected[2].reason.starts_with("empty message"));
    }

    #[test]
    fn a_shorter_age_limit_applies() {
        let batch = vec![LogEvent::new(NOW_MS - 2 * DAY_MS, "x")];
        let plan = Batcher::new()
            .max_age(Duration::from_secs(86_400))
            .plan(&batch, now());
        assert!(plan.rejected()[0].reason.contains("1 days"));
    }

    #[test]
    fn empty_batch_gives_empty_plan() {
        let plan = Batcher::new().plan(&[], now());
        assert_eq!(plan.request_count(), 0);
        assert_eq!(plan.requests().count(), 0);
    }

    proptest! {
        #[test]
        fn plans_respect_every_limit(
            events in prop::collection::vec(
                (-16 * DAY_MS..3 * HOUR_MS, 0usize..400),
                0..600,
            ),
            max_events in 1usize..50,
            max_request_bytes in 27usize..4_000,
            max_event_bytes in 27usize..500,
        ) {
            let batch: Vec<_> = events
                .iter()
                .enumerate()
                .map(|(i, &(offset, len))| {
                    // A unique prefix makes events distinguishable; lengths vary.
                    let mut message = format!("{i}:");
                    message.push_str(&"é".repeat(len / 2));
                    LogEvent::new(NOW_MS + offset, message)
                })
                .collect();
            let batcher = Batcher::new()
                .max_events(max_events)
                .max_request_bytes(max_request_bytes)
                .max_event_bytes(max_event_bytes);
            let plan = batcher.plan(&batch, now());
            let event_limit = max_event_bytes.min(max_request_bytes);

            // Every event exactly once, sent or rejected.
            let mut seen = vec![0u32; batch.len()];
            for req in plan.requests() {
                prop_assert!(!req.is_empty());
                prop_assert!(req.len() <= max_events);
                let bytes: usize = req.iter().map(|&i| batch[i].billed_bytes()).sum();
                prop_assert!(bytes <= max_request_bytes);
                let first = batch[req[0]].timestamp;
                let last = batch[req[req.len() - 1]].timestamp;
                prop_assert!(last - first < DAY_MS);
                for &i in req {
                    seen[i] += 1;
                }
            }
            for r in plan.rejected() {
                seen[r.index] += 1;
                let e = &batch[r.index];
                let expected = e.billed_bytes() > event_limit
                    || e.timestamp < NOW_MS - 14 * DAY_MS
                    || e.timestamp > NOW_MS + 2 * HOUR_MS;
                prop_assert!(expected, "wrongly rejected: {}", r.reason);
            }
            prop_assert!(seen.iter().all(|&n| n == 1));

            // Send order is the batch stably sorted by timestamp.
            let sent: Vec<usize> = plan.requests().flatten().copied().collect();
            let mut expected: Vec<usize> = (0..batch.len())
                .filter(|i| plan.rejected().iter().all(|r| r.index != *i))
                .collect();
            expected.sort_by_key(|&i| batch[i].timestamp);
            prop_assert_eq!(sent, expected);

            // Requests are maximal: a request is cut only when the next event
            // would break a limit.
            let reqs: Vec<&[usize]> = plan.requests().collect();
            for pair in reqs.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let next = &batch[b[0]];
                let bytes: usize = a.iter().map(|&i| batch[i].billed_bytes()).sum();
                prop_assert!(
                    a.len() == max_events
                        || bytes + next.billed_bytes() > max_request_bytes
                        || next.timestamp - batch[a[0]].timestamp >= DAY_MS
                );
            }
        }
    }
}
