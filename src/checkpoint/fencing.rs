//! [`FencingToken`]: the lease a leased partition's records were read
//! under, for making external writes conditional on still holding it.
//!
//! A lease worker can lose a lease without knowing it at once: a process
//! paused past its lease duration (a stop signal, a long pause, a network
//! cut) resumes and, until its next write to the lease table fails, may
//! still hand out records it had fetched. Its checkpoints are fenced by the
//! table; an effect it writes elsewhere is not, unless that write carries a
//! fencing token and the store refuses tokens older than the newest it saw.
//!
//! **Guarantee.** The epoch is the lease's `leaseCounter` right after this
//! worker took it. Every take of a lease increments the counter past every
//! value it had, renewals included, so a later holder of a partition
//! always has a strictly greater epoch than every earlier holder
//! (as long as the lease item is never deleted and recreated, which the
//! crate never does). One holder keeps one epoch for as long as it holds
//! the lease: renewals do not change it.
//!
//! **The pattern.** Store the highest epoch written per partition beside
//! the effect, and write only when yours is at least that high (for
//! DynamoDB: `ConditionExpression: attribute_not_exists(epoch) OR epoch <=
//! :epoch`, setting `epoch = :epoch`). A stale holder's write then fails
//! instead of overwriting its successor's.

use std::sync::Arc;

/// The lease a leased partition's records were read under: partition,
/// holder and epoch; see the module docs (`src/checkpoint/fencing.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FencingToken {
    partition: Arc<str>,
    holder: Arc<str>,
    epoch: u64,
}

impl FencingToken {
    /// The token of `partition` held by `holder` from `epoch` on.
    pub fn new(partition: impl Into<Arc<str>>, holder: impl Into<Arc<str>>, epoch: u64) -> Self {
        Self {
            partition: partition.into(),
            holder: holder.into(),
            epoch,
        }
    }

    /// The partition (lease key).
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The worker holding the lease (`leaseOwner`).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The lease epoch: `leaseCounter` when the holder took the lease.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether a write carrying this token may replace one carrying
    /// `stored` (the newest written so far): same partition, and an epoch
    /// at least as high.
    pub fn may_replace(&self, stored: &FencingToken) -> bool {
        self.partition == stored.partition && self.epoch >= stored.epoch
    }
}

impl std::fmt::Display for FencingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} held by {} from epoch {}",
            self.partition, self.holder, self.epoch
        )
    }
}
