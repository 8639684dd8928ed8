//! Property test: random sequences of creates, writes (with right and
//! wrong expected counters), gets and lists give the same results and the
//! same leases on `DynamoDbLeaseTable` as on `MemoryLeaseTable`, the
//! reference semantics.
//!
//! Every case uses its own keys in one table. Writes go through either a
//! handle that has seen the leases (planned from what it saw) or a fresh
//! handle of the same table (which reads the lease first), so both paths
//! are compared. The seed is printed; `PROPTEST_RNG_SEED=<seed>` repeats a
//! run, `PROPTEST_CASES` changes its length, and proptest persists failures
//! in `model.proptest-regressions` beside this file (replayed first).

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestRunner};
use unistream::checkpoint::Position;
use unistream::lease::{
    Created, HashRange, Lease, LeaseCheckpoint, LeaseError, LeaseTable, LeaseWrite,
    MemoryLeaseTable,
};

use crate::env::Env;

const KEYS: usize = 3;
const OWNERS: [&str; 3] = ["w1", "w2", "w3"];

#[derive(Debug, Clone)]
enum Expected {
    /// The counter the reference table has now (0 for a missing lease).
    Current,
    /// That plus this.
    Above(u64),
    /// That minus this (when it is that large; `Above` otherwise).
    Below(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Create(usize, Lease),
    Write {
        key: usize,
        expected: Expected,
        write: LeaseWrite,
        fresh_handle: bool,
    },
    Get(usize),
    List,
}

fn owner() -> impl Strategy<Value = String> {
    prop::sample::select(&OWNERS[..]).prop_map(str::to_owned)
}

fn checkpoint() -> impl Strategy<Value = LeaseCheckpoint> {
    prop_oneof![
        Just(LeaseCheckpoint::TrimHorizon),
        Just(LeaseCheckpoint::Latest),
        Just(LeaseCheckpoint::AtTimestamp),
        Just(LeaseCheckpoint::At(Position::End)),
        ("[0-9]{1,56}", prop_oneof![Just(0u64), any::<u64>()]).prop_map(|(sequence, sub)| {
            LeaseCheckpoint::At(Position::Sequence {
                sequence: sequence.into(),
                sub,
            })
        }),
    ]
}

/// A set of shard ids as the table stores one: sorted, no duplicates.
fn shard_set() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("shardId-00[0-9]", 0..3).prop_map(|set| set.into_iter().collect())
}

fn lease() -> impl Strategy<Value = Lease> {
    (
        checkpoint(),
        prop::option::of(owner()),
        prop::option::of(owner()),
        0u64..3,
        0u64..1000,
        shard_set(),
        shard_set(),
        prop::option::of((any::<u128>(), any::<u128>())),
    )
        .prop_map(
            |(checkpoint, owner, checkpoint_owner, counter, switches, parents, children, range)| {
                let mut lease = Lease::new("", checkpoint).with_parents(parents);
                lease.owner = owner;
                lease.checkpoint_owner = checkpoint_owner;
                lease.counter = counter;
                lease.owner_switches_since_checkpoint = switches;
                lease.children = children;
                lease.hash_range = range.map(|(a, b)| HashRange {
                    start: a.min(b),
                    end: a.max(b),
                });
                lease
            },
        )
}

fn write() -> impl Strategy<Value = LeaseWrite> {
    prop_oneof![
        3 => Just(LeaseWrite::Renew),
        3 => owner().prop_map(|owner| LeaseWrite::Take { owner }),
        2 => (owner(), owner()).prop_map(|(from, to)| LeaseWrite::RequestHandoff { from, to }),
        2 => Just(LeaseWrite::CancelHandoff),
        3 => Just(LeaseWrite::Release),
        2 => checkpoint().prop_map(LeaseWrite::Checkpoint),
        1 => shard_set().prop_map(LeaseWrite::SetChildren),
    ]
}

fn expected() -> impl Strategy<Value = Expected> {
    prop_oneof![
        4 => Just(Expected::Current),
        1 => (1u64..3).prop_map(Expected::Above),
        1 => (1u64..3).prop_map(Expected::Below),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..KEYS, lease()).prop_map(|(key, lease)| Op::Create(key, lease)),
        8 => (0..KEYS, expected(), write(), any::<bool>()).prop_map(
            |(key, expected, write, fresh_handle)| Op::Write { key, expected, write, fresh_handle }
        ),
        1 => (0..KEYS).prop_map(Op::Get),
        1 => Just(Op::List),
    ]
}

/// A result in a form both tables must agree on exactly.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Written(Lease),
    Conflict {
        key: String,
        expected: u64,
        current: Option<Lease>,
    },
}

fn outcome(result: Result<Lease, LeaseError>) -> Result<Outcome, String> {
    match result {
        Ok(lease) => Ok(Outcome::Written(lease)),
        Err(LeaseError::Conflict {
            key,
            expected,
            current,
            ..
        }) => Ok(Outcome::Conflict {
            key,
            expected,
            current: current.map(|b| *b),
        }),
        Err(other) => Err(format!("{other}: {:?}", std::error::Error::source(&other))),
    }
}

static CASE: AtomicU64 = AtomicU64::new(0);

async fn run_case(env: &Env, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    let keys: Vec<String> = (0..KEYS)
        .map(|k| format!("case{case}-shardId-{k:012}"))
        .collect();
    let prefix = format!("case{case}-");
    let reference = MemoryLeaseTable::new("reference");
    let table = &env.table;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Create(k, mut lease) => {
                lease.key = keys[k].clone();
                let want = reference.create(lease.clone()).await.unwrap();
                let got = table.create(lease.clone()).await;
                let got = got.map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
                prop_assert_eq!(got, want, "step {}: create {:?}", step, lease);
                prop_assert!(matches!(want, Created::Created | Created::Exists));
            }
            Op::Write {
                key: k,
                expected,
                write,
                fresh_handle,
            } => {
                let current = reference
                    .get(&keys[k])
                    .await
                    .unwrap()
                    .map_or(0, |l| l.counter);
                let counter = match expected {
                    Expected::Current => current,
                    Expected::Above(d) => current + d,
                    Expected::Below(d) if current >= d => current - d,
                    Expected::Below(d) => current + d,
                };
                let want = outcome(reference.write(&keys[k], counter, write.clone()).await)
                    .map_err(TestCaseError::fail)?;
                let result = if fresh_handle {
                    env.fresh_handle()
                        .write(&keys[k], counter, write.clone())
                        .await
                } else {
                    table.write(&keys[k], counter, write.clone()).await
                };
                let got = outcome(result)
                    .map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
                prop_assert_eq!(
                    got,
                    want,
                    "step {}: write {:?} at counter {} (fresh handle: {})",
                    step,
                    write,
                    counter,
                    fresh_handle
                );
            }
            Op::Get(k) => {
                let want = reference.get(&keys[k]).await.unwrap();
                let got = table
                    .get(&keys[k])
                    .await
                    .map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
                prop_assert_eq!(got, want, "step {}: get", step);
            }
            Op::List => {
                let want = reference.list().await.unwrap();
                let got: Vec<Lease> = table
                    .list()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?
                    .into_iter()
                    .filter(|l| l.key.starts_with(&prefix))
                    .collect();
                prop_assert_eq!(got, want, "step {}: list", step);
            }
        }
    }
    // Finally every lease, read consistently, is the reference's.
    for key in &keys {
        let want = reference.get(key).await.unwrap();
        let got = env.fresh_handle().get(key).await.unwrap();
        prop_assert_eq!(got, want, "final state of {}", key);
    }
    Ok(())
}

fn seed() -> u64 {
    std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

#[test]
fn random_creates_and_writes_match_the_memory_table() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = runtime.block_on(Env::new());
    let seed = seed();
    println!("model seed {seed} (PROPTEST_RNG_SEED={seed} repeats it)");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let mut runner = TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..30), |ops| {
        runtime.block_on(run_case(&env, ops))
    });
    if let Err(err) = result {
        panic!("{err} (seed {seed})");
    }
}
