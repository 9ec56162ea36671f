//! Revisions and tags: tags pointing at nothing, revisions nobody uses any more, revisions
//! half removed, an istiod that serves nothing, AKS mesh settings a canary lacks (or that a
//! removed revision left behind), and the per-revision summary of the upgrade's progress.

use std::collections::BTreeSet;

use super::facts::{namespaces_on, namespaces_overridden_onto, PodFacts};
use super::installed::{istiod_name, ready_endpoints, Parts, AKS_SHARED_CONFIGMAP};
use super::progress::NamespaceProgress;
use super::{finding, Cluster, Finding, RevisionSummary, Severity};
use crate::core::revisions::minor_version;
use crate::core::snapshot::Snapshot;

pub(super) fn findings(cluster: &Cluster<'_>) -> Vec<Finding> {
    let snapshot = &cluster.snapshot;
    let mut out = dangling_tags(snapshot);
    out.extend(unusable(snapshot));
    out.extend(unused(snapshot, &cluster.pods));
    out.extend(
        cluster
            .inventory
            .half_removed()
            .map(|p| half_removed(cluster, p)),
    );
    out.extend(istiod_not_ready(cluster));
    out.extend(leftover_shared_configmaps(cluster));
    out.extend(missing_mesh_config(cluster));
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

/// Revisions whose injector revhook cannot run (no config, a template it cannot parse,
/// values or mesh config it cannot read): in inject mode their pods are refused.
fn unusable(snapshot: &Snapshot) -> Vec<Finding> {
    snapshot
        .table
        .revisions()
        .filter_map(|rev| {
            let problem = rev.injector.as_ref().err()?;
            Some(finding(
                Severity::Error,
                "REVHOOK-REVISION-UNUSABLE",
                None,
                format!("Revision/{}", rev.name),
                format!(
                    "revhook cannot run revision {:?}'s injector: {problem}; in inject mode its pods are refused",
                    rev.name
                ),
                Some(format!(
                    "kubectl get configmap -A -l istio.io/rev={} -o yaml   # fix the injector ConfigMap's data.config/data.values, or its mesh ConfigMap",
                    rev.name
                )),
            ))
        })
        .collect()
}

/// Revisions some namespace selects (directly or via a tag) or some pod runs: what an upgrade
/// still spans.
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

/// What still refers to a revision, beyond [`in_use`]: a tag pointing at it (removing the
/// revision leaves the tag dangling), a namespace whose `istio.io/rev` names it while
/// `istio-injection` overrides it (fixing that conflict would select it), a pod label
/// selecting it.
fn referenced(snapshot: &Snapshot, pods: &[PodFacts<'_>], revision: &str) -> bool {
    snapshot.table.tags().any(|(_, target)| target == revision)
        || !namespaces_overridden_onto(snapshot, revision).is_empty()
        || pods.iter().any(|p| p.fresh.target() == Some(revision))
}

fn unused(snapshot: &Snapshot, pods: &[PodFacts<'_>]) -> Vec<Finding> {
    let used = in_use(snapshot, pods);
    snapshot
        .table
        .revisions()
        .filter(|rev| !used.contains(&rev.name) && !referenced(snapshot, pods, &rev.name))
        .map(|rev| {
            finding(
                Severity::Info,
                "REVHOOK-REVISION-UNUSED",
                None,
                format!("Revision/{}", rev.name),
                "no namespace selects this revision (directly, through a tag, or behind an istio-injection label), no tag points at it and no pod runs it: safe to remove once the upgrade is complete".into(),
                Some(format!("revhook check --before-remove {}", rev.name)),
            )
        })
        .collect()
}

/// A revision of which some parts are left but that cannot serve: the ASM guide's removal
/// (`kubectl delete Service,Deployment,HPA,PDB istiod-<old>`) leaves the ConfigMaps and webhook
/// configurations; a deleted ConfigMap leaves the Service and Deployment.
fn half_removed(cluster: &Cluster<'_>, parts: &Parts<'_>) -> Finding {
    let gone = match (parts.injector.is_some(), parts.service.is_some()) {
        (true, false) => format!(
            "its istiod Service {}/{} is gone",
            parts.namespace,
            parts.istiod_name()
        ),
        _ => format!(
            "its injector ConfigMap {}/istio-sidecar-injector-{} is gone",
            parts.namespace, parts.revision
        ),
    };
    let endpoints = ready_endpoints(cluster.objects, &parts.namespace, &parts.istiod_name())
        .filter(|_| parts.service.is_some())
        .map(|n| format!("; its Service has {n} ready endpoint(s)"))
        .unwrap_or_default();
    finding(
        Severity::Warning,
        "REVHOOK-REVISION-HALF-REMOVED",
        None,
        format!("Revision/{}", parts.revision),
        format!(
            "revision {:?} is half removed: {gone}, but left behind: {}{endpoints}. revhook treats it as not installed (namespaces and pods on it are stale)",
            parts.revision,
            parts.present().join(", ")
        ),
        Some(format!(
            "finish removing it: {}   (or reinstall it if it should still serve)",
            parts.removal_commands().join(" && ")
        )),
    )
}

/// An installed revision whose istiod has no ready endpoints: its proxies get no
/// configuration, and webhooks calling it fail ("no endpoints available for service").
fn istiod_not_ready(cluster: &Cluster<'_>) -> Vec<Finding> {
    cluster
        .inventory
        .revisions
        .values()
        .filter(|p| cluster.inventory.is_installed(&p.revision))
        .filter_map(|p| {
            let ns = &p.namespace;
            let service = p.istiod_name();
            (ready_endpoints(cluster.objects, ns, &service)? == 0).then(|| {
                let deployment = p
                    .deployment_status()
                    .map(|d| format!(" (Deployment {}: {}/{} ready)", d.name, d.ready, d.replicas))
                    .unwrap_or_default();
                finding(
                    Severity::Warning,
                    "REVHOOK-ISTIOD-NOT-READY",
                    None,
                    format!("Revision/{}", p.revision),
                    format!("the istiod Service {ns}/{service} of revision {:?} has no ready endpoints{deployment}: its proxies get no configuration and webhooks calling it fail", p.revision),
                    Some(format!("kubectl -n {ns} rollout status deployment/{service}; kubectl -n {ns} get pods -l istio.io/rev={}", p.revision)),
                )
            })
        })
        .collect()
}

/// A revision's version: from its name, else from its proxy image.
fn version_of(snapshot: &Snapshot, name: &str) -> Option<(u64, u64)> {
    minor_version(name).or_else(|| {
        snapshot
            .table
            .revision(name)
            .and_then(|r| minor_version(&r.proxy_image))
    })
}

/// `istio-shared-configmap-<rev>` of a revision that is gone (and of which nothing else is
/// left). One for a revision newer than every installed one is taken as prepared for the next
/// upgrade (the AKS guide has it created before `az aks mesh upgrade start`), and so is the
/// one of `--upgrade-to`.
fn leftover_shared_configmaps(cluster: &Cluster<'_>) -> Vec<Finding> {
    let snapshot = &cluster.snapshot;
    let newest = snapshot
        .table
        .revisions()
        .filter_map(|r| version_of(snapshot, &r.name))
        .max();
    cluster
        .inventory
        .shared
        .iter()
        .filter(|(rev, _)| {
            !cluster.inventory.revisions.contains_key(*rev)
                && cluster.opts.upgrade_to.as_deref() != Some(rev.as_str())
        })
        .filter(|(rev, _)| match (minor_version(rev), newest) {
            (Some(v), Some(n)) => v <= n,
            _ => true,
        })
        .map(|(rev, cm)| {
            let ns = cm.metadata.namespace.as_deref().unwrap_or_default();
            finding(
                Severity::Warning,
                "REVHOOK-LEFTOVER-CONFIGMAP",
                None,
                format!("ConfigMap/{ns}/{AKS_SHARED_CONFIGMAP}{rev}"),
                format!("mesh settings of revision {rev:?}, which is no longer installed"),
                Some(format!(
                    "kubectl delete configmap {AKS_SHARED_CONFIGMAP}{rev} -n {ns}"
                )),
            )
        })
        .collect()
}

/// AKS keeps per-revision mesh settings in `istio-shared-configmap-<rev>`: a newer revision
/// without its own copy while an older one has one silently runs with defaults (the add-on
/// guide's precondition). With `--upgrade-to`, the target is judged before it is installed,
/// and its lack is an error: `az aks mesh upgrade start` must not run yet.
fn missing_mesh_config(cluster: &Cluster<'_>) -> Vec<Finding> {
    let snapshot = &cluster.snapshot;
    let shared = &cluster.inventory.shared;
    let having: Vec<&str> = snapshot
        .table
        .revisions()
        .map(|r| r.name.as_str())
        .filter(|r| shared.contains_key(*r))
        .collect();
    let Some(newest_having) = having
        .iter()
        .max_by_key(|r| version_of(snapshot, r))
        .copied()
    else {
        return Vec::new();
    };
    let older_has = |rev: &str| {
        let v = version_of(snapshot, rev);
        having.iter().any(|h| {
            v.is_none() || version_of(snapshot, h).is_none() || version_of(snapshot, h) < v
        })
    };
    let ns = shared
        .get(newest_having)
        .and_then(|c| c.metadata.namespace.as_deref())
        .unwrap_or("aks-istio-system");
    let fix = |target: &str| {
        Some(format!(
            "kubectl get configmap {AKS_SHARED_CONFIGMAP}{newest_having} -n {ns} -o yaml | sed 's/{AKS_SHARED_CONFIGMAP}{newest_having}/{AKS_SHARED_CONFIGMAP}{target}/' | kubectl apply -f -"
        ))
    };
    let mut out: Vec<Finding> = snapshot
        .table
        .revisions()
        .filter(|r| !shared.contains_key(&r.name) && older_has(&r.name))
        .map(|rev| {
            finding(
                Severity::Warning,
                "REVHOOK-MESH-CONFIG",
                None,
                format!("Revision/{}", rev.name),
                format!("revision {:?} has no {AKS_SHARED_CONFIGMAP}{} while {newest_having} has one: it runs with default mesh settings", rev.name, rev.name),
                fix(&rev.name),
            )
        })
        .collect();
    if let Some(target) = cluster.opts.upgrade_to.as_deref() {
        if snapshot.table.revision(target).is_none() && !shared.contains_key(target) {
            out.push(finding(
                Severity::Error,
                "REVHOOK-MESH-CONFIG",
                None,
                format!("Revision/{target}"),
                format!("the upgrade target {target:?} has no {AKS_SHARED_CONFIGMAP}{target} while the current revision {newest_having} has one: create it before starting the upgrade, or the new revision starts with default mesh settings"),
                fix(target),
            ));
        }
    }
    out
}

/// Per revision: its image, tags, the namespaces on it, how many pods run it and how many
/// should, and whether its control plane serves.
pub(super) fn summary(
    cluster: &Cluster<'_>,
    progress: &[NamespaceProgress],
) -> Vec<RevisionSummary> {
    let snapshot = &cluster.snapshot;
    snapshot
        .table
        .revisions()
        .map(|rev| {
            let parts = cluster.inventory.revisions.get(&rev.name);
            let ns = parts.map_or("", |p| p.namespace.as_str());
            let mine = progress.iter().filter(|p| p.revision == rev.name);
            RevisionSummary {
                revision: rev.name.clone(),
                image: rev.proxy_image.clone(),
                tags: snapshot
                    .table
                    .tags()
                    .filter(|(_, r)| *r == rev.name)
                    .map(|(t, _)| t.to_owned())
                    .collect(),
                namespaces: namespaces_on(snapshot, &rev.name),
                pods: cluster
                    .pods
                    .iter()
                    .filter(|p| p.is_running() && p.runs(&rev.name))
                    .count(),
                target_pods: mine.clone().map(|p| p.pods).sum(),
                left: mine.map(|p| p.left).sum(),
                service: parts
                    .and_then(|p| p.service)
                    .map(|_| format!("{ns}/{}", istiod_name(&rev.name))),
                deployment: parts.and_then(Parts::deployment_status),
                ready_endpoints: parts
                    .filter(|p| p.service.is_some())
                    .and_then(|p| ready_endpoints(cluster.objects, ns, &p.istiod_name())),
                mesh: rev.injector.as_ref().ok().map(|i| i.identity()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{
        codes, configmap, deployment, endpoint_slice, injector, judge_cluster, namespace, pod,
        service, PodBuilder as _,
    };
    use crate::check::{CheckOptions, ClusterObjects};
    use crate::core::labels::{ISTIO_INJECTION, ISTIO_REV};
    use k8s_openapi::api::core::v1::ConfigMap;

    fn revisions() -> Vec<ConfigMap> {
        vec![
            injector("istio-system", "asm-1-22", "1.22.1"),
            injector("istio-system", "asm-1-23", "1.23.1"),
        ]
    }

    fn istiods() -> Vec<k8s_openapi::api::core::v1::Service> {
        vec![
            service("istio-system", "istiod-asm-1-22"),
            service("istio-system", "istiod-asm-1-23"),
        ]
    }

    fn tag(
        name: &str,
        rev: &str,
    ) -> k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration {
        crate::check::tests::mutating(
            &format!("istio-revision-tag-{name}"),
            &[(crate::core::labels::ISTIO_TAG, name), (ISTIO_REV, rev)],
            vec![],
        )
    }

    /// Both revisions installed, used by a namespace each, plus `extra` objects.
    fn both_used(extra: ClusterObjects) -> ClusterObjects {
        let mut namespaces = vec![
            namespace("old", &[(ISTIO_REV, "asm-1-22")]),
            namespace("new", &[(ISTIO_REV, "asm-1-23")]),
        ];
        namespaces.extend(extra.namespaces.iter().cloned());
        let mut configmaps = revisions();
        configmaps.extend(extra.configmaps.iter().cloned());
        ClusterObjects {
            namespaces,
            configmaps,
            services: extra.services.clone().or_else(|| Some(istiods())),
            ..extra
        }
    }

    fn judge(objects: ClusterObjects) -> Vec<Finding> {
        judge_cluster(objects, CheckOptions::default(), findings)
    }

    fn judge_with(objects: ClusterObjects, opts: CheckOptions) -> Vec<Finding> {
        judge_cluster(objects, opts, findings)
    }

    #[test]
    fn a_revision_whose_injector_cannot_run_is_reported_with_why() {
        let mut objects = both_used(ClusterObjects::default());
        for cm in &mut objects.configmaps {
            if cm.metadata.name.as_deref() == Some("istio-sidecar-injector-asm-1-23") {
                cm.data.get_or_insert_with(Default::default).insert(
                    "config".into(),
                    "templates:\n  sidecar: '{{ nosuchfunc }}'\n".into(),
                );
            }
        }
        let found = judge(objects);
        assert_eq!(codes(&found), ["REVHOOK-REVISION-UNUSABLE"]);
        assert_eq!(found[0].object, "Revision/asm-1-23");
        assert!(
            found[0].message.contains("nosuchfunc"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_tag_pointing_at_a_revision_not_installed_is_dangling() {
        let found = judge(both_used(ClusterObjects {
            mutating: vec![tag("prod", "asm-1-21")],
            ..ClusterObjects::default()
        }));
        assert_eq!(codes(&found), ["REVHOOK-TAG-DANGLING"]);
        assert_eq!(found[0].object, "Tag/prod");
        assert_eq!(
            found[0].fix.as_deref(),
            Some("istioctl tag set prod --revision asm-1-23 --overwrite")
        );
    }

    #[test]
    fn a_tag_pointing_at_an_installed_revision_is_not_dangling() {
        let found = judge(both_used(ClusterObjects {
            mutating: vec![tag("prod", "asm-1-22")],
            ..ClusterObjects::default()
        }));
        assert!(found.is_empty(), "{found:?}");
    }

    fn only_new_namespace(extra: ClusterObjects) -> ClusterObjects {
        ClusterObjects {
            namespaces: vec![namespace("new", &[(ISTIO_REV, "asm-1-23")])]
                .into_iter()
                .chain(extra.namespaces.iter().cloned())
                .collect(),
            configmaps: revisions(),
            services: Some(istiods()),
            ..extra
        }
    }

    #[test]
    fn a_revision_no_namespace_tag_or_pod_uses_is_unused() {
        let found = judge(only_new_namespace(ClusterObjects::default()));
        assert_eq!(codes(&found), ["REVHOOK-REVISION-UNUSED"]);
        assert_eq!(found[0].object, "Revision/asm-1-22");
        assert_eq!(found[0].severity, Severity::Info);
        assert_eq!(
            found[0].fix.as_deref(),
            Some("revhook check --before-remove asm-1-22")
        );
    }

    #[test]
    fn a_tag_target_is_not_unused_removing_it_would_dangle_the_tag() {
        let found = judge(only_new_namespace(ClusterObjects {
            mutating: vec![tag("prod-stable", "asm-1-22")],
            ..ClusterObjects::default()
        }));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_revision_named_behind_an_overriding_injection_label_is_not_unused() {
        // `shop` selects default (asm-1-23) because istio-injection wins, but its istio.io/rev
        // names prod-stable -> asm-1-22: applying REVHOOK-CONFLICT's fix would select it.
        let objects = ClusterObjects {
            mutating: vec![tag("default", "asm-1-23"), tag("prod-stable", "asm-1-22")],
            namespaces: vec![namespace(
                "shop",
                &[(ISTIO_INJECTION, "enabled"), (ISTIO_REV, "prod-stable")],
            )],
            ..ClusterObjects::default()
        };
        let found = judge(only_new_namespace(objects));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_revision_used_by_a_pod_label_or_a_running_pod_is_not_unused() {
        let labelled = only_new_namespace(ClusterObjects {
            namespaces: vec![namespace("plain", &[])],
            pods: vec![pod("plain", "web").label(ISTIO_REV, "asm-1-22")],
            ..ClusterObjects::default()
        });
        assert!(judge(labelled).is_empty());
        let running = only_new_namespace(ClusterObjects {
            pods: vec![pod("plain", "web").injected("asm-1-22", "img")],
            ..ClusterObjects::default()
        });
        assert!(judge(running).is_empty());
    }

    #[test]
    fn a_revision_without_its_service_is_half_removed_with_what_is_left() {
        let found = judge(ClusterObjects {
            services: Some(vec![service("istio-system", "istiod-asm-1-23")]),
            mutating: vec![crate::check::tests::mutating(
                "istio-sidecar-injector-asm-1-22",
                &[],
                vec![],
            )],
            ..both_used(ClusterObjects::default())
        });
        let found: Vec<&Finding> = found
            .iter()
            .filter(|f| f.code == "REVHOOK-REVISION-HALF-REMOVED")
            .collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].object, "Revision/asm-1-22");
        assert_eq!(
            found[0].message,
            "revision \"asm-1-22\" is half removed: its istiod Service istio-system/istiod-asm-1-22 is gone, but left behind: ConfigMap istio-system/istio-sidecar-injector-asm-1-22, MutatingWebhookConfiguration istio-sidecar-injector-asm-1-22. revhook treats it as not installed (namespaces and pods on it are stale)"
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("finish removing it: kubectl delete configmap istio-sidecar-injector-asm-1-22 -n istio-system && kubectl delete mutatingwebhookconfiguration istio-sidecar-injector-asm-1-22   (or reinstall it if it should still serve)")
        );
    }

    #[test]
    fn a_service_and_deployment_left_without_the_configmap_is_half_removed_with_its_endpoints() {
        let found = judge(ClusterObjects {
            configmaps: vec![injector("istio-system", "asm-1-23", "1.23.1")],
            namespaces: vec![namespace("new", &[(ISTIO_REV, "asm-1-23")])],
            services: Some(istiods()),
            deployments: vec![deployment("istio-system", "istiod-asm-1-22", 1, 1)],
            endpoint_slices: Some(vec![
                endpoint_slice("istio-system", "istiod-asm-1-22", &[true]),
                endpoint_slice("istio-system", "istiod-asm-1-23", &[true]),
            ]),
            ..ClusterObjects::default()
        });
        assert_eq!(codes(&found), ["REVHOOK-REVISION-HALF-REMOVED"]);
        assert!(
            found[0].message.contains("its injector ConfigMap istio-system/istio-sidecar-injector-asm-1-22 is gone, but left behind: Service istio-system/istiod-asm-1-22, Deployment istio-system/istiod-asm-1-22 (1/1 ready); its Service has 1 ready endpoint(s)"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn an_installed_istiod_without_ready_endpoints_is_flagged() {
        let found = judge(ClusterObjects {
            deployments: vec![deployment("istio-system", "istiod-asm-1-23", 2, 0)],
            endpoint_slices: Some(vec![
                endpoint_slice("istio-system", "istiod-asm-1-22", &[true]),
                endpoint_slice("istio-system", "istiod-asm-1-23", &[false, false]),
            ]),
            ..both_used(ClusterObjects::default())
        });
        assert_eq!(codes(&found), ["REVHOOK-ISTIOD-NOT-READY"]);
        assert_eq!(found[0].object, "Revision/asm-1-23");
        assert!(
            found[0]
                .message
                .contains("(Deployment istiod-asm-1-23: 0/2 ready)"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_shared_configmap_of_a_removed_revision_is_a_leftover_unless_prepared_for_an_upgrade() {
        let cms = |names: &[&str]| ClusterObjects {
            configmaps: names
                .iter()
                .map(|n| configmap("istio-system", n, &[]))
                .collect(),
            ..ClusterObjects::default()
        };
        let found = judge(both_used(cms(&[
            "istio-shared-configmap-asm-1-22",
            "istio-shared-configmap-asm-1-23",
            "istio-shared-configmap-asm-1-21",
            "istio-shared-configmap-asm-1-24",
        ])));
        assert_eq!(codes(&found), ["REVHOOK-LEFTOVER-CONFIGMAP"]);
        assert_eq!(
            found[0].object,
            "ConfigMap/istio-system/istio-shared-configmap-asm-1-21"
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl delete configmap istio-shared-configmap-asm-1-21 -n istio-system")
        );
    }

    #[test]
    fn a_newer_revision_without_the_shared_configmap_an_older_has_is_flagged() {
        let found = judge(both_used(ClusterObjects {
            configmaps: vec![configmap(
                "istio-system",
                "istio-shared-configmap-asm-1-22",
                &[],
            )],
            ..ClusterObjects::default()
        }));
        assert_eq!(codes(&found), ["REVHOOK-MESH-CONFIG"]);
        assert_eq!(found[0].object, "Revision/asm-1-23");
        assert!(
            found[0]
                .message
                .contains("has no istio-shared-configmap-asm-1-23 while asm-1-22 has one"),
            "{}",
            found[0].message
        );
        // The other way round (the old one lacks it) is no precondition.
        let found = judge(both_used(ClusterObjects {
            configmaps: vec![configmap(
                "istio-system",
                "istio-shared-configmap-asm-1-23",
                &[],
            )],
            ..ClusterObjects::default()
        }));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn before_an_upgrade_the_targets_shared_configmap_must_exist() {
        let objects = || {
            both_used(ClusterObjects {
                configmaps: vec![
                    configmap("istio-system", "istio-shared-configmap-asm-1-22", &[]),
                    configmap("istio-system", "istio-shared-configmap-asm-1-23", &[]),
                ],
                ..ClusterObjects::default()
            })
        };
        let to = |rev: &str| CheckOptions {
            upgrade_to: Some(rev.into()),
            ..CheckOptions::default()
        };
        let found = judge_with(objects(), to("asm-1-24"));
        assert_eq!(codes(&found), ["REVHOOK-MESH-CONFIG"]);
        assert_eq!(found[0].severity, Severity::Error);
        assert_eq!(found[0].object, "Revision/asm-1-24");
        assert!(
            found[0].fix.as_deref().is_some_and(
                |f| f.contains("istio-shared-configmap-asm-1-23 -n istio-system -o yaml")
            )
        );
        let mut ready = objects();
        ready.configmaps.push(configmap(
            "istio-system",
            "istio-shared-configmap-asm-1-24",
            &[],
        ));
        assert!(
            judge_with(ready, to("asm-1-24")).is_empty(),
            "prepared: no leftover either"
        );
        let none = both_used(ClusterObjects::default());
        assert!(
            judge_with(none, to("asm-1-24")).is_empty(),
            "no revision has one: nothing to copy"
        );
    }

    #[test]
    fn the_summary_counts_tags_namespaces_pods_and_the_control_plane() {
        let objects = ClusterObjects {
            mutating: vec![tag("prod", "asm-1-22"), tag("stable", "asm-1-22")],
            pods: vec![
                pod("old", "a").injected("asm-1-22", "docker.io/istio/proxyv2:1.22.1"),
                pod("old", "b").injected("asm-1-22", "docker.io/istio/proxyv2:1.22.1"),
                pod("old", "c"),
                pod("new", "d").injected("asm-1-22", "docker.io/istio/proxyv2:1.22.1"),
            ],
            deployments: vec![deployment("istio-system", "istiod-asm-1-22", 2, 2)],
            endpoint_slices: Some(vec![endpoint_slice(
                "istio-system",
                "istiod-asm-1-22",
                &[true, true],
            )]),
            ..both_used(ClusterObjects::default())
        };
        let opts = CheckOptions::default();
        let summary = crate::check::tests::with_cluster(&objects, &opts, |c| {
            let progress = crate::check::progress::per_namespace(&c.pods, |_| true);
            summary(c, &progress)
        });
        assert_eq!(
            summary[0],
            RevisionSummary {
                revision: "asm-1-22".into(),
                image: "docker.io/istio/proxyv2:1.22.1".into(),
                tags: vec!["prod".into(), "stable".into()],
                namespaces: vec!["old".into()],
                pods: 3,
                target_pods: 3,
                left: 1,
                service: Some("istio-system/istiod-asm-1-22".into()),
                deployment: Some(crate::check::DeploymentStatus {
                    name: "istiod-asm-1-22".into(),
                    replicas: 2,
                    ready: 2
                }),
                ready_endpoints: Some(2),
                mesh: Some(crate::core::injector::MeshIdentity {
                    trust_domain: "cluster.local".into(),
                    cluster_id: "Kubernetes".into(),
                    mesh_id: "cluster.local".into(),
                    network: String::new(),
                }),
            }
        );
        assert_eq!(summary[1].revision, "asm-1-23");
        assert!(summary[1].tags.is_empty());
        assert_eq!(summary[1].namespaces, ["new"]);
        assert_eq!(
            (summary[1].pods, summary[1].target_pods, summary[1].left),
            (0, 1, 1)
        );
        assert_eq!(summary[1].ready_endpoints, Some(0));
    }
}
