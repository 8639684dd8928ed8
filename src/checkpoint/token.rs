//! Checkpoint tokens, and [`AsCheckpointToken`] for items that carry one.
//!
//! A source yields every record with a [`CheckpointToken`]. The token names
//! the partition the record came from (shard id, file path, …), the record's
//! [`Position`] in it, and the record's place in the partition's delivery
//! order (`seq`: 0, 1, 2, … for each partition, per run of the source, with
//! no gaps; a leased source numbers from 0 again when it reads a partition
//! again under a new lease, whose tokens carry a new [`PartitionControl`]). The `seq` is what lets a checkpointer tell, when tokens come
//! back out of order, whether everything before a token has been seen.
//!
//! A token may also carry the partition's [`PartitionControl`]: the shared
//! switch a checkpointer flips when the partition's lease is lost (a fenced
//! checkpoint write), so the source stops reading that partition.
//!
//! Tokens are cheap to clone (the partition name is shared).

use std::sync::Arc;

use super::control::PartitionControl;
use super::position::Position;

/// A record's checkpoint identity: partition, position and delivery order.
#[derive(Debug, Clone)]
pub struct CheckpointToken {
    partition: Arc<str>,
    position: Position,
    seq: u64,
    control: Option<PartitionControl>,
}

impl CheckpointToken {
    /// The token of the `seq`-th record (from 0, per partition, no gaps)
    /// delivered from `partition`, at `position`.
    #[inline]
    pub fn new(partition: impl Into<Arc<str>>, position: Position, seq: u64) -> Self {
        Self {
            partition: partition.into(),
            position,
            seq,
            control: None,
        }
    }

    /// Attaches the partition's control switch.
    #[inline]
    #[must_use = "returns the token with the control; the original is moved"]
    pub fn with_control(mut self, control: PartitionControl) -> Self {
        self.control = Some(control);
        self
    }

    /// The partition the record came from.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The partition name as a shared string (cheap to clone).
    #[inline]
    pub fn partition_arc(&self) -> &Arc<str> {
        &self.partition
    }

    /// The record's position in its partition.
    #[inline]
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// The record's place in the partition's delivery order.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The lease this record was read under, for a leased partition: make
    /// external writes of its effects conditional on it (see
    /// [`FencingToken`](super::FencingToken)).
    pub fn fencing(&self) -> Option<&super::FencingToken> {
        self.control.as_ref().and_then(PartitionControl::fencing)
    }

    /// The partition's control switch, when the source attached one.
    #[inline]
    pub fn control(&self) -> Option<&PartitionControl> {
        self.control.as_ref()
    }
}

/// An item that carries a [`CheckpointToken`]: a token itself, or a
/// `(value, token)` pair as sources yield and handlers usually return.
///
/// [`checkpoint_batched`](super::CheckpointStreamExt::checkpoint_batched) counts the
/// token and passes the rest of the item on: [`Value`](Self::Value).
pub trait AsCheckpointToken {
    /// What is left of the item once its token is counted.
    type Value;

    /// The token of this item.
    fn checkpoint_token(&self) -> &CheckpointToken;

    /// The item without its token.
    fn into_value(self) -> Self::Value;
}

impl AsCheckpointToken for CheckpointToken {
    type Value = ();

    #[inline]
    fn checkpoint_token(&self) -> &CheckpointToken {
        self
    }

    #[inline]
    fn into_value(self) {}
}

impl<T> AsCheckpointToken for (T, CheckpointToken) {
    type Value = T;

    #[inline]
    fn checkpoint_token(&self) -> &CheckpointToken {
        &self.1
    }

    #[inline]
    fn into_value(self) -> T {
        self.0
    }
}
