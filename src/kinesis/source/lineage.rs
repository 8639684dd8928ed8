//! Shard discovery and parent-before-child ordering.
//!
//! The coordinator lists the stream's shards (`ListShards`, all pages) at
//! start, every refresh interval, and whenever a shard finishes. A listed
//! shard starts once each of its parents that is still listed is done:
//! finished by this source, or `End` in the checkpoint store (finished by an
//! earlier run or another worker). Parents no longer listed (past the
//! retention period) count as done.
//!
//! A shard without a checkpoint starts at the configured initial position,
//! except under `LATEST`: there, as in the KCL, a shard closed before the
//! source ever read its lineage is skipped (it holds only old records), and
//! a shard whose parent was read to its end starts at `TRIM_HORIZON` (all
//! its records are newer than the parent's, so none may be missed).
//!
//! What it does not do: take shards away from other workers. A shard whose
//! reader was fenced stays with its new owner; its children wait for that
//! owner to store `End`.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::iterator::{InitialPosition, StartAt};
use super::shard_list::list_shards;
use super::shard_reader::{ShardOutcome, ShardReader};
use super::shard_stream::ShardStream;
use super::SourceShared;
use crate::checkpoint::{CheckpointError, CheckpointStore, PartitionControl, Position};
use crate::Error;

/// What the coordinator tells the merged stream.
pub(crate) enum Discovery {
    /// A shard started; merge its records.
    Shard(Box<ShardStream>),
    /// Listing shards or reading checkpoints failed for good.
    Failed(Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShardState {
    /// Listed, not started: waiting for parents.
    Pending,
    Running,
    /// Read to its end by us, or `End` in the store.
    Finished,
    /// Closed and never read under `LATEST`: nothing in it is wanted.
    Skipped,
    /// Fenced or failed; owned by someone else now.
    Stopped,
}

struct ShardInfo {
    parents: Vec<Arc<str>>,
    closed: bool,
    state: ShardState,
}

pub(crate) struct Coordinator<S> {
    shared: Arc<SourceShared<S>>,
    shards: BTreeMap<Arc<str>, ShardInfo>,
    out: mpsc::UnboundedSender<Discovery>,
    events_tx: mpsc::UnboundedSender<(Arc<str>, ShardOutcome)>,
    events_rx: mpsc::UnboundedReceiver<(Arc<str>, ShardOutcome)>,
    /// Shard tasks: aborted when the coordinator is dropped.
    tasks: JoinSet<()>,
}

impl<S: CheckpointStore> Coordinator<S> {
    pub(crate) fn new(shared: Arc<SourceShared<S>>, out: mpsc::UnboundedSender<Discovery>) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Self {
            shared,
            shards: BTreeMap::new(),
            out,
            events_tx,
            events_rx,
            tasks: JoinSet::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        if let Err(err) = self.drive().await {
            tracing::warn!(stream = %self.shared.stream, error = %crate::ErrorChain(&err), "kinesis source failed");
            let _ = self.out.send(Discovery::Failed(err));
        }
    }

    async fn drive(&mut self) -> Result<(), Error> {
        let mut refresh = tokio::time::interval(self.shared.config.shard_refresh_interval);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // An interval's first tick is immediate: take it now, the first
        // listing is the one below.
        refresh.tick().await;
        let mut list = true;
        loop {
            if list {
                self.list_shards().await?;
            }
            self.start_ready().await?;
            while self.tasks.try_join_next().is_some() {}
            tokio::select! {
                _ = refresh.tick() => list = true,
                Some((shard, outcome)) = self.events_rx.recv() => {
                    if let Some(info) = self.shards.get_mut(&shard) {
                        info.state = match outcome {
                            ShardOutcome::Finished => ShardState::Finished,
                            ShardOutcome::Stopped => ShardState::Stopped,
                        };
                    }
                    // A finished shard's children may not be listed yet.
                    list = outcome == ShardOutcome::Finished;
                }
                () = self.out.closed() => return Ok(()),
            }
        }
    }

    async fn list_shards(&mut self) -> Result<(), Error> {
        for shard in list_shards(&self.shared).await? {
            match self.shards.get_mut(&shard.id) {
                Some(info) => info.closed |= shard.closed,
                None => {
                    self.shards.insert(
                        shard.id,
                        ShardInfo {
                            parents: shard.parents,
                            closed: shard.closed,
                            state: ShardState::Pending,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Starts every pending shard whose parents are done, repeating until
    /// nothing changes (a skipped or finished shard may free its children).
    async fn start_ready(&mut self) -> Result<(), Error> {
        loop {
            let mut changed = false;
            let pending: Vec<Arc<str>> = self
                .shards
                .iter()
                .filter(|(_, info)| info.state == ShardState::Pending)
                .map(|(id, _)| id.clone())
                .collect();
            for id in pending {
                let parents = self.shards[&id].parents.clone();
                let mut ready = true;
                let mut lineage_read = false;
                for parent in &parents {
                    let Some(state) = self.shards.get(parent).map(|p| p.state) else {
                        continue; // expired parent: done long ago
                    };
                    match state {
                        ShardState::Finished => lineage_read = true,
                        ShardState::Skipped => {}
                        ShardState::Running => ready = false,
                        ShardState::Pending | ShardState::Stopped => {
                            if self.load(parent).await? == Some(Position::End) {
                                self.set_state(parent, ShardState::Finished);
                                lineage_read = true;
                                changed = true;
                            } else {
                                ready = false;
                            }
                        }
                    }
                }
                if !ready {
                    continue;
                }
                let start = match self.load(&id).await? {
                    Some(Position::End) => {
                        self.set_state(&id, ShardState::Finished);
                        changed = true;
                        continue;
                    }
                    Some(position) => StartAt::from_checkpoint(&position).ok_or_else(|| {
                        Error::Checkpoint(CheckpointError::Corrupt {
                            store: format!("checkpoint of {}", self.shared.target(&id)),
                            reason: format!("{position} is not a Kinesis position"),
                        })
                    })?,
                    None => match self.shared.config.initial_position {
                        InitialPosition::Latest if lineage_read => StartAt::TrimHorizon,
                        InitialPosition::Latest if self.shards[&id].closed => {
                            self.set_state(&id, ShardState::Skipped);
                            changed = true;
                            continue;
                        }
                        initial => StartAt::from_initial(initial),
                    },
                };
                self.start(id, start);
                changed = true;
            }
            if !changed {
                return Ok(());
            }
        }
    }

    fn set_state(&mut self, id: &Arc<str>, state: ShardState) {
        if let Some(info) = self.shards.get_mut(id) {
            info.state = state;
        }
    }

    async fn load(&self, shard: &str) -> Result<Option<Position>, Error> {
        let mut failures = 0u32;
        loop {
            match self.shared.store.load(shard).await {
                Ok(position) => return Ok(position),
                Err(err) => {
                    failures += 1;
                    if !self.shared.config.retry.allows_another(failures) {
                        return Err(err.into());
                    }
                    tokio::time::sleep(self.shared.config.retry.backoff(failures - 1)).await;
                }
            }
        }
    }

    fn start(&mut self, id: Arc<str>, start: StartAt) {
        tracing::debug!(shard = %id, ?start, "starting kinesis shard");
        self.set_state(&id, ShardState::Running);
        let (tx, rx) = mpsc::channel(self.shared.config.prefetch_batches);
        let control = PartitionControl::new();
        let reader = ShardReader::new(self.shared.clone(), id.clone(), control.clone(), tx, start);
        let events = self.events_tx.clone();
        let shard = id.clone();
        self.tasks.spawn(async move {
            let outcome = reader.run().await;
            let _ = events.send((shard, outcome));
        });
        let _ = self
            .out
            .send(Discovery::Shard(Box::new(ShardStream::new(control, rx))));
    }
}
