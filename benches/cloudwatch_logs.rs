//! CloudWatch Logs producer benchmarks.
//!
//! - `cloudwatch_logs/plan/*`: request building alone (validate, stable sort,
//!   split by count, bytes and 24 h span), no I/O. Target: ≥ 2M events/s.
//! - `cloudwatch_logs/moto/*`: the same events sent to a local moto server,
//!   once through `CloudWatchLogsSink` and once as a raw SDK `PutLogEvents`
//!   loop over the same pre-built requests. Target: sink / raw ≥ 0.9.
//!   Because the machine is shared and moto is slow, the ratio is also
//!   measured by alternating the two, round by round, and reported as the
//!   median of the per-round ratios (printed at the end).
//! - `cloudwatch_logs/no_network/*`: the same comparison with an HTTP client
//!   that answers at once, so that the sink's own cost shows without moto's
//!   noise.
//! - `cloudwatch_logs/wal/*` (end to end): the sink behind `buffered_wal`.
//!
//! Run: `CARGO_TARGET_DIR=/work/targets/bench cargo bench --all-features --bench cloudwatch_logs`

#[path = "../tests/support/mod.rs"]
mod test_support;
use test_support::cloudwatch_logs::now_ms;
use test_support::emulators;
use test_support::http_client::AnsweringHttpClient;

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_cloudwatchlogs::Client;
use aws_smithy_runtime_api::client::http::HttpConnectorFuture;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use criterion::{BenchmarkId, Criterion, Throughput};
use futures::{stream, SinkExt, StreamExt};
use unistream::cloudwatch_logs::{Batcher, CloudWatchLogsSink, LogEvent};
use unistream::sink::{WalConfig, WalSinkExt};

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::runtime;

/// `n` events of ~100-byte messages over the last `span_ms`, in order or
/// scrambled.
fn events(n: usize, span_ms: i64, scrambled: bool) -> Vec<LogEvent> {
    let start = now_ms() - span_ms - 60_000;
    (0..n as i64)
        .map(|i| {
            let pos = if scrambled { (i * 7919) % n as i64 } else { i };
            let ts = start + pos * span_ms / n as i64;
            LogEvent::new(
                ts,
                format!("{i:08} GET /api/orders/{i} 200 {}", "x".repeat(70)),
            )
        })
        .collect()
}

fn plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("cloudwatch_logs/plan");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    let batcher = Batcher::new();
    let now = SystemTime::now();
    for (name, n, span_ms, scrambled) in [
        ("sorted_10k", 10_000, 60_000, false),
        ("scrambled_10k", 10_000, 60_000, true),
        ("scrambled_100k_3days", 100_000, 3 * 86_400_000, true),
    ] {
        let batch = events(n, span_ms, scrambled);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &batch, |b, batch| {
            b.iter(|| black_box(batcher.plan(black_box(batch), now)))
        });
    }
    group.finish();
}

struct Moto {
    rt: tokio::runtime::Runtime,
    client: Client,
    group: String,
}

fn moto() -> Moto {
    let rt = runtime(1);
    let config = rt.block_on(emulators::sdk_config(emulators::moto()));
    let client = Client::new(&config);
    let group = emulators::unique_name("/unistream/bench");
    rt.block_on(client.create_log_group().log_group_name(&group).send())
        .expect("create log group");
    Moto { rt, client, group }
}

impl Moto {
    fn stream(&self, prefix: &str) -> String {
        let name = emulators::unique_name(prefix);
        self.rt
            .block_on(
                self.client
                    .create_log_stream()
                    .log_group_name(&self.group)
                    .log_stream_name(&name)
                    .send(),
            )
            .expect("create log stream");
        name
    }

    fn sink(&self, stream: &str) -> CloudWatchLogsSink {
        CloudWatchLogsSink::builder_from_client(self.client.clone(), &self.group, stream)
            .build()
            .expect("sink")
    }

    /// The requests the sink would send, pre-built for the raw loop.
    fn prebuilt(&self, batch: &[LogEvent]) -> Vec<Vec<InputLogEvent>> {
        let plan = Batcher::new().plan(batch, SystemTime::now());
        plan.requests()
            .map(|request| {
                request
                    .iter()
                    .map(|&i| {
                        InputLogEvent::builder()
                            .timestamp(batch[i].timestamp)
                            .message(batch[i].message.clone())
                            .build()
                            .expect("timestamp and message set")
                    })
                    .collect()
            })
            .collect()
    }
}

async fn raw_loop(client: &Client, group: &str, stream: &str, requests: &[Vec<InputLogEvent>]) {
    for request in requests {
        client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(request.clone()))
            .send()
            .await
            .expect("PutLogEvents");
    }
}

fn against_moto(c: &mut Criterion, moto: &Moto) {
    let batch = events(20_000, 60_000, true);
    let requests = moto.prebuilt(&batch);
    let raw_stream = moto.stream("raw");
    let sink_stream = moto.stream("sink");

    let mut group = c.benchmark_group("cloudwatch_logs/moto");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("raw_sdk_put_log_events", |b| {
        b.iter_custom(|iters| {
            moto.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    raw_loop(&moto.client, &moto.group, &raw_stream, &requests).await;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("cloudwatch_logs_sink", |b| {
        b.iter_custom(|iters| {
            let mut sink = moto.sink(&sink_stream);
            moto.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    sink.send(batch.clone()).await.expect("sink send");
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

/// Alternates the raw loop and the sink, round by round (in A-B-B-A order,
/// so drift hits both alike), on fresh streams, and prints the median of
/// the per-round throughput ratios: a robust estimate on a shared machine
/// where a single slow round (another process compiling) would swamp a
/// mean.
fn alternating_ratio(moto: &Moto) {
    const ROUNDS: usize = 31;
    let batch = events(10_000, 60_000, true);
    let requests = moto.prebuilt(&batch);
    let raw_stream = moto.stream("raw-alt");
    let sink_stream = moto.stream("sink-alt");
    let mut sink = moto.sink(&sink_stream);
    let mut ratios = Vec::with_capacity(ROUNDS);
    let (mut raw_times, mut sink_times) = (Vec::new(), Vec::new());
    moto.rt.block_on(async {
        for round in 0..ROUNDS + 1 {
            let mut raw = Duration::ZERO;
            let mut through_sink = Duration::ZERO;
            for step in 0..2 {
                if (round + step) % 2 == 0 {
                    let start = Instant::now();
                    raw_loop(&moto.client, &moto.group, &raw_stream, &requests).await;
                    raw = start.elapsed();
                } else {
                    let start = Instant::now();
                    sink.send(batch.clone()).await.expect("sink send");
                    through_sink = start.elapsed();
                }
            }
            if round == 0 {
                continue; // warm-up
            }
            raw_times.push(raw);
            sink_times.push(through_sink);
            ratios.push(raw.as_secs_f64() / through_sink.as_secs_f64());
        }
    });
    ratios.sort_by(f64::total_cmp);
    raw_times.sort();
    sink_times.sort();
    let events_per_sec = |d: Duration| batch.len() as f64 / d.as_secs_f64();
    let total = |times: &[Duration]| times.iter().sum::<Duration>();
    println!(
        "cloudwatch_logs/moto/alternating: {ROUNDS} rounds of {} events ({} requests each): \
         median raw {:.0} events/s, median sink {:.0} events/s; \
         sink/raw per-round ratio median {:.3} (quartiles {:.3}..{:.3}, min {:.3}, max {:.3}); \
         ratio of totals {:.3}",
        batch.len(),
        requests.len(),
        events_per_sec(raw_times[ROUNDS / 2]),
        events_per_sec(sink_times[ROUNDS / 2]),
        ratios[ROUNDS / 2],
        ratios[ROUNDS / 4],
        ratios[3 * ROUNDS / 4],
        ratios[0],
        ratios[ROUNDS - 1],
        total(&raw_times).as_secs_f64() / total(&sink_times).as_secs_f64(),
    );
}

/// An HTTP client that answers every request at once with `200 {}` (an
/// empty `PutLogEvents` output): the SDK still serializes, signs and parses.
fn instant_ok() -> AnsweringHttpClient {
    AnsweringHttpClient::new(|_request| {
        HttpConnectorFuture::ready(Ok(HttpResponse::new(
            StatusCode::try_from(200).expect("valid status"),
            SdkBody::from("{}"),
        )))
    })
}

/// The sink's own cost, without moto's noise: the same comparison as
/// against moto, with an HTTP client that answers at once.
fn without_network(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let conf = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .http_client(instant_ok())
        .build();
    let client = Client::from_conf(conf);
    let batch = events(20_000, 60_000, true);
    let plan = Batcher::new().plan(&batch, SystemTime::now());
    let requests: Vec<Vec<InputLogEvent>> = plan
        .requests()
        .map(|request| {
            request
                .iter()
                .map(|&i| {
                    InputLogEvent::builder()
                        .timestamp(batch[i].timestamp)
                        .message(batch[i].message.clone())
                        .build()
                        .expect("timestamp and message set")
                })
                .collect()
        })
        .collect();

    let mut group = c.benchmark_group("cloudwatch_logs/no_network");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("raw_sdk_put_log_events", |b| {
        b.iter(|| rt.block_on(raw_loop(&client, "group", "stream", &requests)))
    });
    group.bench_function("cloudwatch_logs_sink", |b| {
        let mut sink = CloudWatchLogsSink::builder_from_client(client.clone(), "group", "stream")
            .build()
            .expect("sink");
        b.iter(|| rt.block_on(sink.send(batch.clone())).expect("sink send"))
    });
    group.finish();
}

/// End to end: events into `buffered_wal`, out to moto through the sink.
fn through_wal(c: &mut Criterion, moto: &Moto) {
    let n = 20_000;
    let mut group = c.benchmark_group("cloudwatch_logs/wal");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(n as u64));
    group.bench_function("buffered_wal_to_sink", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let batch = events(n, 60_000, false);
                let stream_name = moto.stream("wal");
                let target = moto.sink(&stream_name);
                let dir = tempfile::tempdir().expect("tempdir");
                total += moto.rt.block_on(async {
                    let start = Instant::now();
                    let sink = target
                        .buffered_wal(
                            WalConfig::new(dir.path())
                                .max_records(10_000)
                                .max_age(Duration::from_millis(20)),
                        )
                        .await
                        .expect("buffered_wal");
                    stream::iter(batch)
                        .map(Ok)
                        .forward(sink)
                        .await
                        .expect("deliver");
                    start.elapsed()
                });
            }
            total
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    plan(&mut criterion);
    without_network(&mut criterion);
    let moto = moto();
    against_moto(&mut criterion, &moto);
    // Not a criterion benchmark: honour a name filter by hand.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let name = "cloudwatch_logs/moto/alternating";
    if filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())) {
        alternating_ratio(&moto);
    }
    through_wal(&mut criterion, &moto);
    criterion.final_summary();
}
