//! Readiness: certificates loaded, every source synced, not draining. Written by the sources
//! and `run`, read by the server's `/readyz` and its admission paths.

use std::sync::atomic::{AtomicBool, Ordering};

/// What `/readyz` reports.
#[derive(Debug, Default)]
pub struct Health {
    certs_loaded: AtomicBool,
    synced: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    pub fn set_certs_loaded(&self) {
        self.certs_loaded.store(true, Ordering::Release);
    }

    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::Release);
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether shutdown has begun (readiness false, the listener still open for the delay).
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Whether the sources know what is installed (every watch has listed once). Until then
    /// no admission request gets a verdict: an empty snapshot would refuse every pod as
    /// stale, or with `--on-stale allow-uninjected` admit it without a sidecar.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// `Ok` when ready, else why not.
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.draining.load(Ordering::Acquire) {
            Err("shutting down")
        } else if !self.certs_loaded.load(Ordering::Acquire) {
            Err("serving certificate not loaded")
        } else if !self.synced.load(Ordering::Acquire) {
            Err("revisions not known yet")
        } else {
            Ok(())
        }
    }
}
