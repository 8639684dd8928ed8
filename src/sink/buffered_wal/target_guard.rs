//! The delivery task's guard around the user's target: a target that breaks
//! the batch-sink protocol stops delivery with a typed error naming the
//! cause, instead of a panic inside the task.
//!
//! Every call into the target (`poll_ready`, `start_send`, `poll_flush`,
//! `poll_close`) runs under `catch_unwind`. A panic becomes
//! [`Error::BrokenTarget`]: [`BrokenTarget::EndedAfterError`] when the
//! target had failed and no batch went through since (the mark of a `Sink`
//! that ends itself after an error, such as `futures::sink::unfold`, whose
//! `start_send` then panics), [`BrokenTarget::Panicked`] otherwise. From
//! then on every call returns the same error without touching the target,
//! whose state is unknown. The delivery task does not retry that error: it
//! stops, commits nothing, and the records stay in the log.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Sink;

use crate::error::{BrokenTarget, Error};

/// The target, as the delivery task calls it.
pub(super) struct TargetGuard<S> {
    target: Pin<Box<S>>,
    /// The last error the target returned, until a batch goes through.
    failed: Option<String>,
    /// A batch was handed over since `failed` was set.
    sent_since_failure: bool,
    /// The target panicked: this is all it answers from then on.
    broken: Option<BrokenTarget>,
}

impl<S> TargetGuard<S> {
    pub(super) fn new(target: S) -> Self {
        Self {
            target: Box::pin(target),
            failed: None,
            sent_since_failure: false,
            broken: None,
        }
    }

    /// Runs one call into the target, catching a panic.
    fn call<R, E: Into<Error>>(
        &mut self,
        call: impl FnOnce(Pin<&mut S>) -> Result<R, E>,
    ) -> Result<R, Error> {
        if let Some(broken) = &self.broken {
            return Err(broken.clone().into());
        }
        let target = self.target.as_mut();
        match catch_unwind(AssertUnwindSafe(|| call(target))) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                let error = error.into();
                self.failed = Some(crate::ErrorChain(&error).to_string());
                self.sent_since_failure = false;
                Err(error)
            }
            Err(panic) => {
                let panic = BrokenTarget::panic_message(&*panic);
                let broken = match self.failed.take() {
                    Some(error) => BrokenTarget::EndedAfterError { error, panic },
                    None => BrokenTarget::Panicked { message: panic },
                };
                self.broken = Some(broken.clone());
                Err(broken.into())
            }
        }
    }

    /// Runs one poll of the target, catching a panic.
    fn poll<E: Into<Error>>(
        &mut self,
        poll: impl FnOnce(Pin<&mut S>) -> Poll<Result<(), E>>,
    ) -> Poll<Result<(), Error>> {
        let mut pending = false;
        let result = self.call(|target| match poll(target) {
            Poll::Ready(result) => result,
            Poll::Pending => {
                pending = true;
                Ok(())
            }
        });
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(result)
        }
    }
}

impl<T, S> Sink<Vec<T>> for TargetGuard<S>
where
    S: Sink<Vec<T>>,
    S::Error: Into<Error>,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        let result = futures::ready!(this.poll(|target| target.poll_ready(cx)));
        if result.is_ok() && this.sent_since_failure {
            // A batch was taken (the delivery task feeds batches and reads
            // their outcome here): the target recovered from its failure.
            this.failed = None;
        }
        Poll::Ready(result)
    }

    fn start_send(self: Pin<&mut Self>, batch: Vec<T>) -> Result<(), Error> {
        let this = self.get_mut();
        this.call(|target| target.start_send(batch))?;
        this.sent_since_failure = true;
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        let result = futures::ready!(this.poll(|target| target.poll_flush(cx)));
        if result.is_ok() && this.sent_since_failure {
            // A batch went through: the target recovered from its failure.
            this.failed = None;
        }
        Poll::Ready(result)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll(|target| target.poll_close(cx))
    }
}

impl<S> Unpin for TargetGuard<S> {}
