//! A lease table written by the KCL, taken over by `KinesisSource::leased`
//! on `DynamoDbLeaseTable` (moto): the KCL worker's leases are waited out,
//! not overwritten; reading resumes exactly after each checkpoint, inside
//! a KPL aggregate; the KCL's attributes and those of other tools are kept.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use futures::{SinkExt, StreamExt, TryStreamExt};
use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore, Position};
use unistream::dynamodb::DynamoDbLeaseTable;
use unistream::kinesis::{KinesisRecord, KinesisSink, KinesisSource};
use unistream::lease::{LeaseCheckpoint, LeaseConfig, LeaseTable, LeaseWorker};

use crate::support::emulators::{moto, sdk_config, unique_name};
use crate::support::kinesis::emulator_stream::create_stream;

const RECORDS: u64 = 300;
const LEASE_DURATION: Duration = Duration::from_secs(2);

/// A user record as read: shard, sequence, sub-sequence, id.
type Read = (String, String, u64, u64);

fn read(record: &KinesisRecord, partition: &str, position: &Position) -> Read {
    let Position::Sequence { sequence, sub } = position else {
        panic!("a Kinesis record at {position:?}");
    };
    let id = std::str::from_utf8(&record.data).unwrap().parse().unwrap();
    (partition.to_owned(), sequence.to_string(), *sub, id)
}

#[tokio::test]
async fn a_kcl_table_is_taken_over_after_its_owners_leases_expire_and_resumed_inside_aggregates() {
    let conf = sdk_config(moto()).await;
    let kinesis = aws_sdk_kinesis::Client::new(&conf);
    let dynamodb = aws_sdk_dynamodb::Client::new(&conf);
    let stream = unique_name("kcl-table");
    create_stream(&kinesis, &stream, 2).await;

    let mut sink = KinesisSink::builder_from_client(kinesis.clone(), stream.as_str())
        .aggregation(true)
        .build()
        .unwrap();
    for batch in (0..RECORDS).collect::<Vec<_>>().chunks(50) {
        let records = batch
            .iter()
            .map(|i| KinesisRecord::new(i.to_string(), format!("key-{i}")))
            .collect::<Vec<_>>();
        sink.send(records).await.unwrap();
    }
    sink.close().await.unwrap();

    // Everything as it is in the stream, per shard in order.
    let all: Vec<Read> = KinesisSource::from_client(
        kinesis.clone(),
        stream.as_str(),
        MemoryCheckpointStore::new(),
    )
    .idle_interval(Duration::from_millis(50))
    .stream()
    .map_ok(|(record, token)| read(&record, token.partition(), token.position()))
    .take(RECORDS as usize)
    .try_collect()
    .await
    .unwrap();
    let mut by_shard: BTreeMap<String, Vec<Read>> = BTreeMap::new();
    for r in all {
        by_shard.entry(r.0.clone()).or_default().push(r);
    }
    assert_eq!(by_shard.len(), 2, "records on both shards");

    // The KCL's table: each shard checkpointed at a user record inside an
    // aggregate (sub-sequence ≥ 1), owned by a KCL worker.
    let table_name = unique_name("kcl-leases");
    let table = DynamoDbLeaseTable::new(&conf, table_name.as_str());
    table.create_table_if_missing().await.unwrap();
    let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (shard, reads) in &by_shard {
        let at = reads
            .iter()
            .position(|r| r.2 >= 1 && reads.len() > 5)
            .expect("a user record inside an aggregate");
        let (_, sequence, sub, _) = &reads[at];
        expected.insert(shard.clone(), reads[at + 1..].iter().map(|r| r.3).collect());
        let item = [
            ("leaseKey", AttributeValue::S(shard.clone())),
            ("leaseOwner", AttributeValue::S("kcl-worker-1".into())),
            ("leaseCounter", AttributeValue::N("41".into())),
            (
                "ownerSwitchesSinceCheckpoint",
                AttributeValue::N("0".into()),
            ),
            ("checkpoint", AttributeValue::S(sequence.clone())),
            (
                "checkpointSubSequenceNumber",
                AttributeValue::N(sub.to_string()),
            ),
            ("applicationTag", AttributeValue::S("billing".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        dynamodb
            .put_item()
            .table_name(&table_name)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }

    let started = Instant::now();
    let worker = LeaseWorker::start(
        table.clone(),
        "unistream-1",
        LeaseConfig::new()
            .lease_duration(LEASE_DURATION)
            .scan_interval(Duration::from_millis(200)),
    );
    let store = worker.checkpoint_store();
    let total: usize = expected.values().map(Vec::len).sum();
    let mut stream =
        KinesisSource::leased_from_client(kinesis.clone(), stream.as_str(), worker.clone())
            .idle_interval(Duration::from_millis(50))
            .stream()
            .map_ok(|(record, token)| (read(&record, token.partition(), token.position()), token))
            .boxed();
    let mut got: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut first_at = None;
    let mut tokens = Vec::new();
    for _ in 0..total {
        let (r, token) = tokio::time::timeout(Duration::from_secs(30), stream.try_next())
            .await
            .expect("a record within 30 s")
            .unwrap()
            .expect("the stream goes on");
        first_at.get_or_insert_with(|| started.elapsed());
        got.entry(r.0).or_default().push(r.3);
        tokens.push(token);
    }
    let first_at = first_at.unwrap();
    assert!(
        first_at >= LEASE_DURATION,
        "read {first_at:?} after the start: the KCL worker's leases were not waited out"
    );
    assert_eq!(
        got, expected,
        "exactly the records after each checkpoint, in order"
    );
    // Each KCL lease was taken once expired: plainly, or as a handoff the
    // silent KCL worker never answered, forced once its lease expired.
    let metrics = worker.metrics();
    assert_eq!(
        metrics.taken_expired + metrics.handoffs_forced,
        2,
        "{metrics:?}"
    );

    // Checkpoint what was read, stop, and look at the items.
    futures::stream::iter(tokens.into_iter().map(Ok::<_, unistream::Error>))
        .checkpoint_batched(1_000, Duration::from_secs(1), store)
        .try_collect::<()>()
        .await
        .unwrap();
    worker.shutdown();
    drop(stream);
    worker.stopped().await;
    for (shard, reads) in &by_shard {
        let lease = table.get(shard).await.unwrap().expect("the lease");
        let (_, sequence, sub, _) = reads.last().unwrap();
        assert_eq!(
            lease.checkpoint,
            LeaseCheckpoint::At(Position::Sequence {
                sequence: sequence.as_str().into(),
                sub: *sub
            }),
            "{shard}: checkpointed at its last record"
        );
        assert!(
            lease.counter > 41,
            "{shard}: counter moved on from the KCL's"
        );
        let item = dynamodb
            .get_item()
            .table_name(&table_name)
            .key("leaseKey", AttributeValue::S(shard.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        assert_eq!(
            item.get("applicationTag"),
            Some(&AttributeValue::S("billing".into())),
            "{shard}: another tool's attribute kept"
        );
    }
}
