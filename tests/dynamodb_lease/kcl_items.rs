//! The KCL's item layout both ways: an item written exactly as the KCL
//! writes one reads with every field; every kind of write keeps the
//! attributes only other tools use; items this crate writes have the KCL's
//! attribute names and types; owners moved by the KCL without a counter
//! change (its handoff initiation) are noticed; offsets are refused before
//! anything is sent; long tables are read across scan pages.

use unistream::checkpoint::Position;
use unistream::dynamodb::UnstorableCheckpoint;
use unistream::lease::{HashRange, Lease, LeaseCheckpoint, LeaseError, LeaseTable, LeaseWrite};

use crate::env::{item, n, s, ss, types, Env, Item};

const SEQUENCE: &str = "49590338271490256608559692538361571095921575989136588898";
const MAX_HASH_KEY: &str = "340282366920938463463374607431768211455";

/// Attributes the KCL (or a user) keeps on a lease that the crate does not
/// know: every write must leave them exactly as they are.
fn foreign_attributes() -> Vec<(&'static str, aws_sdk_dynamodb::types::AttributeValue)> {
    vec![
        ("entityType", s("LEASE")),
        (
            "throughputKBps",
            aws_sdk_dynamodb::types::AttributeValue::N("12.5".into()),
        ),
        (
            "pendingCheckpoint",
            s("49590338271490256608559692538361571095921575989136580000"),
        ),
        ("pendingCheckpointSubSequenceNumber", n(2)),
        (
            "pendingCheckpointState",
            aws_sdk_dynamodb::types::AttributeValue::B(vec![1u8, 2, 3].into()),
        ),
        (
            "userNote",
            aws_sdk_dynamodb::types::AttributeValue::M(
                [("by".to_owned(), s("ops"))].into_iter().collect(),
            ),
        ),
    ]
}

/// A lease inside a KPL aggregate, owned, with parents and a hash range,
/// as the KCL's `toDynamoRecord` writes it (plus the foreign attributes).
fn kcl_item(key: &str) -> Item {
    let mut kcl = item([
        ("leaseKey", s(key)),
        ("leaseOwner", s("kcl-worker-1")),
        ("leaseCounter", n(17)),
        ("ownerSwitchesSinceCheckpoint", n(1)),
        ("checkpoint", s(SEQUENCE)),
        ("checkpointSubSequenceNumber", n(5)),
        (
            "parentShardId",
            ss(&["shardId-000000000001", "shardId-000000000000"]),
        ),
        (
            "startingHashKey",
            s("170141183460469231731687303715884105728"),
        ),
        ("endingHashKey", s(MAX_HASH_KEY)),
    ]);
    kcl.extend(item(foreign_attributes()));
    kcl
}

fn assert_foreign_attributes_kept(item: &Item, after: &str) {
    for (name, value) in foreign_attributes() {
        assert_eq!(item.get(name), Some(&value), "{name} after {after}");
    }
}

#[tokio::test]
async fn a_lease_written_by_the_kcl_reads_with_every_field() {
    let env = Env::new().await;
    let key = "shardId-000000000002";
    env.raw_put(kcl_item(key)).await;
    let lease = env.table.get(key).await.unwrap().expect("the lease");
    assert_eq!(lease.key, key);
    assert_eq!(lease.owner.as_deref(), Some("kcl-worker-1"));
    assert_eq!(lease.counter, 17);
    assert_eq!(
        lease.checkpoint,
        LeaseCheckpoint::At(Position::Sequence {
            sequence: SEQUENCE.into(),
            sub: 5
        })
    );
    assert_eq!(lease.owner_switches_since_checkpoint, 1);
    assert_eq!(
        lease.parents,
        vec!["shardId-000000000000", "shardId-000000000001"]
    );
    assert!(lease.children.is_empty());
    assert_eq!(
        lease.hash_range,
        Some(HashRange {
            start: 1 << 127,
            end: u128::MAX
        })
    );
    assert_eq!(lease.checkpoint_owner, None);
    assert_eq!(lease.holder(), Some("kcl-worker-1"));
    assert_eq!(env.table.list().await.unwrap(), vec![lease]);

    // The KCL 3's handoff attribute, and the start sentinels.
    let mut handoff = kcl_item("shardId-000000000003");
    handoff.insert("checkpointOwner".into(), s("kcl-worker-0"));
    handoff.insert("checkpoint".into(), s("AT_TIMESTAMP"));
    handoff.insert("checkpointSubSequenceNumber".into(), n(0));
    env.raw_put(handoff).await;
    let lease = env
        .table
        .get("shardId-000000000003")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.checkpoint, LeaseCheckpoint::AtTimestamp);
    assert_eq!(lease.checkpoint_owner.as_deref(), Some("kcl-worker-0"));
    assert_eq!(lease.holder(), Some("kcl-worker-0"));
    assert!(lease.handoff_pending());
}

#[tokio::test]
async fn every_kind_of_write_keeps_the_attributes_of_other_tools() {
    let env = Env::new().await;
    let key = "shardId-000000000007";
    env.raw_put(kcl_item(key)).await;
    // A handle that has seen nothing, and one that has: both paths.
    for table in [env.fresh_handle(), env.table.clone()] {
        let mut lease = table.get(key).await.unwrap().unwrap();
        let writes = [
            LeaseWrite::Renew,
            LeaseWrite::Take { owner: "a".into() },
            LeaseWrite::RequestHandoff {
                from: "a".into(),
                to: "b".into(),
            },
            LeaseWrite::Release,
            LeaseWrite::RequestHandoff {
                from: "b".into(),
                to: "c".into(),
            },
            LeaseWrite::CancelHandoff,
            LeaseWrite::CancelHandoff,
            LeaseWrite::Take { owner: "c".into() },
            LeaseWrite::Checkpoint(LeaseCheckpoint::At(Position::Sequence {
                sequence: "49590338271490256608559692538361571095921575989136589999".into(),
                sub: 3,
            })),
            LeaseWrite::SetChildren(vec![
                "shardId-000000000009".into(),
                "shardId-000000000008".into(),
            ]),
            LeaseWrite::SetChildren(Vec::new()),
            LeaseWrite::Release,
            LeaseWrite::Release,
            LeaseWrite::Checkpoint(LeaseCheckpoint::At(Position::End)),
        ];
        for write in writes {
            let mut want = write.apply(&lease);
            want.children.sort();
            let written = table
                .write(key, lease.counter, write.clone())
                .await
                .unwrap();
            assert_eq!(written, want, "{write:?}");
            let raw = env.raw_get(key).await.unwrap();
            assert_foreign_attributes_kept(&raw, write.name());
            assert_eq!(env.fresh_handle().get(key).await.unwrap(), Some(want));
            lease = written;
        }
    }
}

#[tokio::test]
async fn created_and_written_items_have_the_kcl_names_and_types() {
    let env = Env::new().await;
    let key = "shardId-000000000004";
    let lease = Lease::new(key, LeaseCheckpoint::TrimHorizon)
        .with_parents(vec!["shardId-000000000001".into()])
        .with_hash_range(HashRange {
            start: 0,
            end: u128::MAX,
        });
    env.table.create(lease).await.unwrap();
    let created = env.raw_get(key).await.unwrap();
    assert_eq!(
        types(&created),
        [
            ("checkpoint", "S"),
            ("checkpointSubSequenceNumber", "N"),
            ("endingHashKey", "S"),
            ("entityType", "S"),
            ("leaseCounter", "N"),
            ("leaseKey", "S"),
            ("ownerSwitchesSinceCheckpoint", "N"),
            ("parentShardId", "SS"),
            ("startingHashKey", "S"),
        ]
        .into_iter()
        .map(|(k, t)| (k.to_owned(), t))
        .collect(),
        "a new lease as the KCL creates one: no owner"
    );
    assert_eq!(created["leaseCounter"], n(0));
    assert_eq!(created["ownerSwitchesSinceCheckpoint"], n(0));
    assert_eq!(created["checkpoint"], s("TRIM_HORIZON"));
    assert_eq!(created["checkpointSubSequenceNumber"], n(0));
    assert_eq!(created["parentShardId"], ss(&["shardId-000000000001"]));
    assert_eq!(created["startingHashKey"], s("0"));
    assert_eq!(created["endingHashKey"], s(MAX_HASH_KEY));
    assert_eq!(created["entityType"], s("LEASE"));

    let table = &env.table;
    let taken = table
        .write(key, 0, LeaseWrite::Take { owner: "w1".into() })
        .await
        .unwrap();
    let checkpointed = table
        .write(
            key,
            taken.counter,
            LeaseWrite::Checkpoint(LeaseCheckpoint::At(Position::Sequence {
                sequence: SEQUENCE.into(),
                sub: 3,
            })),
        )
        .await
        .unwrap();
    let children = table
        .write(
            key,
            checkpointed.counter,
            LeaseWrite::SetChildren(vec!["shardId-000000000005".into()]),
        )
        .await
        .unwrap();
    table
        .write(
            key,
            children.counter,
            LeaseWrite::RequestHandoff {
                from: "w1".into(),
                to: "w2".into(),
            },
        )
        .await
        .unwrap();
    let written = env.raw_get(key).await.unwrap();
    let mut expected_types = types(&created);
    expected_types.insert("leaseOwner".into(), "S");
    expected_types.insert("checkpointOwner".into(), "S");
    expected_types.insert("childShardIds".into(), "SS");
    assert_eq!(types(&written), expected_types);
    assert_eq!(written["leaseCounter"], n(4));
    assert_eq!(written["leaseOwner"], s("w2"));
    assert_eq!(written["checkpointOwner"], s("w1"));
    assert_eq!(written["checkpoint"], s(SEQUENCE));
    assert_eq!(written["checkpointSubSequenceNumber"], n(3));
    assert_eq!(written["ownerSwitchesSinceCheckpoint"], n(0));
    assert_eq!(written["childShardIds"], ss(&["shardId-000000000005"]));

    // SHARD_END is written with sub-sequence 0, as the KCL writes it.
    table
        .write(
            key,
            4,
            LeaseWrite::Checkpoint(LeaseCheckpoint::At(Position::End)),
        )
        .await
        .unwrap();
    let ended = env.raw_get(key).await.unwrap();
    assert_eq!(ended["checkpoint"], s("SHARD_END"));
    assert_eq!(ended["checkpointSubSequenceNumber"], n(0));
}

/// The KCL 3 starts a graceful handoff by setting `leaseOwner` and
/// `checkpointOwner` without incrementing `leaseCounter`.
async fn kcl_initiates_a_handoff(env: &Env, key: &str, from: &str, to: &str) {
    env.client
        .update_item()
        .table_name(&env.name)
        .key("leaseKey", s(key))
        .update_expression("SET leaseOwner = :to, checkpointOwner = :from")
        .expression_attribute_values(":to", s(to))
        .expression_attribute_values(":from", s(from))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn owners_moved_without_a_counter_change_are_noticed_and_the_write_planned_again() {
    let env = Env::new().await;
    for (i, write) in [
        LeaseWrite::Release,
        LeaseWrite::Take { owner: "us".into() },
        LeaseWrite::CancelHandoff,
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("shardId-00000000001{i}");
        env.table
            .create(Lease::new(key.as_str(), LeaseCheckpoint::Latest))
            .await
            .unwrap();
        let held = env
            .table
            .write(&key, 0, LeaseWrite::Take { owner: "us".into() })
            .await
            .unwrap();
        assert_eq!(held.counter, 1);
        // The table saw the lease at counter 1 owned by us, no handoff.
        kcl_initiates_a_handoff(&env, &key, "us", "kcl-worker").await;
        let actual = env.fresh_handle().get(&key).await.unwrap().unwrap();
        assert_eq!(actual.counter, 1);
        assert!(actual.handoff_pending());
        let written = env.table.write(&key, 1, write.clone()).await.unwrap();
        assert_eq!(written, write.apply(&actual), "{write:?}");
        assert_eq!(env.fresh_handle().get(&key).await.unwrap(), Some(written));
    }
}

#[tokio::test]
async fn offsets_are_refused_before_anything_is_sent() {
    let env = Env::new().await;
    let key = "file-0";
    let offset = LeaseCheckpoint::At(Position::Offset(5));
    let err = env
        .table
        .create(Lease::new(key, offset.clone()))
        .await
        .unwrap_err();
    assert_unstorable(&err, key, &offset);
    assert_eq!(env.raw_get(key).await, None, "nothing created");

    env.table
        .create(Lease::new(key, LeaseCheckpoint::TrimHorizon))
        .await
        .unwrap();
    let err = env
        .table
        .write(key, 0, LeaseWrite::Checkpoint(offset.clone()))
        .await
        .unwrap_err();
    assert_unstorable(&err, key, &offset);
    let lease = env.table.get(key).await.unwrap().unwrap();
    assert_eq!(
        (lease.counter, lease.checkpoint),
        (0, LeaseCheckpoint::TrimHorizon),
        "nothing written"
    );
}

fn assert_unstorable(err: &LeaseError, key: &str, checkpoint: &LeaseCheckpoint) {
    let LeaseError::Backend { source, .. } = err else {
        panic!("not a backend error: {err}");
    };
    let unstorable = source
        .downcast_ref::<UnstorableCheckpoint>()
        .unwrap_or_else(|| panic!("not UnstorableCheckpoint: {source}"));
    assert_eq!(unstorable.key, key);
    assert_eq!(&unstorable.checkpoint, checkpoint);
}

#[tokio::test]
async fn a_table_longer_than_one_scan_page_is_listed_whole() {
    let env = Env::new().await;
    // DynamoDB (and moto) return at most 1 MB per scan page: five items of
    // 300 kB of a foreign attribute take at least two.
    let padding = "x".repeat(300_000);
    let mut keys = Vec::new();
    for i in 0..5 {
        let key = format!("shardId-{i:012}");
        let mut kcl = kcl_item(&key);
        kcl.insert("padding".into(), s(&padding));
        env.raw_put(kcl).await;
        keys.push(key);
    }
    let first_page = env
        .client
        .scan()
        .table_name(&env.name)
        .send()
        .await
        .unwrap();
    assert!(
        first_page.last_evaluated_key.is_some(),
        "the table does not span two pages: the test proves nothing"
    );
    let listed: Vec<String> = env
        .table
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(listed, keys);
}
