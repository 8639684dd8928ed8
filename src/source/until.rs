//! The [`until`](super::SourceExt::until) combinator: a source that ends
//! when a signal resolves.
//!
//! What is guaranteed: once the signal has resolved, no further item is
//! taken from the source; the source is dropped at once (a Kinesis source
//! stops its shard readers, a file source its read-ahead) and the stream
//! ends. Items the source yielded before are untouched: they are already in
//! the stages after it, which finish them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{FusedStream, Stream};
use pin_project::pin_project;

/// Stream for [`SourceExt::until`](super::SourceExt::until).
#[pin_project]
#[must_use = "streams do nothing unless polled"]
pub struct Until<St, F> {
    /// `None` once the signal resolved or the source ended.
    #[pin]
    source: Option<St>,
    #[pin]
    signal: Option<F>,
    stopped: bool,
}

impl<St, F> Until<St, F> {
    pub(super) fn new(source: St, signal: F) -> Self {
        Self {
            source: Some(source),
            signal: Some(signal),
            stopped: false,
        }
    }

    /// Whether the stream ended because the signal resolved (not because
    /// the source ran out).
    pub fn stopped_by_signal(&self) -> bool {
        self.stopped
    }
}

impl<St, F> Stream for Until<St, F>
where
    St: Stream,
    F: Future<Output = ()>,
{
    type Item = St::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<St::Item>> {
        let mut this = self.project();
        if this.source.is_none() {
            return Poll::Ready(None);
        }
        // The signal first: once it has resolved, not one more item.
        if let Some(signal) = this.signal.as_mut().as_pin_mut() {
            if signal.poll(cx).is_ready() {
                this.signal.set(None);
                this.source.set(None);
                *this.stopped = true;
                tracing::debug!("source stopped by its shutdown signal");
                return Poll::Ready(None);
            }
        }
        let Some(source) = this.source.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        match source.poll_next(cx) {
            Poll::Ready(None) => {
                this.source.set(None);
                this.signal.set(None);
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.source {
            Some(source) => (0, source.size_hint().1),
            None => (0, Some(0)),
        }
    }
}

impl<St, F> FusedStream for Until<St, F>
where
    St: Stream,
    F: Future<Output = ()>,
{
    fn is_terminated(&self) -> bool {
        self.source.is_none()
    }
}

impl<St, F> fmt::Debug for Until<St, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Until")
            .field("running", &self.source.is_some())
            .field("stopped_by_signal", &self.stopped)
            .finish()
    }
}
