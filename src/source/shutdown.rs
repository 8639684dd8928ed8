//! [`Shutdown`]: a handle that asks a consumer pipeline to stop, and the
//! [`ShutdownSignal`] future that a source's [`until`](super::SourceExt::until)
//! waits on.
//!
//! What is guaranteed: once [`trigger`](Shutdown::trigger) is called (from
//! any thread, any number of times), every signal of the handle resolves,
//! including signals made later; a signal never resolves before.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::watch;

/// Asks a consumer pipeline to stop: intake ends at the source, what is in
/// flight is processed, the final checkpoints are saved and the sinks the
/// pipeline forwards into are closed.
///
/// Give the source its [`signal`](Self::signal) with
/// [`until`](super::SourceExt::until), right after the source; keep a clone
/// of the handle and call [`trigger`](Self::trigger) (for example on
/// Ctrl-C, with [`trigger_on_ctrl_c`](Self::trigger_on_ctrl_c)). The
/// pipeline then ends like one whose source ran out of records: the stages
/// after the source finish the records they already have,
/// `checkpoint_batched` saves the position of the last one, and `forward`
/// closes its sink. Await the pipeline to know all of that is done.
///
/// ```
/// use std::time::Duration;
/// use futures::TryStreamExt;
/// use unistream::checkpoint::{CheckpointStreamExt, MemoryCheckpointStore, Position};
/// use unistream::source::{MemorySource, Shutdown, SourceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), unistream::Error> {
/// let shutdown = Shutdown::new();
/// let store = MemoryCheckpointStore::new();
/// let stop = shutdown.clone();
/// MemorySource::new([("p0", (1..=100u32).collect::<Vec<_>>())])
///     .until(shutdown.signal())
///     .and_then(|(record, token)| {
///         if record == 3 {
///             stop.trigger(); // Ctrl-C, a deadline, ...
///         }
///         async move { Ok(token) }
///     })
///     .checkpoint_batched(1000, Duration::from_secs(60), store.clone())
///     .try_collect::<()>()
///     .await?;
/// // Records 1 to 3 are processed; the checkpoint says so.
/// assert_eq!(store.position("p0"), Some(Position::Offset(3)));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    /// A handle not triggered yet.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(false);
        Self { tx: Arc::new(tx) }
    }

    /// Asks every signal of this handle to resolve. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// A future that resolves once the handle is triggered (at once when it
    /// already is). Cheap; make as many as needed.
    pub fn signal(&self) -> ShutdownSignal {
        let mut rx = self.tx.subscribe();
        ShutdownSignal {
            wait: async move {
                // The sender lives in `self`'s clones; when all are gone
                // the signal can never come, and it stays pending.
                if rx.wait_for(|triggered| *triggered).await.is_err() {
                    futures::future::pending::<()>().await;
                }
            }
            .boxed(),
        }
    }

    /// Triggers the handle when the process receives Ctrl-C (`SIGINT`): a
    /// task on the current Tokio runtime waits for it. Returns the handle.
    ///
    /// A second Ctrl-C ends the process at once (exit status 130), for a
    /// user who does not want to wait for the drain: what the write-ahead
    /// logs acknowledged stays in them, and records processed since the last
    /// saved checkpoint are read again by the next run.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn trigger_on_ctrl_c(self) -> Self {
        let handle = self.clone();
        tokio::spawn(async move {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::warn!(error = %crate::ErrorChain(&error), "cannot listen for Ctrl-C; stopping now");
                handle.trigger();
                return;
            }
            tracing::info!(
                "Ctrl-C: stopping intake, draining, saving checkpoints (Ctrl-C again to quit now)"
            );
            handle.trigger();
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("second Ctrl-C: exiting without waiting for the drain");
                std::process::exit(130);
            }
        });
        self
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

/// Resolves once its [`Shutdown`] is triggered; see [`Shutdown::signal`].
#[must_use = "futures do nothing unless polled"]
pub struct ShutdownSignal {
    wait: BoxFuture<'static, ()>,
}

impl Future for ShutdownSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.wait.poll_unpin(cx)
    }
}

impl fmt::Debug for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownSignal").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signals_resolve_on_trigger_including_later_ones() {
        let shutdown = Shutdown::new();
        let mut early = shutdown.signal();
        assert!(futures::poll!(&mut early).is_pending());
        assert!(!shutdown.is_triggered());
        shutdown.clone().trigger();
        early.await;
        shutdown.signal().await;
        assert!(shutdown.is_triggered());
        shutdown.trigger();
        shutdown.signal().await;
    }
}
