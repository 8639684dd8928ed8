//! The one place that knows whether the `metrics` feature is on: handles
//! that record into the `metrics` facade with it, and are empty values
//! whose methods do nothing without it (so the hooks elsewhere need no
//! `cfg` and cost nothing when the feature is off).
//!
//! A handle is registered once, with its labels, when the thing it measures
//! is made (a log opened, a shard reader started): recording through it is
//! then an atomic add in a typical recorder, with no lookup and no
//! allocation. Registration uses the recorder in force at that moment (the
//! global one, or a local one set with `metrics::with_local_recorder`).

/// A label set, built once per registered thing.
pub(crate) type Labels = Vec<(&'static str, String)>;

/// A monotonic counter.
#[derive(Clone, Default)]
pub(crate) struct Counter(#[cfg(feature = "metrics")] Option<metrics::Counter>);

/// A value that goes up and down.
#[derive(Clone, Default)]
pub(crate) struct Gauge(#[cfg(feature = "metrics")] Option<metrics::Gauge>);

/// A distribution of values.
#[derive(Clone, Default)]
pub(crate) struct Histogram(#[cfg(feature = "metrics")] Option<metrics::Histogram>);

// The handles say nothing useful in a `Debug` of what holds them.
impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counter")
    }
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gauge")
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Histogram")
    }
}

#[cfg(feature = "metrics")]
fn key_labels(labels: &Labels) -> Vec<metrics::Label> {
    labels
        .iter()
        .map(|(k, v)| metrics::Label::new(*k, v.clone()))
        .collect()
}

impl Counter {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &'static str, labels: &Labels) -> Self {
        #[cfg(feature = "metrics")]
        {
            Self(Some(metrics::counter!(name, key_labels(labels))))
        }
        #[cfg(not(feature = "metrics"))]
        {
            Self()
        }
    }

    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn increment(&self, n: u64) {
        #[cfg(feature = "metrics")]
        if let Some(c) = &self.0 {
            if n > 0 {
                c.increment(n);
            }
        }
    }
}

impl Gauge {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &'static str, labels: &Labels) -> Self {
        #[cfg(feature = "metrics")]
        {
            Self(Some(metrics::gauge!(name, key_labels(labels))))
        }
        #[cfg(not(feature = "metrics"))]
        {
            Self()
        }
    }

    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn set(&self, value: f64) {
        #[cfg(feature = "metrics")]
        if let Some(g) = &self.0 {
            g.set(value);
        }
    }
}

impl Histogram {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &'static str, labels: &Labels) -> Self {
        #[cfg(feature = "metrics")]
        {
            Self(Some(metrics::histogram!(name, key_labels(labels))))
        }
        #[cfg(not(feature = "metrics"))]
        {
            Self()
        }
    }

    /// Records a duration, in seconds.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn record_duration(&self, elapsed: std::time::Duration) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.0 {
            h.record(elapsed.as_secs_f64());
        }
    }
}

/// Whether recording is compiled in: hooks that must do extra work to
/// measure something (a `stat`, a clock read) skip it when not.
pub(crate) const ENABLED: bool = cfg!(feature = "metrics");

/// A clock read only when recording is compiled in.
#[inline]
pub(crate) fn start_timer() -> Option<std::time::Instant> {
    ENABLED.then(std::time::Instant::now)
}

/// Records the time since `start` (from [`start_timer`]) into `histogram`.
#[inline]
pub(crate) fn record_since(histogram: &Histogram, start: Option<std::time::Instant>) {
    if let Some(start) = start {
        histogram.record_duration(start.elapsed());
    }
}

/// `T`'s type name without module paths, for a label: `MemorySink<Vec<u8>>`
/// rather than `unistream::sink::memory::MemorySink<alloc::vec::Vec<u8>>`.
/// Bounded: one value per type in the program.
pub(crate) fn short_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    for (i, c) in full.char_indices() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            continue;
        }
        push_last_segment(&mut out, &full[segment_start..i]);
        out.push(c);
        segment_start = i + c.len_utf8();
    }
    push_last_segment(&mut out, &full[segment_start..]);
    out
}

fn push_last_segment(out: &mut String, path: &str) {
    out.push_str(path.rsplit("::").next().unwrap_or(path));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_type_names_drop_module_paths_everywhere() {
        assert_eq!(short_type_name::<u32>(), "u32");
        assert_eq!(
            short_type_name::<std::sync::Arc<Vec<String>>>(),
            "Arc<Vec<String>>"
        );
        assert_eq!(
            short_type_name::<std::collections::HashMap<u8, (u16, &str)>>(),
            "HashMap<u8, (u16, &str)>"
        );
    }
}
