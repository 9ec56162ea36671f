//! `revhook check`: the upgrade troubleshooting guides' manual checks, run over a cluster (live
//! or a `kubectl get ... -o yaml` dump). Pure: objects in, findings and a summary out.
//!
//! `run` builds the snapshot the webhook would serve from the objects, then asks each rule
//! family (one file each, each with its own tests) for its findings.

mod dump;
mod facts;
mod namespaces;
mod pods;
mod render;
mod revisions;
mod upgrade;
mod webhooks;

#[cfg(test)]
mod tests;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use serde::Serialize;

use crate::core::mapping::{self, MappingReport};
use crate::core::revisions::MeshSettings;
use crate::core::snapshot::Snapshot;

pub use render::Output;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Runs every check.
pub fn run(objects: &ClusterObjects, opts: &CheckOptions) -> CheckReport {
    let istio_cms = istio_configmaps(objects, opts);
    let (snapshot, report) = snapshot_of(objects, &istio_cms, opts);
    let pods: Vec<facts::PodFacts<'_>> = objects.pods.iter().map(facts::pod_facts).collect();
    // The rules run in this order so that findings equal in severity and object keep it.
    let mut findings = unreadable(&report);
    findings.extend(namespaces::findings(&snapshot, opts.platform));
    findings.extend(pods::findings(&snapshot, &pods, opts.platform));
    findings.extend(webhooks::findings(objects, &snapshot));
    findings.extend(revisions::findings(&snapshot, &pods, &istio_cms));
    findings.extend(upgrade::findings(&snapshot, &pods));
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.object.cmp(&b.object))
    });
    CheckReport {
        revisions: revisions::summary(&snapshot, &pods),
        findings,
    }
}

/// The ConfigMaps in the Istio namespaces: only those define revisions.
fn istio_configmaps<'o>(objects: &'o ClusterObjects, opts: &CheckOptions) -> Vec<&'o ConfigMap> {
    objects
        .configmaps
        .iter()
        .filter(|c| {
            opts.istio_namespaces
                .iter()
                .any(|n| Some(n.as_str()) == c.metadata.namespace.as_deref())
        })
        .collect()
}

/// The snapshot the webhook would build from these objects.
fn snapshot_of(
    objects: &ClusterObjects,
    istio_cms: &[&ConfigMap],
    opts: &CheckOptions,
) -> (Snapshot, MappingReport) {
    let mesh = MeshSettings {
        istio_namespace: opts
            .istio_namespaces
            .first()
            .cloned()
            .unwrap_or_else(|| "istio-system".into()),
        ..MeshSettings::default()
    };
    mapping::snapshot_from_objects(
        istio_cms.iter().copied(),
        &objects.mutating,
        objects.namespaces.iter().map(|n| &n.metadata),
        mesh,
        "check",
    )
}

/// What the mapping could not read: the rules judge the cluster without it.
fn unreadable(report: &MappingReport) -> Vec<Finding> {
    report
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
        .collect()
}

impl CheckReport {
    /// 0 when nothing reaches `fail_on`, else 1.
    pub fn exit_code(&self, fail_on: Severity) -> u8 {
        u8::from(self.findings.iter().any(|f| f.severity >= fail_on))
    }
}
