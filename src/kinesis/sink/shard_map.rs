//! The shard map: which open shard owns which hash-key range.
//!
//! The sink predicts each record's shard (to pace traffic per shard and to
//! aggregate records bound for the same shard) by looking its
//! [`HashKey`] up here. The map comes from `ListShards`,
//! keeps open shards only (no ending sequence number), and is refreshed by
//! the sink periodically and whenever a `PutRecords` answer shows a record
//! landed elsewhere than predicted (a reshard happened).
//!
//! A prediction can be wrong between a reshard and the next refresh; the
//! consequences are bounded: pacing is off for those records, and an
//! aggregate lands on the shard its first record's hash key names (which is
//! where a KCL reading it expects its records — it filters by that shard's
//! range). Nothing is lost or misordered by a wrong prediction.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::types::Shard;

use crate::kinesis::hash_key::{HashKey, InvalidHashKey};
use crate::kinesis::StreamTarget;
use crate::Error;

/// Open shards sorted by the start of their hash-key range.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardMap {
    ranges: Vec<ShardRange>,
    /// For each of the `2^BUCKET_BITS` equal slices of the hash-key space,
    /// the index of the last range starting at or before the slice's start
    /// (0 if none): where a lookup starts, so that it costs a step or two
    /// instead of a binary search of unpredictable branches per record.
    buckets: Vec<u32>,
}

/// The lookup table splits the hash-key space by its top bits.
const BUCKET_BITS: u32 = 12;

/// A lookup walks at most this many ranges from its bucket's first one
/// before it falls back to a binary search (many ranges in one slice).
const MAX_BUCKET_STEPS: usize = 8;

#[derive(Debug, Clone)]
struct ShardRange {
    start: HashKey,
    /// Inclusive.
    end: HashKey,
    id: Arc<str>,
}

impl ShardMap {
    /// The map of the open shards among `shards`.
    pub(crate) fn from_shards<'a>(
        shards: impl IntoIterator<Item = &'a Shard>,
    ) -> Result<Self, InvalidShardRange> {
        let mut ranges = Vec::new();
        for shard in shards {
            let open = shard
                .sequence_number_range()
                .is_none_or(|r| r.ending_sequence_number().is_none());
            if !open {
                continue;
            }
            let invalid = |reason: InvalidHashKey| InvalidShardRange {
                shard: shard.shard_id().to_owned(),
                reason,
            };
            let Some(range) = shard.hash_key_range() else {
                continue;
            };
            ranges.push(ShardRange {
                start: HashKey::parse_explicit(range.starting_hash_key()).map_err(invalid)?,
                end: HashKey::parse_explicit(range.ending_hash_key()).map_err(invalid)?,
                id: Arc::from(shard.shard_id()),
            });
        }
        ranges.sort_by_key(|r| r.start);
        let buckets = (0..1u128 << BUCKET_BITS)
            .map(|bucket| {
                let first_key = HashKey::from(bucket << (128 - BUCKET_BITS));
                let after = ranges.partition_point(|r| r.start <= first_key);
                after.saturating_sub(1) as u32
            })
            .collect();
        Ok(Self { ranges, buckets })
    }

    /// The open shard whose range holds `key`, if any (a reshard in
    /// progress can leave a gap).
    pub(crate) fn shard_for(&self, key: HashKey) -> Option<PredictedShard<'_>> {
        let bucket = (key.value() >> (128 - BUCKET_BITS)) as usize;
        let mut index = *self.buckets.get(bucket)? as usize;
        let mut steps = 0;
        while let Some(next) = self.ranges.get(index + 1) {
            if next.start > key {
                break;
            }
            index += 1;
            steps += 1;
            if steps == MAX_BUCKET_STEPS {
                index = self
                    .ranges
                    .partition_point(|r| r.start <= key)
                    .checked_sub(1)?;
                break;
            }
        }
        let range = self.ranges.get(index)?;
        (range.start <= key && key <= range.end).then_some(PredictedShard {
            index,
            id: &range.id,
        })
    }

    /// Whether `id` is an open shard of the map.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.ranges.iter().any(|r| &*r.id == id)
    }

    /// The ids of the open shards, by index.
    pub(crate) fn shard_ids(&self) -> impl Iterator<Item = &Arc<str>> + '_ {
        self.ranges.iter().map(|r| &r.id)
    }

    /// Number of open shards.
    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }
}

/// The shard a hash key maps to, by [`ShardMap::shard_for`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PredictedShard<'a> {
    /// Position of the shard in the map (stable for one map).
    pub index: usize,
    pub id: &'a Arc<str>,
}

/// A shard whose hash-key range does not parse.
#[derive(Debug, thiserror::Error)]
#[error("shard {shard} has an invalid hash-key range: {reason}")]
pub(crate) struct InvalidShardRange {
    shard: String,
    reason: InvalidHashKey,
}

/// Lists the open shards of `target` (all pages).
pub(crate) async fn load(
    client: &aws_sdk_kinesis::Client,
    target: &StreamTarget,
    request_timeout: Option<Duration>,
) -> Result<ShardMap, Error> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        // A paged call names the stream only through its token.
        let request = match &next_token {
            Some(token) => client.list_shards().next_token(token),
            None => client
                .list_shards()
                .set_stream_name(target.name().map(str::to_owned))
                .set_stream_arn(target.arn().map(str::to_owned)),
        };
        let sent =
            crate::aws::request_timeout::within(request_timeout, "ListShards", request.send());
        let page = sent.await.map_err(|e| {
            Error::target(
                target.to_string(),
                format!("ListShards: {}", super::failure::describe_sdk_error(&e)),
            )
        })?;
        shards.extend_from_slice(page.shards());
        match page.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => break,
        }
    }
    ShardMap::from_shards(&shards).map_err(|e| Error::target(target.to_string(), e))
}

#[cfg(test)]
mod tests {
    use aws_sdk_kinesis::types::{HashKeyRange, SequenceNumberRange};

    use super::*;

    fn shard(id: &str, start: u128, end: u128, closed: bool) -> Shard {
        let mut seq = SequenceNumberRange::builder().starting_sequence_number("1");
        if closed {
            seq = seq.ending_sequence_number("9");
        }
        Shard::builder()
            .shard_id(id)
            .hash_key_range(
                HashKeyRange::builder()
                    .starting_hash_key(start.to_string())
                    .ending_hash_key(end.to_string())
                    .build()
                    .unwrap(),
            )
            .sequence_number_range(seq.build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn lookup_finds_the_covering_open_shard() {
        let half = u128::MAX / 2;
        let shards = [
            shard("closed-parent", 0, u128::MAX, true),
            shard("upper", half + 1, u128::MAX, false),
            shard("lower", 0, half, false),
        ];
        let map = ShardMap::from_shards(&shards).unwrap();
        assert_eq!(map.len(), 2);
        let id = |k: u128| {
            map.shard_for(HashKey::from(k))
                .map(|shard| shard.id.to_string())
        };
        assert_eq!(id(0).as_deref(), Some("lower"));
        assert_eq!(id(half).as_deref(), Some("lower"));
        assert_eq!(id(half + 1).as_deref(), Some("upper"));
        assert_eq!(id(u128::MAX).as_deref(), Some("upper"));
        assert!(map.contains("upper") && !map.contains("closed-parent"));
    }

    /// The answer of a plain binary search, which the table must match.
    fn reference(map: &ShardMap, key: HashKey) -> Option<usize> {
        let index = map
            .ranges
            .partition_point(|r| r.start <= key)
            .checked_sub(1)?;
        (key <= map.ranges[index].end).then_some(index)
    }

    #[test]
    fn the_lookup_table_agrees_with_a_binary_search_on_any_layout() {
        let even = |n: u128| -> Vec<Shard> {
            let width = u128::MAX / n;
            (0..n)
                .map(|i| {
                    let end = if i == n - 1 {
                        u128::MAX
                    } else {
                        width * (i + 1) - 1
                    };
                    shard(&format!("even-{i}"), width * i, end, false)
                })
                .collect()
        };
        // 300 narrow shards crowded into the first slice of the table, then
        // one wide shard, a gap, and a last shard.
        let mut crowded: Vec<Shard> = (0..300u128)
            .map(|i| shard(&format!("narrow-{i}"), i * 1000, i * 1000 + 999, false))
            .collect();
        crowded.push(shard("wide", 300_000, u128::MAX / 2, false));
        crowded.push(shard("last", u128::MAX / 2 + 1000, u128::MAX, false));
        let layouts = [even(1), even(3), even(256), even(5000), crowded];
        let mut state = 0x9e37_79b9_7f4a_7c15_u128;
        for shards in &layouts {
            let map = ShardMap::from_shards(shards).unwrap();
            let mut keys = vec![0, 1, u128::MAX, u128::MAX / 2, u128::MAX / 2 + 999];
            for range in &map.ranges {
                let (start, end) = (range.start.value(), range.end.value());
                keys.extend([start, end, start.saturating_sub(1), end.saturating_add(1)]);
            }
            for _ in 0..20_000 {
                state = state
                    .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                    .wrapping_add(0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f);
                keys.push(state);
                keys.push(state >> 100); // small keys, in the crowded slice
            }
            for key in keys {
                let key = HashKey::from(key);
                assert_eq!(
                    map.shard_for(key).map(|shard| shard.index),
                    reference(&map, key),
                    "{} shards, key {key}",
                    map.len()
                );
            }
        }
    }

    #[test]
    fn gaps_predict_nothing() {
        let map = ShardMap::from_shards(&[shard("mid", 100, 200, false)]).unwrap();
        assert!(map.shard_for(HashKey::from(99)).is_none());
        assert!(map.shard_for(HashKey::from(201)).is_none());
        assert_eq!(
            map.shard_for(HashKey::from(150)).map(|shard| shard.index),
            Some(0)
        );
        assert!(ShardMap::default().shard_for(HashKey::MIN).is_none());
    }

    #[test]
    fn an_unparsable_range_is_an_error() {
        let bad = Shard::builder()
            .shard_id("s")
            .hash_key_range(
                HashKeyRange::builder()
                    .starting_hash_key("zero")
                    .ending_hash_key("1")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let err = ShardMap::from_shards(&[bad]).unwrap_err();
        assert!(err.to_string().contains("shard s"));
    }
}
