//! `CloudWatchLogsSink` against moto's CloudWatch Logs: volume, ordering,
//! splitting, rejection, setup. Every test reads back what it wrote with
//! `GetLogEvents`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatchlogs::Client;
use aws_smithy_mocks::{mock, MockResponseInterceptor, RuleMode};
use futures::SinkExt;
use unistream::cloudwatch_logs::limits::{MAX_BATCH_SPAN, MAX_REQUEST_BYTES};
use unistream::cloudwatch_logs::{CloudWatchLogsSink, LogEvent};
use unistream::Error;

use crate::support::cloudwatch_logs::{now_ms, read_back, DAY_MS, HOUR_MS};
use crate::support::emulators::{moto, sdk_config, unique_name};

async fn client() -> Client {
    Client::new(&sdk_config(moto()).await)
}

/// A client whose `PutLogEvents` inputs are recorded on their way to moto:
/// a mock rule that never matches, with passthrough, is the seam.
async fn recording_client() -> (Client, Arc<Mutex<Vec<Vec<LogEvent>>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let recorder = mock!(Client::put_log_events)
        .match_requests(move |req| {
            let events = req
                .log_events()
                .iter()
                .map(|e| LogEvent::new(e.timestamp(), e.message()))
                .collect();
            seen.lock().unwrap().push(events);
            false
        })
        .then_output(|| unreachable!("the recorder never matches"));
    let interceptor = MockResponseInterceptor::new()
        .rule_mode(RuleMode::MatchAny)
        .allow_passthrough()
        .with_rule(&recorder);
    let conf = aws_sdk_cloudwatchlogs::config::Builder::from(&sdk_config(moto()).await)
        .interceptor(interceptor)
        .build();
    (Client::from_conf(conf), requests)
}

fn names() -> (String, String) {
    (unique_name("/unistream/test"), unique_name("stream"))
}

#[tokio::test]
async fn fifty_thousand_events_over_many_requests_read_back_in_order() {
    let (group, stream) = names();
    let (client, requests) = recording_client().await;
    let mut sink = CloudWatchLogsSink::builder_from_client(client.clone(), &group, &stream)
        .create_missing(true)
        .build()
        .unwrap();

    // ~100-byte messages: 50,000 of them are ~6.3 MB, so the byte limit
    // splits every 10,000-event batch in two.
    let start = now_ms() - 60_000;
    let events: Vec<LogEvent> = (0..50_000)
        .map(|i| LogEvent::new(start + i / 2, format!("event {i:05} {}", "x".repeat(90))))
        .collect();
    for batch in events.chunks(10_000) {
        sink.send(batch.to_vec()).await.unwrap();
    }
    sink.close().await.unwrap();

    let requests = requests.lock().unwrap().clone();
    assert!(requests.len() >= 10, "{} requests", requests.len());
    for request in &requests {
        let bytes: usize = request.iter().map(LogEvent::billed_bytes).sum();
        assert!(bytes <= MAX_REQUEST_BYTES && request.len() <= 10_000);
    }
    let stored = read_back(&client, &group, &stream).await;
    assert_eq!(stored.len(), events.len());
    assert!(stored == events, "stored events differ from those sent");
}

#[tokio::test]
async fn unsorted_input_is_stored_in_stable_timestamp_order() {
    let (group, stream) = names();
    let client = client().await;
    let mut sink = CloudWatchLogsSink::builder_from_client(client.clone(), &group, &stream)
        .create_missing(true)
        .build()
        .unwrap();
    let base = now_ms() - 10 * 60_000;
    // Timestamps in a scrambled order, several events per timestamp.
    let events: Vec<LogEvent> = (0..3_000i64)
        .map(|i| LogEvent::new(base + (i * 7919) % 500, format!("e{i}")))
        .collect();
    sink.send(events.clone()).await.unwrap();

    let mut expected = events;
    expected.sort_by_key(|e| e.timestamp); // stable
    assert_eq!(read_back(&client, &group, &stream).await, expected);
}

#[tokio::test]
async fn a_batch_spanning_three_days_is_split_into_requests_under_a_day() {
    let (group, stream) = names();
    let (client, requests) = recording_client().await;
    let mut sink = CloudWatchLogsSink::builder_from_client(client.clone(), &group, &stream)
        .create_missing(true)
        .build()
        .unwrap();
    // Every 20 minutes over three days, newest first.
    let now = now_ms() - 60_000;
    let events: Vec<LogEvent> = (0..216i64)
        .map(|i| LogEvent::new(now - i * 20 * 60_000, format!("t-{i}")))
        .collect();
    sink.send(events.clone()).await.unwrap();

    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "72 h of events need three requests");
    for request in &requests {
        let span = request.last().unwrap().timestamp - request[0].timestamp;
        assert!(span < MAX_BATCH_SPAN.as_millis() as i64, "span {span} ms");
        assert!(request.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    }
    let mut expected = events;
    expected.reverse();
    assert_eq!(read_back(&client, &group, &stream).await, expected);
}

#[tokio::test]
async fn too_old_too_new_too_large_and_empty_events_are_rejected_with_reasons() {
    let (group, stream) = names();
    let client = client().await;
    let mut sink = CloudWatchLogsSink::builder_from_client(client.clone(), &group, &stream)
        .create_missing(true)
        .build()
        .unwrap();
    let now = now_ms();
    let batch = vec![
        LogEvent::new(now - 1_000, "good 1"),
        LogEvent::new(now - 15 * DAY_MS, "too old"),
        LogEvent::new(now + 3 * HOUR_MS, "too new"),
        LogEvent::new(now - 500, "x".repeat(MAX_REQUEST_BYTES)),
        LogEvent::new(now - 400, ""),
        LogEvent::new(now - 300, "good 2"),
    ];
    let err = sink.send(batch.clone()).await.unwrap_err();
    let Error::Rejected(rejected) = err else {
        panic!("expected Rejected, got {err}");
    };
    let got: Vec<(usize, &str)> = rejected
        .iter()
        .map(|r| (r.index, r.reason.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "too old"),
            (2, "too new"),
            (3, "too large"),
            (4, "empty message")
        ]
    );
    // The rest of the batch was delivered before the rejection was reported.
    assert_eq!(
        read_back(&client, &group, &stream).await,
        vec![batch[0].clone(), batch[5].clone()]
    );
    // The sink stays usable.
    sink.send(vec![LogEvent::new(now, "after")]).await.unwrap();
}

#[tokio::test]
async fn events_named_by_rejected_log_events_info_are_rejected() {
    let (group, stream) = names();
    let client = client().await;
    // The sink's clock runs two hours behind moto's, so its own check lets
    // through an event that moto finds too old, and moto's
    // `rejectedLogEventsInfo` is what catches it.
    let mut sink = CloudWatchLogsSink::builder_from_client(client.clone(), &group, &stream)
        .create_missing(true)
        .clock(|| SystemTime::now() - Duration::from_secs(2 * 3600))
        .build()
        .unwrap();
    let now = now_ms();
    let batch = vec![
        LogEvent::new(now - 60_000, "good"),
        LogEvent::new(now - 14 * DAY_MS - HOUR_MS, "too old for moto"),
        LogEvent::new(now - 30_000, "good too"),
    ];
    let err = sink.send(batch.clone()).await.unwrap_err();
    let Error::Rejected(rejected) = err else {
        panic!("expected Rejected, got {err}");
    };
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].index, 1);
    assert!(
        rejected[0].reason.contains("tooOldLogEventEndIndex"),
        "{}",
        rejected[0].reason
    );

    // And one too new for moto (moto's clock + 2.5 h), with a clock ahead.
    let mut sink = CloudWatchLogsSink::builder_from_client(client.clone(), &group, &stream)
        .clock(|| SystemTime::now() + Duration::from_secs(3 * 3600))
        .build()
        .unwrap();
    let batch = vec![
        LogEvent::new(now + 5 * HOUR_MS / 2, "too new for moto"),
        LogEvent::new(now - 1_000, "good three"),
    ];
    let err = sink.send(batch).await.unwrap_err();
    let Error::Rejected(rejected) = err else {
        panic!("expected Rejected, got {err}");
    };
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(
        rejected[0].index, 0,
        "index in the batch, not in the request"
    );
    assert!(rejected[0].reason.contains("tooNewLogEventStartIndex"));

    let stored: Vec<String> = read_back(&client, &group, &stream)
        .await
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(stored, vec!["good", "good too", "good three"]);
}

#[tokio::test]
async fn creates_group_and_stream_and_sets_retention() {
    let (group, stream) = names();
    let client = client().await;
    let mut sink = CloudWatchLogsSink::builder(&sdk_config(moto()).await, &group, &stream)
        .create_missing(true)
        .retention_days(7)
        .build()
        .unwrap();
    sink.send(vec![LogEvent::now("hello")]).await.unwrap();

    let groups = client
        .describe_log_groups()
        .log_group_name_prefix(&group)
        .send()
        .await
        .unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(7));
    // A second sink on existing resources: "already exists" is fine.
    let second = CloudWatchLogsSink::builder_from_client(client.clone(), &group, &stream)
        .create_missing(true)
        .retention_days(7)
        .build()
        .unwrap();
    second.prepare().await.unwrap();
    assert_eq!(read_back(&client, &group, &stream).await.len(), 1);
}

#[tokio::test]
async fn a_missing_stream_fails_the_batch_and_the_sink_stays_usable() {
    let (group, stream) = names();
    let client = client().await;
    let mut sink = CloudWatchLogsSink::builder_from_client(client.clone(), &group, &stream)
        .build()
        .unwrap();
    let batch = vec![LogEvent::now("one"), LogEvent::now("two")];
    let err = sink.send(batch.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err}");

    client
        .create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap();
    client
        .create_log_stream()
        .log_group_name(&group)
        .log_stream_name(&stream)
        .send()
        .await
        .unwrap();
    sink.send(batch.clone()).await.unwrap();
    assert_eq!(read_back(&client, &group, &stream).await, batch);
}

#[test]
fn invalid_names_and_retention_are_configuration_errors() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conf = rt.block_on(sdk_config(moto()));
    let bad_group = CloudWatchLogsSink::builder(&conf, "has space", "s").build();
    assert!(matches!(bad_group, Err(Error::Config(_))));
    let bad_stream = CloudWatchLogsSink::builder(&conf, "g", "a:b").build();
    assert!(matches!(bad_stream, Err(Error::Config(_))));
    let bad_retention = CloudWatchLogsSink::builder(&conf, "g", "s")
        .retention_days(2)
        .build();
    assert!(matches!(bad_retention, Err(Error::Config(_))));
    // The same check from every constructor.
    let client = aws_sdk_cloudwatchlogs::Client::new(&conf);
    assert!(matches!(
        CloudWatchLogsSink::new(&conf, "has space", "s"),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        CloudWatchLogsSink::from_client(client.clone(), "g", "a:b"),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        CloudWatchLogsSink::builder_from_client(client.clone(), "has space", "s").build(),
        Err(Error::Config(_))
    ));
    assert!(CloudWatchLogsSink::from_client(client, "g", "s").is_ok());
}
