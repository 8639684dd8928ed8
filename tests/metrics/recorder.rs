//! A `metrics::Recorder` that keeps every counter, gauge and histogram in
//! memory, keyed by name and labels, for the tests to read back; and
//! [`run`], which runs a future on a current-thread runtime with the
//! recorder installed for that thread only, so that tests running in
//! parallel never see each other's metrics.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// The values recorded for one histogram.
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

/// Every metric registered, by key.
#[derive(Default)]
pub struct TestRecorder {
    counters: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<Key, Arc<Samples>>>,
}

/// Whether `key` is `name` with (at least) the labels `labels`.
fn matches(key: &Key, name: &str, labels: &[(&str, &str)]) -> bool {
    key.name() == name
        && labels
            .iter()
            .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
}

impl TestRecorder {
    /// The sum of the counters named `name` with these labels (0 if none).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .iter()
            .filter(|(key, _)| matches(key, name, labels))
            .map(|(_, value)| value.load(Ordering::SeqCst))
            .sum()
    }

    /// The gauge named `name` with these labels; `None` if there is none.
    /// Panics if the labels match more than one.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let gauges = self.gauges.lock().unwrap();
        let found: Vec<f64> = gauges
            .iter()
            .filter(|(key, _)| matches(key, name, labels))
            .map(|(_, value)| f64::from_bits(value.load(Ordering::SeqCst)))
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().copied()
    }

    /// Every value recorded into the histograms named `name` with these labels.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.histograms
            .lock()
            .unwrap()
            .iter()
            .filter(|(key, _)| matches(key, name, labels))
            .flat_map(|(_, samples)| samples.0.lock().unwrap().clone())
            .collect()
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(counters.entry(key.clone()).or_default().clone())
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.gauges.lock().unwrap();
        Gauge::from_arc(gauges.entry(key.clone()).or_default().clone())
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        Histogram::from_arc(histograms.entry(key.clone()).or_default().clone())
    }
}

/// Runs `future` to completion on a current-thread runtime with paused
/// time, `recorder` installed for this thread: every task the future
/// spawns runs on this thread and records into it (work on blocking
/// threads would not, which is why the crate records only from its tasks).
pub fn run<F: Future>(recorder: &TestRecorder, future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || runtime.block_on(future))
}

/// Like [`run`], with real time (for code that waits on blocking threads
/// in a loop, where paused time would jump ahead).
pub fn run_real_time<F: Future>(recorder: &TestRecorder, future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || runtime.block_on(future))
}

/// Waits until `condition` holds, letting the runtime's tasks run (and
/// blocking threads finish) in between; panics after about 5 s. Metrics
/// are recorded by the crate's background tasks, which may run just after
/// the call that a test awaited returned (an append is answered from the
/// blocking thread that wrote it, before the writer task counts it).
pub async fn until(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..5_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("timed out waiting for {what}");
}
