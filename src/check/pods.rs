//! Pods: what runs against what Istio's rules would inject today (no sidecar, an old proxy
//! image, another revision, a revision that is gone, a pod label naming nothing installed),
//! app containers that would escape the proxy, `image: auto` never replaced, and on AKS the
//! pod labels its add-on ignores.
//!
//! "What would be injected today" is always the webhook's own decision (`inject::decide`, via
//! [`PodFacts::fresh`]) and "which image" the webhook's own override parsing, never a copy.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};

use super::facts::{app_containers, workload_of, Fresh, PodFacts};
use super::{finding, Cluster, Finding, Platform, Severity};
use crate::core::labels;
use crate::core::messages::{restart_command, stale_message, Selector};
use crate::core::pod::PodIn;
use crate::core::revisions::Revision;
use crate::core::snapshot::Snapshot;
use crate::inject;

/// The UID Istio's proxy runs as; traffic from it bypasses the proxy's redirection.
const PROXY_UID: i64 = 1337;
/// The image a gateway or workload template names for the injector to replace.
pub(super) const AUTO_IMAGE: &str = "auto";

pub(super) fn findings(cluster: &Cluster<'_>) -> Vec<Finding> {
    let snapshot = &cluster.snapshot;
    let judged: Vec<&PodFacts<'_>> = cluster.pods.iter().filter(|p| p.is_judged()).collect();
    let mut out = Vec::new();
    for p in &judged {
        out.extend(without_sidecar(p));
        if cluster.opts.platform == Platform::Aks {
            out.extend(aks_pod_labels(p));
        }
    }
    out.extend(old_proxy_images(snapshot, &judged));
    out.extend(previous_revisions(snapshot, &judged));
    out.extend(orphaned(snapshot, &judged));
    out.extend(stale_pod_labels(&judged));
    out.extend(proxy_uid(&judged));
    out.extend(auto_images(&judged));
    out
}

fn without_sidecar(p: &PodFacts<'_>) -> Option<Finding> {
    let Fresh::Inject { selector, .. } = &p.fresh else {
        return None;
    };
    // A status annotation without a proxy is another injector's doing (a custom template):
    // not judged.
    if p.proxy_image.is_some() || p.injected {
        return None;
    }
    let why = match selector {
        Selector::PodRev => "pod selected by its own istio.io/rev label",
        Selector::PodInject => "pod asking for injection (sidecar.istio.io/inject=true)",
        _ => "pod in an injection-enabled namespace",
    };
    Some(finding(
        Severity::Warning,
        "REVHOOK-POD-NO-SIDECAR",
        Some("IST0103"),
        p.object(),
        format!("{why} runs without a sidecar (created before the label, or injection failed)"),
        Some(restart_command(p.pod)),
    ))
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

/// The image the webhook would give this pod from `revision`: the revision's, unless the pod
/// asks for another (`sidecar.istio.io/proxyImage`, `proxyImageType`): the revision's own
/// templates are run on the pod, as a restart would. `None` when they cannot be (the webhook
/// would refuse the pod; nothing to compare).
fn expected_image(pod: &Pod, revision: &Revision) -> Option<String> {
    let injector = revision.injector.as_ref().ok()?;
    let raw = serde_json::to_value(pod).ok()?;
    let parsed_text = raw.to_string();
    let parsed = PodIn::parse(&parsed_text).ok()?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    inject::injected_proxy_image(injector, &parsed, &raw, namespace, &revision.name)
}

/// Pods whose proxy image is not what a restart would give them from their own revision (the
/// revision was upgraded in place): one finding per workload to restart. A pod that chose its
/// image (`sidecar.istio.io/proxyImage`, `proxyImageType`) is compared with its choice.
fn old_proxy_images(snapshot: &Snapshot, judged: &[&PodFacts<'_>]) -> Vec<Finding> {
    let changes = judged.iter().filter_map(|p| {
        let image = p.proxy_image?;
        let rev = snapshot.table.revision(p.revision.as_deref()?)?;
        let want = expected_image(p.pod, rev)?;
        (want != image).then(|| (*p, format!("{image} -> {want}")))
    });
    per_workload(changes)
        .into_iter()
        .map(|(fix, (count, object, change))| {
            finding(
                Severity::Warning,
                "REVHOOK-PROXY-IMAGE",
                Some("IST0158"),
                object,
                format!("{count} pod(s) run a proxy image other than the one their revision now gives them ({change})"),
                Some(fix),
            )
        })
        .collect()
}

/// Injected pods that a restart would put on another installed revision (their namespace
/// moved on): one finding per workload to restart.
fn previous_revisions(snapshot: &Snapshot, judged: &[&PodFacts<'_>]) -> Vec<Finding> {
    let changes = judged.iter().filter_map(|p| {
        let target = p.fresh.target()?;
        let previous = p.revision.as_deref()?;
        let installed = snapshot.table.revision(previous).is_some();
        (p.proxy_image.is_some() && previous != target && installed)
            .then(|| (*p, format!("{previous} -> {target}")))
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

/// Proxies of a revision that is no longer installed: no istiod serves them (no config, and no
/// new certificates once theirs expire). One finding per workload.
fn orphaned(snapshot: &Snapshot, judged: &[&PodFacts<'_>]) -> Vec<Finding> {
    // Restart command -> (pods, first pod, detail, fix).
    let mut by_restart: BTreeMap<String, (usize, String, String, String)> = BTreeMap::new();
    for p in judged {
        let Some(rev) = p.revision.as_deref() else {
            continue;
        };
        if p.proxy_image.is_none() || snapshot.table.revision(rev).is_some() {
            continue;
        }
        let restart = restart_command(p.pod);
        let (after, fix) = match &p.fresh {
            Fresh::Inject { revision, .. } => {
                (format!("a restart injects {revision}"), restart.clone())
            }
            // The namespace's label is stale too: relabel it, then restart.
            Fresh::Stale {
                stale,
                selector: Selector::NamespaceRev(ns) | Selector::NamespaceInjection(ns),
            } => (
                "a restart injects nothing until the namespace selects an installed revision".into(),
                format!(
                    "kubectl label namespace {ns} istio.io/rev={} --overwrite && {restart}",
                    stale.fix_target().unwrap_or("<installed revision>")
                ),
            ),
            _ => (
                "a restart injects nothing until an installed revision is selected".into(),
                format!("select an installed revision (namespace or pod label istio.io/rev), then {restart}"),
            ),
        };
        let detail = format!("revision {rev:?}, which is not installed: no istiod serves them (no configuration, no new certificates); {after}");
        by_restart
            .entry(restart)
            .or_insert((0, p.object(), detail, fix))
            .0 += 1;
    }
    by_restart
        .into_values()
        .map(|(count, object, detail, fix)| {
            finding(
                Severity::Error,
                "REVHOOK-ORPHANED-PROXY",
                None,
                object,
                format!("{count} pod(s) run proxies of {detail}"),
                Some(fix),
            )
        })
        .collect()
}

/// Pods selected by their own `istio.io/rev` label (or `sidecar.istio.io/inject=true`, the
/// default tag) whose value is not installed: their workload's new pods are refused (or start
/// without a sidecar). One finding per workload.
fn stale_pod_labels(judged: &[&PodFacts<'_>]) -> Vec<Finding> {
    let mut by_workload: BTreeMap<String, (usize, String, String, Option<String>)> =
        BTreeMap::new();
    for p in judged {
        let Fresh::Stale { stale, selector } = &p.fresh else {
            continue;
        };
        if !matches!(selector, Selector::PodRev | Selector::PodInject) {
            continue; // a namespace's label: REVHOOK-STALE-NAMESPACE says it once.
        }
        let workload = workload_of(p.pod);
        let fix = stale.fix_target().map(|t| match selector {
            Selector::PodRev => {
                format!("set the label istio.io/rev={t} in the pod template of {workload}")
            }
            _ => format!("istioctl tag set default --revision {t}"),
        });
        by_workload
            .entry(workload)
            .or_insert_with(|| (0, p.object(), stale_message(stale, selector), fix))
            .0 += 1;
    }
    by_workload
        .into_iter()
        .map(|(workload, (count, _, message, fix))| {
            finding(
                Severity::Error,
                "REVHOOK-POD-REV-STALE",
                None,
                workload,
                format!("{count} pod(s): {message}; new pods of this workload are refused (or start without a sidecar)"),
                fix,
            )
        })
        .collect()
}

/// The UID an app container runs as: its own securityContext, else the pod's.
fn run_as_user(spec: &PodSpec, container: &k8s_openapi::api::core::v1::Container) -> Option<i64> {
    container
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .or_else(|| spec.security_context.as_ref().and_then(|s| s.run_as_user))
}

/// App containers running as UID 1337 in pods with (or due) a sidecar (IST0144): the proxy's
/// redirection exempts that UID, so their traffic bypasses the mesh.
fn proxy_uid(judged: &[&PodFacts<'_>]) -> Vec<Finding> {
    let hits = judged.iter().filter_map(|p| {
        if p.proxy_image.is_none() && p.fresh.target().is_none() {
            return None;
        }
        let spec = p.pod.spec.as_ref()?;
        let names: Vec<&str> = app_containers(spec)
            .filter(|c| run_as_user(spec, c) == Some(PROXY_UID))
            .map(|c| c.name.as_str())
            .collect();
        (!names.is_empty()).then(|| (*p, names.join(",")))
    });
    let mut by_workload: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (p, names) in hits {
        by_workload
            .entry(workload_of(p.pod))
            .or_insert((0, names))
            .0 += 1;
    }
    by_workload
        .into_iter()
        .map(|(workload, (count, names))| {
            finding(
                Severity::Warning,
                "REVHOOK-PROXY-UID",
                Some("IST0144"),
                workload,
                format!("{count} pod(s) run app container(s) {names} as UID {PROXY_UID}, the proxy's: their traffic bypasses the sidecar"),
                Some("set another runAsUser in the pod template's securityContext".into()),
            )
        })
        .collect()
}

/// Running pods with an `image: auto` container (IST0147): no injector replaced it, so the
/// container cannot start. One finding per workload.
fn auto_images(judged: &[&PodFacts<'_>]) -> Vec<Finding> {
    let mut by_workload: BTreeMap<String, (usize, Option<String>)> = BTreeMap::new();
    for p in judged {
        let auto = p.pod.spec.as_ref().is_some_and(|s| {
            s.containers
                .iter()
                .any(|c| c.image.as_deref() == Some(AUTO_IMAGE))
        });
        if !auto {
            continue;
        }
        let fix = match &p.fresh {
            Fresh::Inject { .. } => Some(restart_command(p.pod)),
            Fresh::Stale { stale, .. } => stale
                .fix_target()
                .map(|t| format!("set istio.io/rev={t} on the pod template (or its namespace), then {}", restart_command(p.pod))),
            Fresh::NotInjected => Some("label its namespace (or the pod template) istio.io/rev=<revision>, then restart it".into()),
        };
        by_workload.entry(workload_of(p.pod)).or_insert((0, fix)).0 += 1;
    }
    by_workload
        .into_iter()
        .map(|(workload, (count, fix))| {
            finding(
                Severity::Error,
                "REVHOOK-IMAGE-AUTO-POD",
                Some("IST0147"),
                workload,
                format!("{count} pod(s) run a container with image: auto that no injector replaced: it cannot start"),
                fix,
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
    use crate::check::tests::{codes, judge_pods, pod, snapshot, PodBuilder as _};
    use crate::core::labels::{ISTIO_INJECTION, ISTIO_REV, SIDECAR_INJECT};
    use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};

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
                ("retired", &[(ISTIO_REV, "asm-1-21")]),
            ],
        )
    }

    fn judge(pods: &[Pod], platform: Platform) -> Vec<Finding> {
        judge_pods(cluster(), pods, platform, findings)
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
        let found = generic(&[
            pod("plain", "web").label(SIDECAR_INJECT, "true"),
            pod("plain", "api").label(ISTIO_REV, "asm-1-23"),
        ]);
        assert_eq!(codes(&found), ["REVHOOK-POD-NO-SIDECAR"; 2]);
        assert!(
            found[0].message.starts_with("pod asking for injection"),
            "{}",
            found[0].message
        );
        assert!(
            found[1]
                .message
                .starts_with("pod selected by its own istio.io/rev label"),
            "{}",
            found[1].message
        );
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
    fn a_pod_that_chose_its_proxy_image_is_compared_with_its_choice() {
        let chosen = pod("shop", "custom")
            .annotation("sidecar.istio.io/proxyImage", "example.com/proxy:7")
            .injected("asm-1-23", "example.com/proxy:7");
        let debug = pod("shop", "debug")
            .annotation("sidecar.istio.io/proxyImageType", "debug")
            .injected("asm-1-23", "img:1.23.1-debug");
        assert!(
            generic(&[chosen, debug]).is_empty(),
            "a restart would change nothing"
        );
        let changed_since = pod("shop", "changed")
            .annotation("sidecar.istio.io/proxyImage", "example.com/proxy:8")
            .injected("asm-1-23", "example.com/proxy:7");
        let found = generic(&[changed_since]);
        assert_eq!(codes(&found), ["REVHOOK-PROXY-IMAGE"]);
        assert!(
            found[0]
                .message
                .contains("(example.com/proxy:7 -> example.com/proxy:8)"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_proxy_on_its_revisions_image_or_without_a_known_revision_is_no_image_finding() {
        let found = generic(&[
            pod("shop", "current").injected("asm-1-23", "img:1.23.1"),
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
    fn a_status_annotation_without_a_proxy_is_no_finding() {
        let p = pod("shop", "web").annotation(
            crate::core::labels::SIDECAR_STATUS,
            r#"{"revision":"asm-1-22"}"#,
        );
        let found = generic(&[p]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn proxies_of_a_revision_that_is_gone_are_orphaned_per_workload() {
        let gone = |ns: &str, name: &str| {
            pod(ns, name)
                .of_deployment("web", "1")
                .injected("asm-1-21", "img:1.21.0")
        };
        let found = generic(&[
            gone("shop", "web-1-a"),
            gone("shop", "web-1-b"),
            gone("plain", "web-1-c"),
        ]);
        assert_eq!(codes(&found), ["REVHOOK-ORPHANED-PROXY"; 2]);
        assert_eq!(found[0].severity, Severity::Error);
        assert!(
            found[0].message.starts_with("1 pod(s) run proxies of revision \"asm-1-21\", which is not installed: no istiod serves them (no configuration, no new certificates); a restart injects nothing until an installed revision is selected"),
            "{}",
            found[0].message
        );
        assert_eq!(found[1].object, "Pod/shop/web-1-a");
        assert!(
            found[1].message.starts_with("2 pod(s)")
                && found[1].message.contains("a restart injects asm-1-23"),
            "{}",
            found[1].message
        );
        assert_eq!(
            found[1].fix.as_deref(),
            Some("kubectl rollout restart deployment/web -n shop")
        );
    }

    #[test]
    fn an_orphan_in_a_namespace_on_the_removed_revision_is_fixed_by_relabelling_first() {
        let found = generic(&[pod("retired", "web-1-a")
            .of_deployment("web", "1")
            .injected("asm-1-21", "img:1.21.0")]);
        assert_eq!(codes(&found), ["REVHOOK-ORPHANED-PROXY"]);
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl label namespace retired istio.io/rev=asm-1-22 --overwrite && kubectl rollout restart deployment/web -n retired")
        );
    }

    #[test]
    fn a_pod_label_naming_nothing_installed_is_stale_per_workload() {
        let found = generic(&[
            pod("plain", "gw-1-a")
                .of_deployment("gw", "1")
                .label(ISTIO_REV, "asm-1-21"),
            pod("plain", "gw-1-b")
                .of_deployment("gw", "1")
                .label(ISTIO_REV, "asm-1-21"),
            // In a labelled namespace the namespace decides (as in Istio): not stale.
            pod("shop", "web")
                .label(ISTIO_REV, "asm-1-21")
                .injected("asm-1-23", "img:1.23.1"),
        ]);
        assert_eq!(codes(&found), ["REVHOOK-POD-REV-STALE"]);
        assert_eq!(found[0].object, "Deployment/plain/gw");
        assert!(
            found[0]
                .message
                .starts_with("2 pod(s): pod label istio.io/rev selects revision \"asm-1-21\""),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("set the label istio.io/rev=asm-1-22 in the pod template of Deployment/plain/gw")
        );
    }

    #[test]
    fn an_app_container_running_as_the_proxys_uid_is_flagged_where_a_sidecar_is() {
        let as_1337_in_pod = |ns: &str, name: &str| {
            let mut p = pod(ns, name).injected("asm-1-23", "img:1.23.1");
            if let Some(spec) = p.spec.as_mut() {
                spec.security_context = Some(PodSecurityContext {
                    run_as_user: Some(1337),
                    ..PodSecurityContext::default()
                });
            }
            p
        };
        let mut own_uid = as_1337_in_pod("shop", "own");
        if let Some(spec) = own_uid.spec.as_mut() {
            spec.containers[0].security_context = Some(SecurityContext {
                run_as_user: Some(1000),
                ..SecurityContext::default()
            });
        }
        let mut no_mesh = pod("plain", "outside");
        if let Some(spec) = no_mesh.spec.as_mut() {
            spec.containers[0].security_context = Some(SecurityContext {
                run_as_user: Some(1337),
                ..SecurityContext::default()
            });
        }
        let found = generic(&[as_1337_in_pod("shop", "web"), own_uid, no_mesh]);
        assert_eq!(codes(&found), ["REVHOOK-PROXY-UID"]);
        assert_eq!(found[0].istio_code, Some("IST0144"));
        assert_eq!(found[0].object, "Pod/shop/web");
        assert!(
            found[0]
                .message
                .contains("app container(s) app as UID 1337"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_running_pod_with_image_auto_was_never_injected() {
        let auto = |ns: &str, name: &str| {
            let mut p = pod(ns, name).of_deployment("gw", "1");
            if let Some(spec) = p.spec.as_mut() {
                spec.containers[0].image = Some(AUTO_IMAGE.into());
            }
            p
        };
        let found = generic(&[auto("plain", "gw-1-a"), auto("shop", "gw-1-b")]);
        // The one in an injection namespace also lacks its sidecar.
        assert_eq!(
            codes(&found),
            [
                "REVHOOK-POD-NO-SIDECAR",
                "REVHOOK-IMAGE-AUTO-POD",
                "REVHOOK-IMAGE-AUTO-POD"
            ]
        );
        assert_eq!(found[1].object, "Deployment/plain/gw");
        assert_eq!(found[1].istio_code, Some("IST0147"));
        assert!(
            found[1]
                .fix
                .as_deref()
                .is_some_and(|f| f.starts_with("label its namespace")),
            "{:?}",
            found[1].fix
        );
        assert_eq!(
            found[2].fix.as_deref(),
            Some("kubectl rollout restart deployment/gw -n shop")
        );
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

    #[test]
    fn facts_are_worked_out_against_the_same_snapshot() {
        let snap = cluster();
        let p = pod("shop", "web");
        assert_eq!(pod_facts(&p, &snap).fresh.target(), Some("asm-1-23"));
    }
}
