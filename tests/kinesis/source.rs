//! `KinesisSource` against emulators: complete consumption of a 4-shard
//! stream and restart from checkpoints (moto), fencing, and resharding with
//! parent-before-child order and `SHARD_END` (kinesis-mock, the emulator
//! that signals shard end).

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, TryStreamExt};
use unistream::checkpoint::{CheckpointStreamExt, DynamoDbCheckpointStore, MemoryCheckpointStore};
use unistream::kinesis::{KinesisRecord, KinesisSource};
use unistream::{CheckpointStore, CheckpointToken, Error, Position};

use crate::support::emulators::{kinesis_mock, moto, sdk_config, unique_name};
use crate::support::kinesis::emulator_stream::{create_stream, merge, put_ids, split_in_half};

fn id_of(record: &KinesisRecord) -> u64 {
    std::str::from_utf8(&record.data).unwrap().parse().unwrap()
}

/// A stream wrapper checking, for every record, that tokens count each
/// shard's deliveries from 0 without gaps and that positions increase.
type Records = Pin<Box<dyn Stream<Item = Result<(KinesisRecord, CheckpointToken), Error>> + Send>>;

struct Checked {
    stream: Records,
    next_seq: HashMap<String, u64>,
    last_pos: HashMap<String, Position>,
}

impl Checked {
    fn new(
        stream: impl Stream<Item = Result<(KinesisRecord, CheckpointToken), Error>> + Send + 'static,
    ) -> Self {
        Self {
            stream: Box::pin(stream),
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

    // First run: checkpoint_batched(EVERY), stopped without a final save
    // (dropped, as in a crash) once every shard delivered 1,000 records.
    let store = MemoryCheckpointStore::new();
    let mut stream = Checked::new(
        KinesisSource::from_client(client.clone(), &name, store.clone())
            .idle_interval(Duration::from_millis(50))
            .stream()
            // checkpoint_batched consumes the token: keep a copy to check.
            .map_ok(|(record, token)| ((record, token.clone()), token))
            .checkpoint_batched(EVERY, Duration::from_secs(3600), store.clone()),
    );
    let mut first = Vec::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    while counts.len() < 4 || counts.values().any(|c| *c < 1_000) {
        let (id, token) = stream.next().await;
        *counts.entry(token.partition().to_owned()).or_default() += 1;
        first.push((id, token));
    }
    drop(stream);
    let saved = store.positions();
    assert_eq!(saved.len(), 4, "every shard was checkpointed: {saved:?}");
    // What the restart must see again: first-run records past each
    // shard's checkpoint.
    let mut unsaved: HashMap<String, HashSet<u64>> = HashMap::new();
    for (id, token) in &first {
        if token.position() > &saved[token.partition()] {
            unsaved
                .entry(token.partition().to_owned())
                .or_default()
                .insert(*id);
        }
    }

    // Second run resumes after each checkpoint and reads to the end.
    let first_ids: HashSet<u64> = first.iter().map(|(id, _)| *id).collect();
    assert_eq!(first_ids.len(), first.len(), "no duplicates within a run");
    let mut seen: HashSet<u64> = first_ids.clone();
    let mut stream = Checked::new(
        KinesisSource::from_client(client.clone(), &name, store.clone())
            .idle_interval(Duration::from_millis(50))
            .stream()
            // checkpoint_batched consumes the token: keep a copy to check.
            .map_ok(|(record, token)| ((record, token.clone()), token))
            .checkpoint_batched(EVERY, Duration::from_secs(3600), store.clone()),
    );
    let mut again: HashMap<String, HashSet<u64>> = HashMap::new();
    // Read until every record was seen and every shard is back past its
    // first run (a shard the first run read to its end has nothing new,
    // but must still replay what lies past its checkpoint).
    let replayed = |again: &HashMap<String, HashSet<u64>>| {
        unsaved
            .iter()
            .all(|(shard, ids)| again.get(shard).is_some_and(|seen| ids.is_subset(seen)))
    };
    while seen.len() < TOTAL as usize || !replayed(&again) {
        let (id, token) = stream.next().await;
        if first_ids.contains(&id) {
            again
                .entry(token.partition().to_owned())
                .or_default()
                .insert(id);
        }
        seen.insert(id);
    }
    assert_eq!(
        seen,
        (0..TOTAL).collect::<HashSet<_>>(),
        "every record consumed"
    );
    for shard in saved.keys() {
        let re_seen = again.remove(shard).unwrap_or_default();
        assert!(
            re_seen.len() <= EVERY,
            "{shard}: {} records seen again (at most {EVERY})",
            re_seen.len()
        );
        assert_eq!(
            re_seen,
            unsaved.remove(shard).unwrap_or_default(),
            "{shard}: exactly the records after the checkpoint"
        );
    }
}

#[tokio::test]
async fn a_fenced_checkpoint_ends_that_shard_while_the_others_go_on() {
    let conf = sdk_config(moto()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("fenced");
    create_stream(&client, &name, 2).await;
    put_ids(&client, &name, 0..200).await;
    let table = unique_name("fenced-leases");
    let ours = DynamoDbCheckpointStore::new(&conf, &table).owner("worker-a");
    ours.create_table_if_missing().await.unwrap();

    let mut checked = Checked::new(
        KinesisSource::from_client(client.clone(), &name, ours.clone())
            .idle_interval(Duration::from_millis(20))
            .stream()
            // checkpoint_batched consumes the token: keep a copy to check.
            .map_ok(|(record, token)| ((record, token.clone()), token))
            .checkpoint_batched(10, Duration::from_millis(100), ours.clone()),
    );
    let first = checked.take(200).await;
    let victim = first[0].1.partition().to_owned();
    let before = first
        .iter()
        .filter(|(_, t)| t.partition() == victim)
        .count();
    assert!(before > 0);

    // Another worker takes the victim shard's lease and checkpoints.
    let theirs = DynamoDbCheckpointStore::new(&conf, &table).owner("worker-b");
    theirs.claim(&victim).await.unwrap();
    let their_position = Position::sequence("1");
    theirs.save(&victim, &their_position).await.unwrap();

    put_ids(&client, &name, 200..400).await;
    let mut from_victim = 0;
    let mut from_other = 0;
    // Our next save for the victim is fenced: its records stop, at most the
    // ones that were already flowing get through before.
    while from_other < 50 {
        let (_, token) = checked.next().await;
        if token.partition() == victim {
            from_victim += 1;
        } else {
            from_other += 1;
        }
    }
    // The fence comes with the victim's next save, which needs the stream
    // driven: keep reading (counting the victim's records) until it does.
    let control = first[0].1.control().unwrap().clone();
    let fenced = control.fenced();
    tokio::pin!(fenced);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::select! {
            () = &mut fenced => break,
            () = tokio::time::sleep_until(deadline) => panic!("the victim shard's control was not fenced within 10 s"),
            item = checked.stream.try_next() => {
                let (_, token) = item.unwrap().expect("the stream goes on");
                if token.partition() == victim {
                    from_victim += 1;
                }
            }
        }
    }
    let mut late = 0;
    while let Ok(Some(item)) =
        tokio::time::timeout(Duration::from_millis(1500), checked.stream.try_next())
            .await
            .map(|r| r.unwrap())
    {
        if item.1.partition() == victim {
            late += 1;
        }
    }
    assert_eq!(late, 0, "no records of the fenced shard after the fence");
    assert!(
        from_victim <= 10,
        "{from_victim} victim records after the takeover (n = 10)"
    );
    // Our stale checkpoint never overwrote theirs.
    let fresh = DynamoDbCheckpointStore::new(&conf, &table);
    assert_eq!(fresh.load(&victim).await.unwrap(), Some(their_position));
}

/// Saves every token's position right away (a checkpointer with n = 1).
async fn checkpoint(store: &MemoryCheckpointStore, token: &CheckpointToken) {
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

    let store = MemoryCheckpointStore::new();
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
    assert_eq!(store.position(&parent), Some(Position::End));
    drop(stream);

    // A restart skips the ended parent and resumes each child after its
    // checkpoint: only new records arrive.
    put_ids(&client, &name, 600..650).await;
    let mut stream = Checked::new(
        KinesisSource::from_client(client.clone(), &name, store.clone())
            .idle_interval(Duration::from_millis(50))
            .stream(),
    );
    let mut after_restart = HashSet::new();
    for _ in 0..50 {
        let (id, token) = stream.next().await;
        assert_ne!(
            token.partition(),
            parent,
            "the ended parent is not read again"
        );
        after_restart.insert(id);
    }
    assert_eq!(after_restart, (600..650).collect::<HashSet<_>>());
}

#[tokio::test]
async fn latest_skips_what_was_written_before_the_start() {
    let conf = sdk_config(moto()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("latest");
    create_stream(&client, &name, 1).await;
    put_ids(&client, &name, 0..100).await;

    let mut stream = Checked::new(
        KinesisSource::from_client(client.clone(), &name, MemoryCheckpointStore::new())
            .initial_position(unistream::kinesis::InitialPosition::Latest)
            .idle_interval(Duration::from_millis(20))
            .stream(),
    );
    // Nothing old arrives while the shard's LATEST iterator is taken.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), stream.next())
            .await
            .is_err(),
        "no record written before the start"
    );
    put_ids(&client, &name, 100..120).await;
    let ids: Vec<u64> = stream
        .take(20)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, (100..120).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_merged_child_starts_only_after_both_parents_ended() {
    let conf = sdk_config(kinesis_mock()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    let name = unique_name("merge");
    create_stream(&client, &name, 2).await;
    put_ids(&client, &name, 0..200).await;

    let store = MemoryCheckpointStore::new();
    let mut stream = Checked::new(
        KinesisSource::from_client(client.clone(), &name, store.clone())
            .idle_interval(Duration::from_millis(50))
            .stream(),
    );
    let mut seen: Vec<(u64, String)> = Vec::new();
    for _ in 0..200 {
        let (id, token) = stream.next().await;
        checkpoint(&store, &token).await;
        seen.push((id, token.partition().to_owned()));
    }
    let shards = client
        .list_shards()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let parents: Vec<String> = shards
        .shards()
        .iter()
        .map(|s| s.shard_id().to_owned())
        .collect();
    assert_eq!(parents.len(), 2);
    merge(&client, &name, &parents[0], &parents[1]).await;
    put_ids(&client, &name, 200..300).await;

    while seen.len() < 300 {
        let (id, token) = stream.next().await;
        if !parents.iter().any(|p| p == token.partition()) {
            for parent in &parents {
                assert_eq!(
                    store.position(parent),
                    Some(Position::End),
                    "{parent} ended before the merged child's first record"
                );
            }
        }
        checkpoint(&store, &token).await;
        seen.push((id, token.partition().to_owned()));
    }
    let ids: HashSet<u64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (0..300).collect::<HashSet<_>>(),
        "nothing lost or repeated"
    );
    let child_records = seen[200..]
        .iter()
        .filter(|(_, s)| !parents.contains(s))
        .count();
    assert_eq!(
        child_records, 100,
        "everything after the merge came from the child"
    );
}
