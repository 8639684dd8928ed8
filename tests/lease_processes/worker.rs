//! The worker process: one `LeaseWorker` on the DynamoDB lease table, a
//! `KinesisSource::leased` pipeline checkpointing through the worker's
//! store, and a log of every record it handles.
//!
//! Each handled record is one line `millis worker shard sequence id`
//! appended (one `write`, before its token goes to the checkpointer) to the
//! process's own file, so the parent sees every record handled up to a
//! SIGKILL. SIGTERM is the graceful stop: shut the worker down, let the
//! pipeline finish its drains and final checkpoints, write the worker's
//! metrics, exit 0. The process also exits when its parent is gone.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use futures::TryStreamExt;
use tokio::signal::unix::{signal, SignalKind};
use unistream::checkpoint::{
    CheckpointStreamExt, CheckpointToken, Position, TransactionalStreamExt,
};
use unistream::dynamodb::DynamoDbLeaseTable;
use unistream::kinesis::{KinesisRecord, KinesisSource};
use unistream::lease::{LeaseConfig, LeaseWorker};

use crate::support::emulators::sdk_config_at;

/// What the parent passes to a worker process.
#[derive(Debug, Clone)]
pub struct WorkerEnv {
    pub worker: String,
    pub stream: String,
    pub table: String,
    pub kinesis_endpoint: String,
    pub dynamodb_endpoint: String,
    /// The folder of the handled-record logs.
    pub dir: PathBuf,
    pub seed: u64,
    pub timings: Timings,
    /// When set, every record's effect is one increment of `writes` on the
    /// item `id` of this table, committed with the checkpoint
    /// (`checkpoint_transactional`) instead of `checkpoint_batched`.
    pub outputs: Option<String>,
}

/// The lease timings a worker process runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timings {
    /// [`LEASE_DURATION`], [`RENEW_INTERVAL`], [`SCAN_INTERVAL`]: tests.
    Short,
    /// `LeaseConfig`'s defaults: the failover figures.
    Default,
}

const VAR: &str = "UNISTREAM_LEASE_WORKER";

impl WorkerEnv {
    /// The variables of a child process.
    pub fn vars(&self) -> Vec<(String, String)> {
        let value = [
            self.worker.as_str(),
            &self.stream,
            &self.table,
            &self.kinesis_endpoint,
            &self.dynamodb_endpoint,
            self.dir.to_str().expect("utf-8 temp dir"),
            &self.seed.to_string(),
            match self.timings {
                Timings::Short => "short",
                Timings::Default => "default",
            },
            self.outputs.as_deref().unwrap_or(""),
        ]
        .join("\n");
        vec![(VAR.to_owned(), value)]
    }

    fn from_env() -> Option<Self> {
        let value = std::env::var(VAR).ok()?;
        let parts: Vec<&str> = value.split('\n').collect();
        let [worker, stream, table, kinesis, dynamodb, dir, seed, timings, outputs] = parts[..]
        else {
            panic!("{VAR} has {} parts, not 9", parts.len());
        };
        Some(Self {
            worker: worker.to_owned(),
            stream: stream.to_owned(),
            table: table.to_owned(),
            kinesis_endpoint: kinesis.to_owned(),
            dynamodb_endpoint: dynamodb.to_owned(),
            dir: PathBuf::from(dir),
            seed: seed.parse().expect("seed"),
            timings: match timings {
                "short" => Timings::Short,
                "default" => Timings::Default,
                other => panic!("timings {other:?}"),
            },
            outputs: (!outputs.is_empty()).then(|| outputs.to_owned()),
        })
    }
}

/// The lease timings of every worker process (and of the parent's checks).
pub const LEASE_DURATION: Duration = Duration::from_secs(3);
pub const RENEW_INTERVAL: Duration = Duration::from_secs(1);
pub const SCAN_INTERVAL: Duration = Duration::from_millis(500);

pub fn lease_config(seed: u64, timings: Timings) -> LeaseConfig {
    if timings == Timings::Default {
        return LeaseConfig::new().seed(seed);
    }
    LeaseConfig::new()
        .lease_duration(LEASE_DURATION)
        .renew_interval(RENEW_INTERVAL)
        .scan_interval(SCAN_INTERVAL)
        .handoff_timeout(Duration::from_secs(10))
        .drain_timeout(Duration::from_secs(10))
        .seed(seed)
}

pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

#[test]
#[ignore = "the worker process of the lease process tests (started by them)"]
fn lease_worker_process() {
    let Some(env) = WorkerEnv::from_env() else {
        panic!("started without {VAR}: this is the child half of the lease process tests");
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(env));
}

async fn run(env: WorkerEnv) {
    // `UNISTREAM_WORKER_LOG=<filter>` (e.g. `unistream=debug`): the
    // crate's tracing events go to `<worker>-<pid>.trace` beside the logs.
    if let Ok(filter) = std::env::var("UNISTREAM_WORKER_LOG") {
        let file = std::fs::File::create(env.dir.join(format!(
            "{}-{}.trace",
            env.worker,
            std::process::id()
        )))
        .expect("create the trace file");
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .init();
    }
    let parent = std::os::unix::process::parent_id();
    tokio::spawn(async move {
        // Orphaned (the parent test was killed): stop at once.
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(3);
            }
        }
    });

    let dynamodb = sdk_config_at(&env.dynamodb_endpoint).await;
    let kinesis = sdk_config_at(&env.kinesis_endpoint).await;
    let table = DynamoDbLeaseTable::new(&dynamodb, env.table.as_str());
    let worker = LeaseWorker::start(
        table,
        env.worker.clone(),
        lease_config(env.seed, env.timings),
    );
    let source = KinesisSource::leased(&kinesis, env.stream.as_str(), worker.clone())
        .idle_interval(Duration::from_millis(100))
        .shard_refresh_interval(Duration::from_secs(1));
    let store = worker.checkpoint_store();

    let path = env
        .dir
        .join(format!("{}-{}.log", env.worker, std::process::id()));
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open the worker's log");
    let name = env.worker.clone();
    let handle = move |record: &KinesisRecord, token: &CheckpointToken| {
        let id = std::str::from_utf8(&record.data)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .expect("records hold decimal ids");
        let sequence = match token.position() {
            Position::Sequence { sequence, .. } => sequence.to_string(),
            other => panic!("a Kinesis record at {other:?}"),
        };
        let line = format!(
            "{} {} {} {} {}\n",
            now_millis(),
            name,
            token.partition(),
            sequence,
            id
        );
        log.write_all(line.as_bytes())
            .expect("append to the worker's log");
        id
    };
    let mut pipeline = match env.outputs.clone() {
        None => tokio::spawn(async move {
            let mut handle = handle;
            source
                .stream()
                .and_then(move |(record, token)| {
                    handle(&record, &token);
                    async move { Ok(token) }
                })
                .checkpoint_batched(20, Duration::from_millis(300), store)
                .try_collect::<()>()
                .await
        }),
        Some(outputs) => tokio::spawn(async move {
            let mut handle = handle;
            source
                .stream()
                .map_ok(move |(record, token)| {
                    let id = handle(&record, &token);
                    (vec![count_once(&outputs, id)], token)
                })
                .checkpoint_transactional(20, Duration::from_millis(300), store)
                .try_collect::<Vec<_>>()
                .await
                .map(drop)
        }),
    };

    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {
            worker.shutdown();
        }
        ended = &mut pipeline => {
            panic!("the pipeline ended before a shutdown: {ended:?}");
        }
    }
    pipeline
        .await
        .expect("pipeline task")
        .expect("pipeline after a graceful stop");
    worker.stopped().await;
    std::fs::write(
        env.dir
            .join(format!("{}-{}.metrics", env.worker, std::process::id())),
        format!("{:?}", worker.metrics()),
    )
    .expect("write the metrics");
}

/// How many tables the effects are spread over. moto copies every table a
/// transaction touches once per action (its rollback), so a transaction's
/// cost grows with the size of the tables it writes: spread, the kill loop
/// keeps up with its producer.
pub const OUTPUT_TABLES: u64 = 8;

/// The output table `i` of the cluster's tables named `name`.
pub fn output_table(name: &str, i: u64) -> String {
    format!("{name}-{i}")
}

/// One increment of `writes` on item `id` (in its output table): an effect
/// whose repetition shows in the table.
fn count_once(tables: &str, id: u64) -> TransactWriteItem {
    let update = Update::builder()
        .table_name(output_table(tables, id % OUTPUT_TABLES))
        .key("id", AttributeValue::N(id.to_string()))
        .update_expression("ADD #w :one")
        .expression_attribute_names("#w", "writes")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .build()
        .expect("a complete update");
    TransactWriteItem::builder().update(update).build()
}
