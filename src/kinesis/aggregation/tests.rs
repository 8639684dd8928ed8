//! Aggregation against hand-built vectors of the published format, round
//! trips, and damaged aggregates.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::kinesis::hash_key::HashKey;
use crate::kinesis::KinesisRecord;

/// Built by hand from the format description: magic, then the protobuf
/// `AggregatedRecord { partition_key_table: ["alpha", "beta"],
/// explicit_hash_key_table: ["12345"], records: [{0, -, "hello"},
/// {1, 0, "world"}, {0, -, ""}] }` field by field, then its MD5 (computed
/// independently, with Python's hashlib).
const HAND_BUILT: &str = concat!(
    "f3899ac2",       // magic
    "0a05616c706861", // 1: "alpha"
    "0a0462657461",   // 1: "beta"
    "12053132333435", // 2: "12345"
    "1a09",
    "0800",
    "1a0568656c6c6f", // 3: {pk 0, data "hello"}
    "1a0b",
    "0801",
    "1000",
    "1a05776f726c64", // 3: {pk 1, ehk 0, "world"}
    "1a04",
    "0800",
    "1a00",                             // 3: {pk 0, data ""}
    "92ecbf73c42b90cb9e719c0dad941b13", // MD5 of the protobuf bytes
);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hand_built_records() -> Vec<KinesisRecord> {
    vec![
        KinesisRecord::new("hello", "alpha"),
        KinesisRecord::new("world", "beta").with_explicit_hash_key("12345"),
        KinesisRecord::new(Bytes::new(), "alpha"),
    ]
}

/// Re-frames `protobuf` with a correct MD5, so the checksum passes and the
/// protobuf itself is what gets tested.
fn framed(protobuf: &[u8]) -> Vec<u8> {
    use md5::{Digest, Md5};
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(protobuf);
    out.extend_from_slice(&Md5::digest(protobuf));
    out
}

#[test]
fn deaggregates_a_hand_built_kpl_record() {
    let bytes = unhex(HAND_BUILT);
    assert_eq!(deaggregate(&bytes).unwrap(), Some(hand_built_records()));
    let shared = Bytes::from(bytes);
    assert_eq!(
        deaggregate_bytes(&shared).unwrap(),
        Some(hand_built_records())
    );
}

#[test]
fn aggregator_writes_the_hand_built_bytes() {
    let mut aggregator = Aggregator::default();
    for record in hand_built_records() {
        aggregator.try_add(record).unwrap();
    }
    let expected_len = unhex(HAND_BUILT).len() + AGGREGATE_PARTITION_KEY.len();
    assert_eq!(aggregator.billed_bytes(), expected_len);
    let aggregate = aggregator.finish().unwrap();
    assert_eq!(&aggregate.data[..], &unhex(HAND_BUILT)[..]);
    // As the KPL: partition key "a", placed by the first record's hash key
    // (MD5 of "alpha" as a decimal).
    assert_eq!(aggregate.partition_key, "a");
    assert_eq!(
        aggregate.explicit_hash_key.as_deref(),
        Some("58606826522850340945736240254012750329")
    );
    assert!(aggregator.is_empty());
    assert_eq!(aggregator.finish(), None);
}

#[test]
fn a_single_record_is_emitted_unchanged() {
    let mut aggregator = Aggregator::default();
    let record = KinesisRecord::new("solo", "k").with_explicit_hash_key("5");
    aggregator.try_add(record.clone()).unwrap();
    assert_eq!(aggregator.billed_bytes(), record.billed_bytes());
    assert_eq!(aggregator.finish(), Some(record));
}

#[test]
fn non_aggregated_payloads_pass_through() {
    assert_eq!(deaggregate(b"").unwrap(), None);
    assert_eq!(deaggregate(b"{\"id\":1}").unwrap(), None);
    assert_eq!(deaggregate(&MAGIC[..3]).unwrap(), None);
    assert!(!is_aggregated(&[0xF3, 0x89, 0x9A, 0xC3, 0, 0]));
}

#[test]
fn a_bad_md5_is_reported() {
    let mut bytes = unhex(HAND_BUILT);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    match deaggregate(&bytes) {
        Err(AggregationError::ChecksumMismatch {
            len,
            expected,
            actual,
        }) => {
            assert_eq!(len, 70);
            assert_eq!(actual, "92ecbf73c42b90cb9e719c0dad941b13");
            assert_eq!(expected, "92ecbf73c42b90cb9e719c0dad941b12");
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    // A flipped bit in the data is caught the same way.
    let mut bytes = unhex(HAND_BUILT);
    bytes[40] ^= 0x20;
    assert!(matches!(
        deaggregate(&bytes),
        Err(AggregationError::ChecksumMismatch { .. })
    ));
}

#[test]
fn a_truncated_aggregate_is_reported() {
    let bytes = unhex(HAND_BUILT);
    // Cut anywhere: either too short for the trailer or the MD5 no longer
    // matches; never a panic, never records.
    for cut in 4..bytes.len() {
        let result = deaggregate(&bytes[..cut]);
        assert!(
            matches!(
                result,
                Err(AggregationError::Truncated { .. })
                    | Err(AggregationError::ChecksumMismatch { .. })
            ),
            "cut at {cut}: {result:?}"
        );
    }
    assert!(matches!(
        deaggregate(&MAGIC),
        Err(AggregationError::Truncated { len: 4 })
    ));
}

#[test]
fn a_truncated_protobuf_with_a_matching_md5_is_reported() {
    let bytes = unhex(HAND_BUILT);
    let protobuf = &bytes[4..bytes.len() - 16];
    // Every proper prefix that ends inside a field fails to decode. (Prefixes
    // ending on a field boundary are valid, shorter messages.)
    let boundaries = [0, 7, 13, 20, 31, 44, 50];
    for cut in 1..protobuf.len() {
        if boundaries.contains(&cut) {
            continue;
        }
        let result = deaggregate(&framed(&protobuf[..cut]));
        assert!(
            matches!(result, Err(AggregationError::Malformed { .. })),
            "cut at {cut}: {result:?}"
        );
    }
    // A prefix on a boundary decodes to the records before it.
    let first_two = deaggregate(&framed(&protobuf[..44])).unwrap().unwrap();
    assert_eq!(first_two, hand_built_records()[..2].to_vec());
}

#[test]
fn a_key_index_out_of_range_is_reported() {
    // One partition key, a record pointing at index 3.
    let protobuf = unhex("0a016b1a0508031a0178");
    match deaggregate(&framed(&protobuf)) {
        Err(AggregationError::KeyIndexOutOfRange {
            record,
            table,
            index,
            table_len,
        }) => {
            assert_eq!(
                (record, table, index, table_len),
                (0, KeyTable::PartitionKey, 3, 1)
            );
        }
        other => panic!("expected an index error, got {other:?}"),
    }
    // An explicit hash key index into an empty table.
    let protobuf = unhex("0a016b1a07080010001a0178");
    assert!(matches!(
        deaggregate(&framed(&protobuf)),
        Err(AggregationError::KeyIndexOutOfRange {
            table: KeyTable::ExplicitHashKey,
            ..
        })
    ));
}

#[test]
fn invalid_utf8_in_a_key_table_is_reported() {
    let protobuf = unhex("0a02ff fe1a0408001a00".replace(' ', "").as_str());
    assert!(matches!(
        deaggregate(&framed(&protobuf)),
        Err(AggregationError::Malformed { .. })
    ));
}

#[test]
fn the_size_limit_holds_and_a_full_aggregate_gives_the_record_back() {
    let mut aggregator = Aggregator::new(1000);
    let mut added = 0;
    let refused = loop {
        match aggregator.try_add(KinesisRecord::new(vec![7u8; 90], format!("k{added}"))) {
            Ok(()) => added += 1,
            Err(TryAddError::Full(record)) => break record,
            Err(other) => panic!("{other}"),
        }
    };
    assert_eq!(refused.partition_key, format!("k{added}"));
    let billed = aggregator.billed_bytes();
    assert!(billed <= 1000, "{billed}");
    // Each record takes 90 data + about 10 bytes of framing and key: the
    // aggregate is nearly full, not stopped early.
    assert!(billed > 1000 - 110, "{billed}");
    let aggregate = aggregator.finish().unwrap();
    assert_eq!(aggregate.billed_bytes(), billed);
    assert_eq!(deaggregate(&aggregate.data).unwrap().unwrap().len(), added);
}

#[test]
fn an_invalid_explicit_hash_key_is_refused() {
    let mut aggregator = Aggregator::default();
    let bad = KinesisRecord::new("x", "k").with_explicit_hash_key("nope");
    assert!(matches!(
        aggregator.try_add(bad.clone()),
        Err(TryAddError::InvalidHashKey { .. })
    ));
    aggregator.try_add(KinesisRecord::new("y", "k")).unwrap();
    let err = aggregator.try_add(bad.clone()).unwrap_err();
    assert_eq!(err.into_record(), bad);
    assert_eq!(aggregator.len(), 1);
}

fn arb_record() -> impl Strategy<Value = KinesisRecord> {
    (
        proptest::collection::vec(any::<u8>(), 0..300),
        "[a-d]{1,3}|\\PC{1,20}",
        proptest::option::weighted(0.2, any::<u128>()),
    )
        .prop_map(|(data, key, explicit)| {
            let record = KinesisRecord::new(data, key);
            match explicit {
                Some(h) => record.with_explicit_hash_key(h.to_string()),
                None => record,
            }
        })
}

proptest! {
    #[test]
    fn round_trip_keeps_every_record_in_order(
        records in proptest::collection::vec(arb_record(), 1..80),
        max_bytes in 200usize..5000,
    ) {
        let mut aggregator = Aggregator::new(max_bytes);
        let mut out = Vec::new();
        for record in records.clone() {
            if let Err(err) = aggregator.try_add(record) {
                let record = err.into_record();
                let before = aggregator.billed_bytes();
                out.push(aggregator.finish().unwrap());
                prop_assert_eq!(out.last().unwrap().billed_bytes(), before);
                aggregator.try_add(record).unwrap();
            }
        }
        let before = aggregator.billed_bytes();
        out.push(aggregator.finish().unwrap());
        prop_assert_eq!(out.last().unwrap().billed_bytes(), before);

        let mut back = Vec::new();
        for aggregate in &out {
            match deaggregate(&aggregate.data).unwrap() {
                Some(users) => {
                    prop_assert!(users.len() >= 2);
                    prop_assert!(aggregate.billed_bytes() <= max_bytes);
                    // Placed by the first user record's hash key.
                    let placement: HashKey = aggregate
                        .explicit_hash_key.as_deref().unwrap().parse().unwrap();
                    prop_assert_eq!(placement, HashKey::of(&users[0]).unwrap());
                    back.extend(users);
                }
                None => back.push(aggregate.clone()),
            }
        }
        prop_assert_eq!(back, records);
    }

    #[test]
    fn arbitrary_bytes_after_the_magic_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&tail);
        prop_assert!(deaggregate(&bytes).is_err());
        // With a valid checksum, the protobuf decoder decides.
        let _ = deaggregate(&framed(&tail));
    }
}
