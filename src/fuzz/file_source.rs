//! Fuzz body of [`FileSource`] line reading: a file with the fuzzer's bytes
//! is read to its end, once as raw lines and once as JSON. Reading yields
//! records or typed errors, never panics; the raw lines are exactly the
//! file's complete lines after the start offset, with tokens at their ends;
//! the JSON read yields one record or one codec error per line, at the same
//! offsets.
//!
//! Input layout:
//!
//! ```text
//! byte 0      block size: 4 KiB + 1 KiB * (byte % 8)
//! byte 1      longest line: 1, 16, 256, 4 KiB or 64 MiB (byte % 5)
//! bytes 2-3   start offset (u16 LE; 0 reads from the beginning)
//! the rest    the file
//! ```

use futures::StreamExt;

use super::scratch::ScratchDir;
use crate::checkpoint::Position;
use crate::codec::{Codec, JsonCodec, RawCodec};
use crate::error::Error;
use crate::source::FileSource;

/// Reads the file described by `data` and checks the lines against it.
pub fn run(data: &[u8]) {
    let [chunk, max_line, a, b, contents @ ..] = data else {
        return;
    };
    let chunk_bytes = 4096 + 1024 * usize::from(chunk % 8);
    let max_line_bytes = [1, 16, 256, 4096, 64 << 20][usize::from(max_line % 5)];
    let start = u64::from(u16::from_le_bytes([*a, *b]));
    let scratch = ScratchDir::new();
    let path = scratch.path().join("records.jsonl");
    std::fs::write(&path, contents).expect("fuzz body: writing the file");
    let settings = Settings {
        path: &path,
        chunk_bytes,
        max_line_bytes,
        start,
    };
    super::runtime().block_on(async {
        // Raw lines: every item is a line or the error that ends reading.
        let mut raw = settings.source::<Vec<u8>, _>(RawCodec).stream();
        let mut lines: Vec<(Vec<u8>, u64)> = Vec::new();
        while let Some(item) = raw.next().await {
            match item {
                Ok((line, token)) => match token.position() {
                    Position::Offset(end) => lines.push((line, *end)),
                    other => panic!("a file token holds {other:?}, not an offset"),
                },
                Err(Error::Codec(error)) => panic!("raw bytes always decode: {error}"),
                Err(_) => return,
            }
        }
        let from = start as usize;
        let complete = contents
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |at| at + 1);
        let mut expected_end = from as u64;
        let mut rebuilt = Vec::new();
        for (line, end) in &lines {
            assert!(!line.contains(&b'\n'), "a line holds no newline");
            expected_end += line.len() as u64 + 1;
            assert_eq!(*end, expected_end, "a token points just past its line");
            rebuilt.extend_from_slice(line);
            rebuilt.push(b'\n');
        }
        assert_eq!(
            rebuilt,
            contents.get(from..complete).unwrap_or_default(),
            "the lines are the file's complete lines after the start"
        );

        // JSON: one record or one codec error per line, reading goes on.
        let mut json = settings.source::<serde_json::Value, _>(JsonCodec).stream();
        let mut seen = 0usize;
        while let Some(item) = json.next().await {
            match item {
                Ok((_, token)) => {
                    let end = lines
                        .get(seen)
                        .map(|(_, end)| Position::Offset(*end))
                        .expect("no more JSON records than lines");
                    assert_eq!(token.position(), &end, "a record's token ends its line");
                }
                Err(Error::Codec(_)) => {
                    assert!(seen < lines.len(), "no more JSON errors than lines");
                }
                Err(error) => panic!("a file that reads raw fails as JSON: {error}"),
            }
            seen += 1;
        }
        assert_eq!(seen, lines.len(), "every line is a record or a codec error");
    });
}

struct Settings<'a> {
    path: &'a std::path::Path,
    chunk_bytes: usize,
    max_line_bytes: usize,
    start: u64,
}

impl Settings<'_> {
    fn source<T, C>(&self, codec: C) -> FileSource<T, C>
    where
        T: Send + 'static,
        C: Codec<T>,
        JsonCodec: Codec<T>,
    {
        let source = FileSource::new(self.path)
            .with_codec(codec)
            .chunk_bytes(self.chunk_bytes)
            .max_line_bytes(self.max_line_bytes);
        if self.start == 0 {
            source
        } else {
            source.start_after(Position::Offset(self.start))
        }
    }
}
