//! Calls that get no answer (a connection gone silent): `KinesisSink` and
//! `KinesisSource` abandon a call after their `request_timeout` and retry
//! it, so nothing waits forever; a call whose answer was lost may have
//! stored its records, which are then stored again (at least once). On
//! paused time: the stub's round trips and the limits are exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::Client;
use aws_smithy_runtime_api::client::http::HttpConnectorFuture;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use futures::{SinkExt, TryStreamExt};
use tokio::time::Instant;
use unistream::checkpoint::MemoryCheckpointStore;
use unistream::kinesis::{KinesisRecord, KinesisSink, KinesisSource};
use unistream::{ErrorChain, RetryPolicy};

use crate::support::http_client::AnsweringHttpClient;
use crate::support::kinesis::stub::{KinesisStub, StubConfig};

/// `count` records, each of its own key.
fn records(count: usize) -> Vec<KinesisRecord> {
    (0..count)
        .map(|i| KinesisRecord::new(format!("record-{i:04}"), format!("key-{i}")))
        .collect()
}

/// The data of every record the stub holds, sorted.
fn stored(stub: &KinesisStub) -> Vec<String> {
    let mut data: Vec<String> = stub
        .stored_by_shard()
        .into_iter()
        .flat_map(|(_, records)| records)
        .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
        .collect();
    data.sort();
    data
}

fn data_of(records: &[KinesisRecord]) -> Vec<String> {
    let mut data: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
        .collect();
    data.sort();
    data
}

const LIMIT: Duration = Duration::from_secs(2);

#[tokio::test(start_paused = true)]
async fn a_put_records_call_that_never_arrives_is_abandoned_and_sent_again() {
    let stub = KinesisStub::in_process(
        StubConfig::new(2)
            .round_trip(Duration::from_millis(20), Duration::ZERO, 1)
            .stall_put_records(1),
    );
    let mut sink = KinesisSink::builder_from_client(stub.client(), stub.stream())
        .request_timeout(Some(LIMIT))
        .build()
        .unwrap();
    let batch = records(300);
    let started = Instant::now();
    sink.send(batch.clone()).await.unwrap();
    let took = started.elapsed();

    assert_eq!(stored(&stub), data_of(&batch), "every record stored once");
    assert_eq!(stub.abandoned_requests(), 1, "the silent call was dropped");
    // The limit, then a back-off of the default policy and a round trip.
    assert!(took >= LIMIT, "{took:?}");
    assert!(took < LIMIT + Duration::from_secs(1), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lost_answer_stores_the_records_of_its_call_again_and_loses_none() {
    let stub = KinesisStub::in_process(
        StubConfig::new(2)
            .round_trip(Duration::from_millis(20), Duration::ZERO, 1)
            .lose_put_records_answers(1),
    );
    let mut sink = KinesisSink::builder_from_client(stub.client(), stub.stream())
        .request_timeout(Some(LIMIT))
        .build()
        .unwrap();
    let batch = records(300);
    sink.send(batch.clone()).await.unwrap();

    let mut expected = data_of(&batch);
    expected.extend(data_of(&batch));
    expected.sort();
    // One call of 300 records: stored, its answer lost, sent again.
    assert_eq!(stored(&stub), expected, "every record stored twice");
}

#[tokio::test(start_paused = true)]
async fn calls_that_never_answer_exhaust_the_policy_with_an_error_naming_the_timeout() {
    let stub = KinesisStub::in_process(StubConfig::new(1).stall_put_records(u64::MAX));
    let mut sink = KinesisSink::builder_from_client(stub.client(), stub.stream())
        .request_timeout(Some(LIMIT))
        .retry_policy(RetryPolicy::new().max_attempts(3))
        .build()
        .unwrap();
    let err = sink.send(records(10)).await.unwrap_err();
    let chain = ErrorChain(&err).to_string();
    assert!(
        chain.contains("PutRecords got no answer within 2s (request_timeout)"),
        "{chain}"
    );
    assert!(stored(&stub).is_empty());
    assert_eq!(stub.abandoned_requests(), 3);
}

#[tokio::test(start_paused = true)]
async fn without_a_request_timeout_a_silent_call_is_waited_for() {
    let stub = KinesisStub::in_process(StubConfig::new(1).stall_put_records(1));
    let mut sink = KinesisSink::builder_from_client(stub.client(), stub.stream())
        .request_timeout(None)
        .build()
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(600), sink.send(records(10))).await;
    assert!(waited.is_err(), "still waiting after ten minutes");
    assert!(stored(&stub).is_empty());
}

/// A one-shard stream answering `ListShards`, `GetShardIterator` and
/// `GetRecords` (one record, "hello", then nothing) in process, leaving
/// the first `stalled` `GetRecords` calls unanswered.
fn read_client(stalled: u64) -> (Client, Arc<AtomicU64>) {
    let get_records_calls = Arc::new(AtomicU64::new(0));
    let calls = get_records_calls.clone();
    let http = AnsweringHttpClient::new(move |request| {
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        let body = request.body().bytes().unwrap_or_default().to_vec();
        let calls = calls.clone();
        HttpConnectorFuture::new(async move {
            let answer = match operation.as_str() {
                "ListShards" => serde_json::json!({"Shards": [{
                    "ShardId": "shardId-000000000000",
                    "HashKeyRange": {
                        "StartingHashKey": "0",
                        "EndingHashKey": u128::MAX.to_string(),
                    },
                    "SequenceNumberRange": {"StartingSequenceNumber": "1"},
                }]}),
                "GetShardIterator" => serde_json::json!({"ShardIterator": "at-start"}),
                "GetRecords" => {
                    if calls.fetch_add(1, Ordering::SeqCst) < stalled {
                        std::future::pending::<()>().await;
                    }
                    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let records = if request["ShardIterator"] == "at-start" {
                        serde_json::json!([{
                            "SequenceNumber": "1",
                            "Data": "aGVsbG8=",
                            "PartitionKey": "k",
                            "ApproximateArrivalTimestamp": 1.7e9,
                        }])
                    } else {
                        serde_json::json!([])
                    };
                    serde_json::json!({
                        "Records": records,
                        "NextShardIterator": "after-1",
                        "MillisBehindLatest": 0,
                    })
                }
                other => panic!("unexpected {other}"),
            };
            Ok(HttpResponse::new(
                StatusCode::try_from(200).unwrap(),
                SdkBody::from(answer.to_string()),
            ))
        })
    });
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url("http://127.0.0.1:9")
        .http_client(http)
        .build();
    (Client::from_conf(config), get_records_calls)
}

#[tokio::test(start_paused = true)]
async fn a_get_records_call_that_never_answers_is_abandoned_and_made_again() {
    let (client, get_records_calls) = read_client(1);
    let mut stream = KinesisSource::from_client(client, "silent", MemoryCheckpointStore::new())
        .request_timeout(Some(LIMIT))
        .stream();
    let started = Instant::now();
    let (record, _token) = stream.try_next().await.unwrap().unwrap();
    let took = started.elapsed();
    assert_eq!(&record.data[..], b"hello");
    assert_eq!(get_records_calls.load(Ordering::SeqCst), 2);
    assert!(took >= LIMIT, "{took:?}");
    assert!(took < LIMIT + Duration::from_secs(1), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn without_a_request_timeout_a_silent_get_records_is_waited_for() {
    let (client, get_records_calls) = read_client(1);
    let mut stream = KinesisSource::from_client(client, "silent", MemoryCheckpointStore::new())
        .request_timeout(None)
        .stream();
    let waited = tokio::time::timeout(Duration::from_secs(600), stream.try_next()).await;
    assert!(waited.is_err(), "still waiting after ten minutes");
    assert_eq!(get_records_calls.load(Ordering::SeqCst), 1);
}
