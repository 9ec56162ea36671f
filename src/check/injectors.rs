//! Two injectors for the same pods (istioctl's IST0139 overlap): Istio's own
//! `istio-sidecar-injector-<rev>` left active beside revhook in inject mode, or two tags and
//! revisions whose webhooks select the same namespaces. Which one injects then depends on the
//! order the API server calls them in; the upgrade guides warn about the double injection.
//!
//! Judged as the API server would: each mutating webhook that injects (its path is `/inject`
//! or `/inject/...`) is matched against each namespace's labels (with a plain pod) and against
//! each running pod's labels, with Kubernetes' label selector rules.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhook, MutatingWebhookConfiguration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::facts::{namespace_labels, workload_of};
use super::{finding, ClusterObjects, Finding, Severity};
use crate::core::labels::{ISTIO_REV, ISTIO_TAG};

type Labels = BTreeMap<String, String>;

/// revhook's webhooks are named `*.revhook.dev`.
const REVHOOK_SUFFIX: &str = ".revhook.dev";

/// Whether a label selector selects these labels (no selector selects everything).
pub(super) fn selects(selector: Option<&LabelSelector>, labels: &Labels) -> bool {
    let Some(s) = selector else {
        return true;
    };
    s.match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
        && s.match_expressions
            .iter()
            .flatten()
            .all(|e| requirement(e, labels))
}

fn requirement(r: &LabelSelectorRequirement, labels: &Labels) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let value = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        // The API server refuses other operators; such a selector selects nothing.
        _ => false,
    }
}

/// A webhook that injects sidecars: its path starts with `/inject` (Istio's and revhook's).
fn injects(hook: &MutatingWebhook) -> bool {
    let cc = &hook.client_config;
    let path = cc
        .service
        .as_ref()
        .and_then(|s| s.path.as_deref())
        .or_else(|| {
            cc.url
                .as_deref()
                .and_then(|u| u.split_once("://").map(|(_, rest)| rest))
                .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        });
    path.is_some_and(|p| p == "/inject" || p.starts_with("/inject/"))
}

/// revhook's own injector configurations and whether they inject: in guard mode (its
/// Deployment runs `--mode=guard`) revhook never injects, so it overlaps with nothing.
fn revhook_injects(
    objects: &ClusterObjects,
    config: &MutatingWebhookConfiguration,
) -> Option<bool> {
    let hooks = config.webhooks.as_deref().unwrap_or_default();
    let service = hooks
        .iter()
        .filter(|h| h.name.ends_with(REVHOOK_SUFFIX))
        .find_map(|h| h.client_config.service.as_ref())?;
    let deployment = objects.deployments.iter().find(|d| {
        d.metadata.namespace.as_deref() == Some(service.namespace.as_str())
            && d.metadata.name.as_deref() == Some(service.name.as_str())
    })?;
    let args: Vec<&str> = deployment
        .spec
        .iter()
        .flat_map(|s| s.template.spec.iter())
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.args.iter().flatten())
        .map(String::as_str)
        .collect();
    let guard = args.contains(&"--mode=guard") || args.windows(2).any(|w| w == ["--mode", "guard"]);
    Some(!guard)
}

/// One injector configuration and its injecting webhooks.
struct Injector<'o> {
    name: &'o str,
    hooks: Vec<&'o MutatingWebhook>,
    revhook: bool,
    /// revhook's Deployment was not found, so its mode is a guess (inject, the default).
    mode_unknown: bool,
    /// `(tag, revision)` when this is a revision tag's webhook configuration.
    tag: Option<(String, String)>,
}

fn injectors(objects: &ClusterObjects) -> Vec<Injector<'_>> {
    objects
        .mutating
        .iter()
        .filter_map(|m| {
            let hooks: Vec<&MutatingWebhook> =
                m.webhooks.iter().flatten().filter(|h| injects(h)).collect();
            if hooks.is_empty() {
                return None;
            }
            let revhook = hooks.iter().any(|h| h.name.ends_with(REVHOOK_SUFFIX));
            let mode = revhook.then(|| revhook_injects(objects, m)).flatten();
            if mode == Some(false) {
                return None;
            }
            let labels = m.metadata.labels.as_ref();
            let tag = labels.and_then(|l| {
                Some((
                    l.get(ISTIO_TAG)?.clone(),
                    l.get(ISTIO_REV).cloned().unwrap_or_default(),
                ))
            });
            Some(Injector {
                name: m.metadata.name.as_deref().unwrap_or_default(),
                hooks,
                revhook,
                mode_unknown: revhook && mode.is_none(),
                tag,
            })
        })
        .collect()
}

/// The injectors (and one webhook of each) that a pod with `pod` labels in a namespace with
/// `ns` labels is sent to.
fn matching<'i>(
    injectors: &'i [Injector<'_>],
    ns: &Labels,
    pod: &Labels,
) -> Vec<(&'i Injector<'i>, &'i str)> {
    injectors
        .iter()
        .filter_map(|i| {
            i.hooks
                .iter()
                .find(|h| {
                    selects(h.namespace_selector.as_ref(), ns)
                        && selects(h.object_selector.as_ref(), pod)
                })
                .map(|h| (i, h.name.as_str()))
        })
        .collect()
}

pub(super) fn findings(objects: &ClusterObjects) -> Vec<Finding> {
    let injectors = injectors(objects);
    if injectors.len() < 2 {
        return Vec::new();
    }
    let mut namespaces: Vec<(&str, Labels)> = objects
        .namespaces
        .iter()
        .map(|n| {
            (
                n.metadata.name.as_deref().unwrap_or_default(),
                namespace_labels(&n.metadata),
            )
        })
        .collect();
    namespaces.sort_by(|a, b| a.0.cmp(b.0));
    let no_labels = Labels::new();
    let mut out = Vec::new();
    let mut reported = BTreeSet::new();
    for (name, labels) in &namespaces {
        let hit = matching(&injectors, labels, &no_labels);
        if hit.len() > 1 && reported.insert(*name) {
            out.push(overlap(
                format!("Namespace/{name}"),
                &format!("new pods in namespace {name}"),
                &hit,
            ));
        }
    }
    // Pods whose own labels (istio.io/rev, sidecar.istio.io/inject) bring a second injector.
    let by_name: BTreeMap<&str, &Labels> = namespaces.iter().map(|(n, l)| (*n, l)).collect();
    for pod in &objects.pods {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let Some(ns_labels) = by_name.get(ns) else {
            continue;
        };
        if reported.contains(ns) {
            continue;
        }
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let hit = matching(&injectors, ns_labels, &labels);
        if hit.len() > 1 {
            reported.insert(ns);
            let workload = workload_of(pod);
            out.push(overlap(
                workload.clone(),
                &format!("new pods of {workload}"),
                &hit,
            ));
        }
    }
    out
}

fn overlap(object: String, who: &str, hit: &[(&Injector<'_>, &str)]) -> Finding {
    let list: Vec<String> = hit
        .iter()
        .map(|(i, hook)| format!("MutatingWebhookConfiguration/{} ({hook})", i.name))
        .collect();
    let guessed = hit.iter().any(|(i, _)| i.mode_unknown);
    // A tag's webhook configuration is the tag itself: rewrite it in revhook's form (no
    // webhooks) rather than delete it.
    let others: Vec<String> = hit
        .iter()
        .filter(|(i, _)| !i.revhook)
        .map(|(i, _)| match &i.tag {
            Some((tag, rev)) => format!("revhook tags set {tag} --revision {rev} --overwrite"),
            None => format!("kubectl delete mutatingwebhookconfiguration {}", i.name),
        })
        .collect();
    let revhook_among = hit.iter().any(|(i, _)| i.revhook);
    let fix = if revhook_among {
        Some(format!(
            "revhook injects in inject mode, so no other injector should: {}",
            others.join(" && ")
        ))
    } else {
        Some("keep one injector per namespace: move or remove the extra tag or revision (istioctl tag set default deactivates the default revision's own webhooks)".into())
    };
    finding(
        Severity::Warning,
        "REVHOOK-INJECTOR-OVERLAP",
        Some("IST0139"),
        object,
        format!(
            "{who} are sent to {} injectors: {}; which one injects depends on the order they are called in (a double injection or a sidecar of the wrong revision){}",
            hit.len(),
            list.join(", "),
            if guessed {
                " (revhook's Deployment was not in the input: if it runs --mode=guard, this overlap is intended)"
            } else {
                ""
            }
        ),
        fix,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{
        codes, deployment, injector_hook, mutating_hooks, namespace, pod, selector, PodBuilder as _,
    };
    use crate::core::labels::ISTIO_INJECTION;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selectors_follow_kubernetes_rules() {
        let l = labels(&[("istio.io/rev", "asm-1-22"), ("team", "a")]);
        assert!(selects(None, &l));
        assert!(selects(Some(&selector(&[("team", "a")], &[])), &l));
        assert!(!selects(Some(&selector(&[("team", "b")], &[])), &l));
        let expr = |key: &str, op: &str, values: &[&str]| selector(&[], &[(key, op, values)]);
        assert!(selects(
            Some(&expr("istio.io/rev", "In", &["asm-1-22"])),
            &l
        ));
        assert!(!selects(
            Some(&expr("istio.io/rev", "In", &["asm-1-23"])),
            &l
        ));
        assert!(selects(
            Some(&expr("istio.io/rev", "NotIn", &["asm-1-23"])),
            &l
        ));
        assert!(
            selects(Some(&expr("missing", "NotIn", &["x"])), &l),
            "NotIn matches an absent key"
        );
        assert!(selects(Some(&expr("team", "Exists", &[])), &l));
        assert!(selects(Some(&expr("missing", "DoesNotExist", &[])), &l));
        assert!(!selects(Some(&expr("team", "Gt", &["1"])), &l));
    }

    /// Istio's per-revision injector: namespaces labelled istio.io/rev=<rev>.
    fn istio_injector(rev: &str) -> MutatingWebhookConfiguration {
        mutating_hooks(
            &format!("istio-sidecar-injector-{rev}"),
            vec![injector_hook(
                "rev.namespace.sidecar-injector.istio.io",
                ("istio-system", &format!("istiod-{rev}")),
                "/inject",
                selector(
                    &[],
                    &[
                        (ISTIO_REV, "In", &[rev]),
                        (ISTIO_INJECTION, "DoesNotExist", &[]),
                    ],
                ),
                None,
            )],
        )
    }

    /// revhook's injector for namespaces with any istio.io/rev.
    fn revhook_injector() -> MutatingWebhookConfiguration {
        mutating_hooks(
            "revhook",
            vec![injector_hook(
                "rev.namespace.inject.revhook.dev",
                ("revhook-system", "revhook"),
                "/inject",
                selector(
                    &[],
                    &[
                        (ISTIO_REV, "Exists", &[]),
                        (ISTIO_INJECTION, "DoesNotExist", &[]),
                    ],
                ),
                None,
            )],
        )
    }

    fn cluster(mutating: Vec<MutatingWebhookConfiguration>) -> ClusterObjects {
        ClusterObjects {
            mutating,
            namespaces: vec![
                namespace("shop", &[(ISTIO_REV, "asm-1-22")]),
                namespace("pay", &[(ISTIO_REV, "asm-1-23")]),
                namespace("plain", &[]),
            ],
            ..ClusterObjects::default()
        }
    }

    #[test]
    fn istios_injector_left_beside_revhook_overlaps_where_both_select() {
        let found = findings(&cluster(vec![
            istio_injector("asm-1-22"),
            revhook_injector(),
        ]));
        assert_eq!(codes(&found), ["REVHOOK-INJECTOR-OVERLAP"]);
        assert_eq!(found[0].object, "Namespace/shop");
        assert_eq!(found[0].istio_code, Some("IST0139"));
        assert!(
            found[0].message.contains("MutatingWebhookConfiguration/istio-sidecar-injector-asm-1-22 (rev.namespace.sidecar-injector.istio.io)")
                && found[0].message.contains("MutatingWebhookConfiguration/revhook (rev.namespace.inject.revhook.dev)")
                && found[0].message.contains("--mode=guard"),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("revhook injects in inject mode, so no other injector should: kubectl delete mutatingwebhookconfiguration istio-sidecar-injector-asm-1-22")
        );
    }

    #[test]
    fn a_tags_own_webhooks_are_rewritten_not_deleted() {
        let mut tag = istio_injector("asm-1-22");
        tag.metadata.name = Some("istio-revision-tag-prod".into());
        tag.metadata.labels =
            crate::check::tests::map(&[(ISTIO_TAG, "prod"), (ISTIO_REV, "asm-1-22")]);
        let found = findings(&cluster(vec![tag, revhook_injector()]));
        assert_eq!(
            found[0].fix.as_deref(),
            Some("revhook injects in inject mode, so no other injector should: revhook tags set prod --revision asm-1-22 --overwrite")
        );
    }

    #[test]
    fn revhook_in_guard_mode_is_meant_to_sit_beside_istios_injector() {
        let mut objects = cluster(vec![istio_injector("asm-1-22"), revhook_injector()]);
        let mut d = deployment("revhook-system", "revhook", 2, 2);
        if let Some(spec) = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            spec.containers[0].args = Some(vec!["serve".into(), "--mode=guard".into()]);
        }
        objects.deployments = vec![d];
        assert!(findings(&objects).is_empty());
        if let Some(spec) = objects.deployments[0]
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
        {
            spec.containers[0].args = Some(vec!["serve".into(), "--mode".into(), "inject".into()]);
        }
        let found = findings(&objects);
        assert_eq!(codes(&found), ["REVHOOK-INJECTOR-OVERLAP"]);
        assert!(
            !found[0].message.contains("--mode=guard"),
            "the mode is known"
        );
    }

    #[test]
    fn injectors_selecting_different_namespaces_do_not_overlap() {
        let found = findings(&cluster(vec![
            istio_injector("asm-1-22"),
            istio_injector("asm-1-23"),
        ]));
        assert!(found.is_empty(), "{found:?}");
        assert!(findings(&cluster(vec![revhook_injector()])).is_empty());
    }

    #[test]
    fn a_pod_label_can_bring_a_second_injector() {
        // Object selectors: revhook takes pods labelled istio.io/rev in unlabelled namespaces,
        // and so does Istio's injector for that revision.
        let object_hook = |name: &str, service: (&str, &str)| {
            injector_hook(
                name,
                service,
                "/inject",
                selector(&[], &[(ISTIO_REV, "DoesNotExist", &[])]),
                Some(selector(&[], &[(ISTIO_REV, "In", &["asm-1-22"])])),
            )
        };
        let mut objects = cluster(vec![
            mutating_hooks(
                "istio-sidecar-injector-asm-1-22",
                vec![object_hook(
                    "rev.object.sidecar-injector.istio.io",
                    ("istio-system", "istiod-asm-1-22"),
                )],
            ),
            mutating_hooks(
                "revhook",
                vec![object_hook(
                    "rev.object.inject.revhook.dev",
                    ("revhook-system", "revhook"),
                )],
            ),
        ]);
        objects.pods = vec![
            pod("plain", "web-1-a")
                .of_deployment("web", "1")
                .label(ISTIO_REV, "asm-1-22"),
            pod("plain", "other"),
        ];
        let found = findings(&objects);
        assert_eq!(codes(&found), ["REVHOOK-INJECTOR-OVERLAP"]);
        assert_eq!(found[0].object, "Deployment/plain/web");
    }

    #[test]
    fn only_webhooks_that_inject_count() {
        let validate = mutating_hooks(
            "istio-validator-like",
            vec![injector_hook(
                "x.istio.io",
                ("istio-system", "istiod"),
                "/validate",
                selector(&[], &[]),
                None,
            )],
        );
        let found = findings(&cluster(vec![validate, revhook_injector()]));
        assert!(found.is_empty(), "{found:?}");
    }
}
