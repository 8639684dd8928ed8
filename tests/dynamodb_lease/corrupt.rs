//! Items that cannot be read as leases are `Corrupt`, naming the table and
//! the key — from `get`, from `list` and from a write — and items of other
//! KCL entity types are not leases.

use aws_sdk_dynamodb::types::AttributeValue;
use unistream::lease::{LeaseError, LeaseTable, LeaseWrite};

use crate::env::{item, n, s, Env, Item};

fn valid(key: &str) -> Item {
    item([
        ("leaseKey", s(key)),
        ("leaseCounter", n(3)),
        ("checkpoint", s("TRIM_HORIZON")),
        ("checkpointSubSequenceNumber", n(0)),
        ("ownerSwitchesSinceCheckpoint", n(0)),
    ])
}

/// How a valid item is spoiled.
enum Spoil {
    Set(&'static str, AttributeValue),
    Remove(&'static str),
}

fn assert_corrupt(err: LeaseError, table: &str, key: &str, reason_has: &str) {
    match err {
        LeaseError::Corrupt {
            table: t,
            key: k,
            reason,
        } => {
            assert_eq!((t.as_str(), k.as_str()), (table, key));
            assert!(reason.contains(reason_has), "{key}: {reason}");
        }
        other => panic!("{key}: not corrupt: {other}"),
    }
}

#[tokio::test]
async fn unreadable_items_are_corrupt_from_get_list_and_write() {
    let env = Env::new().await;
    let cases = [
        (
            "counter-is-a-string",
            Spoil::Set("leaseCounter", s("3")),
            "leaseCounter is S",
        ),
        (
            "counter-is-negative",
            Spoil::Set("leaseCounter", AttributeValue::N("-1".into())),
            "leaseCounter \"-1\"",
        ),
        (
            "no-counter",
            Spoil::Remove("leaseCounter"),
            "no leaseCounter",
        ),
        (
            "no-checkpoint",
            Spoil::Remove("checkpoint"),
            "no checkpoint",
        ),
        (
            "checkpoint-garbage",
            Spoil::Set("checkpoint", s("garbage")),
            "checkpoint \"garbage\"",
        ),
        (
            "one-hash-key",
            Spoil::Set("startingHashKey", s("0")),
            "only one of startingHashKey and endingHashKey",
        ),
        (
            "parents-not-a-set",
            Spoil::Set("parentShardId", s("shardId-000000000000")),
            "parentShardId is S",
        ),
        (
            "owner-is-a-number",
            Spoil::Set("leaseOwner", n(7)),
            "leaseOwner is N",
        ),
    ];
    for (key, spoil, reason) in &cases {
        let mut item = valid(key);
        match spoil {
            Spoil::Set(name, value) => item.insert((*name).to_owned(), value.clone()),
            Spoil::Remove(name) => item.remove(*name),
        };
        env.raw_put(item).await;
        let err = env.table.get(key).await.unwrap_err();
        assert_corrupt(err, &env.name, key, reason);
        // A write that depends on the owners reads first; one that does
        // not meets the item in the update's answer (written or refused).
        for write in [LeaseWrite::Take { owner: "w".into() }, LeaseWrite::Renew] {
            let err = env.fresh_handle().write(key, 3, write).await.unwrap_err();
            assert_corrupt(err, &env.name, key, reason);
        }
        let err = env.table.list().await.unwrap_err();
        assert!(matches!(err, LeaseError::Corrupt { .. }), "{err}");
        // Repair it for the next case's list.
        env.raw_put(valid(key)).await;
    }
    assert_eq!(env.table.list().await.unwrap().len(), cases.len());
}

#[tokio::test]
async fn other_kcl_entities_in_the_table_are_not_leases() {
    let env = Env::new().await;
    env.raw_put(valid("shardId-000000000000")).await;
    // The KCL 3 keeps coordinator state under other entity types.
    env.raw_put(item([
        ("leaseKey", s("Leader")),
        ("entityType", s("LEADER")),
        ("leaderLockOwner", s("someone")),
    ]))
    .await;
    let listed = env.table.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "shardId-000000000000");
    let err = env.table.get("Leader").await.unwrap_err();
    assert_corrupt(err, &env.name, "Leader", "not a lease");
}
