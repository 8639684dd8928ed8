//! The `try_filter_checkpointed` combinator: `try_filter` for streams of
//! checkpointed records, which skips a record without losing its token.
//!
//! `try_filter` drops the items it rejects, tokens included; a dropped token
//! holds its partition's checkpoint back for the rest of the run (see
//! [`CheckpointBatched`](super::CheckpointBatched)). This combinator yields
//! *every* item, as `(Some(value), token)` when the predicate keeps it and
//! `(None, token)` when it skips it, so the token reaches the checkpointer
//! and the skipped record's position is saved like any other.
//!
//! # Guarantees
//!
//! - One output item per input item, in the input's order; the predicate
//!   runs once per item, one at a time.
//! - Errors pass through unchanged, in place.
//! - The token is the item's own (cloned: a shared name and a position).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{FusedStream, Stream, TryStream};
use pin_project::pin_project;

use super::token::{AsCheckpointToken, CheckpointToken};

/// Stream for
/// [`CheckpointStreamExt::try_filter_checkpointed`](super::CheckpointStreamExt::try_filter_checkpointed).
#[pin_project(project = TryFilterCheckpointedProj)]
#[must_use = "streams do nothing unless polled"]
pub struct TryFilterCheckpointed<St: TryStream, Fut, F> {
    #[pin]
    stream: St,
    predicate: F,
    /// The predicate's answer for `pending_item`, while it is computed.
    #[pin]
    pending_keep: Option<Fut>,
    pending_item: Option<St::Ok>,
}

impl<St: TryStream, Fut, F> TryFilterCheckpointed<St, Fut, F> {
    pub(super) fn new(stream: St, predicate: F) -> Self {
        Self {
            stream,
            predicate,
            pending_keep: None,
            pending_item: None,
        }
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &St {
        &self.stream
    }
}

impl<St, Fut, F> Stream for TryFilterCheckpointed<St, Fut, F>
where
    St: TryStream,
    St::Ok: AsCheckpointToken,
    F: FnMut(&St::Ok) -> Fut,
    Fut: Future<Output = bool>,
{
    type Item = Result<
        (
            Option<<St::Ok as AsCheckpointToken>::Value>,
            CheckpointToken,
        ),
        St::Error,
    >;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(keep) = this.pending_keep.as_mut().as_pin_mut() {
                let keep = futures::ready!(keep.poll(cx));
                this.pending_keep.set(None);
                if let Some(item) = this.pending_item.take() {
                    let token = item.checkpoint_token().clone();
                    let value = item.into_value();
                    return Poll::Ready(Some(Ok((keep.then_some(value), token))));
                }
            }
            match futures::ready!(this.stream.as_mut().try_poll_next(cx)) {
                Some(Ok(item)) => {
                    this.pending_keep.set(Some((this.predicate)(&item)));
                    *this.pending_item = Some(item);
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => return Poll::Ready(None),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let pending = usize::from(self.pending_item.is_some());
        let (lower, upper) = self.stream.size_hint();
        (
            lower.saturating_add(pending),
            upper.and_then(|u| u.checked_add(pending)),
        )
    }
}

impl<St, Fut, F> FusedStream for TryFilterCheckpointed<St, Fut, F>
where
    St: TryStream + FusedStream,
    St::Ok: AsCheckpointToken,
    F: FnMut(&St::Ok) -> Fut,
    Fut: Future<Output = bool>,
{
    fn is_terminated(&self) -> bool {
        self.pending_item.is_none() && self.stream.is_terminated()
    }
}

impl<St: TryStream + fmt::Debug, Fut, F> fmt::Debug for TryFilterCheckpointed<St, Fut, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryFilterCheckpointed")
            .field("stream", &self.stream)
            .field("pending", &self.pending_item.is_some())
            .finish()
    }
}
