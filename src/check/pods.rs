//! Pods: what runs against what Istio's rules would inject today (no sidecar, an old proxy
//! image, another revision), and on AKS the pod labels its add-on ignores.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::facts::PodFacts;
use super::{finding, Finding, Platform, Severity};
use crate::core::labels::{self, NamespaceLabels};
use crate::core::messages::restart_command;
use crate::core::pod::PodIn;
use crate::core::policy::Policy;
use crate::core::snapshot::Snapshot;
use crate::inject::decide::{self, Decision};

/// A pod and what the webhook would decide for it now.
struct Judged<'p, 't> {
    facts: &'p PodFacts<'p>,
    now: Option<Decision<'t>>,
}

pub(super) fn findings(
    snapshot: &Snapshot,
    pods: &[PodFacts<'_>],
    platform: Platform,
) -> Vec<Finding> {
    let judged: Vec<Judged<'_, '_>> = pods
        .iter()
        .filter(|p| p.is_running() && !labels::IGNORED_NAMESPACES.contains(&p.namespace))
        .map(|facts| Judged {
            facts,
            now: injection_now(facts.pod, facts.namespace, snapshot),
        })
        .collect();
    let mut out = Vec::new();
    for j in &judged {
        out.extend(without_sidecar(j));
        if platform == Platform::Aks {
            out.extend(aks_pod_labels(j.facts));
        }
    }
    out.extend(old_proxy_images(snapshot, &judged));
    out.extend(previous_revisions(&judged));
    out
}

/// What Istio's rules say about this pod today: the webhook's own decision (its selectors,
/// opt-outs, tags and the revision it would inject), never a second copy of it.
fn injection_now<'t>(pod: &Pod, namespace: &str, snapshot: &'t Snapshot) -> Option<Decision<'t>> {
    let raw = serde_json::to_string(pod).ok()?;
    let parsed = PodIn::parse(&raw).ok()?;
    let no_labels = NamespaceLabels::default();
    let ns = snapshot.namespace(namespace).unwrap_or(&no_labels);
    let policy = Policy::default();
    Some(decide::decide(&parsed, namespace, ns, &snapshot.table, &policy).decision)
}

fn without_sidecar(j: &Judged<'_, '_>) -> Option<Finding> {
    let would_inject = matches!(j.now, Some(Decision::Inject { previous: None, .. }));
    (would_inject && j.facts.proxy_image.is_none()).then(|| {
        finding(
            Severity::Warning,
            "REVHOOK-POD-NO-SIDECAR",
            Some("IST0103"),
            j.facts.object(),
            "pod in an injection-enabled namespace runs without a sidecar (created before the label, or injection failed)".into(),
            Some(restart_command(j.facts.pod)),
        )
    })
}

fn aks_pod_labels(p: &PodFacts<'_>) -> Vec<Finding> {
    let pod_labels = p.pod.metadata.labels.as_ref();
    let mut out = Vec::new();
    if pod_labels
        .and_then(|l| l.get(labels::SIDECAR_INJECT))
        .is_some_and(|v| v == "true")
    {
        out.push(finding(
            Severity::Warning,
            "REVHOOK-AKS-INJECT-LABEL",
            None,
            p.object(),
            "the AKS Istio add-on does not inject for sidecar.istio.io/inject=true; label the namespace istio.io/rev=<revision>".into(),
            None,
        ));
    }
    if pod_labels.and_then(|l| l.get(labels::ISTIO_REV)).is_some() {
        out.push(finding(
            Severity::Info,
            "REVHOOK-AKS-POD-REVISION",
            None,
            p.object(),
            "revision selected per workload (pod label istio.io/rev); AKS upgrades are simpler with namespace labels".into(),
            None,
        ));
    }
    out
}

/// Pods whose proxy image is not the one their revision uses now (the revision was upgraded
/// in place): one finding per workload to restart.
fn old_proxy_images(snapshot: &Snapshot, judged: &[Judged<'_, '_>]) -> Vec<Finding> {
    let changes = judged.iter().filter_map(|j| {
        let image = j.facts.proxy_image?;
        let rev = snapshot.table.revision(j.facts.revision.as_deref()?)?;
        (rev.proxy_image != image).then(|| (j.facts, format!("{image} -> {}", rev.proxy_image)))
    });
    per_workload(changes)
        .into_iter()
        .map(|(fix, (count, object, change))| {
            finding(
                Severity::Warning,
                "REVHOOK-PROXY-IMAGE",
                Some("IST0158"),
                object,
                format!("{count} pod(s) run a proxy image other than the one their revision now uses ({change})"),
                Some(fix),
            )
        })
        .collect()
}

/// Injected pods that the webhook would now inject for another revision (their namespace
/// moved on): one finding per workload to restart.
fn previous_revisions(judged: &[Judged<'_, '_>]) -> Vec<Finding> {
    let changes = judged.iter().filter_map(|j| match &j.now {
        Some(Decision::Inject {
            resolved,
            previous: Some(previous),
            ..
        }) if j.facts.proxy_image.is_some() => {
            Some((j.facts, format!("{previous} -> {}", resolved.revision.name)))
        }
        _ => None,
    });
    per_workload(changes)
        .into_iter()
        .map(|(fix, (count, object, change))| {
            finding(
                Severity::Warning,
                "REVHOOK-POD-REVISION",
                None,
                object,
                format!("{count} pod(s) run a revision other than the one their namespace selects ({change})"),
                Some(fix),
            )
        })
        .collect()
}

/// One restart per workload, not per pod: restart command → (pods, the first pod, its change).
fn per_workload<'p>(
    changes: impl Iterator<Item = (&'p PodFacts<'p>, String)>,
) -> BTreeMap<String, (usize, String, String)> {
    let mut by_restart: BTreeMap<String, (usize, String, String)> = BTreeMap::new();
    for (p, change) in changes {
        by_restart
            .entry(restart_command(p.pod))
            .or_insert((0, p.object(), change))
            .0 += 1;
    }
    by_restart
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::facts::pod_facts;
    use crate::check::tests::{codes, pod, snapshot, PodBuilder as _};
    use crate::core::labels::{ISTIO_INJECTION, ISTIO_REV, SIDECAR_INJECT};

    const REVISIONS: [(&str, &str); 2] = [("asm-1-22", "img:1.22.1"), ("asm-1-23", "img:1.23.1")];

    /// A cluster mid-upgrade: `old` and `plain` namespaces, `shop` moved to the canary.
    fn cluster() -> Snapshot {
        snapshot(
            &REVISIONS,
            &[("default", "asm-1-22")],
            &[
                ("shop", &[(ISTIO_REV, "asm-1-23")]),
                ("old", &[(ISTIO_INJECTION, "enabled")]),
                ("off", &[(ISTIO_INJECTION, "disabled")]),
                ("plain", &[]),
                ("kube-system", &[(ISTIO_REV, "asm-1-23")]),
            ],
        )
    }

    fn judge(pods: &[Pod], platform: Platform) -> Vec<Finding> {
        let facts: Vec<PodFacts<'_>> = pods.iter().map(pod_facts).collect();
        findings(&cluster(), &facts, platform)
    }

    fn generic(pods: &[Pod]) -> Vec<Finding> {
        judge(pods, Platform::Generic)
    }

    #[test]
    fn a_pod_without_a_sidecar_in_an_injection_namespace_is_reported() {
        let found = generic(&[pod("shop", "web"), pod("old", "api")]);
        assert_eq!(codes(&found), ["REVHOOK-POD-NO-SIDECAR"; 2]);
        assert_eq!(found[0].object, "Pod/shop/web");
        assert_eq!(found[0].istio_code, Some("IST0103"));
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl delete pod web -n shop")
        );
        assert_eq!(found[1].object, "Pod/old/api");
    }

    #[test]
    fn a_pod_that_opts_out_or_is_not_selected_is_not_without_sidecar() {
        let found = generic(&[
            pod("shop", "opted-out").label(SIDECAR_INJECT, "false"),
            pod("off", "disabled-namespace"),
            pod("plain", "unlabelled"),
            pod("kube-system", "system"),
            pod("shop", "done").phase("Succeeded"),
            pod("shop", "injected").injected("asm-1-23", "img:1.23.1"),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_pod_asking_for_injection_in_an_unlabelled_namespace_is_without_sidecar() {
        let found = generic(&[pod("plain", "web").label(SIDECAR_INJECT, "true")]);
        assert_eq!(codes(&found), ["REVHOOK-POD-NO-SIDECAR"]);
    }

    #[test]
    fn pods_on_an_older_image_of_their_revision_are_one_restart_per_workload() {
        let on_old_image = |name: &str| {
            pod("shop", name)
                .of_deployment("web", "5d8f")
                .injected("asm-1-23", "img:1.23.0")
        };
        let found = generic(&[on_old_image("web-5d8f-a"), on_old_image("web-5d8f-b")]);
        assert_eq!(codes(&found), ["REVHOOK-PROXY-IMAGE"]);
        assert_eq!(found[0].istio_code, Some("IST0158"));
        assert_eq!(found[0].object, "Pod/shop/web-5d8f-a");
        assert!(
            found[0]
                .message
                .starts_with("2 pod(s) run a proxy image other than"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].message.contains("(img:1.23.0 -> img:1.23.1)"),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl rollout restart deployment/web -n shop")
        );
    }

    #[test]
    fn a_proxy_on_its_revisions_image_or_of_an_unknown_revision_is_no_image_finding() {
        let found = generic(&[
            pod("shop", "current").injected("asm-1-23", "img:1.23.1"),
            pod("plain", "gone").injected("asm-1-19", "img:1.19.0"),
            pod("plain", "unknown").proxy("img:1.20.0"),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn pods_on_the_revision_their_namespace_left_are_one_restart_per_workload() {
        let on_previous = |name: &str| {
            pod("shop", name)
                .of_deployment("web", "5d8f")
                .injected("asm-1-22", "img:1.22.1")
        };
        let found = generic(&[on_previous("web-5d8f-a"), on_previous("web-5d8f-b")]);
        assert_eq!(codes(&found), ["REVHOOK-POD-REVISION"]);
        assert!(
            found[0]
                .message
                .starts_with("2 pod(s) run a revision other than the one their namespace selects (asm-1-22 -> asm-1-23)"),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl rollout restart deployment/web -n shop")
        );
    }

    #[test]
    fn a_pod_on_the_previous_revision_in_an_unlabelled_namespace_is_left_alone() {
        let found = generic(&[
            pod("plain", "web").injected("asm-1-22", "img:1.22.1"),
            pod("off", "api").injected("asm-1-22", "img:1.22.1"),
            pod("shop", "done")
                .injected("asm-1-22", "img:1.22.1")
                .phase("Failed"),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_status_annotation_without_a_proxy_is_no_revision_finding() {
        let p = pod("shop", "web").annotation(
            crate::core::labels::SIDECAR_STATUS,
            r#"{"revision":"asm-1-22"}"#,
        );
        let found = generic(&[p]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn on_aks_pod_injection_labels_are_flagged() {
        let found = judge(
            &[
                pod("plain", "inject")
                    .label(SIDECAR_INJECT, "true")
                    .injected("asm-1-22", "img:1.22.1"),
                pod("plain", "rev")
                    .label(ISTIO_REV, "asm-1-23")
                    .injected("asm-1-23", "img:1.23.1"),
            ],
            Platform::Aks,
        );
        assert_eq!(
            codes(&found),
            ["REVHOOK-AKS-INJECT-LABEL", "REVHOOK-AKS-POD-REVISION"]
        );
        assert_eq!(found[0].object, "Pod/plain/inject");
        assert_eq!(found[1].severity, Severity::Info);
        assert_eq!(found[1].object, "Pod/plain/rev");
    }

    #[test]
    fn pod_labels_are_not_flagged_off_aks_nor_other_values_on_aks() {
        let labelled = pod("plain", "rev")
            .label(ISTIO_REV, "asm-1-23")
            .injected("asm-1-23", "img:1.23.1");
        assert!(generic(std::slice::from_ref(&labelled)).is_empty());
        let found = judge(
            &[
                pod("plain", "off").label(SIDECAR_INJECT, "false"),
                pod("plain", "annotated")
                    .annotation(ISTIO_REV, "asm-1-23")
                    .injected("asm-1-23", "img:1.23.1"),
            ],
            Platform::Aks,
        );
        assert!(found.is_empty(), "{found:?}");
    }
}
