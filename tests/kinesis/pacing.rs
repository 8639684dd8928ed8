//! `KinesisSink` pacing and concurrency against the in-process Kinesis stub
//! on paused time: per-shard limits counted in fixed one-second arrival
//! windows, round trips with jitter, records refused one by one, as
//! Kinesis does. The clock is virtual, so every schedule is exact and
//! repeatable, and a minute of traffic takes a moment.
//!
//! Shown here: a shard without room holds back only its own records (a
//! call carries what fits now); the arrival margin keeps jittered arrivals
//! from ever overfilling a window; after sharing a shard, a sink regains
//! it; two sinks sharing a shard without coordination fill it with little
//! throttling; with several calls in flight per-key order holds under
//! random per-record failures (property test); and a batch whose retries
//! run out fails only after its other calls are answered, so that sending
//! it again stores nothing twice.

use std::time::Duration;

use futures::SinkExt;
use proptest::prelude::*;
use tokio::time::Instant;
use unistream::kinesis::aggregation::deaggregate;
use unistream::kinesis::{KinesisRecord, KinesisSink, KinesisSinkBuilder};
use unistream::{Error, RetryPolicy};

use crate::support::kinesis::fake_write_stream::by_key;
use crate::support::kinesis::stub::{KinesisStub, StubConfig, WindowCount};
use crate::support::paused::block_on_paused;

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// `count` records over `keys` keys named after `producer`, each record's
/// data naming its key and index (so every record is unique).
fn records(producer: usize, count: usize, keys: usize) -> Vec<KinesisRecord> {
    (0..count)
        .map(|i| {
            let key = format!("p{producer}-k{}", i % keys);
            KinesisRecord::new(format!("{key}/{i:07}"), key)
        })
        .collect()
}

/// Records `range` placed on shard `shard` of two (by explicit hash key),
/// each of its own key (so that ordered mode, one record of a key per call,
/// does not limit them).
fn on_shard_of_two(shard: usize, range: std::ops::Range<usize>) -> Vec<KinesisRecord> {
    let hash_key = if shard == 0 {
        "1".to_owned()
    } else {
        (u128::MAX - 1).to_string()
    };
    range
        .map(|i| {
            KinesisRecord::new(format!("s{shard}/{i:07}"), format!("s{shard}-k{i}"))
                .with_explicit_hash_key(hash_key.clone())
        })
        .collect()
}

fn sink(stub: &KinesisStub) -> KinesisSinkBuilder {
    KinesisSink::builder_from_client(stub.client(), stub.stream())
}

async fn send_all(sink: &mut KinesisSink, records: &[KinesisRecord], batch: usize) {
    for chunk in records.chunks(batch) {
        sink.send(chunk.to_vec()).await.unwrap();
    }
}

/// Feeds every batch (no flush between them), then flushes once.
async fn feed_all(sink: &mut KinesisSink, records: &[KinesisRecord], batch: usize) {
    for chunk in records.chunks(batch) {
        sink.feed(chunk.to_vec()).await.unwrap();
    }
    sink.flush().await.unwrap();
}

/// The user records the stub accepted, aggregates opened, shard after shard.
fn stored_user_records(stub: &KinesisStub) -> Vec<KinesisRecord> {
    let mut users = Vec::new();
    for (_, stored) in stub.stored_by_shard() {
        for record in stored {
            match deaggregate(&record.data).expect("a well-formed aggregate") {
                Some(inner) => users.extend(inner),
                None => users.push(record),
            }
        }
    }
    users
}

/// The counts of shard `shard`'s windows numbered `from..to` (a window that
/// saw no arrival counts zero).
fn windows(stub: &KinesisStub, shard: usize, from: u64, to: u64) -> Vec<WindowCount> {
    let counted = &stub.windows_by_shard()[shard].1;
    (from..to)
        .map(|index| {
            counted
                .iter()
                .find(|w| w.index == index)
                .copied()
                .unwrap_or(WindowCount {
                    index,
                    ..WindowCount::default()
                })
        })
        .collect()
}

fn mean(counts: &[u64]) -> f64 {
    counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64
}

fn accepted(windows: &[WindowCount]) -> Vec<u64> {
    windows.iter().map(|w| w.records).collect()
}

/// The window a moment `since` the stub's start falls in.
fn window_at(since: Duration) -> u64 {
    since.as_secs()
}

#[tokio::test(start_paused = true)]
async fn a_shard_without_room_holds_back_only_its_own_records() {
    let stub = KinesisStub::in_process(StubConfig::new(2).round_trip(ms(20), Duration::ZERO, 0));
    let start = Instant::now();
    let mut sink = sink(&stub).build().unwrap();
    // Shard 0 takes 900 records: about 100 more fit its allowance in this
    // second.
    sink.send(on_shard_of_two(0, 0..900)).await.unwrap();
    // Then 300 more for shard 0 and 300 for shard 1, mixed in one batch.
    let mut mixed = on_shard_of_two(0, 900..1200);
    mixed.extend(on_shard_of_two(1, 0..300));
    sink.send(mixed).await.unwrap();
    let took = start.elapsed();

    let stats = stub.stats();
    assert_eq!(stats.throttled_records(), 0);
    assert_eq!(stats.accepted_records(), 1500);
    // Shard 1 had room: all its records went at once, in the first window,
    // rather than waiting with shard 0's for the whole call to fit.
    assert_eq!(accepted(&windows(&stub, 1, 0, 2)), [300, 0]);
    // Shard 0 used the room it had right away (a call carried part of the
    // shard's records), and the rest waited for its allowance, not for a
    // throttle.
    let shard0 = accepted(&windows(&stub, 0, 0, 2));
    assert!(shard0[0] >= 950, "shard 0 windows {shard0:?}");
    assert_eq!(shard0.iter().sum::<u64>(), 1200);
    assert!(took >= ms(900) && took < ms(1500), "took {took:?}");
}

/// One sink on one shard whose answers take 40–60 ms (a 40 ms round trip
/// plus up to 10 ms of jitter on each half, so the time to arrival varies
/// within 10 ms), starting at several points of the shard's counting
/// windows: never throttled, and at least 95 % of the shard used.
#[tokio::test(start_paused = true)]
async fn the_arrival_margin_keeps_jittered_arrivals_within_every_window() {
    for offset in [0, 500, 985] {
        let stub = KinesisStub::in_process(StubConfig::new(1).round_trip(ms(40), ms(10), 7));
        tokio::time::sleep(ms(offset)).await;
        let start = Instant::now();
        let mut sink = sink(&stub).build().unwrap();
        send_all(&mut sink, &records(0, 20_000, 20_000), 500).await;
        let took = start.elapsed();
        let stats = stub.stats();
        assert_eq!(stats.accepted_records(), 20_000);
        assert_eq!(stats.throttled_records(), 0, "offset {offset} ms");
        // The margin's price: after the first 1000 records (sent at once),
        // at most 1000 per 1.025 s, so the other 19,000 take at least
        // 19 x 1.025 s; over the run, no less than 95 % of the shard.
        assert!(took >= ms(19 * 1025), "offset {offset} ms: took {took:?}");
        let rate = 20_000.0 / took.as_secs_f64();
        assert!(rate >= 950.0, "offset {offset} ms: {rate:.0}/s");
    }
}

#[tokio::test(start_paused = true)]
async fn a_sink_regains_a_shard_another_writer_leaves() {
    let stub = KinesisStub::in_process(StubConfig::new(1).round_trip(ms(20), ms(5), 3));
    let start = Instant::now();
    // Another writer, unpaced, puts 50 records every 100 ms (half the
    // shard) for ten seconds, retrying its throttled records at once; then
    // it stops.
    let other = stub.client();
    let stream = stub.stream();
    let writer = tokio::spawn(async move {
        for tick in 0..100u64 {
            tokio::time::sleep_until(start + ms(100 * tick)).await;
            let mut pending: Vec<_> = (0..50)
                .map(|i| {
                    aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                        .data(aws_sdk_kinesis::primitives::Blob::new(format!(
                            "o/{tick}/{i}"
                        )))
                        .partition_key(format!("other-{i}"))
                        .build()
                        .unwrap()
                })
                .collect();
            while !pending.is_empty() {
                let out = other
                    .put_records()
                    .stream_name(&stream)
                    .set_records(Some(pending.clone()))
                    .send()
                    .await
                    .unwrap();
                pending = pending
                    .into_iter()
                    .zip(out.records())
                    .filter(|(_, result)| result.error_code().is_some())
                    .map(|(entry, _)| entry)
                    .collect();
            }
        }
    });
    let mut sink = sink(&stub).build().unwrap();
    send_all(&mut sink, &records(0, 30_000, 100), 500).await;
    writer.await.unwrap();
    let took = start.elapsed();
    let stats = stub.stats();
    let windows = windows(&stub, 0, 0, window_at(took));
    let counts = accepted(&windows);

    // Sharing: the shard stays nearly full (the sink takes the other's
    // leftovers), and the sink learns its share rather than colliding
    // every second.
    let shared = &counts[1..10];
    assert!(
        shared.iter().all(|&n| n >= 850),
        "windows while shared: {shared:?}"
    );
    // (The other writer retries at once and draws most throttles; the
    // sink's own are few.)
    let metrics = sink.metrics().snapshot();
    assert!(
        metrics.throttles * 100 < metrics.records_sent * 5,
        "the sink drew {} throttles for {} records: {windows:?}",
        metrics.throttles,
        metrics.records_sent
    );
    // Alone again: the allowance grows back (gently at first, then
    // doubling its pace every 2 s) and the shard is full again within 15 s.
    let regained = counts[10..]
        .iter()
        .position(|&n| n >= 950)
        .expect("the sink never regained the shard");
    assert!(regained <= 15, "regained after {regained} s: {counts:?}");
    let after = &counts[10 + regained..counts.len() - 1];
    assert!(mean(after) >= 950.0, "{counts:?}");
    assert_eq!(stats.accepted_records(), 30_000 + 5_000);
}

#[tokio::test(start_paused = true)]
async fn two_sinks_sharing_shards_fill_them_and_are_rarely_throttled() {
    for shards in [1u32, 4] {
        let stub = KinesisStub::in_process(StubConfig::new(shards).round_trip(ms(20), ms(5), 11));
        let start = Instant::now();
        let per_producer = 15_000 * shards as usize;
        let produce = |producer: usize| {
            let mut sink = sink(&stub).build().unwrap();
            let batch = records(producer, per_producer, 400);
            async move {
                send_all(&mut sink, &batch, 500).await;
                Instant::now()
            }
        };
        let (a, b) = futures::join!(produce(0), produce(1));
        let both_until = a.min(b).duration_since(start);
        let stats = stub.stats();
        assert_eq!(stats.accepted_records(), 2 * per_producer as u64);
        // While both send (past the first window, before either is done):
        let (from, to) = (1, window_at(both_until));
        assert!(
            to >= from + 10,
            "{shards} shards: shared only until {both_until:?}"
        );
        let mut used = 0;
        let mut throttled = 0;
        for shard in 0..shards as usize {
            for w in windows(&stub, shard, from, to) {
                used += w.records;
                throttled += w.throttled;
            }
        }
        let capacity = 1000 * u64::from(shards) * (to - from);
        assert!(
            used * 100 >= capacity * 90,
            "{shards} shards: {used} of {capacity} records used"
        );
        assert!(
            throttled * 100 < (used + throttled) * 2,
            "{shards} shards: {throttled} of {} attempts throttled",
            used + throttled
        );
    }
}

/// Two aggregating sinks sharing one shard: the byte limit binds, and an
/// aggregate is one attempt, so an overshoot of a sink's allowance costs a
/// whole aggregate. Aggregates are cut to the share of the shard a sink is
/// allowed, so an overshoot costs less: the shard is filled and few
/// attempts are throttled (2.2 % with full-size aggregates).
#[tokio::test(start_paused = true)]
async fn two_aggregating_sinks_sharing_a_shard_fill_its_bytes_and_are_rarely_throttled() {
    let stub = KinesisStub::in_process(StubConfig::new(1).round_trip(ms(5), ms(2), 42));
    let start = Instant::now();
    let data = "x".repeat(500);
    let produce = |producer: usize| {
        let mut sink = sink(&stub).aggregation(true).build().unwrap();
        let batch: Vec<KinesisRecord> = (0..40_000)
            .map(|i| {
                let key = format!("p{producer}-k{}", i % 400);
                KinesisRecord::new(format!("{key}/{i:07}/{data}"), key)
            })
            .collect();
        async move {
            feed_all(&mut sink, &batch, 500).await;
            Instant::now()
        }
    };
    let (a, b) = futures::join!(produce(0), produce(1));
    let both_until = a.min(b).duration_since(start);
    assert_eq!(
        stored_user_records(&stub).len(),
        80_000,
        "a record lost or twice"
    );
    let (from, to) = (1, window_at(both_until));
    assert!(to >= from + 20, "shared only until {both_until:?}");
    let (mut bytes, mut used, mut throttled) = (0, 0, 0);
    for w in windows(&stub, 0, from, to) {
        bytes += w.bytes;
        used += w.records;
        throttled += w.throttled;
    }
    let capacity = 1024 * 1024 * (to - from);
    assert!(
        bytes * 100 >= capacity * 90,
        "{bytes} of {capacity} bytes used"
    );
    assert!(
        throttled * 100 < (used + throttled) * 2,
        "{throttled} of {} attempts throttled",
        used + throttled
    );
}

/// A batch whose retries run out on some records while other calls are in
/// flight fails only once those calls are answered: the sink then knows
/// every record stored, and sending the batch again stores the rest, none
/// twice.
#[tokio::test(start_paused = true)]
async fn an_exhausted_batch_waits_for_its_calls_in_flight_then_resends_nothing_twice() {
    let stub = KinesisStub::in_process(
        StubConfig::new(8)
            .unlimited()
            .round_trip(ms(20), ms(20), 5)
            .fail_records(0.5),
    );
    let mut sink = sink(&stub)
        .max_calls_in_flight(8)
        .retry_policy(
            RetryPolicy::new()
                .max_attempts(2)
                .initial_backoff(ms(1))
                .max_backoff(ms(1)),
        )
        .build()
        .unwrap();
    let batch = records(0, 4000, 4000);
    let err = sink.send(batch.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err}");
    assert_eq!(
        stub.abandoned_requests(),
        0,
        "the batch failed with calls still in flight"
    );
    let first = stub.stats();
    assert!(first.put_records_calls > 8, "{first:?}");
    assert!(
        first.accepted_records() > 0 && first.accepted_records() < 4000,
        "{first:?}"
    );

    stub.set_failing_records(0.0);
    sink.send(batch.clone()).await.unwrap();
    let stored = stored_user_records(&stub);
    assert_eq!(stored.len(), 4000, "a record stored twice or lost");
    assert_eq!(by_key(&stored), by_key(&batch));
}

/// How records are handed to the sink: in batches of `batch`, each sent
/// with its own flush, or all `fed` and flushed once at the end (so that
/// the sink delivers several batches at once).
#[derive(Debug, Clone, Copy)]
struct Handed {
    batch: usize,
    fed: bool,
}

/// One property case: `records` records of `keys` keys through one sink
/// with up to `calls` calls in flight, `shards` shards, records failing at
/// random with probability `failing`, answers 10–50 ms late in any order.
#[allow(clippy::too_many_arguments)]
fn ordered_case(
    shards: u32,
    keys: usize,
    count: usize,
    calls: usize,
    failing: f64,
    aggregation: bool,
    handed: Handed,
    seed: u64,
) -> Result<(), TestCaseError> {
    block_on_paused(async {
        let stub = KinesisStub::in_process(
            StubConfig::new(shards)
                .unlimited()
                .round_trip(ms(10), ms(20), seed)
                .fail_records(failing),
        );
        let mut sink = sink(&stub)
            .max_calls_in_flight(calls)
            .aggregation(aggregation)
            .max_aggregate_bytes(2048)
            .retry_policy(
                RetryPolicy::new()
                    .max_attempts(60)
                    .initial_backoff(ms(1))
                    .max_backoff(ms(20)),
            )
            .build()
            .unwrap();
        let sent = records(0, count, keys);
        if handed.fed {
            feed_all(&mut sink, &sent, handed.batch).await;
        } else {
            send_all(&mut sink, &sent, handed.batch).await;
        }
        let stored = stored_user_records(&stub);
        prop_assert_eq!(stored.len(), count, "a record lost or stored twice");
        prop_assert!(
            by_key(&stored) == by_key(&sent),
            "a key's records out of order"
        );
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Ordered mode with several calls in flight: each key's records are
    /// stored once each, in the order sent, whatever fails and whatever
    /// order the answers come back in.
    #[test]
    fn several_calls_in_flight_keep_each_keys_order_through_record_failures(
        shards in 1u32..=4,
        keys in 1usize..=40,
        count in 1usize..=2500,
        calls in 1usize..=8,
        failing in 0.0f64..0.4,
        aggregation in any::<bool>(),
        batch in 50usize..=1200,
        fed in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let handed = Handed { batch, fed };
        ordered_case(shards, keys, count, calls, failing, aggregation, handed, seed)?;
    }
}

/// Batches fed without a flush between them are delivered together: a
/// batch's records go out while earlier batches' calls are in flight, so
/// small batches fill 32 shards through 20 ms round trips. Delivered one
/// batch at a time (as `send` does), 100 records per round trip would use
/// 16 % of the stream.
#[tokio::test(start_paused = true)]
async fn fed_batches_fill_many_shards_through_long_round_trips() {
    let shards = 32;
    let stub =
        KinesisStub::in_process(StubConfig::new(shards).round_trip(ms(20), Duration::ZERO, 0));
    let start = Instant::now();
    let mut sink = sink(&stub).build().unwrap();
    let mut sent = 0usize;
    let mut batches = 0usize;
    while start.elapsed() < Duration::from_secs(6) {
        let batch: Vec<KinesisRecord> = (sent..sent + 100)
            .map(|i| {
                let key = format!("k{}", i % 10_000);
                KinesisRecord::new(format!("{key}/{i:08}"), key)
            })
            .collect();
        sink.feed(batch).await.unwrap();
        sent += 100;
        batches += 1;
    }
    sink.flush().await.unwrap();

    let stats = stub.stats();
    assert_eq!(
        stats.accepted_records(),
        sent as u64,
        "a record lost or twice"
    );
    let attempts = stats.accepted_records() + stats.throttled_records();
    assert!(
        stats.throttled_records() * 100 < attempts,
        "throttled {} of {attempts}",
        stats.throttled_records()
    );
    // Windows 1..5: past the first (a burst into empty allowances), before
    // the last (the end of the feeding).
    let per_window: Vec<f64> = (1..5)
        .map(|w| {
            (0..shards as usize)
                .map(|s| windows(&stub, s, w, w + 1)[0].records)
                .sum::<u64>() as f64
        })
        .collect();
    let used =
        per_window.iter().sum::<f64>() / per_window.len() as f64 / (1000.0 * f64::from(shards));
    assert!(
        used >= 0.90,
        "{:.1} % used ({per_window:?}, {batches} batches)",
        used * 100.0
    );
}

/// With aggregation, small batches fed one after the other still make full
/// aggregates: a shard's records of a later batch join its last aggregate
/// while that waits behind the one in flight, so 8 shards fill their byte
/// limit through 20 ms round trips. Aggregated batch by batch, 100 records
/// over 8 shards would make aggregates of about 6.5 KB, one per shard per
/// round trip: 31 % of the limit (99.5 % with them joined).
#[tokio::test(start_paused = true)]
async fn small_fed_batches_make_full_aggregates_across_batches() {
    let shards = 8;
    let stub =
        KinesisStub::in_process(StubConfig::new(shards).round_trip(ms(20), Duration::ZERO, 0));
    let start = Instant::now();
    let mut sink = sink(&stub).aggregation(true).build().unwrap();
    let data = "x".repeat(500);
    let mut sent = Vec::new();
    let mut i = 0usize;
    while start.elapsed() < Duration::from_secs(5) {
        let batch: Vec<KinesisRecord> = (i..i + 100)
            .map(|i| {
                let key = format!("k{}", i % 10_000);
                KinesisRecord::new(format!("{key}/{i:08}/{data}"), key)
            })
            .collect();
        sent.extend(batch.iter().cloned());
        sink.feed(batch).await.unwrap();
        i += 100;
    }
    sink.flush().await.unwrap();

    let stored = stored_user_records(&stub);
    assert_eq!(stored.len(), sent.len(), "a record lost or twice");
    assert_eq!(
        by_key(&stored),
        by_key(&sent),
        "a key's records out of order"
    );
    let stats = stub.stats();
    let attempts = stats.accepted_records() + stats.throttled_records();
    assert!(
        stats.throttled_records() * 100 < attempts,
        "throttled {} of {attempts}",
        stats.throttled_records()
    );
    // Windows 1..4: past the first, before the last.
    let per_window: Vec<f64> = (1..4)
        .map(|w| {
            (0..shards as usize)
                .map(|s| windows(&stub, s, w, w + 1)[0].bytes)
                .sum::<u64>() as f64
        })
        .collect();
    let used = per_window.iter().sum::<f64>()
        / per_window.len() as f64
        / (1024.0 * 1024.0 * f64::from(shards));
    assert!(
        used >= 0.90,
        "{:.1} % of the byte limit used ({per_window:?})",
        used * 100.0
    );
}

/// A flush that ends several fed batches of which one had a rejected
/// record fails for the group; each batch sent again then gets its own
/// outcome, cut as it was or differently, and nothing is stored twice.
#[tokio::test(start_paused = true)]
async fn a_failed_group_resumes_each_batch_sent_again_however_cut() {
    for cut_again in [None, Some(130)] {
        let stub = KinesisStub::in_process(StubConfig::new(2).round_trip(ms(5), Duration::ZERO, 0));
        let mut sink = sink(&stub).build().unwrap();
        let mut all = records(0, 300, 7);
        // An empty partition key: rejected before sending, index 150.
        all[150] = KinesisRecord::new("invalid", "");
        for chunk in all.chunks(100) {
            sink.feed(chunk.to_vec()).await.unwrap();
        }
        let err = sink.flush().await.unwrap_err();
        let chain = unistream::ErrorChain(&err).to_string();
        assert!(
            matches!(err, Error::Target { .. })
                && chain.contains("1 record(s) were rejected")
                && chain.contains("send each batch again"),
            "{chain}"
        );
        let stored_after_group = stub.stats().accepted_records();
        assert_eq!(stored_after_group, 299, "every valid record stored once");

        let cut = cut_again.unwrap_or(100);
        let mut rejected = Vec::new();
        for (n, chunk) in all.chunks(cut).enumerate() {
            match sink.send(chunk.to_vec()).await {
                Ok(()) => {}
                Err(Error::Rejected(records)) => {
                    rejected.extend(records.iter().map(|r| (n, r.index)));
                    assert!(
                        records[0].reason.contains("partition key"),
                        "{}",
                        records[0].reason
                    );
                }
                Err(other) => panic!("{}", unistream::ErrorChain(&other)),
            }
        }
        // Record 150, by its index in the batch it is now in.
        assert_eq!(rejected, [(150 / cut, 150 % cut)]);
        assert_eq!(
            stub.stats().accepted_records(),
            299,
            "a record stored twice"
        );
        let stored = stored_user_records(&stub);
        let mut valid = all.clone();
        valid.remove(150);
        assert_eq!(by_key(&stored), by_key(&valid));
    }
}

/// Fed batches whose retries run out on transient failures: the flush
/// fails for the group, nothing more is sent until it did, and sending
/// each batch again until it goes stores every record once, each key in
/// order.
#[tokio::test(start_paused = true)]
async fn fed_batches_that_exhaust_their_retries_are_resumed_when_sent_again() {
    // Aggregated, a later batch's records join an earlier batch's
    // aggregates, whose failures then hold both batches back.
    for aggregation in [false, true] {
        exhausted_fed_batches_resume(aggregation).await;
    }
}

async fn exhausted_fed_batches_resume(aggregation: bool) {
    let stub = KinesisStub::in_process(
        StubConfig::new(4)
            .unlimited()
            .round_trip(ms(10), ms(10), 3)
            .fail_records(0.4),
    );
    let mut sink = sink(&stub)
        .aggregation(aggregation)
        .max_aggregate_bytes(2048)
        .retry_policy(
            RetryPolicy::new()
                .max_attempts(2)
                .initial_backoff(ms(1))
                .max_backoff(ms(5)),
        )
        .build()
        .unwrap();
    let sent = records(0, 3000, 40);
    for chunk in sent.chunks(300) {
        sink.feed(chunk.to_vec()).await.unwrap();
    }
    let err = sink.flush().await.unwrap_err();
    let chain = unistream::ErrorChain(&err).to_string();
    assert!(
        matches!(err, Error::Target { .. }) && chain.contains("unfinished"),
        "{chain}"
    );
    assert!(stored_user_records(&stub).len() < 3000);
    // As `buffered_wal` does: each batch again, with its own flush, until
    // it goes.
    let mut resends = 0;
    for chunk in sent.chunks(300) {
        while let Err(e) = sink.send(chunk.to_vec()).await {
            assert!(matches!(e, Error::Target { .. }), "{e}");
            resends += 1;
            assert!(resends < 1000, "no progress");
        }
    }
    let stored = stored_user_records(&stub);
    assert_eq!(stored.len(), 3000, "a record lost or stored twice");
    assert_eq!(
        by_key(&stored),
        by_key(&sent),
        "a key's records out of order"
    );
}
