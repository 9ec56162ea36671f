//! What the rules read of each pod and namespace, worked out once.

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::core::labels::{self, NamespaceLabels};
use crate::core::sidecar::PROXY_NAME;
use crate::core::snapshot::Snapshot;

/// A pod's sidecar facts: whether it has one, its image, and the revision it was injected for.
pub(super) struct PodFacts<'p> {
    pub(super) pod: &'p Pod,
    pub(super) namespace: &'p str,
    pub(super) name: &'p str,
    pub(super) proxy_image: Option<&'p str>,
    pub(super) revision: Option<String>,
}

impl PodFacts<'_> {
    pub(super) fn object(&self) -> String {
        format!("Pod/{}/{}", self.namespace, self.name)
    }

    /// Pods that finished keep their old sidecar forever; only running ones need a restart.
    pub(super) fn is_running(&self) -> bool {
        !matches!(
            self.pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    }

    pub(super) fn runs(&self, revision: &str) -> bool {
        self.revision.as_deref() == Some(revision)
    }
}

pub(super) fn pod_facts(pod: &Pod) -> PodFacts<'_> {
    let spec = pod.spec.as_ref();
    let proxy_image = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == PROXY_NAME)
        .and_then(|c| c.image.as_deref());
    PodFacts {
        pod,
        namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
        name: pod.metadata.name.as_deref().unwrap_or_default(),
        proxy_image,
        revision: injected_revision(pod),
    }
}

/// The revision in the sidecar status annotation, else the pod's `istio.io/rev` annotation.
fn injected_revision(pod: &Pod) -> Option<String> {
    let annotations = pod.metadata.annotations.as_ref();
    annotations
        .and_then(|a| a.get(labels::SIDECAR_STATUS))
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| v["revision"].as_str().map(str::to_owned))
        .or_else(|| annotations.and_then(|a| a.get(labels::ISTIO_REV)).cloned())
}

/// The namespaces by name, so findings come out in a stable order.
pub(super) fn sorted_namespaces(snapshot: &Snapshot) -> Vec<(&str, &NamespaceLabels)> {
    // The snapshot keeps them sorted by name.
    snapshot.namespaces.iter().collect()
}

/// The namespaces whose labels resolve to `revision` (directly or through a tag), sorted.
pub(super) fn namespaces_on(snapshot: &Snapshot, revision: &str) -> Vec<String> {
    sorted_namespaces(snapshot)
        .into_iter()
        .filter(|(_, ns)| {
            ns.selected_value()
                .and_then(|v| snapshot.table.resolve(v).ok())
                .is_some_and(|r| r.revision.name == revision)
        })
        .map(|(n, _)| (*n).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{pod, snapshot, PodBuilder as _};

    #[test]
    fn the_status_annotation_names_the_revision_before_the_rev_annotation() {
        let p = pod("shop", "web")
            .annotation(labels::ISTIO_REV, "asm-1-22")
            .injected("asm-1-23", "img:1.23");
        let facts = pod_facts(&p);
        assert_eq!(facts.revision.as_deref(), Some("asm-1-23"));
        assert_eq!(facts.proxy_image, Some("img:1.23"));
        assert_eq!(facts.object(), "Pod/shop/web");
    }

    #[test]
    fn the_rev_annotation_stands_in_when_the_status_is_not_istios_json() {
        let p = pod("shop", "web")
            .annotation(labels::SIDECAR_STATUS, "not json")
            .annotation(labels::ISTIO_REV, "asm-1-22");
        assert_eq!(pod_facts(&p).revision.as_deref(), Some("asm-1-22"));
        assert_eq!(pod_facts(&pod("shop", "bare")).revision, None);
    }

    #[test]
    fn a_native_sidecar_counts_and_a_pod_without_a_namespace_is_in_default() {
        let mut p = pod("shop", "web").native_proxy("img:1.27");
        p.metadata.namespace = None;
        let facts = pod_facts(&p);
        assert_eq!(facts.proxy_image, Some("img:1.27"));
        assert_eq!(facts.namespace, "default");
        assert_eq!(pod_facts(&pod("shop", "web")).proxy_image, None);
    }

    #[test]
    fn finished_pods_are_not_running() {
        assert!(pod_facts(&pod("shop", "web")).is_running());
        assert!(pod_facts(&pod("shop", "web").phase("Running")).is_running());
        assert!(!pod_facts(&pod("shop", "job").phase("Succeeded")).is_running());
        assert!(!pod_facts(&pod("shop", "job").phase("Failed")).is_running());
    }

    #[test]
    fn namespaces_on_a_revision_count_tags_and_injection_enabled() {
        let snap = snapshot(
            &[("asm-1-22", "img:1.22"), ("asm-1-23", "img:1.23")],
            &[("default", "asm-1-22"), ("canary", "asm-1-23")],
            &[
                ("b-direct", &[(labels::ISTIO_REV, "asm-1-22")]),
                ("a-enabled", &[(labels::ISTIO_INJECTION, "enabled")]),
                ("c-canary", &[(labels::ISTIO_REV, "canary")]),
                ("d-disabled", &[(labels::ISTIO_INJECTION, "disabled")]),
                ("e-stale", &[(labels::ISTIO_REV, "asm-1-21")]),
            ],
        );
        assert_eq!(namespaces_on(&snap, "asm-1-22"), ["a-enabled", "b-direct"]);
        assert_eq!(namespaces_on(&snap, "asm-1-23"), ["c-canary"]);
        assert!(namespaces_on(&snap, "asm-1-21").is_empty());
    }
}
