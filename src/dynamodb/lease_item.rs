//! The KCL 2.x lease item: attribute names, checkpoint sentinels, and
//! reading an item into a [`Lease`] or a [`Position`].
//!
//! Reading is strict where a wrong value would move a checkpoint (a
//! `leaseCounter` or `checkpoint` of the wrong type or form is
//! [`CheckpointError::Corrupt`] naming the table and item) and lenient
//! where it only informs (an unreadable `ownerSwitchesSinceCheckpoint`
//! reads as 0).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::checkpoint::{CheckpointError, Position, SequenceNumber};

/// The KCL 2.x lease table attribute names.
pub(crate) mod attr {
    pub const KEY: &str = "leaseKey";
    pub const OWNER: &str = "leaseOwner";
    pub const COUNTER: &str = "leaseCounter";
    pub const CHECKPOINT: &str = "checkpoint";
    pub const SUB_SEQUENCE: &str = "checkpointSubSequenceNumber";
    pub const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
    pub const PARENTS: &str = "parentShardId";
    pub const CHILDREN: &str = "childShardIds";
}

/// The KCL's checkpoint sentinels.
pub(crate) mod sentinel {
    pub const TRIM_HORIZON: &str = "TRIM_HORIZON";
    pub const LATEST: &str = "LATEST";
    pub const AT_TIMESTAMP: &str = "AT_TIMESTAMP";
    pub const SHARD_END: &str = "SHARD_END";
}

/// A lease item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The partition (shard id).
    pub key: String,
    /// The last writer's owner name.
    pub owner: Option<String>,
    /// The lease counter.
    pub counter: u64,
    /// The checkpoint: `None` for no checkpoint or a sentinel other than
    /// `SHARD_END` (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`).
    pub position: Option<Position>,
    /// The raw `checkpoint` attribute (a sequence number or a sentinel).
    pub checkpoint: Option<String>,
    /// `ownerSwitchesSinceCheckpoint`.
    pub owner_switches_since_checkpoint: u64,
    /// `parentShardId`.
    pub parent_shard_ids: Vec<String>,
    /// `childShardIds`.
    pub child_shard_ids: Vec<String>,
}

fn corrupt(store: &str, partition: &str, reason: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Corrupt {
        store: store.to_owned(),
        reason: format!("item {partition}: {reason}"),
    }
}

pub(crate) fn counter_of(
    store: &str,
    partition: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<u64, CheckpointError> {
    match item.get(attr::COUNTER) {
        None => Ok(0),
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| {
            corrupt(
                store,
                partition,
                format!("leaseCounter {n:?} is not a counter"),
            )
        }),
        Some(other) => Err(corrupt(
            store,
            partition,
            format!("leaseCounter is {other:?}"),
        )),
    }
}

pub(crate) fn position_of(
    store: &str,
    partition: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<Option<Position>, CheckpointError> {
    let checkpoint = match item.get(attr::CHECKPOINT) {
        None | Some(AttributeValue::Null(_)) => return Ok(None),
        Some(AttributeValue::S(s)) => s.as_str(),
        Some(other) => {
            return Err(corrupt(
                store,
                partition,
                format!("checkpoint is {other:?}"),
            ))
        }
    };
    let sub = match item.get(attr::SUB_SEQUENCE) {
        None => 0,
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| {
            corrupt(
                store,
                partition,
                format!("checkpointSubSequenceNumber {n:?}"),
            )
        })?,
        Some(other) => {
            return Err(corrupt(
                store,
                partition,
                format!("checkpointSubSequenceNumber is {other:?}"),
            ))
        }
    };
    match checkpoint {
        sentinel::SHARD_END => Ok(Some(Position::End)),
        sentinel::TRIM_HORIZON | sentinel::LATEST | sentinel::AT_TIMESTAMP => Ok(None),
        digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Some(Position::Sequence {
                sequence: SequenceNumber::new(digits),
                sub,
            }))
        }
        other => Err(corrupt(store, partition, format!("checkpoint {other:?}"))),
    }
}

pub(crate) fn parse_lease(
    store: &str,
    partition: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<Lease, CheckpointError> {
    let string = |name| match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    };
    let set = |name| match item.get(name) {
        Some(AttributeValue::Ss(s)) => s.clone(),
        _ => Vec::new(),
    };
    let switches = match item.get(attr::OWNER_SWITCHES) {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    };
    Ok(Lease {
        key: partition.to_owned(),
        owner: string(attr::OWNER),
        counter: counter_of(store, partition, item)?,
        position: position_of(store, partition, item)?,
        checkpoint: string(attr::CHECKPOINT),
        owner_switches_since_checkpoint: switches,
        parent_shard_ids: set(attr::PARENTS),
        child_shard_ids: set(attr::CHILDREN),
    })
}

/// The attributes a checkpoint at `position` sets.
pub(crate) fn checkpoint_attrs(
    store: &str,
    partition: &str,
    position: &Position,
) -> Result<Vec<(&'static str, AttributeValue)>, CheckpointError> {
    let (checkpoint, sub) = match position {
        Position::Sequence { sequence, sub } => (sequence.as_str().to_owned(), *sub),
        Position::End => (sentinel::SHARD_END.to_owned(), 0),
        Position::Offset(_) => {
            return Err(CheckpointError::backend(
                store.to_owned(),
                format!(
                    "partition {partition}: {position} cannot be stored in a Kinesis lease \
                     table (sequence numbers and SHARD_END only)"
                ),
            ))
        }
    };
    Ok(vec![
        (attr::CHECKPOINT, AttributeValue::S(checkpoint)),
        (attr::SUB_SEQUENCE, AttributeValue::N(sub.to_string())),
        (attr::OWNER_SWITCHES, AttributeValue::N("0".to_owned())),
    ])
}
