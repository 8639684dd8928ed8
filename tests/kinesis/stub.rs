//! The Kinesis stub itself (tests/support/kinesis/stub): it speaks the
//! SDK's protocol and refuses, record by record, what goes beyond a shard's
//! limits in one arrival window.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::support::kinesis::stub::{KinesisStub, Limits, StubConfig};

fn entry(key: &str, bytes: usize) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .data(Blob::new(vec![7u8; bytes]))
        .partition_key(key)
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_sdk_lists_describes_and_puts() {
    let stub = KinesisStub::start(StubConfig::new(4)).await.unwrap();
    let client = stub.client();
    let shards = client
        .list_shards()
        .stream_name(stub.stream())
        .send()
        .await
        .unwrap();
    assert_eq!(shards.shards().len(), 4);
    let summary = client
        .describe_stream_summary()
        .stream_name(stub.stream())
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        4
    );
    let out = client
        .put_records()
        .stream_name(stub.stream())
        .set_records(Some((0..10).map(|i| entry(&format!("k{i}"), 10)).collect()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(0));
    assert!(out.records().iter().all(|r| r.sequence_number().is_some()));
    assert_eq!(stub.stats().accepted_records(), 10);
    let stored: usize = stub.stored_by_shard().iter().map(|(_, r)| r.len()).sum();
    assert_eq!(stored, 10);

    let missing = client
        .put_records()
        .stream_name("other")
        .records(entry("k", 1))
        .send()
        .await
        .unwrap_err();
    assert!(missing
        .into_service_error()
        .is_resource_not_found_exception());
}

#[tokio::test]
async fn records_beyond_a_shards_window_fail_one_by_one() {
    let mut config = StubConfig::new(1);
    config.limits = Some(Limits {
        records: 700,
        bytes: 1024 * 1024,
    });
    let stub = KinesisStub::start(config).await.unwrap();
    let client = stub.client();
    // Two calls of 500 records sent together arrive in one window (unless a
    // window boundary falls between them: then each fits alone).
    let put = || {
        client
            .put_records()
            .stream_name(stub.stream())
            .set_records(Some(
                (0..500).map(|i| entry(&format!("k{i}"), 10)).collect(),
            ))
            .send()
    };
    let (a, b) = tokio::join!(put(), put());
    let failed: Vec<i32> = [a.unwrap(), b.unwrap()]
        .iter()
        .map(|o| {
            for r in o.records() {
                if let Some(code) = r.error_code() {
                    assert_eq!(code, "ProvisionedThroughputExceededException");
                }
            }
            o.failed_record_count().unwrap()
        })
        .collect();
    let stats = stub.stats();
    let total_failed = failed.iter().sum::<i32>() as u64;
    assert_eq!(stats.throttled_records(), total_failed);
    assert_eq!(stats.accepted_records() + total_failed, 1000);
    assert!(total_failed == 300 || total_failed == 0, "{failed:?}");
}

#[tokio::test]
async fn the_byte_limit_binds_for_large_records() {
    let stub = KinesisStub::start(StubConfig::new(1)).await.unwrap();
    // Three records of 400 kB: the third does not fit 1 MiB, unless a
    // window boundary falls inside the call's arrival (it arrives at one
    // instant, so it cannot).
    let out = stub
        .client()
        .put_records()
        .stream_name(stub.stream())
        .set_records(Some(
            (0..3).map(|i| entry(&format!("k{i}"), 400_000)).collect(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(1));
    assert!(out.records()[2].error_code().is_some());
    assert_eq!(stub.stats().shards[0].accepted_bytes, 800_000 + 4);
}
