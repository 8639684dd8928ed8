//! Call planning: which entries of the queue go in the next `PutRecords`
//! call, and what that call sends to each shard.
//!
//! Guarantees: a plan takes entries from the front of the queue, in queue
//! order, among those that are ready (not in a call in flight, not backing
//! off after a failure); it holds at most 500 entries and 5 MiB (billed
//! bytes), and per paced shard no more than the shard's room in the rate
//! limiter at the moment of planning — a shard without room holds back its
//! own entries only, the call takes what fits elsewhere. A plan is empty
//! only when nothing ready fits now, and then says when to plan again (the
//! earliest end of a back-off or the next room on a shard); entries in
//! flight are waited for by the delivery loop. In ordered mode it holds at
//! most one entry per lane — one record per partition key, or one
//! aggregate per shard — and only the lane's first pending entry, so a
//! lane's entries are sent one after the other, never two in flight.
//!
//! Does not: count the call in the rate limiter (the delivery loop does
//! when it sends it), nor send anything; shards the map does not know are
//! not paced.

use hashbrown::{HashMap, HashSet};
use tokio::time::Instant;

use crate::kinesis::limits::{MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_COUNT, MAX_RECORD_BYTES};
use crate::kinesis::sink::rate_limit::{Portion, Room, ShardPortion};
use crate::kinesis::sink::shard_map::{PredictedShard, ShardMap};

use super::entries::Lane;
use super::{PutRun, Slot};

/// The entries of one call and what it sends per shard.
pub(super) struct CallPlan {
    /// Positions in the queue, in queue order.
    pub(super) entries: Vec<usize>,
    /// Per paced shard (empty when pacing is off).
    pub(super) portions: Vec<ShardPortion>,
    /// When an entry left out now may fit (`None`: none is waiting for
    /// time, only for calls in flight or for the next call).
    pub(super) wake: Option<Wake>,
}

/// When to plan again, and why.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wake {
    pub(super) at: Instant,
    /// The earliest reason is a shard's room (pacing), not a back-off.
    pub(super) for_room: bool,
}

impl Wake {
    fn earliest(wake: &mut Option<Wake>, at: Instant, for_room: bool) {
        if wake.is_none_or(|w| at < w.at) {
            *wake = Some(Wake { at, for_room });
        }
    }
}

impl PutRun<'_> {
    /// Picks the entries of the next call from the front of the queue.
    pub(super) fn plan_call(&self, map: &ShardMap, now: Instant) -> CallPlan {
        let shared = self.shared;
        let ordered = shared.options.ordered;
        let mut limiter = shared
            .options
            .rate_limit
            .is_some()
            .then(|| shared.limiter());
        let mut chosen = Vec::new();
        let mut bytes = 0usize;
        let mut seen_lanes = HashSet::new();
        let mut portions: HashMap<usize, (ShardPortion, Room)> = HashMap::new();
        let mut wake = None;
        for (i, entry, slot) in self.queue.iter_from(self.head) {
            if chosen.len() == MAX_PUT_RECORDS_COUNT {
                break;
            }
            // A lane's first pending entry blocks the rest of the lane,
            // whether or not it goes in this call.
            if ordered && !seen_lanes.insert(entry.lane) {
                continue;
            }
            let ready = match slot {
                Slot::Ready => true,
                Slot::InFlight => false,
                Slot::BackingOff(until) if until <= now => true,
                Slot::BackingOff(until) => {
                    Wake::earliest(&mut wake, until, false);
                    false
                }
            };
            if ready {
                let billed = self.billed_of(entry);
                // Validation and the aggregate size limit keep every entry
                // within the record limit: it always fits an empty call.
                debug_assert!(billed <= MAX_RECORD_BYTES);
                let fits_call = bytes + billed <= MAX_PUT_RECORDS_BYTES;
                let shard = map.shard_for(entry.hash_key);
                let fits_shard = match (&mut limiter, shard) {
                    (Some(limiter), Some(PredictedShard { index, id })) => {
                        let (planned, room) = portions.entry(index).or_insert_with(|| {
                            let room = limiter.room(id, now);
                            let planned = ShardPortion {
                                shard: id.clone(),
                                portion: Portion::default(),
                            };
                            (planned, room)
                        });
                        let fits = room.fits(planned.portion, billed as u64);
                        if !fits {
                            Wake::earliest(&mut wake, limiter.more_room_at(id, now), true);
                        }
                        fits
                    }
                    _ => true,
                };
                if fits_call && fits_shard {
                    chosen.push(i);
                    bytes += billed;
                    if let (Some(_), Some(PredictedShard { index, .. })) = (&limiter, shard) {
                        if let Some((planned, _)) = portions.get_mut(&index) {
                            planned.portion.records += 1;
                            planned.portion.bytes += billed as u64;
                        }
                    }
                }
            }
            // Every lane has had its turn: nothing further can go.
            if ordered && seen_lanes.len() == self.lane_counts.len() {
                break;
            }
        }
        // The call limits of `PutRecords`.
        debug_assert!(chosen.len() <= MAX_PUT_RECORDS_COUNT && bytes <= MAX_PUT_RECORDS_BYTES);
        // Ordered mode: each chosen entry is the first pending one of its
        // lane (so no lane has two entries in the call).
        debug_assert!(!ordered || self.each_first_of_its_lane(&chosen));
        CallPlan {
            entries: chosen,
            portions: portions
                .into_values()
                .map(|(portion, _)| portion)
                .filter(|p| p.portion.records > 0)
                .collect(),
            wake,
        }
    }

    /// Whether every entry at `chosen` is the first pending entry of its
    /// lane (for the ordered-mode assertion).
    fn each_first_of_its_lane(&self, chosen: &[usize]) -> bool {
        let mut first: HashMap<Lane, usize> = HashMap::new();
        for (i, entry, _) in self.queue.iter_from(self.head) {
            first.entry(entry.lane).or_insert(i);
        }
        chosen.iter().all(|&i| {
            self.queue
                .entry(i)
                .is_some_and(|entry| first.get(&entry.lane) == Some(&i))
        })
    }
}
