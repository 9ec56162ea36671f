//! Namespace labels: both injection labels at once, ambient mode together with sidecar
//! injection, a label naming what is not installed, and on AKS the `istio-injection` label its
//! add-on ignores.

use k8s_openapi::api::core::v1::Namespace;

use super::facts::sorted_namespaces;
use super::{finding, Finding, Platform, Severity};
use crate::core::labels::NamespaceLabels;
use crate::core::messages::{stale_message, Selector};
use crate::core::snapshot::Snapshot;

/// Istio's ambient mode label; `ambient` puts a namespace's pods on ztunnel.
const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";

pub(super) fn findings(
    snapshot: &Snapshot,
    namespaces: &[Namespace],
    platform: Platform,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, ns) in sorted_namespaces(snapshot) {
        out.extend(conflict(name, ns));
        out.extend(stale(snapshot, name, ns));
        if platform == Platform::Aks {
            out.extend(aks_injection_label(snapshot, name, ns));
        }
    }
    let mut ambient: Vec<Finding> = namespaces
        .iter()
        .filter_map(ambient_with_sidecars)
        .collect();
    ambient.sort_by(|a, b| a.object.cmp(&b.object));
    out.extend(ambient);
    out
}

/// A namespace in ambient mode that also selects sidecar injection (IST0123's ambient half):
/// Istio's injector still matches it, its new pods get sidecars, and ambient leaves pods with
/// a sidecar alone, so the namespace is half in one mode and half in the other.
fn ambient_with_sidecars(ns: &Namespace) -> Option<Finding> {
    let name = ns.metadata.name.as_deref()?;
    let labels = ns.metadata.labels.as_ref()?;
    if labels.get(DATAPLANE_MODE).map(String::as_str) != Some("ambient") {
        return None;
    }
    let selecting =
        NamespaceLabels::from_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (label, value) = match (&selecting.injection, &selecting.rev) {
        (Some(v), _) if v == "enabled" => ("istio-injection", v),
        (_, Some(rev)) => ("istio.io/rev", rev),
        _ => return None,
    };
    Some(finding(
        Severity::Warning,
        "REVHOOK-AMBIENT-INJECTION",
        Some("IST0123"),
        format!("Namespace/{name}"),
        format!(
            "namespace is in ambient mode ({DATAPLANE_MODE}=ambient) and selects sidecar injection ({label}={value}): new pods get a sidecar and ambient skips them"
        ),
        Some(format!(
            "kubectl label namespace {name} {label}-   # stay ambient (or remove {DATAPLANE_MODE} to stay on sidecars)"
        )),
    ))
}

fn conflict(name: &str, ns: &NamespaceLabels) -> Option<Finding> {
    ns.has_conflict().then(|| {
        finding(
            Severity::Error,
            "REVHOOK-CONFLICT",
            Some("IST0123"),
            format!("Namespace/{name}"),
            format!(
                "namespace has both istio-injection={} and istio.io/rev={}; Istio lets istio-injection win",
                ns.injection.as_deref().unwrap_or_default(),
                ns.rev.as_deref().unwrap_or_default()
            ),
            Some(format!("kubectl label namespace {name} istio-injection-")),
        )
    })
}

fn stale(snapshot: &Snapshot, name: &str, ns: &NamespaceLabels) -> Option<Finding> {
    let stale = snapshot.table.resolve(ns.selected_value()?).err()?;
    let selector = if ns.injection.is_some() {
        Selector::NamespaceInjection(name.to_owned())
    } else {
        Selector::NamespaceRev(name.to_owned())
    };
    Some(finding(
        Severity::Error,
        "REVHOOK-STALE-NAMESPACE",
        None,
        format!("Namespace/{name}"),
        format!(
            "{}; its pods will start without a sidecar (or be refused by revhook)",
            stale_message(&stale, &selector)
        ),
        stale
            .suggestion()
            .map(|t| format!("kubectl label namespace {name} istio.io/rev={t} --overwrite")),
    ))
}

fn aks_injection_label(snapshot: &Snapshot, name: &str, ns: &NamespaceLabels) -> Option<Finding> {
    ns.injection.is_some().then(|| {
        finding(
            Severity::Warning,
            "REVHOOK-AKS-INJECTION-LABEL",
            None,
            format!("Namespace/{name}"),
            "the AKS Istio add-on does not inject for istio-injection; only istio.io/rev=<revision> selects it".into(),
            snapshot
                .table
                .suggested_target()
                .map(|t| format!("kubectl label namespace {name} istio-injection- istio.io/rev={t}")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{codes, namespace, snapshot};
    use crate::core::labels::{ISTIO_INJECTION, ISTIO_REV};

    const REVISIONS: [(&str, &str); 2] = [("asm-1-22", "img:1.22"), ("asm-1-23", "img:1.23")];

    fn generic(namespaces: &[(&str, &[(&str, &str)])]) -> Vec<Finding> {
        findings(
            &snapshot(&REVISIONS, &[("default", "asm-1-22")], namespaces),
            &[],
            Platform::Generic,
        )
    }

    fn ambient(labels: &[(&str, &str)]) -> Vec<Finding> {
        let ns = [namespace("shop", labels)];
        findings(&snapshot(&REVISIONS, &[], &[]), &ns, Platform::Generic)
    }

    #[test]
    fn ambient_mode_with_an_injection_label_is_flagged() {
        let found = ambient(&[(DATAPLANE_MODE, "ambient"), (ISTIO_REV, "asm-1-23")]);
        assert_eq!(codes(&found), ["REVHOOK-AMBIENT-INJECTION"]);
        assert_eq!(found[0].istio_code, Some("IST0123"));
        assert_eq!(found[0].object, "Namespace/shop");
        assert!(
            found[0].message.contains("istio.io/rev=asm-1-23"),
            "{}",
            found[0].message
        );
        assert!(
            found[0]
                .fix
                .as_deref()
                .is_some_and(|f| f.starts_with("kubectl label namespace shop istio.io/rev-")),
            "{:?}",
            found[0].fix
        );
        let enabled = ambient(&[(DATAPLANE_MODE, "ambient"), (ISTIO_INJECTION, "enabled")]);
        assert_eq!(codes(&enabled), ["REVHOOK-AMBIENT-INJECTION"]);
    }

    #[test]
    fn ambient_alone_or_with_injection_disabled_or_another_mode_is_fine() {
        assert!(ambient(&[(DATAPLANE_MODE, "ambient")]).is_empty());
        assert!(ambient(&[(DATAPLANE_MODE, "ambient"), (ISTIO_INJECTION, "disabled")]).is_empty());
        assert!(ambient(&[(DATAPLANE_MODE, "none"), (ISTIO_REV, "asm-1-23")]).is_empty());
        assert!(ambient(&[(ISTIO_REV, "asm-1-23")]).is_empty());
    }

    #[test]
    fn both_labels_are_a_conflict_even_when_injection_is_disabled() {
        let found = generic(&[(
            "shop",
            &[(ISTIO_INJECTION, "disabled"), (ISTIO_REV, "asm-1-23")],
        )]);
        assert_eq!(codes(&found), ["REVHOOK-CONFLICT"]);
        assert_eq!(found[0].object, "Namespace/shop");
        assert_eq!(found[0].istio_code, Some("IST0123"));
        assert!(
            found[0]
                .message
                .contains("istio-injection=disabled and istio.io/rev=asm-1-23"),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl label namespace shop istio-injection-")
        );
    }

    #[test]
    fn one_label_alone_is_no_conflict() {
        let found = generic(&[
            ("rev", &[(ISTIO_REV, "asm-1-23")]),
            ("enabled", &[(ISTIO_INJECTION, "enabled")]),
            ("disabled", &[(ISTIO_INJECTION, "disabled")]),
            ("plain", &[("team", "shop")]),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_rev_label_naming_no_installed_revision_is_stale() {
        let found = generic(&[("shop", &[(ISTIO_REV, "asm-1-21")])]);
        assert_eq!(codes(&found), ["REVHOOK-STALE-NAMESPACE"]);
        assert_eq!(found[0].severity, Severity::Error);
        assert!(
            found[0].message.contains("asm-1-21"),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl label namespace shop istio.io/rev=asm-1-22 --overwrite")
        );
    }

    #[test]
    fn injection_enabled_without_a_default_is_stale_and_says_so() {
        let snap = snapshot(
            &REVISIONS,
            &[],
            &[("shop", &[(ISTIO_INJECTION, "enabled")])],
        );
        let found = findings(&snap, &[], Platform::Generic);
        assert_eq!(codes(&found), ["REVHOOK-STALE-NAMESPACE"]);
        assert!(
            found[0].message.contains("istio-injection=enabled"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_label_naming_a_tag_of_an_installed_revision_is_not_stale() {
        let snap = snapshot(
            &REVISIONS,
            &[("prod-stable", "asm-1-22")],
            &[("shop", &[(ISTIO_REV, "prod-stable")])],
        );
        assert!(findings(&snap, &[], Platform::Generic).is_empty());
    }

    #[test]
    fn a_label_naming_a_dangling_tag_is_stale() {
        let snap = snapshot(
            &REVISIONS,
            &[("prod-stable", "asm-1-20")],
            &[("shop", &[(ISTIO_REV, "prod-stable")])],
        );
        assert_eq!(
            codes(&findings(&snap, &[], Platform::Generic)),
            ["REVHOOK-STALE-NAMESPACE"]
        );
    }

    #[test]
    fn on_aks_the_injection_label_is_flagged_with_the_rev_label_to_use() {
        let snap = snapshot(
            &REVISIONS,
            &[],
            &[
                ("shop", &[(ISTIO_INJECTION, "disabled")]),
                ("web", &[(ISTIO_REV, "asm-1-23")]),
            ],
        );
        let found = findings(&snap, &[], Platform::Aks);
        assert_eq!(codes(&found), ["REVHOOK-AKS-INJECTION-LABEL"]);
        assert_eq!(found[0].object, "Namespace/shop");
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl label namespace shop istio-injection- istio.io/rev=asm-1-23")
        );
    }

    #[test]
    fn the_injection_label_is_not_flagged_off_aks() {
        let found = generic(&[("shop", &[(ISTIO_INJECTION, "disabled")])]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn findings_follow_the_namespace_names() {
        let found = generic(&[
            ("b", &[(ISTIO_REV, "gone")]),
            (
                "a",
                &[(ISTIO_INJECTION, "enabled"), (ISTIO_REV, "asm-1-23")],
            ),
        ]);
        let objects: Vec<&str> = found.iter().map(|f| f.object.as_str()).collect();
        assert_eq!(objects, ["Namespace/a", "Namespace/b"]);
    }
}
