//! Rendering manifests through revhook's injection, as the tests read them: the library's
//! offline path (the same engine as the webhook), with YAML documents as `serde_json::Value`.

use revhook::core::policy::Policy;
use revhook::core::snapshot::Snapshot;
use revhook::core::verdict::Verdict;
use serde_json::Value;

pub fn at<'v>(doc: &'v Value, path: &[&str]) -> &'v Value {
    path.iter().fold(doc, |v, k| &v[*k])
}

/// YAML documents of a file's text.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    revhook::offline::documents(text).expect("YAML")
}

/// The verdict for a manifest's pod, and the manifest with the patch applied; the namespace's
/// labels come from the snapshot.
pub fn render_with_verdict(doc: &Value, snapshot: &Snapshot) -> (Option<Verdict>, Value) {
    revhook::offline::render(doc, snapshot, &Policy::default(), None).expect("renders")
}

pub fn render_manifest(doc: &Value, snapshot: &Snapshot) -> Value {
    render_with_verdict(doc, snapshot).1
}
