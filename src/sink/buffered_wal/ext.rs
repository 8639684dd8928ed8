//! [`WalSinkExt`]: the `.buffered_wal(config)` method on every batch sink.

use std::future::Future;

use futures::Sink;

use crate::codec::Codec;
use crate::error::Error;

use super::config::WalConfig;
use super::dead_letter::DeadLetterTarget;
use super::BufferedWal;

/// Adds [`buffered_wal`](WalSinkExt::buffered_wal) to every sink of record
/// batches (`Sink<Vec<T>>`).
pub trait WalSinkExt<T>: Sink<Vec<T>> {
    /// Makes this batch sink a durable, batching `Sink<T>` backed by a
    /// write-ahead log in `config`'s directory; see [`BufferedWal`] for the
    /// guarantees.
    ///
    /// Opening a directory that holds records a previous run acknowledged
    /// but did not deliver delivers those first, in order.
    ///
    /// Must be awaited inside a tokio runtime: the delivery runs as a tokio
    /// task. Fails with the log's error when the directory cannot be opened
    /// or recovered, and with [`Error::Config`] outside a tokio runtime.
    ///
    /// ```
    /// use futures::{stream, SinkExt, StreamExt};
    /// use unistream::sink::{MemorySink, WalConfig, WalSinkExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), unistream::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let target = MemorySink::<u64>::new();
    /// let delivered = target.handle();
    ///
    /// let sink = target.buffered_wal(WalConfig::new(dir.path())).await?;
    /// stream::iter(0..1000u64).map(Ok).forward(sink).await?; // closes: all delivered
    /// assert_eq!(delivered.records(), (0..1000).collect::<Vec<_>>());
    /// # Ok(()) }
    /// ```
    fn buffered_wal<C, D>(
        self,
        config: WalConfig<C, D>,
    ) -> impl Future<Output = Result<BufferedWal<T, C>, Error>> + Send
    where
        Self: Sized + Send + 'static,
        Self::Error: Into<Error>,
        T: Send + 'static,
        C: Codec<T>,
        D: DeadLetterTarget<T>,
    {
        BufferedWal::open(self, config)
    }
}

impl<T, S> WalSinkExt<T> for S where S: Sink<Vec<T>> + ?Sized {}
