//! The `dead_letter` combinator: records given up on go to a dead-letter
//! sink before their token is released; documented on [`DeadLetterGaveUp`].

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{Fuse, FusedStream, IntoStream, Stream, StreamExt, TryStream, TryStreamExt};
use futures::Sink;
use pin_project::pin_project;

use super::outcome::Processed;
use crate::checkpoint::CheckpointToken;
use crate::dead_letter::DeadLetter;
use crate::error::Error;

/// Stream for [`ProcessStreamExt::dead_letter`](super::ProcessStreamExt::dead_letter).
///
/// It turns a stream of [`Processed`] outcomes into a
/// stream of tokens ready for
/// [`checkpoint_batched`](crate::checkpoint::CheckpointStreamExt::checkpoint_batched):
///
/// - [`Processed::Done`] yields its token at once.
/// - [`Processed::GaveUp`] is written to the sink as a
///   [`DeadLetter::record`] (reason = the last error, attempts, origin =
///   `"<partition> <position>"`), the sink is flushed, and only then is the
///   token yielded. Order is kept: nothing after it is yielded before.
/// - If the sink fails, the stream yields [`Error::DeadLetter`] and ends;
///   the record's token is never yielded, so its checkpoint never passes it.
///
/// The sink is flushed after every entry and is not closed at the end.
#[pin_project(project = DeadLetterProj)]
#[must_use = "streams do nothing unless polled"]
pub struct DeadLetterGaveUp<St: TryStream, D, T> {
    #[pin]
    stream: Fuse<IntoStream<St>>,
    #[pin]
    sink: D,
    /// An entry waiting for the sink to be ready, with its token.
    pending: Option<(DeadLetter<T>, CheckpointToken)>,
    /// The token of the entry being flushed.
    flushing: Option<CheckpointToken>,
    terminated: bool,
}

impl<St, D, T> DeadLetterGaveUp<St, D, T>
where
    St: TryStream<Ok = Processed<T>>,
    St::Error: Into<Error>,
    D: Sink<Vec<DeadLetter<T>>>,
    D::Error: Into<Error>,
{
    pub(super) fn new(stream: St, sink: D) -> Self {
        Self {
            stream: stream.into_stream().fuse(),
            sink,
            pending: None,
            flushing: None,
            terminated: false,
        }
    }

    /// The dead-letter sink.
    pub fn sink(&self) -> &D {
        &self.sink
    }
}

impl<St, D, T> Stream for DeadLetterGaveUp<St, D, T>
where
    St: TryStream<Ok = Processed<T>>,
    St::Error: Into<Error>,
    D: Sink<Vec<DeadLetter<T>>>,
    D::Error: Into<Error>,
{
    type Item = Result<CheckpointToken, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if *this.terminated {
                return Poll::Ready(None);
            }
            if this.pending.is_some() {
                let ready = futures::ready!(this.sink.as_mut().poll_ready(cx));
                let sent = ready.and_then(|()| match this.pending.take() {
                    Some((letter, token)) => {
                        *this.flushing = Some(token);
                        this.sink.as_mut().start_send(vec![letter])
                    }
                    None => Ok(()),
                });
                if let Err(error) = sent {
                    return Poll::Ready(Some(Err(fail(this.terminated, error.into()))));
                }
            }
            if this.flushing.is_some() {
                match futures::ready!(this.sink.as_mut().poll_flush(cx)) {
                    Ok(()) => {
                        if let Some(token) = this.flushing.take() {
                            return Poll::Ready(Some(Ok(token)));
                        }
                    }
                    Err(error) => {
                        *this.flushing = None;
                        return Poll::Ready(Some(Err(fail(this.terminated, error.into()))));
                    }
                }
            }
            match futures::ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(Processed::Done(token))) => return Poll::Ready(Some(Ok(token))),
                Some(Ok(Processed::GaveUp(gave_up))) => {
                    let origin =
                        format!("{} {}", gave_up.token.partition(), gave_up.token.position());
                    tracing::warn!(%origin, attempts = gave_up.attempts, error = %crate::ErrorChain(&gave_up.error),
                        "handler gave up on a record; dead-lettering it");
                    let letter = DeadLetter::record(
                        gave_up.record,
                        crate::ErrorChain(&gave_up.error).to_string(),
                        gave_up.attempts,
                    )
                    .with_origin(origin);
                    *this.pending = Some((letter, gave_up.token));
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                None => {
                    *this.terminated = true;
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.terminated {
            return (0, Some(0));
        }
        let extra = usize::from(self.pending.is_some() || self.flushing.is_some());
        let (_, upper) = self.stream.size_hint();
        // A failing sink ends the stream early: no lower bound beyond 0.
        (0, upper.and_then(|u| u.checked_add(extra)))
    }
}

fn fail(terminated: &mut bool, error: Error) -> Error {
    *terminated = true;
    Error::DeadLetter(Box::new(error))
}

impl<St, D, T> FusedStream for DeadLetterGaveUp<St, D, T>
where
    St: TryStream<Ok = Processed<T>>,
    St::Error: Into<Error>,
    D: Sink<Vec<DeadLetter<T>>>,
    D::Error: Into<Error>,
{
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl<St: TryStream, D, T> fmt::Debug for DeadLetterGaveUp<St, D, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetterGaveUp")
            .field(
                "pending",
                &(self.pending.is_some() || self.flushing.is_some()),
            )
            .field("terminated", &self.terminated)
            .finish()
    }
}
