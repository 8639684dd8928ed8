//! The merged stream of all shards.
//!
//! Shards are served round-robin: after at most [`BURST`] records from one
//! shard the next shard with records gets its turn, so a busy shard cannot
//! starve the others and the per-record cost stays low (no allocation per
//! record, no polling of idle shards per record). A shard whose partition
//! was fenced stops yielding at once, dropping what it had buffered.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{FusedStream, Stream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::caught_up::CaughtUpWatch;
use super::lineage::Discovery;
use super::shard_stream::ShardStream;
use super::Item;

/// Spawns the coordinator, given the channel it announces shards on.
pub(crate) type StartCoordinator =
    Box<dyn FnOnce(mpsc::UnboundedSender<Discovery>) -> JoinHandle<()> + Send>;

/// Records taken from one shard before the next shard's turn.
const BURST: usize = 32;

/// The stream returned by [`KinesisSource::stream`](super::KinesisSource::stream):
/// `Result<(KinesisRecord, CheckpointToken), Error>` items from every shard.
///
/// It ends only when the coordinator fails (after yielding the error and
/// the records already fetched); Kinesis streams have no end. Dropping it
/// stops every task it started.
#[must_use = "streams do nothing unless polled"]
pub struct KinesisStream {
    start: Option<StartCoordinator>,
    coordinator: Option<AbortOnDrop>,
    discoveries: mpsc::UnboundedReceiver<Discovery>,
    discoveries_tx: Option<mpsc::UnboundedSender<Discovery>>,
    discoveries_done: bool,
    shards: Vec<ShardStream>,
    next: usize,
    served: usize,
    /// Batch mode: ends the stream once caught up.
    caught_up: Option<CaughtUpWatch>,
}

impl std::fmt::Debug for KinesisStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisStream")
            .field("started", &self.start.is_none())
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl KinesisStream {
    /// A stream whose shards are announced by the coordinator that
    /// `start` spawns on the first poll.
    pub(crate) fn new(caught_up: Option<CaughtUpWatch>, start: StartCoordinator) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            start: Some(start),
            coordinator: None,
            discoveries: rx,
            discoveries_tx: Some(tx),
            discoveries_done: false,
            shards: Vec::new(),
            next: 0,
            served: 0,
            caught_up,
        }
    }

    /// Shards currently merged (started and not yet ended).
    pub fn active_shards(&self) -> usize {
        self.shards.len()
    }
}

impl Stream for KinesisStream {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let this = &mut *self;
        if let Some(start) = this.start.take() {
            if let Some(tx) = this.discoveries_tx.take() {
                this.coordinator = Some(AbortOnDrop(start(tx)));
            }
        }
        while !this.discoveries_done {
            match this.discoveries.poll_recv(cx) {
                Poll::Ready(Some(Discovery::Shard(shard))) => this.shards.push(*shard),
                Poll::Ready(Some(Discovery::Failed(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => this.discoveries_done = true,
                Poll::Pending => break,
            }
        }
        let mut tried = 0;
        while tried < this.shards.len() {
            let i = this.next % this.shards.len();
            match this.shards[i].poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.served += 1;
                    if let Some(watch) = this.caught_up.as_mut() {
                        watch.activity();
                    }
                    if this.served >= BURST {
                        this.served = 0;
                        this.next = i + 1;
                    } else {
                        this.next = i;
                    }
                    return Poll::Ready(Some(item));
                }
                Poll::Ready(None) => {
                    // The shard's reader is gone; the shard swapped into
                    // slot `i` gets its turn in this pass.
                    this.shards.swap_remove(i);
                    this.served = 0;
                }
                Poll::Pending => {
                    this.served = 0;
                    this.next = i + 1;
                    tried += 1;
                }
            }
        }
        if this.shards.is_empty() && this.discoveries_done {
            return Poll::Ready(None);
        }
        if let Some(watch) = this.caught_up.as_mut() {
            let at_tip = this.shards.iter().all(ShardStream::at_tip);
            if watch.poll_caught_up(cx, this.shards.len(), at_tip) {
                tracing::debug!("kinesis source caught up; ending the stream");
                this.coordinator = None; // stops the coordinator and every shard task
                this.shards.clear();
                this.discoveries_done = true;
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let buffered = self.shards.iter().map(ShardStream::buffered).sum();
        (buffered, None)
    }
}

impl FusedStream for KinesisStream {
    fn is_terminated(&self) -> bool {
        self.discoveries_done && self.shards.is_empty()
    }
}

/// Aborts the coordinator (and with it, every shard task) when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
