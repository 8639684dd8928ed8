//! The KCL lease item codec: attribute names, checkpoint sentinels, and the
//! one translation between a DynamoDB item and a [`Lease`], which every
//! store on the lease table uses ([`DynamoDbLeaseTable`](super::DynamoDbLeaseTable),
//! [`DynamoDbCheckpointStore`](super::DynamoDbCheckpointStore) and the
//! S3 batch store layered on it).
//!
//! The layout — the KCL's `DynamoDBLeaseSerializer`'s — is tabled in the
//! [`dynamodb`](super) module docs.
//!
//! # Guarantees
//!
//! - **Strict reading.** Every attribute above that is present must have its
//!   type and form: a wrong one is an [`ItemError`] (the stores make it a
//!   `Corrupt` error naming the table and key), never a default. Absent
//!   optional attributes read as the KCL reads them (no owner, 0 switches,
//!   no parents, sub-sequence 0).
//! - **Sets are sets.** `parentShardId` and `childShardIds` are DynamoDB
//!   string sets: written without duplicates, read back sorted. An empty
//!   list is no attribute (DynamoDB has no empty sets).
//! - **Only what the KCL can read is written.** A checkpoint that is not a
//!   sequence number of decimal digits, `SHARD_END` or a start sentinel
//!   (a byte offset, for example) is refused with [`UnstorableCheckpoint`]
//!   before anything is sent.
//!
//! # What it does not do
//!
//! Read or write the attributes only other tools use (`pendingCheckpoint*`,
//! `throughputKBps`, `leaseOwner`'s index, …): the stores leave them as they
//! are.
//!
//! # Why one file
//!
//! The file is past 500 lines, some 200 of them unit tests. It holds one
//! concept, the item codec: reading an item into a lease and writing a
//! lease into an item sit side by side so that a change to one meets the
//! other, and the tests are round trips through both.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::checkpoint::{Position, SequenceNumber};
use crate::lease::{HashRange, Lease, LeaseCheckpoint};

/// An item as the SDK holds it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The KCL lease table attribute names.
pub(crate) mod attr {
    pub const KEY: &str = "leaseKey";
    pub const OWNER: &str = "leaseOwner";
    pub const COUNTER: &str = "leaseCounter";
    pub const CHECKPOINT: &str = "checkpoint";
    pub const SUB_SEQUENCE: &str = "checkpointSubSequenceNumber";
    pub const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
    pub const PARENTS: &str = "parentShardId";
    pub const CHILDREN: &str = "childShardIds";
    pub const STARTING_HASH_KEY: &str = "startingHashKey";
    pub const ENDING_HASH_KEY: &str = "endingHashKey";
    pub const CHECKPOINT_OWNER: &str = "checkpointOwner";
    pub const ENTITY_TYPE: &str = "entityType";
}

/// The KCL's checkpoint sentinels.
pub(crate) mod sentinel {
    pub const TRIM_HORIZON: &str = "TRIM_HORIZON";
    pub const LATEST: &str = "LATEST";
    pub const AT_TIMESTAMP: &str = "AT_TIMESTAMP";
    pub const SHARD_END: &str = "SHARD_END";
}

/// The `entityType` of a lease (KCL 3 keeps other entities in the same
/// table under other types; KCL 2 writes none).
pub(crate) const LEASE_ENTITY_TYPE: &str = "LEASE";

/// What is wrong with an item that cannot be read as a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemError(pub(crate) String);

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A checkpoint that a Kinesis lease table cannot hold: only sequence
/// numbers (decimal digits), `SHARD_END` and the start sentinels can be
/// stored where the KCL reads them.
///
/// The source of a [`LeaseError::Backend`](crate::lease::LeaseError::Backend)
/// from [`DynamoDbLeaseTable`](super::DynamoDbLeaseTable) (find it with
/// `downcast_ref`); nothing was written. Retrying does not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "lease {key}: checkpoint {checkpoint} cannot be stored in a Kinesis lease table \
     (sequence numbers of decimal digits, SHARD_END, TRIM_HORIZON, LATEST, AT_TIMESTAMP only)"
)]
#[non_exhaustive]
pub struct UnstorableCheckpoint {
    /// The lease.
    pub key: String,
    /// The checkpoint refused.
    pub checkpoint: LeaseCheckpoint,
}

fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::B(_) => "B",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Bs(_) => "BS",
        AttributeValue::L(_) => "L",
        AttributeValue::M(_) => "M",
        AttributeValue::N(_) => "N",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::S(_) => "S",
        AttributeValue::Ss(_) => "SS",
        _ => "an unknown type",
    }
}

fn wrong_type(name: &str, expected: &str, value: &AttributeValue) -> ItemError {
    ItemError(format!("{name} is {}, not {expected}", type_name(value)))
}

/// A string attribute, `None` when absent.
pub(crate) fn string(item: &Item, name: &str) -> Result<Option<String>, ItemError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(name, "S", other)),
    }
}

/// A non-negative integer attribute, `None` when absent.
pub(crate) fn number(item: &Item, name: &str) -> Result<Option<u64>, ItemError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse()
            .map(Some)
            .map_err(|_| ItemError(format!("{name} {n:?} is not a non-negative integer"))),
        Some(other) => Err(wrong_type(name, "N", other)),
    }
}

/// A string set attribute, sorted; empty when absent.
fn string_set(item: &Item, name: &str) -> Result<Vec<String>, ItemError> {
    match item.get(name) {
        None => Ok(Vec::new()),
        Some(AttributeValue::Ss(set)) => Ok(as_set(set.clone())),
        Some(other) => Err(wrong_type(name, "SS", other)),
    }
}

/// `ids` as a set: sorted, without duplicates.
pub(crate) fn as_set(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids.dedup();
    ids
}

/// The item's `leaseKey`.
pub(crate) fn key(item: &Item) -> Result<String, ItemError> {
    string(item, attr::KEY)?.ok_or_else(|| ItemError(format!("no {}", attr::KEY)))
}

/// The item's `leaseCounter`, `None` when absent.
pub(crate) fn counter(item: &Item) -> Result<Option<u64>, ItemError> {
    number(item, attr::COUNTER)
}

/// Whether the item is a lease: no `entityType` (KCL 2) or `LEASE`.
pub(crate) fn is_lease(item: &Item) -> Result<bool, ItemError> {
    Ok(string(item, attr::ENTITY_TYPE)?.is_none_or(|t| t == LEASE_ENTITY_TYPE))
}

fn is_sequence_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The item's checkpoint (`checkpoint` and `checkpointSubSequenceNumber`),
/// `None` when it has none.
pub(crate) fn checkpoint(item: &Item) -> Result<Option<LeaseCheckpoint>, ItemError> {
    let Some(checkpoint) = string(item, attr::CHECKPOINT)? else {
        return Ok(None);
    };
    let sub = number(item, attr::SUB_SEQUENCE)?.unwrap_or(0);
    Ok(Some(match checkpoint.as_str() {
        sentinel::TRIM_HORIZON => LeaseCheckpoint::TrimHorizon,
        sentinel::LATEST => LeaseCheckpoint::Latest,
        sentinel::AT_TIMESTAMP => LeaseCheckpoint::AtTimestamp,
        sentinel::SHARD_END => LeaseCheckpoint::At(Position::End),
        digits if is_sequence_number(digits) => LeaseCheckpoint::At(Position::Sequence {
            sequence: SequenceNumber::new(digits),
            sub,
        }),
        other => {
            return Err(ItemError(format!(
                "{} {other:?} is neither a sequence number nor a sentinel",
                attr::CHECKPOINT
            )))
        }
    }))
}

fn hash_key(item: &Item, name: &str) -> Result<Option<u128>, ItemError> {
    string(item, name)?
        .map(|s| {
            if is_sequence_number(&s) {
                s.parse().ok()
            } else {
                None
            }
            .ok_or_else(|| ItemError(format!("{name} {s:?} is not a 128-bit hash key")))
        })
        .transpose()
}

fn hash_range(item: &Item) -> Result<Option<HashRange>, ItemError> {
    let start = hash_key(item, attr::STARTING_HASH_KEY)?;
    let end = hash_key(item, attr::ENDING_HASH_KEY)?;
    match (start, end) {
        (None, None) => Ok(None),
        (Some(start), Some(end)) if start <= end => Ok(Some(HashRange { start, end })),
        (Some(start), Some(end)) => Err(ItemError(format!(
            "hash key range {start}..={end} is empty"
        ))),
        _ => Err(ItemError(format!(
            "only one of {} and {}",
            attr::STARTING_HASH_KEY,
            attr::ENDING_HASH_KEY
        ))),
    }
}

/// Every attribute of a lease item, each checked, none but `leaseKey`
/// required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseFields {
    pub(crate) key: String,
    pub(crate) owner: Option<String>,
    pub(crate) counter: Option<u64>,
    pub(crate) checkpoint: Option<LeaseCheckpoint>,
    pub(crate) checkpoint_owner: Option<String>,
    pub(crate) owner_switches_since_checkpoint: u64,
    pub(crate) parents: Vec<String>,
    pub(crate) children: Vec<String>,
    pub(crate) hash_range: Option<HashRange>,
}

/// Reads every attribute of a lease item (the caller has checked
/// [`is_lease`]).
pub(crate) fn fields(item: &Item) -> Result<LeaseFields, ItemError> {
    Ok(LeaseFields {
        key: key(item)?,
        owner: string(item, attr::OWNER)?,
        counter: counter(item)?,
        checkpoint: checkpoint(item)?,
        checkpoint_owner: string(item, attr::CHECKPOINT_OWNER)?,
        owner_switches_since_checkpoint: number(item, attr::OWNER_SWITCHES)?.unwrap_or(0),
        parents: string_set(item, attr::PARENTS)?,
        children: string_set(item, attr::CHILDREN)?,
        hash_range: hash_range(item)?,
    })
}

/// Reads a lease item (the caller has checked [`is_lease`]). `leaseKey`,
/// `leaseCounter` and `checkpoint` are required: the KCL writes them on
/// every lease, and a write cannot be conditional on a counter that is not
/// there.
pub(crate) fn decode(item: &Item) -> Result<Lease, ItemError> {
    let fields = fields(item)?;
    let counter = fields
        .counter
        .ok_or_else(|| ItemError(format!("no {}", attr::COUNTER)))?;
    let checkpoint = fields
        .checkpoint
        .ok_or_else(|| ItemError(format!("no {}", attr::CHECKPOINT)))?;
    let mut lease = Lease::new(fields.key, checkpoint);
    lease.counter = counter;
    lease.owner = fields.owner;
    lease.checkpoint_owner = fields.checkpoint_owner;
    lease.owner_switches_since_checkpoint = fields.owner_switches_since_checkpoint;
    lease.parents = fields.parents;
    lease.children = fields.children;
    lease.hash_range = fields.hash_range;
    Ok(lease)
}

/// The `checkpoint` and `checkpointSubSequenceNumber` values of
/// `checkpoint` (the sub-sequence is 0 for the sentinels, as the KCL
/// writes them).
pub(crate) fn checkpoint_values(
    key: &str,
    checkpoint: &LeaseCheckpoint,
) -> Result<(AttributeValue, AttributeValue), UnstorableCheckpoint> {
    let (value, sub) = match checkpoint {
        LeaseCheckpoint::TrimHorizon => (sentinel::TRIM_HORIZON, 0),
        LeaseCheckpoint::Latest => (sentinel::LATEST, 0),
        LeaseCheckpoint::AtTimestamp => (sentinel::AT_TIMESTAMP, 0),
        LeaseCheckpoint::At(Position::End) => (sentinel::SHARD_END, 0),
        LeaseCheckpoint::At(Position::Sequence { sequence, sub })
            if is_sequence_number(sequence.as_str()) =>
        {
            (sequence.as_str(), *sub)
        }
        LeaseCheckpoint::At(_) => {
            return Err(UnstorableCheckpoint {
                key: key.to_owned(),
                checkpoint: checkpoint.clone(),
            })
        }
    };
    Ok((
        AttributeValue::S(value.to_owned()),
        AttributeValue::N(sub.to_string()),
    ))
}

/// A string set value, `None` for an empty list (no attribute).
pub(crate) fn set_value(ids: &[String]) -> Option<AttributeValue> {
    let set = as_set(ids.to_vec());
    (!set.is_empty()).then_some(AttributeValue::Ss(set))
}

/// The hash key attributes of `range` (decimal, as the KCL's
/// `HashKeyRangeForLease` serializes them).
fn hash_range_values(range: &HashRange) -> [(&'static str, AttributeValue); 2] {
    [
        (
            attr::STARTING_HASH_KEY,
            AttributeValue::S(range.start.to_string()),
        ),
        (
            attr::ENDING_HASH_KEY,
            AttributeValue::S(range.end.to_string()),
        ),
    ]
}

/// The whole item of `lease`, as the KCL's `toDynamoRecord` writes a lease:
/// key, counter, owner (if any), owner switches, checkpoint and
/// sub-sequence, parents and children (if any), hash range (if any),
/// checkpoint owner (if any), `entityType` `LEASE`.
pub(crate) fn encode(lease: &Lease) -> Result<Item, UnstorableCheckpoint> {
    let (checkpoint, sub) = checkpoint_values(&lease.key, &lease.checkpoint)?;
    let mut item = Item::new();
    let mut put = |name: &str, value| {
        item.insert(name.to_owned(), value);
    };
    put(attr::KEY, AttributeValue::S(lease.key.clone()));
    put(attr::COUNTER, AttributeValue::N(lease.counter.to_string()));
    if let Some(owner) = &lease.owner {
        put(attr::OWNER, AttributeValue::S(owner.clone()));
    }
    put(
        attr::OWNER_SWITCHES,
        AttributeValue::N(lease.owner_switches_since_checkpoint.to_string()),
    );
    put(attr::CHECKPOINT, checkpoint);
    put(attr::SUB_SEQUENCE, sub);
    if let Some(parents) = set_value(&lease.parents) {
        put(attr::PARENTS, parents);
    }
    if let Some(children) = set_value(&lease.children) {
        put(attr::CHILDREN, children);
    }
    if let Some(range) = &lease.hash_range {
        for (name, value) in hash_range_values(range) {
            put(name, value);
        }
    }
    if let Some(checkpoint_owner) = &lease.checkpoint_owner {
        put(
            attr::CHECKPOINT_OWNER,
            AttributeValue::S(checkpoint_owner.clone()),
        );
    }
    put(
        attr::ENTITY_TYPE,
        AttributeValue::S(LEASE_ENTITY_TYPE.to_owned()),
    );
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kcl_item() -> Item {
        let mut item = Item::new();
        let mut s = |k: &str, v: &str| item.insert(k.into(), AttributeValue::S(v.into()));
        s("leaseKey", "shardId-000000000003");
        s("leaseOwner", "kcl-worker");
        s(
            "checkpoint",
            "49590338271490256608559692538361571095921575989136588898",
        );
        s("startingHashKey", "0");
        s("endingHashKey", "170141183460469231731687303715884105727");
        s("entityType", "LEASE");
        item.insert("leaseCounter".into(), AttributeValue::N("42".into()));
        item.insert(
            "checkpointSubSequenceNumber".into(),
            AttributeValue::N("3".into()),
        );
        item.insert(
            "ownerSwitchesSinceCheckpoint".into(),
            AttributeValue::N("2".into()),
        );
        item.insert(
            "parentShardId".into(),
            AttributeValue::Ss(vec![
                "shardId-000000000001".into(),
                "shardId-000000000000".into(),
            ]),
        );
        item
    }

    #[test]
    fn a_kcl_item_reads_with_every_field() {
        let lease = decode(&kcl_item()).unwrap();
        assert_eq!(lease.key, "shardId-000000000003");
        assert_eq!(lease.owner.as_deref(), Some("kcl-worker"));
        assert_eq!(lease.counter, 42);
        assert_eq!(
            lease.checkpoint,
            LeaseCheckpoint::At(Position::Sequence {
                sequence: "49590338271490256608559692538361571095921575989136588898".into(),
                sub: 3
            })
        );
        assert_eq!(lease.owner_switches_since_checkpoint, 2);
        assert_eq!(
            lease.parents,
            vec!["shardId-000000000000", "shardId-000000000001"],
            "a set reads sorted"
        );
        assert_eq!(
            lease.hash_range,
            Some(HashRange {
                start: 0,
                end: u128::MAX >> 1
            })
        );
        assert_eq!(lease.checkpoint_owner, None);
    }

    #[test]
    fn encode_then_decode_is_the_identity_for_every_checkpoint_kind() {
        for checkpoint in [
            LeaseCheckpoint::TrimHorizon,
            LeaseCheckpoint::Latest,
            LeaseCheckpoint::AtTimestamp,
            LeaseCheckpoint::At(Position::End),
            LeaseCheckpoint::At(Position::Sequence {
                sequence: "123".into(),
                sub: 9,
            }),
        ] {
            let mut lease = Lease::new("k", checkpoint)
                .with_parents(vec!["a".into(), "b".into()])
                .with_hash_range(HashRange {
                    start: 5,
                    end: u128::MAX,
                });
            lease.owner = Some("o".into());
            lease.checkpoint_owner = Some("c".into());
            lease.counter = 7;
            lease.owner_switches_since_checkpoint = 1;
            lease.children = vec!["x".into()];
            assert_eq!(decode(&encode(&lease).unwrap()).unwrap(), lease);
        }
    }

    #[test]
    fn sets_are_written_without_duplicates_and_empty_lists_are_no_attribute() {
        let lease = Lease::new("k", LeaseCheckpoint::Latest).with_parents(vec![
            "b".into(),
            "a".into(),
            "b".into(),
        ]);
        let item = encode(&lease).unwrap();
        assert_eq!(
            item.get(attr::PARENTS),
            Some(&AttributeValue::Ss(vec!["a".into(), "b".into()]))
        );
        assert!(!item.contains_key(attr::CHILDREN));
        assert!(!item.contains_key(attr::OWNER));
        assert!(!item.contains_key(attr::CHECKPOINT_OWNER));
        assert!(!item.contains_key(attr::STARTING_HASH_KEY));
    }

    #[test]
    fn offsets_and_non_digit_sequences_cannot_be_stored() {
        for position in [Position::Offset(5), Position::sequence("12a")] {
            let checkpoint = LeaseCheckpoint::At(position);
            let err = encode(&Lease::new("k", checkpoint.clone())).unwrap_err();
            assert_eq!(err.checkpoint, checkpoint);
            assert_eq!(err.key, "k");
        }
    }

    #[test]
    fn wrong_types_and_forms_are_errors_not_defaults() {
        let cases: Vec<(&str, AttributeValue, &str)> = vec![
            (
                "leaseCounter",
                AttributeValue::S("1".into()),
                "leaseCounter is S",
            ),
            (
                "leaseCounter",
                AttributeValue::N("-1".into()),
                "leaseCounter \"-1\"",
            ),
            (
                "leaseOwner",
                AttributeValue::N("1".into()),
                "leaseOwner is N",
            ),
            (
                "checkpoint",
                AttributeValue::S("abc".into()),
                "checkpoint \"abc\"",
            ),
            (
                "checkpoint",
                AttributeValue::Null(true),
                "checkpoint is NULL",
            ),
            (
                "checkpointSubSequenceNumber",
                AttributeValue::N("1.5".into()),
                "checkpointSubSequenceNumber \"1.5\"",
            ),
            (
                "ownerSwitchesSinceCheckpoint",
                AttributeValue::S("x".into()),
                "ownerSwitchesSinceCheckpoint is S",
            ),
            (
                "parentShardId",
                AttributeValue::S("p".into()),
                "parentShardId is S",
            ),
            (
                "endingHashKey",
                AttributeValue::S("x".into()),
                "endingHashKey \"x\"",
            ),
            (
                "endingHashKey",
                AttributeValue::S("340282366920938463463374607431768211456".into()),
                "not a 128-bit hash key",
            ),
            (
                "checkpointOwner",
                AttributeValue::Bool(true),
                "checkpointOwner is BOOL",
            ),
        ];
        for (name, value, expected) in cases {
            let mut item = kcl_item();
            item.insert(name.into(), value);
            let err = decode(&item).unwrap_err();
            assert!(err.0.contains(expected), "{name}: {err}");
        }
        for missing in ["leaseKey", "leaseCounter", "checkpoint", "startingHashKey"] {
            let mut item = kcl_item();
            item.remove(missing);
            assert!(decode(&item).is_err(), "without {missing}");
        }
        let mut reversed = kcl_item();
        reversed.insert("startingHashKey".into(), AttributeValue::S("9".into()));
        reversed.insert("endingHashKey".into(), AttributeValue::S("8".into()));
        assert!(decode(&reversed).unwrap_err().0.contains("empty"));
    }

    #[test]
    fn other_entity_types_are_not_leases() {
        let mut item = kcl_item();
        assert!(is_lease(&item).unwrap());
        item.remove("entityType");
        assert!(is_lease(&item).unwrap(), "KCL 2 writes no entity type");
        item.insert("entityType".into(), AttributeValue::S("LEADER".into()));
        assert!(!is_lease(&item).unwrap());
    }
}
