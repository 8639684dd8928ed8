//! `FileSource` reading and decoding 100-byte JSON lines (target: 1M
//! records/s). The file is written once and read from the page cache, so
//! this measures the source (block reads, line splitting, decoding), not
//! the disk.
//!
//! Two clocks: `wall/…` is criterion's usual wall-clock time; `cpu/…`
//! measures the CPU time of the whole process (the runtime thread and the
//! blocking thread that reads and decodes), i.e. records per CPU-second,
//! which stays honest when the machine is shared.

use std::io::Write;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::future::ready;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use unistream::source::FileSource;

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::{process_cpu_time, runtime};

const RECORDS: u64 = 500_000;

#[derive(Serialize, Deserialize)]
#[allow(dead_code)] // fields are decoded, not read
struct Order {
    id: u64,
    customer: String,
    amount_cents: u64,
    note: String,
}

async fn read_all<T>(path: &std::path::Path)
where
    T: Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let n = FileSource::<T>::new(path)
        .stream()
        .try_fold(0u64, |n, _| ready(Ok(n + 1)))
        .await
        .unwrap();
    assert_eq!(n, RECORDS);
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut total = 0usize;
    for id in 0..RECORDS {
        let mut line = format!(
            r#"{{"id":{id},"customer":"customer-{:06}","amount_cents":{},"note":""#,
            id % 100_000,
            id * 7 % 100_000
        );
        // Pad every line to exactly 100 bytes with its newline.
        while line.len() < 97 {
            line.push('x');
        }
        line.push_str("\"}\n");
        total += line.len();
        file.write_all(line.as_bytes()).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    assert_eq!(total as u64, RECORDS * 100);

    let rt = runtime(1);
    let mut group = c.benchmark_group("file_source");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.warm_up_time(Duration::from_secs(1));

    group.bench_function("wall/read_and_decode_100_byte_json_lines/struct", |b| {
        b.to_async(&rt).iter(|| read_all::<Order>(&path))
    });
    group.bench_function("cpu/read_and_decode_100_byte_json_lines/struct", |b| {
        b.iter_custom(|iters| {
            let start = process_cpu_time();
            for _ in 0..iters {
                rt.block_on(read_all::<Order>(&path));
            }
            process_cpu_time() - start
        })
    });
    group.bench_function(
        "cpu/read_and_decode_100_byte_json_lines/serde_json_value",
        |b| {
            b.iter_custom(|iters| {
                let start = process_cpu_time();
                for _ in 0..iters {
                    rt.block_on(read_all::<serde_json::Value>(&path));
                }
                process_cpu_time() - start
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
