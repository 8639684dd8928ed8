//! Reading `rejectedLogEventsInfo`: the events of a delivered `PutLogEvents`
//! request that the service did not store, mapped back to their indices in
//! the batch so that `buffered_wal` dead-letters exactly them.
//!
//! # Guarantees
//!
//! - Every event the answer names becomes a [`RejectedRecord`] with its index
//!   in the batch and a reason naming the field that named it.
//! - Indices out of range are clamped and negative ones name nothing: no
//!   answer makes this panic or name an event outside the request.
//! - [`sort_and_dedup`] reports an event named twice (expired and too old)
//!   once, and the events of a batch in index order.
//!
//! # Not guaranteed
//!
//! The end indices are read as inclusive (see [`map_rejected_info`]): one
//! event at such a boundary that the service did store may be dead-lettered
//! too, a duplicate rather than a loss.

use aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo;

use crate::error::RejectedRecord;

/// Adds the events `info` names to `rejected`, mapping positions in `part`
/// (the request as sent) back to batch indices.
///
/// `tooNewLogEventStartIndex` is an inclusive start. The two end indices
/// are documented as exclusive but described as "the index of the last log
/// event that is too old", and emulators (moto) return the last rejected
/// event's index. Reading them as inclusive can only dead-letter one event
/// that was in fact stored (a duplicate); reading them as exclusive could
/// lose one silently. So they are read as inclusive.
pub(super) fn map_rejected_info(
    info: &RejectedLogEventsInfo,
    part: &[usize],
    rejected: &mut Vec<RejectedRecord>,
) {
    let len = part.len();
    // Clamped into 0..=len; a negative index names nothing.
    let position = |i: i32| usize::try_from(i).map(|i| i.min(len)).ok();
    let mut reject = |positions: std::ops::Range<usize>, reason: &str| {
        rejected.extend(
            part[positions]
                .iter()
                .map(|&index| RejectedRecord::new(index, reason)),
        );
    };
    if let Some(last) = info.expired_log_event_end_index().and_then(position) {
        reject(
            0..(last + 1).min(len),
            "expired: older than the log group's retention, rejected by CloudWatch Logs \
             (rejectedLogEventsInfo.expiredLogEventEndIndex)",
        );
    }
    if let Some(last) = info.too_old_log_event_end_index().and_then(position) {
        reject(
            0..(last + 1).min(len),
            "too old: rejected by CloudWatch Logs (rejectedLogEventsInfo.tooOldLogEventEndIndex)",
        );
    }
    if let Some(first) = info.too_new_log_event_start_index() {
        let first = usize::try_from(first).unwrap_or(0).min(len);
        reject(
            first..len,
            "too new: rejected by CloudWatch Logs (rejectedLogEventsInfo.tooNewLogEventStartIndex)",
        );
    }
}

/// Sorts the rejected events of a batch by index and keeps the first reason
/// of an event named more than once (e.g. both expired and too old).
pub(super) fn sort_and_dedup(rejected: &mut Vec<RejectedRecord>) {
    // Stable, so the first reason given for an index is the one kept.
    rejected.sort_by_key(|r| r.index);
    rejected.dedup_by_key(|r| r.index);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(old: Option<i32>, new: Option<i32>, expired: Option<i32>) -> RejectedLogEventsInfo {
        RejectedLogEventsInfo::builder()
            .set_too_old_log_event_end_index(old)
            .set_too_new_log_event_start_index(new)
            .set_expired_log_event_end_index(expired)
            .build()
    }

    #[test]
    fn rejected_info_maps_positions_back_to_batch_indices() {
        // The request as sent: batch indices in timestamp order.
        let part = [7, 3, 9, 0, 5];
        let mut rejected = Vec::new();
        map_rejected_info(&info(Some(1), Some(4), None), &part, &mut rejected);
        let indices: Vec<_> = rejected.iter().map(|r| r.index).collect();
        assert_eq!(indices, vec![7, 3, 5]);
        assert!(rejected[0].reason.starts_with("too old"));
        assert!(rejected[1].reason.starts_with("too old"));
        assert!(rejected[2].reason.starts_with("too new"));
    }

    #[test]
    fn rejected_info_end_indices_are_read_inclusively() {
        // moto answers one too-old event at position 0 with end index 0.
        let mut rejected = Vec::new();
        map_rejected_info(&info(Some(0), None, None), &[4, 2], &mut rejected);
        assert_eq!(
            rejected,
            vec![RejectedRecord::new(4, rejected[0].reason.clone())]
        );
    }

    #[test]
    fn rejected_info_out_of_range_is_clamped() {
        let part = [1, 2];
        let mut rejected = Vec::new();
        map_rejected_info(&info(Some(-3), Some(99), Some(99)), &part, &mut rejected);
        let indices: Vec<_> = rejected.iter().map(|r| r.index).collect();
        assert_eq!(indices, vec![1, 2], "expired covers all; old and new none");
        assert!(rejected.iter().all(|r| r.reason.starts_with("expired")));
    }

    #[test]
    fn an_event_named_twice_is_reported_once_with_its_first_reason() {
        let mut rejected = vec![
            RejectedRecord::new(5, "expired"),
            RejectedRecord::new(2, "too new"),
            RejectedRecord::new(5, "too old"),
        ];
        sort_and_dedup(&mut rejected);
        assert_eq!(
            rejected,
            vec![
                RejectedRecord::new(2, "too new"),
                RejectedRecord::new(5, "expired")
            ]
        );
    }
}
