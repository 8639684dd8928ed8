//! `FileSource`: lines read, and the bytes of the file after the last
//! complete line read (an incomplete last line is lag).

use futures::TryStreamExt;
use unistream::observe::names::*;
use unistream::source::FileSource;

use crate::recorder::{run_real_time, TestRecorder};

#[test]
fn lines_read_and_the_lag_behind_the_end_of_the_file_are_recorded() {
    let recorder = TestRecorder::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("numbers.jsonl");
    // Five lines, then 7 bytes of a line not finished yet.
    std::fs::write(&path, b"1\n2\n3\n4\n5\n6666666").unwrap();
    let source = FileSource::<u32>::new(&path);
    let label = source.partition();
    let read: Vec<u32> = run_real_time(&recorder, async {
        source
            .stream()
            .map_ok(|(n, _token)| n)
            .try_collect()
            .await
            .unwrap()
    });
    assert_eq!(read, vec![1, 2, 3, 4, 5]);
    let path_label = [(LABEL_PATH, label.as_str())];
    assert_eq!(recorder.counter(FILE_SOURCE_RECORDS, &path_label), 5);
    assert_eq!(
        recorder.gauge(FILE_SOURCE_LAG_BYTES, &path_label),
        Some(7.0)
    );
}
