//! One worker of a consumer group: start it on as many machines (or
//! terminals) as you like with the same `TABLE`, and the workers share the
//! stream's shards through leases in that DynamoDB table (KCL-compatible).
//! A worker that dies loses its leases after the lease duration (10 s) and
//! the others take them; Ctrl-C (or SIGTERM) stops a worker gracefully:
//! it stops reading, finishes the records in flight, saves its final
//! checkpoints and releases its leases, which the others pick up at once.
//!
//! Against a local emulator (moto, installed into `.emulators/` by
//! `scripts/install-test-deps.sh`), after `kinesis_pipeline` created and
//! filled the stream:
//!
//! ```text
//! .emulators/venv/bin/moto_server -H 127.0.0.1 -p 5000 &
//! UNISTREAM_ENDPOINT=http://127.0.0.1:5000 \
//!     cargo run --example kinesis_pipeline --features kinesis,dynamodb
//! UNISTREAM_ENDPOINT=http://127.0.0.1:5000 \
//!     cargo run --example kinesis_worker --features kinesis,dynamodb
//! ```
//!
//! Against AWS (credentials and region from the usual environment; the
//! stream must exist, the lease table is created when missing):
//!
//! ```text
//! STREAM=orders TABLE=orders-consumer \
//!     cargo run --example kinesis_worker --features kinesis,dynamodb
//! ```

use std::time::Duration;

use futures::TryStreamExt;
use unistream::checkpoint::CheckpointStreamExt;
use unistream::dynamodb::DynamoDbLeaseTable;
use unistream::kinesis::KinesisSource;
use unistream::lease::{LeaseConfig, LeaseWorker};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The SDK configuration for the emulator at `UNISTREAM_ENDPOINT` when it
/// is set, else the usual AWS environment.
async fn sdk_config() -> aws_config::SdkConfig {
    match std::env::var("UNISTREAM_ENDPOINT") {
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
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stream = env_or("STREAM", "unistream-example");
    let table_name = env_or("TABLE", "unistream-example-workers");
    let config = sdk_config().await;

    let table = DynamoDbLeaseTable::new(&config, table_name.as_str());
    table.create_table_if_missing().await?;
    // A name unique to this process (host and pid), as the KCL's workers have.
    let worker = LeaseWorker::start(
        table,
        LeaseWorker::<DynamoDbLeaseTable>::unique_id(),
        LeaseConfig::new(),
    );
    println!("worker {} on {stream}, leases in {table_name}", worker.id());

    let store = worker.checkpoint_store();
    let pipeline = KinesisSource::leased(&config, stream.as_str(), worker.clone())
        .stream()
        .and_then(|(record, token)| async move {
            // The processing: here, a line per record.
            println!(
                "{} {}: {} bytes",
                token.partition(),
                token.position(),
                record.data.len()
            );
            Ok(token)
        })
        .checkpoint_batched(1_000, Duration::from_secs(5), store)
        .try_collect::<()>();
    let pipeline = tokio::spawn(pipeline);

    shutdown_signal().await;
    println!("stopping: finishing records in flight, saving checkpoints, releasing leases");
    // Stops intake; the stream ends once every lease is drained, its final
    // checkpoint saved and the lease released.
    worker.shutdown();
    pipeline.await??;
    worker.stopped().await;
    let metrics = worker.metrics();
    println!(
        "stopped: {} leases taken, {} handed over, {} released, {} lost",
        metrics.taken_unowned + metrics.taken_expired + metrics.handoffs_received,
        metrics.handoffs_given,
        metrics.released,
        metrics.lost
    );
    Ok(())
}

/// Ctrl-C, or SIGTERM (what `kill`, systemd and container runtimes send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
