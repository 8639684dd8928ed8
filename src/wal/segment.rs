//! Segment files: creating the active one, scanning one, and reading frames
//! from one with a bounded buffer.
//!
//! Everything here is blocking file I/O; the async parts of the log run it
//! on `tokio::task::spawn_blocking`.
//!
//! The active segment may be **preallocated**: zero-filled bytes written
//! ahead of its frames (under `Fsync::Always`), so that the fdatasync after
//! each group write flushes only data, not also the inode of a file that
//! grew. Such zeros are never mistaken for records: readers stop at the
//! bytes the writer has published ([`SegmentReader::set_limit`]), recovery
//! treats a zero-filled rest of the last segment as its end (and a frame cut
//! short just before it as torn), and a segment is trimmed to its frames
//! when it is sealed or the log is closed.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
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

/// Zero-filled bytes a preallocation writes ahead of the frames at most.
/// One group write in ~128 (of 64 small records) pays for the file growing.
pub(crate) const PREALLOCATE_BYTES: u64 = 1 << 20;

/// Zeros to preallocate from.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// The segment the writer appends to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) first: u64,
    /// Bytes of the header and frames (where the next frame goes).
    pub(crate) size: u64,
    /// Bytes of the file: `size` plus the zero-filled bytes preallocated
    /// after it.
    pub(crate) allocated: u64,
}

impl ActiveSegment {
    /// Writes `bytes` (whole frames) after the frames of the file.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), WalError> {
        self.file
            .write_all_at(bytes, self.size)
            .map_err(|e| WalError::io("write", &self.path, e))?;
        self.size += bytes.len() as u64;
        self.allocated = self.allocated.max(self.size);
        Ok(())
    }

    /// Whether the last write grew the file (no preallocated bytes left).
    pub(crate) fn is_at_file_end(&self) -> bool {
        self.allocated <= self.size
    }

    /// Zero-fills the file up to `upto` bytes (no-op when it is that long
    /// already). Durable with the next [`sync`](Self::sync).
    pub(crate) fn preallocate(&mut self, upto: u64) -> Result<(), WalError> {
        while self.allocated < upto {
            let n = (upto - self.allocated).min(ZEROS.len() as u64) as usize;
            self.file
                .write_all_at(&ZEROS[..n], self.allocated)
                .map_err(|e| WalError::io("preallocate", &self.path, e))?;
            self.allocated += n as u64;
        }
        Ok(())
    }

    /// Cuts preallocated bytes off, leaving exactly the frames. Durable
    /// with the next [`sync`](Self::sync).
    pub(crate) fn trim(&mut self) -> Result<(), WalError> {
        if self.allocated > self.size {
            self.file
                .set_len(self.size)
                .map_err(|e| WalError::io("trim preallocated bytes of", &self.path, e))?;
            self.allocated = self.size;
        }
        Ok(())
    }

    /// Trims and fdatasyncs the segment: a sealed segment holds exactly its
    /// frames, on disk.
    pub(crate) fn seal(&mut self) -> Result<(), WalError> {
        self.trim()?;
        self.sync()
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
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| WalError::io("create segment", &path, e))?;
    let mut segment = ActiveSegment {
        file,
        path,
        first,
        size: 0,
        allocated: 0,
    };
    segment.write(&encode_segment_header(Lsn(first)))?;
    segment.sync()?;
    durable_fs::sync_dir(dir)?;
    Ok(segment)
}

/// Opens an existing segment for appending after its `size` bytes of
/// frames, followed by zero fill up to `allocated` bytes.
pub(crate) fn open_active(
    path: &Path,
    first: u64,
    size: u64,
    allocated: u64,
) -> Result<ActiveSegment, WalError> {
    let file = durable_fs::private_options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| WalError::io("open segment", path, e))?;
    Ok(ActiveSegment {
        file,
        path: path.to_path_buf(),
        first,
        size,
        allocated: allocated.max(size),
    })
}

/// Deletes the given segments' files and fsyncs the directory.
pub(crate) fn delete_segments(
    dir: &std::path::Path,
    victims: &[(u64, u64)],
) -> Result<(), WalError> {
    for &(first, _) in victims {
        let path = dir.join(segment_name(Lsn(first)));
        super::recovery::remove_if_present(&path)?;
    }
    crate::durable_fs::sync_dir(dir)?;
    Ok(())
}

/// How a scan of a segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// At the end of the file, or after the requested number of frames.
    Clean,
    /// The frames end where only zero bytes follow to the end of the file:
    /// space preallocated for frames to come (or left by a crash that
    /// extended the file without its data). Not a frame, not damage.
    ZeroFill,
    /// An incomplete frame ends the file, or a frame cut short by zero
    /// fill: what a crash in the middle of a write leaves.
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
/// buffer and does not verify payload checksums (reading does) — except
/// the last frame's when zero fill follows it: a crash in the middle of a
/// write into preallocated space leaves a frame with a good header and a
/// payload cut short by zeros, which is torn, not corrupt.
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
    let mut last: Option<(u64, FrameHeader)> = None;
    while scan.frames < max_frames {
        let remaining = len.saturating_sub(scan.end);
        if remaining == 0 {
            break;
        }
        let mut raw = [0u8; FRAME_HEADER_LEN as usize];
        let got = remaining.min(FRAME_HEADER_LEN) as usize;
        reader
            .read_exact(&mut raw[..got])
            .map_err(|e| WalError::io("read segment", path, e))?;
        let header = if got < raw.len() {
            Err(format!("incomplete frame header ({remaining} bytes)"))
        } else {
            decode_frame_header(&raw)
        };
        let header = match header {
            Ok(h) => h,
            Err(reason) => {
                // Only zeros after it: zero fill when the header is zeros
                // too, else a header cut short by a crash.
                scan.end_kind = if !rest_is_zero(path, scan.end + FRAME_HEADER_LEN, len)? {
                    ScanEnd::BadHeader(reason)
                } else if raw.iter().all(|&b| b == 0) {
                    ScanEnd::ZeroFill
                } else {
                    ScanEnd::Torn(reason)
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
        last = Some((scan.end, header));
        scan.frames += 1;
        scan.end += header.frame_len();
        scan.payload += u64::from(header.len);
    }
    let at_the_end = scan.end == len || scan.end_kind == ScanEnd::ZeroFill;
    if let Some((offset, header)) = last.filter(|_| at_the_end) {
        check_last_frame(reader.get_ref(), path, &mut scan, offset, header)?;
    }
    Ok(scan)
}

/// The last frame of a segment (only zero fill, or nothing, after it):
/// when its payload fails its checksum and ends in a zero byte, it is a
/// write cut short by a crash (the zeros are preallocated space, or file
/// growth, that the write did not reach), so the scan ends before it as
/// torn. Damaged any other way, it is left for the reader to report.
fn check_last_frame(
    file: &File,
    path: &Path,
    scan: &mut Scan,
    offset: u64,
    header: FrameHeader,
) -> Result<(), WalError> {
    let mut payload = vec![0u8; header.len as usize];
    file.read_exact_at(&mut payload, offset + FRAME_HEADER_LEN)
        .map_err(|e| WalError::io("read segment", path, e))?;
    if payload.last() == Some(&0) && !header.payload_ok(&payload) {
        scan.frames -= 1;
        scan.end = offset;
        scan.payload -= u64::from(header.len);
        scan.end_kind = ScanEnd::Torn(format!(
            "frame of {} bytes cut short by zero fill (payload checksum mismatch)",
            header.frame_len()
        ));
    }
    Ok(())
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

/// A segment file read no further than `limit`: the bytes the writer has
/// published. Past them the active segment may hold preallocated zeros
/// that frames overwrite later, which a read-ahead buffer must not keep.
struct Published {
    file: File,
    pos: u64,
    limit: u64,
}

impl Read for Published {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.limit.saturating_sub(self.pos);
        let want = (buf.len() as u64).min(room) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Published {
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
    reader: BufReader<Published>,
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
        let file = Published {
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

    /// Reads the next frame's payload onto the end of `out`, verifying its
    /// checksum. On damage `out` is left as it was, the reader stays at the
    /// damaged frame for a `Rest`, and moves past it for a `Payload` (so
    /// that a caller may skip it).
    pub(crate) fn next_frame(&mut self, out: &mut Vec<u8>) -> Result<Result<(), Damage>, WalError> {
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
            return Ok(Err(Damage::Rest {
                offset: self.offset,
                reason: format!(
                    "segment ends inside a frame ({read} of {len} payload bytes present)"
                ),
            }));
        }
        let offset = self.offset;
        self.offset += header.frame_len();
        if header.payload_ok(&out[start..]) {
            Ok(Ok(()))
        } else {
            out.truncate(start);
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
