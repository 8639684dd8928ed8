//! One shard's records as the merged stream sees them: the chunks its
//! reader sends, yielded one record at a time.
//!
//! A shard whose partition was fenced stops yielding at once and drops what
//! it had buffered: those records belong to the lease's new owner.

use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::shard_reader::Chunk;
use super::Item;
use crate::checkpoint::{CheckpointToken, PartitionControl};
use crate::kinesis::KinesisRecord;
use crate::Error;

/// One shard's records, as the merged stream sees them.
pub(crate) struct ShardStream {
    control: PartitionControl,
    rx: mpsc::Receiver<Result<Chunk, Error>>,
    current: std::vec::IntoIter<(KinesisRecord, CheckpointToken)>,
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
        }
    }

    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if self.control.is_fenced() {
            // Lost the lease: what is buffered belongs to the new owner.
            self.current = Vec::new().into_iter();
            self.rx.close();
            return Poll::Ready(None);
        }
        if let Some(item) = self.current.next() {
            return Poll::Ready(Some(Ok(item)));
        }
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    self.current = chunk.into_iter();
                    if let Some(item) = self.current.next() {
                        return Poll::Ready(Some(Ok(item)));
                    }
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
