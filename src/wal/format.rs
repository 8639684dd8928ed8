//! The on-disk format: segment names and headers, frames, the committed
//! position file.
//!
//! ```text
//! segment file  <first lsn, 20 decimal digits>.wal
//!   header      8 bytes magic "UNIWAL\0" + version (1) | 8 bytes first lsn (u64 LE)
//!   frame*      4 bytes payload length L (u32 LE)
//!               4 bytes CRC32C of the payload (u32 LE)
//!               4 bytes CRC32C of the 8 bytes above (u32 LE)
//!               L bytes payload
//! committed     8 bytes magic "UNIWALC\x01" | 8 bytes lsn (u64 LE) | 4 bytes CRC32C of the 16 bytes before
//! ```
//!
//! The frame header has its own checksum so that a damaged *length* is told
//! apart from a damaged *payload*: with a good header a bad payload is one
//! frame that can be quarantined and stepped over; with a bad header the
//! rest of the segment cannot be framed any more.

use super::Lsn;

/// Magic and version at the start of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"UNIWAL\x00\x01";
/// Bytes of a segment header.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
/// Bytes of a frame header.
pub(crate) const FRAME_HEADER_LEN: u64 = 12;
/// Magic and version of the committed-position file.
pub(crate) const POSITION_MAGIC: [u8; 8] = *b"UNIWALC\x01";
/// Bytes of the committed-position file.
pub(crate) const POSITION_LEN: usize = 20;
/// Name of the committed-position file in the log directory.
pub(crate) const POSITION_FILE: &str = "committed";
/// Directory (inside the log directory) that quarantined bytes go to.
pub(crate) const QUARANTINE_DIR: &str = "quarantine";

const SEGMENT_SUFFIX: &str = ".wal";
const SEGMENT_DIGITS: usize = 20;

/// File name of the segment whose first record is `first`.
pub(crate) fn segment_name(first: Lsn) -> String {
    format!(
        "{:0width$}{SEGMENT_SUFFIX}",
        first.0,
        width = SEGMENT_DIGITS
    )
}

/// The first Lsn of a segment file name, or `None` for other files.
pub(crate) fn parse_segment_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Lsn)
}

/// The header of the segment whose first record is `first`.
pub(crate) fn encode_segment_header(first: Lsn) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    header[..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..].copy_from_slice(&first.0.to_le_bytes());
    header
}

/// Checks a segment header against the Lsn in the file name.
pub(crate) fn check_segment_header(header: &[u8], expected: Lsn) -> Result<(), String> {
    if header.len() < SEGMENT_HEADER_LEN as usize {
        return Err(format!("segment header is {} bytes long", header.len()));
    }
    if header[..8] != SEGMENT_MAGIC {
        return Err("bad segment magic or unsupported version".to_owned());
    }
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&header[8..16]);
    let first = u64::from_le_bytes(lsn);
    if first != expected.0 {
        return Err(format!(
            "segment header says first lsn {first}, file name says {expected}"
        ));
    }
    Ok(())
}

/// A decoded, checksum-verified frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// Payload length.
    pub(crate) len: u32,
    /// CRC32C of the payload.
    pub(crate) payload_crc: u32,
}

impl FrameHeader {
    /// Bytes of the whole frame, header included.
    pub(crate) fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN + u64::from(self.len)
    }

    /// Whether `payload` matches the checksum in the header.
    pub(crate) fn payload_ok(&self, payload: &[u8]) -> bool {
        crc32c::crc32c(payload) == self.payload_crc
    }
}

/// Appends one frame holding `payload` to `buf`. The caller guarantees that
/// `payload.len()` fits in a `u32` (checked when the record is accepted).
pub(crate) fn push_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len() as u32;
    let mut header = [0u8; FRAME_HEADER_LEN as usize];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&header[..8]);
    header[8..].copy_from_slice(&header_crc.to_le_bytes());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(payload);
}

/// Decodes a frame header, verifying its own checksum.
pub(crate) fn decode_frame_header(
    bytes: &[u8; FRAME_HEADER_LEN as usize],
) -> Result<FrameHeader, String> {
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let stored = word(8);
    let actual = crc32c::crc32c(&bytes[..8]);
    if stored != actual {
        return Err(format!(
            "frame header checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
        ));
    }
    Ok(FrameHeader {
        len: word(0),
        payload_crc: word(4),
    })
}

/// The content of the committed-position file for `lsn`.
pub(crate) fn encode_position(lsn: Lsn) -> [u8; POSITION_LEN] {
    let mut out = [0u8; POSITION_LEN];
    out[..8].copy_from_slice(&POSITION_MAGIC);
    out[8..16].copy_from_slice(&lsn.0.to_le_bytes());
    let crc = crc32c::crc32c(&out[..16]);
    out[16..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes the committed-position file.
pub(crate) fn decode_position(bytes: &[u8]) -> Result<Lsn, String> {
    if bytes.len() != POSITION_LEN {
        return Err(format!(
            "{} bytes long, expected {POSITION_LEN}",
            bytes.len()
        ));
    }
    if bytes[..8] != POSITION_MAGIC {
        return Err("bad magic or unsupported version".to_owned());
    }
    let stored = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    if stored != crc32c::crc32c(&bytes[..16]) {
        return Err("checksum mismatch".to_owned());
    }
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&bytes[8..16]);
    Ok(Lsn(u64::from_le_bytes(lsn)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort_numerically() {
        let a = segment_name(Lsn(9));
        let b = segment_name(Lsn(10));
        assert_eq!(a, "00000000000000000009.wal");
        assert!(a < b, "zero padding keeps lexical order = numeric order");
        assert_eq!(parse_segment_name(&b), Some(Lsn(10)));
        assert_eq!(
            parse_segment_name(&segment_name(Lsn(u64::MAX))),
            Some(Lsn(u64::MAX))
        );
        assert_eq!(parse_segment_name("committed"), None);
        assert_eq!(parse_segment_name("0000000000000000000x.wal"), None);
        assert_eq!(parse_segment_name("12.wal"), None);
    }

    #[test]
    fn segment_header_checks_magic_and_first_lsn() {
        let header = encode_segment_header(Lsn(42));
        assert!(check_segment_header(&header, Lsn(42)).is_ok());
        assert!(check_segment_header(&header, Lsn(41)).is_err());
        assert!(check_segment_header(&header[..10], Lsn(42)).is_err());
        let mut bad = header;
        bad[0] ^= 1;
        assert!(check_segment_header(&bad, Lsn(42)).is_err());
    }

    #[test]
    fn frame_round_trips_and_detects_damage_in_header_or_payload() {
        let mut buf = Vec::new();
        push_frame(&mut buf, b"hello");
        assert_eq!(buf.len() as u64, FRAME_HEADER_LEN + 5);
        let header_bytes: [u8; 12] = buf[..12].try_into().unwrap();
        let header = decode_frame_header(&header_bytes).unwrap();
        assert_eq!(header.len, 5);
        assert!(header.payload_ok(&buf[12..]));
        assert!(!header.payload_ok(b"hellO"));
        for i in 0..12 {
            let mut damaged = header_bytes;
            damaged[i] ^= 0x10;
            assert!(
                decode_frame_header(&damaged).is_err(),
                "flip in header byte {i}"
            );
        }
    }

    #[test]
    fn position_round_trips_and_rejects_damage() {
        let bytes = encode_position(Lsn(123_456));
        assert_eq!(decode_position(&bytes), Ok(Lsn(123_456)));
        let mut damaged = bytes;
        damaged[9] ^= 1;
        assert!(decode_position(&damaged).is_err());
        assert!(decode_position(&bytes[..19]).is_err());
    }
}
