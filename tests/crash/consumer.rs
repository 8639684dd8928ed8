//! Real crash test of a checkpointed consumer: a child process (this test
//! binary re-executing itself) reads a 100,000-record file with
//! `FileSource` + `checkpoint_batched(N, …)` into a `JsonFileCheckpointStore`,
//! appending the id of every record it processes to a per-run log (one
//! `write` per record). The parent kills it with SIGKILL at random moments,
//! at least 30 times, restarting it each time, then lets a last run finish.
//!
//! Checked: every record was processed at least once, and each run re-saw at
//! most `N` records already processed by earlier runs.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use futures::{SinkExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use unistream::checkpoint::{CheckpointStreamExt, JsonFileCheckpointStore};
use unistream::sink::FileSink;
use unistream::source::FileSource;

use crate::support::{child, seed};

const CHILD_ENV: &str = "UNISTREAM_CRASH_CONSUMER_DIR";
const CHILD_TEST: &str = "consumer_child";
const RUN_ENV: &str = "UNISTREAM_CRASH_CONSUMER_RUN";
const RECORDS: u64 = 100_000;
const N: usize = 250;
const KILLS: usize = 30;

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    id: u64,
    payload: String,
}

fn records_path(dir: &Path) -> PathBuf {
    dir.join("records.jsonl")
}

fn log_path(dir: &Path, run: usize) -> PathBuf {
    dir.join(format!("processed.{run}.log"))
}

fn spawn_child(dir: &Path, run: usize) -> Child {
    child::command(module_path!(), CHILD_TEST)
        .env(CHILD_ENV, dir)
        .env(RUN_ENV, run.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child")
}

fn read_ids(path: &Path) -> Vec<u64> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new(); // killed before it opened its log
    };
    // A kill cannot tear a single small write, but be strict anyway: only
    // complete lines count.
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| l.trim_end().parse().expect("log line is an id"))
        .collect()
}

#[test]
fn consumer_killed_at_random_moments_reprocesses_at_most_n() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut sink = FileSink::open(records_path(dir.path())).await.unwrap();
        for batch in 0..RECORDS / 1000 {
            let records = (batch * 1000..(batch + 1) * 1000)
                .map(|id| Record {
                    id,
                    payload: "x".repeat(40),
                })
                .collect();
            sink.send(records).await.unwrap();
        }
        sink.close().await.unwrap();
    });

    let mut rng = seed::rng(
        module_path!(),
        "consumer_killed_at_random_moments_reprocesses_at_most_n",
    );
    let mut kills = 0;
    let mut run = 0;
    loop {
        let mut child = spawn_child(dir.path(), run);
        if kills < KILLS {
            std::thread::sleep(Duration::from_millis(rng.u64(15..150)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                run += 1;
                continue;
            }
        }
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "run {run} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        break;
    }
    assert!(kills >= KILLS);
    assert!(
        dir.path().join("done").exists(),
        "the last run must reach the end"
    );

    let mut seen: HashSet<u64> = HashSet::new();
    let mut max_reseen = 0;
    for r in 0..=run {
        let ids = read_ids(&log_path(dir.path(), r));
        let reseen = ids.iter().filter(|id| seen.contains(id)).count();
        assert!(
            reseen <= N,
            "run {r} re-processed {reseen} records (n = {N})"
        );
        max_reseen = max_reseen.max(reseen);
        seen.extend(ids);
    }
    let missing: Vec<u64> = (0..RECORDS)
        .filter(|id| !seen.contains(id))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "never processed: {missing:?}…");
    assert_eq!(seen.len() as u64, RECORDS);
    // The kills must have hit while records were being processed, or the
    // test proves nothing about restarts.
    assert!(max_reseen > 0, "no run ever re-processed a record");
    eprintln!(
        "{kills} kills, {} runs, at most {max_reseen} records re-seen per run",
        run + 1
    );
}

#[test]
#[ignore = "child process of consumer_killed_at_random_moments_reprocesses_at_most_n"]
fn consumer_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return; // run by hand without a parent: nothing to do
    };
    let run: usize = std::env::var(RUN_ENV).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = JsonFileCheckpointStore::new(dir.join("checkpoints.json"));
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(&dir, run))
            .unwrap();
        let mut processed = 0u64;
        FileSource::<Record>::new(records_path(&dir))
            .resume_from(store.clone())
            .stream()
            .and_then(move |(record, token)| {
                // "Processing" is recording the id: one unbuffered write.
                let written = log.write_all(format!("{}\n", record.id).as_bytes());
                processed += 1;
                // Pace the consumer so that the kills land mid-file.
                let pause = processed.is_multiple_of(50);
                async move {
                    written.map_err(|e| unistream::Error::io("append to", "log", e))?;
                    if pause {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Ok(token)
                }
            })
            .checkpoint_batched(N, Duration::from_millis(500), store)
            .try_for_each(|_| async { Ok(()) })
            .await
            .unwrap();
    });
    std::fs::write(dir.join("done"), b"").unwrap();
}
