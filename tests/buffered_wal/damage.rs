//! `buffered_wal` over a damaged log: intact records are delivered, every
//! quarantined range is reported as a typed value by the sink (at open
//! through `recovery()`, while delivering through `quarantined()`), and
//! under `OnCorruption::Fail` damage in records still needed is a typed
//! error naming the file and offset.

use futures::SinkExt;
use unistream::sink::{MemorySink, WalConfig, WalSinkExt};
use unistream::wal::{Lsn, OnCorruption, WalError};
use unistream::Error;

use crate::support::wal::{flip_byte, frame_offsets, segment_path};

/// 128-byte segments hold a few records each; where their frames are is
/// read from the files.
const SEGMENT: u64 = 128;

fn config(dir: &std::path::Path, mode: OnCorruption) -> WalConfig {
    WalConfig::new(dir)
        .segment_bytes(SEGMENT)
        .max_records(4)
        .on_corruption(mode)
}

/// Records 0..n acknowledged by a sink whose target never takes them.
async fn write_undelivered(dir: &std::path::Path, n: u64) {
    let stuck = MemorySink::<u64>::new();
    stuck.handle().stall();
    let mut sink = stuck
        .buffered_wal(config(dir, OnCorruption::Fail))
        .await
        .unwrap();
    for i in 0..n {
        sink.send(i).await.unwrap();
    }
    drop(sink); // no close: the records stay in the log
}

/// The segments of the log in `dir`, by first lsn.
fn segment_firsts(dir: &std::path::Path) -> Vec<u64> {
    let mut firsts: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    firsts.sort();
    firsts
}

#[tokio::test]
async fn quarantined_ranges_are_reported_by_the_sink_and_intact_records_delivered() {
    let dir = tempfile::tempdir().unwrap();
    write_undelivered(dir.path(), 40).await;
    let firsts = segment_firsts(dir.path());
    assert!(firsts.len() >= 3, "{firsts:?}");
    // A header in a sealed segment (found while delivering) and the first
    // one of the last segment, with frames after it (found at open).
    let sealed = segment_path(dir.path(), firsts[1]);
    let sealed_at = frame_offsets(&sealed)[1];
    let sealed_lsn = firsts[1] + 1;
    let last_first = *firsts.last().unwrap();
    let last = segment_path(dir.path(), last_first);
    let last_frames = frame_offsets(&last);
    assert!(last_frames.len() >= 2, "{last_frames:?}");
    let last_at = last_frames[0];
    flip_byte(&sealed, sealed_at + 2);
    flip_byte(&last, last_at + 6);

    let opened = MemorySink::<u64>::new()
        .buffered_wal(config(dir.path(), OnCorruption::Fail))
        .await;
    match opened {
        Err(Error::Wal(WalError::Corrupt { file, offset, .. })) => {
            assert_eq!((file, offset), (last.clone(), last_at));
        }
        Err(other) => panic!("expected a corrupt WAL, got {other:?}"),
        Ok(_) => panic!("Fail mode: needed records are damaged, yet it opened"),
    }

    let target = MemorySink::<u64>::new();
    let delivered = target.handle();
    let mut sink = target
        .buffered_wal(config(dir.path(), OnCorruption::Quarantine))
        .await
        .unwrap();
    let recovery = sink.recovery().clone();
    assert_eq!(recovery.quarantined.len(), 1, "{recovery:?}");
    let at_open = &recovery.quarantined[0];
    assert_eq!(
        (
            at_open.file.clone(),
            at_open.offset,
            at_open.lsns,
            at_open.records,
            at_open.records_exact
        ),
        (
            last.clone(),
            last_at,
            (Lsn(last_first), Lsn(last_first + 1)),
            1,
            true
        )
    );
    assert_eq!(recovery.salvaged_records, last_frames.len() as u64 - 1);
    assert_eq!(recovery.uncommitted_records, 39);
    assert_eq!(recovery.next_lsn, Lsn(40));
    sink.send(40).await.unwrap();
    sink.close().await.unwrap();

    let lost = [sealed_lsn, last_first];
    let expected: Vec<u64> = (0..41).filter(|i| !lost.contains(i)).collect();
    assert_eq!(delivered.records(), expected);
    let quarantined = sink.quarantined();
    let ranges: Vec<_> = quarantined
        .iter()
        .map(|q| (q.file.clone(), q.offset, q.lsns, q.records, q.records_exact))
        .collect();
    assert_eq!(
        ranges,
        vec![
            (
                last.clone(),
                last_at,
                (Lsn(last_first), Lsn(last_first + 1)),
                1,
                true
            ),
            (
                sealed.clone(),
                sealed_at,
                (Lsn(sealed_lsn), Lsn(sealed_lsn + 1)),
                1,
                true
            ),
        ],
        "at open, then while delivering"
    );
    assert!(quarantined.iter().all(|q| q.moved_to.exists()));
}
