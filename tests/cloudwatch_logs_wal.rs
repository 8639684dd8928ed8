//! `CloudWatchLogsSink` composed with `buffered_wal` against moto: every
//! acknowledged event is stored in order or dead-lettered with its reason.
#![cfg(feature = "cloudwatch-logs")]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::Client;
use futures::{stream, StreamExt};
use support::emulators::{moto, sdk_config, unique_name};
use unistream::cloudwatch_logs::limits::MAX_REQUEST_BYTES;
use unistream::cloudwatch_logs::{CloudWatchLogsSink, LogEvent};
use unistream::sink::{MemorySink, WalConfig, WalSinkExt};
use unistream::{DeadLetter, RetryPolicy};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn read_back(client: &Client, group: &str, stream: &str) -> Vec<LogEvent> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("GetLogEvents");
        events.extend(page.events().iter().map(|e| {
            LogEvent::new(
                e.timestamp().expect("timestamp"),
                e.message().expect("message"),
            )
        }));
        let next = page.next_forward_token().map(str::to_owned);
        if next.is_none() || next == token {
            return events;
        }
        token = next;
    }
}

#[tokio::test]
async fn fifty_thousand_events_through_buffered_wal_stored_or_dead_lettered() {
    let config = sdk_config(moto()).await;
    let client = Client::new(&config);
    let group = unique_name("/unistream/wal");
    let stream_name = unique_name("stream");
    let dir = tempfile::tempdir().unwrap();

    let dead_letters = MemorySink::<DeadLetter<LogEvent>>::new();
    let dead = dead_letters.handle();
    let target = CloudWatchLogsSink::builder(&config, &group, &stream_name)
        .create_missing(true)
        .build()
        .unwrap();
    let sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .max_records(10_000)
                .max_age(Duration::from_millis(50))
                .retry(RetryPolicy::new().max_attempts(3))
                .dead_letter(dead_letters),
        )
        .await
        .unwrap();

    // 50,000 events in timestamp order, with a never-acceptable one every
    // 5,000 (too old, too new, too large in turn).
    let start = now_ms() - 60_000;
    let events: Vec<LogEvent> = (0..50_000i64)
        .map(|i| match (i % 5_000 == 4_999).then_some(i / 5_000 % 3) {
            Some(0) => LogEvent::new(start - 15 * DAY_MS, format!("bad {i} too old")),
            Some(1) => LogEvent::new(start + 3 * HOUR_MS, format!("bad {i} too new")),
            Some(_) => LogEvent::new(start + i, "x".repeat(MAX_REQUEST_BYTES)),
            None => LogEvent::new(start + i, format!("event {i:05}")),
        })
        .collect();
    stream::iter(events.clone())
        .map(Ok)
        .forward(sink) // closes the sink: everything delivered and committed
        .await
        .unwrap();

    let (bad, good): (Vec<_>, Vec<_>) = events
        .into_iter()
        .enumerate()
        .partition(|(i, _)| *i as i64 % 5_000 == 4_999);
    let good: Vec<LogEvent> = good.into_iter().map(|(_, e)| e).collect();
    let stored = read_back(&client, &group, &stream_name).await;
    assert_eq!(stored.len(), good.len());
    assert!(stored == good, "stored events differ from those sent");

    let dead = dead.records();
    assert_eq!(dead.len(), bad.len());
    for ((i, event), letter) in bad.iter().zip(&dead) {
        assert_eq!(letter.record.as_ref(), Some(event), "event {i}");
        let expected = ["too old", "too new", "too large"][*i / 5_000 % 3];
        assert!(
            letter.reason.contains(expected),
            "event {i}: {}",
            letter.reason
        );
    }
}
