//! The rules on [`DynamoDbIdempotencyStore`] against moto (real time,
//! short expiries), across store handles as across processes, and the item
//! layout with its TTL attribute.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use unistream::dynamodb::DynamoDbIdempotencyStore;
use unistream::idempotency::{Idempotency, IdempotencyError, Once};
use unistream::Error;

use super::contract;
use crate::support::emulators::{moto, sdk_config, unique_name};

const EXPIRY: Duration = Duration::from_secs(3);

async fn store() -> (DynamoDbIdempotencyStore, aws_sdk_dynamodb::Client, String) {
    let conf = sdk_config(moto()).await;
    let table = unique_name("idempotency");
    let store = DynamoDbIdempotencyStore::new(&conf, table.as_str());
    store.create_table_if_missing().await.unwrap();
    store.create_table_if_missing().await.unwrap();
    (store, aws_sdk_dynamodb::Client::new(&conf), table)
}

fn once(store: &DynamoDbIdempotencyStore) -> Idempotency<DynamoDbIdempotencyStore> {
    Idempotency::new(store.clone()).in_progress_expiry(EXPIRY)
}

#[tokio::test]
async fn concurrent_duplicates_across_handles_run_once() {
    let (store, client, table) = store().await;
    // Each caller a handle of its own, as separate processes have.
    let fresh = DynamoDbIdempotencyStore::from_client(client, table.as_str());
    contract::concurrent_duplicates_run_once(once(&fresh), "k", 8, Duration::from_millis(300))
        .await;
    let later = once(&store)
        .run("k", || async { Ok::<_, Error>(99u32) })
        .await
        .unwrap();
    assert!(!later.ran(), "{later:?}");
}

#[tokio::test]
async fn a_failure_frees_the_key() {
    let (store, _, _) = store().await;
    contract::a_failure_frees_the_key(once(&store), "k").await;
}

#[tokio::test]
async fn a_crashed_run_is_run_again_only_after_its_claim_expires() {
    let (store, _, _) = store().await;
    contract::a_crashed_run_is_run_again_after_its_claim_expires(once(&store), "k", EXPIRY).await;
}

#[tokio::test]
async fn a_long_run_keeps_its_claim() {
    let (store, _, _) = store().await;
    contract::a_long_run_keeps_its_claim(once(&store), "k", 3 * EXPIRY).await;
}

#[tokio::test]
async fn items_carry_status_result_and_a_ttl_and_corruption_is_a_typed_error() {
    let (store, client, table) = store().await;
    let once = once(&store).keep_for(Duration::from_secs(3600));
    assert_eq!(
        once.run("k", || async { Ok::<_, Error>(vec![1u8, 2]) })
            .await
            .unwrap(),
        Once::Ran(vec![1, 2])
    );
    let item = client
        .get_item()
        .table_name(&table)
        .key("id", AttributeValue::S("k".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        item.get("status"),
        Some(&AttributeValue::S("COMPLETED".into()))
    );
    assert!(!item.contains_key("inProgressExpiry"), "{item:?}");
    let expiration: u64 = item["expiration"].as_n().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 3_500..=now + 3_700).contains(&expiration),
        "expiration {expiration} for a result kept an hour from {now}"
    );
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("expiration")
    );

    // Another tool wrote a record this crate cannot read.
    client
        .put_item()
        .table_name(&table)
        .item("id", AttributeValue::S("odd".into()))
        .item("status", AttributeValue::S("WHATEVER".into()))
        .item("expiration", AttributeValue::N((now + 3600).to_string()))
        .send()
        .await
        .unwrap();
    let err = once
        .run("odd", || async { Ok::<_, Error>(1u8) })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Idempotency(IdempotencyError::Corrupt { ref key, .. }) if key == "odd"),
        "{err:?}"
    );
}
