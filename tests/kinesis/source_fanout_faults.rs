//! `KinesisSource` with enhanced fan-out against `aws-smithy-mocks` rules
//! whose `SubscribeToShard` answers are real event-stream bodies: a
//! consumer that exists already, `ResourceInUseException` (counted, and
//! within 5 s of a subscription: waited out), throttling, a subscription
//! ending early, an event stream broken in the middle of an event, and a
//! null continuation ending the shard. Time is paused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::operation::describe_stream_consumer::DescribeStreamConsumerOutput;
use aws_sdk_kinesis::operation::list_shards::ListShardsOutput;
use aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardInput;
use aws_sdk_kinesis::types::{ConsumerDescription, ConsumerStatus, Shard, ShardIteratorType};
use aws_sdk_kinesis::Client;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_mocks::{mock, MockResponse};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use futures::TryStreamExt;
use unistream::checkpoint::MemoryCheckpointStore;
use unistream::kinesis::{EnhancedFanOut, KinesisSource};
use unistream::{CheckpointStore, Position};

use crate::support::kinesis::fake_read_stream::seq_of;
use crate::support::kinesis::{mocked_client, shard_id};

const STREAM: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/fanned";
const CONSUMER: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/fanned/consumer/app:1";
/// Records in the shard.
const TOTAL: u64 = 30;

fn frame(headers: &[(&'static str, &str)], payload: String) -> Vec<u8> {
    let mut message = Message::new(payload.into_bytes());
    for (name, value) in headers {
        message = message.add_header(Header::new(
            *name,
            HeaderValue::String(value.to_string().into()),
        ));
    }
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

/// A `SubscribeToShardEvent` frame with records `ids`; `continuation`
/// `None` is a null continuation (the shard's end).
fn event(ids: std::ops::Range<u64>, continuation: Option<String>) -> Vec<u8> {
    let records: Vec<serde_json::Value> = ids
        .map(|i| {
            serde_json::json!({
                "SequenceNumber": seq_of(i),
                "PartitionKey": "k",
                "Data": base64::engine::general_purpose::STANDARD.encode(i.to_string()),
                "ApproximateArrivalTimestamp": 1.7e9,
            })
        })
        .collect();
    let payload = serde_json::json!({
        "Records": records,
        "ContinuationSequenceNumber": continuation,
        "MillisBehindLatest": 0,
    });
    frame(
        &[
            (":message-type", "event"),
            (":event-type", "SubscribeToShardEvent"),
            (":content-type", "application/json"),
        ],
        payload.to_string(),
    )
}

fn initial() -> Vec<u8> {
    frame(
        &[
            (":message-type", "event"),
            (":event-type", "initial-response"),
        ],
        "{}".into(),
    )
}

fn ok_body(body: Vec<u8>) -> Response<SdkBody> {
    let mut response = Response::new(StatusCode::try_from(200).unwrap(), SdkBody::from(body));
    response
        .headers_mut()
        .insert("content-type", "application/vnd.amazon.eventstream");
    response
}

fn error(code: &str) -> Response<SdkBody> {
    let mut response = Response::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(format!(r#"{{"__type":"{code}","message":"injected"}}"#)),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.1");
    response
}

/// The first record a subscription at `input`'s position serves.
fn first_of(input: &SubscribeToShardInput) -> u64 {
    let position = input.starting_position().unwrap();
    match position.r#type() {
        ShardIteratorType::TrimHorizon => 0,
        ShardIteratorType::AfterSequenceNumber => index_of(position.sequence_number().unwrap()) + 1,
        ShardIteratorType::AtSequenceNumber => index_of(position.sequence_number().unwrap()),
        other => panic!("unexpected position {other:?}"),
    }
}

fn index_of(seq: &str) -> u64 {
    seq[seq.len() - 7..].parse().unwrap()
}

/// The n-th `SubscribeToShard` answer.
fn subscription(n: usize, first: u64) -> Response<SdkBody> {
    let upto = |count: u64| (first + count).min(TOTAL);
    match n {
        0 => error("ResourceInUseException"),
        1 => error("LimitExceededException"),
        // Two events, then the subscription ends early.
        2 => {
            let mid = upto(5);
            let end = upto(10);
            let mut body = initial();
            body.extend(event(first..mid, Some(seq_of(mid - 1))));
            body.extend(event(mid..end, Some(seq_of(end - 1))));
            ok_body(body)
        }
        // Right after the previous subscription: Kinesis still holds it.
        3 => error("ResourceInUseException"),
        // One event, then the stream breaks in the middle of the next.
        4 => {
            let mid = upto(5);
            let end = upto(10);
            let mut body = initial();
            body.extend(event(first..mid, Some(seq_of(mid - 1))));
            let cut = event(mid..end, Some(seq_of(end - 1)));
            body.extend(&cut[..cut.len() / 2]);
            ok_body(body)
        }
        // Everything left, then the shard's end (null continuation).
        _ => {
            let mut body = initial();
            body.extend(event(first..TOTAL, Some(seq_of(TOTAL - 1))));
            body.extend(event(TOTAL..TOTAL, None));
            ok_body(body)
        }
    }
}

#[tokio::test(start_paused = true)]
async fn in_use_throttling_an_early_end_and_a_broken_stream_lose_and_repeat_nothing() {
    let list = mock!(Client::list_shards).then_output(|| {
        ListShardsOutput::builder()
            .shards(Shard::builder().shard_id(shard_id(0)).build().unwrap())
            .build()
    });
    let register = mock!(Client::register_stream_consumer)
        .then_http_response(|| error("ResourceInUseException"));
    let describe = mock!(Client::describe_stream_consumer).then_output(|| {
        DescribeStreamConsumerOutput::builder()
            .consumer_description(
                ConsumerDescription::builder()
                    .consumer_name("app")
                    .consumer_arn(CONSUMER)
                    .consumer_status(ConsumerStatus::Active)
                    .consumer_creation_timestamp(aws_smithy_types::DateTime::from_secs(0))
                    .stream_arn(STREAM)
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, s) = (calls.clone(), starts.clone());
    let subscribe = mock!(Client::subscribe_to_shard).then_compute_response(move |input| {
        assert_eq!(input.consumer_arn(), Some(CONSUMER));
        let n = c.fetch_add(1, Ordering::SeqCst);
        let first = first_of(input);
        s.lock()
            .unwrap()
            .push((n, first, tokio::time::Instant::now()));
        MockResponse::Http(subscription(n, first))
    });
    let client = mocked_client(&[&list, &register, &describe, &subscribe]);
    let store = MemoryCheckpointStore::new();
    let mut stream = KinesisSource::from_client(client, STREAM, store.clone())
        .enhanced_fan_out(EnhancedFanOut::new("app"))
        .stream();
    let mut ids = Vec::new();
    while ids.len() < TOTAL as usize {
        let (record, token) = stream.try_next().await.unwrap().unwrap();
        let id: u64 = std::str::from_utf8(&record.data).unwrap().parse().unwrap();
        assert_eq!(token.position(), &Position::sequence(seq_of(id)));
        assert_eq!(token.seq(), ids.len() as u64);
        store
            .save(token.partition(), token.position())
            .await
            .unwrap();
        ids.push(id);
    }
    assert_eq!(
        ids,
        (0..TOTAL).collect::<Vec<_>>(),
        "every record once, in order"
    );
    // The null continuation ends the shard once its last record is
    // checkpointed.
    let mut ended = false;
    for _ in 0..100 {
        let next = tokio::time::timeout(Duration::from_millis(100), stream.try_next()).await;
        assert!(next.is_err(), "nothing after the shard's end: {next:?}");
        if store.position(&shard_id(0)) == Some(Position::End) {
            ended = true;
            break;
        }
    }
    assert!(ended, "SHARD_END stored after the last record");
    let starts = starts.lock().unwrap().clone();
    let firsts: Vec<u64> = starts.iter().map(|(_, first, _)| *first).collect();
    // Failed calls, then: from 0; after 10 (early end); in use; after 10
    // again; after 15 (the broken event's records come again).
    assert_eq!(firsts, [0, 0, 0, 10, 10, 15]);
    for pair in starts.windows(2) {
        assert!(
            pair[1].2 - pair[0].2 >= Duration::from_secs(1),
            "at most one subscribe per second: {pair:?}"
        );
    }
    // The in-use answer right after a subscription waits its 5 s out.
    assert!(starts[4].2 - starts[2].2 >= Duration::from_secs(5));
}
