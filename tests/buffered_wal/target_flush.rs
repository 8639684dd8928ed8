//! Batches fed to the target and made durable by one flush before their
//! commit: a batch is never committed before the flush that made it
//! durable, a failed flush commits none of its batches (they are delivered
//! again, in order), and a steady backlog costs fewer flushes than
//! batches. Also end to end with a `FileSink`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{stream, Sink, SinkExt, StreamExt};
use unistream::dead_letter::DeadLetter;
use unistream::sink::MemorySink;
use unistream::sink::{FileSink, WalConfig, WalSinkExt};
use unistream::wal::Fsync;
use unistream::{Error, RejectedRecord, RetryPolicy};

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
    /// Every record below this is durable (records are made durable in
    /// order, possibly again after a failed flush).
    durable_upto: u64,
    /// Records divisible by this are rejected (reported by the next
    /// `poll_ready`, as a batch sink does), never taken.
    reject_multiples_of: Option<u64>,
    /// Rejections of the last batch, not reported yet.
    rejected: Vec<RejectedRecord>,
    /// A batch holding a multiple of this fails whole, transiently (by
    /// the next `poll_ready` or `poll_flush`), and nothing of it is taken.
    fail_batches_with_multiples_of: Option<u64>,
    /// The last batch failed, not reported yet.
    batch_failed: bool,
}

/// A target whose flush is where batches become durable.
struct FlushTarget(Arc<Mutex<Held>>);

impl Sink<Vec<u64>> for FlushTarget {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut held = self.0.lock().unwrap();
        if std::mem::take(&mut held.batch_failed) {
            return Poll::Ready(Err(Error::target("flush-target", "batch refused")));
        }
        let rejected = std::mem::take(&mut held.rejected);
        if rejected.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Ready(Err(Error::Rejected(rejected)))
        }
    }

    fn start_send(self: Pin<&mut Self>, batch: Vec<u64>) -> Result<(), Error> {
        let mut held = self.0.lock().unwrap();
        held.batches += 1;
        if let Some(k) = held.fail_batches_with_multiples_of {
            if batch.iter().any(|r| r % k == 0) {
                held.batch_failed = true;
                return Ok(());
            }
        }
        for (index, r) in batch.into_iter().enumerate() {
            match held.reject_multiples_of {
                Some(k) if r % k == 0 => held
                    .rejected
                    .push(RejectedRecord::new(index, format!("{r} refused"))),
                _ => held.taken.push(r),
            }
        }
        Ok(())
    }

    /// Makes what was taken durable, then reports the rejections of the
    /// last batch not reported yet (as `poll_ready` would).
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut held = self.0.lock().unwrap();
        if std::mem::take(&mut held.batch_failed) {
            return Poll::Ready(Err(Error::target("flush-target", "batch refused")));
        }
        if !held.taken.is_empty() {
            held.flushes += 1;
            if held.failing_flushes > 0 {
                held.failing_flushes -= 1;
                held.taken.clear();
                // Everything since the last flush is to be sent again.
                held.rejected.clear();
                return Poll::Ready(Err(Error::target("flush-target", "fdatasync failed")));
            }
            let taken = std::mem::take(&mut held.taken);
            for &r in &taken {
                if r == held.durable_upto {
                    held.durable_upto += 1;
                }
            }
            held.durable.extend(taken);
        }
        let rejected = std::mem::take(&mut held.rejected);
        if rejected.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Ready(Err(Error::Rejected(rejected)))
        }
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

    {
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
    }

    // The batches of the failed flushes were committed once delivered
    // again: close committed everything, and a reopened log delivers
    // nothing.
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

/// Forwards records `0..n` through `buffered_wal(config)` (batches of 100,
/// a memory dead-letter sink) into a `FlushTarget` holding `held`: the
/// target's state and the records dead-lettered, sorted, duplicates kept.
async fn forward_with_dead_letters(
    held: Held,
    n: u64,
    config: impl FnOnce(WalConfig) -> WalConfig,
) -> (Arc<Mutex<Held>>, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let held = Arc::new(Mutex::new(held));
    let dead_letter = MemorySink::<DeadLetter<u64>>::new();
    let dead = dead_letter.handle();
    let sink = FlushTarget(held.clone())
        .buffered_wal(config(WalConfig::new(dir.path()).max_records(100)).dead_letter(dead_letter))
        .await
        .unwrap();
    stream::iter(0..n).map(Ok).forward(sink).await.unwrap();
    let mut dead: Vec<u64> = dead
        .records()
        .into_iter()
        .map(|entry| entry.record.expect("a decoded record"))
        .collect();
    dead.sort_unstable();
    (held, dead)
}

/// The records the target made durable, each once, sorted.
fn durable_once(held: &Held) -> Vec<u64> {
    let mut durable = held.durable.clone();
    durable.sort_unstable();
    durable.dedup();
    durable
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_rejected_in_a_group_whose_flush_fails_are_dead_lettered_once() {
    let n = 20_000u64;
    let target = Held {
        failing_flushes: 2,
        reject_multiples_of: Some(97),
        ..Held::default()
    };
    let (held, dead) = forward_with_dead_letters(target, n, |config| config).await;

    let held = held.lock().unwrap();
    assert_eq!(held.failing_flushes, 0, "both failures were met");
    // Each refused record once, though the batches of two groups were
    // refused twice (once before their failed flush, once after).
    let refused: Vec<u64> = (0..n).filter(|r| r % 97 == 0).collect();
    assert_eq!(dead, refused);
    let durable = durable_once(&held);
    let taken: Vec<u64> = (0..n).filter(|r| r % 97 != 0).collect();
    assert_eq!(durable, taken, "every other record made durable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_given_up_on_around_failed_flushes_are_dead_lettered_once() {
    // Batches holding a multiple of 1,000 fail whole on both attempts and
    // are given up on; their dead letters wait for the flush of the
    // batches fed after them. The first flush fails: it is the flush of
    // the batches after the first failing one, [0, 100), which lies below
    // them and is not delivered again, so its dead letters must survive
    // the failed flush. (The retry absorbs the failed flush.) Commits
    // while busy only once a second: the first group is the whole run up
    // to the first flush.
    let n = 20_000u64;
    let target = Held {
        failing_flushes: 1,
        fail_batches_with_multiples_of: Some(1_000),
        ..Held::default()
    };
    let (held, mut dead) = forward_with_dead_letters(target, n, |config| {
        config.fsync(Fsync::Interval(Duration::from_secs(1))).retry(
            RetryPolicy::new()
                .max_attempts(2)
                .initial_backoff(Duration::from_millis(1))
                .jitter(false),
        )
    })
    .await;

    let held = held.lock().unwrap();
    assert_eq!(held.failing_flushes, 0, "every failure was met");
    let given_up = dead.len();
    dead.dedup();
    assert_eq!(dead.len(), given_up, "no record dead-lettered twice");
    // Every multiple of 1,000 fails, and so does the rest of its batch (of
    // at most 100 records): nothing else.
    for m in (0..n).step_by(1_000) {
        assert!(dead.binary_search(&m).is_ok(), "{m} dead-lettered");
    }
    for &r in &dead {
        let near = r % 1_000 < 100 || r % 1_000 > 900;
        assert!(near, "{r} was in no failing batch");
    }
    // Everything else made durable; nothing both.
    let durable = durable_once(&held);
    let mut all = durable.clone();
    all.extend(&dead);
    all.sort_unstable();
    assert_eq!(
        all,
        (0..n).collect::<Vec<_>>(),
        "each record durable or dead"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_batch_is_committed_before_the_flush_that_made_it_durable() {
    // Flushes fail now and then; the committed position is watched while
    // records stream in: it must never pass what the target made durable.
    let dir = tempfile::tempdir().unwrap();
    let held = Arc::new(Mutex::new(Held {
        failing_flushes: 3,
        ..Held::default()
    }));
    let n = 40_000u64;
    let mut sink = FlushTarget(held.clone())
        .buffered_wal(
            WalConfig::new(dir.path())
                .max_records(100)
                // The failed flushes are retried at once, so that records
                // are delivered and committed while the rest is sent.
                .retry(
                    RetryPolicy::new()
                        .max_attempts(10)
                        .initial_backoff(Duration::from_millis(1))
                        .jitter(false),
                ),
        )
        .await
        .unwrap();
    let mut watched_commits = 0;
    for r in 0..n {
        sink.feed(r).await.unwrap();
        if r % 1_000 == 999 {
            // Acknowledged (durable in the log, about one fsync interval):
            // meanwhile the delivery task flushes and commits.
            sink.flush().await.unwrap();
        }
        if r % 50 == 0 {
            // Committed first, durable second: durability only grows, so a
            // commit that came before its flush shows as committed > durable.
            let committed = sink.wal_stats().committed_lsn.0;
            let durable = held.lock().unwrap().durable_upto;
            assert!(
                committed <= durable,
                "committed up to {committed}, durable at the target only up to {durable}"
            );
            if committed > 0 {
                watched_commits += 1;
            }
        }
    }
    sink.close().await.unwrap();
    let held = held.lock().unwrap();
    assert_eq!(held.failing_flushes, 0, "every failure was met");
    assert_eq!(held.durable_upto, n);
    assert!(watched_commits > 0, "no commit seen while sending");
    assert_eq!(sink.wal_stats().committed_lsn.0, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sink_with_default_settings_gets_every_record_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let n = 30_000u64;
    let sink = FileSink::<u64>::open(&path)
        .await
        .unwrap()
        .buffered_wal(WalConfig::new(dir.path().join("wal")))
        .await
        .unwrap();
    stream::iter(0..n).map(Ok).forward(sink).await.unwrap();
    let lines: Vec<u64> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(lines, (0..n).collect::<Vec<_>>());

    // Everything was committed: a reopened log delivers nothing again.
    let sink = FileSink::<u64>::open(&path)
        .await
        .unwrap()
        .buffered_wal(WalConfig::new(dir.path().join("wal")))
        .await
        .unwrap();
    assert_eq!(sink.recovery().uncommitted_records, 0);
    stream::iter(Vec::<u64>::new())
        .map(Ok)
        .forward(sink)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count() as u64,
        n
    );
}
