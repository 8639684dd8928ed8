//! Fuzz body of KPL deaggregation: any payload is an ordinary record, an
//! aggregate's user records, or an [`AggregationError`](crate::kinesis::aggregation::AggregationError),
//! never a panic; the copying and the sharing decoder agree; and user
//! records that come out re-aggregate (with the crate's [`Aggregator`]) to
//! aggregates that read back as the same records.

use bytes::Bytes;

use crate::kinesis::aggregation::{deaggregate, deaggregate_bytes, Aggregator, TryAddError};
use crate::kinesis::KinesisRecord;

/// Deaggregates `data` and checks the round trip of what comes out.
pub fn run(data: &[u8]) {
    let copied = deaggregate(data);
    let shared = deaggregate_bytes(&Bytes::copy_from_slice(data));
    let records = match (copied, shared) {
        (Ok(copied), Ok(shared)) => {
            assert_eq!(copied, shared, "both decoders return the same records");
            copied
        }
        (Err(_), Err(_)) => return,
        (copied, shared) => panic!("the decoders disagree: {copied:?} / {shared:?}"),
    };
    if let Some(records) = records {
        round_trip(records);
    }
}

/// Aggregates `records` (those the aggregator accepts) and checks that each
/// aggregate reads back as the records put into it.
fn round_trip(records: Vec<KinesisRecord>) {
    let mut aggregator = Aggregator::default();
    let mut pending: Vec<KinesisRecord> = Vec::new();
    for record in records {
        match aggregator.try_add(record.clone()) {
            Ok(()) => pending.push(record),
            Err(TryAddError::Full(record)) => {
                check_aggregate(&mut aggregator, std::mem::take(&mut pending));
                if aggregator.try_add(record.clone()).is_ok() {
                    pending.push(record);
                }
            }
            Err(TryAddError::InvalidHashKey { .. }) => {}
        }
    }
    check_aggregate(&mut aggregator, pending);
}

fn check_aggregate(aggregator: &mut Aggregator, expected: Vec<KinesisRecord>) {
    let Some(emitted) = aggregator.finish() else {
        assert!(
            expected.is_empty(),
            "an aggregator holding records emits them"
        );
        return;
    };
    if let [alone] = &expected[..] {
        assert_eq!(&emitted, alone, "a record alone is emitted unchanged");
        return;
    }
    let read_back = deaggregate(&emitted.data)
        .expect("the crate's own aggregate decodes")
        .expect("the crate's own aggregate has the magic number");
    assert_eq!(
        read_back, expected,
        "an aggregate reads back as its records"
    );
}
