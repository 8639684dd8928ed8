//! The dead-letter destination of a [`BufferedWal`](super::BufferedWal).
//!
//! [`WalConfig::dead_letter`](super::WalConfig::dead_letter) accepts any
//! `Sink<Vec<DeadLetter<T>>>` whose error converts into [`Error`];
//! [`NoDeadLetter`] stands for "none configured". The [`DeadLetterTarget`]
//! trait unifies both so that the delivery task holds one boxed sink or
//! nothing, whatever the user passed.

use std::pin::Pin;

use futures::{Sink, SinkExt};

use crate::dead_letter::DeadLetter;
use crate::error::Error;

/// A boxed dead-letter sink, as the delivery task holds it.
pub(super) type BoxDeadLetterSink<T> =
    Pin<Box<dyn Sink<Vec<DeadLetter<T>>, Error = Error> + Send + 'static>>;

/// No dead-letter destination: records are never given up on.
///
/// With it, a batch that exhausts its attempts, a record the target rejects
/// and bytes that no longer decode stop the delivery with the error instead;
/// nothing is committed and the records stay in the log, to be delivered
/// when it is opened again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoDeadLetter;

/// Something that can serve as the dead-letter destination for records of
/// type `T`: [`NoDeadLetter`], or any `Sink<Vec<DeadLetter<T>>>` whose error
/// converts into [`Error`].
///
/// Implemented by the crate for exactly those; there is no need to
/// implement it yourself.
pub trait DeadLetterTarget<T>: Send + 'static {
    /// The sink, boxed, or `None` for [`NoDeadLetter`].
    #[doc(hidden)]
    fn into_sink(self) -> Option<BoxDeadLetterSink<T>>;
}

impl<T> DeadLetterTarget<T> for NoDeadLetter {
    fn into_sink(self) -> Option<BoxDeadLetterSink<T>> {
        None
    }
}

impl<T, S> DeadLetterTarget<T> for S
where
    T: Send + 'static,
    S: Sink<Vec<DeadLetter<T>>> + Send + 'static,
    S::Error: Into<Error>,
{
    fn into_sink(self) -> Option<BoxDeadLetterSink<T>> {
        Some(Box::pin(self.sink_map_err(Into::into)))
    }
}
