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

/// One retry layer: a sink built from an `SdkConfig` makes exactly the
/// attempts of its own policy; the same sink over a client with the SDK's
/// standard retries (3 attempts per call) makes three times as many.
#[tokio::test]
async fn a_sink_built_from_an_sdk_config_is_the_only_layer_retrying_its_calls() {
    use futures::SinkExt;
    use std::time::Duration;
    use unistream::kinesis::{KinesisRecord, KinesisSink};
    use unistream::{Error, RetryPolicy};

    let policy = RetryPolicy::new()
        .max_attempts(2)
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(1));
    let batch = || vec![KinesisRecord::new("x", "k"); 3];

    let stub = KinesisStub::start(StubConfig::new(1).fail_put_records(u64::MAX))
        .await
        .unwrap();
    let config = crate::support::emulators::sdk_config_at(&stub.endpoint()).await;
    let mut own = KinesisSink::builder(&config, stub.stream())
        .retry_policy(policy.clone())
        .build()
        .unwrap();
    let err = own.send(batch()).await.unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err}");
    assert_eq!(stub.stats().put_records_calls, 2);

    stub.reset_counters();
    let mut layered = KinesisSink::builder_from_client(stub.client(), stub.stream())
        .retry_policy(policy)
        .build()
        .unwrap();
    let err = layered.send(batch()).await.unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err}");
    assert_eq!(stub.stats().put_records_calls, 6);
}

/// A stream name or ARN Kinesis cannot accept is refused when the sink is
/// built, by every constructor, before anything is sent.
#[tokio::test]
async fn a_name_kinesis_cannot_accept_is_a_config_error_from_every_constructor() {
    use unistream::kinesis::KinesisSink;
    use unistream::Error;

    let stub = KinesisStub::start(StubConfig::new(1)).await.unwrap();
    let config = crate::support::emulators::sdk_config_at(&stub.endpoint()).await;
    let long = "x".repeat(129);
    for bad in [
        "",
        "a b",
        "orders/v2",
        long.as_str(),
        "arn:aws:sqs:us-east-1:1:q",
    ] {
        let errors = [
            KinesisSink::new(&config, bad).err(),
            KinesisSink::from_client(stub.client(), bad).err(),
            KinesisSink::builder(&config, bad).build().err(),
            KinesisSink::builder_from_client(stub.client(), bad)
                .build()
                .err(),
        ];
        for error in errors {
            assert!(
                matches!(error, Some(Error::Config(_))),
                "{bad:?}: {error:?}"
            );
        }
    }
    assert_eq!(stub.stats().put_records_calls, 0);
    assert_eq!(stub.stats().list_shards_calls, 0);
    assert!(KinesisSink::new(&config, stub.stream()).is_ok());
}

/// Two sinks sharing two limited shards, each with eight calls in flight:
/// the pacing throttles and retries, and every record is stored exactly
/// once, each key's records in the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_with_calls_in_flight_on_limited_shards_store_everything_once_in_order() {
    use std::collections::HashMap;

    use futures::SinkExt;
    use unistream::kinesis::{KinesisRecord, KinesisSink};

    let stub = KinesisStub::start(StubConfig::new(2)).await.unwrap();
    let records = |producer: usize| -> Vec<KinesisRecord> {
        (0..3000)
            .map(|i| {
                let key = format!("p{producer}-k{}", i % 300);
                KinesisRecord::new(format!("{key}/{i:06}"), key)
            })
            .collect()
    };
    let produce = |producer: usize| {
        let mut sink = KinesisSink::builder_from_client(stub.client(), stub.stream())
            .max_calls_in_flight(8)
            .build()
            .unwrap();
        let batch = records(producer);
        async move {
            for chunk in batch.chunks(1500) {
                sink.send(chunk.to_vec()).await.unwrap();
            }
        }
    };
    futures::join!(produce(0), produce(1));
    let mut by_key: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    for (_, stored) in stub.stored_by_shard() {
        for record in stored {
            by_key
                .entry(record.partition_key.clone().into_bytes())
                .or_default()
                .push(record.data.to_vec());
        }
    }
    let mut expected: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    for producer in 0..2 {
        for record in records(producer) {
            expected
                .entry(record.partition_key.clone().into_bytes())
                .or_default()
                .push(record.data.to_vec());
        }
    }
    assert_eq!(by_key.len(), expected.len());
    assert!(
        by_key == expected,
        "a record lost, stored twice or out of order"
    );
    // Nothing accepted twice (a duplicate would also break the comparison).
    assert_eq!(stub.stats().accepted_records(), 6000);
}
