//! `MemorySource` → `checkpoint_batched(1000, 1 s, MemoryCheckpointStore)`:
//! tokens per second through the checkpointing combinator (target: 10M/s).
//!
//! Two clocks: `wall/…` is criterion's usual wall-clock time; `cpu/…`
//! measures the CPU time of the (single) runtime thread, which stays honest
//! when the machine is shared and the thread is preempted.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures::future::ready;
use futures::stream::Stream;
use futures::{StreamExt, TryStreamExt};
use unistream::checkpoint::{CheckpointStreamExt, CheckpointToken, MemoryCheckpointStore};
use unistream::source::MemorySource;
use unistream::Error;

#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::thread_cpu_time;

const TOKENS: u64 = 1_000_000;

fn source(partitions: u64) -> MemorySource<u64> {
    let per = TOKENS / partitions;
    MemorySource::new((0..partitions).map(|p| (format!("shard-{p}"), (0..per).collect::<Vec<_>>())))
}

/// Tokens reordered in windows of 16, as after `buffer_unordered(16)`.
fn out_of_order() -> impl Stream<Item = Result<(u64, CheckpointToken), Error>> {
    let mut items: Vec<_> = futures::executor::block_on(source(1).collect::<Vec<_>>());
    for window in items.chunks_mut(16) {
        window.reverse();
    }
    futures::stream::iter(items)
}

async fn checkpoint_all<St>(items: St, store: MemoryCheckpointStore)
where
    St: Stream<Item = Result<(u64, CheckpointToken), Error>>,
{
    let n = items
        .checkpoint_batched(1000, Duration::from_secs(1), store)
        .try_fold(0u64, |n, _| ready(Ok(n + 1)))
        .await
        .unwrap();
    assert_eq!(n, TOKENS);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("checkpoint_batched");
    group.throughput(Throughput::Elements(TOKENS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));

    for partitions in [1u64, 4] {
        group.bench_function(
            format!("wall/memory_source_in_order/{partitions}_partitions"),
            |b| {
                b.to_async(&rt).iter_batched(
                    || (source(partitions), MemoryCheckpointStore::new()),
                    |(source, store)| checkpoint_all(source, store),
                    BatchSize::PerIteration,
                )
            },
        );
        group.bench_function(
            format!("cpu/memory_source_in_order/{partitions}_partitions"),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (source, store) = (source(partitions), MemoryCheckpointStore::new());
                        let start = thread_cpu_time();
                        rt.block_on(checkpoint_all(source, store));
                        total += thread_cpu_time() - start;
                    }
                    total
                })
            },
        );
    }

    group.bench_function("cpu/out_of_order_windows_of_16/1_partition", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (items, store) = (out_of_order(), MemoryCheckpointStore::new());
                let start = thread_cpu_time();
                rt.block_on(checkpoint_all(items, store));
                total += thread_cpu_time() - start;
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
