//! `KinesisSource` with enhanced fan-out against kinesis-mock, which serves
//! `RegisterStreamConsumer` and `SubscribeToShard` over its plain-HTTP
//! port (HTTP/1.1: the SDK's client speaks HTTP/2 only where TLS
//! negotiates it, and kinesis-mock streams the events over HTTP/1.1):
//! complete consumption of a 4-shard stream, a restart after the
//! checkpoint, a split while subscribed, and the consumer registered once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_kinesis::types::ConsumerStatus;
use futures::{Stream, StreamExt, TryStreamExt};
use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore};
use unistream::kinesis::{EnhancedFanOut, KinesisRecord, KinesisSource};
use unistream::{CheckpointStore, CheckpointToken, Error, Position};

use crate::support::emulators::{kinesis_mock, sdk_config, unique_name};
use crate::support::kinesis::emulator_stream::{create_stream, put_ids, split_in_half};

type Item = Result<(KinesisRecord, CheckpointToken), Error>;

fn id_of(record: &KinesisRecord) -> u64 {
    std::str::from_utf8(&record.data).unwrap().parse().unwrap()
}

/// The next record, checking that each shard's tokens count deliveries
/// from 0 and that positions increase.
struct Checked<St> {
    stream: St,
    next_seq: HashMap<String, u64>,
    last_pos: HashMap<String, Position>,
}

impl<St: Stream<Item = Item> + Unpin> Checked<St> {
    fn new(stream: St) -> Self {
        Self {
            stream,
            next_seq: HashMap::new(),
            last_pos: HashMap::new(),
        }
    }

    async fn next(&mut self) -> (u64, CheckpointToken) {
        let (record, token) =
            tokio::time::timeout(Duration::from_secs(120), self.stream.try_next())
                .await
                .expect("no record within 120 s")
                .unwrap()
                .expect("stream ended");
        let shard = token.partition().to_owned();
        let expected = self.next_seq.entry(shard.clone()).or_insert(0);
        assert_eq!(token.seq(), *expected, "delivery order of {shard}");
        *expected += 1;
        if let Some(prev) = self
            .last_pos
            .insert(shard.clone(), token.position().clone())
        {
            assert!(
                prev < *token.position(),
                "positions increase within {shard}"
            );
        }
        (id_of(&record), token)
    }
}

#[tokio::test]
async fn four_shards_are_consumed_once_through_fan_out_and_a_restart_resumes_after_the_checkpoint()
{
    const TOTAL: u64 = 20_000;
    const EVERY: usize = 100;
    let conf = sdk_config(kinesis_mock()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("fan-out-four");
    create_stream(&client, &name, 4).await;
    put_ids(&client, &name, 0..TOTAL).await;
    let consumer = unique_name("app");

    // First run: checkpoint_batched(EVERY), dropped without a final save
    // (as in a crash) once every shard delivered 2,000 records.
    let store = MemoryCheckpointStore::new();
    let source = |store: &MemoryCheckpointStore| {
        KinesisSource::from_client(client.clone(), &name, store.clone())
            .enhanced_fan_out(EnhancedFanOut::new(&consumer))
            .stream()
            // checkpoint_batched consumes the token: keep a copy to check.
            .map_ok(|(record, token)| ((record, token.clone()), token))
            .checkpoint_batched(EVERY, Duration::from_secs(3600), store.clone())
            .boxed()
    };
    let mut stream = Checked::new(source(&store));
    let mut first = Vec::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    while counts.len() < 4 || counts.values().any(|c| *c < 2_000) {
        let (id, token) = stream.next().await;
        *counts.entry(token.partition().to_owned()).or_default() += 1;
        first.push((id, token));
    }
    drop(stream);
    let first_ids: HashSet<u64> = first.iter().map(|(id, _)| *id).collect();
    assert_eq!(first_ids.len(), first.len(), "no duplicates within a run");
    let saved = store.positions();
    assert_eq!(saved.len(), 4, "every shard was checkpointed: {saved:?}");
    let mut unsaved: HashMap<String, HashSet<u64>> = HashMap::new();
    for (id, token) in &first {
        if token.position() > &saved[token.partition()] {
            unsaved
                .entry(token.partition().to_owned())
                .or_default()
                .insert(*id);
        }
    }

    // Second run, same consumer (already registered): resumes after each
    // checkpoint and reads to the end.
    let mut stream = Checked::new(source(&store));
    let mut seen = first_ids.clone();
    let mut again: HashMap<String, HashSet<u64>> = HashMap::new();
    let mut second = 0usize;
    let replayed = |again: &HashMap<String, HashSet<u64>>| {
        unsaved
            .iter()
            .all(|(shard, ids)| again.get(shard).is_some_and(|seen| ids.is_subset(seen)))
    };
    while seen.len() < TOTAL as usize || !replayed(&again) {
        let (id, token) = stream.next().await;
        second += 1;
        if first_ids.contains(&id) {
            again
                .entry(token.partition().to_owned())
                .or_default()
                .insert(id);
        } else {
            assert!(
                seen.insert(id),
                "record {id} delivered twice in the second run"
            );
        }
    }
    assert_eq!(
        seen,
        (0..TOTAL).collect::<HashSet<_>>(),
        "every record consumed"
    );
    let replayed_count: usize = again.values().map(HashSet::len).sum();
    assert_eq!(
        second,
        TOTAL as usize - first.len() + replayed_count,
        "the second run delivered each record at most once"
    );
    for shard in saved.keys() {
        let re_seen = again.remove(shard).unwrap_or_default();
        assert!(
            re_seen.len() <= EVERY,
            "{shard}: {} seen again",
            re_seen.len()
        );
        assert_eq!(
            re_seen,
            unsaved.remove(shard).unwrap_or_default(),
            "{shard}: exactly the records after the checkpoint"
        );
    }
    drop(stream);

    // One consumer, registered by the first run and found by the second.
    let arn = client
        .describe_stream_summary()
        .stream_name(&name)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_arn;
    let consumers = client
        .list_stream_consumers()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = consumers
        .consumers()
        .iter()
        .map(|c| c.consumer_name())
        .collect();
    assert_eq!(names, [consumer.as_str()]);
    assert_eq!(
        consumers.consumers()[0].consumer_status(),
        &ConsumerStatus::Active
    );
}

/// Saves every token's position right away (a checkpointer with n = 1).
async fn checkpoint(store: &MemoryCheckpointStore, token: &CheckpointToken) {
    store
        .save(token.partition(), token.position())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_split_while_subscribed_ends_the_parent_before_the_children_start() {
    let conf = sdk_config(kinesis_mock()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("fan-out-split");
    create_stream(&client, &name, 1).await;
    put_ids(&client, &name, 0..300).await;

    let store = MemoryCheckpointStore::new();
    let mut stream = Checked::new(
        KinesisSource::from_client(client.clone(), &name, store.clone())
            .enhanced_fan_out(EnhancedFanOut::new(unique_name("app")).deregister_on_shutdown(true))
            .shard_refresh_interval(Duration::from_secs(3600))
            .stream(),
    );
    let mut order: Vec<(u64, String)> = Vec::new();
    for _ in 0..300 {
        let (id, token) = stream.next().await;
        checkpoint(&store, &token).await;
        order.push((id, token.partition().to_owned()));
    }
    let parent = order[0].1.clone();

    // The parent's subscription is open (and idle): split it, then write
    // more, which goes to the children.
    split_in_half(&client, &name, &parent).await;
    put_ids(&client, &name, 300..600).await;

    let mut first_child_at = None;
    while order.len() < 600 {
        let (id, token) = stream.next().await;
        if token.partition() != parent && first_child_at.is_none() {
            first_child_at = Some(order.len());
            assert_eq!(
                store.position(&parent),
                Some(Position::End),
                "SHARD_END is stored before a child's first record"
            );
        }
        checkpoint(&store, &token).await;
        order.push((id, token.partition().to_owned()));
    }
    let first_child_at = first_child_at.expect("children were read");
    assert_eq!(
        first_child_at, 300,
        "the parent held exactly the records before the split"
    );
    assert!(order[first_child_at..].iter().all(|(_, s)| *s != parent));
    let ids: HashSet<u64> = order.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (0..600).collect::<HashSet<_>>(),
        "nothing lost or repeated"
    );
    let children: HashSet<&String> = order[first_child_at..].iter().map(|(_, s)| s).collect();
    assert_eq!(children.len(), 2, "both children were read");
    drop(stream);

    // Deregistered once the stream is gone.
    let arn = client
        .describe_stream_summary()
        .stream_name(&name)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_arn;
    let mut remaining = usize::MAX;
    for _ in 0..100 {
        let consumers = client
            .list_stream_consumers()
            .stream_arn(&arn)
            .send()
            .await
            .unwrap();
        remaining = consumers
            .consumers()
            .iter()
            .filter(|c| c.consumer_status() != &ConsumerStatus::Deleting)
            .count();
        if remaining == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(remaining, 0, "the consumer was deregistered on drop");
}
