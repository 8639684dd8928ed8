//! From the Kinesis records of a `GetRecords` response to user records with
//! their checkpoint positions.
//!
//! A plain Kinesis record is one user record at `(sequence, 0)`. A KPL
//! aggregate is unpacked into its user records at `(sequence, 0..n)`, so a
//! checkpoint can point inside an aggregate.

use aws_sdk_kinesis::types::Record;
use bytes::Bytes;

use crate::checkpoint::{Position, SequenceNumber};
use crate::kinesis::KinesisRecord;

/// One user record and its position.
pub(crate) struct UserRecord {
    pub(crate) record: KinesisRecord,
    pub(crate) position: Position,
}

/// Appends the user records of `record` to `out`.
pub(crate) fn unpack(record: Record, out: &mut Vec<UserRecord>) {
    let sequence = SequenceNumber::from(record.sequence_number);
    let data = Bytes::from(record.data.into_inner());
    out.push(UserRecord {
        record: KinesisRecord {
            data,
            partition_key: record.partition_key.unwrap_or_default(),
            explicit_hash_key: None,
        },
        position: Position::Sequence { sequence, sub: 0 },
    });
}
