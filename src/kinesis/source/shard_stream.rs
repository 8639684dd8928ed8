//! One shard's records as the merged stream sees them: the chunks its
//! reader sends, yielded one record at a time.
//!
//! A shard whose partition is fenced or draining stops yielding at once and
//! drops what it had fetched but not yielded: those records belong to the
//! lease's next holder, which reads them from the checkpoint. For a leased
//! shard, the count of records yielded goes back to the lease worker when
//! the shard's records end (or when the merged stream is dropped: then
//! without a count), so that it releases the lease once they are
//! checkpointed.

use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::shard_reader::Chunk;
use super::Item;
use crate::checkpoint::{CheckpointToken, PartitionControl};
use crate::kinesis::KinesisRecord;
use crate::lease::AcquiredLease;
use crate::Error;

/// One shard's records, as the merged stream sees them.
pub(crate) struct ShardStream {
    control: PartitionControl,
    rx: mpsc::Receiver<Result<Chunk, Error>>,
    current: std::vec::IntoIter<(KinesisRecord, CheckpointToken)>,
    /// Records yielded (the next token's `seq`).
    yielded: u64,
    /// The lease the shard is read under, told the count at the end.
    lease: Option<AcquiredLease>,
    /// The reader's last response was empty at the tip of the stream (an
    /// empty chunk), and no record came since.
    at_tip: bool,
}

impl ShardStream {
    /// Records taken from the channel and not yet yielded.
    pub(crate) fn buffered(&self) -> usize {
        self.current.len()
    }

    pub(crate) fn new(control: PartitionControl, rx: mpsc::Receiver<Result<Chunk, Error>>) -> Self {
        Self {
            control,
            rx,
            current: Vec::new().into_iter(),
            yielded: 0,
            lease: None,
            at_tip: false,
        }
    }

    /// At the tip of the stream with nothing buffered (see
    /// `KinesisSource::stop_when_caught_up`).
    pub(crate) fn at_tip(&self) -> bool {
        self.at_tip && self.current.len() == 0
    }

    /// This shard read under `lease`.
    pub(crate) fn with_lease(mut self, lease: AcquiredLease) -> Self {
        self.lease = Some(lease);
        self
    }

    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if self.control.is_stopped() {
            // Lost or being handed over: what is buffered belongs to the
            // next holder.
            self.current = Vec::new().into_iter();
            self.rx.close();
            return self.end();
        }
        if let Some(item) = self.current.next() {
            self.yielded += 1;
            return Poll::Ready(Some(Ok(item)));
        }
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    // An empty chunk: the reader is at the tip.
                    self.at_tip = chunk.is_empty();
                    self.current = chunk.into_iter();
                    if let Some(item) = self.current.next() {
                        self.yielded += 1;
                        return Poll::Ready(Some(Ok(item)));
                    }
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => return self.end(),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The shard's records end: the lease learns how many were yielded.
    fn end(&mut self) -> Poll<Option<Item>> {
        if let Some(lease) = self.lease.take() {
            lease.stopped(self.yielded);
        }
        Poll::Ready(None)
    }
}
