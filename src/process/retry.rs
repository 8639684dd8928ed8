//! The `retry_each` combinator: per-record retry of a handler, documented on
//! [`RetryEach`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{Fuse, FusedStream, IntoStream, Stream, StreamExt, TryStream, TryStreamExt};
use futures::TryFuture;
use pin_project::pin_project;
use tokio::time::Sleep;

use super::outcome::{GaveUp, Processed};
use crate::checkpoint::CheckpointToken;
use crate::error::Error;
use crate::retry::RetryPolicy;

/// Stream for [`ProcessStreamExt::retry_each`](super::ProcessStreamExt::retry_each).
///
/// It calls a handler for every `(record, token)` of a source, one
/// record at a time, in order. A failed attempt is retried after the
/// [`RetryPolicy`]'s backoff (`tokio::time`), with a clone of the record,
/// until an attempt succeeds ([`Processed::Done`]) or the policy allows no
/// more ([`Processed::GaveUp`], with the record, its token, the last error
/// and the attempt count). Giving up does not end the stream: the outcome is
/// handed on, and [`dead_letter`](super::ProcessStreamExt::dead_letter)
/// writes it to a dead-letter sink before releasing its token.
///
/// Upstream errors pass through unchanged (converted to [`Error`]).
///
/// Not provided: concurrency. For concurrent processing, retry inside
/// `and_then`/`buffer_unordered` futures and checkpoint with
/// `checkpoint_batched`, which accepts tokens in any order.
#[pin_project(project = RetryEachProj)]
#[must_use = "streams do nothing unless polled"]
pub struct RetryEach<St: TryStream, T, F, Fut> {
    #[pin]
    stream: Fuse<IntoStream<St>>,
    policy: RetryPolicy,
    handler: F,
    /// The record being handled.
    current: Option<Current<T>>,
    #[pin]
    attempt: Option<Fut>,
    #[pin]
    backoff: Option<Sleep>,
}

struct Current<T> {
    record: T,
    token: CheckpointToken,
    attempts: u32,
}

impl<St, T, F, Fut> RetryEach<St, T, F, Fut>
where
    St: TryStream<Ok = (T, CheckpointToken)>,
    St::Error: Into<Error>,
    T: Clone,
    F: FnMut(T) -> Fut,
    Fut: TryFuture<Ok = ()>,
    Fut::Error: Into<Error>,
{
    pub(super) fn new(stream: St, policy: RetryPolicy, handler: F) -> Self {
        Self {
            stream: stream.into_stream().fuse(),
            policy,
            handler,
            current: None,
            attempt: None,
            backoff: None,
        }
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &St {
        self.stream.get_ref().get_ref()
    }
}

impl<St, T, F, Fut> Stream for RetryEach<St, T, F, Fut>
where
    St: TryStream<Ok = (T, CheckpointToken)>,
    St::Error: Into<Error>,
    T: Clone,
    F: FnMut(T) -> Fut,
    Fut: TryFuture<Ok = ()>,
    Fut::Error: Into<Error>,
{
    type Item = Result<Processed<T>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(attempt) = this.attempt.as_mut().as_pin_mut() {
                let result = futures::ready!(attempt.try_poll(cx));
                this.attempt.set(None);
                let Some(current) = this.current.take() else {
                    continue; // an attempt always has a current record
                };
                match result {
                    Ok(()) => return Poll::Ready(Some(Ok(Processed::Done(current.token)))),
                    Err(error) => {
                        let error: Error = error.into();
                        if this.policy.allows_another(current.attempts) {
                            let delay = this.policy.backoff(current.attempts - 1);
                            tracing::debug!(
                                partition = current.token.partition(),
                                position = %current.token.position(),
                                attempts = current.attempts,
                                ?delay,
                                error = %crate::ErrorChain(&error),
                                "handler failed; retrying"
                            );
                            this.backoff.set(Some(tokio::time::sleep(delay)));
                            *this.current = Some(current);
                        } else {
                            return Poll::Ready(Some(Ok(Processed::GaveUp(GaveUp {
                                record: current.record,
                                token: current.token,
                                error,
                                attempts: current.attempts,
                            }))));
                        }
                    }
                }
            }

            if let Some(backoff) = this.backoff.as_mut().as_pin_mut() {
                futures::ready!(backoff.poll(cx));
                this.backoff.set(None);
                if let Some(current) = this.current.as_mut() {
                    current.attempts += 1;
                    this.attempt
                        .set(Some((this.handler)(current.record.clone())));
                }
                continue;
            }

            match futures::ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok((record, token))) => {
                    this.attempt.set(Some((this.handler)(record.clone())));
                    *this.current = Some(Current {
                        record,
                        token,
                        attempts: 1,
                    });
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                None => return Poll::Ready(None),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let extra = usize::from(self.current.is_some());
        let (lower, upper) = self.stream.size_hint();
        (
            lower.saturating_add(extra),
            upper.and_then(|u| u.checked_add(extra)),
        )
    }
}

impl<St, T, F, Fut> FusedStream for RetryEach<St, T, F, Fut>
where
    St: TryStream<Ok = (T, CheckpointToken)>,
    St::Error: Into<Error>,
    T: Clone,
    F: FnMut(T) -> Fut,
    Fut: TryFuture<Ok = ()>,
    Fut::Error: Into<Error>,
{
    fn is_terminated(&self) -> bool {
        self.current.is_none() && self.stream.is_terminated()
    }
}

impl<St: TryStream, T, F, Fut> fmt::Debug for RetryEach<St, T, F, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryEach")
            .field("policy", &self.policy)
            .field("in_progress", &self.current.is_some())
            .finish()
    }
}
