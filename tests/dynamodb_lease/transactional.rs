//! `checkpoint_transactional` on moto's DynamoDB: outputs and the lease's
//! checkpoint written in `TransactWriteItems`, split where DynamoDB's
//! limits require, all or nothing when an output's own condition fails or
//! the lease moved.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, Put, ScalarAttributeType,
    TransactWriteItem, Update,
};
use futures::StreamExt;
use unistream::checkpoint::{
    CheckpointError, CheckpointToken, PartitionControl, Position, TransactionalStreamExt,
};
use unistream::dynamodb::DynamoDbLeaseTable;
use unistream::lease::{
    AcquiredLease, Lease, LeaseCheckpoint, LeaseConfig, LeaseTable, LeaseWorker,
};
use unistream::Error;

use crate::emulators::unique_name;
use crate::env::{n, s, Env};

/// A new output table keyed by `pk`.
async fn output_table(env: &Env) -> String {
    let name = unique_name("outputs");
    env.client
        .create_table()
        .table_name(&name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    name
}

/// `writes` of every item of `table` (pk → writes; 0 when absent).
async fn scan_writes(env: &Env, table: &str) -> BTreeMap<String, u64> {
    let mut items = BTreeMap::new();
    let mut start = None;
    loop {
        let page = env
            .client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        for item in page.items() {
            let pk = item["pk"].as_s().unwrap().clone();
            let writes = item
                .get("writes")
                .map_or(0, |w| w.as_n().unwrap().parse().unwrap());
            items.insert(pk, writes);
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    items
}

/// Adds 1 to `writes` of item `pk`: an effect whose repetition shows.
fn count(table: &str, pk: &str) -> TransactWriteItem {
    let update = Update::builder()
        .table_name(table)
        .key("pk", s(pk))
        .update_expression("ADD #w :one")
        .expression_attribute_names("#w", "writes")
        .expression_attribute_values(":one", n(1))
        .build()
        .unwrap();
    TransactWriteItem::builder().update(update).build()
}

fn put(table: &str, pk: &str, only_new: bool) -> TransactWriteItem {
    let mut put = Put::builder().table_name(table).item("pk", s(pk));
    if only_new {
        put = put.condition_expression("attribute_not_exists(pk)");
    }
    TransactWriteItem::builder()
        .put(put.build().unwrap())
        .build()
}

fn position(offset: u64) -> Position {
    Position::sequence(format!("{:056}", offset))
}

async fn holder(env: &Env) -> (LeaseWorker<DynamoDbLeaseTable>, AcquiredLease) {
    env.table
        .create(Lease::new("shard-0", LeaseCheckpoint::TrimHorizon))
        .await
        .unwrap();
    let worker = LeaseWorker::start(
        env.table.clone(),
        "a",
        LeaseConfig::new()
            .lease_duration(Duration::from_secs(5))
            .scan_interval(Duration::from_millis(300))
            .seed(1),
    );
    let lease = worker
        .acquired()
        .unwrap()
        .next()
        .await
        .expect("a takes the lease");
    (worker, lease)
}

type Item = Result<(Vec<TransactWriteItem>, CheckpointToken), Error>;

fn record(control: &PartitionControl, seq: u64, outputs: Vec<TransactWriteItem>) -> Item {
    let token =
        CheckpointToken::new("shard-0", position(seq + 1), seq).with_control(control.clone());
    Ok((outputs, token))
}

async fn lease_checkpoint(env: &Env) -> LeaseCheckpoint {
    env.table.get("shard-0").await.unwrap().unwrap().checkpoint
}

#[tokio::test]
async fn outputs_and_the_checkpoint_land_together_split_at_dynamodbs_limits() {
    let env = Env::new().await;
    let outputs = output_table(&env).await;
    let (worker, lease) = holder(&env).await;
    let control = lease.control().clone();
    // 250 records: each counts one item; every 50th also puts one (its
    // table's key schema is read to tell items apart).
    let items: Vec<Item> = (0..250)
        .map(|seq| {
            let mut writes = vec![count(&outputs, &format!("r{seq}"))];
            if seq % 50 == 0 {
                writes.push(put(&outputs, &format!("put{seq}"), true));
            }
            record(&control, seq, writes)
        })
        .collect();
    let commits: Vec<_> = futures::stream::iter(items)
        .checkpoint_transactional(100, Duration::from_secs(60), worker.checkpoint_store())
        .collect()
        .await;
    let commits: Vec<_> = commits.into_iter().map(|c| c.expect("committed")).collect();
    assert_eq!(commits.iter().map(|c| c.records).sum::<usize>(), 250);
    assert_eq!(commits.iter().map(|c| c.outputs).sum::<usize>(), 255);
    // 100 records of 1 or 2 outputs each (102 outputs) do not fit one
    // transaction of 99 outputs; the last 50 (51 outputs) do.
    let transactions: Vec<usize> = commits.iter().map(|c| c.transactions).collect();
    assert_eq!(transactions, vec![2, 2, 1], "{commits:?}");
    let written = scan_writes(&env, &outputs).await;
    assert_eq!(written.len(), 255);
    assert!(
        (0..250).all(|seq| written.get(&format!("r{seq}")) == Some(&1)),
        "every record's effect exactly once: {written:?}"
    );
    assert_eq!(
        lease_checkpoint(&env).await,
        LeaseCheckpoint::At(position(250))
    );
    drop(lease);
}

#[tokio::test]
async fn an_outputs_failed_condition_refuses_the_whole_transaction() {
    let env = Env::new().await;
    let outputs = output_table(&env).await;
    let (worker, lease) = holder(&env).await;
    let control = lease.control().clone();
    env.client
        .put_item()
        .table_name(&outputs)
        .item("pk", s("taken"))
        .send()
        .await
        .unwrap();
    let items = vec![
        record(&control, 0, vec![count(&outputs, "r0")]),
        record(&control, 1, vec![put(&outputs, "taken", true)]),
    ];
    let commits: Vec<_> = futures::stream::iter(items)
        .checkpoint_transactional(100, Duration::from_secs(60), worker.checkpoint_store())
        .collect()
        .await;
    assert!(
        matches!(&commits[..], [Err(Error::Checkpoint(CheckpointError::Transaction { partition, reason }))]
            if partition == "shard-0" && reason.contains("ConditionalCheckFailed")),
        "{commits:?}"
    );
    let written = scan_writes(&env, &outputs).await;
    assert_eq!(
        written.get("r0"),
        None,
        "nothing of the refused transaction"
    );
    assert_eq!(lease_checkpoint(&env).await, LeaseCheckpoint::TrimHorizon);
    drop(lease);
}

#[tokio::test]
async fn a_worker_whose_lease_moved_writes_nothing() {
    let env = Env::new().await;
    let outputs = output_table(&env).await;
    let (worker, lease) = holder(&env).await;
    let control = lease.control().clone();
    // Another worker takes the lease behind a's back (its counter moves).
    env.client
        .update_item()
        .table_name(&env.name)
        .key("leaseKey", s("shard-0"))
        .update_expression("SET leaseOwner = :o ADD leaseCounter :ten")
        .expression_attribute_values(":o", s("intruder"))
        .expression_attribute_values(":ten", n(10))
        .send()
        .await
        .unwrap();
    let items = vec![record(&control, 0, vec![count(&outputs, "r0")])];
    let commits: Vec<_> = futures::stream::iter(items)
        .checkpoint_transactional(100, Duration::from_secs(60), worker.checkpoint_store())
        .collect()
        .await;
    assert!(
        commits.is_empty(),
        "a fenced partition ends alone: {commits:?}"
    );
    assert!(control.is_fenced());
    assert!(scan_writes(&env, &outputs).await.is_empty());
    let now = env.table.get("shard-0").await.unwrap().unwrap();
    assert_eq!(
        (now.owner.as_deref(), now.checkpoint),
        (Some("intruder"), LeaseCheckpoint::TrimHorizon)
    );
    drop(lease);
}
