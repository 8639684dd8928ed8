//! `MemorySource` → `checkpoint_batched(1000, 1 s, MemoryCheckpointStore)`:
//! tokens per second through the checkpointing combinator (target: 10M/s).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures::future::ready;
use futures::{StreamExt, TryStreamExt};
use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore};
use unistream::source::MemorySource;

const TOKENS: u64 = 1_000_000;

fn source(partitions: u64) -> MemorySource<u64> {
    let per = TOKENS / partitions;
    MemorySource::new((0..partitions).map(|p| (format!("shard-{p}"), (0..per).collect::<Vec<_>>())))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("checkpoint_batched");
    group.throughput(Throughput::Elements(TOKENS));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));

    for partitions in [1u64, 4] {
        group.bench_function(
            format!("memory_source_in_order/{partitions}_partitions"),
            |b| {
                b.to_async(&rt).iter_batched(
                    || (source(partitions), MemoryCheckpointStore::new()),
                    |(source, store)| async move {
                        let n = source
                            .checkpoint_batched(1000, Duration::from_secs(1), store)
                            .try_fold(0u64, |n, _| ready(Ok(n + 1)))
                            .await
                            .unwrap();
                        assert_eq!(n, TOKENS);
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }

    // Tokens reordered in windows of 16, as after `buffer_unordered(16)`:
    // the tracker's out-of-order path.
    group.bench_function("out_of_order_windows_of_16/1_partition", |b| {
        b.to_async(&rt).iter_batched(
            || {
                let mut items: Vec<_> = futures::executor::block_on(source(1).collect::<Vec<_>>());
                for window in items.chunks_mut(16) {
                    window.reverse();
                }
                (futures::stream::iter(items), MemoryCheckpointStore::new())
            },
            |(items, store)| async move {
                let n = items
                    .checkpoint_batched(1000, Duration::from_secs(1), store)
                    .try_fold(0u64, |n, _| ready(Ok(n + 1)))
                    .await
                    .unwrap();
                assert_eq!(n, TOKENS);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
