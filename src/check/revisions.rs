//! Revisions and tags: tags pointing at nothing, revisions nobody uses any more, AKS mesh
//! settings a canary lacks, and the per-revision summary of the upgrade's progress.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ConfigMap;

use super::facts::{namespaces_on, PodFacts};
use super::{finding, Finding, RevisionSummary, Severity};
use crate::core::snapshot::Snapshot;

/// Where AKS keeps a revision's mesh settings: `istio-shared-configmap-<rev>`.
const AKS_SHARED_CONFIGMAP: &str = "istio-shared-configmap-";

pub(super) fn findings(
    snapshot: &Snapshot,
    pods: &[PodFacts<'_>],
    istio_cms: &[&ConfigMap],
) -> Vec<Finding> {
    let mut out = dangling_tags(snapshot);
    out.extend(unused(snapshot, pods));
    out.extend(missing_mesh_config(snapshot, istio_cms));
    out
}

fn dangling_tags(snapshot: &Snapshot) -> Vec<Finding> {
    snapshot
        .table
        .dangling_tags()
        .map(|(tag, target)| {
            finding(
                Severity::Error,
                "REVHOOK-TAG-DANGLING",
                None,
                format!("Tag/{tag}"),
                format!("tag {tag:?} points at revision {target:?}, which is not installed"),
                snapshot
                    .table
                    .suggested_target()
                    .map(|t| format!("istioctl tag set {tag} --revision {t} --overwrite")),
            )
        })
        .collect()
}

/// Revisions some namespace selects (directly or via a tag) or some pod runs.
pub(super) fn in_use(snapshot: &Snapshot, pods: &[PodFacts<'_>]) -> BTreeSet<String> {
    snapshot
        .table
        .revisions()
        .filter(|rev| {
            !namespaces_on(snapshot, &rev.name).is_empty() || pods.iter().any(|p| p.runs(&rev.name))
        })
        .map(|rev| rev.name.clone())
        .collect()
}

fn unused(snapshot: &Snapshot, pods: &[PodFacts<'_>]) -> Vec<Finding> {
    let used = in_use(snapshot, pods);
    snapshot
        .table
        .revisions()
        .filter(|rev| !used.contains(&rev.name))
        .map(|rev| {
            finding(
                Severity::Info,
                "REVHOOK-REVISION-UNUSED",
                None,
                format!("Revision/{}", rev.name),
                "no namespace selects this revision and no pod runs it: safe to remove once the upgrade is complete".into(),
                None,
            )
        })
        .collect()
}

/// AKS keeps per-revision mesh settings in `istio-shared-configmap-<rev>`: a canary without
/// its own copy silently runs with defaults. Judged only where some revision has one.
fn missing_mesh_config(snapshot: &Snapshot, istio_cms: &[&ConfigMap]) -> Vec<Finding> {
    let shared: BTreeSet<&str> = istio_cms
        .iter()
        .filter_map(|c| {
            c.metadata
                .name
                .as_deref()?
                .strip_prefix(AKS_SHARED_CONFIGMAP)
        })
        .collect();
    if shared.is_empty() {
        return Vec::new();
    }
    snapshot
        .table
        .revisions()
        .filter(|r| !shared.contains(r.name.as_str()))
        .map(|rev| {
            finding(
                Severity::Warning,
                "REVHOOK-MESH-CONFIG",
                None,
                format!("Revision/{}", rev.name),
                format!("revision {:?} has no {AKS_SHARED_CONFIGMAP}{} while other revisions have one: it runs with default mesh settings", rev.name, rev.name),
                Some(format!("copy {AKS_SHARED_CONFIGMAP}<stable> to {AKS_SHARED_CONFIGMAP}{} before moving workloads", rev.name)),
            )
        })
        .collect()
}

/// Per revision: its image, tags, the namespaces on it and how many pods run it.
pub(super) fn summary(snapshot: &Snapshot, pods: &[PodFacts<'_>]) -> Vec<RevisionSummary> {
    snapshot
        .table
        .revisions()
        .map(|rev| RevisionSummary {
            revision: rev.name.clone(),
            image: rev.proxy_image.clone(),
            tags: snapshot
                .table
                .tags()
                .filter(|(_, r)| *r == rev.name)
                .map(|(t, _)| t.to_owned())
                .collect(),
            namespaces: namespaces_on(snapshot, &rev.name),
            pods: pods.iter().filter(|p| p.runs(&rev.name)).count(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::facts::pod_facts;
    use crate::check::tests::{codes, configmap, pod, snapshot, PodBuilder as _};
    use crate::core::labels::{ISTIO_INJECTION, ISTIO_REV};
    use k8s_openapi::api::core::v1::Pod;

    const REVISIONS: [(&str, &str); 2] = [("asm-1-22", "img:1.22.1"), ("asm-1-23", "img:1.23.1")];

    fn judge(snap: &Snapshot, pods: &[Pod], cms: &[ConfigMap]) -> Vec<Finding> {
        let facts: Vec<PodFacts<'_>> = pods.iter().map(pod_facts).collect();
        let cms: Vec<&ConfigMap> = cms.iter().collect();
        findings(snap, &facts, &cms)
    }

    /// Both revisions in use by a namespace each.
    fn both_used(tags: &[(&str, &str)]) -> Snapshot {
        snapshot(
            &REVISIONS,
            tags,
            &[
                ("old", &[(ISTIO_REV, "asm-1-22")]),
                ("new", &[(ISTIO_REV, "asm-1-23")]),
            ],
        )
    }

    #[test]
    fn a_tag_pointing_at_a_revision_not_installed_is_dangling() {
        let found = judge(&both_used(&[("prod", "asm-1-21")]), &[], &[]);
        assert_eq!(codes(&found), ["REVHOOK-TAG-DANGLING"]);
        assert_eq!(found[0].object, "Tag/prod");
        assert_eq!(
            found[0].fix.as_deref(),
            Some("istioctl tag set prod --revision asm-1-23 --overwrite")
        );
    }

    #[test]
    fn a_tag_pointing_at_an_installed_revision_is_not_dangling() {
        let found = judge(&both_used(&[("prod", "asm-1-22")]), &[], &[]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_revision_no_namespace_selects_and_no_pod_runs_is_unused() {
        let snap = snapshot(&REVISIONS, &[], &[("new", &[(ISTIO_REV, "asm-1-23")])]);
        let found = judge(&snap, &[], &[]);
        assert_eq!(codes(&found), ["REVHOOK-REVISION-UNUSED"]);
        assert_eq!(found[0].object, "Revision/asm-1-22");
        assert_eq!(found[0].severity, Severity::Info);
    }

    #[test]
    fn a_revision_used_by_a_pod_or_through_a_tag_or_the_default_is_not_unused() {
        let snap = snapshot(
            &[
                ("asm-1-21", "img:1.21"),
                ("asm-1-22", "img:1.22"),
                ("asm-1-23", "img:1.23"),
            ],
            &[("default", "asm-1-22"), ("canary", "asm-1-23")],
            &[
                ("enabled", &[(ISTIO_INJECTION, "enabled")]),
                ("tagged", &[(ISTIO_REV, "canary")]),
            ],
        );
        let pods = [pod("plain", "web").injected("asm-1-21", "img:1.21")];
        let found = judge(&snap, &pods, &[]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_revision_without_its_aks_shared_configmap_is_flagged_when_another_has_one() {
        let cms = [configmap(
            "aks-istio-system",
            "istio-shared-configmap-asm-1-22",
            &[],
        )];
        let found = judge(&both_used(&[]), &[], &cms);
        assert_eq!(codes(&found), ["REVHOOK-MESH-CONFIG"]);
        assert_eq!(found[0].object, "Revision/asm-1-23");
        assert!(
            found[0]
                .message
                .contains("has no istio-shared-configmap-asm-1-23"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn mesh_config_is_not_judged_without_any_shared_configmap_nor_when_all_have_one() {
        let none = judge(
            &both_used(&[]),
            &[],
            &[configmap("aks-istio-system", "istio", &[])],
        );
        assert!(none.is_empty(), "{none:?}");
        let all = [
            configmap("aks-istio-system", "istio-shared-configmap-asm-1-22", &[]),
            configmap("aks-istio-system", "istio-shared-configmap-asm-1-23", &[]),
        ];
        let found = judge(&both_used(&[]), &[], &all);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn the_summary_counts_tags_namespaces_and_pods_per_revision() {
        let snap = both_used(&[("prod", "asm-1-22"), ("stable", "asm-1-22")]);
        let pods = [
            pod("old", "a").injected("asm-1-22", "img:1.22.1"),
            pod("old", "b").injected("asm-1-22", "img:1.22.1"),
            pod("old", "c"),
        ];
        let facts: Vec<PodFacts<'_>> = pods.iter().map(pod_facts).collect();
        let summary = summary(&snap, &facts);
        assert_eq!(
            summary[0],
            RevisionSummary {
                revision: "asm-1-22".into(),
                image: "img:1.22.1".into(),
                tags: vec!["prod".into(), "stable".into()],
                namespaces: vec!["old".into()],
                pods: 2,
            }
        );
        assert_eq!(summary[1].revision, "asm-1-23");
        assert!(summary[1].tags.is_empty());
        assert_eq!(summary[1].namespaces, ["new"]);
        assert_eq!(summary[1].pods, 0);
    }
}
