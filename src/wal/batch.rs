//! [`WalBatch`]: records framed by the task that appends them, ready to be
//! written by the log as they are.
//!
//! A batch is one buffer of whole frames (header with both checksums, then
//! the payload; see [`format`](super::format)) plus the payload length of
//! each. Appending many small records through it costs one allocation, the
//! checksums are computed by the appending tasks (in parallel, off the
//! writer's critical path), and the writer copies frames without looking
//! into them.

use super::format::{fill_frame_header, FRAME_HEADER_LEN};
use super::WalError;

/// Records to append to the log with
/// [`WalWriter::append_batch`](super::WalWriter::append_batch), each framed
/// as it is pushed.
///
/// ```
/// use unistream::wal::WalBatch;
///
/// let mut batch = WalBatch::new();
/// batch.push(b"one").unwrap();
/// batch
///     .push_with(|buf| {
///         buf.extend_from_slice(b"two");
///         Ok::<(), unistream::wal::WalError>(())
///     })
///     .unwrap();
/// assert_eq!(batch.len(), 2);
/// assert_eq!(batch.payload_bytes(), 6);
/// ```
#[derive(Debug, Default, Clone)]
pub struct WalBatch {
    frames: Vec<u8>,
    lens: Vec<u32>,
    payload_bytes: u64,
}

impl WalBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `records` records of `payload_bytes`
    /// bytes in all.
    pub fn with_capacity(records: usize, payload_bytes: usize) -> Self {
        Self {
            frames: Vec::with_capacity(payload_bytes + records * FRAME_HEADER_LEN as usize),
            lens: Vec::with_capacity(records),
            payload_bytes: 0,
        }
    }

    /// Appends a record holding `payload`.
    pub fn push(&mut self, payload: &[u8]) -> Result<(), WalError> {
        self.push_with(|buf| {
            buf.extend_from_slice(payload);
            Ok::<(), WalError>(())
        })
        .map(|_| ())
    }

    /// Appends a record whose payload `write` appends to the buffer it is
    /// given (e.g. a codec encoding straight into the batch); returns the
    /// payload's length. When `write` fails, or the payload is larger than
    /// a frame can hold (4 GiB), nothing is added.
    pub fn push_with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<usize, E>
    where
        E: From<WalError>,
    {
        let start = self.frames.len();
        self.frames.resize(start + FRAME_HEADER_LEN as usize, 0);
        if let Err(e) = write(&mut self.frames) {
            self.frames.truncate(start);
            return Err(e);
        }
        let payload_start = start + FRAME_HEADER_LEN as usize;
        let len = self.frames.len() - payload_start;
        let Ok(len32) = u32::try_from(len) else {
            self.frames.truncate(start);
            return Err(WalError::RecordTooLarge {
                bytes: len as u64,
                limit: u64::from(u32::MAX),
            }
            .into());
        };
        let (header, payload) = self.frames[start..].split_at_mut(FRAME_HEADER_LEN as usize);
        fill_frame_header(header, payload);
        self.lens.push(len32);
        self.payload_bytes += len as u64;
        Ok(len)
    }

    /// Removes the last record pushed, if any.
    pub fn pop(&mut self) {
        if let Some(len) = self.lens.pop() {
            let frame = FRAME_HEADER_LEN as usize + len as usize;
            self.frames.truncate(self.frames.len() - frame);
            self.payload_bytes -= u64::from(len);
        }
    }

    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Payload bytes of all records (without frame headers).
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// Payload length of every record, in order.
    pub(crate) fn lens(&self) -> &[u32] {
        &self.lens
    }

    /// The frames, back to back.
    pub(crate) fn frames(&self) -> &[u8] {
        &self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::{decode_frame_header, push_frame};
    use super::*;

    #[test]
    fn frames_are_the_log_format_and_pop_undoes_a_push() {
        let mut batch = WalBatch::new();
        batch.push(b"hello").unwrap();
        batch.push(b"").unwrap();
        batch.push(b"world!").unwrap();
        let mut expected = Vec::new();
        for p in [&b"hello"[..], b"", b"world!"] {
            push_frame(&mut expected, p);
        }
        assert_eq!(batch.frames(), &expected[..]);
        assert_eq!(batch.lens(), &[5, 0, 6]);
        assert_eq!(batch.payload_bytes(), 11);
        let header: [u8; 12] = batch.frames()[..12].try_into().unwrap();
        assert_eq!(decode_frame_header(&header).unwrap().len, 5);

        batch.pop();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.frames().len(), 12 + 5 + 12);
        assert_eq!(batch.payload_bytes(), 5);
    }

    #[test]
    fn a_failed_write_adds_nothing() {
        let mut batch = WalBatch::new();
        batch.push(b"kept").unwrap();
        let err = batch.push_with(|buf| {
            buf.extend_from_slice(b"half written");
            Err(WalError::Closed)
        });
        assert!(matches!(err, Err(WalError::Closed)));
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.frames().len(), 12 + 4);
    }
}
