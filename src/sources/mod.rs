//! What fills the snapshot: config files, the cluster's watchers, one-shot listings. Each
//! source builds a whole new `Snapshot` and swaps it in atomically.

pub mod cluster;
pub mod config;
pub mod listing;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::core::snapshot::Snapshot;

/// The current snapshot, shared by the server and the sources that update it.
#[derive(Debug)]
pub struct SharedSnapshot(ArcSwap<Snapshot>);

impl SharedSnapshot {
    pub fn new(snapshot: Snapshot) -> Self {
        SharedSnapshot(ArcSwap::from_pointee(snapshot))
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    pub fn store(&self, snapshot: Snapshot) {
        self.0.store(Arc::new(snapshot));
    }
}
