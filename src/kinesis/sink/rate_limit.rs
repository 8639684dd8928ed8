//! Per-shard traffic shaping: send what fits a shard's limits now, keep a
//! margin for the way Kinesis counts, and follow the share of the shard the
//! producer actually gets when others write to it too.
//!
//! Kinesis accepts 1000 records and 1 MiB per second per shard and refuses
//! the excess with `ProvisionedThroughputExceededException`. It counts
//! records when they *arrive*, in fixed one-second windows. Sending faster
//! only converts throughput into retries, so the sink paces each shard.
//!
//! **Guarantee**: the records this producer sends to one shard in any
//! window `(t - (1 s + margin), t]` number at most the allowance and bill at
//! most its bytes (data plus partition keys), counted when each call is
//! sent. A call carries to each shard only what fits that shard's room at
//! the moment it is planned — a shard with no room holds back its own
//! records, never another shard's — so a batch is split rather than waiting
//! for all of it to fit. The margin (default 25 ms) covers arrival jitter:
//! records sent in any span of `1 s + margin` are all that can arrive in one
//! fixed one-second window when their latencies differ by less than the
//! margin, so a lone producer whose calls' latencies vary by less than the
//! margin is never throttled. With the defaults that is 1000 records per
//! 1.025 s, 97.6 % of the shard.
//!
//! **Adaptive** (default on): a shard that throttles anyway (other producers
//! share it, or jitter beat the margin) has its allowance cut at once to
//! what it accepted from this producer in the last window, less 3 % (and
//! never below half of what it was, nor below 1/32 of the limit) — one cut
//! per throttled round: answers to calls sent before the cut do not cut
//! again. From there the allowance grows again with the time since the
//! last throttle: 0.5 % of the limit per second at first, doubling every
//! 2 s, so a share that was right is probed gently (several producers
//! sharing a shard settle just under its capacity, with few throttled
//! records) and a share that freed up is regained within about ten seconds.
//!
//! **Not guaranteed**: traffic from other producers is invisible here, and a
//! record whose shard is unknown (no shard map) is not paced. A single
//! record larger than the room a shard has is sent alone once the shard's
//! window is empty. Time is `tokio::time`, so tests with paused time see
//! exact schedules.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashMap;
use tokio::time::Instant;

use crate::kinesis::limits::{MAX_SHARD_WRITE_BYTES_PER_SEC, MAX_SHARD_WRITE_RECORDS_PER_SEC};

/// The window the limits apply to.
const WINDOW: Duration = Duration::from_secs(1);
/// The default margin added to the window for arrival jitter.
const DEFAULT_ARRIVAL_MARGIN: Duration = Duration::from_millis(25);
/// The largest margin accepted.
const MAX_ARRIVAL_MARGIN: Duration = Duration::from_secs(1);
/// Lowest share of the configured rate the adaptive back-off goes to.
const MIN_FACTOR: f64 = 1.0 / 32.0;
/// A cut never goes below this share of the allowance before it.
const MAX_CUT: f64 = 0.5;
/// What a cut keeps below the share the shard accepted.
const CUT_MARGIN: f64 = 0.97;
/// Growth of the allowance right after a cut, in shares of the configured
/// rate per second.
const INITIAL_GROWTH_PER_SEC: f64 = 0.005;
/// The growth doubles every this many seconds since the last cut.
const GROWTH_DOUBLING_SECS: f64 = 2.0;

/// The write rate the sink allows itself per shard.
///
/// ```
/// use std::time::Duration;
/// use unistream::kinesis::ShardRateLimit;
///
/// // Two producers sharing a stream, each taking half of every shard.
/// let half = ShardRateLimit::default().records_per_sec(500).bytes_per_sec(512 * 1024);
/// assert_eq!(half.records_per_sec_limit(), 500);
/// // Calls whose latencies vary by up to 60 ms: a wider margin.
/// let jittery = ShardRateLimit::default().arrival_margin(Duration::from_millis(60));
/// assert_eq!(jittery.arrival_margin_limit(), Duration::from_millis(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use = "a rate limit does nothing until passed to `KinesisSinkBuilder::rate_limit`"]
pub struct ShardRateLimit {
    records_per_sec: u32,
    bytes_per_sec: u64,
    adaptive: bool,
    arrival_margin: Duration,
}

impl Default for ShardRateLimit {
    /// The Kinesis shard limits (1000 records/s, 1 MiB/s), adaptive, with a
    /// 25 ms arrival margin.
    fn default() -> Self {
        Self {
            records_per_sec: MAX_SHARD_WRITE_RECORDS_PER_SEC,
            bytes_per_sec: MAX_SHARD_WRITE_BYTES_PER_SEC,
            adaptive: true,
            arrival_margin: DEFAULT_ARRIVAL_MARGIN,
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

    /// Cuts the allowance on throttling and regrows it (default on).
    pub fn adaptive(mut self, on: bool) -> Self {
        self.adaptive = on;
        self
    }

    /// How much longer than one second the window the allowance applies to
    /// is (default 25 ms, at most 1 s): records sent within any `1 s +
    /// margin` respect the limits, so calls whose latencies to the service
    /// differ by less than the margin cannot meet in one of its counting
    /// windows beyond the limits. The price is throughput: at most
    /// `1 s / (1 s + margin)` of the limits is used.
    pub fn arrival_margin(mut self, margin: Duration) -> Self {
        self.arrival_margin = margin.min(MAX_ARRIVAL_MARGIN);
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

    /// The configured arrival margin.
    pub fn arrival_margin_limit(&self) -> Duration {
        self.arrival_margin
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

/// What a shard has room for now, for one plan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Room {
    /// Records and bytes left in the window.
    records: u64,
    bytes: u64,
    /// Nothing was sent in the window: one record fits whatever its size.
    empty: bool,
}

impl Room {
    /// Whether `planned` (already in the call for this shard) plus one
    /// more record of `bytes` fits.
    pub(crate) fn fits(&self, planned: Portion, bytes: u64) -> bool {
        if self.empty && planned.is_empty() {
            return true;
        }
        u64::from(planned.records) < self.records && planned.bytes + bytes <= self.bytes
    }
}

/// The windows of every shard a producer writes to.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: ShardRateLimit,
    window: Duration,
    shards: HashMap<Arc<str>, ShardWindow>,
}

#[derive(Debug)]
struct ShardWindow {
    /// What was sent in the last window, in time order.
    sent: VecDeque<Sent>,
    /// Totals of `sent`, so that the common check costs O(1).
    records: u64,
    bytes: u64,
    throttled: u64,
    /// Share of the configured rate allowed right after the last cut.
    base: f64,
    /// When the last cut happened (`None`: never, the allowance is full).
    cut_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    at: Instant,
    portion: Portion,
    /// Records of it the shard throttled (known once answered).
    throttled: u64,
}

impl Default for ShardWindow {
    fn default() -> Self {
        Self {
            sent: VecDeque::new(),
            records: 0,
            bytes: 0,
            throttled: 0,
            base: 1.0,
            cut_at: None,
        }
    }
}

impl RateLimiter {
    pub(crate) fn new(limit: ShardRateLimit) -> Self {
        Self {
            window: WINDOW + limit.arrival_margin,
            limit,
            shards: HashMap::new(),
        }
    }

    /// The share of the configured rate `shard` is allowed at `now`.
    fn factor(&self, shard: &str, now: Instant) -> f64 {
        self.shards.get(shard).map_or(1.0, |w| w.factor(now))
    }

    /// The share of the configured rate `shard` is allowed at `now` (1
    /// until it throttles; lower after an adaptive cut).
    pub(crate) fn share(&self, shard: &str, now: Instant) -> f64 {
        self.factor(shard, now)
    }

    /// The allowance of `shard` at `now`, per window.
    fn allowance(&self, shard: &str, now: Instant) -> Portion {
        let factor = self.factor(shard, now);
        Portion {
            records: ((f64::from(self.limit.records_per_sec) * factor) as u32).max(1),
            bytes: ((self.limit.bytes_per_sec as f64 * factor) as u64).max(1),
        }
    }

    /// What `shard` has room for at `now`.
    pub(crate) fn room(&mut self, shard: &str, now: Instant) -> Room {
        let allowance = self.allowance(shard, now);
        let window = self.window;
        let Some(w) = self.shards.get_mut(shard) else {
            return Room {
                records: u64::from(allowance.records),
                bytes: allowance.bytes,
                empty: true,
            };
        };
        w.prune(now, window);
        Room {
            records: u64::from(allowance.records).saturating_sub(w.records),
            bytes: allowance.bytes.saturating_sub(w.bytes),
            empty: w.sent.is_empty(),
        }
    }

    /// When `shard` has more room than at `now`: the oldest send leaves its
    /// window, or (after a cut) the allowance has grown a step.
    pub(crate) fn more_room_at(&self, shard: &str, now: Instant) -> Instant {
        let Some(w) = self.shards.get(shard) else {
            return now;
        };
        let leaves = w.sent.front().map_or(now, |s| s.at + self.window);
        if w.cut_at.is_some() && w.factor(now) < 1.0 {
            leaves.min(now + Duration::from_millis(100))
        } else {
            leaves
        }
    }

    /// Counts what a call sent at `now` carries to each shard.
    pub(crate) fn record_sent(&mut self, now: Instant, portions: &[ShardPortion]) {
        for ShardPortion { shard, portion } in portions {
            let window = self.shards.entry(shard.clone()).or_default();
            window.sent.push_back(Sent {
                at: now,
                portion: *portion,
                throttled: 0,
            });
            window.records += u64::from(portion.records);
            window.bytes += portion.bytes;
        }
    }

    /// A call sent at `sent_at` had `throttled` of its records to `shard`
    /// refused for throughput: count them and, once per throttled round,
    /// cut the allowance to what the shard accepted in the last window.
    pub(crate) fn on_throttle(
        &mut self,
        shard: &str,
        sent_at: Instant,
        throttled: u64,
        now: Instant,
    ) {
        let adaptive = self.limit.adaptive;
        let limit = self.limit;
        let window = self.window;
        let Some(w) = self.shards.get_mut(shard) else {
            return;
        };
        if let Some(sent) = w.sent.iter_mut().rev().find(|s| s.at == sent_at) {
            let more =
                throttled.min(u64::from(sent.portion.records).saturating_sub(sent.throttled));
            sent.throttled += more;
            w.throttled += more;
        }
        if !adaptive || w.cut_at.is_some_and(|cut| sent_at <= cut) {
            return;
        }
        w.prune(now, window);
        let current = w.factor(now);
        // The share of the allowance the window used, and the part of it
        // the shard took.
        let used = (w.records as f64 / f64::from(limit.records_per_sec))
            .max(w.bytes as f64 / limit.bytes_per_sec as f64);
        let accepted = if w.records == 0 {
            0.0
        } else {
            1.0 - w.throttled as f64 / w.records as f64
        };
        let estimate = used * accepted * CUT_MARGIN;
        w.base = estimate
            .min(current * CUT_MARGIN)
            .max(current * MAX_CUT)
            .max(MIN_FACTOR);
        w.cut_at = Some(now);
    }

    /// Forgets shards that are no longer open.
    pub(crate) fn retain_shards(&mut self, open: impl Fn(&str) -> bool) {
        self.shards.retain(|shard, _| open(shard));
    }
}

impl ShardWindow {
    /// The share of the configured rate allowed at `now`: the base of the
    /// last cut, grown by the time since.
    fn factor(&self, now: Instant) -> f64 {
        let Some(cut) = self.cut_at else {
            return 1.0;
        };
        let since = now.saturating_duration_since(cut).as_secs_f64();
        // The integral of INITIAL_GROWTH * 2^(t / DOUBLING) from 0 to `since`.
        let doublings = (since / GROWTH_DOUBLING_SECS).min(60.0);
        let grown = INITIAL_GROWTH_PER_SEC * GROWTH_DOUBLING_SECS / std::f64::consts::LN_2
            * (doublings.exp2() - 1.0);
        (self.base + grown).min(1.0)
    }

    /// Drops what no window ending at or after `now` can contain.
    fn prune(&mut self, now: Instant, window: Duration) {
        while let Some(sent) = self.sent.front() {
            if sent.at + window <= now {
                self.records -= u64::from(sent.portion.records);
                self.bytes -= sent.portion.bytes;
                self.throttled -= sent.throttled;
                self.sent.pop_front();
            } else {
                break;
            }
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

    /// Sends as much of `want` as the room of `s` allows at `now`, record
    /// by record as the planner does; returns what was sent.
    fn send_what_fits(
        limiter: &mut RateLimiter,
        s: &Arc<str>,
        now: Instant,
        want: u32,
        size: u64,
    ) -> Portion {
        let room = limiter.room(s, now);
        let mut p = Portion::default();
        while p.records < want && room.fits(p, size) {
            p.records += 1;
            p.bytes += size;
        }
        if !p.is_empty() {
            limiter.record_sent(now, &[to(s, p)]);
        }
        p
    }

    /// Every span `(t - window, t]` ending at a send holds at most the limits.
    fn assert_windows(sends: &[(Instant, Portion)], window: Duration, records: u64, bytes: u64) {
        for &(end, _) in sends {
            let (r, b) = sends
                .iter()
                .filter(|(at, _)| *at <= end && *at + window > end)
                .fold((0, 0), |(r, b), (_, p)| {
                    (r + u64::from(p.records), b + p.bytes)
                });
            assert!(r <= records, "{r} records in the window ending {end:?}");
            assert!(b <= bytes, "{b} bytes in the window ending {end:?}");
        }
    }

    #[test]
    fn a_call_takes_what_fits_now_and_the_rest_waits_for_the_margin() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(ShardRateLimit::default());
        let s = shard("s");
        // 300 records per call, as fast as room allows.
        let mut now = start;
        let mut sends = Vec::new();
        for _ in 0..40 {
            let p = send_what_fits(&mut limiter, &s, now, 300, 100);
            if p.is_empty() {
                now = limiter.more_room_at(&s, now);
                assert!(now > sends.last().map_or(start, |&(at, _)| at));
                continue;
            }
            sends.push((now, p));
        }
        let window = WINDOW + DEFAULT_ARRIVAL_MARGIN;
        assert_windows(&sends, window, 1000, 1 << 20);
        // The fourth call is split: 100 records fit now, not 300.
        assert_eq!(sends[3].1.records, 100);
        assert_eq!(sends[3].0, start);
        // The next room comes when the first call leaves the 1.025 s window.
        assert_eq!(sends[4].0, start + window);
        assert_eq!(sends[4].1.records, 300);
        // Steadily: 1000 records per 1.025 s.
        let total: u64 = sends.iter().map(|(_, p)| u64::from(p.records)).sum();
        let span = sends.last().unwrap().0 - start;
        let per_window = total as f64 / (span.as_secs_f64() / window.as_secs_f64() + 1.0);
        assert!((990.0..=1000.0).contains(&per_window), "{per_window}");
    }

    #[test]
    fn the_bytes_limit_paces_large_records_and_a_huge_one_goes_alone() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(ShardRateLimit::default().bytes_per_sec(100 * 1024));
        let s = shard("s");
        let p = send_what_fits(&mut limiter, &s, start, 10, 40 * 1024);
        assert_eq!(p.records, 2, "two 40 KiB records fit 100 KiB");
        // A record larger than the whole allowance waits for an empty window.
        assert!(!limiter.room(&s, start).fits(Portion::default(), 300 * 1024));
        let later = limiter.more_room_at(&s, start);
        assert_eq!(later, start + WINDOW + DEFAULT_ARRIVAL_MARGIN);
        assert!(limiter.room(&s, later).fits(Portion::default(), 300 * 1024));
        assert!(!limiter.room(&s, later).fits(portion(1, 300 * 1024), 1));
    }

    #[test]
    fn a_full_shard_holds_back_only_its_own_records() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(ShardRateLimit::default());
        let (a, b) = (shard("a"), shard("b"));
        limiter.record_sent(start, &[to(&a, portion(1000, 10))]);
        assert!(!limiter.room(&a, start).fits(Portion::default(), 1));
        assert!(limiter.room(&b, start).fits(portion(999, 999), 1));
        assert!(!limiter.room(&b, start).fits(portion(1000, 1000), 1));
    }

    #[test]
    fn a_throttle_cuts_to_the_accepted_share_once_per_round() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(ShardRateLimit::default());
        let s = shard("s");
        // Two calls of 400; the shard took only 600 of them (another
        // producer has the rest).
        limiter.record_sent(start, &[to(&s, portion(400, 400))]);
        let second = start + Duration::from_millis(10);
        limiter.record_sent(second, &[to(&s, portion(400, 400))]);
        let answered = start + Duration::from_millis(30);
        limiter.on_throttle(&s, second, 200, answered);
        let cut = limiter.factor(&s, answered);
        assert!((cut - 0.6 * CUT_MARGIN).abs() < 1e-9, "{cut}");
        // Another answer of the same round does not cut again.
        limiter.on_throttle(&s, start, 100, answered + Duration::from_millis(1));
        assert!((limiter.factor(&s, answered + Duration::from_millis(1)) - cut).abs() < 1e-3);
        // A cut keeps at least half of what it had.
        let later = answered + Duration::from_millis(100);
        limiter.record_sent(later, &[to(&s, portion(10, 10))]);
        limiter.on_throttle(&s, later, 10, later);
        assert!(limiter.factor(&s, later) >= cut * MAX_CUT - 1e-3);
    }

    #[test]
    fn the_allowance_grows_back_gently_then_fast() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(ShardRateLimit::default());
        let s = shard("s");
        limiter.record_sent(start, &[to(&s, portion(1000, 1000))]);
        limiter.on_throttle(&s, start, 500, start);
        let base = limiter.factor(&s, start);
        assert!((base - 0.5).abs() < 1e-9, "{base}");
        let at = |secs: f64| limiter.factor(&s, start + Duration::from_secs_f64(secs)) - base;
        // Gently at first: under 1.5 % of the limit in the first two seconds.
        assert!(at(2.0) < 0.015, "{}", at(2.0));
        // Then faster: half the limit back within twelve seconds.
        assert!(at(12.0) >= 0.5, "{}", at(12.0));
        assert_eq!(limiter.factor(&s, start + Duration::from_secs(30)), 1.0);
        // While the allowance grows, more room comes at least every 100 ms.
        let t = start + Duration::from_secs(3);
        assert!(limiter.more_room_at(&s, t) <= t + Duration::from_millis(100));

        let mut fixed = RateLimiter::new(ShardRateLimit::default().adaptive(false));
        fixed.record_sent(start, &[to(&s, portion(1000, 1000))]);
        fixed.on_throttle(&s, start, 500, start);
        assert_eq!(fixed.allowance(&s, start).records, 1000);
    }

    #[test]
    fn the_margin_is_configurable_and_bounded() {
        let limit = ShardRateLimit::default().arrival_margin(Duration::from_secs(5));
        assert_eq!(limit.arrival_margin_limit(), MAX_ARRIVAL_MARGIN);
        let start = Instant::now();
        let mut limiter =
            RateLimiter::new(ShardRateLimit::default().arrival_margin(Duration::ZERO));
        let s = shard("s");
        limiter.record_sent(start, &[to(&s, portion(1000, 1000))]);
        assert_eq!(limiter.more_room_at(&s, start), start + WINDOW);
    }
}
