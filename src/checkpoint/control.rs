//! [`PartitionControl`]: the switch a checkpointer flips when a
//! partition's lease is lost, so that its source stops reading it.
//!
//! Flipping is one-way: a fenced partition stays fenced for the life of the
//! control (a new lease gets a new control).

use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;

/// The shared switch of one partition between its source and its
/// checkpointer. When a checkpoint write for the partition is fenced (the
/// lease moved to another worker), the checkpointer calls [`fence`], and the
/// source stops reading the partition.
///
/// [`fence`]: PartitionControl::fence
#[derive(Debug, Clone, Default)]
pub struct PartitionControl {
    inner: Arc<ControlInner>,
}

#[derive(Debug, Default)]
struct ControlInner {
    fenced: AtomicBool,
    notify: tokio::sync::Notify,
}

impl PartitionControl {
    /// A new, unfenced control.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the partition as lost to this worker and wakes waiters.
    pub fn fence(&self) {
        self.inner.fenced.store(true, AtomicOrdering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`fence`](Self::fence) was called.
    #[inline]
    pub fn is_fenced(&self) -> bool {
        self.inner.fenced.load(AtomicOrdering::SeqCst)
    }

    /// Resolves once the partition is fenced.
    pub async fn fenced(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_fenced() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn control_wakes_waiters() {
        let control = PartitionControl::new();
        let waiter = {
            let c = control.clone();
            tokio::spawn(async move { c.fenced().await })
        };
        tokio::task::yield_now().await;
        assert!(!control.is_fenced());
        control.fence();
        waiter.await.unwrap();
        assert!(control.is_fenced());
    }
}
