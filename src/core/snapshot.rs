//! The immutable `Snapshot` every request is judged against.
//!
//! Whoever learns something new (a config file reload, a cluster watch event) builds a whole
//! new snapshot and swaps it in atomically; a request loads one `Arc` and never waits.

use std::collections::HashMap;

use super::labels::NamespaceLabels;
use super::revisions::{MeshSettings, RevisionTable};

#[derive(Debug)]
pub struct Snapshot {
    pub table: RevisionTable,
    pub mesh: MeshSettings,
    /// Namespace name → its injection labels.
    pub namespaces: HashMap<String, NamespaceLabels>,
    /// Where this snapshot came from, for logs and `/readyz`.
    pub origin: String,
}

impl Snapshot {
    /// Builds a snapshot (each revision's injector was built with its revision).
    pub fn new(
        table: RevisionTable,
        mesh: MeshSettings,
        namespaces: HashMap<String, NamespaceLabels>,
        origin: impl Into<String>,
    ) -> Self {
        Snapshot {
            table,
            mesh,
            namespaces,
            origin: origin.into(),
        }
    }

    /// A snapshot with nothing installed (before the first sync).
    pub fn empty(origin: impl Into<String>) -> Self {
        Snapshot::new(
            RevisionTable::default(),
            MeshSettings::default(),
            HashMap::new(),
            origin,
        )
    }

    pub fn namespace(&self, name: &str) -> Option<&NamespaceLabels> {
        self.namespaces.get(name)
    }

    /// Namespaces whose `istio.io/rev` names `value` (or, for `default`, that have
    /// `istio-injection=enabled`), sorted.
    pub fn namespaces_selecting(&self, value: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .namespaces
            .iter()
            .filter(|(_, labels)| labels.selected_value() == Some(value))
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        names
    }
}
