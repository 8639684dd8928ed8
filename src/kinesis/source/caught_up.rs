//! "Stop when caught up" for batch jobs on a Kinesis stream
//! ([`KinesisSource::stop_when_caught_up`](super::KinesisSource::stop_when_caught_up)).
//!
//! A shard is *at the tip* once a `GetRecords` response brought no records
//! and said it is 0 ms behind the tip (`MillisBehindLatest`; a response
//! without it counts as 0), and no record came from it since. The merged
//! stream ends once every shard it reads is at the tip, everything fetched
//! has been yielded, and that has held for the idle window: no record
//! yielded and no shard started or ended during it. The window covers the
//! moment between a parent shard's end and its children's start.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The idle-window clock of the merged stream.
pub(crate) struct CaughtUpWatch {
    idle: Duration,
    /// Since when every shard has been at the tip with nothing buffered.
    since: Option<Instant>,
    sleep: Pin<Box<Sleep>>,
    /// Shards merged at the last look: a change restarts the window.
    shards: usize,
    /// No shard was ever merged: not caught up (the listing is pending).
    started: bool,
}

impl CaughtUpWatch {
    pub(crate) fn new(idle: Duration) -> Self {
        Self {
            idle,
            since: None,
            sleep: Box::pin(tokio::time::sleep(idle)),
            shards: 0,
            started: false,
        }
    }

    /// A record was yielded: the window starts again.
    pub(crate) fn activity(&mut self) {
        self.since = None;
    }

    /// Called when the merged stream has nothing to yield; `true` when it
    /// is caught up and must end. `shards` are merged now, `at_tip` says
    /// whether each is at the tip with nothing buffered.
    pub(crate) fn poll_caught_up(
        &mut self,
        cx: &mut Context<'_>,
        shards: usize,
        at_tip: bool,
    ) -> bool {
        if shards > 0 {
            self.started = true;
        }
        if shards != self.shards {
            self.shards = shards;
            self.since = None;
        }
        if !self.started || !at_tip {
            self.since = None;
            return false;
        }
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        let at = since + self.idle;
        if now >= at {
            return true;
        }
        self.sleep.as_mut().reset(at);
        matches!(self.sleep.as_mut().poll(cx), Poll::Ready(())) && Instant::now() >= at
    }
}
