//! Fuzz body of the WAL's committed-position file decoder: any bytes decode
//! to a position or a reason, never a panic; a decoded position encodes
//! back to a file that decodes to the same position.

use crate::wal::{decode_position, encode_position_file};

/// Decodes `data` as a committed-position file.
pub fn run(data: &[u8]) {
    let Ok(stored) = decode_position(data) else {
        return;
    };
    if stored.slotted {
        let again = decode_position(&encode_position_file(stored.lsn, stored.seq))
            .expect("a re-encoded position decodes");
        assert_eq!(
            (again.lsn, again.seq, again.slotted),
            (stored.lsn, stored.seq, true),
            "a decoded position survives re-encoding"
        );
    }
}
