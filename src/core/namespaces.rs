//! Every namespace's name and injection labels, in a persistent map.
//!
//! A cluster has up to 100,000 namespaces, and their labels change one at a time. The map is a
//! persistent B-tree (`imbl::OrdMap`): a clone shares every node, and an insert or a removal
//! copies only the O(log n) nodes on its path. So a label change publishes a new snapshot with
//! work proportional to the change, while the snapshots that requests still hold keep the old
//! nodes. Keys and values are `Arc`s, so the nodes a change copies clone in O(1) per entry.

use std::collections::HashMap;
use std::sync::Arc;

use imbl::OrdMap;

use super::labels::NamespaceLabels;

/// Namespace name → its injection labels, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    map: OrdMap<Arc<str>, Arc<NamespaceLabels>>,
}

impl Namespaces {
    pub fn get(&self, name: &str) -> Option<&NamespaceLabels> {
        self.map.get(name).map(Arc::as_ref)
    }

    /// Sets a namespace's labels; returns whether anything changed (an update that only moved
    /// other metadata changes nothing here).
    pub fn insert(&mut self, name: &str, labels: NamespaceLabels) -> bool {
        if self.get(name) == Some(&labels) {
            return false;
        }
        self.map.insert(Arc::from(name), Arc::new(labels));
        true
    }

    /// Forgets a namespace; returns whether it was known.
    pub fn remove(&mut self, name: &str) -> bool {
        self.map.remove(name).is_some()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every namespace, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &NamespaceLabels)> {
        self.map.iter().map(|(n, l)| (n.as_ref(), l.as_ref()))
    }

    /// Namespaces whose labels select `value` ([`NamespaceLabels::selected_value`]), sorted.
    pub fn selecting(&self, value: &str) -> Vec<&str> {
        self.iter()
            .filter(|(_, labels)| labels.selected_value() == Some(value))
            .map(|(name, _)| name)
            .collect()
    }
}

impl FromIterator<(String, NamespaceLabels)> for Namespaces {
    fn from_iter<I: IntoIterator<Item = (String, NamespaceLabels)>>(iter: I) -> Self {
        Namespaces {
            map: iter
                .into_iter()
                .map(|(n, l)| (Arc::from(n), Arc::new(l)))
                .collect(),
        }
    }
}

impl From<HashMap<String, NamespaceLabels>> for Namespaces {
    fn from(map: HashMap<String, NamespaceLabels>) -> Self {
        map.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(rev: Option<&str>, injection: Option<&str>) -> NamespaceLabels {
        NamespaceLabels {
            injection: injection.map(Into::into),
            rev: rev.map(Into::into),
        }
    }

    #[test]
    fn insert_get_remove() {
        let mut ns = Namespaces::default();
        assert!(ns.is_empty());
        assert!(ns.insert("shop", labels(Some("prod-stable"), None)));
        assert!(
            !ns.insert("shop", labels(Some("prod-stable"), None)),
            "same labels: no change"
        );
        assert!(ns.insert("shop", labels(Some("prod-canary"), None)));
        assert_eq!(ns.get("shop"), Some(&labels(Some("prod-canary"), None)));
        assert_eq!(ns.len(), 1);
        assert!(ns.remove("shop"));
        assert!(!ns.remove("shop"));
        assert_eq!(ns.get("shop"), None);
    }

    #[test]
    fn a_clone_keeps_its_state_when_the_original_changes() {
        let mut now: Namespaces = (0..1000)
            .map(|i| (format!("ns-{i:04}"), labels(Some("a"), None)))
            .collect();
        let published = now.clone();
        now.insert("ns-0500", labels(Some("b"), None));
        now.remove("ns-0001");
        now.insert("new", labels(None, Some("enabled")));
        assert_eq!(published.get("ns-0500"), Some(&labels(Some("a"), None)));
        assert!(published.get("ns-0001").is_some());
        assert!(published.get("new").is_none());
        assert_eq!(published.len(), 1000);
        assert_eq!(now.get("ns-0500"), Some(&labels(Some("b"), None)));
        assert_eq!(now.len(), 1000);
    }

    #[test]
    fn selecting_is_sorted_and_follows_istio() {
        let ns: Namespaces = [
            ("zeta", labels(Some("prod"), None)),
            ("alpha", labels(Some("prod"), None)),
            ("legacy", labels(None, Some("enabled"))),
            ("both", labels(Some("prod"), Some("enabled"))),
            ("off", labels(Some("prod"), Some("disabled"))),
            ("plain", labels(None, None)),
        ]
        .into_iter()
        .map(|(n, l)| (n.to_owned(), l))
        .collect();
        assert_eq!(ns.selecting("prod"), ["alpha", "zeta"]);
        assert_eq!(ns.selecting("default"), ["both", "legacy"]);
        assert!(ns.selecting("other").is_empty());
        let names: Vec<&str> = ns.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["alpha", "both", "legacy", "off", "plain", "zeta"]);
    }

    #[test]
    fn from_a_hash_map() {
        let map = HashMap::from([("a".to_owned(), labels(Some("r"), None))]);
        let ns = Namespaces::from(map);
        assert_eq!(ns.get("a"), Some(&labels(Some("r"), None)));
    }
}
