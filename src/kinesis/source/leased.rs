//! `KinesisSource` in leased mode: the shards this worker holds leases for,
//! as they come and go.
//!
//! - **Which shards.** A shard is read while its lease is held: the
//!   [`LeaseWorker`] hands over each lease it acquires (only when every
//!   parent is finished), and the shard's reader starts at the lease's
//!   checkpoint. When the lease's control stops — drained for a handoff or
//!   a shutdown, or fenced — the reader stops and the shard's records end;
//!   the count of records yielded goes back to the worker, which releases
//!   the lease once they are checkpointed.
//! - **Leases for new shards.** Every shard refresh interval (and at
//!   start) the stream's shards are listed and a lease is created for each
//!   shard that has none (a conditional create: several workers may do it
//!   at once). A shard with a parent that has a lease starts at
//!   `TRIM_HORIZON` (everything after the parent); others at the initial
//!   position, except that under `LATEST` a closed shard gets no lease at
//!   all (it holds only old records), as in the KCL.
//! - **Shard end.** The reader that meets the end creates the children's
//!   leases (with `parentShardId` and hash ranges), records them in the
//!   parent's `childShardIds`, and only then checkpoints `SHARD_END`: the
//!   children are taken by whoever reads them next, once all their parents
//!   are finished.
//! - **End of the stream.** When the worker stops (graceful shutdown), no
//!   lease is handed over any more; the merged stream ends once every
//!   shard it was reading has stopped.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::iterator::{InitialPosition, StartAt};
use super::lineage::Discovery;
use super::shard_list::{list_shards, ListedShard};
use super::shard_reader::ShardReader;
use super::shard_stream::ShardStream;
use super::SourceShared;
use crate::checkpoint::{CheckpointStore, Position};
use crate::lease::{
    AcquiredLease, AcquiredLeases, Created, Lease, LeaseCheckpoint, LeaseTable, LeaseWorker,
};
use crate::Error;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the source needs of a lease worker, without its table type.
pub(crate) trait LeaseDriver: std::fmt::Debug + Send + Sync + 'static {
    /// The leases acquired from now on (once).
    fn acquired(&self) -> Result<AcquiredLeases, Error>;

    /// Creates a lease for every listed shard without one; returns how many
    /// were created.
    fn create_missing<'a>(
        &'a self,
        shards: &'a [ListedShard],
        initial: InitialPosition,
    ) -> BoxFuture<'a, Result<usize, Error>>;

    /// The shard `shard` ended with `children`: their leases are created
    /// and recorded on the parent's (which this worker holds).
    fn shard_ended<'a>(
        &'a self,
        shard: &'a str,
        children: Vec<ListedShard>,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

impl<T: LeaseTable> LeaseDriver for LeaseWorker<T> {
    fn acquired(&self) -> Result<AcquiredLeases, Error> {
        LeaseWorker::acquired(self)
    }

    fn create_missing<'a>(
        &'a self,
        shards: &'a [ListedShard],
        initial: InitialPosition,
    ) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(async move {
            let existing: HashSet<String> = self
                .table()
                .list()
                .await?
                .into_iter()
                .map(|lease| lease.key)
                .collect();
            let mut with_lease: HashSet<&str> = existing.iter().map(String::as_str).collect();
            let mut created = 0;
            for shard in in_lineage_order(shards) {
                if with_lease.contains(&*shard.id) {
                    continue;
                }
                let parent_has_lease = shard.parents.iter().any(|p| with_lease.contains(&**p));
                let checkpoint = match initial {
                    _ if parent_has_lease => LeaseCheckpoint::TrimHorizon,
                    InitialPosition::Latest if shard.closed => continue,
                    InitialPosition::Latest => LeaseCheckpoint::Latest,
                    InitialPosition::TrimHorizon => LeaseCheckpoint::TrimHorizon,
                    InitialPosition::AtTimestamp(_) => LeaseCheckpoint::AtTimestamp,
                };
                if self.table().create(new_lease(shard, checkpoint)).await? == Created::Created {
                    created += 1;
                    tracing::debug!(shard = %shard.id, "lease created");
                }
                with_lease.insert(&shard.id);
            }
            Ok(created)
        })
    }

    fn shard_ended<'a>(
        &'a self,
        shard: &'a str,
        children: Vec<ListedShard>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            for child in &children {
                self.table()
                    .create(new_lease(child, LeaseCheckpoint::TrimHorizon))
                    .await?;
            }
            if !children.is_empty() {
                let ids = children.iter().map(|c| c.id.to_string()).collect();
                self.record_children(shard, ids).await?;
            }
            Ok(())
        })
    }
}

fn new_lease(shard: &ListedShard, checkpoint: LeaseCheckpoint) -> Lease {
    let lease = Lease::new(shard.id.to_string(), checkpoint)
        .with_parents(shard.parents.iter().map(|p| p.to_string()).collect());
    match shard.hash_range {
        Some(range) => lease.with_hash_range(range),
        None => lease,
    }
}

/// The shards with every listed parent before its children (`ListShards`
/// returns creation order already; this makes sure of it).
fn in_lineage_order(shards: &[ListedShard]) -> Vec<&ListedShard> {
    let listed: HashSet<&str> = shards.iter().map(|s| &*s.id).collect();
    let mut placed: HashSet<&str> = HashSet::new();
    let mut order = Vec::with_capacity(shards.len());
    while order.len() < shards.len() {
        let before = order.len();
        for shard in shards {
            if placed.contains(&*shard.id) {
                continue;
            }
            let ready = shard
                .parents
                .iter()
                .all(|p| !listed.contains(&**p) || placed.contains(&**p));
            if ready {
                placed.insert(&shard.id);
                order.push(shard);
            }
        }
        if order.len() == before {
            // A cycle cannot come from Kinesis; keep the rest as listed.
            order.extend(shards.iter().filter(|s| !placed.contains(&*s.id)));
            break;
        }
    }
    order
}

/// The leased coordinator: starts a reader per acquired lease, keeps the
/// table's leases in step with the stream's shards.
pub(crate) struct LeasedCoordinator<S> {
    shared: Arc<SourceShared<S>>,
    driver: Arc<dyn LeaseDriver>,
    out: mpsc::UnboundedSender<Discovery>,
    tasks: JoinSet<()>,
}

impl<S: CheckpointStore> LeasedCoordinator<S> {
    pub(crate) fn new(
        shared: Arc<SourceShared<S>>,
        driver: Arc<dyn LeaseDriver>,
        out: mpsc::UnboundedSender<Discovery>,
    ) -> Self {
        Self {
            shared,
            driver,
            out,
            tasks: JoinSet::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        if let Err(err) = self.drive().await {
            tracing::warn!(stream = %self.shared.stream, error = %crate::ErrorChain(&err), "leased kinesis source failed");
            let _ = self.out.send(Discovery::Failed(err));
        }
        // The readers of drained shards finish on their own.
        while self.tasks.join_next().await.is_some() {}
    }

    async fn drive(&mut self) -> Result<(), Error> {
        let mut acquired = self.driver.acquired()?;
        // The first listing must work: a missing stream is an error now,
        // not a silent wait.
        sync_shards(&self.shared, &*self.driver).await?;
        // Later syncs run beside the acquisitions (a slow listing or table
        // must not hold back the start of an acquired lease); dropping the
        // set stops them.
        let mut syncing = JoinSet::new();
        syncing.spawn(sync_periodically(self.shared.clone(), self.driver.clone()));
        loop {
            while self.tasks.try_join_next().is_some() {}
            tokio::select! {
                lease = acquired.next() => match lease {
                    Some(lease) => self.start(lease),
                    None => return Ok(()),
                },
                () = self.out.closed() => return Ok(()),
            }
        }
    }

    fn start(&mut self, lease: AcquiredLease) {
        let start = match &lease.lease().checkpoint {
            LeaseCheckpoint::TrimHorizon => StartAt::TrimHorizon,
            LeaseCheckpoint::Latest => StartAt::Latest,
            LeaseCheckpoint::AtTimestamp => match self.shared.config.initial_position {
                InitialPosition::AtTimestamp(at) => StartAt::AtTimestamp(at),
                // The table says "from a timestamp" but this source was
                // given none: read everything rather than skip anything.
                _ => StartAt::TrimHorizon,
            },
            LeaseCheckpoint::At(position) => match StartAt::from_checkpoint(position) {
                Some(start) => start,
                None => {
                    if *position != Position::End {
                        tracing::warn!(shard = %lease.key(), %position, "lease checkpoint is not a Kinesis position; not reading the shard");
                    }
                    lease.stopped(0);
                    return;
                }
            },
        };
        let id: Arc<str> = Arc::from(lease.key());
        tracing::debug!(shard = %id, ?start, epoch = lease.epoch(), "reading leased shard");
        let control = lease.control().clone();
        let (tx, rx) = mpsc::channel(self.shared.config.prefetch_batches);
        let reader = ShardReader::new(self.shared.clone(), id, control.clone(), tx, start);
        self.tasks.spawn(async move {
            let _ = reader.run().await;
        });
        let _ = self.out.send(Discovery::Shard(Box::new(
            ShardStream::new(control, rx).with_lease(lease),
        )));
    }
}

/// Creates leases for the listed shards that have none.
async fn sync_shards<S: CheckpointStore>(
    shared: &SourceShared<S>,
    driver: &dyn LeaseDriver,
) -> Result<(), Error> {
    let shards = list_shards(shared).await?;
    let created = driver
        .create_missing(&shards, shared.config.initial_position)
        .await?;
    if created > 0 {
        tracing::info!(stream = %shared.stream, created, "leases created for new shards");
    }
    Ok(())
}

/// [`sync_shards`] every shard refresh interval, until stopped.
async fn sync_periodically<S: CheckpointStore>(
    shared: Arc<SourceShared<S>>,
    driver: Arc<dyn LeaseDriver>,
) {
    let mut refresh = tokio::time::interval(shared.config.shard_refresh_interval);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    refresh.tick().await;
    loop {
        refresh.tick().await;
        if let Err(err) = sync_shards(&shared, &*driver).await {
            tracing::warn!(stream = %shared.stream, error = %crate::ErrorChain(&err), "shard sync failed; retrying at the next refresh");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str]) -> ListedShard {
        ListedShard {
            id: Arc::from(id),
            parents: parents.iter().map(|p| Arc::from(*p)).collect(),
            closed: false,
            hash_range: None,
        }
    }

    #[test]
    fn parents_are_placed_before_children_whatever_the_listing_order() {
        let shards = vec![
            shard("c", &["a", "b"]),
            shard("a", &["gone"]),
            shard("b", &[]),
            shard("d", &["c"]),
        ];
        let order: Vec<&str> = in_lineage_order(&shards).iter().map(|s| &*s.id).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }
}
