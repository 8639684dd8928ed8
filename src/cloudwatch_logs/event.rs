//! [`LogEvent`]: one CloudWatch Logs event, a timestamp and a message.
//!
//! The type is plain data and serde-serializable, so it goes through the
//! write-ahead log of [`buffered_wal`](crate::sink) unchanged. It does not
//! validate anything itself: whether the service can accept an event depends
//! on the time it is sent, which is the request builder's business
//! ([`Batcher`](super::Batcher)).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::limits::EVENT_OVERHEAD_BYTES;

/// One log event: when it happened and what it says.
///
/// ```
/// use unistream::cloudwatch_logs::LogEvent;
///
/// let event = LogEvent::new(1_700_000_000_000, "user 42 logged in");
/// assert_eq!(event.billed_bytes(), "user 42 logged in".len() + 26);
/// let now = LogEvent::now("started");
/// assert!(now.timestamp > event.timestamp);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogEvent {
    /// When the event happened, in milliseconds since the Unix epoch (UTC).
    pub timestamp: i64,
    /// The message. CloudWatch Logs stores it as UTF-8 text.
    pub message: String,
}

impl LogEvent {
    /// An event at `timestamp_ms` milliseconds since the Unix epoch.
    pub fn new(timestamp_ms: i64, message: impl Into<String>) -> Self {
        Self {
            timestamp: timestamp_ms,
            message: message.into(),
        }
    }

    /// An event at `time`. Times before the epoch give negative timestamps;
    /// times too far from it to fit saturate (the service rejects both).
    pub fn at(time: SystemTime, message: impl Into<String>) -> Self {
        Self::new(unix_millis(time), message)
    }

    /// An event happening now, by the system clock.
    pub fn now(message: impl Into<String>) -> Self {
        Self::at(SystemTime::now(), message)
    }

    /// The event's time as a [`SystemTime`].
    pub fn time(&self) -> SystemTime {
        let magnitude = Duration::from_millis(self.timestamp.unsigned_abs());
        if self.timestamp >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }

    /// Bytes this event counts towards the request limit: the message's
    /// UTF-8 bytes plus [`EVENT_OVERHEAD_BYTES`].
    pub fn billed_bytes(&self) -> usize {
        self.message.len() + EVENT_OVERHEAD_BYTES
    }
}

/// Milliseconds since the Unix epoch, negative before it, saturating.
pub(crate) fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis())
            .map(|ms| -ms)
            .unwrap_or(i64::MIN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips_through_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_123_456);
        let event = LogEvent::at(t, "x");
        assert_eq!(event.timestamp, 1_700_000_123_456);
        assert_eq!(event.time(), t);
        let before = UNIX_EPOCH - Duration::from_millis(5);
        assert_eq!(LogEvent::at(before, "x").timestamp, -5);
        assert_eq!(LogEvent::at(before, "x").time(), before);
    }

    #[test]
    fn billed_bytes_count_utf8_bytes_not_chars() {
        assert_eq!(LogEvent::new(0, "héllo").billed_bytes(), 6 + 26);
    }

    #[test]
    fn serializes_as_plain_json() {
        let event = LogEvent::new(7, "a\"b");
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(json, r#"{"timestamp":7,"message":"a\"b"}"#);
        assert_eq!(serde_json::from_str::<LogEvent>(&json).unwrap(), event);
    }
}
