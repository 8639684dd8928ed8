//! The loop behind `checkpoint_transactional`: take records in, decide
//! which partition is due, commit it, say what was committed. The rules
//! are in the [module docs](super).

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::stream::{IntoStream, Stream, StreamExt, TryStream, TryStreamExt};
use tokio::time::Instant;

use super::pending::PendingPartition;
use super::{ProcessedRecord, TransactionCommit, TransactionalCheckpointStore};
use crate::checkpoint::control::ControlHub;
use crate::checkpoint::CheckpointToken;
use crate::error::Error;

pub(super) fn run<St, O, S>(
    input: St,
    n: usize,
    interval: Duration,
    store: S,
) -> impl Stream<Item = Result<TransactionCommit, Error>> + Send
where
    St: TryStream<Ok = (Vec<O>, CheckpointToken), Error = Error> + Send + 'static,
    S: TransactionalCheckpointStore<Output = O>,
    O: Send + 'static,
{
    let run = Run {
        input: Some(Box::pin(input.into_stream())),
        n,
        interval,
        store,
        partitions: HashMap::new(),
        order: Vec::new(),
        hubs: Vec::new(),
        requested: HashSet::new(),
        deadline: None,
        flush_all: false,
        error: None,
        done: false,
    };
    futures::stream::unfold(run, |mut run| async move {
        let item = run.next().await?;
        Some((item, run))
    })
}

struct Run<St: TryStream, S: TransactionalCheckpointStore> {
    /// `None` once the input ended or failed.
    input: Option<Pin<Box<IntoStream<St>>>>,
    n: usize,
    interval: Duration,
    store: S,
    partitions: HashMap<Arc<str>, PendingPartition<S::Output>>,
    /// Partitions in the order first seen: commits go round them fairly.
    order: Vec<Arc<str>>,
    hubs: Vec<Arc<ControlHub>>,
    /// Partitions a lease worker asked to commit (handoff, shutdown).
    requested: HashSet<Arc<str>>,
    /// When the interval of the oldest uncommitted record ends.
    deadline: Option<Instant>,
    /// The interval ended: every partition with ready records is due.
    flush_all: bool,
    /// The input's error, passed on once everything before it is committed.
    error: Option<Error>,
    done: bool,
}

impl<St, O, S> Run<St, S>
where
    St: TryStream<Ok = (Vec<O>, CheckpointToken), Error = Error>,
    S: TransactionalCheckpointStore<Output = O>,
{
    async fn next(&mut self) -> Option<Result<TransactionCommit, Error>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(partition) = self.due() {
                match self.commit(partition).await {
                    Some(result) => return Some(result),
                    None => continue,
                }
            }
            if self.flush_all {
                self.flush_all = false;
                self.deadline = self.next_deadline();
            }
            let Some(input) = self.input.as_mut() else {
                self.done = true;
                self.warn_held_back();
                return self.error.take().map(Err);
            };
            let hubs = &self.hubs;
            let requested = futures::future::poll_fn(|cx| {
                let mut any = false;
                for hub in hubs {
                    any |= hub.poll_requests(cx.waker());
                }
                if any {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            let deadline = self.deadline;
            let elapsed = async move {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = requested => {}
                _ = elapsed => self.flush_all = true,
                item = input.next() => match item {
                    Some(Ok((outputs, token))) => self.add(outputs, token),
                    Some(Err(err)) => {
                        self.error = Some(err);
                        self.input = None;
                    }
                    None => self.input = None,
                },
            }
        }
    }

    fn add(&mut self, outputs: Vec<O>, token: CheckpointToken) {
        let key = token.partition_arc();
        if !self.partitions.contains_key(key) {
            let control = token.control().cloned();
            if let Some(control) = &control {
                let hub = control.hub();
                if !self.hubs.iter().any(|h| Arc::ptr_eq(h, hub)) {
                    self.hubs.push(hub.clone());
                }
            }
            self.partitions
                .insert(key.clone(), PendingPartition::new(control));
            self.order.push(key.clone());
        }
        let Some(partition) = self.partitions.get_mut(key) else {
            return;
        };
        if partition.fenced || token.control().is_some_and(|c| c.is_fenced()) {
            partition.fence();
            return;
        }
        let record = ProcessedRecord {
            position: token.position().clone(),
            outputs,
        };
        if !partition.add(token.seq(), record) {
            tracing::warn!(
                target: "unistream::checkpoint::transactional",
                partition = %key,
                seq = token.seq(),
                "a token arrived twice; its second record is ignored"
            );
        }
        if self.deadline.is_none() && partition.ready() > 0 {
            self.deadline = Some(Instant::now() + self.interval);
        }
    }

    /// The partition to commit now, if any.
    fn due(&mut self) -> Option<Arc<str>> {
        let input_over = self.input.is_none();
        for key in &self.order {
            let Some(partition) = self.partitions.get(key) else {
                continue;
            };
            if partition
                .control
                .as_ref()
                .is_some_and(|c| c.take_checkpoint_request())
            {
                self.requested.insert(key.clone());
            }
        }
        let mut due = None;
        for key in &self.order {
            let Some(partition) = self.partitions.get(key) else {
                continue;
            };
            let requested = self.requested.contains(key);
            if partition.ready() == 0 {
                // Nothing uncommitted: a request is answered already.
                if requested {
                    self.requested.remove(key);
                }
                continue;
            }
            if input_over || self.flush_all || requested || partition.ready() >= self.n {
                due = Some(key.clone());
                break;
            }
        }
        if let Some(key) = &due {
            self.requested.remove(key);
        }
        due
    }

    /// The deadline of the oldest ready record left, after a flush.
    fn next_deadline(&self) -> Option<Instant> {
        self.partitions
            .values()
            .filter_map(|p| p.since)
            .min()
            .map(|since| since + self.interval)
    }

    /// Commits `key`'s ready records: `Some` to yield, `None` when the
    /// partition was fenced (nothing to yield; go on).
    async fn commit(&mut self, key: Arc<str>) -> Option<Result<TransactionCommit, Error>> {
        let partition = self.partitions.get_mut(&key)?;
        let taken = partition.take();
        let records = taken.records.len();
        let outputs = taken.records.iter().map(|r| r.outputs.len()).sum();
        let position = taken.records.last()?.position.clone();
        match self.store.commit(&key, taken.records).await {
            Ok(transactions) => {
                if let Some(control) = &self.partitions.get(&key)?.control {
                    control.set_durable_tokens(taken.tokens);
                }
                Some(Ok(TransactionCommit {
                    partition: key.to_string(),
                    position,
                    records,
                    outputs,
                    transactions,
                }))
            }
            Err(err) if err.is_fenced() => {
                tracing::info!(
                    target: "unistream::checkpoint::transactional",
                    partition = %key,
                    error = %crate::ErrorChain(&err),
                    "partition fenced: its uncommitted outputs are dropped"
                );
                let partition = self.partitions.get_mut(&key)?;
                partition.fence();
                if let Some(control) = &partition.control {
                    control.fence();
                }
                None
            }
            Err(err) => {
                self.done = true;
                Some(Err(Error::Checkpoint(err)))
            }
        }
    }

    fn warn_held_back(&self) {
        for key in &self.order {
            let Some(partition) = self.partitions.get(key) else {
                continue;
            };
            if let (Some(missing), false) = (partition.missing(), partition.fenced) {
                tracing::warn!(
                    target: "unistream::checkpoint::transactional",
                    partition = %key,
                    missing_seq = missing,
                    records = partition.waiting(),
                    "input ended with records waiting for a token that never arrived; their outputs are not written"
                );
            }
        }
    }
}
