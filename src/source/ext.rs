//! [`SourceExt`]: combinators for the source end of a consumer pipeline.

use std::future::Future;

use futures::Stream;

use super::until::Until;

/// Combinators for sources (any `Stream`, usually of `(record, token)`).
pub trait SourceExt: Stream {
    /// Ends the source when `signal` resolves (a [`ShutdownSignal`], Ctrl-C,
    /// a deadline, any `Future<Output = ()>`): from then on no record is
    /// taken from it and it is dropped, so the pipeline after it ends as if
    /// the source had run out: the records in flight are finished,
    /// `checkpoint_batched` saves the final positions, `forward` closes its
    /// sink.
    ///
    /// Put it **right after the source**, before any processing and before
    /// `checkpoint_batched`: a `take_until` after `checkpoint_batched` drops
    /// the checkpointer without its final save, and one between processing
    /// stages drops records already taken from the source. See
    /// [`Shutdown`](super::Shutdown) for an example.
    ///
    /// [`ShutdownSignal`]: super::ShutdownSignal
    fn until<F>(self, signal: F) -> Until<Self, F>
    where
        Self: Sized,
        F: Future<Output = ()>,
    {
        Until::new(self, signal)
    }
}

impl<St: Stream + ?Sized> SourceExt for St {}
