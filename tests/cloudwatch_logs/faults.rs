//! `CloudWatchLogsSink` under faults the emulator never produces, injected
//! with `aws-smithy-mocks`: throttling, HTTP 500, sequence-token errors,
//! `rejectedLogEventsInfo` with exact indices, requests refused as invalid.
//! The mocked service records what it "stores", so each test checks that
//! nothing is lost and nothing is stored twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudwatchlogs::config::retry::RetryConfig;
use aws_sdk_cloudwatchlogs::operation::put_log_events::{PutLogEventsError, PutLogEventsOutput};
use aws_sdk_cloudwatchlogs::types::error::{
    DataAlreadyAcceptedException, InvalidParameterException, InvalidSequenceTokenException,
};
use aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo;
use aws_sdk_cloudwatchlogs::Client;
use aws_smithy_mocks::{
    create_mock_http_client, mock, MockResponse, MockResponseInterceptor, Rule, RuleMode,
};
use aws_smithy_runtime_api::client::http::HttpConnectorFuture;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use futures::SinkExt;
use unistream::cloudwatch_logs::{CloudWatchLogsSink, LogEvent};
use unistream::{Error, RetryPolicy};

use crate::support::http_client::AnsweringHttpClient;

const NOW_MS: i64 = 1_800_000_000_000;

fn clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(NOW_MS as u64)
}

/// A client answering only from `rules`, with the SDK's retries off so that
/// every retry seen is the sink's.
fn mocked_client(rules: &[&Rule]) -> Client {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let conf = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

fn sink(client: Client, retry: RetryPolicy) -> CloudWatchLogsSink {
    CloudWatchLogsSink::builder_with_client(client, "group", "stream")
        .clock(clock)
        .retry_policy(
            retry
                .jitter(false)
                .initial_backoff(Duration::from_millis(50)),
        )
        .build()
        .unwrap()
}

fn http(status: u16, body: &str) -> HttpResponse {
    let mut response = HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(body.to_owned()),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.1");
    response
}

type Stored = Arc<Mutex<Vec<Vec<LogEvent>>>>;

fn to_events(
    input: &aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsInput,
) -> Vec<LogEvent> {
    input
        .log_events()
        .iter()
        .map(|e| LogEvent::new(e.timestamp(), e.message()))
        .collect()
}

/// Scrambled timestamps, so that send order differs from batch order.
fn scrambled(n: i64) -> Vec<LogEvent> {
    (0..n)
        .map(|i| {
            LogEvent::new(
                NOW_MS - 1_000_000 + (i * 7919) % 100_000,
                format!("event {i}"),
            )
        })
        .collect()
}

fn stably_sorted(mut events: Vec<LogEvent>) -> Vec<LogEvent> {
    events.sort_by_key(|e| e.timestamp);
    events
}

#[tokio::test(start_paused = true)]
async fn throttling_and_http_500_are_retried_and_nothing_is_lost() {
    // Every request is first throttled, then answered with a 500 page, and
    // stored on the third call.
    let calls = Arc::new(AtomicUsize::new(0));
    let stored: Stored = Default::default();
    let (c, s) = (calls.clone(), stored.clone());
    let rule = mock!(Client::put_log_events).then_compute_response(move |input| {
        match c.fetch_add(1, Ordering::SeqCst) % 3 {
            0 => MockResponse::Http(http(
                400,
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            )),
            1 => MockResponse::Http(http(500, "<html>Internal Server Error</html>")),
            _ => {
                s.lock().unwrap().push(to_events(input));
                MockResponse::Output(PutLogEventsOutput::builder().build())
            }
        }
    });
    let mut sink = sink(mocked_client(&[&rule]), RetryPolicy::new().max_attempts(5));

    // 25,000 events: three requests, nine calls.
    let events = scrambled(25_000);
    let started = tokio::time::Instant::now();
    sink.send(events.clone()).await.unwrap();

    assert_eq!(calls.load(Ordering::SeqCst), 9);
    let stored = stored.lock().unwrap().clone();
    assert_eq!(
        stored.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10_000, 10_000, 5_000]
    );
    assert_eq!(stored.concat(), stably_sorted(events));
    // Two backoffs per request, 50 ms then 100 ms, without jitter.
    assert_eq!(started.elapsed(), Duration::from_millis(3 * 150));
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_fail_the_batch_and_the_sink_stays_usable() {
    let calls = Arc::new(AtomicUsize::new(0));
    let stored: Stored = Default::default();
    let (c, s) = (calls.clone(), stored.clone());
    let rule = mock!(Client::put_log_events).then_compute_response(move |input| {
        // Three service-unavailable answers, then success.
        if c.fetch_add(1, Ordering::SeqCst) < 3 {
            MockResponse::Error(PutLogEventsError::ServiceUnavailableException(
                aws_sdk_cloudwatchlogs::types::error::ServiceUnavailableException::builder()
                    .message("try later")
                    .build(),
            ))
        } else {
            s.lock().unwrap().push(to_events(input));
            MockResponse::Output(PutLogEventsOutput::builder().build())
        }
    });
    let mut sink = sink(mocked_client(&[&rule]), RetryPolicy::new().max_attempts(2));
    let events = scrambled(10);

    let err = sink.send(events.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err}");
    let chain = unistream::ErrorChain(&err).to_string();
    assert!(chain.contains("after 2 attempt(s)"), "{chain}");
    assert!(stored.lock().unwrap().is_empty());

    // The same batch again (what buffered_wal does): third call fails, fourth
    // stores it.
    sink.send(events.clone()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(stored.lock().unwrap().concat(), stably_sorted(events));
}

/// An HTTP client whose first call hangs for a minute; later calls answer
/// `{}` (an empty `PutLogEvents` output) at once. Counts its calls in
/// `calls`.
fn hangs_once(calls: Arc<AtomicUsize>) -> AnsweringHttpClient {
    AnsweringHttpClient::new(move |_request| {
        let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
        HttpConnectorFuture::new(async move {
            if first {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok(http(200, "{}"))
        })
    })
}

#[tokio::test(start_paused = true)]
async fn a_request_that_hangs_times_out_and_is_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let http_client = hangs_once(calls.clone());
    let conf = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .http_client(http_client.clone())
        .retry_config(RetryConfig::disabled())
        .build();
    let mut sink =
        CloudWatchLogsSink::builder_with_client(Client::from_conf(conf), "group", "stream")
            .clock(clock)
            .request_timeout(Some(Duration::from_secs(5)))
            .retry_policy(
                RetryPolicy::new()
                    .max_attempts(3)
                    .jitter(false)
                    .initial_backoff(Duration::from_millis(50)),
            )
            .build()
            .unwrap();
    let started = tokio::time::Instant::now();
    sink.send(scrambled(3)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(started.elapsed(), Duration::from_millis(5_050));
}

#[tokio::test(start_paused = true)]
async fn sequence_tokens_of_older_endpoints_are_followed() {
    let tokens_seen: Arc<Mutex<Vec<Option<String>>>> = Default::default();
    let stored: Stored = Default::default();
    let (t, s) = (tokens_seen.clone(), stored.clone());
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let rule = mock!(Client::put_log_events).then_compute_response(move |input| {
        t.lock()
            .unwrap()
            .push(input.sequence_token().map(str::to_owned));
        match c.fetch_add(1, Ordering::SeqCst) {
            // The endpoint wants token "A" first.
            0 => MockResponse::Error(PutLogEventsError::InvalidSequenceTokenException(
                InvalidSequenceTokenException::builder()
                    .expected_sequence_token("A")
                    .message("bad token")
                    .build(),
            )),
            1 => {
                s.lock().unwrap().push(to_events(input));
                MockResponse::Output(
                    PutLogEventsOutput::builder()
                        .next_sequence_token("B")
                        .build(),
                )
            }
            // The second batch's answer was lost and the batch is seen
            // again: the endpoint says it already has it.
            _ => MockResponse::Error(PutLogEventsError::DataAlreadyAcceptedException(
                DataAlreadyAcceptedException::builder()
                    .expected_sequence_token("C")
                    .message("already accepted")
                    .build(),
            )),
        }
    });
    // No retries at all: token refreshes are not retries.
    let mut sink = sink(mocked_client(&[&rule]), RetryPolicy::no_retry());
    sink.send(scrambled(5)).await.unwrap();
    sink.send(scrambled(5)).await.unwrap();
    sink.send(scrambled(5)).await.unwrap();
    assert_eq!(
        *tokens_seen.lock().unwrap(),
        vec![None, Some("A".into()), Some("B".into()), Some("C".into())]
    );
    assert_eq!(stored.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn rejected_log_events_info_maps_through_the_sort_to_batch_indices() {
    let stored: Stored = Default::default();
    let s = stored.clone();
    let rule = mock!(Client::put_log_events).then_compute_response(move |input| {
        // The service finds the first two events of the request too old, the
        // last one too new, and stores the rest.
        let events = to_events(input);
        let n = events.len();
        s.lock().unwrap().push(events[2..n - 1].to_vec());
        MockResponse::Output(
            PutLogEventsOutput::builder()
                .rejected_log_events_info(
                    RejectedLogEventsInfo::builder()
                        .too_old_log_event_end_index(1)
                        .too_new_log_event_start_index(n as i32 - 1)
                        .build(),
                )
                .build(),
        )
    });
    let mut sink = sink(mocked_client(&[&rule]), RetryPolicy::no_retry());
    let batch = vec![
        LogEvent::new(NOW_MS - 500, "c"),
        LogEvent::new(NOW_MS - 100, "newest"),
        LogEvent::new(NOW_MS - 900, "oldest"),
        LogEvent::new(NOW_MS - 800, "b"),
        LogEvent::new(NOW_MS - 600, "c0"),
    ];
    let err = sink.send(batch).await.unwrap_err();
    let Error::Rejected(rejected) = err else {
        panic!("expected Rejected, got {err}");
    };
    // Sent as [2 oldest, 3 b, 4 c0, 0 c, 1 newest].
    let got: Vec<(usize, &str)> = rejected
        .iter()
        .map(|r| (r.index, r.reason.split(':').next().unwrap()))
        .collect();
    assert_eq!(got, vec![(1, "too new"), (2, "too old"), (3, "too old")]);
    let messages: Vec<String> = stored
        .lock()
        .unwrap()
        .concat()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(messages, vec!["c0", "c"]);
}

#[tokio::test(start_paused = true)]
async fn a_request_refused_as_invalid_is_halved_until_the_bad_event_is_alone() {
    // The "service" refuses any request containing a poisoned event (as a
    // stricter endpoint does with an event over its size limit).
    let stored: Stored = Default::default();
    let s = stored.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let rule = mock!(Client::put_log_events).then_compute_response(move |input| {
        c.fetch_add(1, Ordering::SeqCst);
        let events = to_events(input);
        if events.iter().any(|e| e.message.starts_with("poison")) {
            MockResponse::Error(PutLogEventsError::InvalidParameterException(
                InvalidParameterException::builder()
                    .message("Log event too large")
                    .build(),
            ))
        } else {
            s.lock().unwrap().push(events);
            MockResponse::Output(PutLogEventsOutput::builder().build())
        }
    });
    let mut sink = sink(mocked_client(&[&rule]), RetryPolicy::no_retry());
    let mut batch = scrambled(64);
    batch[10].message = "poison 10".into();
    batch[41].message = "poison 41".into();

    let err = sink.send(batch.clone()).await.unwrap_err();
    let Error::Rejected(rejected) = err else {
        panic!("expected Rejected, got {err}");
    };
    assert_eq!(
        rejected.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![10, 41]
    );
    assert!(rejected[0]
        .reason
        .contains("InvalidParameterException: Log event too large"));

    let expected: Vec<LogEvent> = stably_sorted(batch)
        .into_iter()
        .filter(|e| !e.message.starts_with("poison"))
        .collect();
    assert_eq!(
        stored.lock().unwrap().concat(),
        expected,
        "in order, none twice"
    );
    // Halving costs O(bad events × log n) calls, not one per event.
    assert!(calls.load(Ordering::SeqCst) <= 2 * 2 * 7 + 1, "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn an_access_error_is_not_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let rule = mock!(Client::put_log_events).then_compute_response(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        MockResponse::Http(http(
            400,
            r#"{"__type":"AccessDeniedException","message":"not allowed"}"#,
        ))
    });
    let mut sink = sink(mocked_client(&[&rule]), RetryPolicy::new().max_attempts(5));
    let err = sink.send(scrambled(3)).await.unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn when_every_event_is_refused_alone_the_batch_fails_instead() {
    // A request-level problem disguised as invalid events: the sink stops
    // halving after 16 lone refusals and fails the batch; nothing is
    // dead-lettered.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let rule = mock!(Client::put_log_events).then_compute_response(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        MockResponse::Error(PutLogEventsError::InvalidParameterException(
            InvalidParameterException::builder()
                .message("something is wrong")
                .build(),
        ))
    });
    let mut sink = sink(mocked_client(&[&rule]), RetryPolicy::no_retry());
    let err = sink.send(scrambled(10_000)).await.unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err}");
    let chain = unistream::ErrorChain(&err).to_string();
    assert!(chain.contains("refused one by one"), "{chain}");
    let calls = calls.load(Ordering::SeqCst);
    // Depth-first: ~14 halvings down to the first event, then 16 more lone
    // events, each a few calls away.
    assert!(calls < 100, "{calls} calls");
}
