//! Outputs committed with the checkpoint (`checkpoint_transactional`) on
//! the in-memory lease table, on paused time: every record's output lands
//! exactly once through lost answers, failed requests, workers cut off and
//! lease moves between three workers (with one checkpointer per lease, and
//! with one per worker over all its leases as the leased `KinesisSource`
//! reads); groups are split at record
//! boundaries where one transaction cannot hold them; a record that fits
//! no transaction is a typed error that writes nothing; a fenced partition
//! writes nothing and ends alone; outputs behind a missing token wait; a
//! partition taken again by the same worker (a new control, tokens from 0
//! again) commits every record of its new lease and none of its old one's
//! late records.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::task::JoinHandle;
use unistream::checkpoint::{
    CheckpointError, CheckpointToken, FencingToken, PartitionControl, Position, TransactionCommit,
    TransactionalStreamExt,
};
use unistream::lease::{
    AcquiredLease, FaultyLeaseTable, Lease, LeaseCheckpoint, LeaseConfig, LeaseFaults, LeaseWorker,
    MemoryLeaseTable, MemoryOutput, TransactionalLeaseTable,
};
use unistream::Error;

fn seed(name: &str) -> u64 {
    let seed = std::env::var("UNISTREAM_SEED")
        .ok()
        .map(|s| s.trim().parse().expect("UNISTREAM_SEED is a u64"))
        .unwrap_or_else(|| fastrand::u64(..));
    println!("{name}: seed {seed} (run again with UNISTREAM_SEED={seed})");
    seed
}

fn output(key: &str, value: &str) -> MemoryOutput {
    MemoryOutput {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

fn checkpoint_of(memory: &MemoryLeaseTable, key: &str) -> LeaseCheckpoint {
    memory
        .snapshot()
        .into_iter()
        .find(|l| l.key == key)
        .map(|l| l.checkpoint)
        .expect("the lease exists")
}

/// Reads every partition a worker acquires as offsets after its checkpoint
/// up to `records`, one every `every`; each record's one output is
/// `"{partition}/{offset}"` = the worker's name, committed every 10
/// records (or 300 ms) with the checkpoint. A partition read to its end
/// waits for its lease to be drained; a fenced one is dropped. Errors of
/// the pipeline (anything but fencing) go to `errors`.
fn spawn_consumer<T>(
    worker: &LeaseWorker<T>,
    records: u64,
    every: Duration,
    errors: Arc<Mutex<Vec<String>>>,
) -> JoinHandle<()>
where
    T: TransactionalLeaseTable<Output = MemoryOutput>,
{
    let mut acquired = worker.acquired().expect("one consumer per worker");
    let store = worker.checkpoint_store();
    let name = worker.id().to_owned();
    tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        while let Some(lease) = acquired.next().await {
            let (store, name, errors) = (store.clone(), name.clone(), errors.clone());
            tasks.spawn(read_partition(lease, store, name, records, every, errors));
        }
        while tasks.join_next().await.is_some() {}
    })
}

async fn read_partition<S>(
    lease: AcquiredLease,
    store: S,
    name: String,
    records: u64,
    every: Duration,
    errors: Arc<Mutex<Vec<String>>>,
) where
    S: unistream::checkpoint::TransactionalCheckpointStore<Output = MemoryOutput>,
{
    let key = lease.key().to_owned();
    let start = match &lease.lease().checkpoint {
        LeaseCheckpoint::At(Position::Offset(offset)) => *offset,
        _ => 0,
    };
    let control = lease.control().clone();
    let yielded = Arc::new(AtomicU64::new(0));
    let stop = control.clone();
    let input = {
        let (key, control, yielded) = (key.clone(), control.clone(), yielded.clone());
        futures::stream::iter(start + 1..=records)
            .then(move |offset| async move {
                tokio::time::sleep(every).await;
                offset
            })
            .take_until(async move { stop.stopped().await })
            .map(move |offset| {
                let seq = yielded.fetch_add(1, Ordering::SeqCst);
                let token = CheckpointToken::new(key.as_str(), Position::Offset(offset), seq)
                    .with_control(control.clone());
                Ok::<_, Error>((vec![output(&format!("{key}/{offset}"), &name)], token))
            })
    };
    let ended = input
        .checkpoint_transactional(10, Duration::from_millis(300), store)
        .try_for_each(|_| async { Ok(()) })
        .await;
    if let Err(err) = ended {
        errors.lock().unwrap().push(format!("{key}: {err}"));
        return;
    }
    if control.is_fenced() {
        return;
    }
    // Read to the end, or drained: stay until the worker lets go.
    control.stopped().await;
    if !control.is_fenced() {
        lease.stopped(yielded.load(Ordering::SeqCst));
    }
}

/// Like [`spawn_consumer`], but as the leased `KinesisSource` reads: the
/// partitions a worker acquires are merged into one stream with one
/// checkpointer, which sees a partition again when the worker takes it
/// again.
fn spawn_merged_consumer<T>(
    worker: &LeaseWorker<T>,
    records: u64,
    every: Duration,
    errors: Arc<Mutex<Vec<String>>>,
) -> JoinHandle<()>
where
    T: TransactionalLeaseTable<Output = MemoryOutput>,
{
    let acquired = worker.acquired().expect("one consumer per worker");
    let store = worker.checkpoint_store();
    let name = worker.id().to_owned();
    tokio::spawn(async move {
        let partitions = acquired.map(move |lease| partition_records(lease, &name, records, every));
        let ended = partitions
            .flatten_unordered(None)
            .checkpoint_transactional(10, Duration::from_millis(300), store)
            .try_for_each(|_| async { Ok(()) })
            .await;
        if let Err(err) = ended {
            errors.lock().unwrap().push(format!("merged: {err}"));
        }
    })
}

/// The records of one acquired lease, one every `every` after its
/// checkpoint up to `records`, until its control stops; then (read to
/// the end, or drained) the lease is reported stopped once the control
/// stops, or dropped when fenced.
fn partition_records(
    lease: AcquiredLease,
    name: &str,
    records: u64,
    every: Duration,
) -> futures::stream::BoxStream<'static, Item> {
    let key = lease.key().to_owned();
    let start = match &lease.lease().checkpoint {
        LeaseCheckpoint::At(Position::Offset(offset)) => *offset,
        _ => 0,
    };
    let control = lease.control().clone();
    let yielded = Arc::new(AtomicU64::new(0));
    let name = name.to_owned();
    let (stop, end) = (control.clone(), control.clone());
    let counted = yielded.clone();
    futures::stream::iter(start + 1..=records)
        .then(move |offset| async move {
            tokio::time::sleep(every).await;
            offset
        })
        .take_until(async move { stop.stopped().await })
        .map(move |offset| {
            let seq = counted.fetch_add(1, Ordering::SeqCst);
            let token = CheckpointToken::new(key.as_str(), Position::Offset(offset), seq)
                .with_control(control.clone());
            Ok::<_, Error>((vec![output(&format!("{key}/{offset}"), &name)], token))
        })
        .chain(
            futures::stream::once(async move {
                end.stopped().await;
                if !end.is_fenced() {
                    lease.stopped(yielded.load(Ordering::SeqCst));
                }
            })
            .filter_map(|()| async { None }),
        )
        .boxed()
}

#[tokio::test(start_paused = true)]
async fn outputs_land_exactly_once_through_lost_answers_and_lease_moves() {
    exactly_once_through_faults(
        "outputs_land_exactly_once_through_lost_answers_and_lease_moves",
        false,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn outputs_land_exactly_once_with_one_checkpointer_per_worker() {
    exactly_once_through_faults(
        "outputs_land_exactly_once_with_one_checkpointer_per_worker",
        true,
    )
    .await;
}

/// Three workers over four partitions of 300 records, with lost answers
/// and failed requests, two workers cut off for 20 s one after the other:
/// every output once.
/// `merged`: one checkpointer per worker over all its leases
/// ([`spawn_merged_consumer`]); else one per lease.
async fn exactly_once_through_faults(name: &str, merged: bool) {
    const PARTITIONS: usize = 4;
    const RECORDS: u64 = 300;
    let seed = seed(name);
    let memory = MemoryLeaseTable::new("leases");
    for p in 0..PARTITIONS {
        memory.put(Lease::new(format!("p{p}"), LeaseCheckpoint::TrimHorizon));
    }
    let faults = LeaseFaults {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(20),
        fail: 0.05,
        lost_answer: 0.15,
    };
    let errors = Arc::new(Mutex::new(Vec::new()));
    // 30 s of records per partition: they are still flowing when leases
    // come back to a worker that held them before.
    let every = Duration::from_millis(100);
    let mut workers = Vec::new();
    let mut consumers = Vec::new();
    let mut tables = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let table = FaultyLeaseTable::new(memory.clone(), seed.wrapping_add(i as u64));
        table.set_faults(faults.clone());
        let worker = LeaseWorker::start(
            table.clone(),
            name,
            LeaseConfig::new().seed(seed.wrapping_add(10 + i as u64)),
        );
        consumers.push(if merged {
            spawn_merged_consumer(&worker, RECORDS, every, errors.clone())
        } else {
            spawn_consumer(&worker, RECORDS, every, errors.clone())
        });
        workers.push(worker);
        tables.push(table);
        match name {
            // b joins after a holds everything: leases move by handoff.
            "a" => tokio::time::sleep(Duration::from_secs(2)).await,
            // a is cut off for 20 s: its leases expire and move to b and c.
            "b" => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                tables[0].set_cut_off(true);
            }
            _ => {}
        }
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    tables[0].set_cut_off(false);
    // Then b for 20 s: its leases move to a and c, a taking back some it
    // held before.
    tables[1].set_cut_off(true);
    tokio::time::sleep(Duration::from_secs(20)).await;
    tables[1].set_cut_off(false);

    let all = PARTITIONS * RECORDS as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while memory.outputs().len() < all
        || (0..PARTITIONS).any(|p| {
            checkpoint_of(&memory, &format!("p{p}"))
                != LeaseCheckpoint::At(Position::Offset(RECORDS))
        })
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not done in 10 minutes: {} of {all} outputs",
            memory.outputs().len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let outputs = memory.outputs();
    let repeated: Vec<_> = outputs.iter().filter(|(_, o)| o.writes != 1).collect();
    assert!(
        repeated.is_empty(),
        "outputs written more than once: {repeated:?}"
    );
    for p in 0..PARTITIONS {
        for offset in 1..=RECORDS {
            assert!(
                outputs.contains_key(&format!("p{p}/{offset}")),
                "p{p}/{offset} missing"
            );
        }
    }
    let writers: BTreeSet<&str> = outputs.values().map(|o| o.value.as_str()).collect();
    assert!(
        writers.len() >= 2,
        "leases moved between workers: {writers:?}"
    );
    let injected: u64 = tables.iter().map(|t| t.requests().writes).sum();
    assert!(injected > 0);
    assert!(
        errors.lock().unwrap().is_empty(),
        "{:?}",
        errors.lock().unwrap()
    );
    for worker in &workers {
        worker.shutdown();
    }
    for consumer in consumers {
        consumer.abort();
    }
}

/// One worker holding `keys`, without faults.
async fn holder(
    keys: &[&str],
) -> (
    MemoryLeaseTable,
    LeaseWorker<MemoryLeaseTable>,
    Vec<AcquiredLease>,
) {
    let memory = MemoryLeaseTable::new("leases");
    for key in keys {
        memory.put(Lease::new(*key, LeaseCheckpoint::TrimHorizon));
    }
    let worker = LeaseWorker::start(memory.clone(), "a", LeaseConfig::new().seed(1));
    let mut acquired = worker.acquired().unwrap();
    let mut leases = Vec::new();
    for _ in keys {
        leases.push(acquired.next().await.expect("a takes every lease"));
    }
    leases.sort_by(|x, y| x.key().cmp(y.key()));
    (memory, worker, leases)
}

type Item = Result<(Vec<MemoryOutput>, CheckpointToken), Error>;

fn record(control: &PartitionControl, key: &str, seq: u64, outputs: Vec<MemoryOutput>) -> Item {
    let token =
        CheckpointToken::new(key, Position::Offset(seq + 1), seq).with_control(control.clone());
    Ok((outputs, token))
}

async fn commits(
    items: Vec<Item>,
    worker: &LeaseWorker<MemoryLeaseTable>,
) -> Vec<Result<TransactionCommit, Error>> {
    futures::stream::iter(items)
        .checkpoint_transactional(1_000, Duration::from_secs(60), worker.checkpoint_store())
        .collect()
        .await
}

#[tokio::test(start_paused = true)]
async fn a_group_is_split_at_record_boundaries_and_a_record_that_fits_no_transaction_is_refused() {
    let (memory, worker, leases) = holder(&["p0"]).await;
    let control = leases[0].control().clone();

    // 150 records of one output: 99 fit one transaction besides the lease.
    let items = (0..150)
        .map(|seq| record(&control, "p0", seq, vec![output(&format!("k{seq}"), "v")]))
        .collect();
    let done = commits(items, &worker).await;
    let commit = done[0].as_ref().expect("committed");
    assert_eq!(done.len(), 1);
    assert_eq!(
        (
            commit.records,
            commit.outputs,
            commit.transactions,
            &commit.position
        ),
        (150, 150, 2, &Position::Offset(150))
    );
    assert_eq!(memory.outputs().len(), 150);
    assert_eq!(
        checkpoint_of(&memory, "p0"),
        LeaseCheckpoint::At(Position::Offset(150))
    );

    // Tokens number from 0 per run: a second pipeline run starts again.
    // Two records writing one key: two transactions.
    let items = vec![
        record(&control, "p0", 0, vec![output("shared", "1")]),
        record(&control, "p0", 1, vec![output("shared", "2")]),
    ];
    let done = commits(items, &worker).await;
    assert_eq!(done[0].as_ref().unwrap().transactions, 2);
    assert_eq!(memory.outputs()["shared"].writes, 2);
    assert_eq!(memory.outputs()["shared"].value, "2");

    // A record with 100 outputs fits no transaction: refused, typed,
    // nothing of it written, the checkpoint where it was.
    let before = memory.outputs().len();
    let checkpoint = checkpoint_of(&memory, "p0");
    let big = (0..100).map(|i| output(&format!("big{i}"), "v")).collect();
    let done = commits(vec![record(&control, "p0", 0, big)], &worker).await;
    assert!(
        matches!(&done[..], [Err(Error::Checkpoint(CheckpointError::Transaction { partition, .. }))] if partition == "p0"),
        "{done:?}"
    );
    // A record writing one key twice cannot be one transaction either.
    let twice = vec![output("x", "1"), output("x", "2")];
    let done = commits(vec![record(&control, "p0", 0, twice)], &worker).await;
    assert!(
        matches!(
            &done[..],
            [Err(Error::Checkpoint(CheckpointError::Transaction { .. }))]
        ),
        "{done:?}"
    );
    assert_eq!(memory.outputs().len(), before);
    assert_eq!(checkpoint_of(&memory, "p0"), checkpoint);
    drop(leases);
}

#[tokio::test(start_paused = true)]
async fn a_fenced_partition_writes_nothing_and_the_others_go_on() {
    let (memory, worker, leases) = holder(&["p0", "p1"]).await;
    let (c0, c1) = (leases[0].control().clone(), leases[1].control().clone());
    // p1 is taken by another worker behind a's back.
    let mut stolen = memory
        .snapshot()
        .into_iter()
        .find(|l| l.key == "p1")
        .unwrap();
    stolen.owner = Some("intruder".into());
    stolen.counter += 10;
    memory.put(stolen);

    let items = vec![
        record(&c0, "p0", 0, vec![output("p0/1", "a")]),
        record(&c1, "p1", 0, vec![output("p1/1", "a")]),
        record(&c0, "p0", 1, vec![output("p0/2", "a")]),
        record(&c1, "p1", 1, vec![output("p1/2", "a")]),
    ];
    let done = commits(items, &worker).await;
    let committed: Vec<_> = done
        .into_iter()
        .map(|c| c.expect("fencing ends the partition, not the stream"))
        .collect();
    assert_eq!(committed.len(), 1, "{committed:?}");
    assert_eq!(committed[0].partition, "p0");
    let keys: Vec<String> = memory.outputs().into_keys().collect();
    assert_eq!(keys, vec!["p0/1".to_owned(), "p0/2".to_owned()]);
    assert!(c1.is_fenced());
    assert_eq!(checkpoint_of(&memory, "p1"), LeaseCheckpoint::TrimHorizon);
    drop(leases);
}

#[tokio::test(start_paused = true)]
async fn outputs_behind_a_missing_token_wait_for_it_and_are_not_written_without_it() {
    let (memory, worker, leases) = holder(&["p0"]).await;
    let control = leases[0].control().clone();
    // seq 1 before seq 0: committed together, in order, at seq 1's position.
    let items = vec![
        record(&control, "p0", 1, vec![output("second", "v")]),
        record(&control, "p0", 0, vec![output("first", "v")]),
    ];
    let done = commits(items, &worker).await;
    let commit = done[0].as_ref().unwrap();
    assert_eq!(
        (commit.records, &commit.position),
        (2, &Position::Offset(2))
    );

    // seq 0 never arrives: seq 1's output is not written, nothing moves.
    let before = memory.outputs().len();
    let done = commits(
        vec![record(&control, "p0", 1, vec![output("orphan", "v")])],
        &worker,
    )
    .await;
    assert!(done.is_empty(), "{done:?}");
    assert_eq!(memory.outputs().len(), before);
    assert!(!memory.outputs().contains_key("orphan"));
    assert_eq!(
        checkpoint_of(&memory, "p0"),
        LeaseCheckpoint::At(Position::Offset(2))
    );
    drop(leases);
}

/// The records of `control` (one output each, `"{name}{seq}"`), seq
/// `from..to`.
fn run_of(control: &PartitionControl, name: &str, from: u64, to: u64) -> Vec<Item> {
    (from..to)
        .map(|seq| {
            record(
                control,
                "p0",
                seq,
                vec![output(&format!("{name}{seq}"), name)],
            )
        })
        .collect()
}

/// What one checkpointer over a worker's leases (the leased
/// `KinesisSource`: one stream for every lease) sees when the worker
/// takes a partition again: a new control, tokens numbered from 0 again,
/// and perhaps late records of the old lease.
async fn read_again(old_ends: impl FnOnce(&PartitionControl)) -> (MemoryLeaseTable, Vec<String>) {
    let (memory, worker, leases) = holder(&["p0"]).await;
    let first = leases[0].control().clone();
    let again = first.leased_sibling(FencingToken::new("p0", "a", leases[0].epoch() + 1));
    let (tx, rx) = futures::channel::mpsc::unbounded::<Item>();
    let committing = tokio::spawn(
        rx.checkpoint_transactional(1_000, Duration::from_secs(60), worker.checkpoint_store())
            .try_collect::<Vec<_>>(),
    );
    for item in run_of(&first, "first", 0, 4) {
        tx.unbounded_send(item).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    first.request_checkpoint();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        first.durable_tokens(),
        Some(4),
        "the first lease's records committed"
    );
    old_ends(&first);
    for item in run_of(&again, "again", 0, 6) {
        tx.unbounded_send(item).unwrap();
    }
    // A record of the first lease still in flight when it was lost.
    for item in run_of(&first, "late", 4, 5) {
        tx.unbounded_send(item).unwrap();
    }
    drop(tx);
    committing.await.unwrap().expect("every commit lands");
    assert_eq!(
        again.durable_tokens(),
        Some(6),
        "the new control learns what is durable"
    );
    let keys = memory.outputs().into_keys().collect();
    drop(leases);
    (memory, keys)
}

/// The first lease's four records and the new lease's six; never the late
/// one: the new lease was read from its checkpoint, so it reads that
/// record again itself.
fn expected() -> Vec<String> {
    let mut keys: Vec<String> = (0..4)
        .map(|s| format!("first{s}"))
        .chain((0..6).map(|s| format!("again{s}")))
        .collect();
    keys.sort();
    keys
}

#[tokio::test(start_paused = true)]
async fn a_partition_read_again_under_a_new_lease_commits_every_record_of_it() {
    // Handed over (drained), then taken again.
    let (memory, keys) = read_again(PartitionControl::drain).await;
    assert_eq!(keys, expected());
    assert_eq!(
        checkpoint_of(&memory, "p0"),
        LeaseCheckpoint::At(Position::Offset(6))
    );
}

#[tokio::test(start_paused = true)]
async fn a_partition_taken_again_after_its_lease_was_lost_commits_the_new_leases_records() {
    let (memory, keys) = read_again(PartitionControl::fence).await;
    assert_eq!(keys, expected(), "nothing of the lost lease after its loss");
    assert_eq!(
        checkpoint_of(&memory, "p0"),
        LeaseCheckpoint::At(Position::Offset(6))
    );
}
