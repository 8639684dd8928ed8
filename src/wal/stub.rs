//! TEMPORARY in-memory stand-in for the WAL API, so the producer branch
//! compiles and its unit tests run before the real engine is merged.
//! Replaced wholesale by the `wal` branch.
#![allow(missing_docs, dead_code)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::WalError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fsync {
    Always,
    Interval(Duration),
    Never,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnCorruption {
    Fail,
    Quarantine,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhenFull {
    Wait,
    Error,
}

#[derive(Debug, Clone)]
pub struct WalOptions {
    dir: PathBuf,
    max_bytes: u64,
    when_full: WhenFull,
}
impl WalOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_bytes: u64::MAX,
            when_full: WhenFull::Wait,
        }
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn segment_bytes(self, _n: u64) -> Self {
        self
    }
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }
    pub fn fsync(self, _f: Fsync) -> Self {
        self
    }
    pub fn on_corruption(self, _c: OnCorruption) -> Self {
        self
    }
    pub fn when_full(mut self, w: WhenFull) -> Self {
        self.when_full = w;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

#[derive(Debug, Default)]
pub struct Recovery {
    pub uncommitted_records: u64,
    pub truncated_tail_bytes: u64,
    pub quarantined: Vec<()>,
}
#[derive(Debug, Clone, Copy)]
pub struct WalStats {
    pub bytes_on_disk: u64,
    pub next_lsn: Lsn,
    pub committed_lsn: Lsn,
    pub synced_lsn: Lsn,
}
#[derive(Debug, Clone, Copy)]
pub struct Backlog {
    pub records: u64,
    pub bytes: u64,
    pub oldest_appended_at: Option<Instant>,
}
#[derive(Debug, Clone)]
pub struct WalRecord {
    pub lsn: Lsn,
    pub payload: Vec<u8>,
}

struct State {
    records: VecDeque<(u64, Vec<u8>, Instant)>,
    next: u64,
    committed: u64,
    read: u64,
    bytes: u64,
}
struct Inner {
    state: Mutex<State>,
    space: Notify,
    appended: Notify,
    options: WalOptions,
}

pub struct Wal;
impl Wal {
    pub async fn open(options: WalOptions) -> Result<(WalWriter, WalReader, Recovery), WalError> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                records: VecDeque::new(),
                next: 0,
                committed: 0,
                read: 0,
                bytes: 0,
            }),
            space: Notify::new(),
            appended: Notify::new(),
            options,
        });
        Ok((
            WalWriter {
                inner: inner.clone(),
            },
            WalReader { inner },
            Recovery::default(),
        ))
    }
}

#[derive(Clone)]
pub struct WalWriter {
    inner: Arc<Inner>,
}
impl WalWriter {
    pub async fn append(&self, records: Vec<Vec<u8>>) -> Result<Lsn, WalError> {
        let size: u64 = records.iter().map(|r| r.len() as u64 + 8).sum();
        loop {
            let notified = self.inner.space.notified();
            {
                let mut s = self.inner.state.lock().unwrap();
                if s.bytes + size <= self.inner.options.max_bytes || s.bytes == 0 {
                    let first = s.next;
                    let now = Instant::now();
                    for r in records {
                        let lsn = s.next;
                        s.next += 1;
                        s.records.push_back((lsn, r, now));
                    }
                    s.bytes += size;
                    self.inner.appended.notify_waiters();
                    return Ok(Lsn(first));
                }
                if self.inner.options.when_full == WhenFull::Error {
                    return Err(WalError::Corrupt {
                        file: "full".into(),
                        offset: 0,
                        reason: "full".into(),
                    });
                }
            }
            notified.await;
        }
    }
    pub async fn sync(&self) -> Result<(), WalError> {
        Ok(())
    }
    pub fn stats(&self) -> WalStats {
        let s = self.inner.state.lock().unwrap();
        WalStats {
            bytes_on_disk: s.bytes,
            next_lsn: Lsn(s.next),
            committed_lsn: Lsn(s.committed),
            synced_lsn: Lsn(s.next),
        }
    }
}

pub struct WalReader {
    inner: Arc<Inner>,
}
impl WalReader {
    pub fn backlog(&self) -> Backlog {
        let s = self.inner.state.lock().unwrap();
        let mut b = Backlog {
            records: 0,
            bytes: 0,
            oldest_appended_at: None,
        };
        for (lsn, p, at) in &s.records {
            if *lsn >= s.read {
                b.records += 1;
                b.bytes += p.len() as u64;
                if b.oldest_appended_at.is_none() {
                    b.oldest_appended_at = Some(*at);
                }
            }
        }
        b
    }
    pub async fn wait_for_records(&mut self) {
        loop {
            let n = self.inner.appended.notified();
            if self.backlog().records > 0 {
                return;
            }
            n.await;
        }
    }
    pub async fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<WalRecord>, WalError> {
        let mut s = self.inner.state.lock().unwrap();
        let mut out = Vec::new();
        let mut bytes = 0;
        let read = s.read;
        for (lsn, p, _) in &s.records {
            if *lsn < read {
                continue;
            }
            if !out.is_empty() && (out.len() >= max_records || bytes + p.len() > max_bytes) {
                break;
            }
            bytes += p.len();
            out.push(WalRecord {
                lsn: Lsn(*lsn),
                payload: p.clone(),
            });
        }
        if let Some(last) = out.last() {
            s.read = last.lsn.0 + 1;
        }
        Ok(out)
    }
    pub fn rewind(&mut self, from: Lsn) {
        self.inner.state.lock().unwrap().read = from.0;
    }
    pub async fn commit(&mut self, upto: Lsn) -> Result<(), WalError> {
        let mut s = self.inner.state.lock().unwrap();
        while s.records.front().is_some_and(|r| r.0 < upto.0) {
            let (_, p, _) = s.records.pop_front().unwrap();
            s.bytes -= p.len() as u64 + 8;
        }
        s.committed = upto.0;
        self.inner.space.notify_waiters();
        Ok(())
    }
    pub fn committed(&self) -> Lsn {
        Lsn(self.inner.state.lock().unwrap().committed)
    }
}
