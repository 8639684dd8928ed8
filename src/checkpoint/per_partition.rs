//! The [`and_then_per_partition`](super::CheckpointStreamExt::and_then_per_partition)
//! combinator: partitions processed concurrently, the records of one
//! partition one at a time, in order.
//!
//! What is guaranteed (documented on [`AndThenPerPartition`], where users
//! read it): at most one handler runs per partition, started in the order
//! the partition's items arrived; at most `max_concurrent` handlers run at
//! once; at most `max_queued` items wait; partitions waiting for a free slot
//! get it in turn.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::{
    Fuse, FusedStream, FuturesUnordered, IntoStream, Stream, StreamExt, TryStream, TryStreamExt,
};
use pin_project::pin_project;

use super::token::AsCheckpointToken;
use crate::error::Error;

/// Items waiting by default, over all partitions (at least `max_concurrent`).
const DEFAULT_MAX_QUEUED: usize = 1024;

/// Stream for
/// [`CheckpointStreamExt::and_then_per_partition`](super::CheckpointStreamExt::and_then_per_partition).
///
/// Runs the handler on every item, partition by partition (the partition of
/// the item's [`CheckpointToken`](super::CheckpointToken)):
///
/// - **In order per partition**: a partition's handler runs on one item at a
///   time; the next item of that partition starts only once the previous
///   handler finished, so records of one shard or file are handled in the
///   order the source delivered them.
/// - **Concurrent across partitions**: up to `max_concurrent` handlers run
///   at once, each on a different partition. A partition whose next item
///   waits for a free slot gets one in turn (first come, first served), so
///   a busy partition cannot starve the others.
/// - **Bounded**: while [`max_queued`](Self::max_queued) items (1,024 by
///   default) wait behind a running handler or for a slot, no more items are
///   taken from upstream.
/// - **Outputs** are yielded as the handlers finish: in order within a
///   partition, interleaved across partitions. Put `checkpoint_batched`
///   after it as usual (the handler returns the token, or `(value, token)`):
///   its positions are per partition, so the interleaving does not matter.
/// - **Errors**: an upstream error is passed on at once; a handler's error
///   is yielded in place of its output, and the partition goes on with its
///   next item (as `and_then` does), unless the caller stops polling.
///
/// When upstream ends, the waiting and running items are finished, then the
/// stream ends.
#[pin_project]
#[must_use = "streams do nothing unless polled"]
pub struct AndThenPerPartition<St: TryStream, F, Fut> {
    #[pin]
    stream: Fuse<IntoStream<St>>,
    handler: F,
    max_concurrent: usize,
    max_queued: usize,
    /// Partitions with a running handler or waiting items.
    partitions: HashMap<Arc<str>, PartitionQueue<St::Ok>>,
    /// Partitions with waiting items and no running handler, in the order
    /// they started waiting.
    ready: VecDeque<Arc<str>>,
    running: FuturesUnordered<Tagged<Fut>>,
    /// Items waiting over all partitions.
    queued: usize,
}

struct PartitionQueue<T> {
    waiting: VecDeque<T>,
    running: bool,
}

/// A handler's future, with the partition it runs for.
#[pin_project]
struct Tagged<Fut> {
    partition: Option<Arc<str>>,
    #[pin]
    future: Fut,
}

impl<Fut: Future> Future for Tagged<Fut> {
    type Output = (Arc<str>, Fut::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.future.poll(cx));
        let partition = this.partition.take().unwrap_or_else(|| Arc::from(""));
        Poll::Ready((partition, output))
    }
}

impl<St, F, Fut, O, E> AndThenPerPartition<St, F, Fut>
where
    St: TryStream,
    St::Ok: AsCheckpointToken,
    St::Error: Into<Error>,
    F: FnMut(St::Ok) -> Fut,
    Fut: Future<Output = Result<O, E>>,
    E: Into<Error>,
{
    pub(super) fn new(stream: St, max_concurrent: usize, handler: F) -> Self {
        Self {
            stream: stream.into_stream().fuse(),
            handler,
            max_concurrent,
            max_queued: DEFAULT_MAX_QUEUED.max(max_concurrent),
            partitions: HashMap::new(),
            ready: VecDeque::new(),
            running: FuturesUnordered::new(),
            queued: 0,
        }
    }

    /// Items that may wait (behind their partition's running handler, or
    /// for a free slot) before upstream is no longer polled. Default: 1,024
    /// or `max_concurrent`, whichever is larger; at least 1.
    pub fn max_queued(mut self, items: usize) -> Self {
        self.max_queued = items.max(1);
        self
    }
}

impl<St, F, Fut> AndThenPerPartition<St, F, Fut>
where
    St: TryStream,
{
    /// Handlers running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Items waiting now.
    pub fn queued(&self) -> usize {
        self.queued
    }
}

impl<St, F, Fut, O, E> Stream for AndThenPerPartition<St, F, Fut>
where
    St: TryStream,
    St::Ok: AsCheckpointToken,
    St::Error: Into<Error>,
    F: FnMut(St::Ok) -> Fut,
    Fut: Future<Output = Result<O, E>>,
    E: Into<Error>,
{
    type Item = Result<O, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            // Free slots go to waiting partitions first, in turn.
            while this.running.len() < *this.max_concurrent {
                let Some(partition) = this.ready.pop_front() else {
                    break;
                };
                let Some(queue) = this.partitions.get_mut(&partition) else {
                    continue;
                };
                let Some(item) = queue.waiting.pop_front() else {
                    continue;
                };
                *this.queued -= 1;
                queue.running = true;
                let future = (this.handler)(item);
                this.running.push(Tagged {
                    partition: Some(partition),
                    future,
                });
            }

            // Take from upstream while there is room to wait.
            let mut pulled = false;
            if *this.queued < *this.max_queued && !this.stream.is_terminated() {
                match this.stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(item))) => {
                        pulled = true;
                        let partition = item.checkpoint_token().partition_arc().clone();
                        let slot_free = this.running.len() < *this.max_concurrent;
                        let queue = this.partitions.entry(partition.clone()).or_insert_with(|| {
                            PartitionQueue {
                                waiting: VecDeque::new(),
                                running: false,
                            }
                        });
                        if !queue.running && queue.waiting.is_empty() && slot_free {
                            queue.running = true;
                            let future = (this.handler)(item);
                            this.running.push(Tagged {
                                partition: Some(partition),
                                future,
                            });
                        } else {
                            if !queue.running && queue.waiting.is_empty() {
                                this.ready.push_back(partition);
                            }
                            queue.waiting.push_back(item);
                            *this.queued += 1;
                        }
                    }
                    Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.into()))),
                    Poll::Ready(None) | Poll::Pending => {}
                }
            }

            match this.running.poll_next_unpin(cx) {
                Poll::Ready(Some((partition, output))) => {
                    if let Some(queue) = this.partitions.get_mut(&partition) {
                        queue.running = false;
                        if queue.waiting.is_empty() {
                            this.partitions.remove(&partition);
                        } else {
                            // Behind the partitions already waiting for a slot.
                            this.ready.push_back(partition);
                        }
                    }
                    return Poll::Ready(Some(output.map_err(Into::into)));
                }
                Poll::Ready(None) | Poll::Pending => {}
            }

            if pulled {
                continue;
            }
            if this.stream.is_terminated() && this.running.is_empty() && *this.queued == 0 {
                return Poll::Ready(None);
            }
            return Poll::Pending;
        }
    }
}

impl<St, F, Fut, O, E> FusedStream for AndThenPerPartition<St, F, Fut>
where
    St: TryStream,
    St::Ok: AsCheckpointToken,
    St::Error: Into<Error>,
    F: FnMut(St::Ok) -> Fut,
    Fut: Future<Output = Result<O, E>>,
    E: Into<Error>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated() && self.running.is_empty() && self.queued == 0
    }
}

impl<St: TryStream, F, Fut> fmt::Debug for AndThenPerPartition<St, F, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AndThenPerPartition")
            .field("max_concurrent", &self.max_concurrent)
            .field("max_queued", &self.max_queued)
            .field("running", &self.running.len())
            .field("queued", &self.queued)
            .field("partitions", &self.partitions.len())
            .finish()
    }
}
