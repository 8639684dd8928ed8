//! Hash keys: where on the 128-bit key space a record lands.
//!
//! Kinesis places a record on the shard whose hash-key range contains the
//! record's hash key: the MD5 digest of its partition key read as a
//! big-endian 128-bit integer, or its explicit hash key (a decimal integer in
//! `0..2^128`) when it has one. The sink predicts shards with this; the KPL
//! aggregator gives an aggregated record the hash key of its first user
//! record; consumers use it to drop user records of an aggregate that belong
//! to another shard after a reshard.
//!
//! This module only computes and parses keys; it knows nothing of shards.
//! The sink computes them through a [`HashKeyCache`]: producers reuse
//! partition keys, and a map lookup is several times cheaper than an MD5.

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};

use super::KinesisRecord;

/// A position on the 128-bit hash-key space of a stream.
///
/// ```
/// use unistream::kinesis::HashKey;
///
/// // MD5("") = d41d8cd98f00b204e9800998ecf8427e, read big-endian.
/// let key = HashKey::from_partition_key("");
/// assert_eq!(key.value(), 0xd41d8cd98f00b204e9800998ecf8427e);
/// assert_eq!("42".parse::<HashKey>().unwrap().value(), 42);
/// assert!("042".parse::<HashKey>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashKey(u128);

impl HashKey {
    /// The lowest hash key.
    pub const MIN: HashKey = HashKey(0);
    /// The highest hash key, `2^128 - 1`.
    pub const MAX: HashKey = HashKey(u128::MAX);

    /// The hash key Kinesis derives from a partition key: its MD5 digest as
    /// a big-endian 128-bit integer.
    pub fn from_partition_key(partition_key: &str) -> Self {
        let digest = Md5::digest(partition_key.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest);
        HashKey(u128::from_be_bytes(bytes))
    }

    /// Parses an explicit hash key as the Kinesis API accepts it: a decimal
    /// integer in `0..2^128` without sign or leading zeros.
    pub fn parse_explicit(text: &str) -> Result<Self, InvalidHashKey> {
        let invalid = || InvalidHashKey {
            key: text.chars().take(64).collect(),
        };
        let canonical = text == "0"
            || (!text.is_empty()
                && !text.starts_with('0')
                && text.len() <= 39
                && text.bytes().all(|b| b.is_ascii_digit()));
        if !canonical {
            return Err(invalid());
        }
        text.parse::<u128>().map(HashKey).map_err(|_| invalid())
    }

    /// The hash key of `record`: its explicit hash key when set, otherwise
    /// the MD5 of its partition key.
    pub fn of(record: &KinesisRecord) -> Result<Self, InvalidHashKey> {
        match &record.explicit_hash_key {
            Some(explicit) => Self::parse_explicit(explicit),
            None => Ok(Self::from_partition_key(&record.partition_key)),
        }
    }

    /// The key as an integer.
    pub fn value(self) -> u128 {
        self.0
    }
}

impl From<u128> for HashKey {
    fn from(value: u128) -> Self {
        HashKey(value)
    }
}

impl fmt::Display for HashKey {
    /// Decimal, the form the Kinesis API uses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for HashKey {
    type Err = InvalidHashKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_explicit(s)
    }
}

/// A string that is not a valid hash key (a decimal integer in `0..2^128`
/// without sign or leading zeros).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hash key {key:?} is not a decimal integer in 0..2^128")]
pub struct InvalidHashKey {
    /// The offending text (its first 64 characters).
    pub key: String,
}

/// The hash keys of recently seen partition keys.
///
/// Bounded: it holds at most [`HashKeyCache::CAPACITY`] keys and starts
/// afresh when full, so memory stays small (about 1 MiB at most, keys of
/// typical length) whatever the number of distinct keys; a workload
/// cycling through more keys than that just computes more MD5s. Keyed by
/// the exact partition key, so a cached hash key is always the one
/// [`HashKey::from_partition_key`] gives.
#[derive(Debug, Default)]
// Used by the Kinesis sink (feature `kinesis`), not by `kpl` alone.
#[cfg_attr(not(feature = "kinesis"), allow(dead_code))]
pub(crate) struct HashKeyCache {
    keys: hashbrown::HashMap<Box<str>, HashKey>,
}

#[cfg_attr(not(feature = "kinesis"), allow(dead_code))]
impl HashKeyCache {
    /// Most keys held at once.
    pub(crate) const CAPACITY: usize = 16 * 1024;

    /// [`HashKey::of`] `record`, through the cache.
    pub(crate) fn of(&mut self, record: &KinesisRecord) -> Result<HashKey, InvalidHashKey> {
        match &record.explicit_hash_key {
            Some(explicit) => HashKey::parse_explicit(explicit),
            None => Ok(self.of_partition_key(&record.partition_key)),
        }
    }

    /// [`HashKey::from_partition_key`], through the cache.
    pub(crate) fn of_partition_key(&mut self, partition_key: &str) -> HashKey {
        if let Some(&hash_key) = self.keys.get(partition_key) {
            return hash_key;
        }
        let hash_key = HashKey::from_partition_key(partition_key);
        if self.keys.len() >= Self::CAPACITY {
            self.keys.clear();
        }
        self.keys.insert(partition_key.into(), hash_key);
        hash_key
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_gives_the_computed_keys_and_stays_bounded() {
        let mut cache = HashKeyCache::default();
        for round in 0..2 {
            for i in 0..HashKeyCache::CAPACITY + 10 {
                let key = format!("key-{i}");
                assert_eq!(
                    cache.of_partition_key(&key),
                    HashKey::from_partition_key(&key),
                    "round {round}, key {key}"
                );
                assert!(cache.len() <= HashKeyCache::CAPACITY);
            }
        }
        let explicit = KinesisRecord::new("x", "a").with_explicit_hash_key("7");
        assert_eq!(cache.of(&explicit).unwrap().value(), 7);
        let invalid = KinesisRecord::new("x", "a").with_explicit_hash_key("07");
        assert!(cache.of(&invalid).is_err());
        let plain = KinesisRecord::new("x", "a");
        assert_eq!(cache.of(&plain).unwrap(), HashKey::from_partition_key("a"));
    }

    #[test]
    fn partition_key_hash_is_big_endian_md5() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661 (RFC 1321 test suite).
        assert_eq!(
            HashKey::from_partition_key("a").value(),
            0x0cc175b9c0f1b6a831c399e269772661
        );
        // MD5("abc") = 900150983cd24fb0d6963f7d28e17f72.
        assert_eq!(
            HashKey::from_partition_key("abc").to_string(),
            u128::from_str_radix("900150983cd24fb0d6963f7d28e17f72", 16)
                .unwrap()
                .to_string()
        );
    }

    #[test]
    fn explicit_keys_follow_the_api_pattern() {
        assert_eq!(HashKey::parse_explicit("0").unwrap(), HashKey::MIN);
        assert_eq!(
            HashKey::parse_explicit("340282366920938463463374607431768211455").unwrap(),
            HashKey::MAX
        );
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1e3",
            "340282366920938463463374607431768211456", // 2^128
            "9999999999999999999999999999999999999999",
        ] {
            let err = HashKey::parse_explicit(bad).unwrap_err();
            assert_eq!(err.key, bad);
        }
    }

    #[test]
    fn a_record_uses_its_explicit_key_first() {
        let plain = KinesisRecord::new("x", "a");
        assert_eq!(
            HashKey::of(&plain).unwrap(),
            HashKey::from_partition_key("a")
        );
        let explicit = plain.clone().with_explicit_hash_key("7");
        assert_eq!(HashKey::of(&explicit).unwrap().value(), 7);
        let invalid = plain.with_explicit_hash_key("seven");
        assert!(HashKey::of(&invalid).is_err());
    }
}
