//! Streams on the Kinesis emulators (moto, kinesis-mock): created, or
//! resharded, and waited for until they are `ACTIVE`, so that a test's
//! first write never meets a stream still being set up; and numbered
//! records written to them.

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use aws_sdk_kinesis::Client;

/// Polls of [`wait_active`], 50 ms apart: 10 s in all.
const POLLS: usize = 200;

/// Creates the stream `name` of `shards` shards and waits until it is
/// active.
pub async fn create_stream(client: &Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    wait_active(client, name).await;
}

/// Waits until the stream `name` is `ACTIVE` (after a create or a
/// reshard); panics after 10 s.
pub async fn wait_active(client: &Client, name: &str) {
    for _ in 0..POLLS {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .unwrap();
        if summary
            .stream_description_summary()
            .map(|s| s.stream_status())
            == Some(&StreamStatus::Active)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stream {name} never became ACTIVE");
}

/// Writes records whose data is the decimal id, `key(id)` their partition
/// key, 500 per call; panics unless every record was put.
pub async fn put_ids_keyed(
    client: &Client,
    stream: &str,
    ids: std::ops::Range<u64>,
    key: impl Fn(u64) -> String,
) {
    let ids: Vec<u64> = ids.collect();
    for batch in ids.chunks(500) {
        let entries = batch
            .iter()
            .map(|id| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(id.to_string()))
                    .partition_key(key(*id))
                    .build()
                    .unwrap()
            })
            .collect::<Vec<_>>();
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_record_count(), Some(0), "a record not put");
    }
}

/// [`put_ids_keyed`] with partition keys `key-<id>`.
pub async fn put_ids(client: &Client, stream: &str, ids: std::ops::Range<u64>) {
    put_ids_keyed(client, stream, ids, |id| format!("key-{id}")).await;
}

/// Splits `shard` of `stream` at the middle of its hash-key range and
/// waits until the stream is active again; returns the range that was
/// split (first and last hash key).
pub async fn split_in_half(client: &Client, stream: &str, shard: &str) -> (u128, u128) {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let range = shards
        .shards()
        .iter()
        .find(|s| s.shard_id() == shard)
        .unwrap_or_else(|| panic!("no shard {shard} in {stream}"))
        .hash_key_range()
        .unwrap();
    let start: u128 = range.starting_hash_key().parse().unwrap();
    let end: u128 = range.ending_hash_key().parse().unwrap();
    client
        .split_shard()
        .stream_name(stream)
        .shard_to_split(shard)
        .new_starting_hash_key((start + (end - start) / 2).to_string())
        .send()
        .await
        .unwrap();
    wait_active(client, stream).await;
    (start, end)
}

/// Merges the adjacent shards `a` and `b` of `stream` and waits until the
/// stream is active again.
pub async fn merge(client: &Client, stream: &str, a: &str, b: &str) {
    client
        .merge_shards()
        .stream_name(stream)
        .shard_to_merge(a)
        .adjacent_shard_to_merge(b)
        .send()
        .await
        .unwrap();
    wait_active(client, stream).await;
}
