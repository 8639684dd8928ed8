//! Batches fed to the target and made durable by one flush before their
//! commit: what a failed flush means, and how few flushes a steady backlog
//! costs.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::{stream, Sink, StreamExt};
use unistream::sink::{WalConfig, WalSinkExt};
use unistream::Error;

/// What the target holds: records taken but not flushed, and records made
/// durable by a flush.
#[derive(Default)]
struct Held {
    taken: Vec<u64>,
    durable: Vec<u64>,
    batches: u64,
    flushes: u64,
    /// Flushes still to fail (dropping what was taken, as a `FileSink`
    /// cuts its file back).
    failing_flushes: u64,
}

/// A target whose flush is where batches become durable.
struct FlushTarget(Arc<Mutex<Held>>);

impl Sink<Vec<u64>> for FlushTarget {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, batch: Vec<u64>) -> Result<(), Error> {
        let mut held = self.0.lock().unwrap();
        held.batches += 1;
        held.taken.extend(batch);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut held = self.0.lock().unwrap();
        if held.taken.is_empty() {
            return Poll::Ready(Ok(()));
        }
        held.flushes += 1;
        if held.failing_flushes > 0 {
            held.failing_flushes -= 1;
            held.taken.clear();
            return Poll::Ready(Err(Error::target("flush-target", "fdatasync failed")));
        }
        let taken = std::mem::take(&mut held.taken);
        held.durable.extend(taken);
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush(cx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_commits_nothing_of_its_batches_and_they_are_delivered_again() {
    let dir = tempfile::tempdir().unwrap();
    let held = Arc::new(Mutex::new(Held {
        failing_flushes: 2,
        ..Held::default()
    }));
    let n = 20_000u64;
    let sink = FlushTarget(held.clone())
        .buffered_wal(WalConfig::new(dir.path()).max_records(100))
        .await
        .unwrap();
    stream::iter(0..n).map(Ok).forward(sink).await.unwrap();

    let held = held.lock().unwrap();
    assert!(held.taken.is_empty(), "close flushed everything");
    assert_eq!(held.failing_flushes, 0, "both failures were met");
    // Every record durable at least once, in order of first appearance.
    let mut seen = vec![false; n as usize];
    let mut first_seen = Vec::new();
    for &r in &held.durable {
        if !std::mem::replace(&mut seen[r as usize], true) {
            first_seen.push(r);
        }
    }
    assert_eq!(first_seen, (0..n).collect::<Vec<_>>());

    // Nothing was committed that was not durable at the target: reopening
    // the log finds nothing left to deliver.
    drop(held);
    let again = Arc::new(Mutex::new(Held::default()));
    let sink = FlushTarget(again.clone())
        .buffered_wal(WalConfig::new(dir.path()))
        .await
        .unwrap();
    stream::iter(Vec::<u64>::new())
        .map(Ok)
        .forward(sink)
        .await
        .unwrap();
    assert!(again.lock().unwrap().durable.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_backlog_costs_fewer_flushes_than_batches() {
    let dir = tempfile::tempdir().unwrap();
    let held = Arc::new(Mutex::new(Held::default()));
    let n = 50_000u64;
    let sink = FlushTarget(held.clone())
        .buffered_wal(WalConfig::new(dir.path()).max_records(50))
        .await
        .unwrap();
    stream::iter(0..n).map(Ok).forward(sink).await.unwrap();
    let held = held.lock().unwrap();
    assert_eq!(held.durable, (0..n).collect::<Vec<_>>());
    assert_eq!(held.batches, n / 50);
    assert!(
        held.flushes < held.batches,
        "{} flushes for {} batches",
        held.flushes,
        held.batches
    );
}
