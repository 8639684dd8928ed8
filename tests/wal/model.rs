//! Property test: random sequences of append, sync, deliver (read), commit,
//! rewind and crash agree with a simple in-memory model of the log.
//!
//! A crash drops every handle and cuts the last segment at a random byte
//! *after* the last fdatasynced record (what survives a real crash is at
//! least what was synced; sealed segments are synced when sealed). The
//! model then keeps exactly the records whose frames are still complete.
//! Reopening waits for the previous instance's background committer, so a
//! position given to `start_commit` before the crash is persisted too.
//! Checked after every step: lsns are dense and ordered, every batch is
//! exactly the model's next records (so nothing synced is lost, order is
//! kept, and the only records seen twice are those read but not committed
//! before a crash or rewind), and recovery reports what the cut removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use unistream::wal::{Fsync, Lsn, Wal, WalOptions, WalReader};

use crate::support::seed;

const SEGMENT_BYTES: u64 = 160;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Vec<u8>>),
    Sync,
    Deliver {
        max_records: usize,
        max_bytes: usize,
    },
    /// Commit a fraction (of 255) of what was read and not committed.
    Commit(u8),
    /// The same through the background committer (not awaited).
    StartCommit(u8),
    Rewind,
    /// Crash, cutting the unsynced part of the last segment at this
    /// fraction (of 65535).
    Crash(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let payload = prop::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        6 => prop::collection::vec(payload, 1..6).prop_map(Op::Append),
        1 => Just(Op::Sync),
        4 => (1usize..8, 1usize..120).prop_map(|(max_records, max_bytes)| Op::Deliver { max_records, max_bytes }),
        2 => any::<u8>().prop_map(Op::Commit),
        2 => any::<u8>().prop_map(Op::StartCommit),
        1 => Just(Op::Rewind),
        2 => any::<u16>().prop_map(Op::Crash),
    ]
}

fn fsync_policy() -> impl Strategy<Value = Fsync> {
    prop_oneof![
        Just(Fsync::Always),
        Just(Fsync::Never),
        Just(Fsync::Interval(Duration::from_millis(1))),
    ]
}

/// What the log must hold.
#[derive(Debug, Default)]
struct Model {
    /// Records not yet committed, in lsn order (dense).
    records: Vec<(u64, Vec<u8>)>,
    next_lsn: u64,
    committed: u64,
    /// Next lsn the reader returns.
    read: u64,
}

impl Model {
    fn expected_batch(&self, max_records: usize, max_bytes: usize) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for (lsn, payload) in self.records.iter().filter(|(l, _)| *l >= self.read) {
            if out.len() == max_records || (!out.is_empty() && bytes + payload.len() > max_bytes) {
                break;
            }
            bytes += payload.len();
            out.push((*lsn, payload.clone()));
        }
        out
    }
}

/// Frames in a segment: (lsn, end offset) of every complete frame. Zero
/// bytes where a frame header would be are preallocated space, not a frame
/// (a real header is never all zero: it ends with a checksum of its first
/// 8 bytes, which is not zero for zero bytes).
fn frame_ends(path: &Path, first: u64) -> Vec<(u64, u64)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 16usize;
    let mut lsn = first;
    while at + 12 <= bytes.len() {
        if bytes[at..at + 12].iter().all(|&b| b == 0) {
            break;
        }
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if at + 12 + len > bytes.len() {
            break;
        }
        at += 12 + len;
        out.push((lsn, at as u64));
        lsn += 1;
    }
    out
}

fn last_segment(dir: &Path) -> (PathBuf, u64) {
    let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let first = name.strip_suffix(".wal")?.parse().ok()?;
            Some((first, e.path()))
        })
        .collect();
    segments.sort();
    let (first, path) = segments.pop().unwrap();
    (path, first)
}

fn scratch_dir() -> tempfile::TempDir {
    // The model test is about logic: use tmpfs when there is one so that
    // its many fsyncs are cheap.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

async fn run(fsync: Fsync, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = scratch_dir();
    let options = WalOptions::new(dir.path())
        .segment_bytes(SEGMENT_BYTES)
        .fsync(fsync);
    let mut model = Model::default();
    let (mut writer, mut reader, _) = Wal::open(options.clone()).await.unwrap();
    for op in ops {
        match op {
            Op::Append(records) => {
                let n = records.len() as u64;
                let lsn = writer.append(records.clone()).await.unwrap();
                prop_assert_eq!(lsn, Lsn(model.next_lsn));
                for (i, r) in records.into_iter().enumerate() {
                    model.records.push((model.next_lsn + i as u64, r));
                }
                model.next_lsn += n;
                if fsync == Fsync::Always {
                    prop_assert_eq!(writer.stats().synced_lsn, Lsn(model.next_lsn));
                }
            }
            Op::Sync => {
                writer.sync().await.unwrap();
                prop_assert_eq!(writer.stats().synced_lsn, Lsn(model.next_lsn));
            }
            Op::Deliver {
                max_records,
                max_bytes,
            } => {
                let expected = model.expected_batch(max_records, max_bytes);
                let got: Vec<(u64, Vec<u8>)> = reader
                    .next_batch(max_records, max_bytes)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.lsn.0, r.payload.to_vec()))
                    .collect();
                prop_assert_eq!(&got, &expected);
                model.read += got.len() as u64;
                let backlog = reader.backlog();
                prop_assert_eq!(backlog.records, model.next_lsn - model.read);
                let bytes: usize = model
                    .records
                    .iter()
                    .filter(|(l, _)| *l >= model.read)
                    .map(|(_, p)| p.len())
                    .sum();
                prop_assert_eq!(backlog.bytes, bytes as u64);
            }
            Op::Commit(fraction) => {
                let upto =
                    model.committed + (model.read - model.committed) * u64::from(fraction) / 255;
                reader.commit(Lsn(upto)).await.unwrap();
                model.committed = model.committed.max(upto);
                model.records.retain(|(l, _)| *l >= model.committed);
                prop_assert_eq!(reader.committed(), Lsn(model.committed));
                prop_assert_eq!(reader.durable_committed(), Lsn(model.committed));
            }
            Op::StartCommit(fraction) => {
                let upto =
                    model.committed + (model.read - model.committed) * u64::from(fraction) / 255;
                reader.start_commit(Lsn(upto)).unwrap();
                model.committed = model.committed.max(upto);
                model.records.retain(|(l, _)| *l >= model.committed);
                prop_assert_eq!(reader.committed(), Lsn(model.committed));
            }
            Op::Rewind => {
                reader.rewind(Lsn(model.committed));
                model.read = model.committed;
            }
            Op::Crash(fraction) => {
                let synced = writer.stats().synced_lsn.0;
                drop(writer);
                drop(reader);
                let (path, first) = last_segment(dir.path());
                let ends = frame_ends(&path, first);
                let len = std::fs::metadata(&path).unwrap().len();
                let synced_end = ends
                    .iter()
                    .rev()
                    .find(|(lsn, _)| *lsn < synced)
                    .map_or(16, |&(_, end)| end);
                let cut = synced_end + (len - synced_end) * u64::from(fraction) / 65535;
                let bytes = std::fs::read(&path).unwrap();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
                let complete_end = ends
                    .iter()
                    .rev()
                    .find(|(_, end)| *end <= cut)
                    .map_or(16, |&(_, end)| end);
                let survivors = ends.iter().filter(|(_, end)| *end <= cut).count() as u64;
                let cut_lsn = first + survivors;
                prop_assert!(
                    cut_lsn >= synced.min(model.next_lsn),
                    "cut removed a synced record"
                );
                model.records.retain(|(l, _)| *l < cut_lsn);
                model.next_lsn = cut_lsn.max(model.committed);
                model.read = model.committed;

                let (w, r, recovery) = Wal::open(options.clone()).await.unwrap();
                writer = w;
                reader = r;
                // A part of a frame is torn and cut off; zero bytes after the
                // frames (space preallocated under Fsync::Always) are not.
                let tail = &bytes[complete_end as usize..cut as usize];
                let torn = if tail.iter().all(|&b| b == 0) {
                    0
                } else {
                    cut - complete_end
                };
                prop_assert_eq!(recovery.truncated_tail_bytes, torn);
                prop_assert_eq!(
                    recovery.uncommitted_records,
                    model.next_lsn - model.committed
                );
                prop_assert!(recovery.quarantined.is_empty());
                prop_assert_eq!(writer.stats().next_lsn, Lsn(model.next_lsn));
                prop_assert_eq!(reader.committed(), Lsn(model.committed));
            }
        }
    }
    // Everything left comes out, in order, exactly once more.
    drain_and_check(&mut reader, &model).await?;
    drop((writer, reader));
    let (_writer, mut reader, recovery) = Wal::open(options).await.unwrap();
    prop_assert_eq!(
        recovery.uncommitted_records,
        model.next_lsn - model.committed
    );
    model.read = model.committed;
    drain_and_check(&mut reader, &model).await?;
    Ok(())
}

async fn drain_and_check(reader: &mut WalReader, model: &Model) -> Result<(), TestCaseError> {
    let mut got = Vec::new();
    loop {
        let batch = reader.next_batch(16, usize::MAX).await.unwrap();
        if batch.is_empty() {
            break;
        }
        got.extend(batch.into_iter().map(|r| (r.lsn.0, r.payload.to_vec())));
    }
    let expected: Vec<(u64, Vec<u8>)> = model
        .records
        .iter()
        .filter(|(l, _)| *l >= model.read)
        .cloned()
        .collect();
    prop_assert_eq!(got, expected);
    Ok(())
}

proptest! {
    #![proptest_config(seed::proptest_config(
        module_path!(),
        "wal_agrees_with_the_model",
        ProptestConfig { cases: 256, .. ProptestConfig::default() },
    ))]

    #[test]
    fn wal_agrees_with_the_model(fsync in fsync_policy(), ops in prop::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(fsync, ops))?;
    }
}
