//! The namespace watch of the cluster source, kept apart from the revision watches.
//!
//! Of a namespace only its name and the two labels the rules read are kept (item 8 of #15):
//! each object is cut down as it arrives, during the first list too, so neither the watch
//! cache nor the initial list holds whole object metadata (managed fields, annotations). The
//! names and labels live in a persistent map ([`Namespaces`]); a change updates it in
//! O(log n) and publishes a snapshot that shares the revision part and every other namespace
//! with the one before, instead of rebuilding the whole snapshot.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;

use crate::core::labels::NamespaceLabels;
use crate::core::mapping;
use crate::core::namespaces::Namespaces;
use crate::core::snapshot::Snapshot;
use crate::metrics::Metrics;
use crate::sources::SharedSnapshot;

use super::Shared;

/// The namespaces as the watch last saw them, and whether a snapshot with revisions has been
/// published yet (before that, a namespace change has nothing to publish into).
#[derive(Debug, Default)]
pub(super) struct NamespaceCache {
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    namespaces: Namespaces,
    published: bool,
}

/// What one watch event does to the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NamespaceChange {
    /// A complete list (the first sync or a re-list): replaces what was known.
    Reset(Namespaces),
    Upsert(String, NamespaceLabels),
    Remove(String),
}

impl NamespaceCache {
    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // Each change is one whole map operation; a poisoned lock holds a consistent map.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes a snapshot of freshly built revisions with the current namespaces; returns
    /// how many namespaces it has. Both publishers hold the cache's lock while they swap, so
    /// neither can overwrite the other's newer part.
    pub(super) fn publish_revisions(&self, mut next: Snapshot, shared: &SharedSnapshot) -> usize {
        let mut state = self.lock();
        next.namespaces = state.namespaces.clone();
        shared.store(next);
        state.published = true;
        state.namespaces.len()
    }

    /// Applies one change; when it changed anything and revisions were published, publishes
    /// the current snapshot's revisions with the new namespaces. Returns whether it published.
    pub(super) fn apply(&self, change: NamespaceChange, shared: &SharedSnapshot) -> bool {
        let mut state = self.lock();
        let changed = match change {
            NamespaceChange::Reset(all) => {
                let changed = state.namespaces != all;
                state.namespaces = all;
                changed
            }
            NamespaceChange::Upsert(name, labels) => state.namespaces.insert(&name, labels),
            NamespaceChange::Remove(name) => state.namespaces.remove(&name),
        };
        if !(changed && state.published) {
            return false;
        }
        let next = shared.load().with_namespaces(state.namespaces.clone());
        shared.store(next);
        true
    }

    #[cfg(test)]
    fn namespaces(&self) -> Namespaces {
        self.lock().namespaces.clone()
    }
}

/// A namespace cut down to what the rules read: its name and injection labels.
fn compact(ns: &PartialObjectMeta<Namespace>) -> Option<(String, NamespaceLabels)> {
    Some((
        ns.metadata.name.clone()?,
        mapping::namespace_labels(&ns.metadata),
    ))
}

/// Follows the namespace watch into `cache`, publishing each change into `snapshot`.
pub(super) async fn follow<S>(
    stream: S,
    shared: Arc<Shared>,
    index: usize,
    metrics: Metrics,
    snapshot: Arc<SharedSnapshot>,
) where
    S: Stream<Item = Result<Event<PartialObjectMeta<Namespace>>, watcher::Error>> + Send,
{
    let stream = stream.default_backoff();
    futures::pin_mut!(stream);
    // The list in progress, already cut down; swapped in whole when it is complete.
    let mut listing = Namespaces::default();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, watch = index, "namespace watch failed; retrying with backoff, last snapshot keeps serving");
                Shared::set_flag(&shared.failing, index, true);
                metrics.snapshot_update("error");
                continue;
            }
        };
        Shared::set_flag(&shared.failing, index, false);
        let change = match event {
            Event::Init => {
                listing = Namespaces::default();
                None
            }
            Event::InitApply(ns) => {
                if let Some((name, labels)) = compact(&ns) {
                    listing.insert(&name, labels);
                }
                None
            }
            Event::InitDone => {
                Shared::set_flag(&shared.synced, index, true);
                Some(NamespaceChange::Reset(std::mem::take(&mut listing)))
            }
            Event::Apply(ns) => compact(&ns).map(|(n, l)| NamespaceChange::Upsert(n, l)),
            Event::Delete(ns) => ns.metadata.name.map(NamespaceChange::Remove),
        };
        let listed = matches!(change, Some(NamespaceChange::Reset(_)));
        if let Some(change) = change {
            shared.namespaces.apply(change, &snapshot);
        }
        if !Shared::any(&shared.failing) {
            *shared.last_good.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
        if listed {
            // The first publication of revisions waits for every watch to have listed.
            shared.changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::revisions::{MeshSettings, Revision, RevisionTable};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn labels(rev: &str) -> NamespaceLabels {
        NamespaceLabels {
            injection: None,
            rev: Some(rev.into()),
        }
    }

    fn revisions() -> Snapshot {
        let mesh = MeshSettings::default();
        let table =
            RevisionTable::new([Revision::new("asm-1-23", "img", &mesh)], []).expect("table");
        Snapshot::new(table, mesh, Namespaces::default(), "cluster")
    }

    #[test]
    fn nothing_is_published_before_the_revisions() {
        let cache = NamespaceCache::default();
        let shared = SharedSnapshot::new(Snapshot::empty("syncing"));
        let listed: Namespaces = [("a".to_owned(), labels("x"))].into_iter().collect();
        assert!(!cache.apply(NamespaceChange::Reset(listed), &shared));
        assert!(shared.load().namespaces.is_empty());
        assert_eq!(cache.publish_revisions(revisions(), &shared), 1);
        let published = shared.load();
        assert_eq!(published.namespace("a"), Some(&labels("x")));
        assert!(published.table.revision("asm-1-23").is_some());
    }

    #[test]
    fn each_change_publishes_the_same_revisions_with_new_namespaces() {
        let cache = NamespaceCache::default();
        let shared = SharedSnapshot::new(Snapshot::empty("syncing"));
        cache.publish_revisions(revisions(), &shared);
        let before = shared.load();
        assert!(cache.apply(
            NamespaceChange::Upsert("shop".into(), labels("prod")),
            &shared
        ));
        assert!(
            !cache.apply(
                NamespaceChange::Upsert("shop".into(), labels("prod")),
                &shared
            ),
            "an update that leaves the labels as they were publishes nothing"
        );
        let after = shared.load();
        assert_eq!(after.namespace("shop"), Some(&labels("prod")));
        assert!(
            before.namespace("shop").is_none(),
            "requests in flight keep theirs"
        );
        assert!(
            std::sync::Arc::ptr_eq(
                after.table.revision("asm-1-23").expect("revision"),
                before.table.revision("asm-1-23").expect("revision")
            ),
            "the revisions (and their injectors) are shared, not rebuilt"
        );
        assert!(cache.apply(NamespaceChange::Remove("shop".into()), &shared));
        assert!(shared.load().namespace("shop").is_none());
        assert!(!cache.apply(NamespaceChange::Remove("shop".into()), &shared));
        let relisted: Namespaces = [("c".to_owned(), labels("y"))].into_iter().collect();
        assert!(cache.apply(NamespaceChange::Reset(relisted.clone()), &shared));
        assert_eq!(cache.namespaces(), relisted);
        assert_eq!(shared.load().namespaces, relisted);
    }

    #[test]
    fn compact_keeps_the_name_and_the_injection_labels_only() {
        let ns = PartialObjectMeta::<Namespace> {
            types: None,
            metadata: ObjectMeta {
                name: Some("shop".into()),
                labels: Some(BTreeMap::from([
                    ("istio.io/rev".to_owned(), "prod".to_owned()),
                    ("team".to_owned(), "web".to_owned()),
                ])),
                annotations: Some(BTreeMap::from([("a".to_owned(), "b".repeat(4096))])),
                ..ObjectMeta::default()
            },
            _phantom: std::marker::PhantomData,
        };
        assert_eq!(compact(&ns), Some(("shop".to_owned(), labels("prod"))));
        let unnamed = PartialObjectMeta::<Namespace> {
            types: None,
            metadata: ObjectMeta::default(),
            _phantom: std::marker::PhantomData,
        };
        assert_eq!(compact(&unnamed), None);
    }
}
