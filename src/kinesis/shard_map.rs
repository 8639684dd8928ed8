//! The shard map: which open shard owns which hash-key range.
//!
//! The sink predicts each record's shard (to pace traffic per shard and to
//! aggregate records bound for the same shard) by looking its
//! [`HashKey`](super::HashKey) up here. The map comes from `ListShards`,
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

use aws_sdk_kinesis::types::Shard;

use super::hash_key::{HashKey, InvalidHashKey};
use super::target::StreamTarget;
use crate::Error;

/// Open shards sorted by the start of their hash-key range.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardMap {
    ranges: Vec<ShardRange>,
}

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
        Ok(Self { ranges })
    }

    /// The index and id of the open shard whose range holds `key`, if any
    /// (a reshard in progress can leave a gap).
    pub(crate) fn shard_for(&self, key: HashKey) -> Option<(usize, &Arc<str>)> {
        let after = self.ranges.partition_point(|r| r.start <= key);
        let index = after.checked_sub(1)?;
        let range = &self.ranges[index];
        (key <= range.end).then_some((index, &range.id))
    }

    /// Whether `id` is an open shard of the map.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.ranges.iter().any(|r| &*r.id == id)
    }

    /// Number of open shards.
    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }
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
        let page = request.send().await.map_err(|e| {
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
                .map(|(_, id)| id.to_string())
        };
        assert_eq!(id(0).as_deref(), Some("lower"));
        assert_eq!(id(half).as_deref(), Some("lower"));
        assert_eq!(id(half + 1).as_deref(), Some("upper"));
        assert_eq!(id(u128::MAX).as_deref(), Some("upper"));
        assert!(map.contains("upper") && !map.contains("closed-parent"));
    }

    #[test]
    fn gaps_predict_nothing() {
        let map = ShardMap::from_shards(&[shard("mid", 100, 200, false)]).unwrap();
        assert!(map.shard_for(HashKey::from(99)).is_none());
        assert!(map.shard_for(HashKey::from(201)).is_none());
        assert_eq!(map.shard_for(HashKey::from(150)).map(|(i, _)| i), Some(0));
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
