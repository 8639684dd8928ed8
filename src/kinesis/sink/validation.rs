//! Per-record checks against the Kinesis limits, before anything is sent.
//!
//! A record that fails here can never be accepted by Kinesis: the sink
//! reports it as [`Error::Rejected`](crate::Error::Rejected) with the
//! [`InvalidRecord`] text as the reason (so `buffered_wal` dead-letters it),
//! never sends it and never drops it silently.
//!
//! What is checked: the partition key length in Unicode characters (1 to
//! 256), the billed size (data plus partition key, at most 1 MiB) and the
//! explicit hash key's syntax. What is not: anything the service decides at
//! request time (permissions, KMS keys), which the sink learns from the
//! response.

use crate::kinesis::hash_key::{HashKey, HashKeyCache, InvalidHashKey};
use crate::kinesis::limits::{MAX_PARTITION_KEY_CHARS, MAX_RECORD_BYTES, MIN_PARTITION_KEY_CHARS};
use crate::kinesis::KinesisRecord;

/// Why a record can never be put to Kinesis.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRecord {
    /// The partition key has fewer than 1 or more than 256 characters.
    #[error(
        "partition key has {chars} characters; Kinesis accepts {MIN_PARTITION_KEY_CHARS} to {MAX_PARTITION_KEY_CHARS}"
    )]
    PartitionKeyLength {
        /// Its length in Unicode characters.
        chars: usize,
    },
    /// Data plus partition key exceed 1 MiB.
    #[error("record is {bytes} bytes (data plus partition key); Kinesis accepts at most {MAX_RECORD_BYTES}")]
    TooLarge {
        /// The billed size of the record.
        bytes: usize,
    },
    /// The explicit hash key is not a decimal integer in `0..2^128`. (Its
    /// message is part of this one, so it is not also a `source`.)
    #[error("invalid explicit hash key: {0}")]
    ExplicitHashKey(InvalidHashKey),
}

impl From<InvalidHashKey> for InvalidRecord {
    fn from(error: InvalidHashKey) -> Self {
        InvalidRecord::ExplicitHashKey(error)
    }
}

/// Checks `record` against the per-record limits and returns its hash key.
///
/// ```
/// use unistream::kinesis::{validate, InvalidRecord, KinesisRecord};
///
/// assert!(validate(&KinesisRecord::new("payload", "key")).is_ok());
/// assert_eq!(
///     validate(&KinesisRecord::new("payload", "")),
///     Err(InvalidRecord::PartitionKeyLength { chars: 0 })
/// );
/// ```
pub fn validate(record: &KinesisRecord) -> Result<HashKey, InvalidRecord> {
    check_limits(record)?;
    Ok(HashKey::of(record)?)
}

/// [`validate`], computing the hash key through `cache`.
pub(crate) fn validate_with(
    record: &KinesisRecord,
    cache: &mut HashKeyCache,
) -> Result<HashKey, InvalidRecord> {
    check_limits(record)?;
    Ok(cache.of(record)?)
}

/// The partition-key length and the billed size.
fn check_limits(record: &KinesisRecord) -> Result<(), InvalidRecord> {
    // Counting characters is O(n); the byte length settles the common case:
    // a key of 1 to 256 bytes has 1 to 256 characters.
    let key = &record.partition_key;
    if key.is_empty() || key.len() > MAX_PARTITION_KEY_CHARS {
        let chars = key.chars().count();
        if !(MIN_PARTITION_KEY_CHARS..=MAX_PARTITION_KEY_CHARS).contains(&chars) {
            return Err(InvalidRecord::PartitionKeyLength { chars });
        }
    }
    let bytes = record.billed_bytes();
    if bytes > MAX_RECORD_BYTES {
        return Err(InvalidRecord::TooLarge { bytes });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_key_length_counts_characters_not_bytes() {
        let ok = |k: String| validate(&KinesisRecord::new("d", k));
        assert!(ok("k".into()).is_ok());
        assert!(ok("k".repeat(256)).is_ok());
        // 256 four-byte characters: 1024 bytes, still 256 characters.
        assert!(ok("😀".repeat(256)).is_ok());
        assert_eq!(
            ok("k".repeat(257)),
            Err(InvalidRecord::PartitionKeyLength { chars: 257 })
        );
        assert_eq!(
            ok("😀".repeat(257)),
            Err(InvalidRecord::PartitionKeyLength { chars: 257 })
        );
        assert_eq!(
            ok(String::new()),
            Err(InvalidRecord::PartitionKeyLength { chars: 0 })
        );
    }

    #[test]
    fn size_counts_data_and_key() {
        let exact = KinesisRecord::new(vec![0u8; MAX_RECORD_BYTES - 3], "abc");
        assert!(validate(&exact).is_ok());
        let over = KinesisRecord::new(vec![0u8; MAX_RECORD_BYTES - 2], "abc");
        assert_eq!(
            validate(&over),
            Err(InvalidRecord::TooLarge {
                bytes: MAX_RECORD_BYTES + 1
            })
        );
    }

    #[test]
    fn explicit_hash_key_is_checked() {
        let r = KinesisRecord::new("d", "k").with_explicit_hash_key("-5");
        assert!(matches!(
            validate(&r),
            Err(InvalidRecord::ExplicitHashKey(_))
        ));
        let r = KinesisRecord::new("d", "k").with_explicit_hash_key("5");
        assert_eq!(validate(&r).unwrap().value(), 5);
    }
}
