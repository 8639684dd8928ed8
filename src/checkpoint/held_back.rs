//! [`HeldBackTokens`]: a partition whose checkpoint is held back because a
//! token never arrived, as `checkpoint_batched` reports it when its input
//! ends (see [`CheckpointBatched::held_back`](super::CheckpointBatched::held_back)).

use std::fmt;

/// Tokens of one partition that `checkpoint_batched` saw but could not save,
/// because an earlier token of the partition (`missing_seq`) never arrived:
/// a checkpoint never passes a record that was not seen.
///
/// Usually a token was dropped on the way (`try_filter`, an error swallowed
/// with its token); skip records with
/// [`try_filter_checkpointed`](super::CheckpointStreamExt::try_filter_checkpointed)
/// instead. After a restart, the records from `missing_seq` on are read
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBackTokens {
    /// The partition.
    pub partition: String,
    /// Tokens seen after the missing one, not covered by any save.
    pub tokens: usize,
    /// The `seq` (the place in the partition's delivery order, from 0 in
    /// this run) of the first token that never arrived.
    pub missing_seq: u64,
}

impl fmt::Display for HeldBackTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} token(s) behind seq {}",
            self.partition, self.tokens, self.missing_seq
        )
    }
}

/// "p0: 3 token(s) behind seq 1, p1: …" for logs and error messages.
pub(super) fn describe(held_back: &[HeldBackTokens]) -> String {
    held_back
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
