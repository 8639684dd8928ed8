//! Segment files: creating the active one, scanning one, and reading frames
//! from one with a bounded buffer.
//!
//! Everything here is blocking file I/O; the async parts of the log run it
//! on `tokio::task::spawn_blocking`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::format::{
    check_segment_header, decode_frame_header, encode_segment_header, segment_name, FrameHeader,
    FRAME_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use super::{Lsn, WalError};
use crate::durable_fs;

/// Size of the read buffer of a segment reader or scan. Reading (replay)
/// memory is this plus the records of one batch, whatever the backlog.
pub(crate) const READ_BUFFER_BYTES: usize = 256 << 10;

/// The segment the writer appends to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) first: u64,
    /// Bytes in the file (header included).
    pub(crate) size: u64,
}

impl ActiveSegment {
    /// Appends `bytes` (whole frames) to the file.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), WalError> {
        self.file
            .write_all(bytes)
            .map_err(|e| WalError::io("write", &self.path, e))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// fdatasyncs the file.
    pub(crate) fn sync(&self) -> Result<(), WalError> {
        self.file
            .sync_data()
            .map_err(|e| WalError::io("fdatasync", &self.path, e))
    }
}

/// Creates the segment whose first record is `first`: `0600`, header
/// written and fdatasynced, directory fsynced. Fails if the file exists.
pub(crate) fn create_segment(dir: &Path, first: u64) -> Result<ActiveSegment, WalError> {
    let path = dir.join(segment_name(Lsn(first)));
    let file = durable_fs::private_options()
        .read(true)
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| WalError::io("create segment", &path, e))?;
    let mut segment = ActiveSegment {
        file,
        path,
        first,
        size: 0,
    };
    segment.write(&encode_segment_header(Lsn(first)))?;
    segment.sync()?;
    durable_fs::sync_dir(dir)?;
    Ok(segment)
}

/// Opens an existing segment for appending after its `size` bytes.
pub(crate) fn open_active(path: &Path, first: u64, size: u64) -> Result<ActiveSegment, WalError> {
    let file = durable_fs::private_options()
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| WalError::io("open segment", path, e))?;
    Ok(ActiveSegment {
        file,
        path: path.to_path_buf(),
        first,
        size,
    })
}

/// How a scan of a segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// At the end of the file, or after the requested number of frames.
    Clean,
    /// An incomplete frame (or zero-filled bytes) ends the file: what a
    /// crash in the middle of a write leaves.
    Torn(String),
    /// A complete frame header with a bad checksum: the rest of the segment
    /// cannot be framed.
    BadHeader(String),
}

/// The result of scanning a segment's frame headers.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    /// Whole frames found.
    pub(crate) frames: u64,
    /// Offset just past the last whole frame.
    pub(crate) end: u64,
    /// Payload bytes of those frames.
    pub(crate) payload: u64,
    pub(crate) end_kind: ScanEnd,
}

/// Scans the frame headers of the segment at `path` (`len` bytes, header
/// already checked), stopping after `max_frames` frames. Payloads are
/// skipped, not read: a scan costs one pass over the file with a bounded
/// buffer and does not verify payload checksums (reading does).
pub(crate) fn scan_frames(path: &Path, len: u64, max_frames: u64) -> Result<Scan, WalError> {
    let file = File::open(path).map_err(|e| WalError::io("open segment", path, e))?;
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    reader
        .seek(SeekFrom::Start(SEGMENT_HEADER_LEN))
        .map_err(|e| WalError::io("seek in segment", path, e))?;
    let mut scan = Scan {
        frames: 0,
        end: SEGMENT_HEADER_LEN,
        payload: 0,
        end_kind: ScanEnd::Clean,
    };
    while scan.frames < max_frames {
        let remaining = len.saturating_sub(scan.end);
        if remaining == 0 {
            break;
        }
        if remaining < FRAME_HEADER_LEN {
            scan.end_kind = ScanEnd::Torn(format!("incomplete frame header ({remaining} bytes)"));
            break;
        }
        let mut raw = [0u8; FRAME_HEADER_LEN as usize];
        reader
            .read_exact(&mut raw)
            .map_err(|e| WalError::io("read segment", path, e))?;
        let header = match decode_frame_header(&raw) {
            Ok(h) => h,
            Err(reason) => {
                scan.end_kind = if rest_is_zero(path, scan.end, len)? {
                    ScanEnd::Torn("zero-filled tail".to_owned())
                } else {
                    ScanEnd::BadHeader(reason)
                };
                break;
            }
        };
        if header.frame_len() > remaining {
            scan.end_kind = ScanEnd::Torn(format!(
                "frame of {} bytes extends past the end of the file ({remaining} bytes left)",
                header.frame_len()
            ));
            break;
        }
        reader
            .seek_relative(i64::from(header.len))
            .map_err(|e| WalError::io("seek in segment", path, e))?;
        scan.frames += 1;
        scan.end += header.frame_len();
        scan.payload += u64::from(header.len);
    }
    Ok(scan)
}

/// Whether every byte of `path` from `from` to `len` is zero (what some
/// file systems leave after a crash that extended a file without its data).
pub(crate) fn rest_is_zero(path: &Path, from: u64, len: u64) -> Result<bool, WalError> {
    let mut file = File::open(path).map_err(|e| WalError::io("open segment", path, e))?;
    file.seek(SeekFrom::Start(from))
        .map_err(|e| WalError::io("seek in segment", path, e))?;
    let mut reader = file.take(len.saturating_sub(from));
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = reader
            .read(&mut chunk)
            .map_err(|e| WalError::io("read segment", path, e))?;
        if n == 0 {
            return Ok(true);
        }
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// A frame that [`SegmentReader::next_frame`] found damaged.
#[derive(Debug)]
pub(crate) enum Damage {
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

/// Reads frames of one segment in order with a bounded buffer.
pub(crate) struct SegmentReader {
    pub(crate) path: PathBuf,
    pub(crate) first: u64,
    reader: BufReader<File>,
    /// Offset of the next frame.
    pub(crate) offset: u64,
    /// A header read ahead by [`peek_len`](Self::peek_len).
    peeked: Option<FrameHeader>,
}

impl SegmentReader {
    /// Opens the segment whose first record is `first` and checks its
    /// header. A bad header is [`WalError::Corrupt`] at offset 0.
    pub(crate) fn open(dir: &Path, first: u64) -> Result<Self, WalError> {
        let path = dir.join(segment_name(Lsn(first)));
        let file = File::open(&path).map_err(|e| WalError::io("open segment", &path, e))?;
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
    /// header. `Err(Damage::Rest)` when the header is unreadable.
    pub(crate) fn peek_len(&mut self) -> Result<Result<u32, Damage>, WalError> {
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
            return Ok(Err(Damage::Rest {
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
                Ok(Err(Damage::Rest {
                    offset: self.offset,
                    reason,
                }))
            }
        }
    }

    /// Reads the next frame's payload, verifying its checksum.
    /// On damage, the reader stays at the damaged frame for a `Rest`, and
    /// moves past it for a `Payload` (so that a caller may skip it).
    pub(crate) fn next_frame(&mut self) -> Result<Result<Vec<u8>, Damage>, WalError> {
        let len = match self.peek_len()? {
            Ok(len) => len,
            Err(damage) => return Ok(Err(damage)),
        };
        let Some(header) = self.peeked.take() else {
            return Ok(Err(Damage::Rest {
                offset: self.offset,
                reason: "internal: frame header lost".to_owned(),
            }));
        };
        let wanted = len as usize;
        let (payload, read) = if let Some(bytes) = self.reader.buffer().get(..wanted) {
            // Usually the whole frame is already buffered: one copy.
            let payload = bytes.to_vec();
            self.reader.consume(wanted);
            (payload, wanted)
        } else {
            let mut payload = vec![0u8; wanted];
            let read = read_fully(&mut self.reader, &mut payload)
                .map_err(|e| WalError::io("read segment", &self.path, e))?;
            (payload, read)
        };
        if read < wanted {
            self.resync()?;
            return Ok(Err(Damage::Rest {
                offset: self.offset,
                reason: format!(
                    "segment ends inside a frame ({read} of {len} payload bytes present)"
                ),
            }));
        }
        let offset = self.offset;
        self.offset += header.frame_len();
        if header.payload_ok(&payload) {
            Ok(Ok(payload))
        } else {
            Ok(Err(Damage::Payload {
                offset,
                frame_len: header.frame_len(),
                len,
            }))
        }
    }

    /// Skips the next frame without reading its payload (used to reach a
    /// position inside a segment).
    pub(crate) fn skip_frame(&mut self) -> Result<Result<u32, Damage>, WalError> {
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
