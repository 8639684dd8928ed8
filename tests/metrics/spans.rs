//! The spans background work runs in carry what it works on: the log's
//! directory for the writer, committer and delivery tasks. A
//! `tracing-subscriber` layer notes every span opened and its fields.
//!
//! The layer is installed once, globally, and notes the thread each span
//! was opened on: a subscriber set per thread (`with_default`) would race
//! with the tests of other threads over the callsites' cached interest and
//! miss spans now and then. Each test runs its runtime on its own thread
//! (current-thread runtime), so it reads back the spans of that thread.

use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;

use futures::SinkExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;
use unistream::sink::{MemorySink, WalConfig, WalSinkExt};

use crate::recorder::{run, TestRecorder};

/// A span as opened: its name and its fields, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeenSpan {
    thread: ThreadId,
    name: String,
    fields: Vec<(String, String)>,
}

/// Every span opened in the process.
#[derive(Clone, Default)]
struct GlobalSpanLog(Arc<Mutex<Vec<SeenSpan>>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: tracing::Subscriber> Layer<S> for GlobalSpanLog {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let mut fields = Vec::new();
        attrs.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(SeenSpan {
            thread: std::thread::current().id(),
            name: attrs.metadata().name().to_owned(),
            fields,
        });
    }
}

/// The process's span log, installed as the global subscriber on first use.
fn global() -> &'static GlobalSpanLog {
    static LOG: OnceLock<GlobalSpanLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = GlobalSpanLog::default();
        let subscriber = tracing_subscriber::registry().with(log.clone());
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        log
    })
}

/// The spans opened on the thread that made it.
pub struct SpanLog {
    thread: ThreadId,
}

impl Default for SpanLog {
    fn default() -> Self {
        global();
        Self {
            thread: std::thread::current().id(),
        }
    }
}

impl SpanLog {
    /// The fields of the spans named `name` opened on this log's thread.
    pub fn fields_of(&self, name: &str) -> Vec<Vec<(String, String)>> {
        global()
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.thread == self.thread && s.name == name)
            .map(|s| s.fields.clone())
            .collect()
    }
}

/// Runs `f` (on this thread) with `log` noting its spans.
pub fn with_span_log<T>(log: &SpanLog, f: impl FnOnce() -> T) -> T {
    assert_eq!(log.thread, std::thread::current().id());
    f()
}

#[test]
fn the_wal_tasks_and_the_delivery_task_run_in_spans_naming_the_directory() {
    let log = SpanLog::default();
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().display().to_string();
    let target = MemorySink::<u64>::new();
    with_span_log(&log, || {
        run(&TestRecorder::default(), async {
            let mut sink = target
                .buffered_wal(WalConfig::new(dir.path()))
                .await
                .unwrap();
            sink.send(1).await.unwrap();
            sink.close().await.unwrap();
        })
    });
    let expected = vec![vec![("wal_dir".to_owned(), wal_dir)]];
    assert_eq!(log.fields_of("wal_writer"), expected);
    assert_eq!(log.fields_of("wal_committer"), expected);
    assert_eq!(log.fields_of("buffered_wal_delivery"), expected);
}
