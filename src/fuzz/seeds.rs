//! Seed inputs for the fuzz targets, made by the crate itself: real log
//! directories written through [`Wal`], position files from the WAL's own
//! encoder, aggregates from the [`Aggregator`](crate::kinesis::aggregation::Aggregator),
//! documents saved by [`JsonFileCheckpointStore`], JSON lines from
//! [`JsonCodec`]. Small on purpose: the fuzzer grows them.

use std::path::Path;

use super::scratch::ScratchDir;
use super::wal_recovery::encode_dir;
use crate::checkpoint::{CheckpointStore, JsonFileCheckpointStore, Position};
use crate::codec::{Codec, JsonCodec};
use crate::wal::{
    encode_position_file, encode_position_slot, position_slot_offset, Fsync, Lsn, Wal, WalOptions,
    POSITION_FILE, POSITION_SLOT_LEN,
};

/// One seed input: the target it is for, a file name, the bytes.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The fuzz target.
    pub target: &'static str,
    /// File name in `fuzz/corpus/<target>/`.
    pub name: String,
    /// The input.
    pub bytes: Vec<u8>,
}

/// Every target's seeds (the KPL ones only with feature `kinesis`).
pub fn all() -> std::io::Result<Vec<Seed>> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push(Seed {
            target,
            name: name.to_owned(),
            bytes,
        })
    };
    for (name, bytes) in wal_dirs()? {
        add("wal_recovery", &name, bytes);
    }
    for (name, bytes) in position_files() {
        add("wal_position", &name, bytes);
    }
    #[cfg(feature = "kpl")]
    for (name, bytes) in aggregates() {
        add("kpl_deaggregate", &name, bytes);
    }
    for (name, bytes) in checkpoint_documents() {
        add("checkpoint_json", &name, bytes);
    }
    for (name, bytes) in json_line_files() {
        add("file_source", &name, bytes);
    }
    Ok(seeds)
}

/// Writes every seed to `<corpus>/<target>/<name>`.
pub fn write_all(corpus: &Path) -> std::io::Result<usize> {
    let seeds = all()?;
    for seed in &seeds {
        let dir = corpus.join(seed.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&seed.name), &seed.bytes)?;
    }
    Ok(seeds.len())
}

/// A log written through the WAL: `batches` appended (each a list of
/// payload sizes), then everything below `commit` committed.
fn written_log(
    dir: &Path,
    segment_bytes: u64,
    fsync: Fsync,
    batches: &[&[usize]],
    commit: u64,
) -> std::io::Result<()> {
    let runtime = super::runtime();
    runtime
        .block_on(async {
            let options = WalOptions::new(dir)
                .segment_bytes(segment_bytes)
                .fsync(fsync);
            let (writer, mut reader, _) = Wal::open(options).await?;
            let mut n = 0u8;
            for sizes in batches {
                let records = sizes
                    .iter()
                    .map(|&size| {
                        n = n.wrapping_add(1);
                        vec![b'a' + n % 26; size]
                    })
                    .collect();
                writer.append(records).await?;
            }
            if commit > 0 {
                reader.next_batch(commit as usize, usize::MAX).await?;
                reader.commit(Lsn(commit)).await?;
            }
            Ok::<_, crate::wal::WalError>(())
        })
        .map_err(std::io::Error::other)?;
    drop(runtime);
    Ok(())
}

fn wal_dirs() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let scratch = ScratchDir::new();

    let empty = scratch.path().join("empty");
    written_log(&empty, 4096, Fsync::Never, &[], 0)?;
    out.push(("empty-log".to_owned(), encode_dir(&empty, 1)?));

    let several = scratch.path().join("several");
    let batches: &[&[usize]] = &[&[3, 10, 0], &[40], &[5, 5, 5, 5], &[70, 1]];
    written_log(&several, 128, Fsync::Never, batches, 4)?;
    let input = encode_dir(&several, 0)?;
    out.push(("segments-committed".to_owned(), input.clone()));
    // A crash in the middle of the last write: its frame cut short.
    out.push((
        "torn-tail".to_owned(),
        input[..input.len().saturating_sub(5)].to_vec(),
    ));
    // One payload byte flipped in the first segment's first frame.
    let mut flipped = input.clone();
    if let Some(at) = (1 + 3 + 16 + 12..flipped.len()).next() {
        flipped[at] ^= 0x20;
    }
    out.push(("flipped-payload".to_owned(), flipped));

    let zero_filled = scratch.path().join("zero-filled");
    written_log(&zero_filled, 4096, Fsync::Always, &[&[8, 8], &[20]], 1)?;
    out.push(("zero-filled-tail".to_owned(), encode_dir(&zero_filled, 1)?));

    // Segments but no position file: everything is uncommitted.
    let uncommitted = scratch.path().join("uncommitted");
    written_log(&uncommitted, 64, Fsync::Never, &[&[4], &[4, 4], &[30]], 0)?;
    let _ = std::fs::remove_file(uncommitted.join(POSITION_FILE));
    out.push(("no-position-file".to_owned(), encode_dir(&uncommitted, 4)?));
    Ok(out)
}

fn position_files() -> Vec<(String, Vec<u8>)> {
    let first = encode_position_file(Lsn(0), 1);
    let mut both = encode_position_file(Lsn(41), 1);
    let at = position_slot_offset(2) as usize;
    both[at..at + POSITION_SLOT_LEN].copy_from_slice(&encode_position_slot(Lsn(97), 2));
    let mut torn = both.clone();
    let at = position_slot_offset(3) as usize;
    torn[at..at + 12].copy_from_slice(&encode_position_slot(Lsn(120), 3)[..12]);
    let mut v1 = b"UNIWALC\x01".to_vec();
    v1.extend_from_slice(&77u64.to_le_bytes());
    let crc = crc32c::crc32c(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    vec![
        ("first-commit".to_owned(), first),
        ("both-slots".to_owned(), both),
        ("torn-newer-slot".to_owned(), torn),
        ("version-1".to_owned(), v1),
    ]
}

#[cfg(feature = "kpl")]
fn aggregates() -> Vec<(String, Vec<u8>)> {
    use crate::kinesis::aggregation::Aggregator;
    use crate::kinesis::KinesisRecord;

    let aggregate = |records: Vec<KinesisRecord>| {
        let mut aggregator = Aggregator::default();
        for record in records {
            aggregator
                .try_add(record)
                .expect("a small seed record fits");
        }
        aggregator
            .finish()
            .map(|record| record.data.to_vec())
            .unwrap_or_default()
    };
    vec![
        (
            "two-records".to_owned(),
            aggregate(vec![
                KinesisRecord::new("one", "k1"),
                KinesisRecord::new("two", "k2"),
            ]),
        ),
        (
            "shared-keys-and-hash-keys".to_owned(),
            aggregate(
                (0..8)
                    .map(|i| {
                        let record =
                            KinesisRecord::new(vec![i as u8; i], format!("user-{}", i % 3));
                        if i % 2 == 0 {
                            record.with_explicit_hash_key(format!("{}", i * 1_000_003))
                        } else {
                            record
                        }
                    })
                    .collect(),
            ),
        ),
        (
            "empty-data".to_owned(),
            aggregate(vec![
                KinesisRecord::new("", "k"),
                KinesisRecord::new("", "k"),
            ]),
        ),
        ("not-aggregated".to_owned(), b"{\"plain\":true}".to_vec()),
    ]
}

fn checkpoint_documents() -> Vec<(String, Vec<u8>)> {
    let scratch = ScratchDir::new();
    let path = scratch.path().join("checkpoints.json");
    let saved = super::runtime().block_on(async {
        let store = JsonFileCheckpointStore::new(&path);
        store.save("orders.jsonl", &Position::Offset(4096)).await?;
        store
            .save(
                "shard-0",
                &Position::Sequence {
                    sequence: "49590338271490256608559692538361571095921575989136588898".into(),
                    sub: 3,
                },
            )
            .await?;
        store.save("shard-1", &Position::End).await
    });
    let mut out = vec![(
        "empty".to_owned(),
        br#"{"version":1,"partitions":{}}"#.to_vec(),
    )];
    if saved.is_ok() {
        if let Ok(bytes) = std::fs::read(&path) {
            out.push(("three-kinds".to_owned(), bytes));
        }
    }
    out
}

fn json_line_files() -> Vec<(String, Vec<u8>)> {
    let values = [
        serde_json::json!({"id": 1, "name": "first"}),
        serde_json::json!([1, 2.5, null, "x"]),
        serde_json::json!("plain string \u{e9}\n"),
        serde_json::json!(42),
    ];
    let mut lines = Vec::new();
    for value in &values {
        JsonCodec
            .encode(value, &mut lines)
            .expect("encoding a JSON value");
        lines.push(b'\n');
    }
    let first_line_end = lines.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    let with = |header: [u8; 4], body: &[u8]| {
        let mut input = header.to_vec();
        input.extend_from_slice(body);
        input
    };
    let start = (first_line_end as u16).to_le_bytes();
    let mut partial = lines.clone();
    partial.extend_from_slice(b"{\"partial\":");
    let mut corrupt = lines.clone();
    corrupt.splice(
        first_line_end..first_line_end,
        b"not json\n".iter().copied(),
    );
    vec![
        ("lines".to_owned(), with([0, 4, 0, 0], &lines)),
        (
            "resume-after-first".to_owned(),
            with([0, 4, start[0], start[1]], &lines),
        ),
        ("partial-last-line".to_owned(), with([1, 3, 0, 0], &partial)),
        ("undecodable-line".to_owned(), with([0, 4, 0, 0], &corrupt)),
    ]
}
