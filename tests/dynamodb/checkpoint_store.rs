//! `DynamoDbCheckpointStore` against moto's DynamoDB: the KCL item layout,
//! sentinels, and fencing of stale writers.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use unistream::checkpoint::{CheckpointError, DynamoDbCheckpointStore};
use unistream::{CheckpointStore, Position};

use crate::support::emulators::{moto, sdk_config, unique_name};

async fn table() -> (aws_config::SdkConfig, String) {
    let conf = sdk_config(moto()).await;
    let name = unique_name("leases");
    let store = DynamoDbCheckpointStore::new(&conf, &name);
    store.create_table_if_missing().await.unwrap();
    // Idempotent: a second call finds the table.
    store.create_table_if_missing().await.unwrap();
    (conf, name)
}

async fn raw_item(
    conf: &aws_config::SdkConfig,
    table: &str,
    key: &str,
) -> HashMap<String, AttributeValue> {
    aws_sdk_dynamodb::Client::new(conf)
        .get_item()
        .table_name(table)
        .key("leaseKey", AttributeValue::S(key.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("item exists")
}

fn n(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name).unwrap().as_n().unwrap().clone()
}

fn s(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name).unwrap().as_s().unwrap().clone()
}

#[tokio::test]
async fn checkpoints_round_trip_in_the_kcl_item_layout() {
    let (conf, table) = table().await;
    let store = DynamoDbCheckpointStore::new(&conf, &table).owner("worker-a");
    let shard = "shardId-000000000001";
    assert_eq!(store.load(shard).await.unwrap(), None);

    let seq = "49590338271490256608559692538361571095921575989136588898";
    store.save(shard, &Position::sequence(seq)).await.unwrap();
    let item = raw_item(&conf, &table, shard).await;
    assert_eq!(s(&item, "leaseKey"), shard);
    assert_eq!(s(&item, "leaseOwner"), "worker-a");
    assert_eq!(n(&item, "leaseCounter"), "1");
    assert_eq!(s(&item, "checkpoint"), seq);
    assert_eq!(n(&item, "checkpointSubSequenceNumber"), "0");
    assert_eq!(n(&item, "ownerSwitchesSinceCheckpoint"), "0");

    let inside_aggregate = Position::Sequence {
        sequence: seq.into(),
        sub: 7,
    };
    store.save(shard, &inside_aggregate).await.unwrap();
    let item = raw_item(&conf, &table, shard).await;
    assert_eq!(n(&item, "leaseCounter"), "2");
    assert_eq!(n(&item, "checkpointSubSequenceNumber"), "7");

    // A fresh store (a restart) reads what was saved.
    let restarted = DynamoDbCheckpointStore::new(&conf, &table);
    assert_eq!(restarted.load(shard).await.unwrap(), Some(inside_aggregate));

    store.save(shard, &Position::End).await.unwrap();
    let item = raw_item(&conf, &table, shard).await;
    assert_eq!(s(&item, "checkpoint"), "SHARD_END");
    assert_eq!(n(&item, "leaseCounter"), "3");
    let restarted = DynamoDbCheckpointStore::new(&conf, &table);
    assert_eq!(restarted.load(shard).await.unwrap(), Some(Position::End));

    store
        .set_lineage(shard, &["shardId-000000000000".into()], &[])
        .await
        .unwrap();
    let lease = restarted.claim(shard).await.unwrap().unwrap();
    assert_eq!(
        lease.parent_shard_ids,
        vec!["shardId-000000000000".to_owned()]
    );
    assert_eq!(lease.counter, 4);
    assert_eq!(lease.owner.as_deref(), Some("worker-a"));
}

#[tokio::test]
async fn offsets_are_refused_and_sentinels_mean_no_checkpoint() {
    let (conf, table) = table().await;
    let store = DynamoDbCheckpointStore::new(&conf, &table);
    let err = store
        .save("shard-x", &Position::Offset(5))
        .await
        .unwrap_err();
    assert!(matches!(err, CheckpointError::Backend { .. }), "{err}");

    let client = aws_sdk_dynamodb::Client::new(&conf);
    for (key, checkpoint) in [("a", "TRIM_HORIZON"), ("b", "LATEST"), ("c", "garbage")] {
        client
            .put_item()
            .table_name(&table)
            .item("leaseKey", AttributeValue::S(key.into()))
            .item("leaseCounter", AttributeValue::N("3".into()))
            .item("checkpoint", AttributeValue::S(checkpoint.into()))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(store.load("a").await.unwrap(), None);
    assert_eq!(store.load("b").await.unwrap(), None);
    let err = store.load("c").await.unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    // A KCL-created item is taken over by counter: the write expects 3.
    store.save("a", &Position::sequence("10")).await.unwrap();
    assert_eq!(n(&raw_item(&conf, &table, "a").await, "leaseCounter"), "4");
}

#[tokio::test]
async fn a_stale_writer_is_fenced_and_stays_fenced() {
    let (conf, table) = table().await;
    let shard = "shardId-000000000002";
    let a = DynamoDbCheckpointStore::new(&conf, &table).owner("worker-a");
    let b = DynamoDbCheckpointStore::new(&conf, &table).owner("worker-b");
    a.save(shard, &Position::sequence("100")).await.unwrap();

    // Both read counter 1; b writes first.
    assert_eq!(
        a.load(shard).await.unwrap(),
        Some(Position::sequence("100"))
    );
    assert_eq!(
        b.load(shard).await.unwrap(),
        Some(Position::sequence("100"))
    );
    b.save(shard, &Position::sequence("200")).await.unwrap();

    let err = a.save(shard, &Position::sequence("150")).await.unwrap_err();
    assert!(err.is_fenced(), "{err}");
    let CheckpointError::Fenced { partition, reason } = &err else {
        unreachable!()
    };
    assert_eq!(partition, shard);
    assert!(reason.contains("worker-b"), "{reason}");
    // Reading again does not silently re-take the lease.
    assert_eq!(
        a.load(shard).await.unwrap(),
        Some(Position::sequence("200"))
    );
    assert!(a
        .save(shard, &Position::sequence("300"))
        .await
        .unwrap_err()
        .is_fenced());
    // b's checkpoint survived a's attempts.
    let fresh = DynamoDbCheckpointStore::new(&conf, &table);
    assert_eq!(
        fresh.load(shard).await.unwrap(),
        Some(Position::sequence("200"))
    );

    // Deliberately taking the lease back works, and fences b in turn.
    a.claim(shard).await.unwrap();
    a.save(shard, &Position::sequence("300")).await.unwrap();
    assert!(b
        .save(shard, &Position::sequence("400"))
        .await
        .unwrap_err()
        .is_fenced());
}

#[tokio::test]
async fn two_first_writers_race_and_one_is_fenced() {
    let (conf, table) = table().await;
    let a = DynamoDbCheckpointStore::new(&conf, &table);
    let b = DynamoDbCheckpointStore::new(&conf, &table);
    assert_eq!(a.load("s").await.unwrap(), None);
    assert_eq!(b.load("s").await.unwrap(), None);
    a.save("s", &Position::sequence("1")).await.unwrap();
    assert!(b
        .save("s", &Position::sequence("2"))
        .await
        .unwrap_err()
        .is_fenced());
}
