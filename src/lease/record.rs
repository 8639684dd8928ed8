//! [`Lease`]: one partition's row in a lease table, as every backend stores
//! it (the KCL 2.x layout, with the KCL 3 `checkpointOwner` of a handoff).
//!
//! Who may read and checkpoint the partition is the lease's
//! [`holder`](Lease::holder): its `checkpoint_owner` while a handoff is
//! pending (the old owner finishes and checkpoints, the new owner waits),
//! its `owner` otherwise. Every write is conditional on `counter` and
//! increments it, so a counter names one state of the row exactly.

use std::fmt;

use crate::checkpoint::Position;

/// One partition's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The partition (a Kinesis shard id) — `leaseKey`.
    pub key: String,
    /// The worker the lease belongs to (during a handoff: the worker taking
    /// it over) — `leaseOwner`; `None` when nobody holds it.
    pub owner: Option<String>,
    /// Incremented by every write — `leaseCounter`.
    pub counter: u64,
    /// How far the partition is processed — `checkpoint` and
    /// `checkpointSubSequenceNumber`.
    pub checkpoint: LeaseCheckpoint,
    /// During a handoff, the worker giving the lease up, which still reads
    /// and checkpoints until it releases — `checkpointOwner`.
    pub checkpoint_owner: Option<String>,
    /// Owner changes since the last checkpoint — `ownerSwitchesSinceCheckpoint`.
    pub owner_switches_since_checkpoint: u64,
    /// Partitions that must be finished before this one is read —
    /// `parentShardId`.
    pub parents: Vec<String>,
    /// Partitions created from this one (resharding) — `childShardIds`.
    pub children: Vec<String>,
    /// The hash keys of the partition — `startingHashKey`, `endingHashKey`.
    pub hash_range: Option<HashRange>,
}

impl Lease {
    /// A lease nobody holds yet, at counter 0.
    pub fn new(key: impl Into<String>, checkpoint: LeaseCheckpoint) -> Self {
        Self {
            key: key.into(),
            owner: None,
            counter: 0,
            checkpoint,
            checkpoint_owner: None,
            owner_switches_since_checkpoint: 0,
            parents: Vec::new(),
            children: Vec::new(),
            hash_range: None,
        }
    }

    /// This lease with `parents`.
    pub fn with_parents(mut self, parents: Vec<String>) -> Self {
        self.parents = parents;
        self
    }

    /// This lease with a hash key range.
    pub fn with_hash_range(mut self, range: HashRange) -> Self {
        self.hash_range = Some(range);
        self
    }

    /// The worker that may read and checkpoint the partition now: the
    /// checkpoint owner during a handoff, the owner otherwise.
    pub fn holder(&self) -> Option<&str> {
        self.checkpoint_owner.as_deref().or(self.owner.as_deref())
    }

    /// Whether a handoff is pending: the owner named is waiting for the
    /// checkpoint owner to release.
    pub fn handoff_pending(&self) -> bool {
        self.checkpoint_owner.is_some()
    }

    /// Whether the partition is finished (`SHARD_END`).
    pub fn is_finished(&self) -> bool {
        self.checkpoint == LeaseCheckpoint::At(Position::End)
    }
}

/// Where a lease's partition is processed up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseCheckpoint {
    /// Nothing processed yet: start at the oldest record (`TRIM_HORIZON`).
    TrimHorizon,
    /// Nothing processed yet: start at the newest record (`LATEST`).
    Latest,
    /// Nothing processed yet: start at the configured timestamp
    /// (`AT_TIMESTAMP`; the timestamp itself is configuration, as in the KCL).
    AtTimestamp,
    /// Processed up to and including this position; [`Position::End`] is
    /// `SHARD_END`.
    At(Position),
}

impl LeaseCheckpoint {
    /// The checkpointed position, `None` for the start sentinels.
    pub fn position(&self) -> Option<&Position> {
        match self {
            LeaseCheckpoint::At(position) => Some(position),
            _ => None,
        }
    }
}

impl fmt::Display for LeaseCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaseCheckpoint::TrimHorizon => f.write_str("TRIM_HORIZON"),
            LeaseCheckpoint::Latest => f.write_str("LATEST"),
            LeaseCheckpoint::AtTimestamp => f.write_str("AT_TIMESTAMP"),
            LeaseCheckpoint::At(Position::End) => f.write_str("SHARD_END"),
            LeaseCheckpoint::At(position) => write!(f, "{position}"),
        }
    }
}

/// The hash keys a partition covers, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashRange {
    /// The first hash key.
    pub start: u128,
    /// The last hash key.
    pub end: u128,
}
