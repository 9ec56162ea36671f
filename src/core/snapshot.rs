//! The immutable `Snapshot` every request is judged against.
//!
//! Whoever learns something new (a config file reload, a cluster watch event) publishes a new
//! snapshot and swaps it in atomically; a request loads one `Arc` and never waits. The
//! revision part (the table of revisions with their injectors, and the mesh) and the
//! namespaces are published
//! separately: a namespace label change shares every revision and every other namespace with
//! the snapshot before it ([`Snapshot::with_namespaces`]).

use super::labels::NamespaceLabels;
use super::namespaces::Namespaces;
use super::revisions::{MeshSettings, RevisionTable};

#[derive(Debug)]
pub struct Snapshot {
    pub table: RevisionTable,
    pub mesh: MeshSettings,
    /// Namespace name → its injection labels.
    pub namespaces: Namespaces,
    /// Where this snapshot came from, for logs and `/readyz`.
    pub origin: String,
}

impl Snapshot {
    /// Builds a snapshot (each revision's injector was built with its revision).
    pub fn new(
        table: RevisionTable,
        mesh: MeshSettings,
        namespaces: impl Into<Namespaces>,
        origin: impl Into<String>,
    ) -> Self {
        Snapshot {
            table,
            mesh,
            namespaces: namespaces.into(),
            origin: origin.into(),
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

    /// The same revisions with other namespaces. No injector is built again: the cost is that
    /// of cloning the revision table's handles, independent of the number of namespaces.
    pub fn with_namespaces(&self, namespaces: Namespaces) -> Snapshot {
        Snapshot {
            table: self.table.clone(),
            mesh: self.mesh.clone(),
            namespaces,
            origin: self.origin.clone(),
        }
    }

    pub fn namespace(&self, name: &str) -> Option<&NamespaceLabels> {
        self.namespaces.get(name)
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
    use std::collections::HashMap;

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
    fn with_namespaces_keeps_the_revisions_and_their_injectors() {
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
        let injector = |s: &Snapshot| {
            s.table
                .revision("asm-1-23")
                .and_then(|r| r.injector.as_ref().ok().cloned())
                .expect("the revision's injector")
        };
        assert!(std::sync::Arc::ptr_eq(
            &injector(&after),
            &injector(&before)
        ));
        assert_eq!(after.namespaces_selecting("default"), ["web"]);
        assert_eq!(after.namespaces_selecting("prod"), ["shop"]);
        assert!(
            before.namespace("web").is_none(),
            "the old snapshot is unchanged"
        );
    }
}
