//! `KinesisSource` against a fake Kinesis built from `aws-smithy-mocks`
//! rules: injected expired iterators, throttling and 500s lose nothing;
//! fatal errors name the shard; fetching is paced and bounded. Time is
//! paused, so backoffs and pacing are exact and instant.
#![cfg(feature = "kinesis")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_kinesis::error::ErrorMetadata;
use aws_sdk_kinesis::operation::get_records::{GetRecordsError, GetRecordsOutput};
use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorOutput;
use aws_sdk_kinesis::operation::list_shards::ListShardsOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::error::{
    ExpiredIteratorException, ProvisionedThroughputExceededException, ResourceNotFoundException,
};
use aws_sdk_kinesis::types::{Record, SequenceNumberRange, Shard, ShardIteratorType};
use aws_sdk_kinesis::Client;
use aws_smithy_mocks::{mock, MockResponse, MockResponseInterceptor, RuleMode};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use futures::TryStreamExt;
use unistream::checkpoint::MemoryCheckpointStore;
use unistream::kinesis::KinesisSource;
use unistream::{Error, Position};

/// What goes wrong on the n-th `GetRecords` call (from 0).
type Faults = Arc<dyn Fn(usize) -> Option<Fault> + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Expired,
    Throttled,
    ServerError,
    NotFound,
}

/// A fake, always-open Kinesis stream: `shards` shards of `per_shard`
/// records each (`None`: endless), record `i` of shard `s` has data
/// `"s:i"` and a 56-digit sequence number.
struct Fake {
    shards: std::sync::atomic::AtomicUsize,
    per_shard: Option<u64>,
    faults: Faults,
    calls: Mutex<Vec<(String, tokio::time::Instant)>>,
    injected: Mutex<HashMap<String, usize>>,
}

fn seq_of(i: u64) -> String {
    format!("4959033827149025660855969253836157109592157598913{i:07}")
}

fn index_of(seq: &str) -> u64 {
    seq[seq.len() - 7..].parse().unwrap()
}

impl Fake {
    fn new(shards: usize, per_shard: Option<u64>, faults: Faults) -> Arc<Self> {
        Arc::new(Self {
            shards: shards.into(),
            per_shard,
            faults,
            calls: Mutex::new(Vec::new()),
            injected: Mutex::new(HashMap::new()),
        })
    }

    fn shard_id(s: usize) -> String {
        format!("shardId-{s:012}")
    }

    fn client(self: &Arc<Self>) -> Client {
        let fake = self.clone();
        let list = mock!(Client::list_shards).then_compute_output(move |_| {
            let shards = (0..fake.shards.load(std::sync::atomic::Ordering::SeqCst))
                .map(|s| {
                    Shard::builder()
                        .shard_id(Fake::shard_id(s))
                        .sequence_number_range(
                            SequenceNumberRange::builder()
                                .starting_sequence_number(seq_of(0))
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap()
                })
                .collect::<Vec<_>>();
            ListShardsOutput::builder().set_shards(Some(shards)).build()
        });
        let iterators = mock!(Client::get_shard_iterator).then_compute_output(|req| {
            let index = match req.shard_iterator_type().unwrap() {
                ShardIteratorType::TrimHorizon => 0,
                ShardIteratorType::AtSequenceNumber => {
                    index_of(req.starting_sequence_number().unwrap())
                }
                ShardIteratorType::AfterSequenceNumber => {
                    index_of(req.starting_sequence_number().unwrap()) + 1
                }
                other => panic!("unexpected iterator type {other:?}"),
            };
            GetShardIteratorOutput::builder()
                .shard_iterator(format!("{}|{index}", req.shard_id().unwrap()))
                .build()
        });
        let fake = self.clone();
        let records = mock!(Client::get_records).then_compute_response(move |req| {
            let (shard, index) = req.shard_iterator().unwrap().split_once('|').unwrap();
            let index: u64 = index.parse().unwrap();
            let n = {
                let mut calls = fake.calls.lock().unwrap();
                calls.push((shard.to_owned(), tokio::time::Instant::now()));
                calls.len() - 1
            };
            if let Some(fault) = (fake.faults)(n) {
                *fake
                    .injected
                    .lock()
                    .unwrap()
                    .entry(format!("{fault:?}"))
                    .or_default() += 1;
                let meta = |code: &str| {
                    ErrorMetadata::builder()
                        .code(code)
                        .message("injected")
                        .build()
                };
                return match fault {
                    Fault::Expired => {
                        MockResponse::Error(GetRecordsError::ExpiredIteratorException(
                            ExpiredIteratorException::builder()
                                .meta(meta("ExpiredIteratorException"))
                                .build(),
                        ))
                    }
                    Fault::Throttled => MockResponse::Error(
                        GetRecordsError::ProvisionedThroughputExceededException(
                            ProvisionedThroughputExceededException::builder()
                                .meta(meta("ProvisionedThroughputExceededException"))
                                .build(),
                        ),
                    ),
                    Fault::NotFound => {
                        MockResponse::Error(GetRecordsError::ResourceNotFoundException(
                            ResourceNotFoundException::builder()
                                .meta(meta("ResourceNotFoundException"))
                                .build(),
                        ))
                    }
                    Fault::ServerError => {
                        MockResponse::Http(aws_smithy_runtime_api::http::Response::new(
                            StatusCode::try_from(500).unwrap(),
                            SdkBody::from("{}"),
                        ))
                    }
                };
            }
            let limit = req.limit().unwrap_or(10_000) as u64;
            let end = match fake.per_shard {
                Some(total) => (index + limit.min(7)).min(total),
                None => index + limit.min(7),
            };
            let records = (index..end)
                .map(|i| {
                    Record::builder()
                        .sequence_number(seq_of(i))
                        .partition_key("k")
                        .data(Blob::new(format!("{shard}:{i}")))
                        .build()
                        .unwrap()
                })
                .collect::<Vec<_>>();
            MockResponse::Output(
                GetRecordsOutput::builder()
                    .set_records(Some(records))
                    .next_shard_iterator(format!("{shard}|{end}"))
                    .millis_behind_latest(0)
                    .build()
                    .unwrap(),
            )
        });
        let interceptor = MockResponseInterceptor::new()
            .rule_mode(RuleMode::MatchAny)
            .with_rule(&list)
            .with_rule(&iterators)
            .with_rule(&records);
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor)
            // The source's own retry handling is under test.
            .retry_config(RetryConfig::disabled())
            .build();
        Client::from_conf(config)
    }

    fn injected(&self, fault: Fault) -> usize {
        self.injected
            .lock()
            .unwrap()
            .get(&format!("{fault:?}"))
            .copied()
            .unwrap_or(0)
    }

    fn calls_for(&self, shard: &str) -> Vec<tokio::time::Instant> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == shard)
            .map(|(_, t)| *t)
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn expired_iterators_throttling_and_server_errors_lose_nothing() {
    let fake = Fake::new(
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
        let ids = &per_shard[&Fake::shard_id(s)];
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
    let fake = Fake::new(1, None, Arc::new(|n| (n == 1).then_some(Fault::NotFound)));
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
    let fake = Fake::new(1, None, Arc::new(|_| Some(Fault::ServerError)));
    let mut stream =
        KinesisSource::from_client(fake.client(), "down", MemoryCheckpointStore::new())
            .retry_policy(unistream::RetryPolicy::new().max_attempts(4).jitter(false))
            .stream();
    let err = stream.try_next().await.unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err:?}");
    assert_eq!(
        fake.calls_for(&Fake::shard_id(0)).len(),
        4,
        "4 attempts, then the error"
    );
}

#[tokio::test(start_paused = true)]
async fn calls_are_paced_and_a_stalled_consumer_stops_fetching() {
    let fake = Fake::new(2, None, Arc::new(|_| None));
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
        let calls = fake.calls_for(&Fake::shard_id(s));
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
    let before: Vec<usize> = (0..2)
        .map(|s| fake.calls_for(&Fake::shard_id(s)).len())
        .collect();
    tokio::time::sleep(Duration::from_secs(60)).await;
    for (s, before) in before.into_iter().enumerate() {
        let more = fake.calls_for(&Fake::shard_id(s)).len() - before;
        assert!(more <= 2, "shard {s} fetched {more} more while stalled");
    }
    // And it goes on when the consumer comes back.
    for _ in 0..50 {
        stream.try_next().await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn shards_listed_later_are_picked_up_by_the_periodic_refresh() {
    let fake = Fake::new(1, Some(10), Arc::new(|_| None));
    let mut stream =
        KinesisSource::from_client(fake.client(), "growing", MemoryCheckpointStore::new())
            .shard_refresh_interval(Duration::from_secs(30))
            .stream();
    for _ in 0..10 {
        let (_, token) = stream.try_next().await.unwrap().unwrap();
        assert_eq!(token.partition(), Fake::shard_id(0));
    }
    // A shard appears (as after UpdateShardCount); within one refresh
    // interval its records arrive.
    fake.shards.store(2, std::sync::atomic::Ordering::SeqCst);
    let start = tokio::time::Instant::now();
    for i in 0..10 {
        let (record, token) = tokio::time::timeout(Duration::from_secs(60), stream.try_next())
            .await
            .expect("the new shard's records within a minute")
            .unwrap()
            .unwrap();
        assert_eq!(token.partition(), Fake::shard_id(1));
        assert_eq!(
            &record.data[..],
            format!("{}:{i}", Fake::shard_id(1)).as_bytes()
        );
    }
    assert!(
        start.elapsed() <= Duration::from_secs(31),
        "found at the next refresh"
    );
    assert_eq!(stream.active_shards(), 2);
}
