//! Ships lines from stdin (or a file) to CloudWatch Logs through a
//! write-ahead log: each line becomes a `LogEvent` stamped with the time it
//! was read, is durable on local disk once accepted, and is delivered in
//! order at least once — across crashes and outages — or dead-lettered with
//! its reason into `<wal-dir>/dead-letters.jsonl`.
//!
//! ```sh
//! # against a local moto (see README, "CloudWatch Logs"):
//! tail -F /var/log/app.log | cargo run --example ship_logs --features cloudwatch-logs -- \
//!     --group /app/web --stream host-1 --endpoint http://127.0.0.1:5000
//! cargo run --example ship_logs --features cloudwatch-logs -- \
//!     --file app.log --group /app/web --stream host-1 --wal-dir ./wal/web
//! ```
//!
//! A progress line on stderr shows events read, events/s and the backlog
//! (events accepted but not yet delivered, and the log's bytes on disk)
//! once a second. Ctrl-C stops reading, delivers what was read and exits
//! (a second Ctrl-C exits at once: what was accepted stays in the log and
//! is delivered by the next run).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use futures::SinkExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use unistream::cloudwatch_logs::{CloudWatchLogsSink, LogEvent};
use unistream::sink::{FileSink, WalConfig, WalSinkExt};
use unistream::source::Shutdown;
use unistream::{DeadLetter, Error};

const USAGE: &str = "usage: ship_logs --group GROUP --stream STREAM \
[--file PATH] [--endpoint URL] [--region REGION] [--wal-dir DIR]
  Reads lines from PATH (default: stdin) and ships them to CloudWatch Logs.
  --endpoint  a local emulator, e.g. http://127.0.0.1:5000 (test credentials
              are used unless AWS_ACCESS_KEY_ID is set)
  --wal-dir   write-ahead log directory (default: ./wal/ship_logs)";

#[derive(Debug)]
struct Args {
    group: String,
    stream: String,
    file: Option<PathBuf>,
    endpoint: Option<String>,
    region: String,
    wal_dir: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut group = None;
    let mut stream = None;
    let mut file = None;
    let mut endpoint = None;
    let mut region = "us-east-1".to_string();
    let mut wal_dir = PathBuf::from("wal/ship_logs");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--group" => group = Some(value),
            "--stream" => stream = Some(value),
            "--file" => file = Some(PathBuf::from(value)),
            "--endpoint" => endpoint = Some(value),
            "--region" => region = value,
            "--wal-dir" => wal_dir = PathBuf::from(value),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Args {
        group: group.ok_or("--group is required")?,
        stream: stream.ok_or("--stream is required")?,
        file,
        endpoint,
        region,
        wal_dir,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("ship_logs: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nship_logs: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(args.region));
    if let Some(endpoint) = &args.endpoint {
        loader = loader.endpoint_url(endpoint);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                "test",
                "test",
                None,
                None,
                "ship_logs",
            ));
        }
    }
    let config = loader.load().await;

    std::fs::create_dir_all(&args.wal_dir).map_err(|e| Error::io("create", &args.wal_dir, e))?;
    let dead_letters =
        FileSink::<DeadLetter<LogEvent>>::open(args.wal_dir.join("dead-letters.jsonl")).await?;
    let target = CloudWatchLogsSink::builder(&config, &args.group, &args.stream)
        .create_missing(true)
        .build()?;
    let mut sink = target
        .buffered_wal(
            WalConfig::new(args.wal_dir.join("log"))
                .max_records(10_000)
                .max_age(Duration::from_millis(500))
                .dead_letter(dead_letters),
        )
        .await?;

    let input: Box<dyn AsyncRead + Unpin + Send> = match &args.file {
        Some(path) => Box::new(
            tokio::fs::File::open(path)
                .await
                .map_err(|e| Error::io("open", path, e))?,
        ),
        None => Box::new(tokio::io::stdin()),
    };
    let source_name = args
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from("<stdin>"));
    let mut lines = BufReader::new(input).lines();
    let mut stop = Shutdown::new().trigger_on_ctrl_c().signal();
    let mut stopped = false;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let started = Instant::now();
    let mut read = 0u64;
    let mut skipped = 0u64;
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = &mut stop => {
                stopped = true;
                break;
            }
            line = lines.next_line() => {
                let Some(line) = line.map_err(|e| Error::io("read", &source_name, e))? else {
                    break;
                };
                if line.is_empty() {
                    skipped += 1; // CloudWatch Logs refuses empty messages
                    continue;
                }
                // `feed` does not flush: the WAL batches appends; the sink is
                // flushed by its own age limit and at close.
                sink.feed(LogEvent::now(line)).await?;
                read += 1;
            }
            _ = ticker.tick() => {
                let rate = (read - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), read);
                // Backlog: appended to the log but not yet delivered
                // (Lsns number records), plus what this handle still buffers.
                let stats = sink.wal_stats();
                let backlog = stats.next_lsn.0.saturating_sub(stats.committed_lsn.0)
                    + sink.buffered_records() as u64;
                eprint!(
                    "\r{read} events read, {rate:.0} events/s, backlog {backlog} events \
                     ({} bytes of log on disk)   ",
                    stats.bytes_on_disk
                );
            }
        }
    }
    let why = if stopped { "stopped" } else { "end of input" };
    eprint!("\r{why}: {read} events read ({skipped} empty lines skipped); delivering the rest…   ");
    sink.close().await?;
    eprintln!(
        "\rdone: {read} events shipped in {:.1} s ({:.0} events/s); dead letters, if any, in {}",
        started.elapsed().as_secs_f64(),
        read as f64 / started.elapsed().as_secs_f64().max(1e-9),
        args.wal_dir.join("dead-letters.jsonl").display()
    );
    Ok(())
}
