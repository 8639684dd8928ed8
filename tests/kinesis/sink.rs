//! `KinesisSink` against an in-process fake stream behind the real SDK client
//! (`aws-smithy-mocks`): limits, partial failures, throttling, permanent
//! failures, service errors, ordering, pacing, resharding, aggregation.
//! Every test runs in paused time, so back-offs and pacing cost nothing and
//! schedules are exact.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::SinkExt;
use tokio::time::Instant;
use unistream::kinesis::aggregation::deaggregate;
use unistream::kinesis::limits::{MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_COUNT, MAX_RECORD_BYTES};
use unistream::kinesis::{
    validate, HashKey, InvalidRecord, KinesisRecord, KinesisSink, KinesisSinkBuilder,
    ShardRateLimit,
};
use unistream::{Error, RetryPolicy};

use crate::support::kinesis::fake_write_stream::{by_key, Call, FakeWriteStream, Fault};

/// `count` records over `keys` keys; data names key and sequence, so order
/// and identity can be checked from the data alone.
fn records(count: usize, keys: usize, size: usize) -> Vec<KinesisRecord> {
    (0..count)
        .map(|i| {
            let key = format!("key-{}", i % keys);
            let mut data = format!("{key}/{i:08}/").into_bytes();
            data.resize(size.max(data.len()), b'.');
            KinesisRecord::new(data, key)
        })
        .collect()
}

fn builder(fake: &FakeWriteStream) -> KinesisSinkBuilder {
    KinesisSink::builder_from_client(fake.client(), "orders").retry_policy(
        RetryPolicy::new()
            .max_attempts(30)
            .max_backoff(Duration::from_secs(1)),
    )
}

/// A cheap deterministic "random" number from a record and a call number.
fn roll(record: &KinesisRecord, call: usize) -> u64 {
    let h =
        HashKey::from_partition_key(&format!("{}#{call}", String::from_utf8_lossy(&record.data)));
    (h.value() % 1000) as u64
}

/// A cheap deterministic "random" number from a call number.
fn call_roll(call: usize) -> u64 {
    (HashKey::from_partition_key(&format!("call#{call}")).value() % 1000) as u64
}

/// Every record of `sent` stored exactly once, and each key's records in
/// the order sent.
fn assert_all_stored_once_in_order(fake: &FakeWriteStream, sent: &[KinesisRecord]) {
    let stored = fake.stored();
    assert_eq!(stored.len(), sent.len(), "stored count");
    let unique: HashSet<_> = stored.iter().map(|r| r.data.clone()).collect();
    assert_eq!(unique.len(), sent.len(), "duplicates stored");
    assert_eq!(by_key(&stored), by_key(sent), "per-key order");
}

fn calls_with_two_records_of_one_key(calls: &[Call]) -> usize {
    calls
        .iter()
        .filter(|c| {
            let keys: HashSet<_> = c.records.iter().map(|r| &r.partition_key).collect();
            keys.len() < c.records.len()
        })
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_batch_of_501_records_takes_two_calls() {
    let fake = FakeWriteStream::new(4);
    let mut sink = builder(&fake).no_rate_limit().build().unwrap();
    let batch = records(501, 501, 10);
    sink.send(batch.clone()).await.unwrap();
    let sizes: Vec<_> = fake.calls().iter().map(|c| c.records.len()).collect();
    assert_eq!(sizes, vec![MAX_PUT_RECORDS_COUNT, 1]);
    assert_all_stored_once_in_order(&fake, &batch);
}

#[tokio::test(start_paused = true)]
async fn a_batch_over_5_mib_is_split() {
    let fake = FakeWriteStream::new(2);
    let mut sink = builder(&fake).no_rate_limit().build().unwrap();
    let batch = records(12, 12, 900_000);
    sink.send(batch.clone()).await.unwrap();
    let calls = fake.calls();
    for call in &calls {
        let bytes: usize = call.records.iter().map(|r| r.billed_bytes()).sum();
        assert!(bytes <= MAX_PUT_RECORDS_BYTES, "{bytes} bytes in one call");
    }
    // 5 MiB holds five 900 kB records.
    let sizes: Vec<_> = calls.iter().map(|c| c.records.len()).collect();
    assert_eq!(sizes, vec![5, 5, 2]);
    assert_all_stored_once_in_order(&fake, &batch);
}

#[tokio::test(start_paused = true)]
async fn invalid_records_are_rejected_with_a_typed_reason_and_never_sent() {
    let fake = FakeWriteStream::new(1);
    let mut sink = builder(&fake).build().unwrap();
    let oversize = KinesisRecord::new(vec![b'x'; MAX_RECORD_BYTES], "k");
    let batch = vec![
        KinesisRecord::new("first", "k"),
        oversize.clone(),
        KinesisRecord::new("no key", ""),
        KinesisRecord::new("long key", "k".repeat(257)),
        KinesisRecord::new("bad hash key", "k").with_explicit_hash_key("-1"),
        KinesisRecord::new("last", "k"),
    ];
    let expected_reasons: Vec<_> = batch[1..5]
        .iter()
        .map(|r| validate(r).unwrap_err().to_string())
        .collect();
    assert_eq!(
        validate(&oversize),
        Err(InvalidRecord::TooLarge {
            bytes: MAX_RECORD_BYTES + 1
        })
    );
    assert_eq!(
        validate(&batch[3]),
        Err(InvalidRecord::PartitionKeyLength { chars: 257 })
    );

    match sink.send(batch.clone()).await {
        Err(Error::Rejected(rejected)) => {
            let indices: Vec<_> = rejected.iter().map(|r| r.index).collect();
            assert_eq!(indices, vec![1, 2, 3, 4]);
            let reasons: Vec<_> = rejected.iter().map(|r| r.reason.clone()).collect();
            assert_eq!(reasons, expected_reasons);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    let sent: Vec<_> = fake
        .calls()
        .iter()
        .flat_map(|c| c.records.clone())
        .collect();
    assert_eq!(sent, vec![batch[0].clone(), batch[5].clone()]);
    assert_eq!(fake.stored(), sent);
    assert_eq!(sink.metrics().snapshot().records_dead_lettered, 4);
}

#[tokio::test(start_paused = true)]
async fn partial_failures_retry_only_the_failed_records_and_keep_key_order() {
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = failures.clone();
    let fake = FakeWriteStream::new(4).with_faults(move |call, records| {
        let codes: Vec<_> = records
            .iter()
            .map(|r| match roll(r, call) {
                0..=149 => Some("ProvisionedThroughputExceededException"),
                150..=249 => Some("InternalFailure"),
                _ => None,
            })
            .collect();
        counter.fetch_add(
            codes.iter().flatten().count(),
            std::sync::atomic::Ordering::Relaxed,
        );
        Fault::Records(codes)
    });
    let mut sink = builder(&fake).build().unwrap();
    let batch = records(2000, 20, 50);
    for chunk in batch.chunks(500) {
        sink.send(chunk.to_vec()).await.unwrap();
    }
    assert_all_stored_once_in_order(&fake, &batch);

    let failed = failures.load(std::sync::atomic::Ordering::Relaxed);
    assert!(failed > 300, "the plan failed only {failed} records");
    let calls = fake.calls();
    let attempts: usize = calls.iter().map(|c| c.records.len()).sum();
    // Only failed records went out again.
    assert_eq!(attempts, batch.len() + failed);
    // Ordered mode: never two records of one key in one call.
    assert_eq!(calls_with_two_records_of_one_key(&calls), 0);
    let metrics = sink.metrics().snapshot();
    assert_eq!(metrics.records_failed as usize, failed);
    assert_eq!(metrics.records_retried as usize, failed);
    assert_eq!(metrics.records_sent as usize, batch.len());
    assert!(metrics.throttles > 0);
    assert_eq!(metrics.put_records_calls as usize, calls.len());
    assert_eq!(metrics.latency_us.len() as usize, calls.len());
}

#[tokio::test(start_paused = true)]
async fn a_failed_record_holds_back_the_later_records_of_its_key() {
    let fake = FakeWriteStream::new(2).with_faults(|call, records| {
        Fault::Records(
            records
                .iter()
                .map(|r| (call < 3 && r.data == "a1").then_some("InternalFailure"))
                .collect(),
        )
    });
    let mut sink = builder(&fake).build().unwrap();
    let batch = vec![
        KinesisRecord::new("a1", "a"),
        KinesisRecord::new("a2", "a"),
        KinesisRecord::new("b1", "b"),
        KinesisRecord::new("a3", "a"),
        KinesisRecord::new("b2", "b"),
    ];
    sink.send(batch.clone()).await.unwrap();
    let calls: Vec<Vec<String>> = fake
        .calls()
        .iter()
        .map(|c| {
            c.records
                .iter()
                .map(|r| String::from_utf8_lossy(&r.data).into_owned())
                .collect()
        })
        .collect();
    // a1 fails in calls 0 and 2; b's records move on at once, without
    // waiting for a1's back-off (call 1); a2 waits until a1 is stored.
    assert_eq!(
        calls,
        vec![
            vec!["a1", "b1"],
            vec!["b2"],
            vec!["a1"],
            vec!["a1"],
            vec!["a2"],
            vec!["a3"],
        ]
    );
    assert_all_stored_once_in_order(&fake, &batch);
}

#[tokio::test(start_paused = true)]
async fn unordered_mode_fills_calls_freely() {
    let fake = FakeWriteStream::new(1);
    let mut sink = builder(&fake).ordered(false).build().unwrap();
    let batch = records(500, 1, 20);
    sink.send(batch.clone()).await.unwrap();
    assert_eq!(fake.calls().len(), 1);
    assert_all_stored_once_in_order(&fake, &batch);
}

#[tokio::test(start_paused = true)]
async fn throttling_on_every_other_call_loses_nothing() {
    let fake = FakeWriteStream::new(4).with_faults(|call, records| {
        if call % 2 == 1 {
            Fault::ThrottleCall
        } else {
            // And on the others, a throttled record now and then.
            Fault::Records(
                records
                    .iter()
                    .map(|r| {
                        (roll(r, call) < 100).then_some("ProvisionedThroughputExceededException")
                    })
                    .collect(),
            )
        }
    });
    let mut sink = builder(&fake).build().unwrap();
    let batch = records(3000, 30, 40);
    for chunk in batch.chunks(500) {
        sink.send(chunk.to_vec()).await.unwrap();
    }
    assert_all_stored_once_in_order(&fake, &batch);
    let calls = fake.calls();
    let throttled_calls = calls
        .iter()
        .filter(|c| matches!(c.fault, Fault::ThrottleCall))
        .count();
    assert!(throttled_calls >= calls.len() / 2 - 1);
    let metrics = sink.metrics().snapshot();
    assert!(metrics.throttles >= throttled_calls as u64);
    assert_eq!(metrics.put_records_call_failures as usize, throttled_calls);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_rejected_with_its_reason_after_the_policy() {
    let fake = FakeWriteStream::new(2).with_faults(|_, records| {
        Fault::Records(
            records
                .iter()
                .map(|r| {
                    r.data
                        .starts_with(b"key-3/00000103/")
                        .then_some("KMSDisabledException")
                })
                .collect(),
        )
    });
    let mut sink = builder(&fake)
        .retry_policy(RetryPolicy::new().max_attempts(3).jitter(false))
        .build()
        .unwrap();
    let batch = records(400, 10, 30);
    let poison = 103;
    match sink.send(batch.clone()).await {
        Err(Error::Rejected(rejected)) => {
            assert_eq!(rejected.len(), 1);
            assert_eq!(rejected[0].index, poison);
            assert!(
                rejected[0].reason.contains("KMSDisabledException"),
                "{}",
                rejected[0].reason
            );
            assert!(
                rejected[0].reason.contains("3 attempt"),
                "{}",
                rejected[0].reason
            );
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    let attempts = fake
        .calls()
        .iter()
        .flat_map(|c| c.records.clone())
        .filter(|r| r == &batch[poison])
        .count();
    assert_eq!(attempts, 3);
    let mut expected = batch.clone();
    expected.remove(poison);
    assert_all_stored_once_in_order(&fake, &expected);
    let metrics = sink.metrics().snapshot();
    assert_eq!(metrics.records_dead_lettered, 1);
    assert_eq!(metrics.records_failed, 3);
    assert_eq!(metrics.records_retried, 2);
}

#[tokio::test(start_paused = true)]
async fn a_service_500_is_retried() {
    let fake = FakeWriteStream::new(2).with_faults(|call, _| {
        if call == 0 {
            Fault::Http500
        } else {
            Fault::None
        }
    });
    let mut sink = builder(&fake).build().unwrap();
    let batch = records(100, 100, 10);
    sink.send(batch.clone()).await.unwrap();
    assert_eq!(fake.calls().len(), 2);
    assert_all_stored_once_in_order(&fake, &batch);
    assert_eq!(sink.metrics().snapshot().put_records_call_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_outlasting_the_policy_fails_the_batch_and_a_resend_resumes() {
    // Five keys: five records per call in ordered mode. Calls 2 and 3 fail.
    let fake = FakeWriteStream::new(2).with_faults(|call, _| {
        if (2..4).contains(&call) {
            Fault::Http500
        } else {
            Fault::None
        }
    });
    let mut sink = builder(&fake)
        .retry_policy(RetryPolicy::new().max_attempts(2))
        .build()
        .unwrap();
    let batch = records(50, 5, 10);
    match sink.send(batch.clone()).await {
        Err(Error::Target { target, source }) => {
            assert_eq!(target, "kinesis stream orders");
            assert!(source.to_string().contains("500"), "{source}");
        }
        other => panic!("expected a target failure, got {other:?}"),
    }
    assert_eq!(fake.stored().len(), 10, "two calls went through before");
    // The same batch again: the sink stays usable and sends only the rest.
    sink.send(batch.clone()).await.unwrap();
    assert_all_stored_once_in_order(&fake, &batch);
    let sent: usize = fake.calls().iter().map(|c| c.records.len()).sum();
    assert_eq!(sent, 50 + 10);
}

#[tokio::test(start_paused = true)]
async fn another_batch_after_a_failure_starts_afresh() {
    let fake = FakeWriteStream::new(1).with_faults(|call, _| {
        if (1..3).contains(&call) {
            Fault::Http500
        } else {
            Fault::None
        }
    });
    let mut sink = builder(&fake)
        .retry_policy(RetryPolicy::new().max_attempts(2))
        .build()
        .unwrap();
    let first = records(20, 5, 10);
    assert!(sink.send(first.clone()).await.is_err());
    let other = records(3, 3, 99);
    sink.send(other.clone()).await.unwrap();
    // The first batch is now a new batch: sent whole, its first call's five
    // records stored twice (at least once, as the protocol allows).
    sink.send(first.clone()).await.unwrap();
    let stored = fake.stored();
    assert_eq!(stored.len(), 5 + 3 + 20);
    for record in first.iter().chain(&other) {
        assert!(stored.contains(record));
    }
}

#[tokio::test(start_paused = true)]
async fn every_fault_at_once_loses_nothing_and_keeps_key_order() {
    // One call in six throttled whole and one in six failing with HTTP 500,
    // chosen by a hash of the call number: faults tied to `call % 6` would
    // line up with a schedule of three interleaved groups of calls (calls in
    // flight, lanes on their own back-offs) and fail one group every time.
    let fake = FakeWriteStream::new(4).with_faults(|call, records| match call_roll(call) % 6 {
        1 => Fault::ThrottleCall,
        4 => Fault::Http500,
        _ => Fault::Records(
            records
                .iter()
                .map(|r| {
                    if r.data.starts_with(b"key-7/00001007/") {
                        Some("AccessDeniedException")
                    } else {
                        match roll(r, call) {
                            0..=99 => Some("ProvisionedThroughputExceededException"),
                            100..=149 => Some("InternalFailure"),
                            _ => None,
                        }
                    }
                })
                .collect(),
        ),
    });
    let mut sink = builder(&fake).build().unwrap();
    let batch = records(5000, 50, 60);
    let mut rejected = Vec::new();
    for (n, chunk) in batch.chunks(500).enumerate() {
        // About 43 % of attempts fail, so a record may fail all ten of the
        // policy's attempts: the batch then fails (transient) and is sent
        // again, as `buffered_wal` does, resuming where it stopped.
        let mut resends = 0;
        loop {
            match sink.send(chunk.to_vec()).await {
                Ok(()) => break,
                Err(Error::Rejected(r)) => {
                    rejected.extend(r.into_iter().map(|r| (n * 500 + r.index, r.reason)));
                    break;
                }
                Err(Error::Target { .. }) if resends < 3 => resends += 1,
                Err(other) => panic!("{}", unistream::ErrorChain(&other)),
            }
        }
    }
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0, 1007);
    assert!(
        rejected[0].1.starts_with("AccessDeniedException"),
        "{}",
        rejected[0].1
    );
    let mut expected = batch.clone();
    expected.remove(1007);
    assert_all_stored_once_in_order(&fake, &expected);
    assert_eq!(calls_with_two_records_of_one_key(&fake.calls()), 0);
}

/// Every window `(t - 1 s, t]` of every shard, ending at a call, holds at
/// most 1000 records and 1 MiB.
fn assert_shard_windows(calls: &[Call]) {
    let mut per_shard: HashMap<&str, Vec<(Instant, u64, u64)>> = HashMap::new();
    for call in calls {
        for (shard, load) in &call.per_shard {
            per_shard
                .entry(shard)
                .or_default()
                .push((call.at, load.records, load.bytes));
        }
    }
    assert!(!per_shard.is_empty());
    for (shard, sends) in per_shard {
        for &(end, _, _) in &sends {
            let (records, bytes) = sends
                .iter()
                .filter(|(at, _, _)| *at <= end && *at + Duration::from_secs(1) > end)
                .fold((0, 0), |(r, b), (_, rr, bb)| (r + rr, b + bb));
            assert!(
                records <= 1000,
                "{shard}: {records} records in the second up to {end:?}"
            );
            assert!(
                bytes <= 1024 * 1024,
                "{shard}: {bytes} bytes in the second up to {end:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn one_shard_never_receives_more_than_1000_records_a_second() {
    let fake = FakeWriteStream::new(2);
    let mut sink = builder(&fake).build().unwrap();
    let batch = records(8000, 40, 100);
    let start = Instant::now();
    for chunk in batch.chunks(500) {
        sink.send(chunk.to_vec()).await.unwrap();
    }
    assert_all_stored_once_in_order(&fake, &batch);
    assert_shard_windows(&fake.calls());
    // About 4000 records per shard at 1000/s: paced, not sent at once.
    let busiest = fake
        .stored_by_shard()
        .iter()
        .map(|(_, r)| r.len())
        .max()
        .unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs((busiest as u64 - 1) / 1000),
        "{busiest} records on one shard in {elapsed:?}"
    );
    assert!(sink.metrics().snapshot().rate_limit_wait > Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn one_shard_never_receives_more_than_1_mib_a_second() {
    let fake = FakeWriteStream::new(1);
    let mut sink = builder(&fake).build().unwrap();
    // 10 kB records: the byte limit binds first (about 100 per second).
    let batch = records(600, 60, 10_000);
    let start = Instant::now();
    for chunk in batch.chunks(200) {
        sink.send(chunk.to_vec()).await.unwrap();
    }
    assert_all_stored_once_in_order(&fake, &batch);
    assert_shard_windows(&fake.calls());
    assert!(
        start.elapsed() >= Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

/// A shard that another producer already uses at 400 records/s: the fake
/// throttles whatever goes beyond 600 in a sliding second.
fn shared_shard_throttling() -> impl FnMut(usize, &[KinesisRecord]) -> Fault + Send {
    let mut accepted: Vec<Instant> = Vec::new();
    move |_, records| {
        let now = Instant::now();
        accepted.retain(|at| *at + Duration::from_secs(1) > now);
        Fault::Records(
            records
                .iter()
                .map(|_| {
                    if accepted.len() < 600 {
                        accepted.push(now);
                        None
                    } else {
                        Some("ProvisionedThroughputExceededException")
                    }
                })
                .collect(),
        )
    }
}

#[tokio::test(start_paused = true)]
async fn adaptive_pacing_settles_below_a_shared_shards_capacity() {
    let mut throttles = Vec::new();
    for adaptive in [true, false] {
        let fake = FakeWriteStream::new(1).with_faults(shared_shard_throttling());
        let mut sink = builder(&fake)
            .rate_limit(ShardRateLimit::default().adaptive(adaptive))
            .build()
            .unwrap();
        let batch = records(12_000, 200, 20);
        for chunk in batch.chunks(500) {
            sink.send(chunk.to_vec()).await.unwrap();
        }
        assert_all_stored_once_in_order(&fake, &batch);
        throttles.push(sink.metrics().snapshot().throttles);
    }
    let (adaptive, fixed) = (throttles[0], throttles[1]);
    assert!(
        adaptive * 2 < fixed,
        "adaptive pacing drew {adaptive} throttles, fixed pacing {fixed}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reshard_is_noticed_and_the_shard_map_reloaded() {
    let fake = FakeWriteStream::new(1);
    let mut sink = builder(&fake).build().unwrap();
    sink.send(records(200, 200, 10)).await.unwrap();
    assert_eq!(fake.list_shards_calls(), 1);
    assert_eq!(sink.metrics().snapshot().shard_mispredictions, 0);

    fake.split_all();
    tokio::time::advance(Duration::from_secs(2)).await;
    sink.send(records(200, 200, 10)).await.unwrap();
    let after_split = sink.metrics().snapshot();
    assert!(after_split.shard_mispredictions > 0);

    tokio::time::advance(Duration::from_secs(2)).await;
    sink.send(records(200, 200, 10)).await.unwrap();
    assert_eq!(fake.list_shards_calls(), 2);
    let metrics = sink.metrics().snapshot();
    assert_eq!(metrics.shard_map_refreshes, 2);
    assert_eq!(
        metrics.shard_mispredictions,
        after_split.shard_mispredictions
    );
}

#[tokio::test(start_paused = true)]
async fn aggregation_packs_records_by_shard_and_keeps_key_order_through_failures() {
    let fake = FakeWriteStream::new(4).with_faults(|call, records| {
        Fault::Records(
            records
                .iter()
                .map(|r| {
                    (call < 6 && roll(r, call) < 300)
                        .then_some("ProvisionedThroughputExceededException")
                })
                .collect(),
        )
    });
    let mut sink = builder(&fake)
        .aggregation(true)
        .max_aggregate_bytes(64 * 1024)
        .build()
        .unwrap();
    let batch = records(10_000, 200, 100);
    for chunk in batch.chunks(2500) {
        sink.send(chunk.to_vec()).await.unwrap();
    }

    let kinesis_records = assert_aggregated_on_their_shards(&fake, &batch, 64 * 1024);
    assert!(kinesis_records < 100, "{kinesis_records} Kinesis records");
    let metrics = sink.metrics().snapshot();
    assert_eq!(metrics.records_sent as usize, batch.len());
    assert_eq!(metrics.kinesis_records_sent as usize, kinesis_records);
    assert!(metrics.throttles > 0);
}

#[tokio::test(start_paused = true)]
async fn a_large_batch_aggregated_by_two_threads_keeps_every_guarantee() {
    // 20,000 records in one batch: over the size from which the shards'
    // aggregates are built by two threads.
    let fake = FakeWriteStream::new(16).with_faults(|call, records| {
        Fault::Records(
            records
                .iter()
                .map(|r| (call < 4 && roll(r, call) < 200).then_some("InternalFailure"))
                .collect(),
        )
    });
    let mut sink = builder(&fake)
        .aggregation(true)
        .max_aggregate_bytes(32 * 1024)
        .build()
        .unwrap();
    let batch = records(20_000, 700, 100);
    sink.send(batch.clone()).await.unwrap();
    let kinesis_records = assert_aggregated_on_their_shards(&fake, &batch, 32 * 1024);
    let metrics = sink.metrics().snapshot();
    assert_eq!(metrics.records_sent as usize, batch.len());
    assert_eq!(metrics.kinesis_records_sent as usize, kinesis_records);
    assert!(metrics.records_retried > 0);
}

/// Every user record of `sent` stored once, inside aggregates of at most
/// `max_bytes`, on the shard its own key maps to, each key's records in the
/// order sent. Returns the number of Kinesis records stored.
fn assert_aggregated_on_their_shards(
    fake: &FakeWriteStream,
    sent: &[KinesisRecord],
    max_bytes: usize,
) -> usize {
    let mut users = Vec::new();
    let mut kinesis_records = 0;
    for (shard, stored) in fake.stored_by_shard() {
        let (start, end) = fake.shard_range(&shard);
        for record in stored {
            kinesis_records += 1;
            assert!(record.billed_bytes() <= max_bytes);
            let inner = deaggregate(&record.data)
                .unwrap()
                .unwrap_or_else(|| vec![record.clone()]);
            for user in inner {
                let key = HashKey::of(&user).unwrap().value();
                assert!(
                    start <= key && key <= end,
                    "{} on {shard}",
                    user.partition_key
                );
                users.push(user);
            }
        }
    }
    assert_eq!(users.len(), sent.len());
    assert_eq!(by_key(&users), by_key(sent));
    kinesis_records
}

#[tokio::test(start_paused = true)]
async fn through_buffered_wal_faults_end_in_the_dead_letter_sink_or_the_stream() {
    use futures::{stream, StreamExt};
    use unistream::sink::{MemorySink, WalConfig, WalSinkExt};
    use unistream::DeadLetter;

    let fake = FakeWriteStream::new(4).with_faults(|call, records| match call % 5 {
        1 => Fault::ThrottleCall,
        3 => Fault::Http500,
        _ => Fault::Records(
            records
                .iter()
                .map(|r| {
                    if r.data.starts_with(b"key-2/00000402/") {
                        Some("KMSAccessDeniedException")
                    } else {
                        (roll(r, call) < 200).then_some("ProvisionedThroughputExceededException")
                    }
                })
                .collect(),
        ),
    });
    let sink = builder(&fake)
        .retry_policy(
            RetryPolicy::new()
                .max_attempts(4)
                .max_backoff(Duration::from_millis(500)),
        )
        .build()
        .unwrap();
    let metrics = sink.metrics();
    let dir = tempfile::tempdir().unwrap();
    let dead = MemorySink::<DeadLetter<KinesisRecord>>::new();
    let dead_letters = dead.handle();
    let wal = sink
        .buffered_wal(
            WalConfig::new(dir.path())
                .max_records(250)
                .retry(RetryPolicy::forever().max_backoff(Duration::from_secs(1)))
                .dead_letter(dead),
        )
        .await
        .unwrap();
    let batch = records(3000, 40, 30);
    stream::iter(batch.clone())
        .map(Ok)
        .forward(wal)
        .await
        .unwrap();

    let dead = dead_letters.records();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].record.as_ref(), Some(&batch[402]));
    assert!(
        dead[0].reason.contains("KMSAccessDeniedException"),
        "{}",
        dead[0].reason
    );

    // When transient failures outlast the sink's policy, the WAL sends the
    // same batch again and the sink resumes it: nothing stored twice, and
    // each key's records in order.
    let mut expected = batch.clone();
    expected.remove(402);
    assert_all_stored_once_in_order(&fake, &expected);
    assert!(metrics.snapshot().put_records_call_failures > 0);
    assert_eq!(metrics.snapshot().records_dead_lettered, 1);
}
