//! Dead-letter entries: what a record that could not be delivered or
//! processed becomes.
//!
//! Every path in the crate that gives up on a record (a batch that exhausted
//! its attempts, a record the target can never accept, a record a consumer
//! handler kept failing on, bytes that do not decode) writes a
//! [`DeadLetter`] to a user-chosen dead-letter sink — any
//! `Sink<Vec<DeadLetter<T>>>`, for example a
//! [`FileSink`](crate::sink::FileSink) — *before* the record counts as done.
//! If that write fails, nothing is committed and the error surfaces.
//!
//! An entry keeps the record when it could be decoded, its raw bytes when it
//! could not (stored base64 in serialized form, so no byte is lost), the
//! reason, the number of attempts and where it came from.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A record given up on, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter<T> {
    /// The record, when it could be decoded.
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub record: Option<T>,
    /// The raw bytes, when the record could not be decoded (or the encoded
    /// form is what matters). Serialized as base64.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_bytes"
    )]
    pub raw: Option<Vec<u8>>,
    /// Why the record was given up on.
    pub reason: String,
    /// Attempts made before giving up (0 when it was never attempted).
    pub attempts: u32,
    /// Where the record came from: partition and position, WAL segment and
    /// offset, target name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// When it was given up on, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

impl<T> DeadLetter<T> {
    /// An entry for a decoded record.
    pub fn record(record: T, reason: impl Into<String>, attempts: u32) -> Self {
        Self {
            record: Some(record),
            raw: None,
            reason: reason.into(),
            attempts,
            origin: None,
            at_unix_ms: now_unix_ms(),
        }
    }

    /// An entry for bytes that could not be decoded into a record.
    pub fn raw(raw: impl Into<Vec<u8>>, reason: impl Into<String>) -> Self {
        Self {
            record: None,
            raw: Some(raw.into()),
            reason: reason.into(),
            attempts: 0,
            origin: None,
            at_unix_ms: now_unix_ms(),
        }
    }

    /// Adds where the record came from.
    #[must_use = "returns the dead letter with its origin; the original is moved"]
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| STANDARD.decode(t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_survive_json() {
        let entry: DeadLetter<u32> =
            DeadLetter::raw(vec![0u8, 0xff, b'\n'], "bad json").with_origin("orders.jsonl@12");
        let json = serde_json::to_string(&entry).unwrap();
        assert!(!json.contains('\n'));
        let back: DeadLetter<u32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, entry);
    }

    #[test]
    fn record_entry_round_trips() {
        let entry = DeadLetter::record("x".to_string(), "too large", 3);
        let back: DeadLetter<String> =
            serde_json::from_str(&serde_json::to_string(&entry).unwrap()).unwrap();
        assert_eq!(back.record.as_deref(), Some("x"));
        assert_eq!(back.attempts, 3);
        assert_eq!(back.raw, None);
    }
}
