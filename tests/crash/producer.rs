//! A real crash test of `buffered_wal`: a child process (this test binary,
//! re-executed) sends numbered records through `buffered_wal` into a
//! `FileSink` (with `Fsync::Always`, and again with the default
//! `Fsync::Interval`) and prints every number it got an `Ok` for; the
//! parent kills it with SIGKILL at random moments, over and over,
//! restarting it after the highest number it saw acknowledged. After a last
//! run that closes cleanly, the target file must hold every acknowledged
//! number, in order, with duplicates only where a crash happened.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use futures::SinkExt;
use unistream::sink::{FileSink, WalConfig, WalSinkExt};
use unistream::wal::Fsync;

use crate::support::{child, seed};

/// Parameters of a child run: `<dir>;<first number>;<last number or
/// "none">;<"always" or "interval">;<seed of its group sizes>`.
const CHILD_ENV: &str = "UNISTREAM_CRASH_PRODUCER_CHILD";
const CHILD_TEST: &str = "crash_producer_child";
const KILLS: usize = 32;
const FINAL_RECORDS: u64 = 200;
/// Batch size towards the target; also bounds a re-send after a crash.
const MAX_RECORDS: usize = 20;

#[test]
fn crash_producer_loses_nothing() {
    // Each commit is durable before the next batch: a crash re-sends at
    // most one batch from the log.
    crash_and_check(
        "crash_producer_loses_nothing",
        "always",
        Some(MAX_RECORDS as u64),
    );
}

#[test]
fn crash_producer_with_interval_fsync_loses_nothing() {
    // A SIGKILL keeps what was written (the page cache survives the
    // process), so nothing acknowledged is lost under `Fsync::Interval`
    // either; the commit position is persisted about every 10 ms, so a
    // re-send can span several batches (no fixed bound to check).
    crash_and_check(
        "crash_producer_with_interval_fsync_loses_nothing",
        "interval",
        None,
    );
}

/// The kill loop of the test `test`: kill moments and the children's
/// group sizes come from its printed seed.
fn crash_and_check(test: &str, fsync: &str, max_resent: Option<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = seed::rng(module_path!(), test);
    let mut max_acknowledged: Option<u64> = None;
    let mut rounds_with_acks = 0;

    for _ in 0..KILLS {
        let first = max_acknowledged.map_or(0, |m| m + 1);
        let child = spawn_child(dir.path(), first, None, fsync, rng.u64(..));
        let delay = Duration::from_millis(rng.u64(20..300));
        let (acks, _) = run_child(child, Some(delay));
        if let Some(&last) = acks.last() {
            // The child acknowledges consecutive numbers from `first`.
            assert_eq!(acks, (first..=last).collect::<Vec<_>>());
            max_acknowledged = Some(last);
            rounds_with_acks += 1;
        }
    }
    // Most kills must hit a child in the middle of its work, or the test
    // proves little.
    assert!(
        rounds_with_acks >= KILLS / 2,
        "{rounds_with_acks} rounds acknowledged anything"
    );

    let first = max_acknowledged.map_or(0, |m| m + 1);
    let last = first + FINAL_RECORDS - 1;
    let final_run = spawn_child(dir.path(), first, Some(last), fsync, rng.u64(..));
    let (acks, closed) = run_child(final_run, None);
    assert!(closed, "the final run did not close cleanly");
    assert_eq!(acks, (first..=last).collect::<Vec<_>>());

    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    let delivered: Vec<u64> = text
        .lines()
        .map(|line| {
            line.parse()
                .unwrap_or_else(|e| panic!("bad line {line:?}: {e}"))
        })
        .collect();
    check_delivery(&delivered, last, KILLS, max_resent);
}

/// Every number from 0 to `last` delivered in order; the sequence only ever
/// goes up by one, or back (by at most `max_resent` records, when given),
/// at most twice per crash.
///
/// A crash can cause two re-sends, both of at most one batch: the log
/// redelivers the batch that was in the target's hands (written to the file,
/// not yet committed), and then the restarted child sends again the numbers
/// it had written to the log but was killed before printing (the parent
/// resumes after the last number it *saw* acknowledged).
fn check_delivery(delivered: &[u64], last: u64, crashes: usize, max_resent: Option<u64>) {
    assert_eq!(delivered.first(), Some(&0), "delivery does not start at 0");
    let mut backward = Vec::new();
    for (i, pair) in delivered.windows(2).enumerate() {
        let (prev, next) = (pair[0], pair[1]);
        if next <= prev {
            let resent = prev + 1 - next;
            if let Some(max) = max_resent {
                assert!(
                    resent <= max,
                    "line {}: {resent} records re-sent, more than one batch",
                    i + 1
                );
            }
            backward.push((i + 1, prev, next));
        } else {
            assert_eq!(
                next,
                prev + 1,
                "records {} to {} lost (at line {})",
                prev + 1,
                next - 1,
                i + 1
            );
        }
    }
    assert!(
        backward.len() <= 2 * crashes,
        "{} re-sends for {crashes} crashes: {backward:?}",
        backward.len()
    );
    // No forward gap and a start at 0: everything up to the maximum is there.
    assert_eq!(delivered.iter().max(), Some(&last));
    println!(
        "{} lines, numbers 0..={last}, {} re-sent runs after {crashes} kills",
        delivered.len(),
        backward.len()
    );
}

fn spawn_child(dir: &Path, first: u64, last: Option<u64>, fsync: &str, seed: u64) -> Child {
    let last = last.map_or("none".to_string(), |l| l.to_string());
    child::command(module_path!(), CHILD_TEST)
        .arg("--test-threads=1")
        .env(
            CHILD_ENV,
            format!("{};{first};{last};{fsync};{seed}", dir.display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Collects the child's acknowledged numbers; kills it after `kill_after`
/// (SIGKILL), or waits for it to exit. Returns the numbers and whether it
/// reported a clean close.
fn run_child(mut child: Child, kill_after: Option<Duration>) -> (Vec<u64>, bool) {
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        let mut closed = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The test harness may print "test … ... " before our first line.
            if let Some((_, n)) = line.rsplit_once("ACK ") {
                acks.push(n.trim().parse::<u64>().unwrap());
            } else if line.contains("CLOSED") {
                closed = true;
            }
        }
        (acks, closed)
    });
    match kill_after {
        Some(delay) => {
            std::thread::sleep(delay);
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
        None => {
            let status = child.wait().unwrap();
            assert!(status.success(), "child failed: {status}");
        }
    }
    reader.join().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the crash_producer tests"]
async fn crash_producer_child() {
    let params = std::env::var(CHILD_ENV).expect("run by the crash_producer tests only");
    let mut parts = params.split(';');
    let dir = Path::new(parts.next().unwrap()).to_path_buf();
    let first: u64 = parts.next().unwrap().parse().unwrap();
    let last: Option<u64> = parts.next().unwrap().parse().ok();
    let fsync = match parts.next().unwrap() {
        "always" => Fsync::Always,
        _ => Fsync::Interval(Duration::from_millis(10)),
    };
    let seed: u64 = parts.next().unwrap().parse().unwrap();

    let target = FileSink::<u64>::open(dir.join("out.jsonl")).await.unwrap();
    let mut sink = target
        .buffered_wal(
            WalConfig::new(dir.join("wal"))
                .fsync(fsync)
                .segment_bytes(4096)
                .max_records(MAX_RECORDS)
                .max_age(Duration::from_millis(2)),
        )
        .await
        .unwrap();

    let mut rng = fastrand::Rng::with_seed(seed);
    let mut next = first;
    loop {
        // Groups of 1 to 10 records acknowledged by one flush.
        let count = rng.u64(1..=10);
        let end = last.map_or(next + count, |last| (next + count).min(last + 1));
        for n in next..end {
            sink.feed(n).await.unwrap();
        }
        sink.flush().await.unwrap();
        let mut out = std::io::stdout().lock();
        for n in next..end {
            writeln!(out, "ACK {n}").unwrap();
        }
        out.flush().unwrap();
        drop(out);
        next = end;
        if last.is_some_and(|last| next > last) {
            break;
        }
    }
    sink.close().await.unwrap();
    println!("CLOSED");
}
