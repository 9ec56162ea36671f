//! The one question the hot path may ask outside the snapshot: the labels of a namespace the
//! snapshot does not know yet. An interface only; the cluster source implements it.

use std::future::Future;
use std::pin::Pin;

use super::labels::NamespaceLabels;

/// Looks up one namespace's labels when the cache does not know it yet (a pod created right
/// after its namespace, before the watch delivered it).
pub trait NamespaceLookup: Send + Sync + std::fmt::Debug {
    fn labels(&self, name: String)
        -> Pin<Box<dyn Future<Output = Option<NamespaceLabels>> + Send>>;
}
