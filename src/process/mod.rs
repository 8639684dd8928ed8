//! Per-record processing combinators: retry a failing handler, dead-letter
//! the records it gives up on, and only then release their tokens.
//!
//! ```
//! use std::time::Duration;
//! use futures::TryStreamExt;
//! use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore, Position};
//! use unistream::process::ProcessStreamExt;
//! use unistream::sink::MemorySink;
//! use unistream::source::MemorySource;
//! use unistream::{DeadLetter, Error, RetryPolicy};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
//! let dead_letters = MemorySink::<DeadLetter<i32>>::new();
//! let handle = dead_letters.handle();
//! let store = MemoryCheckpointStore::new();
//! MemorySource::new([("p", vec![1, -2, 3])])
//!     .retry_each(RetryPolicy::new().max_attempts(2).initial_backoff(Duration::ZERO), |n: i32| async move {
//!         if n < 0 { Err(Error::handler("negative")) } else { Ok(()) }
//!     })
//!     .dead_letter(dead_letters)
//!     .checkpoint_batched(100, Duration::from_secs(1), store.clone())
//!     .try_collect::<()>()
//!     .await?;
//! let letters = handle.records();
//! assert_eq!(letters.len(), 1);
//! assert_eq!(letters[0].record, Some(-2));
//! assert_eq!(letters[0].attempts, 2);
//! assert_eq!(store.position("p"), Some(Position::Offset(3)));
//! # Ok(()) }
//! ```

mod dead_letter;
mod outcome;
mod retry;

use futures::{Sink, TryFuture, TryStream};

pub use dead_letter::DeadLetterGaveUp;
pub use outcome::{GaveUp, Processed};
pub use retry::RetryEach;

use crate::checkpoint::CheckpointToken;
use crate::dead_letter::DeadLetter;
use crate::error::Error;
use crate::retry::RetryPolicy;

/// Per-record processing combinators for sources (`TryStream`s of
/// `(record, CheckpointToken)`).
pub trait ProcessStreamExt: TryStream {
    /// Handles every record with `handler`, retrying a failed attempt per
    /// `policy`; yields [`Processed::Done`] or, after the last attempt,
    /// [`Processed::GaveUp`]. See [`RetryEach`].
    fn retry_each<T, F, Fut>(self, policy: RetryPolicy, handler: F) -> RetryEach<Self, T, F, Fut>
    where
        Self: TryStream<Ok = (T, CheckpointToken)> + Sized,
        Self::Error: Into<Error>,
        T: Clone,
        F: FnMut(T) -> Fut,
        Fut: TryFuture<Ok = ()>,
        Fut::Error: Into<Error>,
    {
        RetryEach::new(self, policy, handler)
    }

    /// Writes every [`Processed::GaveUp`] record to `sink` before yielding
    /// its token; yields the tokens of [`Processed::Done`] records at once.
    /// See [`DeadLetterGaveUp`].
    fn dead_letter<T, D>(self, sink: D) -> DeadLetterGaveUp<Self, D, T>
    where
        Self: TryStream<Ok = Processed<T>> + Sized,
        Self::Error: Into<Error>,
        D: Sink<Vec<DeadLetter<T>>>,
        D::Error: Into<Error>,
    {
        DeadLetterGaveUp::new(self, sink)
    }
}

impl<St: TryStream + ?Sized> ProcessStreamExt for St {}
