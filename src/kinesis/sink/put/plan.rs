//! Call planning: which entries of the queue go in the next `PutRecords`
//! call, and what that call sends to each shard.
//!
//! Guarantees: a plan takes entries from the front of the queue, in queue
//! order; it holds at most 500 entries and 5 MiB (billed bytes), and per
//! shard no more than one call's allowance of the rate limiter; it is never
//! empty while an entry is pending (the first pending entry always fits an
//! empty call). In ordered mode it holds at most one entry per lane — one
//! record per partition key, or one aggregate per shard — and only the
//! lane's first pending entry, so a lane's entries are sent one after the
//! other.
//!
//! Does not: reserve the rate limiter's room (the delivery loop does, and
//! waits for it), nor send anything; shards the map does not know are not
//! paced.

use std::collections::{HashMap, HashSet};

use crate::kinesis::limits::{MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_COUNT, MAX_RECORD_BYTES};
use crate::kinesis::sink::rate_limit::{Portion, ShardPortion};
use crate::kinesis::sink::shard_map::{PredictedShard, ShardMap};

use super::entries::Lane;
use super::PutRun;

/// The entries of one call and what it sends per shard.
pub(super) struct CallPlan {
    /// Positions in the queue, in queue order.
    pub(super) entries: Vec<usize>,
    /// Per paced shard (empty when pacing is off).
    pub(super) portions: Vec<ShardPortion>,
}

impl PutRun<'_> {
    /// Picks the entries of the next call from the front of the queue.
    pub(super) fn plan_call(&self, map: &ShardMap) -> CallPlan {
        let shared = self.shared;
        let ordered = shared.options.ordered;
        let limiter = shared
            .options
            .rate_limit
            .is_some()
            .then(|| shared.limiter());
        let mut chosen = Vec::new();
        let mut bytes = 0usize;
        let mut seen_lanes = HashSet::new();
        let mut portions: HashMap<usize, ShardPortion> = HashMap::new();
        for (i, slot) in self.queue.iter().enumerate().skip(self.head) {
            let Some(entry) = slot else { continue };
            if chosen.len() == MAX_PUT_RECORDS_COUNT {
                break;
            }
            // A lane's first pending entry blocks the rest of the lane,
            // whether or not it fits in this call.
            if ordered && !seen_lanes.insert(entry.lane) {
                continue;
            }
            let billed = entry.record(&self.progress.batch).billed_bytes();
            // Validation and the aggregate size limit keep every entry
            // within the record limit: the first one always fits an empty
            // call, so a plan is never empty.
            debug_assert!(billed <= MAX_RECORD_BYTES);
            let fits_call = bytes + billed <= MAX_PUT_RECORDS_BYTES;
            let shard = map.shard_for(entry.hash_key);
            let fits_shard = match (&limiter, shard) {
                (Some(limiter), Some(PredictedShard { index, id })) => {
                    let portion = portions
                        .get(&index)
                        .map_or(Portion::default(), |p| p.portion);
                    limiter.call_has_room(id, portion, billed as u64)
                }
                _ => true,
            };
            if fits_call && fits_shard {
                chosen.push(i);
                bytes += billed;
                if let (Some(_), Some(PredictedShard { index, id })) = (&limiter, shard) {
                    let p = &mut portions
                        .entry(index)
                        .or_insert_with(|| ShardPortion {
                            shard: id.clone(),
                            portion: Portion::default(),
                        })
                        .portion;
                    p.records += 1;
                    p.bytes += billed as u64;
                }
            }
            // Every lane has had its turn: nothing further can go.
            if ordered && seen_lanes.len() == self.lane_counts.len() {
                break;
            }
        }
        // The delivery loop plans only while an entry is pending, and the
        // first pending entry always fits: every call makes progress.
        debug_assert!(!chosen.is_empty());
        // The call limits of `PutRecords`.
        debug_assert!(chosen.len() <= MAX_PUT_RECORDS_COUNT && bytes <= MAX_PUT_RECORDS_BYTES);
        // Ordered mode: each chosen entry is the first pending one of its
        // lane (so no lane has two entries in the call).
        debug_assert!(!ordered || self.each_first_of_its_lane(&chosen));
        CallPlan {
            entries: chosen,
            portions: portions.into_values().collect(),
        }
    }

    /// Whether every entry at `chosen` is the first pending entry of its
    /// lane (for the ordered-mode assertion).
    fn each_first_of_its_lane(&self, chosen: &[usize]) -> bool {
        let mut first: HashMap<Lane, usize> = HashMap::new();
        for (i, slot) in self.queue.iter().enumerate().skip(self.head) {
            if let Some(entry) = slot {
                first.entry(entry.lane).or_insert(i);
            }
        }
        chosen.iter().all(|&i| {
            self.queue[i]
                .as_ref()
                .is_some_and(|entry| first.get(&entry.lane) == Some(&i))
        })
    }
}
