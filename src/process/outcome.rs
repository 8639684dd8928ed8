//! What per-record processing made of a record.

use std::fmt;

use crate::checkpoint::CheckpointToken;
use crate::error::Error;

/// The outcome of handling one record with
/// [`retry_each`](super::ProcessStreamExt::retry_each): done, or given up on
/// after the retry policy's last attempt.
pub enum Processed<T> {
    /// The handler succeeded; the token may count as processed.
    Done(CheckpointToken),
    /// Every attempt failed. The record must be dead-lettered (see
    /// [`dead_letter`](super::ProcessStreamExt::dead_letter)) before its
    /// token counts as processed.
    GaveUp(GaveUp<T>),
}

/// A record whose handler failed on every attempt.
pub struct GaveUp<T> {
    /// The record.
    pub record: T,
    /// Its token.
    pub token: CheckpointToken,
    /// The last attempt's error.
    pub error: Error,
    /// How many attempts were made.
    pub attempts: u32,
}

impl<T> Processed<T> {
    /// The record's token.
    pub fn token(&self) -> &CheckpointToken {
        match self {
            Processed::Done(token) => token,
            Processed::GaveUp(gave_up) => &gave_up.token,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Processed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Processed::Done(token) => f.debug_tuple("Done").field(token).finish(),
            Processed::GaveUp(g) => f.debug_tuple("GaveUp").field(g).finish(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for GaveUp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GaveUp")
            .field("record", &self.record)
            .field("token", &self.token)
            .field("error", &self.error)
            .field("attempts", &self.attempts)
            .finish()
    }
}
