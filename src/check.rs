//! `revhook check`: the upgrade troubleshooting guides' manual checks, run over a cluster (live
//! or a `kubectl get ... -o yaml` dump). Pure: objects in, findings and a summary out.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::Resource as _;
use serde::Serialize;
use serde_json::Value;

use crate::core::labels::{self, NamespaceLabels};
use crate::core::mapping;
use crate::core::messages::{restart_command, stale_message, Selector};
use crate::core::pod::PodIn;
use crate::core::policy::Policy;
use crate::core::revisions::{minor_version, MeshSettings};
use crate::core::sidecar::PROXY_NAME;
use crate::core::snapshot::Snapshot;
use crate::core::webhooks::Hooks as _;
use crate::inject::decide::{self, Decision};

/// What `check` reads.
#[derive(Debug, Default, Clone)]
pub struct ClusterObjects {
    pub namespaces: Vec<Namespace>,
    pub pods: Vec<Pod>,
    pub configmaps: Vec<ConfigMap>,
    pub mutating: Vec<MutatingWebhookConfiguration>,
    pub validating: Vec<ValidatingWebhookConfiguration>,
    /// `None` when the input had no Services at all (then missing services are not judged).
    pub services: Option<Vec<Service>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Input(#[from] crate::offline::OfflineError),
    #[error("{kind} {name:?}: {detail}")]
    Object {
        kind: String,
        name: String,
        detail: String,
    },
}

impl ClusterObjects {
    /// Reads a dump: a `kind: List` or a multi-document stream, YAML or JSON. Other kinds are
    /// ignored.
    pub fn from_dump(text: &str) -> Result<Self, CheckError> {
        let mut objects = ClusterObjects::default();
        let mut services = Vec::new();
        let mut saw_services = false;
        for doc in crate::offline::documents(text)? {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let err = |e: serde_json::Error| CheckError::Object {
                kind: kind.clone(),
                name: name.clone(),
                detail: e.to_string(),
            };
            match kind.as_str() {
                "Namespace" => objects
                    .namespaces
                    .push(serde_json::from_value(doc).map_err(err)?),
                "Pod" => objects.pods.push(serde_json::from_value(doc).map_err(err)?),
                "ConfigMap" => objects
                    .configmaps
                    .push(serde_json::from_value(doc).map_err(err)?),
                "MutatingWebhookConfiguration" => objects
                    .mutating
                    .push(serde_json::from_value(doc).map_err(err)?),
                "ValidatingWebhookConfiguration" => objects
                    .validating
                    .push(serde_json::from_value(doc).map_err(err)?),
                "Service" => {
                    saw_services = true;
                    services.push(serde_json::from_value(doc).map_err(err)?);
                }
                _ => {}
            }
        }
        objects.services = saw_services.then_some(services);
        Ok(objects)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    Generic,
    Aks,
}

#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub istio_namespaces: Vec<String>,
    pub platform: Platform,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// revhook's code for the finding.
    pub code: &'static str,
    /// `istioctl analyze`'s code for the same problem, where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub istio_code: Option<&'static str>,
    pub object: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Per revision: how far a canary has progressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevisionSummary {
    pub revision: String,
    pub image: String,
    pub tags: Vec<String>,
    pub namespaces: Vec<String>,
    pub pods: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
    pub revisions: Vec<RevisionSummary>,
}

fn finding(
    severity: Severity,
    code: &'static str,
    istio_code: Option<&'static str>,
    object: String,
    message: String,
    fix: Option<String>,
) -> Finding {
    Finding {
        severity,
        code,
        istio_code,
        object,
        message,
        fix,
    }
}

/// A pod's sidecar facts: whether it has one, its image, and the revision it was injected for.
struct PodFacts<'p> {
    pod: &'p Pod,
    namespace: &'p str,
    name: &'p str,
    proxy_image: Option<&'p str>,
    revision: Option<String>,
}

fn pod_facts(pod: &Pod) -> PodFacts<'_> {
    let spec = pod.spec.as_ref();
    let proxy_image = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == PROXY_NAME)
        .and_then(|c| c.image.as_deref());
    let annotations = pod.metadata.annotations.as_ref();
    let revision = annotations
        .and_then(|a| a.get(labels::SIDECAR_STATUS))
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| v["revision"].as_str().map(str::to_owned))
        .or_else(|| annotations.and_then(|a| a.get(labels::ISTIO_REV)).cloned());
    PodFacts {
        pod,
        namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
        name: pod.metadata.name.as_deref().unwrap_or_default(),
        proxy_image,
        revision,
    }
}

fn is_running(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Runs every check.
pub fn run(objects: &ClusterObjects, opts: &CheckOptions) -> CheckReport {
    let mesh = MeshSettings {
        istio_namespace: opts
            .istio_namespaces
            .first()
            .cloned()
            .unwrap_or_else(|| "istio-system".into()),
        ..MeshSettings::default()
    };
    let istio_cms: Vec<&ConfigMap> = objects
        .configmaps
        .iter()
        .filter(|c| {
            opts.istio_namespaces
                .iter()
                .any(|n| Some(n.as_str()) == c.metadata.namespace.as_deref())
        })
        .collect();
    let (snapshot, report) = mapping::snapshot_from_objects(
        istio_cms.iter().copied(),
        &objects.mutating,
        objects.namespaces.iter().map(|n| &n.metadata),
        mesh,
        "check",
    );
    let mut findings: Vec<Finding> = report
        .errors
        .iter()
        .map(|e| {
            finding(
                Severity::Warning,
                "REVHOOK-UNREADABLE",
                None,
                "cluster".into(),
                e.clone(),
                None,
            )
        })
        .collect();
    let pods: Vec<PodFacts<'_>> = objects.pods.iter().map(pod_facts).collect();
    namespace_findings(&snapshot, opts, &mut findings);
    pod_findings(&snapshot, &pods, opts, &mut findings);
    webhook_findings(objects, &snapshot, &mut findings);
    revision_findings(&snapshot, &pods, &istio_cms, &mut findings);
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.object.cmp(&b.object))
    });
    CheckReport {
        revisions: summary(&snapshot, &pods),
        findings,
    }
}

fn sorted_namespaces(snapshot: &Snapshot) -> Vec<(&String, &NamespaceLabels)> {
    let mut v: Vec<_> = snapshot.namespaces.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

fn namespace_findings(snapshot: &Snapshot, opts: &CheckOptions, out: &mut Vec<Finding>) {
    for (name, ns) in sorted_namespaces(snapshot) {
        let object = format!("Namespace/{name}");
        if ns.has_conflict() {
            out.push(finding(
                Severity::Error,
                "REVHOOK-CONFLICT",
                Some("IST0123"),
                object.clone(),
                format!(
                    "namespace has both istio-injection={} and istio.io/rev={}; Istio lets istio-injection win",
                    ns.injection.as_deref().unwrap_or_default(),
                    ns.rev.as_deref().unwrap_or_default()
                ),
                Some(format!("kubectl label namespace {name} istio-injection-")),
            ));
        }
        if let Some(value) = ns.selected_value() {
            if let Err(stale) = snapshot.table.resolve(value) {
                let selector = if ns.injection.is_some() {
                    Selector::NamespaceInjection(name.clone())
                } else {
                    Selector::NamespaceRev(name.clone())
                };
                out.push(finding(
                    Severity::Error,
                    "REVHOOK-STALE-NAMESPACE",
                    None,
                    object.clone(),
                    format!(
                        "{}; its pods will start without a sidecar (or be refused by revhook)",
                        stale_message(&stale, &selector)
                    ),
                    stale.suggestion().map(|t| {
                        format!("kubectl label namespace {name} istio.io/rev={t} --overwrite")
                    }),
                ));
            }
        }
        if opts.platform == Platform::Aks && ns.injection.is_some() {
            out.push(finding(
                Severity::Warning,
                "REVHOOK-AKS-INJECTION-LABEL",
                None,
                object,
                "the AKS Istio add-on does not inject for istio-injection; only istio.io/rev=<revision> selects it".into(),
                snapshot
                    .table
                    .suggested_target()
                    .map(|t| format!("kubectl label namespace {name} istio-injection- istio.io/rev={t}")),
            ));
        }
    }
}

fn pod_findings(
    snapshot: &Snapshot,
    pods: &[PodFacts<'_>],
    opts: &CheckOptions,
    out: &mut Vec<Finding>,
) {
    // One restart per workload, not per pod.
    let mut image_restarts: BTreeMap<String, (usize, String, String)> = BTreeMap::new();
    let mut revision_restarts: BTreeMap<String, (usize, String, String)> = BTreeMap::new();
    for p in pods.iter().filter(|p| is_running(p.pod)) {
        if labels::IGNORED_NAMESPACES.contains(&p.namespace) {
            continue;
        }
        let meta = &p.pod.metadata;
        let pod_labels = meta.labels.as_ref();
        let now = injection_now(p.pod, p.namespace, snapshot);
        let object = format!("Pod/{}/{}", p.namespace, p.name);
        if let Some(Decision::Inject { previous: None, .. }) = &now {
            if p.proxy_image.is_none() {
                out.push(finding(
                    Severity::Warning,
                    "REVHOOK-POD-NO-SIDECAR",
                    Some("IST0103"),
                    object.clone(),
                    "pod in an injection-enabled namespace runs without a sidecar (created before the label, or injection failed)".into(),
                    Some(restart_command(p.pod)),
                ));
            }
        }
        if let (Some(image), Some(rev_name)) = (p.proxy_image, &p.revision) {
            if let Some(rev) = snapshot.table.revision(rev_name) {
                if rev.proxy_image != image {
                    let entry = image_restarts.entry(restart_command(p.pod)).or_insert((
                        0,
                        object.clone(),
                        format!("{image} -> {}", rev.proxy_image),
                    ));
                    entry.0 += 1;
                }
            }
        }
        if let Some(Decision::Inject {
            resolved,
            previous: Some(previous),
            ..
        }) = &now
        {
            if p.proxy_image.is_some() {
                let entry = revision_restarts.entry(restart_command(p.pod)).or_insert((
                    0,
                    object.clone(),
                    format!("{previous} -> {}", resolved.revision.name),
                ));
                entry.0 += 1;
            }
        }
        if opts.platform == Platform::Aks {
            if pod_labels
                .and_then(|l| l.get(labels::SIDECAR_INJECT))
                .is_some_and(|v| v == "true")
            {
                out.push(finding(
                    Severity::Warning,
                    "REVHOOK-AKS-INJECT-LABEL",
                    None,
                    object.clone(),
                    "the AKS Istio add-on does not inject for sidecar.istio.io/inject=true; label the namespace istio.io/rev=<revision>".into(),
                    None,
                ));
            }
            if pod_labels.and_then(|l| l.get(labels::ISTIO_REV)).is_some() {
                out.push(finding(
                    Severity::Info,
                    "REVHOOK-AKS-POD-REVISION",
                    None,
                    object,
                    "revision selected per workload (pod label istio.io/rev); AKS upgrades are simpler with namespace labels".into(),
                    None,
                ));
            }
        }
    }
    for (fix, (count, object, change)) in image_restarts {
        out.push(finding(
            Severity::Warning,
            "REVHOOK-PROXY-IMAGE",
            Some("IST0158"),
            object,
            format!("{count} pod(s) run a proxy image other than the one their revision now uses ({change})"),
            Some(fix),
        ));
    }
    for (fix, (count, object, change)) in revision_restarts {
        out.push(finding(
            Severity::Warning,
            "REVHOOK-POD-REVISION",
            None,
            object,
            format!("{count} pod(s) run a revision other than the one their namespace selects ({change})"),
            Some(fix),
        ));
    }
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

fn service_of(config: &WebhookClientConfig) -> Option<(String, String)> {
    config
        .service
        .as_ref()
        .map(|s| (s.namespace.clone(), s.name.clone()))
}

fn webhook_findings(objects: &ClusterObjects, snapshot: &Snapshot, out: &mut Vec<Finding>) {
    let services: Option<BTreeSet<(String, String)>> = objects.services.as_ref().map(|s| {
        s.iter()
            .map(|svc| {
                (
                    svc.metadata.namespace.clone().unwrap_or_default(),
                    svc.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect()
    });
    let mut check = |kind: &str,
                     meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                     hooks: Vec<(&str, &WebhookClientConfig)>| {
        let name = meta.name.as_deref().unwrap_or_default();
        let object = format!("{kind}/{name}");
        for (hook, config) in hooks {
            let Some(service) = service_of(config) else {
                continue;
            };
            if config.ca_bundle.as_ref().is_none_or(|b| b.0.is_empty()) {
                out.push(finding(
                    Severity::Error,
                    "REVHOOK-CA-BUNDLE",
                    Some("IST0139"),
                    object.clone(),
                    format!("webhook {hook} has an empty caBundle: the API server cannot call it"),
                    Some("run revhook with --manage-ca-bundle, or re-inject the CA (cert-manager's inject-ca-from)".into()),
                ));
            }
            if let Some(known) = &services {
                if !known.contains(&service) {
                    out.push(finding(
                        Severity::Error,
                        "REVHOOK-WEBHOOK-SERVICE",
                        Some("IST0139"),
                        object.clone(),
                        format!(
                            "webhook {hook} points at service {}/{}, which does not exist",
                            service.0, service.1
                        ),
                        Some(format!(
                            "kubectl delete {} {name}  # if it belongs to a removed control plane",
                            kind.to_ascii_lowercase()
                        )),
                    ));
                }
            }
        }
        // Leftovers of revisions that are gone break later installs ("the object has been modified").
        let labels_ = meta.labels.as_ref();
        let is_tag = labels_.is_some_and(|l| l.contains_key(labels::ISTIO_TAG));
        let rev = labels_
            .and_then(|l| l.get(labels::ISTIO_REV))
            .cloned()
            .or_else(|| leftover_revision(name));
        if let Some(rev) =
            rev.filter(|r| !is_tag && r != "default" && snapshot.table.revision(r).is_none())
        {
            out.push(finding(
                Severity::Warning,
                "REVHOOK-LEFTOVER-WEBHOOK",
                None,
                object.clone(),
                format!("belongs to revision {rev:?}, which is no longer installed; it breaks later installs and upgrades"),
                Some(format!("kubectl delete {} {name}", kind.to_ascii_lowercase())),
            ));
        }
    };
    for m in &objects.mutating {
        check(MutatingWebhookConfiguration::KIND, &m.metadata, m.hooks());
    }
    for v in &objects.validating {
        check(ValidatingWebhookConfiguration::KIND, &v.metadata, v.hooks());
    }
}

/// The revision in Istio's per-revision webhook names: `istio-sidecar-injector-<rev>`,
/// `istio-validator-<rev>-<istio namespace>`.
fn leftover_revision(name: &str) -> Option<String> {
    if let Some(rev) = name.strip_prefix("istio-sidecar-injector-") {
        return Some(rev.to_owned());
    }
    let rest = name.strip_prefix("istio-validator-")?;
    let rev = rest
        .strip_suffix("-istio-system")
        .or_else(|| rest.strip_suffix("-aks-istio-system"))?;
    Some(rev.to_owned())
}

/// Revisions in use by namespaces (directly or via a tag).
fn namespaces_of(snapshot: &Snapshot, revision: &str) -> Vec<String> {
    sorted_namespaces(snapshot)
        .into_iter()
        .filter(|(_, ns)| {
            ns.selected_value()
                .and_then(|v| snapshot.table.resolve(v).ok())
                .is_some_and(|r| r.revision.name == revision)
        })
        .map(|(n, _)| n.clone())
        .collect()
}

fn revision_findings(
    snapshot: &Snapshot,
    pods: &[PodFacts<'_>],
    istio_cms: &[&ConfigMap],
    out: &mut Vec<Finding>,
) {
    for (tag, target) in snapshot.table.dangling_tags() {
        out.push(finding(
            Severity::Error,
            "REVHOOK-TAG-DANGLING",
            None,
            format!("Tag/{tag}"),
            format!("tag {tag:?} points at revision {target:?}, which is not installed"),
            snapshot
                .table
                .suggested_target()
                .map(|t| format!("istioctl tag set {tag} --revision {t} --overwrite")),
        ));
    }
    let mut in_use: BTreeSet<String> = BTreeSet::new();
    for rev in snapshot.table.revisions() {
        let namespaces = namespaces_of(snapshot, &rev.name);
        let pod_count = pods
            .iter()
            .filter(|p| p.revision.as_deref() == Some(rev.name.as_str()))
            .count();
        if namespaces.is_empty() && pod_count == 0 {
            out.push(finding(
                Severity::Info,
                "REVHOOK-REVISION-UNUSED",
                None,
                format!("Revision/{}", rev.name),
                "no namespace selects this revision and no pod runs it: safe to remove once the upgrade is complete".into(),
                None,
            ));
        } else {
            in_use.insert(rev.name.clone());
        }
    }
    // AKS keeps per-revision mesh settings in istio-shared-configmap-<rev>: a canary without
    // its own copy silently runs with defaults.
    let shared: BTreeSet<String> = istio_cms
        .iter()
        .filter_map(|c| {
            c.metadata
                .name
                .as_deref()?
                .strip_prefix("istio-shared-configmap-")
                .map(str::to_owned)
        })
        .collect();
    if !shared.is_empty() {
        for rev in snapshot
            .table
            .revisions()
            .filter(|r| !shared.contains(&r.name))
        {
            out.push(finding(
                Severity::Warning,
                "REVHOOK-MESH-CONFIG",
                None,
                format!("Revision/{}", rev.name),
                format!("revision {:?} has no istio-shared-configmap-{} while other revisions have one: it runs with default mesh settings", rev.name, rev.name),
                Some(format!("copy istio-shared-configmap-<stable> to istio-shared-configmap-{} before moving workloads", rev.name)),
            ));
        }
    }
    upgrade_path(snapshot, pods, &in_use, out);
}

fn upgrade_path(
    snapshot: &Snapshot,
    pods: &[PodFacts<'_>],
    in_use: &BTreeSet<String>,
    out: &mut Vec<Finding>,
) {
    let version = |name: &str| {
        snapshot
            .table
            .revision(name)
            .and_then(|r| minor_version(&r.proxy_image).or_else(|| minor_version(&r.name)))
    };
    let used: Vec<(u64, u64)> = in_use.iter().filter_map(|r| version(r)).collect();
    if let (Some(min), Some(max)) = (used.iter().min(), used.iter().max()) {
        if min.0 == max.0 && max.1 > min.1 + 1 {
            out.push(finding(
                Severity::Warning,
                "REVHOOK-UPGRADE-SKIP",
                None,
                "Revisions".into(),
                format!("revisions in use span {}.{} to {}.{}: Istio supports canary upgrades one minor version at a time", min.0, min.1, max.0, max.1),
                None,
            ));
        }
    }
    let oldest = snapshot
        .table
        .revisions()
        .filter_map(|r| version(&r.name))
        .min();
    if let Some(oldest) = oldest {
        let mut seen = BTreeSet::new();
        for p in pods {
            let Some(v) = p.proxy_image.and_then(minor_version) else {
                continue;
            };
            if v < oldest && seen.insert(v) {
                out.push(finding(
                    Severity::Warning,
                    "REVHOOK-OLDER-THAN-INSTALLED",
                    None,
                    format!("Pod/{}/{}", p.namespace, p.name),
                    format!("runs proxy {}.{}, older than the oldest installed revision ({}.{}): restart it onto an installed revision", v.0, v.1, oldest.0, oldest.1),
                    Some(restart_command(p.pod)),
                ));
            }
        }
    }
}

fn summary(snapshot: &Snapshot, pods: &[PodFacts<'_>]) -> Vec<RevisionSummary> {
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
            namespaces: namespaces_of(snapshot, &rev.name),
            pods: pods
                .iter()
                .filter(|p| p.revision.as_deref() == Some(rev.name.as_str()))
                .count(),
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

impl CheckReport {
    /// 0 when nothing reaches `fail_on`, else 1.
    pub fn exit_code(&self, fail_on: Severity) -> u8 {
        u8::from(self.findings.iter().any(|f| f.severity >= fail_on))
    }

    pub fn render(&self, output: Output) -> Result<String, serde_json::Error> {
        match output {
            Output::Json => serde_json::to_string_pretty(self).map(|s| s + "\n"),
            Output::Yaml => Ok(serde_yaml::to_string(self).unwrap_or_default()),
            Output::Table => Ok(self.table()),
        }
    }

    fn table(&self) -> String {
        let mut out = String::new();
        if self.findings.is_empty() {
            out.push_str("No findings.\n");
        } else {
            out.push_str(&format!(
                "{:<8} {:<28} {:<8} {:<40} MESSAGE\n",
                "SEVERITY", "CODE", "ISTIO", "OBJECT"
            ));
            for f in &self.findings {
                let severity = match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Info => "info",
                };
                out.push_str(&format!(
                    "{:<8} {:<28} {:<8} {:<40} {}\n",
                    severity,
                    f.code,
                    f.istio_code.unwrap_or("-"),
                    f.object,
                    f.message
                ));
                if let Some(fix) = &f.fix {
                    out.push_str(&format!("{:>87} fix: {fix}\n", ""));
                }
            }
        }
        out.push_str(&format!(
            "\n{:<14} {:<58} {:<24} {:<30} PODS\n",
            "REVISION", "IMAGE", "TAGS", "NAMESPACES"
        ));
        for r in &self.revisions {
            let list = |v: &[String]| {
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    v.join(",")
                }
            };
            out.push_str(&format!(
                "{:<14} {:<58} {:<24} {:<30} {}\n",
                r.revision,
                r.image,
                list(&r.tags),
                list(&r.namespaces),
                r.pods
            ));
        }
        out
    }
}
