//! Reading the frames of one segment in order, with a bounded buffer, no
//! further than the bytes the writer has published.
//!
//! Guarantees: the segment's header is checked against its first lsn when
//! it is opened; every payload is checked against its checksum before it
//! is handed out; bytes past the published end (preallocated zeros that
//! frames will overwrite) are never read, so a read-ahead buffer never
//! holds them. Not guaranteed: damage is reported ([`FrameDamage`]), not
//! handled: what to do with it is the caller's choice.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::READ_BUFFER_BYTES;
use crate::wal::format::{
    check_segment_header, decode_frame_header, segment_name, FrameHeader, FRAME_HEADER_LEN,
    SEGMENT_HEADER_LEN,
};
use crate::wal::{Lsn, WalError};

/// A frame that [`SegmentReader::next_frame`] found damaged.
#[derive(Debug)]
pub(crate) enum FrameDamage {
    /// The header is fine but the payload fails its checksum: the frame can
    /// be stepped over. `frame_len` counts header and payload.
    Payload {
        offset: u64,
        frame_len: u64,
        len: u32,
    },
    /// The header is damaged or the file ends inside a frame: nothing after
    /// `offset` in this segment can be framed.
    Rest { offset: u64, reason: String },
}

/// A segment file read no further than `limit`: the bytes the writer has
/// published. Past them the active segment may hold preallocated zeros
/// that frames overwrite later, which a read-ahead buffer must not keep.
struct PublishedFile {
    file: File,
    pos: u64,
    limit: u64,
}

impl Read for PublishedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.limit.saturating_sub(self.pos);
        let want = (buf.len() as u64).min(room) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        // Never a byte past the published end.
        debug_assert!(self.pos <= self.limit);
        Ok(n)
    }
}

impl Seek for PublishedFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}

/// Reads frames of one segment in order with a bounded buffer, no further
/// than the bytes the writer has published ([`set_limit`](Self::set_limit)).
pub(crate) struct SegmentReader {
    pub(crate) path: PathBuf,
    pub(crate) first: u64,
    reader: BufReader<PublishedFile>,
    /// Offset of the next frame.
    pub(crate) offset: u64,
    /// A header read ahead by [`peek_len`](Self::peek_len).
    peeked: Option<FrameHeader>,
}

impl SegmentReader {
    /// Opens the segment whose first record is `first`, of which `limit`
    /// bytes are published, and checks its header. A bad header is
    /// [`WalError::Corrupt`] at offset 0.
    pub(crate) fn open(dir: &Path, first: u64, limit: u64) -> Result<Self, WalError> {
        let path = dir.join(segment_name(Lsn(first)));
        let file = File::open(&path).map_err(|e| WalError::io("open segment", &path, e))?;
        let file = PublishedFile {
            file,
            pos: 0,
            limit,
        };
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        let read = read_fully(&mut reader, &mut header)
            .map_err(|e| WalError::io("read segment", &path, e))?;
        if let Err(reason) = check_segment_header(&header[..read], Lsn(first)) {
            return Err(WalError::Corrupt {
                file: path,
                offset: 0,
                reason,
            });
        }
        Ok(Self {
            path,
            first,
            reader,
            offset: SEGMENT_HEADER_LEN,
            peeked: None,
        })
    }

    /// Lets reading go up to byte `limit` (the writer published more).
    pub(crate) fn set_limit(&mut self, limit: u64) {
        let published = &mut self.reader.get_mut().limit;
        *published = (*published).max(limit);
    }

    /// Moves to byte `offset` (the start of a frame found by a scan).
    pub(crate) fn seek_to(&mut self, offset: u64) -> Result<(), WalError> {
        self.reader
            .seek(SeekFrom::Start(offset))
            .map_err(|e| WalError::io("seek in segment", &self.path, e))?;
        self.offset = offset;
        self.peeked = None;
        Ok(())
    }

    /// The payload length of the next frame, reading (and keeping) its
    /// header. `Err(FrameDamage::Rest)` when the header is unreadable.
    pub(crate) fn peek_len(&mut self) -> Result<Result<u32, FrameDamage>, WalError> {
        if let Some(h) = self.peeked {
            return Ok(Ok(h.len));
        }
        let mut raw = [0u8; FRAME_HEADER_LEN as usize];
        let read = if let Some(bytes) = self.reader.buffer().get(..raw.len()) {
            raw.copy_from_slice(bytes);
            self.reader.consume(raw.len());
            raw.len()
        } else {
            read_fully(&mut self.reader, &mut raw)
                .map_err(|e| WalError::io("read segment", &self.path, e))?
        };
        if read < raw.len() {
            self.resync()?;
            let reason = if read == 0 {
                // Only asked for frames that were written: some are gone.
                "segment ends before the records it should hold (truncated, or a segment is missing)"
                    .to_owned()
            } else {
                format!("segment ends inside a frame header ({read} of 12 bytes)")
            };
            return Ok(Err(FrameDamage::Rest {
                offset: self.offset,
                reason,
            }));
        }
        match decode_frame_header(&raw) {
            Ok(h) => {
                self.peeked = Some(h);
                Ok(Ok(h.len))
            }
            Err(reason) => {
                self.resync()?;
                Ok(Err(FrameDamage::Rest {
                    offset: self.offset,
                    reason,
                }))
            }
        }
    }

    /// Reads the next frame's payload onto the end of `out`, verifying its
    /// checksum. On damage `out` is left as it was, the reader stays at the
    /// damaged frame for a `Rest`, and moves past it for a `Payload` (so
    /// that a caller may skip it).
    pub(crate) fn next_frame(
        &mut self,
        out: &mut Vec<u8>,
    ) -> Result<Result<(), FrameDamage>, WalError> {
        let len = match self.peek_len()? {
            Ok(len) => len,
            Err(damage) => return Ok(Err(damage)),
        };
        let Some(header) = self.peeked.take() else {
            return Ok(Err(FrameDamage::Rest {
                offset: self.offset,
                reason: "internal: frame header lost".to_owned(),
            }));
        };
        let wanted = len as usize;
        let start = out.len();
        let read = if let Some(bytes) = self.reader.buffer().get(..wanted) {
            // Usually the whole frame is already buffered: one copy.
            out.extend_from_slice(bytes);
            self.reader.consume(wanted);
            wanted
        } else {
            out.resize(start + wanted, 0);
            read_fully(&mut self.reader, &mut out[start..])
                .map_err(|e| WalError::io("read segment", &self.path, e))?
        };
        if read < wanted {
            out.truncate(start);
            self.resync()?;
            return Ok(Err(FrameDamage::Rest {
                offset: self.offset,
                reason: format!(
                    "segment ends inside a frame ({read} of {len} payload bytes present)"
                ),
            }));
        }
        let offset = self.offset;
        self.offset += header.frame_len();
        // A frame read whole lies within the published bytes (the limit
        // only grows, so bytes buffered earlier are within it too).
        debug_assert!(self.offset <= self.reader.get_ref().limit);
        if header.payload_ok(&out[start..]) {
            Ok(Ok(()))
        } else {
            out.truncate(start);
            Ok(Err(FrameDamage::Payload {
                offset,
                frame_len: header.frame_len(),
                len,
            }))
        }
    }

    /// Skips the next frame without reading its payload (used to reach a
    /// position inside a segment).
    pub(crate) fn skip_frame(&mut self) -> Result<Result<u32, FrameDamage>, WalError> {
        let len = match self.peek_len()? {
            Ok(len) => len,
            Err(damage) => return Ok(Err(damage)),
        };
        self.peeked = None;
        self.reader
            .seek_relative(i64::from(len))
            .map_err(|e| WalError::io("seek in segment", &self.path, e))?;
        self.offset += FRAME_HEADER_LEN + u64::from(len);
        Ok(Ok(len))
    }

    /// Puts the buffered reader back at `self.offset` after a partial read.
    fn resync(&mut self) -> Result<(), WalError> {
        self.peeked = None;
        self.reader
            .seek(SeekFrom::Start(self.offset))
            .map_err(|e| WalError::io("seek in segment", &self.path, e))?;
        Ok(())
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_fully(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
