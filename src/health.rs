//! Readiness: certificates loaded, every source synced, not draining. Written by the sources
//! and `run`, read by the server's `/readyz` and its admission paths.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// What `/readyz` reports.
#[derive(Debug, Default)]
pub struct Health {
    certs_loaded: AtomicBool,
    synced: AtomicBool,
    draining: AtomicBool,
    /// Lines `/readyz` adds when ready, by who wrote them (a source's skipped namespace).
    notes: Mutex<BTreeMap<String, String>>,
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

    /// Sets (or with `None` clears) the note kept under `key`, shown on `/readyz`.
    pub fn set_note(&self, key: &str, note: Option<String>) {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        match note {
            Some(text) => {
                notes.insert(key.to_owned(), text);
            }
            None => {
                notes.remove(key);
            }
        }
    }

    /// The notes, in key order.
    pub fn notes(&self) -> Vec<String> {
        let notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        notes.values().cloned().collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_kept_by_key_and_cleared() {
        let health = Health::default();
        health.set_note("b", Some("second".into()));
        health.set_note("a", Some("first".into()));
        health.set_note("b", Some("second, again".into()));
        assert_eq!(health.notes(), ["first", "second, again"]);
        health.set_note("a", None);
        assert_eq!(health.notes(), ["second, again"]);
    }
}
