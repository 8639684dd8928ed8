//! Service limits of CloudWatch Logs `PutLogEvents`, in one place, each with
//! its unit in its name (or in its type). The request builder
//! ([`Batcher`](super::Batcher)) enforces them; tests check them.
//!
//! Source: the `PutLogEvents` API reference and the `InputLogEvent` model of
//! the AWS SDK (`aws-sdk-cloudwatchlogs` 1.16x). The per-event limit was
//! raised from 256 KiB to 1 MiB in 2025; an event can in any case never be
//! larger than a whole request, so [`MAX_EVENT_BYTES`] equals
//! [`MAX_REQUEST_BYTES`]. For an endpoint that still enforces the old limit,
//! configure [`LEGACY_MAX_EVENT_BYTES`] with
//! [`Batcher::max_event_bytes`](super::Batcher::max_event_bytes).

use std::time::Duration;

/// Events in one `PutLogEvents` request.
pub const MAX_EVENTS_PER_REQUEST: usize = 10_000;

/// Bytes in one `PutLogEvents` request: the UTF-8 bytes of every message plus
/// [`EVENT_OVERHEAD_BYTES`] per event.
pub const MAX_REQUEST_BYTES: usize = 1_048_576;

/// Bytes the service counts for each event on top of its message (the JSON
/// structure around it).
pub const EVENT_OVERHEAD_BYTES: usize = 26;

/// Bytes of one event, [`EVENT_OVERHEAD_BYTES`] included: the current limit
/// (1 MiB) coincides with the request limit, so the largest message is
/// `MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES` = 1,048,550 bytes.
pub const MAX_EVENT_BYTES: usize = MAX_REQUEST_BYTES;

/// The per-event limit before 2025 (256 KiB, overhead included), still
/// enforced by some endpoints and emulators.
pub const LEGACY_MAX_EVENT_BYTES: usize = 256 * 1024;

/// Longest time span between the oldest and the newest event of one request.
pub const MAX_BATCH_SPAN: Duration = Duration::from_secs(24 * 60 * 60);

/// Oldest event the service accepts, relative to its clock (a log group's
/// shorter retention period lowers this further).
pub const MAX_EVENT_AGE: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// How far in the future an event may be, relative to the service's clock.
pub const MAX_EVENT_FUTURE: Duration = Duration::from_secs(2 * 60 * 60);

/// Retention periods, in days, that `PutRetentionPolicy` accepts.
pub const RETENTION_DAYS: &[i32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Longest log group name, in characters.
pub const MAX_LOG_GROUP_NAME_CHARS: usize = 512;

/// Longest log stream name, in characters.
pub const MAX_LOG_STREAM_NAME_CHARS: usize = 512;
