//! Sends records to a Kinesis stream through `KinesisSink` + `buffered_wal`
//! and prints the producer's metrics.
//!
//! Against a real stream (credentials and region from the usual AWS
//! configuration: environment, `~/.aws`, instance role):
//!
//! ```sh
//! cargo run --release --features kinesis --example kinesis_producer -- \
//!     --stream orders --records 100000
//! ```
//!
//! Against a local emulator (moto or kinesis-mock; test credentials, region
//! us-east-1), creating the stream when it does not exist:
//!
//! ```sh
//! .emulators/venv/bin/moto_server -H 127.0.0.1 -p 5000 &
//! cargo run --features kinesis --example kinesis_producer -- \
//!     --endpoint http://127.0.0.1:5000 --stream demo --create 4 --records 20000
//! ```
//!
//! Options: `--stream NAME|ARN` (required), `--endpoint URL`, `--create
//! SHARDS` (create the stream if missing), `--records N` (default 10000),
//! `--size BYTES` of each record (default 100), `--keys N` distinct
//! partition keys (default 1000), `--aggregate` (KPL aggregation),
//! `--unordered`, `--wal DIR` (default: a temporary directory).

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_kinesis::types::StreamStatus;
use futures::{stream, StreamExt};
use unistream::kinesis::{KinesisCodec, KinesisMetrics, KinesisRecord, KinesisSink};
use unistream::sink::{FileSink, WalConfig, WalSinkExt};
use unistream::DeadLetter;

struct Args {
    stream: String,
    endpoint: Option<String>,
    create: Option<i32>,
    records: usize,
    size: usize,
    keys: usize,
    aggregate: bool,
    unordered: bool,
    wal: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        stream: String::new(),
        endpoint: None,
        create: None,
        records: 10_000,
        size: 100,
        keys: 1000,
        aggregate: false,
        unordered: false,
        wal: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--stream" => args.stream = value()?,
            "--endpoint" => args.endpoint = Some(value()?),
            "--create" => args.create = Some(number(value()?)? as i32),
            "--records" => args.records = number(value()?)?,
            "--size" => args.size = number(value()?)?,
            "--keys" => args.keys = number(value()?)?.max(1),
            "--aggregate" => args.aggregate = true,
            "--unordered" => args.unordered = true,
            "--wal" => args.wal = Some(value()?.into()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if args.stream.is_empty() {
        return Err("--stream is required".into());
    }
    Ok(args)
}

async fn sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    match endpoint {
        // A local emulator: fixed test credentials, nothing from the
        // environment.
        Some(url) => {
            aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
                    "test", "test", None, None, "static",
                ))
                .endpoint_url(url)
                .load()
                .await
        }
        None => aws_config::load_defaults(BehaviorVersion::latest()).await,
    }
}

async fn ensure_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shards: i32,
) -> Result<(), Box<dyn std::error::Error>> {
    if client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .is_err()
    {
        client
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await?;
        println!("created stream {name} with {shards} shard(s)");
    }
    for _ in 0..300 {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await?;
        if summary
            .stream_description_summary()
            .map(|s| s.stream_status())
            == Some(&StreamStatus::Active)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("stream {name} did not become active").into())
}

fn print_metrics(m: &KinesisMetrics, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    println!("elapsed            {secs:.2} s");
    println!(
        "records sent       {} ({:.0}/s), Kinesis records {}",
        m.records_sent,
        m.records_sent as f64 / secs,
        m.kinesis_records_sent
    );
    println!(
        "failed / retried   {} / {}, dead-lettered {}",
        m.records_failed, m.records_retried, m.records_dead_lettered
    );
    println!(
        "PutRecords calls   {} ({} failed), throttles {}",
        m.put_records_calls, m.put_records_call_failures, m.throttles
    );
    println!(
        "latency            p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        m.latency_us.value_at_quantile(0.5) as f64 / 1000.0,
        m.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
        m.latency_us.max() as f64 / 1000.0
    );
    println!(
        "records per call   mean {:.0}, max {}",
        m.call_records.mean(),
        m.call_records.max()
    );
    println!(
        "pacing wait        {:.2} s, shard map loads {}, mispredictions {}",
        m.rate_limit_wait.as_secs_f64(),
        m.shard_map_refreshes,
        m.shard_mispredictions
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\n\nusage: kinesis_producer --stream NAME [--endpoint URL] [--create SHARDS] [--records N] [--size BYTES] [--keys N] [--aggregate] [--unordered] [--wal DIR]");
            std::process::exit(2);
        }
    };
    let conf = sdk_config(args.endpoint.as_deref()).await;
    let client = aws_sdk_kinesis::Client::new(&conf);
    if let Some(shards) = args.create {
        ensure_stream(&client, &args.stream, shards).await?;
    }

    let temp = tempfile::tempdir()?;
    let wal_dir = args.wal.clone().unwrap_or_else(|| temp.path().join("wal"));
    let dead_letter_path = wal_dir.with_extension("dead-letters.jsonl");
    let sink = KinesisSink::builder_from_client(client, args.stream.as_str())
        .aggregation(args.aggregate)
        .ordered(!args.unordered)
        .build()?;
    let metrics = sink.metrics();
    let dead_letters = FileSink::<DeadLetter<KinesisRecord>>::open(&dead_letter_path).await?;
    let wal = sink
        // Records in the log in a compact binary form (the default is JSON).
        .buffered_wal(
            WalConfig::new(&wal_dir)
                .codec(KinesisCodec)
                .dead_letter(dead_letters),
        )
        .await?;

    let (size, keys) = (args.size, args.keys);
    let records = (0..args.records).map(move |i| {
        let mut data = format!("record {i} ").into_bytes();
        data.resize(size.max(data.len()), b'.');
        Ok(KinesisRecord::new(data, format!("key-{}", i % keys)))
    });
    let started = Instant::now();
    // `forward` closes the sink: every record delivered (or dead-lettered)
    // and committed when it returns.
    stream::iter(records).forward(wal).await?;
    print_metrics(&metrics.snapshot(), started.elapsed());
    println!("dead letters       {}", dead_letter_path.display());
    Ok(())
}
