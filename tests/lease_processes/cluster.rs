//! The parent's side: a stream on kinesis-mock, a lease table on moto,
//! worker processes started, stopped, killed, frozen and resumed, a
//! producer of numbered records, and what the workers logged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use unistream::checkpoint::{Position, SequenceNumber};
use unistream::dynamodb::DynamoDbLeaseTable;
use unistream::lease::{Lease, LeaseCheckpoint, LeaseTable};

pub use super::worker::now_millis;
use super::worker::{Timings, WorkerEnv};
use crate::support::child;
use crate::support::emulators::{kinesis_mock, moto, sdk_config, unique_name};
use crate::support::kinesis::emulator_stream::{create_stream, put_ids_keyed, wait_active};

/// One record handled by a worker process, as it logged it.
#[derive(Debug, Clone)]
pub struct Handled {
    pub millis: u64,
    pub worker: String,
    pub shard: String,
    pub sequence: SequenceNumber,
    pub id: u64,
}

/// A stream, its lease table and the worker processes reading it.
pub struct Cluster {
    pub stream: String,
    pub kinesis: aws_sdk_kinesis::Client,
    pub table: DynamoDbLeaseTable,
    table_name: String,
    dir: tempfile::TempDir,
    workers: Mutex<HashMap<String, Child>>,
    seed: u64,
    timings: Timings,
    started: AtomicU64,
    /// The table of the workers' effects, when they commit them with their
    /// checkpoints (see [`with_outputs`](Self::with_outputs)).
    outputs: Option<String>,
}

impl Cluster {
    /// A new stream of `shards` shards and a new lease table; no workers.
    pub async fn new(prefix: &str, shards: i32, seed: u64) -> Self {
        Self::with_timings(prefix, shards, seed, Timings::Short).await
    }

    /// [`new`](Self::new), the workers running with `timings`.
    pub async fn with_timings(prefix: &str, shards: i32, seed: u64, timings: Timings) -> Self {
        let kinesis = aws_sdk_kinesis::Client::new(&sdk_config(kinesis_mock()).await);
        let stream = unique_name(prefix);
        create_stream(&kinesis, &stream, shards).await;
        wait_active(&kinesis, &stream).await;
        let table_name = unique_name(&format!("{prefix}-leases"));
        let table = DynamoDbLeaseTable::new(&sdk_config(moto()).await, table_name.as_str());
        table.create_table_if_missing().await.unwrap();
        Self {
            stream,
            kinesis,
            table,
            table_name,
            dir: {
                let dir = tempfile::tempdir().unwrap();
                if std::env::var_os("UNISTREAM_WORKER_LOG").is_some() {
                    // Kept for reading the workers' traces afterwards.
                    let mut dir = dir;
                    dir.disable_cleanup(true);
                    println!("worker logs and traces in {}", dir.path().display());
                    dir
                } else {
                    dir
                }
            },
            workers: Mutex::new(HashMap::new()),
            seed,
            timings,
            started: AtomicU64::new(0),
            outputs: None,
        }
    }

    /// [`new`](Self::new), with workers that commit each record's effect
    /// (an increment of `writes` on the item of its id in a new table)
    /// with their checkpoints, in one transaction.
    pub async fn with_outputs(prefix: &str, shards: i32, seed: u64) -> Self {
        let mut cluster = Self::new(prefix, shards, seed).await;
        let name = unique_name(&format!("{prefix}-outputs"));
        for table in output_tables(&name) {
            cluster
                .table
                .client()
                .create_table()
                .table_name(&table)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("id")
                        .attribute_type(ScalarAttributeType::N)
                        .build()
                        .unwrap(),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("id")
                        .key_type(KeyType::Hash)
                        .build()
                        .unwrap(),
                )
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
                .unwrap();
        }
        cluster.outputs = Some(name);
        cluster
    }

    /// `writes` per record id in the output tables.
    pub async fn output_writes(&self) -> BTreeMap<u64, u64> {
        let name = self.outputs.as_deref().expect("a cluster with outputs");
        let mut writes = BTreeMap::new();
        for table in output_tables(name) {
            let mut start = None;
            loop {
                let page = self
                    .table
                    .client()
                    .scan()
                    .table_name(&table)
                    .consistent_read(true)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .unwrap();
                for item in page.items() {
                    let id = item["id"].as_n().unwrap().parse().unwrap();
                    let count = item["writes"].as_n().unwrap().parse().unwrap();
                    writes.insert(id, count);
                }
                match page.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => break,
                }
            }
        }
        writes
    }

    /// [`new`](Self::new) with records produced at 200 a second and
    /// workers `a`, `b` and `c` started and balanced.
    pub async fn three_balanced(prefix: &str, shards: usize, seed: u64) -> (Self, Producer) {
        let cluster = Self::new(prefix, shards as i32, seed).await;
        let producer = cluster.produce(200);
        for worker in ["a", "b", "c"] {
            cluster.start(worker);
        }
        cluster
            .until_balanced(shards, Duration::from_secs(90))
            .await;
        (cluster, producer)
    }

    /// Starts a worker process named `worker` (a name may be reused after
    /// its process is gone: a restart under the same name).
    pub fn start(&self, worker: &str) {
        let mut workers = self.workers.lock().unwrap();
        assert!(!workers.contains_key(worker), "{worker} already runs");
        let started = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let env = WorkerEnv {
            worker: worker.to_owned(),
            stream: self.stream.clone(),
            table: self.table_name.clone(),
            kinesis_endpoint: kinesis_mock().endpoint(),
            dynamodb_endpoint: moto().endpoint(),
            dir: self.dir.path().to_owned(),
            seed: self.seed.wrapping_add(started),
            timings: self.timings,
            outputs: self.outputs.clone(),
        };
        let module = module_path!().replace("::cluster", "::worker");
        let mut command = child::command(&module, "lease_worker_process");
        command
            .envs(env.vars())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let process = command.spawn().expect("start a worker process");
        workers.insert(worker.to_owned(), process);
    }

    /// The names of the running workers.
    pub fn running(&self) -> Vec<String> {
        let mut names: Vec<String> = self.workers.lock().unwrap().keys().cloned().collect();
        names.sort();
        names
    }

    /// SIGKILL: the process is gone when this returns.
    pub fn kill(&self, worker: &str) {
        let mut process = self.take(worker);
        process.kill().unwrap();
        process.wait().unwrap();
    }

    /// SIGTERM, then waits (up to `limit`) for the graceful stop; panics
    /// unless the process exited with success.
    pub async fn stop(&self, worker: &str, limit: Duration) {
        let mut process = self.take(worker);
        signal(&process, libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(status) = process.try_wait().unwrap() {
                assert!(status.success(), "{worker} stopped with {status}");
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{worker} did not stop within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGSTOP: the process is frozen (its clocks run on).
    pub fn freeze(&self, worker: &str) {
        signal(&self.workers.lock().unwrap()[worker], libc::SIGSTOP);
    }

    /// SIGCONT.
    pub fn resume(&self, worker: &str) {
        signal(&self.workers.lock().unwrap()[worker], libc::SIGCONT);
    }

    /// Panics if a worker process ended without being told to.
    pub fn check_alive(&self) {
        for (name, process) in self.workers.lock().unwrap().iter_mut() {
            if let Some(status) = process.try_wait().unwrap() {
                panic!("worker {name} ended on its own: {status}");
            }
        }
    }

    fn take(&self, worker: &str) -> Child {
        self.workers
            .lock()
            .unwrap()
            .remove(worker)
            .unwrap_or_else(|| panic!("{worker} is not running"))
    }

    /// Every lease in the table.
    pub async fn leases(&self) -> Vec<Lease> {
        self.table.list().await.unwrap()
    }

    /// The leases each owner holds (unowned leases under `""`).
    pub async fn owners(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for lease in self.leases().await {
            out.entry(lease.owner.clone().unwrap_or_default())
                .or_default()
                .push(lease.key);
        }
        out
    }

    /// Every record every worker process logged, in log order per process.
    pub fn handled(&self) -> Vec<Handled> {
        read_logs(self.dir.path())
    }

    /// The `Debug` text of the metrics of every worker process that
    /// stopped gracefully, by file name.
    pub fn metrics(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "metrics") {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                out.insert(name, std::fs::read_to_string(&path).unwrap());
            }
        }
        out
    }

    /// Waits (up to `limit`) until the running workers hold `leases`
    /// leases in balance (see [`balanced`]); returns how long it took.
    pub async fn until_balanced(&self, leases: usize, limit: Duration) -> Duration {
        let running = self.running();
        let start = Instant::now();
        loop {
            self.check_alive();
            let owners = self.owners().await;
            if balanced(&owners, &running, leases) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "not balanced within {limit:?}: {running:?} running, the table has {owners:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops `producer`, waits (up to `limit`) until every record it put
    /// was handled, and returns how many it put and everything handled.
    pub async fn drain(&self, producer: Producer, limit: Duration) -> (u64, Vec<Handled>) {
        let produced = producer.finish().await;
        let start = Instant::now();
        loop {
            self.check_alive();
            let handled = self.handled();
            let missing = missing(&handled, produced);
            if missing.is_empty() {
                return (produced, handled);
            }
            if start.elapsed() >= limit {
                let owners = self.owners().await;
                panic!(
                    "{} of {produced} records not processed within {limit:?} (first: {:?}); the table: {owners:?}",
                    missing.len(),
                    &missing[..missing.len().min(10)]
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A producer of records numbered from 0, `per_second` of them, with
    /// random partition keys (so every shard gets some).
    pub fn produce(&self, per_second: u64) -> Producer {
        Producer::start(self.kinesis.clone(), self.stream.clone(), per_second)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let workers = self.workers.get_mut().unwrap_or_else(|e| e.into_inner());
        for process in workers.values_mut() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

fn signal(process: &Child, signal: libc::c_int) {
    // SAFETY: `kill` has no memory effects; the pid is our own child, not
    // yet waited for (so not reused).
    let rc = unsafe { libc::kill(process.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill({}, {signal})", process.id());
}

fn read_logs(dir: &Path) -> Vec<Handled> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            // A SIGKILL can only cut the last line of a file, and only
            // before its newline: `lines` then yields the cut part.
            let parts: Vec<&str> = line.split(' ').collect();
            let [millis, worker, shard, sequence, id] = parts[..] else {
                assert!(
                    !text.ends_with('\n') && text.ends_with(line),
                    "{path:?}: a malformed line {line:?} before the end"
                );
                continue;
            };
            let (Ok(millis), Ok(id)) = (millis.parse(), id.parse()) else {
                continue;
            };
            out.push(Handled {
                millis,
                worker: worker.to_owned(),
                shard: shard.to_owned(),
                sequence: SequenceNumber::new(sequence),
                id,
            });
        }
    }
    out
}

/// The output tables of a cluster whose tables are named `name`: record
/// `id`'s effect is in table `id % OUTPUT_TABLES` (see
/// [`output_table`](super::worker::output_table)).
fn output_tables(name: &str) -> Vec<String> {
    (0..super::worker::OUTPUT_TABLES)
        .map(|i| super::worker::output_table(name, i))
        .collect()
}

/// Puts numbered records until stopped.
pub struct Producer {
    produced: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
    stop: Arc<tokio::sync::Notify>,
}

impl Producer {
    fn start(client: aws_sdk_kinesis::Client, stream: String, per_second: u64) -> Self {
        let produced = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(tokio::sync::Notify::new());
        let batch = (per_second / 10).max(1);
        let task = tokio::spawn({
            let produced = produced.clone();
            let stop = stop.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                let mut next = 0u64;
                loop {
                    tokio::select! {
                        _ = stop.notified() => return,
                        _ = tick.tick() => {}
                    }
                    put_ids_keyed(&client, &stream, next..next + batch, |_| {
                        format!("key-{}", fastrand::u64(..))
                    })
                    .await;
                    next += batch;
                    produced.store(next, Ordering::SeqCst);
                }
            }
        });
        Self {
            produced,
            task,
            stop,
        }
    }

    /// Stops and returns how many records were put (ids `0..n`).
    pub async fn finish(self) -> u64 {
        self.stop.notify_one();
        self.task.await.expect("producer task");
        self.produced.load(Ordering::SeqCst)
    }
}

/// Waits until `done` holds, checking every 200 ms, panicking with `what`
/// after `limit`.
pub async fn until<F: std::future::Future<Output = bool>>(
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> F,
) -> Duration {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

/// Ids `0..produced` that no worker handled.
pub fn missing(handled: &[Handled], produced: u64) -> Vec<u64> {
    let seen: BTreeSet<u64> = handled.iter().map(|h| h.id).collect();
    (0..produced).filter(|id| !seen.contains(id)).collect()
}

/// Ids handled more than once, with how often.
pub fn redelivered(handled: &[Handled]) -> BTreeMap<u64, usize> {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for h in handled {
        *counts.entry(h.id).or_default() += 1;
    }
    counts.retain(|_, n| *n > 1);
    counts
}

/// The sequence number a lease's checkpoint is at, if it is inside the
/// shard (not at its start or end).
pub fn checkpoint_sequence(lease: &Lease) -> Option<SequenceNumber> {
    match &lease.checkpoint {
        LeaseCheckpoint::At(Position::Sequence { sequence, .. }) => Some(sequence.clone()),
        _ => None,
    }
}

/// True when every running worker holds `target ± 1` leases and no lease
/// is unowned or held by anyone else.
pub fn balanced(owners: &BTreeMap<String, Vec<String>>, running: &[String], leases: usize) -> bool {
    let target = leases.div_ceil(running.len().max(1));
    let held: usize = running
        .iter()
        .map(|w| owners.get(w).map_or(0, Vec::len))
        .sum();
    held == leases
        && running.iter().all(|w| {
            let n = owners.get(w).map_or(0, Vec::len);
            n + 1 >= target && n <= target + 1
        })
}
