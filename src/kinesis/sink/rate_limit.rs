//! Per-shard traffic shaping: at most N records and B bytes per shard in
//! any one-second window, backing off when Kinesis throttles anyway.
//!
//! Kinesis accepts 1000 records and 1 MiB per second per shard and refuses
//! the excess with `ProvisionedThroughputExceededException`. Sending faster
//! only converts throughput into retries, so the sink paces each call.
//!
//! **Guarantee**: with the defaults, the records this producer sends to one
//! shard in any window `(t - 1 s, t]` number at most 1000 and bill at most
//! 1 MiB (data plus partition keys), counted at the moment each call is sent.
//! The limiter keeps a log of what each shard was sent in the last second
//! (a sliding window, not a token bucket, whose burst would allow up to twice
//! the rate in a window straddling a refill) and delays a call until every
//! shard it touches has room.
//!
//! **Adaptive**: when a shard throttles (other producers share it, or the
//! prediction was off), its allowance halves; each call that goes through
//! without throttling on it gives back 5 % of the configured rate. Several
//! producers sharing a stream thus settle on shares of the shard instead of
//! hammering it (additive increase, multiplicative decrease, as TCP does).
//!
//! **Not guaranteed**: traffic from other producers is invisible here, and a
//! record whose shard is unknown (no shard map) is not paced. A single
//! record larger than a configured byte limit below 1 MiB is sent alone in
//! an otherwise empty window. Time is `tokio::time`, so tests with paused
//! time see exact schedules.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::kinesis::limits::{MAX_SHARD_WRITE_BYTES_PER_SEC, MAX_SHARD_WRITE_RECORDS_PER_SEC};

/// The window the limits apply to.
const WINDOW: Duration = Duration::from_secs(1);
/// Lowest share of the configured rate the adaptive back-off goes to.
const MIN_FACTOR: f64 = 1.0 / 32.0;
/// Share of the configured rate given back per unthrottled call.
const INCREASE_STEP: f64 = 0.05;

/// The write rate the sink allows itself per shard.
///
/// ```
/// use unistream::kinesis::ShardRateLimit;
///
/// // Two producers sharing a stream, each taking half of every shard.
/// let half = ShardRateLimit::default().records_per_sec(500).bytes_per_sec(512 * 1024);
/// assert_eq!(half.records_per_sec_limit(), 500);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use = "a rate limit does nothing until passed to `KinesisSinkBuilder::rate_limit`"]
pub struct ShardRateLimit {
    records_per_sec: u32,
    bytes_per_sec: u64,
    adaptive: bool,
}

impl Default for ShardRateLimit {
    /// The Kinesis shard limits (1000 records/s, 1 MiB/s), adaptive.
    fn default() -> Self {
        Self {
            records_per_sec: MAX_SHARD_WRITE_RECORDS_PER_SEC,
            bytes_per_sec: MAX_SHARD_WRITE_BYTES_PER_SEC,
            adaptive: true,
        }
    }
}

impl ShardRateLimit {
    /// Records per second per shard, between 1 and 1000.
    pub fn records_per_sec(mut self, records: u32) -> Self {
        self.records_per_sec = records.clamp(1, MAX_SHARD_WRITE_RECORDS_PER_SEC);
        self
    }

    /// Billed bytes per second per shard, between 1 and 1 MiB.
    pub fn bytes_per_sec(mut self, bytes: u64) -> Self {
        self.bytes_per_sec = bytes.clamp(1, MAX_SHARD_WRITE_BYTES_PER_SEC);
        self
    }

    /// Backs off on throttling and recovers on success (default on).
    pub fn adaptive(mut self, on: bool) -> Self {
        self.adaptive = on;
        self
    }

    /// The configured records per second.
    pub fn records_per_sec_limit(&self) -> u32 {
        self.records_per_sec
    }

    /// The configured bytes per second.
    pub fn bytes_per_sec_limit(&self) -> u64 {
        self.bytes_per_sec
    }
}

/// The amount a call sends to one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Portion {
    pub records: u32,
    pub bytes: u64,
}

impl Portion {
    fn is_empty(&self) -> bool {
        self.records == 0 && self.bytes == 0
    }
}

/// What one call sends to `shard`.
#[derive(Debug, Clone)]
pub(crate) struct ShardPortion {
    pub shard: Arc<str>,
    pub portion: Portion,
}

/// The sliding windows of every shard a producer writes to.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: ShardRateLimit,
    shards: HashMap<Arc<str>, ShardWindow>,
}

#[derive(Debug)]
struct ShardWindow {
    /// What was (or will be, for reservations ahead of now) sent, in time
    /// order, within the last window.
    sent: VecDeque<(Instant, Portion)>,
    /// Totals of `sent`, so that the common check costs O(1).
    records: u64,
    bytes: u64,
    /// Share of the configured rate currently allowed.
    factor: f64,
}

impl Default for ShardWindow {
    fn default() -> Self {
        Self {
            sent: VecDeque::new(),
            records: 0,
            bytes: 0,
            factor: 1.0,
        }
    }
}

impl RateLimiter {
    pub(crate) fn new(limit: ShardRateLimit) -> Self {
        Self {
            limit,
            shards: HashMap::new(),
        }
    }

    /// The most one call may send to `shard` now: the current allowance.
    /// A call may always carry one record to a shard, whatever its size.
    pub(crate) fn allowance(&self, shard: &str) -> Portion {
        let factor = self.shards.get(shard).map_or(1.0, |w| w.factor);
        Portion {
            records: ((self.limit.records_per_sec as f64 * factor) as u32).max(1),
            bytes: ((self.limit.bytes_per_sec as f64 * factor) as u64).max(1),
        }
    }

    /// Whether `portion` plus one more record of `bytes` stays within one
    /// call's allowance for `shard`.
    pub(crate) fn call_has_room(&self, shard: &str, portion: Portion, bytes: u64) -> bool {
        if portion.is_empty() {
            return true;
        }
        let allowance = self.allowance(shard);
        portion.records < allowance.records && portion.bytes + bytes <= allowance.bytes
    }

    /// Reserves room for a call sending `portions` and returns when it may
    /// be sent (`now` or later). Each portion must come from
    /// [`call_has_room`](RateLimiter::call_has_room) checks.
    pub(crate) fn reserve(&mut self, now: Instant, portions: &[ShardPortion]) -> Instant {
        let mut ready = now;
        for ShardPortion { shard, portion } in portions {
            let allowance = self.allowance(shard);
            let window = self.shards.entry(shard.clone()).or_default();
            window.prune(now);
            ready = ready.max(window.earliest(now, *portion, allowance));
        }
        for ShardPortion { shard, portion } in portions {
            if let Some(window) = self.shards.get_mut(shard) {
                window.sent.push_back((ready, *portion));
                window.records += u64::from(portion.records);
                window.bytes += portion.bytes;
            }
        }
        ready
    }

    /// `shard` throttled a call sent at some point: halve its allowance.
    pub(crate) fn on_throttle(&mut self, shard: &str) {
        if !self.limit.adaptive {
            return;
        }
        if let Some(window) = self.shards.get_mut(shard) {
            window.factor = (window.factor / 2.0).max(MIN_FACTOR);
        }
    }

    /// A call went through without throttling on `shard`: recover a step.
    pub(crate) fn on_success(&mut self, shard: &str) {
        if let Some(window) = self.shards.get_mut(shard) {
            window.factor = (window.factor + INCREASE_STEP).min(1.0);
        }
    }

    /// Forgets shards that are no longer open.
    pub(crate) fn retain_shards(&mut self, open: impl Fn(&str) -> bool) {
        self.shards.retain(|shard, _| open(shard));
    }

    #[cfg(test)]
    fn factor(&self, shard: &str) -> f64 {
        self.shards.get(shard).map_or(1.0, |w| w.factor)
    }
}

impl ShardWindow {
    /// Drops what no window ending at or after `now` can contain.
    fn prune(&mut self, now: Instant) {
        while let Some(&(at, portion)) = self.sent.front() {
            if at + WINDOW <= now {
                self.sent.pop_front();
                self.records -= u64::from(portion.records);
                self.bytes -= portion.bytes;
            } else {
                break;
            }
        }
    }

    /// The earliest instant at or after `from` (and after every earlier
    /// reservation) at which `portion` fits in the window `(t - 1 s, t]`.
    fn earliest(&self, from: Instant, portion: Portion, allowance: Portion) -> Instant {
        let mut t = self.sent.back().map_or(from, |&(at, _)| at.max(from));
        // Reservations are in time order and none is later than `t`, so
        // the window sum only shrinks as `t` grows: move `t` to the moment
        // the oldest counted entry leaves, until the portion fits.
        let (mut records, mut bytes) = (self.records, self.bytes);
        let mut oldest = 0;
        loop {
            while oldest < self.sent.len() && self.sent[oldest].0 + WINDOW <= t {
                records -= u64::from(self.sent[oldest].1.records);
                bytes -= self.sent[oldest].1.bytes;
                oldest += 1;
            }
            let fits = (records == 0 && bytes == 0)
                || (records + u64::from(portion.records) <= u64::from(allowance.records)
                    && bytes + portion.bytes <= allowance.bytes);
            if fits {
                return t;
            }
            t = self.sent[oldest].0 + WINDOW;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    fn portion(records: u32, bytes: u64) -> Portion {
        Portion { records, bytes }
    }

    fn to(shard: &Arc<str>, portion: Portion) -> ShardPortion {
        ShardPortion {
            shard: shard.clone(),
            portion,
        }
    }

    /// Every window `(t - 1 s, t]` ending at a send holds at most the limits.
    fn assert_windows(sends: &[(Instant, Portion)], records: u64, bytes: u64) {
        for &(end, _) in sends {
            let (r, b) = sends
                .iter()
                .filter(|(at, _)| *at <= end && *at + WINDOW > end)
                .fold((0, 0), |(r, b), (_, p)| {
                    (r + u64::from(p.records), b + p.bytes)
                });
            assert!(r <= records, "{r} records in the window ending {end:?}");
            assert!(b <= bytes, "{b} bytes in the window ending {end:?}");
        }
    }

    #[test]
    fn reservations_keep_every_window_within_the_limits() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(ShardRateLimit::default());
        let s = shard("shardId-0");
        let mut sends = Vec::new();
        let mut now = start;
        // A producer pushing 300 records (300 KiB) per call as fast as allowed.
        for _ in 0..40 {
            let p = portion(300, 300 * 1024);
            let at = limiter.reserve(now, &[to(&s, p)]);
            assert!(at >= now);
            sends.push((at, p));
            now = at;
        }
        assert_windows(&sends, 1000, 1024 * 1024);
        // Three calls (900 records, 900 KiB) fit per window, a fourth does
        // not: call i goes out at floor(i / 3) seconds.
        for (i, (at, _)) in sends.iter().enumerate() {
            assert_eq!(*at - start, Duration::from_secs(i as u64 / 3), "call {i}");
        }
    }

    #[test]
    fn bytes_limit_paces_large_records() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(ShardRateLimit::default());
        let s = shard("s");
        let mut sends = Vec::new();
        for _ in 0..10 {
            let p = portion(1, 600 * 1024);
            sends.push((limiter.reserve(start, &[to(&s, p)]), p));
        }
        assert_windows(&sends, 1000, 1024 * 1024);
        // 600 KiB each: only one per second fits.
        assert_eq!(sends[9].0 - start, Duration::from_secs(9));
    }

    #[test]
    fn a_call_waits_for_its_busiest_shard_only() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(ShardRateLimit::default());
        let (a, b) = (shard("a"), shard("b"));
        assert_eq!(limiter.reserve(start, &[to(&a, portion(1000, 10))]), start);
        let later = limiter.reserve(start, &[to(&a, portion(1, 1)), to(&b, portion(1, 1))]);
        assert_eq!(later, start + WINDOW);
        // b is recorded at the joint time; it still has room then.
        assert_eq!(
            limiter.reserve(start, &[to(&b, portion(998, 1))]),
            start + WINDOW
        );
    }

    #[test]
    fn throttling_halves_and_success_recovers() {
        let mut limiter = RateLimiter::new(ShardRateLimit::default());
        let s = shard("s");
        limiter.reserve(Instant::now(), &[to(&s, portion(1, 1))]);
        limiter.on_throttle("s");
        limiter.on_throttle("s");
        assert_eq!(limiter.allowance("s").records, 250);
        for _ in 0..100 {
            limiter.on_throttle("s");
        }
        assert_eq!(limiter.factor("s"), MIN_FACTOR);
        for _ in 0..100 {
            limiter.on_success("s");
        }
        assert_eq!(limiter.allowance("s"), portion(1000, 1024 * 1024));

        let mut fixed = RateLimiter::new(ShardRateLimit::default().adaptive(false));
        fixed.reserve(Instant::now(), &[to(&s, portion(1, 1))]);
        fixed.on_throttle("s");
        assert_eq!(fixed.allowance("s").records, 1000);
    }

    #[test]
    fn call_room_follows_the_allowance() {
        let limiter = RateLimiter::new(ShardRateLimit::default().records_per_sec(2));
        assert!(limiter.call_has_room("s", Portion::default(), 5 << 20));
        assert!(limiter.call_has_room("s", portion(1, 10), 10));
        assert!(!limiter.call_has_room("s", portion(2, 10), 10));
        assert!(!limiter.call_has_room("s", portion(1, 1024 * 1024), 1));
    }
}
