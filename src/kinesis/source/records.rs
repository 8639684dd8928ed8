//! From the Kinesis records of a `GetRecords` response to user records with
//! their checkpoint positions.
//!
//! A plain Kinesis record is one user record at `(sequence, 0)`. A KPL
//! aggregate is unpacked into its user records at `(sequence, 0..n)` (the
//! KCL's sub-sequence numbers), so a checkpoint can point inside an
//! aggregate and a restart resumes at the next user record.
//!
//! A record that starts with the KPL magic number but is damaged (bad MD5,
//! undecodable protobuf) is handed on whole as one plain record at
//! `(sequence, 0)` with a `WARN` event, as the KCL does: its bytes are
//! delivered, not trusted, and one bad record cannot wedge the shard.

use aws_sdk_kinesis::types::Record;
use bytes::Bytes;

use crate::checkpoint::{Position, SequenceNumber};
use crate::kinesis::aggregation::deaggregate_bytes;
use crate::kinesis::KinesisRecord;

/// One user record and its position.
pub(crate) struct UserRecord {
    pub(crate) record: KinesisRecord,
    pub(crate) position: Position,
}

/// Appends the user records of `record` (read from `shard`) to `out`.
pub(crate) fn unpack(shard: &str, record: Record, out: &mut Vec<UserRecord>) {
    let sequence = SequenceNumber::from(record.sequence_number);
    let data = Bytes::from(record.data.into_inner());
    match deaggregate_bytes(&data) {
        Ok(None) => {}
        Ok(Some(users)) => {
            out.extend(users.into_iter().enumerate().map(|(sub, user)| UserRecord {
                record: user,
                position: Position::Sequence {
                    sequence: sequence.clone(),
                    sub: sub as u64,
                },
            }));
            return;
        }
        Err(err) => {
            tracing::warn!(
                shard,
                %sequence,
                error = %crate::ErrorChain(&err),
                "damaged KPL aggregate delivered as one plain record"
            );
        }
    }
    out.push(UserRecord {
        record: KinesisRecord {
            data,
            partition_key: record.partition_key.unwrap_or_default(),
            explicit_hash_key: None,
        },
        position: Position::Sequence { sequence, sub: 0 },
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinesis::aggregation::Aggregator;
    use aws_sdk_kinesis::primitives::Blob;

    fn record(seq: &str, data: impl Into<Vec<u8>>) -> Record {
        Record::builder()
            .sequence_number(seq)
            .partition_key("pk")
            .data(Blob::new(data))
            .build()
            .unwrap()
    }

    #[test]
    fn plain_records_are_one_user_record_at_sub_zero() {
        let mut out = Vec::new();
        unpack("s", record("17", "hello"), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].record.data[..], b"hello");
        assert_eq!(out[0].record.partition_key, "pk");
        assert_eq!(out[0].position, Position::sequence("17"));
    }

    #[test]
    fn aggregates_unpack_with_sub_sequence_numbers() {
        let mut aggregator = Aggregator::default();
        for i in 0..3 {
            aggregator
                .try_add(KinesisRecord::new(format!("r{i}"), format!("k{i}")))
                .unwrap();
        }
        let aggregate = aggregator.finish().unwrap();
        let mut out = Vec::new();
        unpack("s", record("99", aggregate.data.to_vec()), &mut out);
        let got: Vec<(String, String, Position)> = out
            .into_iter()
            .map(|u| {
                (
                    String::from_utf8(u.record.data.to_vec()).unwrap(),
                    u.record.partition_key,
                    u.position,
                )
            })
            .collect();
        let expected: Vec<(String, String, Position)> = (0..3)
            .map(|i| {
                (
                    format!("r{i}"),
                    format!("k{i}"),
                    Position::Sequence {
                        sequence: "99".into(),
                        sub: i,
                    },
                )
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_damaged_aggregate_passes_through_whole() {
        let mut aggregator = Aggregator::default();
        aggregator.try_add(KinesisRecord::new("a", "k")).unwrap();
        aggregator.try_add(KinesisRecord::new("b", "k")).unwrap();
        let mut data = aggregator.finish().unwrap().data.to_vec();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        let mut out = Vec::new();
        unpack("s", record("5", data.clone()), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].record.data[..], &data[..]);
        assert_eq!(out[0].position, Position::sequence("5"));
    }
}
