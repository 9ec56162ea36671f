//! The immutable `Snapshot` every request is judged against.
//!
//! Whoever learns something new (a config file reload, a cluster watch event) publishes a new
//! snapshot and swaps it in atomically; a request loads one `Arc` and never waits. The
//! revision part (table, mesh, pre-rendered sidecars) and the namespaces are published
//! separately: a namespace label change shares every revision and every other namespace with
//! the snapshot before it ([`Snapshot::with_namespaces`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::labels::NamespaceLabels;
use super::namespaces::Namespaces;
use super::revisions::{MeshSettings, RevisionTable};
use super::sidecar::RenderedSidecar;

#[derive(Debug)]
pub struct Snapshot {
    pub table: RevisionTable,
    pub mesh: MeshSettings,
    /// Namespace name → its injection labels.
    pub namespaces: Namespaces,
    /// Where this snapshot came from, for logs and `/readyz`.
    pub origin: String,
    sidecars: Arc<HashMap<String, RenderedSidecar>>,
}

impl Snapshot {
    /// Builds a snapshot and pre-renders every revision's sidecar.
    pub fn new(
        table: RevisionTable,
        mesh: MeshSettings,
        namespaces: impl Into<Namespaces>,
        origin: impl Into<String>,
    ) -> Self {
        let sidecars = table
            .revisions()
            .map(|rev| (rev.name.clone(), RenderedSidecar::new(rev.clone(), &mesh)))
            .collect();
        Snapshot {
            table,
            mesh,
            namespaces: namespaces.into(),
            origin: origin.into(),
            sidecars: Arc::new(sidecars),
        }
    }

    /// A snapshot with nothing installed (before the first sync).
    pub fn empty(origin: impl Into<String>) -> Self {
        Snapshot::new(
            RevisionTable::default(),
            MeshSettings::default(),
            Namespaces::default(),
            origin,
        )
    }

    /// The same revisions with other namespaces. Nothing is rendered again: the cost is that
    /// of cloning the revision table's handles, independent of the number of namespaces.
    pub fn with_namespaces(&self, namespaces: Namespaces) -> Snapshot {
        Snapshot {
            table: self.table.clone(),
            mesh: self.mesh.clone(),
            namespaces,
            origin: self.origin.clone(),
            sidecars: self.sidecars.clone(),
        }
    }

    pub fn namespace(&self, name: &str) -> Option<&NamespaceLabels> {
        self.namespaces.get(name)
    }

    pub fn sidecar(&self, revision: &str) -> Option<&RenderedSidecar> {
        self.sidecars.get(revision)
    }

    /// Namespaces whose `istio.io/rev` names `value` (or, for `default`, that have
    /// `istio-injection=enabled`), sorted.
    pub fn namespaces_selecting(&self, value: &str) -> Vec<&str> {
        self.namespaces.selecting(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::revisions::Revision;

    fn snapshot() -> Snapshot {
        let mesh = MeshSettings::default();
        let rev = Revision::new("asm-1-23", "img:1.23", &mesh);
        let table = RevisionTable::new(vec![rev], [("prod".to_owned(), "asm-1-23".to_owned())])
            .expect("table");
        let namespaces = HashMap::from([(
            "shop".to_owned(),
            NamespaceLabels {
                injection: None,
                rev: Some("prod".into()),
            },
        )]);
        Snapshot::new(table, mesh, namespaces, "test")
    }

    #[test]
    fn with_namespaces_keeps_the_revisions_and_their_rendered_sidecars() {
        let before = snapshot();
        let mut namespaces = before.namespaces.clone();
        namespaces.insert(
            "web",
            NamespaceLabels {
                injection: Some("enabled".into()),
                rev: None,
            },
        );
        let after = before.with_namespaces(namespaces);
        assert_eq!(after.table, before.table);
        assert_eq!(after.origin, "test");
        assert!(std::ptr::eq(
            after.sidecar("asm-1-23").expect("rendered"),
            before.sidecar("asm-1-23").expect("rendered")
        ));
        assert_eq!(after.namespaces_selecting("default"), ["web"]);
        assert_eq!(after.namespaces_selecting("prod"), ["shop"]);
        assert!(
            before.namespace("web").is_none(),
            "the old snapshot is unchanged"
        );
    }
}
