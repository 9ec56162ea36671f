//! What a person reads when a pod or namespace is refused or warned: what is wrong, what is
//! installed, and the command that fixes it.

use k8s_openapi::api::core::v1::Pod;

use super::labels::NamespaceLabels;
use super::revisions::{Resolved, Stale};

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

/// The message a person sees when the selected revision is stale: what, where, and the fix;
/// for a revision removed in part, also how to finish removing it.
pub fn stale_message(stale: &Stale, selector: &Selector) -> String {
    let mut message = stale_fix(stale, selector);
    if let Some(half) = &stale.half_removed {
        message.push_str(&format!(
            ". Finish removing {}: {}",
            half.revision,
            half.removal()
        ));
    }
    message
}

fn stale_fix(stale: &Stale, selector: &Selector) -> String {
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

/// Guard mode: a pod Istio's selectors gave to a revision arrived without its sidecar, so
/// Istio's injector was not called for it or did not inject (what to check, in order).
pub fn uninjected_message(resolved: &Resolved<'_>, selector: &Selector) -> String {
    let rev = &resolved.revision.name;
    let value = resolved.via_tag.unwrap_or(rev);
    let selected = match selector {
        Selector::NamespaceRev(ns) | Selector::NewNamespace(ns) => {
            format!("namespace {ns:?} selects istio.io/rev={value}")
        }
        Selector::NamespaceInjection(ns) => format!("namespace {ns:?} has istio-injection=enabled"),
        Selector::PodRev => format!("the pod's label istio.io/rev={value}"),
        Selector::PodInject => "the pod's label sidecar.istio.io/inject=true".to_owned(),
    };
    let through = match resolved.via_tag {
        Some(tag) => format!(" through tag {tag:?}"),
        None => String::new(),
    };
    let namespace = match resolved.revision.namespace.as_str() {
        "" => String::new(),
        ns => format!(" -n {ns}"),
    };
    format!(
        "pod was not injected by Istio: {selected}, which gives it to revision {rev:?}{through}, but it arrived without the istio-proxy sidecar (no istio-proxy container, no sidecar.istio.io/status annotation): Istio's injector did not inject it. Check the revision's injector webhooks and their caBundle (kubectl get mutatingwebhookconfiguration -l istio.io/rev={rev} -o yaml) and that its istiod is healthy (kubectl get pods{namespace} -l istio.io/rev={rev})"
    )
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
    fn a_half_removed_revision_is_relabelled_away_from_and_its_removal_finished() {
        let mesh = MeshSettings::default();
        let table = RevisionTable::new([Revision::new("asm-183-2", "img:1.23", &mesh)], [])
            .expect("table")
            .with_half_removed([crate::core::revisions::HalfRemoved {
                revision: "asm-182-2".into(),
                namespace: "istio-system".into(),
                service: "istiod-asm-182-2".into(),
                configmaps: vec!["istio-sidecar-injector-asm-182-2".into()],
                webhooks: vec!["istio-sidecar-injector-asm-182-2".into()],
            }]);
        let stale = table.resolve("asm-182-2").expect_err("half-removed");
        let message = stale_message(&stale, &Selector::NamespaceRev("shop".into()));
        assert_eq!(
            message,
            "namespace \"shop\" selects revision \"asm-182-2\", which is half-removed (its istiod \
             Service istio-system/istiod-asm-182-2 is gone; left behind: ConfigMap \
             istio-system/istio-sidecar-injector-asm-182-2, MutatingWebhookConfiguration \
             istio-sidecar-injector-asm-182-2); installed: asm-183-2; tags: none. Relabel with: \
             kubectl label namespace shop istio.io/rev=asm-183-2 --overwrite. Finish removing \
             asm-182-2: kubectl delete configmap istio-sidecar-injector-asm-182-2 -n istio-system; \
             kubectl delete mutatingwebhookconfiguration istio-sidecar-injector-asm-182-2 (or: \
             istioctl uninstall --revision asm-182-2)"
        );
    }

    #[test]
    fn an_uninjected_pod_is_told_what_selected_it_and_what_to_check() {
        let mesh = MeshSettings::default();
        let table = RevisionTable::new(
            [Revision::new("asm-1-22", "img:1.22", &mesh).in_namespace("aks-istio-system")],
            [("prod-stable".to_owned(), "asm-1-22".to_owned())],
        )
        .expect("table");
        let resolved = table.resolve("prod-stable").expect("installed");
        assert_eq!(
            uninjected_message(&resolved, &Selector::NamespaceRev("shop".into())),
            "pod was not injected by Istio: namespace \"shop\" selects istio.io/rev=prod-stable, \
             which gives it to revision \"asm-1-22\" through tag \"prod-stable\", but it arrived \
             without the istio-proxy sidecar (no istio-proxy container, no sidecar.istio.io/status \
             annotation): Istio's injector did not inject it. Check the revision's injector webhooks \
             and their caBundle (kubectl get mutatingwebhookconfiguration -l istio.io/rev=asm-1-22 \
             -o yaml) and that its istiod is healthy (kubectl get pods -n aks-istio-system -l \
             istio.io/rev=asm-1-22)"
        );
        let direct = table.resolve("asm-1-22").expect("installed");
        let message = uninjected_message(&direct, &Selector::PodRev);
        assert!(
            message.starts_with("pod was not injected by Istio: the pod's label istio.io/rev=asm-1-22, which gives it to revision \"asm-1-22\", but"),
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
