//! Two processes never have one log open at once: the second gets a typed
//! error, and the lock goes with its holder, even when that is killed.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use unistream::wal::{Wal, WalError, WalOptions};

use crate::support::child;

const CHILD_ENV: &str = "UNISTREAM_WAL_LOCK_CHILD_DIR";
const CHILD_TEST: &str = "child_holds_the_log_open";
const OPENED: &str = "log-opened-by-child";

#[tokio::test]
async fn a_log_open_in_another_process_is_refused_until_that_process_dies() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = child::command(module_path!(), CHILD_TEST)
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // libtest may print the test's name on the same line first.
    let opened = lines.find(|l| l.as_ref().is_ok_and(|l| l.ends_with(OPENED)));
    assert!(opened.is_some(), "the child did not open the log");

    let err = Wal::open(WalOptions::new(dir.path())).await.unwrap_err();
    assert!(
        matches!(&err, WalError::LockedElsewhere { dir: d } if d == dir.path()),
        "{err:?}"
    );
    assert!(err.to_string().contains("another process"), "{err}");

    // A killed holder leaves no stale lock behind.
    child.kill().unwrap();
    child.wait().unwrap();
    let (writer, reader, recovery) = Wal::open(WalOptions::new(dir.path())).await.unwrap();
    assert_eq!(recovery.uncommitted_records, 1, "{recovery:?}");
    drop((writer, reader));
}

/// The child half: opens the log, appends one record, says so, and keeps
/// the log open until killed (or until its stdin closes).
#[tokio::test]
#[ignore = "child process of a_log_open_in_another_process_is_refused_until_that_process_dies"]
async fn child_holds_the_log_open() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (writer, _reader, _) = Wal::open(WalOptions::new(dir)).await.unwrap();
    writer.append(vec![b"held".to_vec()]).await.unwrap();
    println!("{OPENED}");
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_at_once_in_the_same_process_never_meets_its_own_lock() {
    // The previous instance's tasks release the directory on another
    // thread while the next open waits for it: the file lock must be gone
    // by the time the directory counts as released.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..300u32 {
        let (writer, reader, _) = Wal::open(WalOptions::new(dir.path()))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        writer
            .append(vec![round.to_le_bytes().to_vec()])
            .await
            .unwrap();
        drop((writer, reader));
    }
}
