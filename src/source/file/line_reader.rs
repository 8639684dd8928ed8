//! The blocking side of a `FileSource` run: owns the file, reads blocks,
//! cuts them into complete lines (a partial last line waits for the rest),
//! decodes each, and resumes exactly at a checkpoint offset.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use crate::codec::{Codec, CodecError};
use crate::error::Error;

#[derive(Debug, Clone, Copy)]
pub(super) struct ReaderConfig {
    pub(super) chunk_bytes: usize,
    pub(super) max_line_bytes: usize,
}

pub(super) struct Line<T> {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) decoded: Result<T, (Vec<u8>, CodecError)>,
}

pub(super) struct Block<T> {
    pub(super) lines: Vec<Line<T>>,
    pub(super) eof: bool,
    /// Bytes of an incomplete line kept for the next block.
    pub(super) partial_bytes: usize,
    /// The file's length after the read, for the lag gauge: only when
    /// metrics are recorded (one `fstat` per block), and when it worked.
    pub(super) file_len: Option<u64>,
}

/// The blocking side: owns the file and the bytes of an incomplete line.
pub(super) struct Reader<T, C> {
    pub(super) file: File,
    pub(super) path: Arc<Path>,
    pub(super) codec: C,
    pub(super) config: ReaderConfig,
    /// Bytes read but not yet part of a complete line; `buf[0]` is at file
    /// offset `base`.
    pub(super) buf: Vec<u8>,
    pub(super) base: u64,
    pub(super) _records: PhantomData<fn() -> T>,
}

impl<T, C: Codec<T>> Reader<T, C> {
    pub(super) fn open(
        path: Arc<Path>,
        offset: u64,
        codec: C,
        config: ReaderConfig,
    ) -> Result<Self, Error> {
        let mut file = File::open(&path).map_err(|e| Error::io("open", &*path, e))?;
        if offset > 0 {
            let len = file
                .metadata()
                .map_err(|e| Error::io("stat", &*path, e))?
                .len();
            let boundary = if offset <= len {
                let mut before = [0u8; 1];
                file.seek(SeekFrom::Start(offset - 1))
                    .and_then(|_| file.read_exact(&mut before))
                    .map_err(|e| Error::io("read", &*path, e))?;
                before[0] == b'\n'
            } else {
                false
            };
            if !boundary {
                return Err(Error::io(
                    "resume reading",
                    &*path,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "checkpoint offset {offset} is not the end of a line (file length {len})"
                        ),
                    ),
                ));
            }
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| Error::io("seek", &*path, e))?;
        }
        Ok(Self {
            file,
            path,
            codec,
            config,
            buf: Vec::with_capacity(config.chunk_bytes),
            base: offset,
            _records: PhantomData,
        })
    }

    /// Reads one block and decodes its complete lines.
    pub(super) fn read_block(mut self) -> (Self, Result<Block<T>, Error>) {
        let result = self.read_block_inner();
        (self, result)
    }

    pub(super) fn read_block_inner(&mut self) -> Result<Block<T>, Error> {
        let kept = self.buf.len();
        self.buf.resize(kept + self.config.chunk_bytes, 0);
        let read = loop {
            match self.file.read(&mut self.buf[kept..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(kept);
                    return Err(Error::io("read", &*self.path, e));
                }
            }
        };
        self.buf.truncate(kept + read);
        let eof = read == 0;
        if eof {
            self.check_not_truncated()?;
        }

        let mut lines = Vec::new();
        let mut start = 0usize;
        // The kept bytes hold no newline: scan only the new ones.
        for newline in memchr::memchr_iter(b'\n', &self.buf[kept..]) {
            let end = kept + newline;
            let bytes = &self.buf[start..end];
            let decoded = self
                .codec
                .decode(bytes)
                .map_err(|error| (bytes.to_vec(), error));
            lines.push(Line {
                start: self.base + start as u64,
                end: self.base + end as u64 + 1,
                decoded,
            });
            start = end + 1;
        }
        if start > 0 {
            self.buf.copy_within(start.., 0);
            self.buf.truncate(self.buf.len() - start);
            self.base += start as u64;
        }
        if self.buf.len() > self.config.max_line_bytes {
            return Err(Error::io(
                "read",
                &*self.path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "line at offset {} is longer than max_line_bytes ({})",
                        self.base, self.config.max_line_bytes
                    ),
                ),
            ));
        }
        let file_len = if crate::observe::handles::ENABLED {
            self.file.metadata().ok().map(|m| m.len())
        } else {
            None
        };
        Ok(Block {
            lines,
            eof,
            partial_bytes: self.buf.len(),
            file_len,
        })
    }

    pub(super) fn check_not_truncated(&self) -> Result<(), Error> {
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", &*self.path, e))?
            .len();
        let position = self.base + self.buf.len() as u64;
        if len < position {
            return Err(Error::io(
                "read",
                &*self.path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("file shrank to {len} bytes below the read position {position} (truncated or replaced)"),
                ),
            ));
        }
        Ok(())
    }
}
