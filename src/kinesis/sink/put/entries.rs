//! The entries of a batch: the Kinesis records a run puts, one per user
//! record or one per KPL aggregate of several, each with its ordering
//! [`Lane`].
//!
//! Guarantees: every validated record is in exactly one entry, or is
//! refused (an explicit hash key the aggregator cannot use) and reported so,
//! never dropped; an aggregate holds records bound for one predicted shard
//! (or, outside the map, one hash key), in the order they were fed, and
//! stays within the configured aggregate size; entries come out in batch
//! order (by their first record), so each lane's entries keep the order of
//! its records. Each shard's last aggregate is left *open*
//! ([`OpenAggregate`]): until the run seals it (to send it, or because
//! another aggregate follows it), the next batch's records for that shard
//! are added to it first — they come after all of the lane's records so
//! far, so the lane's order holds — and the entry then carries records of
//! several batches ([`PutEntry::records`]). Large batches (from
//! [`PARALLEL_AGGREGATION_RECORDS`] records on known shards) are aggregated
//! by two threads, with the same result as one.
//!
//! Does not: validate records (the caller passes validated ones with their
//! hash keys), choose which entries go in a call (`plan.rs`), decide when
//! an open aggregate is sealed (the run does), nor guarantee that a
//! prediction holds: an aggregate lands where its first record's hash key
//! says, which is where each of its records would have landed unless the
//! map is stale.

use std::collections::HashMap;

use crate::kinesis::aggregation::{Aggregator, Refused};
use crate::kinesis::hash_key::{HashKey, InvalidHashKey};
use crate::kinesis::sink::shard_map::ShardMap;
use crate::kinesis::KinesisRecord;

use super::shared::SinkShared;

/// Batches of at least this many records (bound for known shards) are
/// aggregated by two threads; below it, a thread costs more than it saves.
const PARALLEL_AGGREGATION_RECORDS: usize = 8192;

/// The ordering unit of ordered mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Lane {
    /// Records of one partition key (by its MD5).
    Key(u128),
    /// Aggregates bound for one predicted shard (by index in the map used
    /// to build them) or, without a prediction, for one hash key.
    Shard(usize),
    HashKey(u128),
}

/// The user records an entry carries, by index in the batch.
#[derive(Debug)]
pub(super) enum BatchIndices {
    One(usize),
    Many(Vec<usize>),
}

impl BatchIndices {
    pub(super) fn as_slice(&self) -> &[usize] {
        match self {
            BatchIndices::One(i) => std::slice::from_ref(i),
            BatchIndices::Many(v) => v,
        }
    }
}

/// What an entry puts: one user record of the batch, or an aggregate.
#[derive(Debug)]
enum EntryBody {
    User(usize),
    Aggregate(KinesisRecord),
    /// An aggregate still taking records: the run's [`OpenAggregate`] of
    /// its shard holds it until it is sealed.
    Open,
}

/// A shard's open aggregate: the last entry of the shard's lane, not sent
/// yet and not full, so the records a later batch has for the shard are
/// added to it instead of starting an aggregate of their own (in ordered
/// mode a shard has one aggregate in flight: what waits behind it should
/// be one full aggregate, not one small one per batch fed meanwhile).
#[derive(Debug)]
pub(super) struct OpenAggregate {
    /// Its entry's position in the queue.
    pub(super) position: usize,
    pub(super) aggregator: Aggregator,
}

/// Records of a batch after an entry's own that its aggregate took in (as
/// an open aggregate).
#[derive(Debug)]
pub(super) struct LaterRecords {
    pub(super) batch: usize,
    pub(super) indices: Vec<usize>,
}

/// One Kinesis record to put.
#[derive(Debug)]
pub(super) struct PutEntry {
    body: EntryBody,
    pub(super) hash_key: HashKey,
    pub(super) lane: Lane,
    pub(super) indices: BatchIndices,
    /// Calls that failed for it so far.
    pub(super) attempts: u32,
    /// The number of its batch in the run (set by the run): `indices`
    /// are its records in that batch.
    pub(super) batch: usize,
    /// Records of later batches (an open aggregate took them in).
    pub(super) later: Vec<LaterRecords>,
}

impl PutEntry {
    fn new(body: EntryBody, hash_key: HashKey, lane: Lane, indices: BatchIndices) -> Self {
        Self {
            body,
            hash_key,
            lane,
            indices,
            attempts: 0,
            batch: 0,
            later: Vec::new(),
        }
    }

    /// The Kinesis record it puts, given its batch's records; `None` while
    /// it is an open aggregate (sealing it makes the record).
    pub(super) fn record<'a>(&'a self, batch: &'a [KinesisRecord]) -> Option<&'a KinesisRecord> {
        match &self.body {
            EntryBody::User(index) => batch.get(*index),
            EntryBody::Aggregate(record) => Some(record),
            EntryBody::Open => None,
        }
    }

    /// Whether it is an open aggregate.
    pub(super) fn is_open(&self) -> bool {
        matches!(self.body, EntryBody::Open)
    }

    /// Ends it as an open aggregate: `aggregator` (its shard's open one)
    /// becomes the record it puts.
    pub(super) fn seal(&mut self, aggregator: &mut Aggregator) {
        debug_assert!(self.is_open());
        debug_assert_eq!(aggregator.len() as u64, self.record_count());
        let record = aggregator.finish();
        self.body = match (record, self.indices.as_slice()) {
            // Alone, the "aggregate" is the user record itself.
            (_, [one]) if self.later.is_empty() => EntryBody::User(*one),
            (Some(record), _) => EntryBody::Aggregate(record),
            // An open aggregate always holds a record.
            (None, _) => EntryBody::User(self.indices.as_slice()[0]),
        };
    }

    /// Its records: `(batch number, indices in that batch)`, in order.
    pub(super) fn records(&self) -> impl Iterator<Item = (usize, &[usize])> + '_ {
        std::iter::once((self.batch, self.indices.as_slice())).chain(
            self.later
                .iter()
                .map(|later| (later.batch, later.indices.as_slice())),
        )
    }

    /// Number of user records it carries.
    pub(super) fn record_count(&self) -> u64 {
        self.records()
            .map(|(_, indices)| indices.len() as u64)
            .sum()
    }
}

/// A record of the batch that passed validation, with its hash key.
#[derive(Debug, Clone, Copy)]
pub(super) struct ValidRecord {
    pub(super) index: usize,
    pub(super) hash_key: HashKey,
}

/// A record the aggregator refused (kept so that nothing is ever dropped
/// silently: the caller rejects it).
#[derive(Debug)]
pub(super) struct RefusedRecord {
    pub(super) index: usize,
    pub(super) reason: InvalidHashKey,
}

/// The entries of a batch and the records that could not go in one.
#[derive(Debug, Default)]
pub(super) struct BuiltEntries {
    pub(super) entries: Vec<PutEntry>,
    pub(super) refused: Vec<RefusedRecord>,
    /// Records added to the open aggregates of earlier batches.
    pub(super) joined: Vec<Joined>,
    /// The new open aggregates, by shard: the last aggregate of each shard
    /// the batch has records for (its entry is in `entries`, open).
    pub(super) opened: Vec<(usize, Aggregator)>,
}

/// What a batch added to a shard's open aggregate of an earlier batch.
#[derive(Debug)]
pub(super) struct Joined {
    pub(super) shard: usize,
    pub(super) indices: Vec<usize>,
}

/// Turns the `valid` records of `batch` into entries, aggregating when
/// enabled (with two threads from [`PARALLEL_AGGREGATION_RECORDS`]
/// records). With aggregation, a shard's records go first to its open
/// aggregate in `open` (by shard index in `map`, which must be the map the
/// open aggregates were built with), and each shard's last aggregate is
/// left open (in [`BuiltEntries::opened`]).
pub(super) fn build_entries(
    shared: &SinkShared,
    batch: &[KinesisRecord],
    valid: Vec<ValidRecord>,
    map: &ShardMap,
    open: &mut [Option<OpenAggregate>],
    max_bytes_by_shard: &[usize],
) -> BuiltEntries {
    let Some(max_bytes) = shared.options.aggregation else {
        let mut hash_keys = shared.hash_keys();
        let entries = valid
            .into_iter()
            .map(|ValidRecord { index, hash_key }| {
                let record = &batch[index];
                let lane = Lane::Key(match record.explicit_hash_key {
                    None => hash_key.value(),
                    Some(_) => hash_keys.of_partition_key(&record.partition_key).value(),
                });
                PutEntry::new(
                    EntryBody::User(index),
                    hash_key,
                    lane,
                    BatchIndices::One(index),
                )
            })
            .collect();
        return BuiltEntries {
            entries,
            ..BuiltEntries::default()
        };
    };

    let valid_records = valid.len();
    // Lanes by shard index; records outside the map (a reshard in
    // progress) by hash key. A first pass counts each shard's records
    // and bytes, so that its aggregates are allocated once.
    let shards: Vec<Option<usize>> = valid
        .iter()
        .map(|record| map.shard_for(record.hash_key).map(|shard| shard.index))
        .collect();
    let mut shard_totals = vec![ShardTotal::default(); map.len()];
    for (record, shard) in valid.iter().zip(&shards) {
        if let Some(shard) = *shard {
            shard_totals[shard].records += 1;
            shard_totals[shard].bytes += batch[record.index].data.len();
        }
    }
    // Each shard's records in batch order (a stable counting sort), so
    // that one aggregator fills a shard's aggregates at a time: what it
    // works on stays in the CPU caches, instead of one aggregator per
    // shard being touched in turn.
    let mut next = Vec::with_capacity(map.len());
    let mut placed = 0;
    for total in &shard_totals {
        next.push(placed);
        placed += total.records;
    }
    let unset = ValidRecord {
        index: 0,
        hash_key: HashKey::MIN,
    };
    let mut by_shard = vec![unset; placed];
    let mut unplaced = Vec::new();
    for (&record, shard) in valid.iter().zip(&shards) {
        match *shard {
            Some(shard) => {
                by_shard[next[shard]] = record;
                next[shard] += 1;
            }
            None => unplaced.push(record),
        }
    }
    // Fills the aggregates of the shards in `shards`, whose records
    // start at `start` in `by_shard`; `open` holds the open aggregates of
    // these shards (`open[0]` is the first shard's).
    let aggregate =
        |shards: std::ops::Range<usize>, mut start: usize, open: &mut [Option<OpenAggregate>]| {
            let mut built = BuiltEntries::default();
            let first_shard = shards.start;
            for shard in shards {
                let ShardTotal { records, bytes } = shard_totals[shard];
                if records == 0 {
                    continue;
                }
                let lane = Lane::Shard(shard);
                let mut rest = &by_shard[start..start + records];
                start += records;
                // The shard's open aggregate comes before this batch's records
                // in the lane: it takes them first, until it is full.
                if let Some(Some(open)) = open.get_mut(shard - first_shard) {
                    let mut joined = Vec::new();
                    while let Some((&record, more)) = rest.split_first() {
                        let user = &batch[record.index];
                        match open.aggregator.try_add_with_hash_key(user, record.hash_key) {
                            Ok(()) => joined.push(record.index),
                            Err(Refused::Full) => break,
                            Err(Refused::InvalidHashKey(reason)) => {
                                built.refused.push(RefusedRecord {
                                    index: record.index,
                                    reason,
                                });
                            }
                        }
                        rest = more;
                    }
                    if !joined.is_empty() {
                        built.joined.push(Joined {
                            shard,
                            indices: joined,
                        });
                    }
                    if rest.is_empty() {
                        continue;
                    }
                }
                let max_bytes = max_bytes_by_shard.get(shard).copied().unwrap_or(max_bytes);
                let mut group = AggregateGroup::new(max_bytes, rest.len(), bytes);
                for &record in rest {
                    add_to_group(lane, &mut group, &batch[record.index], record, &mut built);
                }
                // The shard's last aggregate stays open for later batches.
                if let Some(hash_key) = group.hash_key.take() {
                    let indices = std::mem::take(&mut group.indices);
                    let indices = match indices.as_slice() {
                        [one] => BatchIndices::One(*one),
                        _ => BatchIndices::Many(indices),
                    };
                    built
                        .entries
                        .push(PutEntry::new(EntryBody::Open, hash_key, lane, indices));
                    built.opened.push((shard, group.aggregator));
                }
            }
            built
        };
    // A large batch is aggregated by two threads, each taking the shards
    // of about half its records: building aggregates (copies, the MD5
    // the format requires) is most of the CPU time of a batch, and it
    // sits on the delivery path. Entries are put in batch order below,
    // whichever thread built them.
    let mut built = if placed >= PARALLEL_AGGREGATION_RECORDS {
        let (mut split, mut before) = (0, 0);
        while split < shard_totals.len() && before + shard_totals[split].records <= placed / 2 {
            before += shard_totals[split].records;
            split += 1;
        }
        let (open_first, open_second) = open.split_at_mut(split.min(open.len()));
        std::thread::scope(|scope| {
            let first_half = scope.spawn(|| aggregate(0..split, 0, open_first));
            let mut built = aggregate(split..shard_totals.len(), before, open_second);
            match first_half.join() {
                Ok(more) => {
                    built.entries.extend(more.entries);
                    built.refused.extend(more.refused);
                    built.joined.extend(more.joined);
                    built.opened.extend(more.opened);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
            built
        })
    } else {
        aggregate(0..shard_totals.len(), 0, open)
    };
    let mut by_hash_key: HashMap<u128, AggregateGroup> = HashMap::new();
    for record in unplaced {
        let lane = Lane::HashKey(record.hash_key.value());
        let group = by_hash_key
            .entry(record.hash_key.value())
            .or_insert_with(|| AggregateGroup::new(max_bytes, 0, 0));
        add_to_group(lane, group, &batch[record.index], record, &mut built);
    }
    for (hash_key, group) in by_hash_key.iter_mut() {
        finish_group(Lane::HashKey(*hash_key), group, &mut built.entries);
    }
    // Lanes must keep batch order; across lanes any order would do, and
    // batch order is the natural one.
    built.entries.sort_by_key(|e| e.indices.as_slice()[0]);
    // Each validated record is in exactly one entry (or open aggregate of
    // an earlier batch) or refused: none is lost or put twice by the
    // grouping above.
    debug_assert_eq!(
        built
            .entries
            .iter()
            .map(|e| e.indices.as_slice().len())
            .sum::<usize>()
            + built.joined.iter().map(|j| j.indices.len()).sum::<usize>()
            + built.refused.len(),
        valid_records
    );
    built
}

/// Records and data bytes of a batch bound for one shard.
#[derive(Debug, Clone, Copy, Default)]
struct ShardTotal {
    records: usize,
    bytes: usize,
}

/// The aggregate being filled for one lane.
struct AggregateGroup {
    aggregator: Aggregator,
    indices: Vec<usize>,
    hash_key: Option<HashKey>,
}

impl AggregateGroup {
    fn new(max_bytes: usize, records: usize, bytes: usize) -> Self {
        let mut aggregator = Aggregator::new(max_bytes);
        aggregator.reserve(records, bytes);
        Self {
            aggregator,
            indices: Vec::with_capacity(records),
            hash_key: None,
        }
    }
}

/// Ends `group`'s aggregate, if any, as an entry of `lane`.
fn finish_group(lane: Lane, group: &mut AggregateGroup, entries: &mut Vec<PutEntry>) {
    let (Some(record), Some(hash_key)) = (group.aggregator.finish(), group.hash_key.take()) else {
        return;
    };
    let indices = std::mem::take(&mut group.indices);
    // An aggregate's records are added in batch order: the lane's order
    // (and the sort by first index) relies on it.
    debug_assert!(indices.windows(2).all(|w| w[0] < w[1]));
    let (body, indices) = match indices.as_slice() {
        // Alone, the "aggregate" is the user record itself.
        [one] => (EntryBody::User(*one), BatchIndices::One(*one)),
        _ => (EntryBody::Aggregate(record), BatchIndices::Many(indices)),
    };
    entries.push(PutEntry::new(body, hash_key, lane, indices));
}

/// Adds a record to its lane's aggregate, finishing the aggregate first
/// when it is full; a record it cannot take goes to `built.refused`.
fn add_to_group(
    lane: Lane,
    group: &mut AggregateGroup,
    user: &KinesisRecord,
    record: ValidRecord,
    built: &mut BuiltEntries,
) {
    loop {
        // The hash key is valid: validation computed it.
        match group
            .aggregator
            .try_add_with_hash_key(user, record.hash_key)
        {
            Ok(()) => {
                group.indices.push(record.index);
                group.hash_key.get_or_insert(record.hash_key);
                return;
            }
            // The first record of an aggregate is always taken, so
            // this loops at most twice.
            Err(Refused::Full) => finish_group(lane, group, &mut built.entries),
            // Kept so that nothing is ever dropped silently.
            Err(Refused::InvalidHashKey(reason)) => {
                built.refused.push(RefusedRecord {
                    index: record.index,
                    reason,
                });
                return;
            }
        }
    }
}
