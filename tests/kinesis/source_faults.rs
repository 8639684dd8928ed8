//! `KinesisSource` against a fake Kinesis built from `aws-smithy-mocks`
//! rules: injected expired iterators, throttling and 500s lose nothing;
//! fatal errors name the shard; fetching is paced and bounded. Time is
//! paused, so backoffs and pacing are exact and instant.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use unistream::checkpoint::MemoryCheckpointStore;
use unistream::kinesis::KinesisSource;
use unistream::{Error, Position};

use crate::support::kinesis::fake_read_stream::{seq_of, FakeReadStream, Fault};
use crate::support::kinesis::shard_id;

#[tokio::test(start_paused = true)]
async fn expired_iterators_throttling_and_server_errors_lose_nothing() {
    let fake = FakeReadStream::new(
        2,
        Some(60),
        Arc::new(|n| match n % 6 {
            1 => Some(Fault::Expired),
            3 => Some(Fault::Throttled),
            4 if n < 20 => Some(Fault::ServerError),
            _ => None,
        }),
    );
    let store = MemoryCheckpointStore::new();
    let mut stream = KinesisSource::from_client(fake.client(), "faulty", store)
        .idle_interval(Duration::from_millis(100))
        .stream();
    let mut per_shard: HashMap<String, Vec<u64>> = HashMap::new();
    for _ in 0..120 {
        let (record, token) = stream.try_next().await.unwrap().unwrap();
        let data = String::from_utf8(record.data.to_vec()).unwrap();
        let (shard, i) = data.split_once(':').unwrap();
        assert_eq!(shard, token.partition());
        let i: u64 = i.parse().unwrap();
        assert_eq!(
            token.position(),
            &Position::sequence(seq_of(i)),
            "the token carries the record's sequence number"
        );
        per_shard.entry(shard.to_owned()).or_default().push(i);
    }
    for s in 0..2 {
        let ids = &per_shard[&shard_id(s)];
        assert_eq!(
            ids,
            &(0..60).collect::<Vec<_>>(),
            "shard {s}: every record once, in order"
        );
    }
    assert!(
        fake.injected(Fault::Expired) >= 3,
        "expired iterators were injected"
    );
    assert!(
        fake.injected(Fault::Throttled) >= 3,
        "throttling was injected"
    );
    assert!(
        fake.injected(Fault::ServerError) >= 1,
        "server errors were injected"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_names_the_stream_and_shard() {
    let fake = FakeReadStream::new(1, None, Arc::new(|n| (n == 1).then_some(Fault::NotFound)));
    let mut stream =
        KinesisSource::from_client(fake.client(), "gone", MemoryCheckpointStore::new()).stream();
    let mut delivered = 0;
    let err = loop {
        match stream.try_next().await {
            Ok(Some(_)) => delivered += 1,
            Ok(None) => panic!("stream ended without the error"),
            Err(err) => break err,
        }
    };
    assert_eq!(
        delivered, 7,
        "the records before the failure were delivered"
    );
    match &err {
        Error::Target { target, .. } => {
            assert_eq!(target, "kinesis stream gone shard shardId-000000000000")
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn transient_errors_beyond_the_retry_policy_surface() {
    let fake = FakeReadStream::new(1, None, Arc::new(|_| Some(Fault::ServerError)));
    let mut stream =
        KinesisSource::from_client(fake.client(), "down", MemoryCheckpointStore::new())
            .retry_policy(unistream::RetryPolicy::new().max_attempts(4).jitter(false))
            .stream();
    let err = stream.try_next().await.unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err:?}");
    assert_eq!(
        fake.calls_for(&shard_id(0)).len(),
        4,
        "4 attempts, then the error"
    );
}

#[tokio::test(start_paused = true)]
async fn calls_are_paced_and_a_stalled_consumer_stops_fetching() {
    let fake = FakeReadStream::new(2, None, Arc::new(|_| None));
    let mut stream =
        KinesisSource::from_client(fake.client(), "endless", MemoryCheckpointStore::new())
            .records_per_call(5)
            .stream();
    // Consume steadily for a while: at most 5 calls per second per shard.
    let start = tokio::time::Instant::now();
    for _ in 0..200 {
        stream.try_next().await.unwrap().unwrap();
    }
    for s in 0..2 {
        let calls = fake.calls_for(&shard_id(s));
        for pair in calls.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(200),
                "calls of one shard at least 200 ms apart"
            );
        }
        assert!(
            calls.len() >= 10,
            "both shards were fetched: {}",
            calls.len()
        );
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(3),
        "200 records of 5 per call take 20 calls/shard"
    );

    // Stop consuming: within one minute, each shard fetches at most the
    // responses the prefetch allows (one buffered, one being handed out).
    let before: Vec<usize> = (0..2).map(|s| fake.calls_for(&shard_id(s)).len()).collect();
    tokio::time::sleep(Duration::from_secs(60)).await;
    for (s, before) in before.into_iter().enumerate() {
        let more = fake.calls_for(&shard_id(s)).len() - before;
        assert!(more <= 2, "shard {s} fetched {more} more while stalled");
    }
    // And it goes on when the consumer comes back.
    for _ in 0..50 {
        stream.try_next().await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn shards_listed_later_are_picked_up_by_the_periodic_refresh() {
    let fake = FakeReadStream::new(1, Some(10), Arc::new(|_| None));
    let mut stream =
        KinesisSource::from_client(fake.client(), "growing", MemoryCheckpointStore::new())
            .shard_refresh_interval(Duration::from_secs(30))
            .stream();
    for _ in 0..10 {
        let (_, token) = stream.try_next().await.unwrap().unwrap();
        assert_eq!(token.partition(), shard_id(0));
    }
    // A shard appears (as after UpdateShardCount); within one refresh
    // interval its records arrive.
    fake.set_shards(2);
    let start = tokio::time::Instant::now();
    for i in 0..10 {
        let (record, token) = tokio::time::timeout(Duration::from_secs(60), stream.try_next())
            .await
            .expect("the new shard's records within a minute")
            .unwrap()
            .unwrap();
        assert_eq!(token.partition(), shard_id(1));
        assert_eq!(&record.data[..], format!("{}:{i}", shard_id(1)).as_bytes());
    }
    assert!(
        start.elapsed() <= Duration::from_secs(31),
        "found at the next refresh"
    );
    assert_eq!(stream.active_shards(), 2);
}
