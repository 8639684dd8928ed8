//! The AWS parts against in-process fakes (`aws-smithy-mocks`): the
//! Kinesis sink's facade counters agree with its snapshot; the Kinesis
//! source counts records, calls and throttles per shard and reports
//! `MillisBehindLatest`; the CloudWatch Logs sink counts calls, retries,
//! stored and rejected events.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorOutput;
use aws_sdk_kinesis::operation::list_shards::ListShardsOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{Record, Shard};
use aws_smithy_mocks::{mock, MockResponse};
use futures::{SinkExt, TryStreamExt};
use unistream::checkpoint::MemoryCheckpointStore;
use unistream::cloudwatch_logs::{CloudWatchLogsSink, LogEvent};
use unistream::kinesis::{KinesisRecord, KinesisSink, KinesisSource};
use unistream::observe::names::*;
use unistream::{Error, RetryPolicy};

use crate::recorder::{run, until, TestRecorder};
use crate::spans::{with_span_log, SpanLog};
use crate::support::kinesis::fake_read_stream::{FakeReadStream, Fault as ReadFault};
use crate::support::kinesis::fake_write_stream::{FakeWriteStream, Fault as WriteFault};
use crate::support::kinesis::{mocked_client, shard_id};

fn no_jitter(attempts: u32) -> RetryPolicy {
    RetryPolicy::new()
        .max_attempts(attempts)
        .initial_backoff(Duration::from_millis(10))
        .jitter(false)
}

#[test]
fn the_kinesis_sink_forwards_its_snapshot_counters_to_the_facade() {
    let recorder = TestRecorder::default();
    // Call 0: the first record throttled; call 1: throttled whole; then
    // everything stored.
    let fake = FakeWriteStream::new(2).with_faults(|call, records| match call {
        0 => WriteFault::Records(
            (0..records.len())
                .map(|i| (i == 0).then_some("ProvisionedThroughputExceededException"))
                .collect(),
        ),
        1 => WriteFault::ThrottleCall,
        _ => WriteFault::None,
    });
    let log = SpanLog::default();
    let snapshot = with_span_log(&log, || {
        run(&recorder, async {
            let mut sink = KinesisSink::builder_from_client(fake.client(), "orders")
                .retry_policy(no_jitter(10))
                .build()
                .unwrap();
            let mut batch: Vec<_> = (0..5)
                .map(|i| KinesisRecord::new(format!("record {i}"), format!("key-{i}")))
                .collect();
            // Larger than Kinesis takes: rejected, never sent.
            batch.push(KinesisRecord::new(vec![0u8; 1 << 20], "big"));
            let result = sink.send(batch).await;
            assert!(
                matches!(&result, Err(Error::Rejected(r)) if r.len() == 1 && r[0].index == 5),
                "{result:?}"
            );
            sink.metrics().snapshot()
        })
    });
    assert_eq!(fake.stored().len(), 5);
    assert_eq!(
        log.fields_of("kinesis_put"),
        vec![vec![("stream".to_owned(), "orders".to_owned())]]
    );
    assert_eq!(snapshot.records_sent, 5);
    let stream = [(LABEL_STREAM, "orders")];
    let facade = |name| recorder.counter(name, &stream);
    assert_eq!(facade(KINESIS_SINK_RECORDS), snapshot.records_sent);
    assert_eq!(facade(KINESIS_SINK_FAILED_RECORDS), snapshot.records_failed);
    assert_eq!(
        facade(KINESIS_SINK_RETRIED_RECORDS),
        snapshot.records_retried
    );
    assert_eq!(
        facade(KINESIS_SINK_REJECTED_RECORDS),
        snapshot.records_dead_lettered
    );
    assert_eq!(facade(KINESIS_SINK_CALLS), snapshot.put_records_calls);
    assert_eq!(
        facade(KINESIS_SINK_CALL_FAILURES),
        snapshot.put_records_call_failures
    );
    assert_eq!(facade(KINESIS_SINK_THROTTLES), snapshot.throttles);
    // The workload's own numbers, so that the comparison is not of zeros.
    assert_eq!(snapshot.records_dead_lettered, 1);
    assert!(snapshot.records_failed > 0 && snapshot.records_retried > 0);
    assert_eq!(snapshot.put_records_calls, 3);
    assert_eq!(snapshot.put_records_call_failures, 1);
    assert_eq!(snapshot.throttles, 2);
    assert_eq!(
        recorder.histogram(KINESIS_SINK_CALL_SECONDS, &stream).len(),
        3
    );
}

#[test]
fn the_kinesis_source_reports_millis_behind_latest_per_shard() {
    let recorder = TestRecorder::default();
    let shard = shard_id(0);
    let list = {
        let shard = shard.clone();
        mock!(aws_sdk_kinesis::Client::list_shards).then_output(move || {
            ListShardsOutput::builder()
                .shards(Shard::builder().shard_id(&shard).build().unwrap())
                .build()
        })
    };
    let iterator = mock!(aws_sdk_kinesis::Client::get_shard_iterator).then_output(|| {
        GetShardIteratorOutput::builder()
            .shard_iterator("it")
            .build()
    });
    let records = mock!(aws_sdk_kinesis::Client::get_records).then_output(|| {
        let record = |seq: &str| {
            Record::builder()
                .sequence_number(seq)
                .partition_key("k")
                .data(Blob::new("x"))
                .build()
                .unwrap()
        };
        // The shard ends here: one call, three records, 1.5 s behind.
        GetRecordsOutput::builder()
            .records(record("1"))
            .records(record("2"))
            .records(record("3"))
            .millis_behind_latest(1_500)
            .build()
            .unwrap()
    });
    let client = mocked_client(&[&list, &iterator, &records]);
    run(&recorder, async {
        let mut stream =
            KinesisSource::from_client(client, "orders", MemoryCheckpointStore::new()).stream();
        for _ in 0..3 {
            stream.try_next().await.unwrap().unwrap();
        }
    });
    let labels = [(LABEL_STREAM, "orders"), (LABEL_SHARD, shard.as_str())];
    assert_eq!(recorder.counter(KINESIS_SOURCE_RECORDS, &labels), 3);
    assert_eq!(
        recorder.gauge(KINESIS_SOURCE_MILLIS_BEHIND, &labels),
        Some(1_500.0)
    );
    assert_eq!(
        recorder.counter(KINESIS_SOURCE_GET_RECORDS_CALLS, &labels),
        1
    );
    assert_eq!(recorder.counter(KINESIS_SOURCE_THROTTLES, &labels), 0);
}

#[test]
fn the_kinesis_source_counts_throttled_calls_in_a_span_naming_the_shard() {
    let recorder = TestRecorder::default();
    let log = SpanLog::default();
    // One shard of 7 records (one call's worth); the first call throttled.
    let fake = FakeReadStream::new(
        1,
        Some(7),
        Arc::new(|n| (n == 0).then_some(ReadFault::Throttled)),
    );
    with_span_log(&log, || {
        run(&recorder, async {
            let mut stream =
                KinesisSource::from_client(fake.client(), "busy", MemoryCheckpointStore::new())
                    .stream();
            for _ in 0..7 {
                stream.try_next().await.unwrap().unwrap();
            }
            let labels = [(LABEL_STREAM, "busy")];
            until("the second call counted", || {
                recorder.counter(KINESIS_SOURCE_GET_RECORDS_CALLS, &labels) >= 2
            })
            .await;
        })
    });
    assert_eq!(fake.injected(ReadFault::Throttled), 1);
    assert_eq!(
        log.fields_of("kinesis_shard"),
        vec![vec![
            ("stream".to_owned(), "busy".to_owned()),
            ("shard".to_owned(), shard_id(0)),
        ]]
    );
    let labels = [(LABEL_STREAM, "busy"), (LABEL_SHARD, &*shard_id(0))];
    assert_eq!(recorder.counter(KINESIS_SOURCE_THROTTLES, &labels), 1);
    assert_eq!(recorder.counter(KINESIS_SOURCE_RECORDS, &labels), 7);
    assert_eq!(
        recorder.gauge(KINESIS_SOURCE_MILLIS_BEHIND, &labels),
        Some(0.0)
    );
}

const NOW_MS: i64 = 1_800_000_000_000;

fn cloudwatch_client(rules: &[&aws_smithy_mocks::Rule]) -> aws_sdk_cloudwatchlogs::Client {
    let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new()
        .rule_mode(aws_smithy_mocks::RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let conf = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor)
        .retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_cloudwatchlogs::Client::from_conf(conf)
}

#[test]
fn the_cloudwatch_logs_sink_counts_calls_retries_and_rejected_events() {
    use aws_sdk_cloudwatchlogs::operation::put_log_events::{
        PutLogEventsError, PutLogEventsOutput,
    };
    use aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo;

    let recorder = TestRecorder::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    // Call 0: unavailable (retried); call 1: stored, but the first event
    // too old.
    let rule =
        mock!(aws_sdk_cloudwatchlogs::Client::put_log_events).then_compute_response(move |_| {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                MockResponse::Error(PutLogEventsError::ServiceUnavailableException(
                    aws_sdk_cloudwatchlogs::types::error::ServiceUnavailableException::builder()
                        .message("try later")
                        .build(),
                ))
            } else {
                MockResponse::Output(
                    PutLogEventsOutput::builder()
                        .rejected_log_events_info(
                            RejectedLogEventsInfo::builder()
                                .too_old_log_event_end_index(0)
                                .build(),
                        )
                        .build(),
                )
            }
        });
    let log = SpanLog::default();
    let result = with_span_log(&log, || {
        run(&recorder, async {
            let mut sink = CloudWatchLogsSink::builder_from_client(
                cloudwatch_client(&[&rule]),
                "/app/orders",
                "host-1",
            )
            .clock(|| UNIX_EPOCH + Duration::from_millis(NOW_MS as u64))
            .retry_policy(no_jitter(5))
            .build()
            .unwrap();
            let events = (0..3)
                .map(|i| LogEvent::new(NOW_MS - 1_000 + i, format!("event {i}")))
                .collect();
            sink.send(events).await
        })
    });
    assert_eq!(
        log.fields_of("cloudwatch_logs_put"),
        vec![vec![
            ("log_group".to_owned(), "/app/orders".to_owned()),
            ("log_stream".to_owned(), "host-1".to_owned()),
        ]]
    );
    assert!(
        matches!(&result, Err(Error::Rejected(r)) if r.len() == 1),
        "{result:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let labels = [
        (LABEL_LOG_GROUP, "/app/orders"),
        (LABEL_LOG_STREAM, "host-1"),
    ];
    assert_eq!(recorder.counter(CLOUDWATCH_LOGS_CALLS, &labels), 2);
    assert_eq!(recorder.counter(CLOUDWATCH_LOGS_RETRIES, &labels), 1);
    assert_eq!(
        recorder
            .histogram(CLOUDWATCH_LOGS_CALL_SECONDS, &labels)
            .len(),
        2
    );
    assert_eq!(recorder.counter(CLOUDWATCH_LOGS_EVENTS, &labels), 2);
    assert_eq!(
        recorder.counter(CLOUDWATCH_LOGS_REJECTED_EVENTS, &labels),
        1
    );
}
