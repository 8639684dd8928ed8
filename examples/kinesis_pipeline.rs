//! A Kinesis pipeline end to end: produce durably with `KinesisSink` +
//! `buffered_wal`, consume with `KinesisSource` + `checkpoint_batched`, the
//! checkpoints in a KCL-layout DynamoDB lease table.
//!
//! Against a local emulator (moto, installed into `.emulators/` by
//! `scripts/install-test-deps.sh`):
//!
//! ```text
//! .emulators/venv/bin/moto_server -H 127.0.0.1 -p 5000 &
//! UNISTREAM_ENDPOINT=http://127.0.0.1:5000 \
//!     cargo run --example kinesis_pipeline --features kinesis,dynamodb
//! ```
//!
//! Against AWS (credentials and region from the usual environment, the
//! stream is created with 2 shards when missing):
//!
//! ```text
//! STREAM=orders TABLE=orders-consumer RECORDS=10000 \
//!     cargo run --example kinesis_pipeline --features kinesis,dynamodb
//! ```
//!
//! Run it twice: the second consumer resumes after the first one's
//! checkpoints and sees only the new records.

use std::time::{Duration, Instant};

use futures::{stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use unistream::checkpoint::{CheckpointStreamExt, DynamoDbCheckpointStore};
use unistream::kinesis::{KinesisRecord, KinesisSink, KinesisSource};
use unistream::sink::{WalConfig, WalSinkExt};
use unistream::source::{Shutdown, SourceExt};
use unistream::Error;

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: u32,
    cents: u64,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stream_name = env_or("STREAM", "unistream-example");
    let table = env_or("TABLE", "unistream-example-leases");
    let count: u64 = env_or("RECORDS", "5000").parse()?;
    let wal_dir = env_or("WAL_DIR", "target/kinesis-pipeline-wal");

    let config = match std::env::var("UNISTREAM_ENDPOINT") {
        // A local emulator: fixed region, dummy credentials.
        Ok(endpoint) => {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
                    "test", "test", None, None, "example",
                ))
                .endpoint_url(endpoint)
                .load()
                .await
        }
        Err(_) => aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
    };
    ensure_stream(&aws_sdk_kinesis::Client::new(&config), &stream_name).await?;

    // Producer: every accepted record is in the write-ahead log first, then
    // delivered in batches; closing delivers everything.
    let started = Instant::now();
    let sink = KinesisSink::new(&config, stream_name.as_str())
        .buffered_wal(
            WalConfig::new(&wal_dir)
                .max_records(500)
                .max_age(Duration::from_millis(100)),
        )
        .await?;
    let orders = (0..count).map(|id| {
        let order = Order {
            id,
            customer: (id % 97) as u32,
            cents: 100 + id % 10_000,
        };
        KinesisRecord::json(&order, format!("customer-{}", order.customer)).map_err(Error::from)
    });
    stream::iter(orders).forward(sink).await?;
    println!("produced {count} orders in {:?}", started.elapsed());

    // Consumer: resumes after the checkpoints in the lease table, saves
    // every 1,000 records per shard or 5 s, and once more at the end.
    let store = DynamoDbCheckpointStore::new(&config, &table).owner("example-worker");
    store.create_table_if_missing().await?;
    let started = Instant::now();
    let mut cents = 0u64;
    // A batch job: it ends once caught up with the stream (or on Ctrl-C:
    // intake stops, what was taken is processed, the checkpoints are saved).
    let shutdown = Shutdown::new().trigger_on_ctrl_c();
    let consumed = KinesisSource::new(&config, stream_name.as_str(), store.clone())
        .stop_when_caught_up(Duration::from_secs(2))
        .stream()
        .until(shutdown.signal())
        .and_then(|(record, token)| async move {
            let order: Order = record.decode(&unistream::JsonCodec)?;
            Ok((order, token))
        })
        .checkpoint_batched(1_000, Duration::from_secs(5), store.clone())
        .try_fold(0u64, |n, order| {
            cents += order.cents;
            async move { Ok(n + 1) }
        })
        .await?;
    println!(
        "consumed {consumed} orders ({cents} cents) in {:?}",
        started.elapsed()
    );

    let shards = aws_sdk_kinesis::Client::new(&config)
        .list_shards()
        .stream_name(&stream_name)
        .send()
        .await?;
    for shard in shards.shards() {
        if let Some(lease) = store.lease(shard.shard_id()).await? {
            println!(
                "{}: checkpoint {:?}, lease counter {}, owner {:?}",
                lease.key, lease.checkpoint, lease.counter, lease.owner
            );
        }
    }
    Ok(())
}

/// Creates the stream with 2 shards unless it exists, and waits until it is
/// active.
async fn ensure_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    match client
        .create_stream()
        .stream_name(name)
        .shard_count(2)
        .send()
        .await
    {
        Ok(_) => println!("created stream {name}"),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(err) => return Err(err.into()),
    }
    for _ in 0..120 {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await?;
        let active = summary
            .stream_description_summary()
            .is_some_and(|s| s.stream_status().as_str() == "ACTIVE");
        if active {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("stream {name} did not become ACTIVE").into())
}
