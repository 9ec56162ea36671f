//! `revhook check`: the upgrade troubleshooting guides' manual checks, run over a cluster (live
//! or a `kubectl get ... -o yaml` dump). Pure: objects in, findings and a summary out.
//!
//! `run` works out which revisions are installed (injector ConfigMap **and** istiod Service),
//! builds the snapshot the webhook would serve from them, then asks each rule family (one file
//! each, each with its own tests) for its findings. The live listing and a dump fill the same
//! [`ClusterObjects`], so both go through the same rules.

mod certs;
mod dump;
mod facts;
mod gate;
mod injectors;
mod installed;
mod namespaces;
mod pods;
mod progress;
mod refused;
mod render;
mod revisions;
mod upgrade;
mod webhooks;
mod workloads;

#[cfg(test)]
mod tests;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Serialize;

use crate::core::mapping::{self, MappingReport};
use crate::core::revisions::MeshSettings;
use crate::core::snapshot::Snapshot;

pub use dump::keep_certificates;
pub use progress::{NamespaceProgress, Restart};
pub use render::Output;

/// What `check` reads. Kinds a rule needs to judge an absence (a Service, endpoints) are
/// `Option`: `None` when the input had none of that kind, and then nothing is judged missing.
#[derive(Debug, Default, Clone)]
pub struct ClusterObjects {
    pub namespaces: Vec<Namespace>,
    pub pods: Vec<Pod>,
    pub configmaps: Vec<ConfigMap>,
    pub mutating: Vec<MutatingWebhookConfiguration>,
    pub validating: Vec<ValidatingWebhookConfiguration>,
    /// `None` when the input had no Services at all: missing services are not judged, and a
    /// revision with an injector ConfigMap counts as installed.
    pub services: Option<Vec<Service>>,
    pub deployments: Vec<Deployment>,
    pub statefulsets: Vec<StatefulSet>,
    pub replicasets: Vec<ReplicaSet>,
    /// `None` when the input had no EndpointSlices: readiness is then read from `endpoints`.
    pub endpoint_slices: Option<Vec<EndpointSlice>>,
    /// Core v1 Endpoints (older dumps); `None` when the input had none.
    pub endpoints: Option<Vec<Endpoints>>,
    pub events: Vec<Event>,
    /// Serving-certificate Secrets with their certificates only: private keys are dropped
    /// when they are read ([`keep_certificates`]).
    pub secrets: Vec<Secret>,
    /// Kinds the live listing was not allowed to read: their rules judge nothing.
    pub unreadable: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("not YAML or JSON: {0}")]
    Input(#[from] crate::core::yaml::YamlError),
    #[error("{kind} {name:?}: {detail}")]
    Object {
        kind: String,
        name: String,
        detail: String,
    },
    #[error("--before-tag-move wants TAG=REVISION, got {0:?}")]
    TagMove(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Platform {
    #[default]
    Generic,
    Aks,
}

/// A question asked before an upgrade step: is anything still on what is about to change?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// `--before-remove REV`: everything still on the revision.
    BeforeRemove(String),
    /// `--before-tag-move TAG=REV`: what moving the tag restarts, and what is left on the old
    /// proxy until restarted.
    BeforeTagMove { tag: String, revision: String },
}

impl Gate {
    /// Reads `TAG=REVISION`.
    pub fn tag_move(spec: &str) -> Result<Gate, CheckError> {
        match spec.split_once('=') {
            Some((tag, revision)) if !tag.is_empty() && !revision.is_empty() => {
                Ok(Gate::BeforeTagMove {
                    tag: tag.to_owned(),
                    revision: revision.to_owned(),
                })
            }
            _ => Err(CheckError::TagMove(spec.to_owned())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Where Istio lives. Narrows the search when an injector ConfigMap is there; otherwise
    /// every namespace holding one counts (AKS's `aks-istio-system`, ASM's `asm-system`...).
    pub istio_namespaces: Vec<String>,
    pub platform: Platform,
    /// Unix seconds: certificates are judged as of this time.
    pub now: i64,
    pub gate: Option<Gate>,
    /// The revision an upgrade is about to install (AKS: `az aks mesh upgrade start`).
    pub upgrade_to: Option<String>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            istio_namespaces: vec!["istio-system".into()],
            platform: Platform::Generic,
            now: 0,
            gate: None,
            upgrade_to: None,
        }
    }
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

/// A Deployment's replicas, as its status says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentStatus {
    pub name: String,
    pub replicas: i32,
    pub ready: i32,
}

/// Per revision: how far a canary has progressed, and whether its control plane serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevisionSummary {
    pub revision: String,
    pub image: String,
    pub tags: Vec<String>,
    pub namespaces: Vec<String>,
    /// Running pods whose proxy is this revision's.
    pub pods: usize,
    /// Running pods whose workload would get this revision if restarted now.
    pub target_pods: usize,
    /// Of those, how many do not run it yet (another revision or no sidecar).
    pub left: usize,
    /// `namespace/name` of its istiod Service, when the input has Services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentStatus>,
    /// Ready endpoints of its istiod Service, when the input has EndpointSlices or Endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_endpoints: Option<usize>,
    /// Who its proxies are in the mesh (trust domain, cluster, mesh ID, network), from its
    /// mesh config and values; `None` when its injector cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh: Option<crate::core::injector::MeshIdentity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateKind {
    BeforeRemove,
    BeforeTagMove,
}

/// The answer to a [`Gate`]. Each thing still on the revision is also a finding (of severity
/// error, so the exit code is 1 while anything is left).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateReport {
    pub kind: GateKind,
    pub revision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// How many things are still on it (0: clear).
    pub left: usize,
    pub clear: bool,
    /// Per namespace, pods left on the old proxy (tag move).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub progress: Vec<NamespaceProgress>,
    /// The commands that remove what belongs to the revision itself (remove).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removal: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
    pub revisions: Vec<RevisionSummary>,
    /// Per namespace and target revision: pods on it, pods left, restarts by workload.
    pub progress: Vec<NamespaceProgress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReport>,
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

/// Everything the rules read, worked out once.
struct Cluster<'o> {
    objects: &'o ClusterObjects,
    opts: &'o CheckOptions,
    inventory: installed::Inventory<'o>,
    snapshot: Snapshot,
    pods: Vec<facts::PodFacts<'o>>,
}

impl<'o> Cluster<'o> {
    fn new(objects: &'o ClusterObjects, opts: &'o CheckOptions) -> (Self, MappingReport) {
        let inventory = installed::Inventory::of(objects, &opts.istio_namespaces);
        let (snapshot, report) = snapshot_of(objects, &inventory);
        let pods = objects
            .pods
            .iter()
            .map(|p| facts::pod_facts(p, &snapshot))
            .collect();
        (
            Cluster {
                objects,
                opts,
                inventory,
                snapshot,
                pods,
            },
            report,
        )
    }
}

/// Runs every check.
pub fn run(objects: &ClusterObjects, opts: &CheckOptions) -> CheckReport {
    let (cluster, report) = Cluster::new(objects, opts);
    let snapshot = &cluster.snapshot;
    // The rules run in this order so that findings equal in severity and object keep it.
    let mut findings = unreadable(&report, objects);
    findings.extend(namespaces::findings(
        snapshot,
        &objects.namespaces,
        opts.platform,
    ));
    findings.extend(pods::findings(&cluster));
    findings.extend(workloads::findings(&cluster));
    findings.extend(refused::findings(objects));
    findings.extend(injectors::findings(objects));
    findings.extend(webhooks::findings(&cluster));
    findings.extend(revisions::findings(&cluster));
    findings.extend(upgrade::findings(snapshot, &cluster.pods));
    let gate = opts.gate.as_ref().map(|g| {
        let (gate, items) = gate::judge(&cluster, g);
        findings.extend(items);
        gate
    });
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.object.cmp(&b.object))
    });
    let progress = progress::per_namespace(&cluster.pods, |_| true);
    CheckReport {
        revisions: revisions::summary(&cluster, &progress),
        progress,
        findings,
        gate,
    }
}

/// The snapshot the webhook would build: only installed revisions (an injector ConfigMap
/// whose istiod Service exists) are in it.
fn snapshot_of(
    objects: &ClusterObjects,
    inventory: &installed::Inventory<'_>,
) -> (Snapshot, MappingReport) {
    let mesh = MeshSettings {
        istio_namespace: inventory
            .istio_namespaces
            .first()
            .cloned()
            .unwrap_or_else(|| "istio-system".into()),
        ..MeshSettings::default()
    };
    let (mut snapshot, report) = mapping::snapshot_from_objects(
        inventory.installed_injectors(),
        &objects.mutating,
        objects.namespaces.iter().map(|n| &n.metadata),
        mesh,
        "check",
    );
    // What selects a half-removed revision is told what is left, as the webhook tells it.
    snapshot.table = snapshot
        .table
        .clone()
        .with_half_removed(inventory.half_removed().filter_map(|p| p.left_behind()));
    (snapshot, report)
}

/// What could not be read: the rules judge the cluster without it.
fn unreadable(report: &MappingReport, objects: &ClusterObjects) -> Vec<Finding> {
    let mapping = report.errors.iter().cloned();
    let kinds = objects
        .unreadable
        .iter()
        .map(|k| format!("cannot list {k}: the checks that read them were skipped"));
    mapping
        .chain(kinds)
        .map(|e| {
            finding(
                Severity::Warning,
                "REVHOOK-UNREADABLE",
                None,
                "cluster".into(),
                e,
                None,
            )
        })
        .collect()
}

impl CheckReport {
    /// 0 when nothing reaches `fail_on`, else 1. A gate's items are errors, so a gate that is
    /// not clear always exits 1.
    pub fn exit_code(&self, fail_on: Severity) -> u8 {
        u8::from(self.findings.iter().any(|f| f.severity >= fail_on))
    }
}
