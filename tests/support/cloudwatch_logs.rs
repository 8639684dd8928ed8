//! CloudWatch Logs on the emulator: the clock events are stamped with, and
//! reading a log stream back as the service stored it.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::Client;
use unistream::cloudwatch_logs::LogEvent;

/// An hour, in the milliseconds of event timestamps.
pub const HOUR_MS: i64 = 3_600_000;
/// A day, likewise.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every event of the stream, oldest first, paginating with
/// `nextForwardToken` until it repeats.
pub async fn read_back(client: &Client, group: &str, stream: &str) -> Vec<LogEvent> {
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
