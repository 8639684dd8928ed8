//! [`SinkShared`]: what a Kinesis sink and its clones share — the client,
//! the options, the shard map, the rate limiter, the hash-key cache and the
//! metrics — and the reloading of the shard map.
//!
//! Guarantees: the shard map is reloaded when it is due (first use, the
//! periodic refresh, or a misprediction marked it stale), never more often
//! than once a second whatever triggers it, and not at all when neither
//! pacing nor aggregation needs it; a failed load keeps the previous map.
//! The locks are held for plain updates only, never across an `.await`, and
//! a panic while one is held does not make the state unusable.
//!
//! Does not: keep the map exact — between a reshard and the next reload a
//! prediction can miss, which costs pacing accuracy, never a record (see
//! `shard_map.rs`) — nor order the batches of clones: each clone has its own
//! batches in flight; they share the pacing and the map, not a queue.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::kinesis::hash_key::HashKeyCache;
use crate::kinesis::sink::metrics::{KinesisMetrics, KinesisMetricsHandle};
use crate::kinesis::sink::rate_limit::{RateLimiter, ShardRateLimit};
use crate::kinesis::sink::shard_map::{self, ShardMap};
use crate::kinesis::StreamTarget;
use crate::observe::kinesis_sink::KinesisSinkMetrics;
use crate::RetryPolicy;

/// Never reload the shard map more often than this, whatever triggers it.
const MIN_SHARD_MAP_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// How the sink delivers (set through the builder).
#[derive(Debug, Clone)]
pub(crate) struct SinkOptions {
    pub ordered: bool,
    /// Aggregate size limit, `None` when aggregation is off.
    pub aggregation: Option<usize>,
    pub retry: RetryPolicy,
    pub rate_limit: Option<ShardRateLimit>,
    /// `PutRecords` calls a sink may have in flight at once.
    pub max_calls_in_flight: usize,
    pub shard_map_refresh: Duration,
    /// Limit on each `PutRecords` and `ListShards` call; `None`: none.
    pub request_timeout: Option<Duration>,
}

/// State shared by a sink and its clones.
#[derive(Debug)]
pub(crate) struct SinkShared {
    pub client: aws_sdk_kinesis::Client,
    pub target: StreamTarget,
    pub label: String,
    pub options: SinkOptions,
    pub metrics: KinesisMetricsHandle,
    /// The same counters in the `metrics` facade (see [`crate::observe`]).
    pub facade: KinesisSinkMetrics,
    shard_map: Mutex<ShardMapState>,
    limiter: Mutex<RateLimiter>,
    hash_keys: Mutex<HashKeyCache>,
}

/// The shard map in use and when it was (tried to be) loaded.
#[derive(Debug, Default)]
pub(super) struct ShardMapState {
    map: Arc<ShardMap>,
    loaded_at: Option<Instant>,
    attempted_at: Option<Instant>,
    /// A record landed elsewhere than predicted: reload when allowed.
    pub(super) stale: bool,
}

impl SinkShared {
    pub(crate) fn new(
        client: aws_sdk_kinesis::Client,
        target: StreamTarget,
        options: SinkOptions,
        metrics: KinesisMetricsHandle,
    ) -> Self {
        let limiter = RateLimiter::new(options.rate_limit.unwrap_or_default());
        Self {
            facade: KinesisSinkMetrics::new(target.label_name()),
            client,
            label: target.to_string(),
            target,
            options,
            metrics,
            shard_map: Mutex::new(ShardMapState::default()),
            limiter: Mutex::new(limiter),
            hash_keys: Mutex::default(),
        }
    }

    /// Updates the snapshot metrics and forwards the counters it changed to
    /// the `metrics` facade.
    pub(crate) fn record_metrics(&self, f: impl FnOnce(&mut KinesisMetrics)) {
        self.metrics.update_forwarding(f, &self.facade);
    }

    /// The shard map, reloaded first when it is due (first use, periodic
    /// refresh, or a misprediction). Without rate limiting and aggregation
    /// no map is needed and none is loaded. A failed load keeps the old map
    /// (possibly empty: records are then neither paced nor grouped by shard).
    pub(super) async fn current_shard_map(&self) -> Arc<ShardMap> {
        if self.options.rate_limit.is_none() && self.options.aggregation.is_none() {
            return Arc::default();
        }
        let now = Instant::now();
        {
            let mut state = self.shard_map_state();
            let due = match state.loaded_at {
                None => true,
                Some(at) => state.stale || now >= at + self.options.shard_map_refresh,
            };
            let allowed = state
                .attempted_at
                .is_none_or(|at| now >= at + MIN_SHARD_MAP_RELOAD_INTERVAL);
            if !(due && allowed) {
                return state.map.clone();
            }
            state.attempted_at = Some(now);
        }
        match shard_map::load(&self.client, &self.target, self.options.request_timeout).await {
            Ok(map) => {
                tracing::debug!(
                    target: "unistream::kinesis",
                    stream = %self.label, open_shards = map.len(), "shard map loaded"
                );
                let map = Arc::new(map);
                self.limiter().retain_shards(|id| map.contains(id));
                self.record_metrics(|m| m.shard_map_refreshes += 1);
                let mut state = self.shard_map_state();
                state.map = map.clone();
                state.loaded_at = Some(Instant::now());
                state.stale = false;
                map
            }
            Err(err) => {
                tracing::warn!(
                    target: "unistream::kinesis",
                    stream = %self.label, error = %crate::ErrorChain(&err),
                    "cannot load the shard map; keeping the previous one"
                );
                self.shard_map_state().map.clone()
            }
        }
    }

    pub(super) fn shard_map_state(&self) -> MutexGuard<'_, ShardMapState> {
        // Plain data, consistent at every unlock: a panic elsewhere does
        // not make it unusable.
        self.shard_map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn limiter(&self) -> MutexGuard<'_, RateLimiter> {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn hash_keys(&self) -> MutexGuard<'_, HashKeyCache> {
        // A cache: any state it is left in is valid.
        self.hash_keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}
