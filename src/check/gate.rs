//! Gates an operator asks before an upgrade step. Each thing still on what is about to change
//! is a finding of severity error (so `check` exits 1 until it is gone), and the gate's report
//! counts them (`left`), so a script can wait for 0.
//!
//! - `--before-remove REV`: namespaces selecting it (by label, through a tag, or behind an
//!   overriding `istio-injection` label), tags pointing at it, pods running its proxy or
//!   selecting it by label, gateways it injects, webhooks calling its istiod. What belongs to
//!   the revision itself (its ConfigMaps, Service, Deployment, webhook configurations) is not in
//!   the way: the report lists the commands that remove it.
//! - `--before-tag-move TAG=REV`: the pods of the namespaces on the tag that would not run REV
//!   after the move, with one restart per workload; run again after the move, it shows what is
//!   still left on the old proxy.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Resource as _;

use super::facts::{
    fresh_template, pod_facts_under, sorted_namespaces, workload_of, Fresh, PodFacts,
};
use super::installed::{istiod_name, own_revision};
use super::pods::AUTO_IMAGE;
use super::progress::per_namespace;
use super::{finding, Cluster, Finding, Gate, GateKind, GateReport, Severity};
use crate::core::labels::ISTIO_TAG;
use crate::core::messages::{restart_command, Selector};
use crate::core::revisions::{
    check_label_value, minor_version, Revision, RevisionTable, DEFAULT_TAG,
};
use crate::core::webhooks::Hooks as _;

const REMOVE: &str = "REVHOOK-GATE-REMOVE";
const TAG_MOVE: &str = "REVHOOK-GATE-TAG-MOVE";

pub(super) fn judge(cluster: &Cluster<'_>, gate: &Gate) -> (GateReport, Vec<Finding>) {
    match gate {
        Gate::BeforeRemove(revision) => before_remove(cluster, revision),
        Gate::BeforeTagMove { tag, revision } => before_tag_move(cluster, tag, revision),
    }
}

fn blocking(code: &'static str, object: String, message: String, fix: Option<String>) -> Finding {
    finding(Severity::Error, code, None, object, message, fix)
}

/// Where things on `revision` should go: the `default` tag's revision or the newest installed
/// one, other than `revision` itself.
fn other_revision(table: &RevisionTable, revision: &str) -> String {
    table
        .suggested_target()
        .filter(|t| t != revision)
        .or_else(|| {
            table
                .revisions()
                .filter(|r| r.name != revision)
                .max_by_key(|r| (minor_version(&r.name), r.name.clone()))
                .map(|r| r.name.clone())
        })
        .unwrap_or_else(|| "<another revision>".into())
}

// === before-remove ===

fn before_remove(cluster: &Cluster<'_>, revision: &str) -> (GateReport, Vec<Finding>) {
    let table = &cluster.snapshot.table;
    let to = other_revision(table, revision);
    let mut items = tags_on(table, revision, &to);
    items.extend(namespaces_on(cluster, revision, &to));
    items.extend(workloads_on(cluster, revision, &to));
    items.extend(webhooks_calling(cluster, revision, &to));
    let parts = cluster.inventory.revisions.get(revision);
    if items.is_empty() && parts.is_none() && table.revision(revision).is_none() {
        let installed: Vec<&str> = table.revisions().map(|r| r.name.as_str()).collect();
        items.push(blocking(
            REMOVE,
            format!("Revision/{revision}"),
            format!(
                "nothing of revision {revision:?} is in this cluster (installed: {}): is the name right?",
                if installed.is_empty() { "none".into() } else { installed.join(", ") }
            ),
            None,
        ));
    }
    let report = GateReport {
        kind: GateKind::BeforeRemove,
        revision: revision.to_owned(),
        tag: None,
        left: items.len(),
        clear: items.is_empty(),
        progress: Vec::new(),
        removal: parts.map(|p| p.removal_commands()).unwrap_or_default(),
    };
    (report, items)
}

/// The revision an `istio.io/rev` value names: itself, or a tag's target (installed or not).
fn names_revision<'t>(table: &'t RevisionTable, value: &'t str) -> &'t str {
    table.tag_target(value).unwrap_or(value)
}

fn tags_on(table: &RevisionTable, revision: &str, to: &str) -> Vec<Finding> {
    table
        .tags()
        .filter(|(_, target)| *target == revision)
        .map(|(tag, _)| {
            blocking(
                REMOVE,
                format!("Tag/{tag}"),
                format!("tag {tag:?} points at revision {revision:?}: removing the revision leaves it dangling"),
                Some(format!("istioctl tag set {tag} --revision {to} --overwrite")),
            )
        })
        .collect()
}

fn namespaces_on(cluster: &Cluster<'_>, revision: &str, to: &str) -> Vec<Finding> {
    let table = &cluster.snapshot.table;
    let mut out = Vec::new();
    for (name, ns) in sorted_namespaces(&cluster.snapshot) {
        let object = format!("Namespace/{name}");
        if let Some(value) = ns.selected_value() {
            if names_revision(table, value) == revision {
                let (how, fix) = if ns.injection.is_some() {
                    (
                        format!("istio-injection=enabled selects tag {DEFAULT_TAG:?}, which points at it"),
                        format!("istioctl tag set {DEFAULT_TAG} --revision {to} --overwrite"),
                    )
                } else if value == revision {
                    (
                        format!("istio.io/rev={value}"),
                        format!("kubectl label namespace {name} istio.io/rev={to} --overwrite"),
                    )
                } else {
                    (
                        format!("istio.io/rev={value}, a tag that points at it"),
                        format!("istioctl tag set {value} --revision {to} --overwrite"),
                    )
                };
                out.push(blocking(
                    REMOVE,
                    object,
                    format!("namespace {name:?} selects revision {revision:?} ({how})"),
                    Some(fix),
                ));
                continue;
            }
        }
        if let (true, Some(rev_label)) = (ns.has_conflict(), ns.rev.as_deref()) {
            if names_revision(table, rev_label) == revision {
                out.push(blocking(
                    REMOVE,
                    object,
                    format!("namespace {name:?} has istio.io/rev={rev_label}, which names revision {revision:?}; istio-injection overrides it today, and fixing that conflict would select it"),
                    Some(format!("kubectl label namespace {name} istio.io/rev={to} --overwrite")),
                ));
            }
        }
    }
    out
}

/// Pods running the revision's proxy or selecting it by their own label, and `image: auto`
/// workloads it injects, one finding per workload with every reason.
fn workloads_on(cluster: &Cluster<'_>, revision: &str, to: &str) -> Vec<Finding> {
    let mut by_workload: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    let mut running: BTreeMap<String, usize> = BTreeMap::new();
    for p in cluster.pods.iter().filter(|p| p.is_running()) {
        if p.runs(revision) && p.proxy_image.is_some() {
            *running.entry(workload_of(p.pod)).or_default() += 1;
            let fix = match p.fresh.target() {
                Some(t) if t != revision => restart_command(p.pod),
                _ => format!(
                    "move it off {revision} (namespace or pod label), then {}",
                    restart_command(p.pod)
                ),
            };
            by_workload
                .entry(workload_of(p.pod))
                .or_insert_with(|| (Vec::new(), fix));
        }
        if selects_by_pod_label(p, revision) {
            let workload = workload_of(p.pod);
            let reason = "its pod template selects it with its own istio.io/rev label".to_owned();
            let entry = by_workload.entry(workload.clone()).or_insert_with(|| {
                (
                    Vec::new(),
                    format!(
                        "set istio.io/rev={to} in the pod template of {workload}, then {}",
                        restart_command(p.pod)
                    ),
                )
            });
            if !entry.0.contains(&reason) {
                entry.0.push(reason);
            }
        }
    }
    for (workload, count) in &running {
        if let Some(entry) = by_workload.get_mut(workload) {
            entry
                .0
                .insert(0, format!("{count} running pod(s) have its proxy"));
        }
    }
    for (workload, fix) in gateways_on(cluster, revision, to) {
        by_workload
            .entry(workload)
            .or_insert_with(|| (Vec::new(), fix))
            .0
            .push("a gateway (image: auto) it injects".into());
    }
    by_workload
        .into_iter()
        .map(|(workload, (reasons, fix))| {
            blocking(
                REMOVE,
                workload,
                format!("on revision {revision:?}: {}", reasons.join("; ")),
                Some(fix),
            )
        })
        .collect()
}

fn selects_by_pod_label(p: &PodFacts<'_>, revision: &str) -> bool {
    match &p.fresh {
        Fresh::Inject {
            revision: r,
            selector: Selector::PodRev,
            ..
        } => r == revision,
        Fresh::Stale {
            stale,
            selector: Selector::PodRev,
        } => stale.requested == revision || stale.dangling_tag_target.as_deref() == Some(revision),
        _ => false,
    }
}

/// `image: auto` Deployments and StatefulSets whose pods the revision would inject (or would,
/// if it were still installed): `(workload, fix)`.
fn gateways_on(cluster: &Cluster<'_>, revision: &str, to: &str) -> Vec<(String, String)> {
    let objects = cluster.objects;
    let templates = objects
        .deployments
        .iter()
        .filter_map(|d| Some(("Deployment", &d.metadata, &d.spec.as_ref()?.template)))
        .chain(
            objects
                .statefulsets
                .iter()
                .filter_map(|s| Some(("StatefulSet", &s.metadata, &s.spec.as_ref()?.template))),
        );
    let snapshot = &cluster.snapshot;
    templates
        .filter_map(|(kind, meta, template)| {
            let spec = template.spec.as_ref()?;
            spec.containers
                .iter()
                .any(|c| c.image.as_deref() == Some(AUTO_IMAGE))
                .then_some(())?;
            let ns = meta.namespace.as_deref().unwrap_or("default");
            let pod_meta = template.metadata.clone().unwrap_or_default();
            let on_it = match fresh_template(&pod_meta, Some(spec), ns, snapshot, &snapshot.table) {
                Fresh::Inject { revision: r, .. } => r == revision,
                Fresh::Stale { stale, .. } => {
                    stale.requested == revision
                        || stale.dangling_tag_target.as_deref() == Some(revision)
                }
                Fresh::NotInjected => false,
            };
            let name = meta.name.as_deref().unwrap_or_default();
            on_it.then(|| {
                (
                    format!("{kind}/{ns}/{name}"),
                    format!("set istio.io/rev={to} on the pod template of {kind}/{ns}/{name} (or its namespace), then kubectl rollout restart {}/{name} -n {ns}", kind.to_ascii_lowercase()),
                )
            })
        })
        .collect()
}

/// Webhook configurations other than the revision's own (and than tags, judged as tags) whose
/// webhooks call its istiod Service: they fail once it is gone.
fn webhooks_calling(cluster: &Cluster<'_>, revision: &str, to: &str) -> Vec<Finding> {
    let service = istiod_name(revision);
    let namespaces = &cluster.inventory.istio_namespaces;
    let objects = cluster.objects;
    let configs = objects
        .mutating
        .iter()
        .map(|m| (MutatingWebhookConfiguration::KIND, &m.metadata, m.hooks()))
        .chain(
            objects
                .validating
                .iter()
                .map(|v| (ValidatingWebhookConfiguration::KIND, &v.metadata, v.hooks())),
        );
    configs
        .filter(|(_, meta, _)| !belongs_elsewhere(meta, revision))
        .filter_map(|(kind, meta, hooks)| {
            let calling: Vec<&str> = hooks
                .iter()
                .filter(|(_, c)| {
                    c.service
                        .as_ref()
                        .is_some_and(|s| s.name == service && namespaces.contains(&s.namespace))
                })
                .map(|(name, _)| *name)
                .collect();
            let name = meta.name.as_deref().unwrap_or_default();
            (!calling.is_empty()).then(|| {
                blocking(
                    REMOVE,
                    format!("{kind}/{name}"),
                    format!("its webhooks {} call istiod Service {service} of revision {revision:?}: they fail once it is gone", calling.join(", ")),
                    Some(format!("point it at revision {to} (istioctl tag set default --revision {to} rewrites istiod-default-validator) or delete it")),
                )
            })
        })
        .collect()
}

/// The revision's own webhook configurations go with it, and tag webhooks are judged as tags.
fn belongs_elsewhere(meta: &ObjectMeta, revision: &str) -> bool {
    own_revision(meta).as_deref() == Some(revision)
        || meta
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(ISTIO_TAG))
}

// === before-tag-move ===

fn before_tag_move(cluster: &Cluster<'_>, tag: &str, revision: &str) -> (GateReport, Vec<Finding>) {
    let table = &cluster.snapshot.table;
    let report = |left: usize, progress| GateReport {
        kind: GateKind::BeforeTagMove,
        revision: revision.to_owned(),
        tag: Some(tag.to_owned()),
        left,
        clear: left == 0,
        progress,
        removal: Vec::new(),
    };
    let moved = match moved_table(table, tag, revision) {
        Ok(t) => t,
        Err(why) => {
            let selecting = cluster.snapshot.namespaces_selecting(tag).join(", ");
            let item = blocking(
                TAG_MOVE,
                format!("Tag/{tag}"),
                format!(
                    "tag {tag:?} cannot move to {revision:?}: {why}{}",
                    if selecting.is_empty() {
                        String::new()
                    } else {
                        format!(" (namespaces on the tag: {selecting})")
                    }
                ),
                table
                    .suggested_target()
                    .map(|t| format!("revhook check --before-tag-move {tag}={t}")),
            );
            return (report(1, Vec::new()), vec![item]);
        }
    };
    let facts: Vec<PodFacts<'_>> = cluster
        .objects
        .pods
        .iter()
        .map(|p| pod_facts_under(p, &cluster.snapshot, &moved))
        .collect();
    let via_tag =
        |p: &PodFacts<'_>| matches!(&p.fresh, Fresh::Inject { via_tag: Some(t), .. } if t == tag);
    let progress = per_namespace(&facts, via_tag);
    let from = table.tag_target(tag).unwrap_or("(a new tag)");
    let items: Vec<Finding> = progress
        .iter()
        .flat_map(|n| n.restarts.iter().map(move |r| (n, r)))
        .map(|(n, r)| {
            blocking(
                TAG_MOVE,
                r.workload.clone(),
                format!(
                    "{} pod(s) in namespace {} do not run {revision:?} (tag {tag:?}: {from} -> {revision}): left on their old proxy (or without one) until restarted",
                    r.pods, n.namespace
                ),
                Some(r.command.clone()),
            )
        })
        .collect();
    let left = progress.iter().map(|n| n.left).sum();
    (report(left, progress), items)
}

/// The table with `tag` pointing at `revision`, or why it cannot.
fn moved_table(table: &RevisionTable, tag: &str, revision: &str) -> Result<RevisionTable, String> {
    if table.revision(revision).is_none() {
        let installed: Vec<&str> = table.revisions().map(|r| r.name.as_str()).collect();
        return Err(format!(
            "that revision is not installed (installed: {}), so its namespaces would be left on a missing revision",
            if installed.is_empty() { "none".into() } else { installed.join(", ") }
        ));
    }
    if check_label_value(tag).is_err() {
        return Err("that is not a valid label value".into());
    }
    let revisions: Vec<Revision> = table.revisions().map(|r| (**r).clone()).collect();
    let tags = table
        .tags()
        .filter(|(t, _)| *t != tag)
        .map(|(t, r)| (t.to_owned(), r.to_owned()))
        .chain(std::iter::once((tag.to_owned(), revision.to_owned())));
    RevisionTable::new(revisions, tags).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{
        client, codes, deployment, injector, mutating, namespace, pod, service, validating,
        with_cluster, PodBuilder as _,
    };
    use crate::check::{CheckOptions, ClusterObjects};
    use crate::core::labels::{ISTIO_INJECTION, ISTIO_REV};

    fn tag(name: &str, rev: &str) -> MutatingWebhookConfiguration {
        mutating(
            &format!("istio-revision-tag-{name}"),
            &[(ISTIO_TAG, name), (ISTIO_REV, rev)],
            vec![],
        )
    }

    /// asm-1-22 and asm-1-23 installed; prod-stable -> asm-1-22, default -> asm-1-23.
    fn cluster(extra: ClusterObjects) -> ClusterObjects {
        let mut mutating = vec![tag("prod-stable", "asm-1-22"), tag("default", "asm-1-23")];
        mutating.extend(extra.mutating.iter().cloned());
        ClusterObjects {
            configmaps: vec![
                injector("istio-system", "asm-1-22", "1.22.1"),
                injector("istio-system", "asm-1-23", "1.23.1"),
            ],
            services: Some(vec![
                service("istio-system", "istiod-asm-1-22"),
                service("istio-system", "istiod-asm-1-23"),
            ]),
            mutating,
            ..extra
        }
    }

    fn gate(objects: &ClusterObjects, g: Gate) -> (GateReport, Vec<Finding>) {
        with_cluster(objects, &CheckOptions::default(), |c| judge(c, &g))
    }

    fn remove(objects: &ClusterObjects, rev: &str) -> (GateReport, Vec<Finding>) {
        gate(objects, Gate::BeforeRemove(rev.into()))
    }

    fn objects_of(found: &[Finding]) -> Vec<&str> {
        found.iter().map(|f| f.object.as_str()).collect()
    }

    #[test]
    fn a_revision_with_nothing_on_it_is_clear_and_its_removal_is_listed() {
        let objects = cluster(ClusterObjects {
            mutating: vec![mutating("istio-sidecar-injector-asm-1-22", &[], vec![])],
            namespaces: vec![namespace("shop", &[(ISTIO_REV, "asm-1-23")])],
            ..ClusterObjects::default()
        });
        let mut objects = objects;
        objects
            .mutating
            .retain(|m| m.metadata.name.as_deref() != Some("istio-revision-tag-prod-stable"));
        let (report, items) = remove(&objects, "asm-1-22");
        assert!(items.is_empty(), "{items:?}");
        assert!(report.clear);
        assert_eq!(report.left, 0);
        assert_eq!(
            report.removal,
            [
                "kubectl delete service,deployment,horizontalpodautoscaler,poddisruptionbudget istiod-asm-1-22 -n istio-system --ignore-not-found",
                "kubectl delete configmap istio-sidecar-injector-asm-1-22 -n istio-system",
                "kubectl delete mutatingwebhookconfiguration istio-sidecar-injector-asm-1-22",
            ]
        );
    }

    #[test]
    fn namespaces_by_label_by_tag_and_behind_an_override_block_the_removal() {
        let objects = cluster(ClusterObjects {
            namespaces: vec![
                namespace("a-direct", &[(ISTIO_REV, "asm-1-22")]),
                namespace("b-tag", &[(ISTIO_REV, "prod-stable")]),
                namespace(
                    "c-overridden",
                    &[(ISTIO_INJECTION, "enabled"), (ISTIO_REV, "prod-stable")],
                ),
                namespace("d-new", &[(ISTIO_REV, "asm-1-23")]),
            ],
            ..ClusterObjects::default()
        });
        let (report, items) = remove(&objects, "asm-1-22");
        assert_eq!(codes(&items), [REMOVE; 4]);
        assert_eq!(
            objects_of(&items),
            [
                "Tag/prod-stable",
                "Namespace/a-direct",
                "Namespace/b-tag",
                "Namespace/c-overridden"
            ]
        );
        assert_eq!(report.left, 4);
        assert!(!report.clear);
        assert_eq!(
            items[0].fix.as_deref(),
            Some("istioctl tag set prod-stable --revision asm-1-23 --overwrite")
        );
        assert_eq!(
            items[1].fix.as_deref(),
            Some("kubectl label namespace a-direct istio.io/rev=asm-1-23 --overwrite")
        );
        assert!(
            items[2]
                .message
                .contains("istio.io/rev=prod-stable, a tag that points at it"),
            "{}",
            items[2].message
        );
        assert!(
            items[3]
                .message
                .contains("istio-injection overrides it today"),
            "{}",
            items[3].message
        );
        let (_, items) = remove(&objects, "asm-1-23");
        assert!(
            objects_of(&items).contains(&"Namespace/c-overridden")
                && objects_of(&items).contains(&"Tag/default"),
            "istio-injection=enabled selects the default tag: {items:?}"
        );
    }

    #[test]
    fn pods_pod_labels_and_gateways_block_it_once_per_workload() {
        let mut gw = deployment("gw", "ingress", 1, 1);
        if let Some(spec) = gw.spec.as_mut() {
            spec.template
                .metadata
                .get_or_insert_with(Default::default)
                .labels = crate::check::tests::map(&[(ISTIO_REV, "asm-1-22")]);
            if let Some(pod) = spec.template.spec.as_mut() {
                pod.containers[0].image = Some(AUTO_IMAGE.into());
            }
        }
        let objects = cluster(ClusterObjects {
            namespaces: vec![
                namespace("shop", &[(ISTIO_REV, "asm-1-23")]),
                namespace("gw", &[]),
            ],
            pods: vec![
                pod("shop", "web-1-a")
                    .of_deployment("web", "1")
                    .injected("asm-1-22", "img"),
                pod("shop", "web-1-b")
                    .of_deployment("web", "1")
                    .injected("asm-1-22", "img"),
                pod("gw", "ingress-1-a")
                    .of_deployment("ingress", "1")
                    .label(ISTIO_REV, "asm-1-22")
                    .injected("asm-1-22", "img"),
                pod("shop", "done")
                    .injected("asm-1-22", "img")
                    .phase("Succeeded"),
            ],
            deployments: vec![gw],
            ..ClusterObjects::default()
        });
        let (_, items) = remove(&objects, "asm-1-22");
        let items: Vec<&Finding> = items
            .iter()
            .filter(|f| !f.object.starts_with("Tag/"))
            .collect();
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items[0].object, "Deployment/gw/ingress");
        assert_eq!(
            items[0].message,
            "on revision \"asm-1-22\": 1 running pod(s) have its proxy; its pod template selects it with its own istio.io/rev label; a gateway (image: auto) it injects"
        );
        assert_eq!(items[1].object, "Deployment/shop/web");
        assert_eq!(
            items[1].fix.as_deref(),
            Some("kubectl rollout restart deployment/web -n shop")
        );
    }

    #[test]
    fn webhooks_calling_its_istiod_block_it_but_its_own_do_not() {
        let call = || client(("istio-system", "istiod-asm-1-22"), b"PEM");
        let objects = cluster(ClusterObjects {
            mutating: vec![mutating(
                "istio-sidecar-injector-asm-1-22",
                &[],
                vec![("a.istio.io", call())],
            )],
            validating: vec![
                validating(
                    "istio-validator-asm-1-22-istio-system",
                    &[],
                    vec![("v.istio.io", call())],
                ),
                validating(
                    "istiod-default-validator",
                    &[],
                    vec![("validation.istio.io", call())],
                ),
            ],
            ..ClusterObjects::default()
        });
        let (report, items) = remove(&objects, "asm-1-22");
        assert_eq!(
            objects_of(&items),
            [
                "Tag/prod-stable",
                "ValidatingWebhookConfiguration/istiod-default-validator"
            ]
        );
        assert_eq!(report.removal.len(), 4, "{:?}", report.removal);
    }

    #[test]
    fn an_unknown_revision_never_reads_as_clear() {
        let objects = cluster(ClusterObjects::default());
        let (report, items) = remove(&objects, "asm-1-2");
        assert_eq!(objects_of(&items), ["Revision/asm-1-2"]);
        assert!(
            items[0].message.contains("installed: asm-1-22, asm-1-23"),
            "{}",
            items[0].message
        );
        assert!(!report.clear);
    }

    #[test]
    fn a_half_removed_revision_can_be_gated_too() {
        let mut objects = cluster(ClusterObjects {
            namespaces: vec![namespace("shop", &[(ISTIO_REV, "prod-stable")])],
            ..ClusterObjects::default()
        });
        objects.services = Some(vec![service("istio-system", "istiod-asm-1-23")]);
        let (report, items) = remove(&objects, "asm-1-22");
        assert_eq!(objects_of(&items), ["Tag/prod-stable", "Namespace/shop"]);
        assert_eq!(
            report.removal,
            ["kubectl delete configmap istio-sidecar-injector-asm-1-22 -n istio-system"]
        );
    }

    fn tag_move(objects: &ClusterObjects, spec: &str) -> (GateReport, Vec<Finding>) {
        gate(objects, Gate::tag_move(spec).expect("TAG=REV"))
    }

    fn shop_on_stable() -> ClusterObjects {
        cluster(ClusterObjects {
            namespaces: vec![
                namespace("shop", &[(ISTIO_REV, "prod-stable")]),
                namespace("pay", &[(ISTIO_REV, "asm-1-22")]),
            ],
            pods: vec![
                pod("shop", "web-1-a")
                    .of_deployment("web", "1")
                    .injected("asm-1-22", "img"),
                pod("shop", "web-1-b")
                    .of_deployment("web", "1")
                    .injected("asm-1-22", "img"),
                pod("shop", "api-1-a")
                    .of_deployment("api", "1")
                    .injected("asm-1-23", "img"),
                pod("pay", "pay-1-a")
                    .of_deployment("pay", "1")
                    .injected("asm-1-22", "img"),
            ],
            ..ClusterObjects::default()
        })
    }

    #[test]
    fn a_tag_move_lists_what_it_restarts_per_workload() {
        let (report, items) = tag_move(&shop_on_stable(), "prod-stable=asm-1-23");
        assert_eq!(codes(&items), [TAG_MOVE]);
        assert_eq!(items[0].object, "Deployment/shop/web");
        assert_eq!(
            items[0].fix.as_deref(),
            Some("kubectl rollout restart deployment/web -n shop")
        );
        assert!(
            items[0]
                .message
                .contains("(tag \"prod-stable\": asm-1-22 -> asm-1-23)"),
            "{}",
            items[0].message
        );
        assert_eq!(report.left, 2);
        assert_eq!(report.tag.as_deref(), Some("prod-stable"));
        assert_eq!(report.progress.len(), 1, "namespace pay is not on the tag");
        assert_eq!(
            (report.progress[0].pods, report.progress[0].on_target),
            (3, 1)
        );
    }

    #[test]
    fn after_the_move_and_the_restarts_nothing_is_left() {
        let mut objects = shop_on_stable();
        objects.mutating[0] = tag("prod-stable", "asm-1-23");
        for p in objects
            .pods
            .iter_mut()
            .filter(|p| p.metadata.namespace.as_deref() == Some("shop"))
        {
            *p = pod("shop", p.metadata.name.as_deref().unwrap_or_default())
                .injected("asm-1-23", "img");
        }
        let (report, items) = tag_move(&objects, "prod-stable=asm-1-23");
        assert!(items.is_empty(), "{items:?}");
        assert!(report.clear);
        assert_eq!(report.left, 0);
    }

    #[test]
    fn a_tag_cannot_move_to_a_revision_that_is_not_installed_or_be_named_like_one() {
        let (report, items) = tag_move(&shop_on_stable(), "prod-stable=asm-1-24");
        assert_eq!(objects_of(&items), ["Tag/prod-stable"]);
        assert!(
            items[0].message.contains("not installed")
                && items[0].message.contains("namespaces on the tag: shop"),
            "{}",
            items[0].message
        );
        assert_eq!(report.left, 1);
        let (_, items) = tag_move(&shop_on_stable(), "asm-1-22=asm-1-23");
        assert_eq!(codes(&items), [TAG_MOVE]);
        assert!(Gate::tag_move("no-equals").is_err());
        assert!(Gate::tag_move("=asm-1-23").is_err());
    }
}
