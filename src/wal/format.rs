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
//! committed     two slots, at byte 0 and byte 4096 (separate disk blocks), each
//!               8 bytes magic "UNIWALC\x02" | 8 bytes sequence (u64 LE) | 8 bytes lsn (u64 LE)
//!               | 4 bytes CRC32C of the 24 bytes before
//!               (version 1, still read: one 20-byte record: magic "UNIWALC\x01" | lsn | CRC32C)
//! ```
//!
//! A commit writes the slot that does not hold the newest position, with
//! the next sequence number, in place, and fdatasyncs: the file never
//! changes size, so that is one data-only flush. The valid slot with the
//! higher sequence is the committed position; a write torn by a crash
//! fails its checksum and leaves the other slot in force, so the position
//! moves from old to new atomically.
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
/// Magic and version of a committed-position slot.
pub(crate) const POSITION_MAGIC: [u8; 8] = *b"UNIWALC\x02";
/// Bytes of a committed-position slot.
pub(crate) const POSITION_SLOT_LEN: usize = 28;
/// Offset of the second slot: its own disk block.
pub(crate) const POSITION_SLOT_STRIDE: u64 = 4096;
/// Bytes of the committed-position file.
pub(crate) const POSITION_FILE_LEN: usize = POSITION_SLOT_STRIDE as usize + POSITION_SLOT_LEN;
/// Magic of the version-1 committed-position file (one record, replaced
/// by rename), still read.
const POSITION_V1_MAGIC: [u8; 8] = *b"UNIWALC\x01";
/// Bytes of the version-1 committed-position file.
const POSITION_V1_LEN: usize = 20;
/// Lsns and commit sequence numbers on disk stay below this (2^63; a
/// billion records a second would take 290 years to get there). A segment
/// name or committed position at or above it is damage, not history, and
/// keeping everything below it lets lsn arithmetic never overflow.
pub(crate) const LSN_LIMIT: u64 = 1 << 63;
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

/// Writes the header of the frame holding `payload` into `header`
/// ([`FRAME_HEADER_LEN`] bytes). The caller guarantees that
/// `payload.len()` fits in a `u32`.
pub(crate) fn fill_frame_header(header: &mut [u8], payload: &[u8]) {
    let len = payload.len() as u32;
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&header[..8]);
    header[8..12].copy_from_slice(&header_crc.to_le_bytes());
}

/// Appends one frame holding `payload` to `buf`.
#[cfg(test)]
pub(crate) fn push_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    let mut header = [0u8; FRAME_HEADER_LEN as usize];
    fill_frame_header(&mut header, payload);
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

/// A committed position read from its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredPosition {
    pub(crate) lsn: Lsn,
    /// Sequence number of the slot it came from (0: a version-1 file).
    pub(crate) seq: u64,
    /// Whether the file has the two-slot layout (can be written in place).
    pub(crate) slotted: bool,
}

/// Where the slot of a position with sequence `seq` starts: sequence 1
/// (the file's first position) in the first slot, then alternating.
pub(crate) fn position_slot_offset(seq: u64) -> u64 {
    (seq.wrapping_add(1) % 2) * POSITION_SLOT_STRIDE
}

/// The bytes of the slot holding `lsn` with sequence number `seq`.
pub(crate) fn encode_position_slot(lsn: Lsn, seq: u64) -> [u8; POSITION_SLOT_LEN] {
    let mut out = [0u8; POSITION_SLOT_LEN];
    out[..8].copy_from_slice(&POSITION_MAGIC);
    out[8..16].copy_from_slice(&seq.to_le_bytes());
    out[16..24].copy_from_slice(&lsn.0.to_le_bytes());
    let crc = crc32c::crc32c(&out[..24]);
    out[24..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A whole two-slot file whose only valid slot holds `lsn` with `seq`.
pub(crate) fn encode_position_file(lsn: Lsn, seq: u64) -> Vec<u8> {
    let mut out = vec![0u8; POSITION_FILE_LEN];
    let at = position_slot_offset(seq) as usize;
    out[at..at + POSITION_SLOT_LEN].copy_from_slice(&encode_position_slot(lsn, seq));
    out
}

fn word32(bytes: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(w)
}

fn word64(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

fn check_below_limit(seq: u64, lsn: u64) -> Result<(), String> {
    if seq >= LSN_LIMIT || lsn >= LSN_LIMIT {
        return Err(format!(
            "sequence {seq} / lsn {lsn} at or beyond the limit {LSN_LIMIT}"
        ));
    }
    Ok(())
}

/// One valid committed-position slot.
#[derive(Debug, Clone, Copy)]
struct PositionSlot {
    seq: u64,
    lsn: Lsn,
}

/// Decodes one slot: `Ok(None)` for a slot never written (all zero).
fn decode_position_slot(slot: &[u8]) -> Result<Option<PositionSlot>, String> {
    if slot.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    if slot[..8] != POSITION_MAGIC {
        return Err("bad magic or unsupported version".to_owned());
    }
    if word32(slot, 24) != crc32c::crc32c(&slot[..24]) {
        return Err("checksum mismatch".to_owned());
    }
    let (seq, lsn) = (word64(slot, 8), word64(slot, 16));
    check_below_limit(seq, lsn)?;
    Ok(Some(PositionSlot { seq, lsn: Lsn(lsn) }))
}

/// Decodes the committed-position file: the valid slot with the higher
/// sequence number (one damaged slot is what a crash during a commit
/// leaves, and is logged), or a version-1 file.
pub(crate) fn decode_position(bytes: &[u8]) -> Result<StoredPosition, String> {
    if bytes.len() == POSITION_V1_LEN {
        if bytes[..8] != POSITION_V1_MAGIC {
            return Err("bad magic or unsupported version".to_owned());
        }
        if word32(bytes, 16) != crc32c::crc32c(&bytes[..16]) {
            return Err("checksum mismatch".to_owned());
        }
        check_below_limit(0, word64(bytes, 8))?;
        return Ok(StoredPosition {
            lsn: Lsn(word64(bytes, 8)),
            seq: 0,
            slotted: false,
        });
    }
    if bytes.len() != POSITION_FILE_LEN {
        return Err(format!(
            "{} bytes long, expected {POSITION_FILE_LEN}",
            bytes.len()
        ));
    }
    let stride = POSITION_SLOT_STRIDE as usize;
    let slots = [
        decode_position_slot(&bytes[..POSITION_SLOT_LEN]),
        decode_position_slot(&bytes[stride..stride + POSITION_SLOT_LEN]),
    ];
    let newest = slots
        .iter()
        .filter_map(|s| s.as_ref().ok().copied().flatten())
        .max_by_key(|slot| slot.seq);
    match (newest, &slots) {
        (Some(PositionSlot { seq, lsn }), [a, b]) => {
            if let Some(reason) = a.as_ref().err().or(b.as_ref().err()) {
                tracing::warn!(
                    reason = reason.as_str(),
                    "WAL: one committed-position slot is damaged (a commit torn by a crash?); using the other"
                );
            }
            Ok(StoredPosition {
                lsn,
                seq,
                slotted: true,
            })
        }
        (None, [Err(a), Err(b)]) => Err(format!("both slots damaged: {a}; {b}")),
        (None, [Err(e), _] | [_, Err(e)]) => Err(format!("the only written slot is damaged: {e}")),
        (None, _) => Err("no slot was ever written".to_owned()),
    }
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
        let bytes = encode_position_file(Lsn(123_456), 1);
        let stored = decode_position(&bytes).unwrap();
        assert_eq!(
            (stored.lsn, stored.seq, stored.slotted),
            (Lsn(123_456), 1, true)
        );
        let mut damaged = bytes.clone();
        damaged[position_slot_offset(1) as usize + 17] ^= 1;
        assert!(decode_position(&damaged).is_err(), "the only written slot");
        assert!(decode_position(&bytes[..100]).is_err());
        assert!(decode_position(&vec![0u8; POSITION_FILE_LEN]).is_err());
    }

    #[test]
    fn the_newer_valid_slot_wins_and_a_torn_one_leaves_the_older() {
        let mut bytes = encode_position_file(Lsn(10), 1);
        let at = position_slot_offset(2) as usize;
        bytes[at..at + POSITION_SLOT_LEN].copy_from_slice(&encode_position_slot(Lsn(20), 2));
        assert_eq!(decode_position(&bytes).unwrap().lsn, Lsn(20));
        assert_eq!(decode_position(&bytes).unwrap().seq, 2);
        // A commit to the other slot torn by a crash: the newer stays.
        let at = position_slot_offset(3) as usize;
        let mut torn = bytes.clone();
        torn[at..at + 12].copy_from_slice(&encode_position_slot(Lsn(30), 3)[..12]);
        assert_eq!(decode_position(&torn).unwrap().lsn, Lsn(20));
        // The newest slot damaged: the older one is used.
        let mut rotten = bytes.clone();
        rotten[position_slot_offset(2) as usize + 20] ^= 4;
        assert_eq!(decode_position(&rotten).unwrap().lsn, Lsn(10));
    }

    #[test]
    fn positions_and_sequences_beyond_the_limit_are_damage() {
        let at_limit = encode_position_file(Lsn(LSN_LIMIT), 1);
        assert!(decode_position(&at_limit).is_err());
        let seq_at_limit = encode_position_file(Lsn(5), LSN_LIMIT);
        assert!(decode_position(&seq_at_limit).is_err());
        // The other slot is used when one is beyond the limit.
        let mut bytes = encode_position_file(Lsn(10), 1);
        let at = position_slot_offset(2) as usize;
        bytes[at..at + POSITION_SLOT_LEN].copy_from_slice(&encode_position_slot(Lsn(u64::MAX), 2));
        assert_eq!(decode_position(&bytes).unwrap().lsn, Lsn(10));
    }

    #[test]
    fn version_1_position_files_are_read() {
        let mut v1 = [0u8; 20];
        v1[..8].copy_from_slice(b"UNIWALC\x01");
        v1[8..16].copy_from_slice(&77u64.to_le_bytes());
        let crc = crc32c::crc32c(&v1[..16]);
        v1[16..].copy_from_slice(&crc.to_le_bytes());
        let stored = decode_position(&v1).unwrap();
        assert_eq!(
            (stored.lsn, stored.seq, stored.slotted),
            (Lsn(77), 0, false)
        );
        v1[9] ^= 1;
        assert!(decode_position(&v1).is_err());
    }
}
