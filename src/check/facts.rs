//! What the rules read of each pod, workload and namespace, worked out once.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::core::labels::PROXY_NAME;
use crate::core::labels::{self, NamespaceLabels};
use crate::core::messages::Selector;
use crate::core::pod::PodIn;
use crate::core::policy::Policy;
use crate::core::revisions::{RevisionTable, Stale};
use crate::core::snapshot::Snapshot;
use crate::inject::decide::{self, Decision};

/// What the webhook would do with a new pod of the same workload (the pod as its template
/// makes it: without the sidecar status of an earlier injection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fresh {
    Inject {
        revision: String,
        via_tag: Option<String>,
        selector: Selector,
    },
    Stale {
        stale: Stale,
        selector: Selector,
    },
    /// Not injected (opted out, not selected, system namespace, host network...).
    NotInjected,
}

impl Fresh {
    /// The revision a restart would give the pod.
    pub(super) fn target(&self) -> Option<&str> {
        match self {
            Fresh::Inject { revision, .. } => Some(revision),
            _ => None,
        }
    }
}

/// A pod's sidecar facts: whether it has one, its image, and the revision it was injected for.
pub(super) struct PodFacts<'p> {
    pub(super) pod: &'p Pod,
    pub(super) namespace: &'p str,
    pub(super) name: &'p str,
    pub(super) proxy_image: Option<&'p str>,
    pub(super) revision: Option<String>,
    /// The pod carries Istio's sidecar status annotation (some injector ran).
    pub(super) injected: bool,
    pub(super) fresh: Fresh,
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

    /// Running, outside the namespaces Istio never injects.
    pub(super) fn is_judged(&self) -> bool {
        self.is_running() && !labels::IGNORED_NAMESPACES.contains(&self.namespace)
    }

    pub(super) fn runs(&self, revision: &str) -> bool {
        self.revision.as_deref() == Some(revision)
    }

    /// The pod runs the revision a restart would give it.
    pub(super) fn on_target(&self) -> bool {
        self.proxy_image.is_some() && self.fresh.target().is_some_and(|t| self.runs(t))
    }
}

pub(super) fn pod_facts<'p>(pod: &'p Pod, snapshot: &Snapshot) -> PodFacts<'p> {
    pod_facts_under(pod, snapshot, &snapshot.table)
}

/// As [`pod_facts`], with what a restart would give judged under `table` (a planned tag move).
pub(super) fn pod_facts_under<'p>(
    pod: &'p Pod,
    snapshot: &Snapshot,
    table: &RevisionTable,
) -> PodFacts<'p> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    PodFacts {
        pod,
        namespace,
        name: pod.metadata.name.as_deref().unwrap_or_default(),
        proxy_image: proxy_image(pod.spec.as_ref()),
        revision: injected_revision(pod),
        injected: pod
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(labels::SIDECAR_STATUS)),
        fresh: fresh_pod(pod, namespace, snapshot, table),
    }
}

fn proxy_image(spec: Option<&PodSpec>) -> Option<&str> {
    spec.into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == PROXY_NAME)
        .and_then(|c| c.image.as_deref())
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

/// The decision for a new pod like `pod` under `table` (which may differ from the snapshot's,
/// for a planned tag move).
pub(super) fn fresh_pod(
    pod: &Pod,
    namespace: &str,
    snapshot: &Snapshot,
    table: &RevisionTable,
) -> Fresh {
    let mut metadata = pod.metadata.clone();
    if let Some(a) = metadata.annotations.as_mut() {
        a.remove(labels::SIDECAR_STATUS);
    }
    fresh_template(&metadata, pod.spec.as_ref(), namespace, snapshot, table)
}

/// The decision for a pod made from this template (a workload's, or a pod's own).
pub(super) fn fresh_template(
    metadata: &ObjectMeta,
    spec: Option<&PodSpec>,
    namespace: &str,
    snapshot: &Snapshot,
    table: &RevisionTable,
) -> Fresh {
    let value = serde_json::json!({"metadata": metadata, "spec": spec});
    let raw = value.to_string();
    let Ok(parsed) = PodIn::parse(&raw) else {
        return Fresh::NotInjected;
    };
    let no_labels = NamespaceLabels::default();
    let ns = snapshot.namespace(namespace).unwrap_or(&no_labels);
    match decide::decide(&parsed, namespace, ns, table, &Policy::default()).decision {
        Decision::Inject {
            resolved, selector, ..
        } => Fresh::Inject {
            revision: resolved.revision.name.clone(),
            via_tag: resolved.via_tag.map(str::to_owned),
            selector,
        },
        Decision::Stale { stale, selector } => Fresh::Stale { stale, selector },
        _ => Fresh::NotInjected,
    }
}

/// The workload that owns a pod, as `Kind/namespace/name` (a bare pod is its own).
pub(super) fn workload_of(pod: &Pod) -> String {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let hash = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"));
    match owner {
        Some(o) if o.kind == "ReplicaSet" => {
            match hash.and_then(|h| o.name.strip_suffix(&format!("-{h}"))) {
                Some(deployment) => format!("Deployment/{ns}/{deployment}"),
                None => format!("ReplicaSet/{ns}/{}", o.name),
            }
        }
        Some(o) => format!("{}/{ns}/{}", o.kind, o.name),
        None => format!(
            "Pod/{ns}/{}",
            pod.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

/// The containers of a spec that are the application's, not Istio's.
pub(super) fn app_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| {
            !matches!(
                c.name.as_str(),
                PROXY_NAME | "istio-init" | "istio-validation"
            )
        })
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

/// The namespaces whose `istio.io/rev` label resolves to `revision` while `istio-injection`
/// overrides it: fixing the conflict as advised would put them on it.
pub(super) fn namespaces_overridden_onto(snapshot: &Snapshot, revision: &str) -> Vec<String> {
    sorted_namespaces(snapshot)
        .into_iter()
        .filter(|(_, ns)| ns.has_conflict())
        .filter(|(_, ns)| {
            ns.rev
                .as_deref()
                .and_then(|v| snapshot.table.resolve(v).ok())
                .is_some_and(|r| r.revision.name == revision)
        })
        .map(|(n, _)| n.to_owned())
        .collect()
}

/// A namespace's labels with the one the API server always sets.
pub(super) fn namespace_labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    let mut labels = meta.labels.clone().unwrap_or_default();
    if let Some(name) = &meta.name {
        labels
            .entry("kubernetes.io/metadata.name".into())
            .or_insert_with(|| name.clone());
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{pod, snapshot, PodBuilder as _};
    use crate::core::labels::{ISTIO_INJECTION, ISTIO_REV, SIDECAR_INJECT};

    fn cluster() -> Snapshot {
        snapshot(
            &[("asm-1-22", "img:1.22"), ("asm-1-23", "img:1.23")],
            &[("default", "asm-1-22"), ("canary", "asm-1-23")],
            &[
                ("shop", &[(ISTIO_REV, "canary")]),
                ("plain", &[]),
                ("off", &[(ISTIO_INJECTION, "disabled")]),
            ],
        )
    }

    #[test]
    fn the_status_annotation_names_the_revision_before_the_rev_annotation() {
        let p = pod("shop", "web")
            .annotation(labels::ISTIO_REV, "asm-1-22")
            .injected("asm-1-23", "img:1.23");
        let facts = pod_facts(&p, &cluster());
        assert_eq!(facts.revision.as_deref(), Some("asm-1-23"));
        assert_eq!(facts.proxy_image, Some("img:1.23"));
        assert!(facts.injected);
        assert_eq!(facts.object(), "Pod/shop/web");
    }

    #[test]
    fn the_rev_annotation_stands_in_when_the_status_is_not_istios_json() {
        let p = pod("shop", "web")
            .annotation(labels::SIDECAR_STATUS, "not json")
            .annotation(labels::ISTIO_REV, "asm-1-22");
        assert_eq!(
            pod_facts(&p, &cluster()).revision.as_deref(),
            Some("asm-1-22")
        );
        let bare = pod("shop", "bare");
        let facts = pod_facts(&bare, &cluster());
        assert_eq!(facts.revision, None);
        assert!(!facts.injected);
    }

    #[test]
    fn a_native_sidecar_counts_and_a_pod_without_a_namespace_is_in_default() {
        let mut p = pod("shop", "web").native_proxy("img:1.27");
        p.metadata.namespace = None;
        let facts = pod_facts(&p, &cluster());
        assert_eq!(facts.proxy_image, Some("img:1.27"));
        assert_eq!(facts.namespace, "default");
        assert_eq!(pod_facts(&pod("shop", "web"), &cluster()).proxy_image, None);
    }

    #[test]
    fn finished_pods_are_not_running_and_system_pods_are_not_judged() {
        let snap = cluster();
        assert!(pod_facts(&pod("shop", "web"), &snap).is_running());
        assert!(pod_facts(&pod("shop", "web").phase("Running"), &snap).is_running());
        assert!(!pod_facts(&pod("shop", "job").phase("Succeeded"), &snap).is_running());
        assert!(!pod_facts(&pod("shop", "job").phase("Failed"), &snap).is_running());
        assert!(!pod_facts(&pod("kube-system", "dns"), &snap).is_judged());
    }

    #[test]
    fn fresh_is_what_a_restart_would_get_whatever_the_pod_runs_now() {
        let snap = cluster();
        let old = pod("shop", "web").injected("asm-1-22", "img:1.22");
        let facts = pod_facts(&old, &snap);
        assert_eq!(facts.fresh.target(), Some("asm-1-23"));
        assert!(
            matches!(&facts.fresh, Fresh::Inject { via_tag: Some(t), .. } if t == "canary"),
            "{:?}",
            facts.fresh
        );
        assert!(!facts.on_target());
        let new = pod("shop", "web").injected("asm-1-23", "img:1.23");
        assert!(pod_facts(&new, &snap).on_target());
        let plain = pod("plain", "web");
        assert_eq!(pod_facts(&plain, &snap).fresh, Fresh::NotInjected);
        let asks = pod("plain", "web").label(SIDECAR_INJECT, "true");
        assert_eq!(pod_facts(&asks, &snap).fresh.target(), Some("asm-1-22"));
        let stale = pod("plain", "web").label(ISTIO_REV, "asm-1-19");
        assert!(matches!(
            pod_facts(&stale, &snap).fresh,
            Fresh::Stale {
                selector: Selector::PodRev,
                ..
            }
        ));
    }

    #[test]
    fn the_workload_is_the_deployment_the_statefulset_or_the_pod_itself() {
        let p = pod("shop", "web-5d8f-a").of_deployment("web", "5d8f");
        assert_eq!(workload_of(&p), "Deployment/shop/web");
        let mut rs = pod("shop", "x");
        rs.metadata.owner_references = p.metadata.owner_references.clone();
        assert_eq!(workload_of(&rs), "ReplicaSet/shop/web-5d8f");
        assert_eq!(workload_of(&pod("shop", "bare")), "Pod/shop/bare");
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
                (
                    "f-overridden",
                    &[(ISTIO_INJECTION, "enabled"), (ISTIO_REV, "canary")],
                ),
            ],
        );
        assert_eq!(
            namespaces_on(&snap, "asm-1-22"),
            ["a-enabled", "b-direct", "f-overridden"]
        );
        assert_eq!(namespaces_on(&snap, "asm-1-23"), ["c-canary"]);
        assert!(namespaces_on(&snap, "asm-1-21").is_empty());
        assert_eq!(
            namespaces_overridden_onto(&snap, "asm-1-23"),
            ["f-overridden"]
        );
        assert!(namespaces_overridden_onto(&snap, "asm-1-22").is_empty());
    }

    #[test]
    fn a_namespace_always_has_its_name_label() {
        let meta = ObjectMeta {
            name: Some("shop".into()),
            ..ObjectMeta::default()
        };
        assert_eq!(
            namespace_labels(&meta)
                .get("kubernetes.io/metadata.name")
                .map(String::as_str),
            Some("shop")
        );
    }
}
