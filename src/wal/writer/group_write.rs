//! The blocking part of one group write, run on a blocking thread for the
//! writer task ([`task`](super::task)): frames the queued records into the
//! active segment, rolls to new segments, preallocates, fdatasyncs, then
//! publishes the group to the shared state and answers its requests.
//!
//! Guarantees:
//!
//! - A frame never spans segments: when the next frame does not fit the
//!   active segment, the segment is sealed (trimmed and fdatasynced) and a
//!   new one is created, named after the lsn of that frame.
//! - The bytes on disk never exceed the cap: the group stops (`blocked`)
//!   before the first frame that would not fit, and under
//!   [`WhenFull::Error`] an append that cannot fit whole is refused without
//!   writing any of it.
//! - Records are copied as the appender framed them ([`WalBatch`]), in
//!   queue order, at consecutive lsns.
//! - Under [`Fsync::Always`](crate::wal::Fsync::Always) (when the group
//!   wrote records), or when a sync was requested, the group is
//!   fdatasynced before anyone is answered; the shared state and the reader
//!   learn of the group before its appenders are answered.
//!
//! Not guaranteed: preallocation (zero fill ahead of the frames, so that the
//! fdatasync after a group writes data only) is an optimization; when it
//! fails the records still go out. A request only partly written (the cap
//! was reached in the middle of it) is not answered: it goes first in the
//! next group.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::{OnWritten, WriterRequest};
use crate::wal::format::{FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::wal::ledger::{SegmentSize, WalShared};
use crate::wal::segment::{create_segment, ActiveSegment, PREALLOCATE_BYTES};
use crate::wal::{Lsn, WalBatch, WalError, WhenFull};

/// Framed bytes gathered in a group's buffer before they go to the file
/// with one `write` call (a larger group makes several).
const WRITE_BUFFER_BYTES: usize = 4 << 20;

/// A request being worked on by the writer task.
pub(super) enum QueuedRequest {
    Append {
        batch: WalBatch,
        /// Records of this request already written.
        done: usize,
        /// Bytes of the frames already written.
        done_bytes: usize,
        /// Lsn of its first record, once written.
        first: Option<u64>,
        /// Set when the request cannot fit under `WhenFull::Error`: the
        /// bytes on disk it would have brought.
        full: Option<u64>,
        /// Called once all of it is written, before it is published.
        on_written: Option<OnWritten>,
        reply: oneshot::Sender<Result<Lsn, WalError>>,
    },
    Sync {
        /// Reached in a group (answered after that group's fdatasync).
        reached: bool,
        reply: oneshot::Sender<Result<(), WalError>>,
    },
}

impl From<WriterRequest> for QueuedRequest {
    fn from(r: WriterRequest) -> Self {
        match r {
            WriterRequest::Append {
                batch,
                on_written,
                reply,
            } => QueuedRequest::Append {
                batch,
                done: 0,
                done_bytes: 0,
                first: None,
                full: None,
                on_written,
                reply,
            },
            WriterRequest::Sync { reply } => QueuedRequest::Sync {
                reached: false,
                reply,
            },
        }
    }
}

/// Settings the blocking write needs.
#[derive(Clone, Copy)]
pub(super) struct GroupWriteParams {
    pub(super) segment_bytes: u64,
    /// Bytes on disk when the group was planned.
    pub(super) on_disk: u64,
    pub(super) cap: u64,
    pub(super) always: bool,
    pub(super) when_full: WhenFull,
    /// Next lsn to assign.
    pub(super) lsn: u64,
}

/// What one group write did.
#[derive(Default)]
pub(super) struct GroupWriteOutcome {
    pub(super) next_lsn: u64,
    pub(super) bytes_added: u64,
    pub(super) payload_added: u64,
    /// The final size of every segment written to, in order; the last one
    /// is the active segment.
    pub(super) sizes: Vec<SegmentSize>,
    pub(super) synced: bool,
    /// fdatasync calls made (sealed segments included).
    pub(super) syncs: u64,
    /// Stopped because the next record does not fit under the cap.
    pub(super) blocked: bool,
}

/// One group on its way to a blocking thread: what it writes, where, and
/// whom it tells.
pub(super) struct GroupWrite {
    pub(super) dir: PathBuf,
    pub(super) segment: ActiveSegment,
    /// The task's write buffer, lent for the group.
    pub(super) buf: Vec<u8>,
    pub(super) group: VecDeque<QueuedRequest>,
    pub(super) params: GroupWriteParams,
    pub(super) shared: Arc<WalShared>,
    pub(super) written_tx: Arc<watch::Sender<u64>>,
    /// When the group's records count as appended.
    pub(super) appended_at: Instant,
    /// Requests the task had taken from its channel when the group went out.
    pub(super) received: u64,
}

/// What a group write hands back to the writer task.
pub(super) struct GroupWriteReturn {
    pub(super) segment: ActiveSegment,
    pub(super) buf: Vec<u8>,
    /// The requests not answered, in order: to go first in the next group
    /// (or, when the write failed, the whole group, to be failed).
    pub(super) unanswered: VecDeque<QueuedRequest>,
    pub(super) written: Result<GroupWritten, WalError>,
}

/// A group write that succeeded.
pub(super) struct GroupWritten {
    pub(super) outcome: GroupWriteOutcome,
    /// Appends in flight when the group was answered: the ones it answered
    /// plus the requests then waiting in the channel (for gathering).
    pub(super) in_flight: usize,
}

/// The requests of a written group that are not done yet, and how many
/// appends it answered.
struct Answered {
    /// In order, to go first in the next group.
    unfinished: VecDeque<QueuedRequest>,
    appends: usize,
}

impl GroupWrite {
    /// Writes the group, publishes it and answers the requests it completed
    /// (blocking: runs on a blocking thread). The appenders are answered
    /// from here as soon as the group is durable (after the shared state
    /// says so): one hop less on the way back, and their wake-ups spread
    /// over the runtime's workers.
    pub(super) fn run(self) -> GroupWriteReturn {
        let GroupWrite {
            dir,
            mut segment,
            mut buf,
            mut group,
            params,
            shared,
            written_tx,
            appended_at,
            received,
        } = self;
        match write_frames(&dir, &mut segment, &mut buf, &mut group, params) {
            Ok(outcome) => {
                // The ledger is told exactly the bytes the active segment
                // holds, never more: readers read a segment up to what the
                // ledger says (past it may lie preallocated zeros).
                debug_assert_eq!(
                    outcome.sizes.last(),
                    Some(&SegmentSize {
                        first: segment.first,
                        bytes: segment.size,
                    })
                );
                // The appends this group completes learn where they are
                // before anyone can read them.
                for request in group.iter_mut() {
                    if let QueuedRequest::Append {
                        batch,
                        done,
                        first,
                        full: None,
                        on_written,
                        ..
                    } = request
                    {
                        if *done == batch.len() {
                            if let Some(on_written) = on_written.take() {
                                on_written(Lsn(first.unwrap_or(outcome.next_lsn)));
                            }
                        }
                    }
                }
                publish(&shared, &written_tx, params.lsn, &outcome, appended_at);
                // A sender counts its request just after sending it: the
                // task may have received it first.
                let waiting = shared
                    .requests_sent
                    .load(Ordering::Relaxed)
                    .saturating_sub(received);
                let answered = answer(group, &outcome, params.cap);
                GroupWriteReturn {
                    segment,
                    buf,
                    unanswered: answered.unfinished,
                    written: Ok(GroupWritten {
                        outcome,
                        in_flight: answered.appends + waiting as usize,
                    }),
                }
            }
            Err(e) => GroupWriteReturn {
                segment,
                buf,
                unanswered: group,
                written: Err(e),
            },
        }
    }
}

/// Publishes a group's effect to the shared state and the reader (before
/// anyone is answered, so that an answered appender sees it in the stats).
fn publish(
    shared: &WalShared,
    written_tx: &watch::Sender<u64>,
    written_before: u64,
    outcome: &GroupWriteOutcome,
    appended_at: Instant,
) {
    {
        let mut st = shared.lock();
        // Only the writer task moves `written`, one group at a time: the
        // ledger is where the previous group left it, and lsns only grow.
        debug_assert_eq!(st.written, written_before);
        debug_assert!(outcome.next_lsn >= written_before);
        for size in &outcome.sizes {
            // A segment's published length only grows: frames are only
            // appended, and a segment is never rewritten.
            debug_assert!(
                st.segments
                    .get(&size.first)
                    .is_none_or(|&old| old <= size.bytes),
                "segment {} shrank",
                size.first
            );
            st.segments.insert(size.first, size.bytes);
        }
        if let Some(active) = outcome.sizes.last() {
            st.active = active.first;
        }
        st.bytes_on_disk += outcome.bytes_added;
        st.payload_appended += outcome.payload_added;
        st.fdatasyncs += outcome.syncs;
        if outcome.next_lsn > written_before {
            st.group_writes += 1;
            st.mark(written_before, appended_at);
        }
        st.written = outcome.next_lsn;
        if outcome.synced {
            st.synced = outcome.next_lsn;
        }
        st.debug_check();
    }
    written_tx.send_replace(outcome.next_lsn);
}

/// Answers the requests of a written group that are done; returns the
/// rest.
fn answer(group: VecDeque<QueuedRequest>, outcome: &GroupWriteOutcome, cap: u64) -> Answered {
    let mut rest = VecDeque::new();
    let mut answered = 0;
    for p in group {
        match p {
            QueuedRequest::Append {
                batch,
                done,
                done_bytes,
                first,
                full,
                on_written,
                reply,
            } => {
                if let Some(bytes) = full {
                    let _ = reply.send(Err(WalError::Full { bytes, cap }));
                } else if done == batch.len() {
                    // An append is answered only once all its records are
                    // written, at consecutive lsns from its first.
                    debug_assert!(first.is_none_or(|f| f + batch.len() as u64 <= outcome.next_lsn));
                    answered += 1;
                    let _ = reply.send(Ok(Lsn(first.unwrap_or(outcome.next_lsn))));
                } else {
                    rest.push_back(QueuedRequest::Append {
                        batch,
                        done,
                        done_bytes,
                        first,
                        full,
                        on_written,
                        reply,
                    });
                }
            }
            QueuedRequest::Sync { reached, reply } => {
                if reached && outcome.synced {
                    let _ = reply.send(Ok(()));
                } else {
                    rest.push_back(QueuedRequest::Sync {
                        reached: false,
                        reply,
                    });
                }
            }
        }
    }
    Answered {
        unfinished: rest,
        appends: answered,
    }
}

/// Fails a request with `e`.
pub(super) fn answer_err(p: QueuedRequest, e: WalError) {
    match p {
        QueuedRequest::Append { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        QueuedRequest::Sync { reply, .. } => {
            let _ = reply.send(Err(e));
        }
    }
}

/// The blocking part of a group write: encodes the queued records into
/// frames, writes them (rolling to new segments as needed, never past the
/// cap) and fdatasyncs when asked to.
fn write_frames(
    dir: &std::path::Path,
    segment: &mut ActiveSegment,
    buf: &mut Vec<u8>,
    group: &mut VecDeque<QueuedRequest>,
    p: GroupWriteParams,
) -> Result<GroupWriteOutcome, WalError> {
    let budget = p.cap.saturating_sub(p.on_disk);
    let mut out = GroupWriteOutcome {
        next_lsn: p.lsn,
        ..GroupWriteOutcome::default()
    };
    let mut lsn = p.lsn;
    let mut sync_requested = false;
    // The active segment holds the lsns from its first one up to `lsn`.
    debug_assert!(segment.first <= lsn);
    buf.clear();
    'group: for pending in group.iter_mut() {
        match pending {
            QueuedRequest::Sync { reached, .. } => {
                *reached = true;
                sync_requested = true;
            }
            QueuedRequest::Append {
                batch,
                done,
                done_bytes,
                first,
                full,
                ..
            } => {
                let lens = batch.lens();
                if p.when_full == WhenFull::Error && *done == 0 {
                    let need = bytes_needed(segment.size + buf.len() as u64, lens, p.segment_bytes);
                    if out.bytes_added + need > budget {
                        *full = Some(p.on_disk + out.bytes_added + need);
                        continue;
                    }
                }
                while let Some(&len) = lens.get(*done) {
                    let frame = FRAME_HEADER_LEN + u64::from(len);
                    if segment.size + buf.len() as u64 + frame > p.segment_bytes {
                        if out.bytes_added + SEGMENT_HEADER_LEN + frame > budget {
                            out.blocked = true;
                            break 'group;
                        }
                        segment.write(buf)?;
                        buf.clear();
                        segment.seal()?;
                        out.syncs += 1;
                        out.sizes.push(SegmentSize {
                            first: segment.first,
                            bytes: segment.size,
                        });
                        *segment = create_segment(dir, lsn)?;
                        // A segment is named after the lsn of its first
                        // frame, which is the next one written.
                        debug_assert_eq!(segment.first, lsn);
                        out.bytes_added += SEGMENT_HEADER_LEN;
                    }
                    if out.bytes_added + frame > budget {
                        out.blocked = true;
                        break 'group;
                    }
                    // A frame never spans segments: it fits the active one
                    // (a record larger than a fresh segment's room is
                    // refused by the handle, see `max_record_bytes`).
                    debug_assert!(segment.size + buf.len() as u64 + frame <= p.segment_bytes);
                    // The appender framed it: copied as it is.
                    let end = *done_bytes + frame as usize;
                    buf.extend_from_slice(&batch.frames()[*done_bytes..end]);
                    *done_bytes = end;
                    out.bytes_added += frame;
                    // Never past the cap.
                    debug_assert!(out.bytes_added <= budget);
                    out.payload_added += u64::from(len);
                    let first_lsn = *first.get_or_insert(lsn);
                    // The records of one append get consecutive lsns, also
                    // when it is written over several groups (what is left
                    // of it goes first in the next one).
                    debug_assert_eq!(first_lsn + *done as u64, lsn);
                    lsn += 1;
                    *done += 1;
                    if buf.len() >= WRITE_BUFFER_BYTES {
                        segment.write(buf)?;
                        buf.clear();
                    }
                }
                // Every frame of a finished append was copied, none twice.
                debug_assert_eq!(*done_bytes, batch.frames().len());
            }
        }
    }
    if !buf.is_empty() {
        segment.write(buf)?;
        buf.clear();
    }
    if p.always && lsn > p.lsn && segment.is_at_file_end() {
        // The file grew, so this fdatasync writes the inode anyway: zero-fill
        // ahead (within the segment and the cap) so that the next ones don't.
        let room = budget.saturating_sub(out.bytes_added);
        let upto = (segment.size + PREALLOCATE_BYTES)
            .min(p.segment_bytes)
            .min(segment.size + room);
        // Only an optimization: on a full disk the records written above
        // still go out (zero fill that did get written is valid space).
        if let Err(e) = segment.preallocate(upto) {
            tracing::debug!(error = %crate::ErrorChain(&e), "WAL: preallocating segment space failed; appending without it");
        }
    }
    if (p.always && lsn > p.lsn) || sync_requested {
        segment.sync()?;
        out.syncs += 1;
        out.synced = true;
    }
    out.sizes.push(SegmentSize {
        first: segment.first,
        bytes: segment.size,
    });
    // Segments written to come in lsn order, each a new one.
    debug_assert!(out.sizes.windows(2).all(|w| w[0].first < w[1].first));
    out.next_lsn = lsn;
    Ok(out)
}

/// Exact bytes on disk that appending `records` adds when the active
/// segment holds `size` bytes (frames plus the headers of new segments).
fn bytes_needed(mut size: u64, lens: &[u32], segment_bytes: u64) -> u64 {
    let mut need = 0;
    for &len in lens {
        let frame = FRAME_HEADER_LEN + u64::from(len);
        if size + frame > segment_bytes {
            need += SEGMENT_HEADER_LEN;
            size = SEGMENT_HEADER_LEN;
        }
        need += frame;
        size += frame;
    }
    need
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_needed_counts_frames_and_the_headers_of_new_segments() {
        let records = vec![13u32; 10]; // 25-byte frames
                                       // 116-byte segments hold 4 frames after the 16-byte header.
        assert_eq!(bytes_needed(16, &records[..4], 116), 100);
        assert_eq!(bytes_needed(16, &records[..5], 116), 100 + 16 + 25);
        assert_eq!(bytes_needed(16 + 75, &records[..2], 116), 25 + 16 + 25);
        assert_eq!(bytes_needed(16, &records, 116), 250 + 2 * 16);
        assert_eq!(bytes_needed(16, &[], 116), 0);
    }
}
