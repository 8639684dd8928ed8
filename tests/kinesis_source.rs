//! `KinesisSource` against emulators: complete consumption of a 4-shard
//! stream and restart from checkpoints (moto), fencing, and resharding with
//! parent-before-child order and `SHARD_END` (kinesis-mock, the emulator
//! that signals shard end).
#![cfg(feature = "kinesis")]

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use futures::TryStreamExt;
use support::emulators::{kinesis_mock, moto, sdk_config, unique_name};
use unistream::checkpoint::CheckpointError;
use unistream::kinesis::{KinesisSource, KinesisStream};
use unistream::{CheckpointStore, CheckpointToken, Position};

/// An in-memory store that records every save, for assertions.
#[derive(Clone, Default)]
struct TestStore {
    positions: Arc<Mutex<HashMap<String, Position>>>,
}

impl TestStore {
    fn get(&self, partition: &str) -> Option<Position> {
        self.positions.lock().unwrap().get(partition).cloned()
    }
}

impl CheckpointStore for TestStore {
    async fn load(&self, partition: &str) -> Result<Option<Position>, CheckpointError> {
        Ok(self.get(partition))
    }

    async fn save(&self, partition: &str, position: &Position) -> Result<(), CheckpointError> {
        self.positions
            .lock()
            .unwrap()
            .insert(partition.to_owned(), position.clone());
        Ok(())
    }
}

async fn create_stream(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    wait_active(client, name).await;
}

async fn wait_active(client: &aws_sdk_kinesis::Client, name: &str) {
    for _ in 0..200 {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .unwrap();
        if summary
            .stream_description_summary()
            .map(|s| s.stream_status().as_str())
            == Some("ACTIVE")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stream {name} never became ACTIVE");
}

/// Writes records whose data is the decimal id, 500 per call.
async fn put_ids(client: &aws_sdk_kinesis::Client, stream: &str, ids: std::ops::Range<u64>) {
    let ids: Vec<u64> = ids.collect();
    for batch in ids.chunks(500) {
        let entries = batch
            .iter()
            .map(|id| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(id.to_string()))
                    .partition_key(format!("key-{id}"))
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
        assert_eq!(out.failed_record_count(), Some(0));
    }
}

fn id_of(record: &unistream::kinesis::KinesisRecord) -> u64 {
    std::str::from_utf8(&record.data).unwrap().parse().unwrap()
}

/// A stream wrapper checking, for every record, that tokens count each
/// shard's deliveries from 0 without gaps and that positions increase.
struct Checked {
    stream: KinesisStream,
    next_seq: HashMap<String, u64>,
    last_pos: HashMap<String, Position>,
}

impl Checked {
    fn new(stream: KinesisStream) -> Self {
        Self {
            stream,
            next_seq: HashMap::new(),
            last_pos: HashMap::new(),
        }
    }

    async fn next(&mut self) -> (u64, CheckpointToken) {
        let (record, token) = tokio::time::timeout(Duration::from_secs(60), self.stream.try_next())
            .await
            .expect("no record within 60 s")
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
        assert!(
            token.control().is_some(),
            "tokens carry the shard's control"
        );
        (id_of(&record), token)
    }

    async fn take(&mut self, count: usize) -> Vec<(u64, CheckpointToken)> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            out.push(self.next().await);
        }
        out
    }
}

#[tokio::test]
async fn four_shards_are_consumed_completely_and_a_restart_resumes_after_the_checkpoint() {
    const TOTAL: u64 = 20_000;
    const EVERY: usize = 100;
    let conf = sdk_config(moto()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("four-shards");
    create_stream(&client, &name, 4).await;
    put_ids(&client, &name, 0..TOTAL).await;

    // First run: checkpoint every EVERY records of a shard (what
    // `checkpoint_batched(EVERY, ..)` does), stop after half, no final save
    // (a crash) once every shard delivered at least 1,000 records.
    let store = TestStore::default();
    let mut stream = Checked::new(
        KinesisSource::from_client(client.clone(), &name, store.clone())
            .idle_interval(Duration::from_millis(50))
            .stream(),
    );
    let mut first = Vec::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    while counts.len() < 4 || counts.values().any(|c| *c < 1_000) {
        let (id, token) = stream.next().await;
        *counts.entry(token.partition().to_owned()).or_default() += 1;
        first.push((id, token));
    }
    drop(stream);
    let mut per_shard: BTreeMap<String, Vec<&CheckpointToken>> = BTreeMap::new();
    for (_, token) in &first {
        per_shard
            .entry(token.partition().to_owned())
            .or_default()
            .push(token);
    }
    assert_eq!(per_shard.len(), 4, "all four shards were read");
    let mut checkpointed_seq = HashMap::new();
    for (shard, tokens) in &per_shard {
        if tokens.len() >= EVERY {
            let last = tokens[(tokens.len() / EVERY) * EVERY - 1];
            store.save(shard, last.position()).await.unwrap();
            checkpointed_seq.insert(shard.clone(), last.seq());
        }
    }

    // Second run resumes after each checkpoint and reads to the end.
    let first_ids: HashSet<u64> = first.iter().map(|(id, _)| *id).collect();
    assert_eq!(first_ids.len(), first.len(), "no duplicates within a run");
    let mut seen: HashSet<u64> = first_ids.clone();
    let mut stream = Checked::new(
        KinesisSource::from_client(client.clone(), &name, store.clone())
            .idle_interval(Duration::from_millis(50))
            .stream(),
    );
    let mut again: HashMap<String, usize> = HashMap::new();
    let mut second = 0usize;
    while seen.len() < TOTAL as usize {
        let (id, token) = stream.next().await;
        second += 1;
        if first_ids.contains(&id) {
            *again.entry(token.partition().to_owned()).or_default() += 1;
        }
        seen.insert(id);
    }
    assert_eq!(
        seen,
        (0..TOTAL).collect::<HashSet<_>>(),
        "every record consumed"
    );
    for (shard, tokens) in &per_shard {
        let expected = tokens.len() - checkpointed_seq.get(shard).map_or(0, |s| *s as usize + 1);
        let re_seen = again.get(shard).copied().unwrap_or(0);
        assert!(
            re_seen < EVERY,
            "{shard}: {re_seen} records seen again (at most {EVERY})"
        );
        assert_eq!(
            re_seen, expected,
            "{shard}: exactly the records after the checkpoint"
        );
    }
    assert_eq!(
        second,
        TOTAL as usize - first.len() + again.values().sum::<usize>()
    );
}

#[tokio::test]
async fn a_fenced_shard_stops_while_the_others_go_on() {
    let conf = sdk_config(moto()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("fenced");
    create_stream(&client, &name, 2).await;
    put_ids(&client, &name, 0..200).await;

    let store = TestStore::default();
    let mut checked = Checked::new(
        KinesisSource::from_client(client.clone(), &name, store.clone())
            .idle_interval(Duration::from_millis(20))
            .stream(),
    );
    let first = checked.take(200).await;
    let mut stream = checked.stream;
    // The checkpointer's write for one shard is fenced: it flips the control.
    let (_, victim) = &first[0];
    victim.control().unwrap().fence();
    let victim = victim.partition().to_owned();

    put_ids(&client, &name, 200..400).await;
    let mut other_shard_records = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), stream.try_next()).await {
            Ok(item) => {
                let (_, token) = item.unwrap().expect("stream goes on");
                assert_ne!(
                    token.partition(),
                    victim,
                    "no records from the fenced shard"
                );
                other_shard_records += 1;
            }
            Err(_) if other_shard_records > 0 => break,
            Err(_) => {}
        }
    }
    assert!(other_shard_records > 0, "the other shard kept delivering");
    assert_eq!(stream.active_shards(), 1);
}

/// Saves every token's position right away (a checkpointer with n = 1).
async fn checkpoint(store: &TestStore, token: &CheckpointToken) {
    store
        .save(token.partition(), token.position())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_split_parent_is_finished_and_ended_before_its_children_start() {
    let conf = sdk_config(kinesis_mock()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("split");
    create_stream(&client, &name, 1).await;
    put_ids(&client, &name, 0..300).await;

    let store = TestStore::default();
    let mut stream = Checked::new(
        KinesisSource::from_client(client.clone(), &name, store.clone())
            .idle_interval(Duration::from_millis(50))
            .shard_refresh_interval(Duration::from_secs(3600))
            .stream(),
    );
    let mut order: Vec<(u64, String)> = Vec::new();
    for _ in 0..150 {
        let (id, token) = stream.next().await;
        checkpoint(&store, &token).await;
        order.push((id, token.partition().to_owned()));
    }
    let parent = order[0].1.clone();

    // Split the only shard mid-stream, then write more: those records go to
    // the children.
    let shards = client
        .list_shards()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let range = shards.shards()[0].hash_key_range().unwrap();
    let start: u128 = range.starting_hash_key().parse().unwrap();
    let end: u128 = range.ending_hash_key().parse().unwrap();
    client
        .split_shard()
        .stream_name(&name)
        .shard_to_split(&parent)
        .new_starting_hash_key((start + (end - start) / 2).to_string())
        .send()
        .await
        .unwrap();
    wait_active(&client, &name).await;
    put_ids(&client, &name, 300..600).await;

    let mut first_child_at = None;
    while order.len() < 600 {
        let (id, token) = stream.next().await;
        if token.partition() != parent && first_child_at.is_none() {
            first_child_at = Some(order.len());
            assert_eq!(
                store.get(&parent),
                Some(Position::End),
                "SHARD_END is stored before a child's first record"
            );
        }
        checkpoint(&store, &token).await;
        order.push((id, token.partition().to_owned()));
    }
    let first_child_at = first_child_at.expect("children were read");
    assert!(order[..first_child_at].iter().all(|(_, s)| *s == parent));
    assert!(order[first_child_at..].iter().all(|(_, s)| *s != parent));
    assert_eq!(
        first_child_at, 300,
        "the parent held exactly the records before the split"
    );
    let ids: HashSet<u64> = order.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (0..600).collect::<HashSet<_>>(),
        "nothing lost or repeated"
    );
    let children: HashSet<&String> = order[first_child_at..].iter().map(|(_, s)| s).collect();
    assert_eq!(children.len(), 2, "both children were read");
    assert_eq!(store.get(&parent), Some(Position::End));
}
