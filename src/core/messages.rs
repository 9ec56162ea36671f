//! What a person reads when a pod or namespace is refused or warned: what is wrong, what is
//! installed, and the command that fixes it.

use k8s_openapi::api::core::v1::Pod;

use super::labels::NamespaceLabels;
use super::revisions::Stale;

/// Who selected the value that was resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Namespace label `istio-injection=enabled` (the `default` tag).
    NamespaceInjection(String),
    /// Namespace label `istio.io/rev`.
    NamespaceRev(String),
    /// Namespace label `istio.io/rev` of a namespace being created (it cannot be relabelled
    /// yet: the fix is to create it with a label that resolves).
    NewNamespace(String),
    /// Pod label `istio.io/rev`.
    PodRev,
    /// Pod label (or annotation) `sidecar.istio.io/inject=true` alone (the `default` tag).
    PodInject,
}

pub fn conflict_warning(namespace: &str, ns: &NamespaceLabels) -> String {
    format!(
        "namespace {namespace:?} has both istio-injection={} and istio.io/rev={}; istio-injection wins (as in Istio). Remove one: kubectl label namespace {namespace} istio-injection-",
        ns.injection.as_deref().unwrap_or_default(),
        ns.rev.as_deref().unwrap_or_default(),
    )
}

/// The message a person sees when the selected revision is stale: what, where, and the fix.
pub fn stale_message(stale: &Stale, selector: &Selector) -> String {
    // A label may name a tag or a revision (the likely meant one first); istioctl's
    // `--revision` must name a revision.
    let target = stale.fix_target().unwrap_or("<installed revision>");
    let revision = stale.suggestion().unwrap_or("<installed revision>");
    match selector {
        Selector::NamespaceRev(ns) => format!(
            "namespace {ns:?} selects {}; {}. Relabel with: kubectl label namespace {ns} istio.io/rev={target} --overwrite",
            stale.what(),
            stale.inventory()
        ),
        Selector::NewNamespace(ns) => format!(
            "namespace {ns:?} would select {}; {}. Create it with istio.io/rev={target} in its metadata.labels, or: kubectl create namespace {ns} && kubectl label namespace {ns} istio.io/rev={target}",
            stale.what(),
            stale.inventory()
        ),
        Selector::NamespaceInjection(ns) => format!(
            "namespace {ns:?} has istio-injection=enabled, which selects {}; {}. Point the default tag at a revision (istioctl tag set default --revision {revision}) or relabel with: kubectl label namespace {ns} istio-injection- istio.io/rev={target}",
            stale.what(),
            stale.inventory()
        ),
        Selector::PodRev => format!(
            "pod label istio.io/rev selects {}; {}. Set the label istio.io/rev={target} on the pod (or on its workload's pod template)",
            stale.what(),
            stale.inventory()
        ),
        Selector::PodInject => format!(
            "pod label sidecar.istio.io/inject=true selects the default tag: {}; {}. Point the default tag at a revision: istioctl tag set default --revision {revision}",
            stale.what(),
            stale.inventory()
        ),
    }
}

pub fn conflict_message(namespace: &str) -> String {
    format!(
        "namespace {namespace:?} has both istio-injection and istio.io/rev labels, so the control plane that injects is ambiguous; keep one: kubectl label namespace {namespace} istio-injection-"
    )
}

/// `kubectl rollout restart` for the workload that owns a pod (a bare pod: delete it).
pub fn restart_command(pod: &Pod) -> String {
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
            let name = hash
                .and_then(|h| o.name.strip_suffix(&format!("-{h}")))
                .unwrap_or(&o.name);
            format!("kubectl rollout restart deployment/{name} -n {ns}")
        }
        Some(o) if o.kind == "StatefulSet" || o.kind == "DaemonSet" => {
            format!(
                "kubectl rollout restart {}/{} -n {ns}",
                o.kind.to_ascii_lowercase(),
                o.name
            )
        }
        _ => format!(
            "kubectl delete pod {} -n {ns}",
            pod.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::revisions::{MeshSettings, Revision, RevisionTable};

    fn stale(value: &str) -> Stale {
        let mesh = MeshSettings::default();
        let table = RevisionTable::new(
            [Revision::new("asm-1-23", "img:1.23", &mesh)],
            [("prod-stable".to_owned(), "asm-1-23".to_owned())],
        )
        .expect("table");
        table.resolve(value).expect_err("stale")
    }

    #[test]
    fn a_typo_is_fixed_with_the_name_it_was_meant_to_be() {
        let message = stale_message(
            &stale("prod-stabel"),
            &Selector::NamespaceRev("shop".into()),
        );
        assert!(
            message.contains("(did you mean \"prod-stable\"?)"),
            "{message}"
        );
        assert!(
            message.ends_with("kubectl label namespace shop istio.io/rev=prod-stable --overwrite"),
            "{message}"
        );
    }

    #[test]
    fn a_namespace_being_created_is_told_how_to_create_it_not_to_relabel_it() {
        let message = stale_message(&stale("asm-1-20"), &Selector::NewNamespace("newns".into()));
        assert!(!message.contains("--overwrite"), "{message}");
        assert!(
            message.contains("kubectl create namespace newns && kubectl label namespace newns istio.io/rev=asm-1-23"),
            "{message}"
        );
    }

    #[test]
    fn a_pod_label_fix_names_the_pod_and_its_template() {
        let message = stale_message(&stale("asm-1-20"), &Selector::PodRev);
        assert!(
            message.ends_with("Set the label istio.io/rev=asm-1-23 on the pod (or on its workload's pod template)"),
            "{message}"
        );
    }
}
