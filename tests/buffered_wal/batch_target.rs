//! Targets written with `unistream::sink::batch_target` (a closure over a
//! batch) behind `buffered_wal`: injected failures and rejections lose
//! nothing and dead-letter as built-in sinks do; targets that break the
//! batch-sink protocol (`futures::sink::unfold`, which ends itself after an
//! error, and panicking targets) stop delivery with `Error::BrokenTarget`,
//! commit nothing, and a fixed target delivers everything afterwards.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{stream, SinkExt, StreamExt};
use unistream::sink::{
    batch_target, BatchTarget, BatchTargetSink, MemorySink, WalConfig, WalSinkExt,
};
use unistream::wal::{Fsync, Lsn};
use unistream::{BrokenTarget, DeadLetter, Error, RejectedRecord};

use crate::support::retry::deterministic;

/// What the target below stored, and how often it was called.
#[derive(Clone, Default)]
struct Table {
    rows: Arc<Mutex<Vec<u64>>>,
    calls: Arc<AtomicU64>,
}

#[tokio::test(start_paused = true)]
async fn a_closure_target_with_failures_and_rejections_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let table = Table::default();
    let dead_letter = MemorySink::<DeadLetter<u64>>::new();
    let dead = dead_letter.handle();

    // The target: every third call fails before storing anything, a batch
    // holding 13 always fails, multiples of 7 are rejected.
    let target = batch_target({
        let table = table.clone();
        move |batch: Vec<u64>| {
            let table = table.clone();
            async move {
                let call = table.calls.fetch_add(1, Ordering::SeqCst) + 1;
                if call % 3 == 0 || batch.contains(&13) {
                    return Err(Error::target("table", "poison or flaky"));
                }
                let mut rejected = Vec::new();
                let mut rows = table.rows.lock().unwrap();
                for (i, x) in batch.into_iter().enumerate() {
                    match x % 7 {
                        0 => rejected.push(RejectedRecord::new(i, format!("{x}: multiple of 7"))),
                        _ => rows.push(x),
                    }
                }
                if rejected.is_empty() {
                    Ok(())
                } else {
                    Err(Error::Rejected(rejected))
                }
            }
        }
    });
    let sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .max_records(10)
                .max_age(Duration::from_secs(3600))
                .retry(deterministic(3))
                .dead_letter(dead_letter),
        )
        .await
        .unwrap();
    stream::iter(0..200u64).map(Ok).forward(sink).await.unwrap();

    let rows = table.rows.lock().unwrap().clone();
    let entries = dead.records();
    let dead_records: Vec<u64> = entries.iter().map(|e| e.record.unwrap()).collect();
    // Every record exactly once: delivered or dead-lettered.
    let mut all: Vec<u64> = rows.iter().chain(&dead_records).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..200).collect::<Vec<_>>());
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "in order: {rows:?}");
    assert!(rows.iter().all(|x| x % 7 != 0));

    let poisoned: BTreeSet<u64> = entries
        .iter()
        .filter(|e| e.reason.contains("gave up after 3 attempt(s)"))
        .map(|e| e.record.unwrap())
        .collect();
    assert!(poisoned.contains(&13), "{entries:?}");
    for entry in &entries {
        let x = entry.record.unwrap();
        if poisoned.contains(&x) {
            assert!(entry.reason.contains("poison or flaky"), "{}", entry.reason);
            assert_eq!(entry.attempts, 3);
        } else {
            assert_eq!(x % 7, 0, "{entry:?}");
            assert_eq!(entry.reason, format!("{x}: multiple of 7"));
            assert!(
                entry.origin.as_deref().unwrap().contains("lsn"),
                "{entry:?}"
            );
        }
    }
    // The flaky calls were retried: more calls than batches.
    assert!(table.calls.load(Ordering::SeqCst) > 20);
}

#[tokio::test(start_paused = true)]
async fn an_unfold_target_that_ends_after_an_error_stops_with_a_clear_error_and_keeps_the_records()
{
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        WalConfig::new(dir.path())
            .max_age(Duration::ZERO)
            .retry(deterministic(5))
    };
    // The obvious `unfold` target: it fails once, and then cannot be used.
    let calls = Arc::new(AtomicU64::new(0));
    let target = futures::sink::unfold(calls.clone(), |calls, _batch: Vec<u64>| async move {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<Arc<AtomicU64>, _>(Error::target("endpoint", "HTTP 503"))
    });
    let mut sink = target.buffered_wal(config()).await.unwrap();
    sink.send(1).await.unwrap();
    sink.send(2).await.unwrap();
    let err = sink.close().await.unwrap_err();
    match &err {
        Error::BrokenTarget(BrokenTarget::EndedAfterError { error, panic }) => {
            assert!(error.contains("HTTP 503"), "{error}");
            assert!(panic.contains("poll_ready"), "{panic}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("ended after an error") && message.contains("batch_target"),
        "{message}"
    );
    // Later calls repeat the cause.
    let again = sink.send(3).await.unwrap_err();
    assert!(
        unistream::ErrorChain(&again)
            .to_string()
            .contains("ended after an error"),
        "{again}"
    );
    // Not retried once broken, nothing committed or given up on.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(sink.wal_stats().committed_lsn, Lsn(0));
    drop(sink);

    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let mut sink = target.buffered_wal(config()).await.unwrap();
    sink.close().await.unwrap();
    assert_eq!(delivered.records(), vec![1, 2]);
}

#[tokio::test]
async fn an_unfold_target_that_ends_after_a_rejection_dead_letters_it_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let dead_letter = MemorySink::<DeadLetter<u64>>::new();
    let dead = dead_letter.handle();
    let target = futures::sink::unfold((), |(), batch: Vec<u64>| async move {
        Err::<(), _>(Error::Rejected(vec![RejectedRecord::new(
            batch.len() - 1,
            "last one",
        )]))
    });
    let mut sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .max_records(2)
                .fsync(Fsync::Always)
                .dead_letter(dead_letter),
        )
        .await
        .unwrap();
    for x in 0..4u64 {
        sink.feed(x).await.unwrap();
    }
    let err = sink.close().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::BrokenTarget(BrokenTarget::EndedAfterError { .. })
        ),
        "{err:?}"
    );
    // The first batch is done with (record 1 rejected), the second stays.
    assert_eq!(
        dead.records().iter().map(|e| e.record).collect::<Vec<_>>(),
        vec![Some(1)]
    );
    assert_eq!(sink.wal_stats().committed_lsn, Lsn(2));
}

#[tokio::test]
async fn a_panicking_closure_target_stops_delivery_without_a_panic_in_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let dead_letter = MemorySink::<DeadLetter<u64>>::new();
    let dead = dead_letter.handle();
    let target = batch_target(|batch: Vec<u64>| async move {
        assert!(!batch.contains(&3), "target bug on 3");
        Ok(())
    });
    let sink = target
        .buffered_wal(
            WalConfig::new(dir.path())
                .max_records(1)
                .retry(deterministic(3))
                .dead_letter(dead_letter),
        )
        .await
        .unwrap();
    let err = stream::iter(0..5u64)
        .map(Ok)
        .forward(sink)
        .await
        .unwrap_err();
    match err {
        Error::BrokenTarget(BrokenTarget::Panicked { message }) => {
            assert!(message.contains("target bug on 3"), "{message}")
        }
        other => panic!("unexpected {other:?}"),
    }
    // Not retried into the dead-letter destination: record 3 stays in the log.
    assert!(dead.records().is_empty());

    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let mut sink = target
        .buffered_wal(WalConfig::new(dir.path()))
        .await
        .unwrap();
    sink.close().await.unwrap();
    // Records delivered before the panic may come again (at least once).
    assert!(
        delivered.records().ends_with(&[3, 4]),
        "{:?}",
        delivered.records()
    );
}

/// A target with setup and state: a JSON-lines table file, opened once,
/// whose every other write fails before anything is written.
struct TableFile {
    file: tokio::fs::File,
    writes: u32,
}

impl BatchTarget for TableFile {
    type Item = u64;

    async fn send(&mut self, batch: Vec<u64>) -> Result<(), Error> {
        use tokio::io::AsyncWriteExt;
        self.writes += 1;
        if self.writes % 2 == 1 {
            return Err(Error::target("table file", "disk busy"));
        }
        let lines: String = batch.iter().map(|x| format!("{x}\n")).collect();
        self.file
            .write_all(lines.as_bytes())
            .await
            .map_err(|e| Error::target("table file", e))?;
        self.file
            .sync_data()
            .await
            .map_err(|e| Error::target("table file", e))
    }

    async fn close(&mut self) -> Result<(), Error> {
        self.file
            .sync_all()
            .await
            .map_err(|e| Error::target("table file", e))
    }
}

#[tokio::test(start_paused = true)]
async fn a_stateful_batch_target_is_retried_on_the_same_state_and_gets_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table.jsonl");
    let file = tokio::fs::File::create(&table).await.unwrap();
    let target = BatchTargetSink::new(TableFile { file, writes: 0 });
    let sink = target
        .buffered_wal(
            WalConfig::new(dir.path().join("wal"))
                .max_records(7)
                .retry(deterministic(3)),
        )
        .await
        .unwrap();
    stream::iter(0..50u64).map(Ok).forward(sink).await.unwrap();

    let lines: Vec<u64> = std::fs::read_to_string(&table)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(lines, (0..50).collect::<Vec<_>>());
}
