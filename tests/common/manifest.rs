//! Rendering manifests (Pods and workloads' pod templates) through revhook's injection, as
//! a test reads them: YAML documents as `serde_json::Value`.

use revhook::admission::Verdict;
use revhook::inject::decide::Policy;
use revhook::inject::pod::PodIn;
use revhook::inject::{review_template, Workload};
use revhook::state::Snapshot;
use serde::Deserialize;
use serde_json::Value;

/// Where a manifest keeps its pod template.
pub fn template_path(doc: &Value) -> Option<Vec<&'static str>> {
    match doc["kind"].as_str()? {
        "Pod" => Some(vec![]),
        "CronJob" => Some(vec!["spec", "jobTemplate", "spec", "template"]),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController"
        | "DeploymentConfig" => Some(vec!["spec", "template"]),
        _ => None,
    }
}

pub fn at<'v>(doc: &'v Value, path: &[&str]) -> &'v Value {
    path.iter().fold(doc, |v, k| &v[*k])
}

fn at_mut<'v>(doc: &'v mut Value, path: &[&str]) -> &'v mut Value {
    path.iter().fold(doc, |v, k| &mut v[*k])
}

/// YAML documents of a file's text.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .filter_map(|d| Value::deserialize(d).ok())
        .filter(|v| !v.is_null())
        .collect()
}

/// The verdict for a manifest's pod, and the manifest with the patch applied.
pub fn render_with_verdict(doc: &Value, snapshot: &Snapshot) -> (Option<Verdict>, Value) {
    let Some(path) = template_path(doc) else {
        return (None, doc.clone());
    };
    let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let api_version = doc["apiVersion"].as_str().unwrap_or("v1");
    let kind = doc["kind"].as_str().unwrap_or("Pod");
    let template = at(doc, &path).clone();
    let raw = template.to_string();
    let pod = PodIn::parse(&raw).expect("template parses");
    // A Pod names its workload through owner references, as in the webhook.
    let workload = if kind == "Pod" {
        Workload::of_pod(&pod, namespace)
    } else {
        Workload::new(api_version, kind, name, namespace)
    };
    let verdict = review_template(
        &pod,
        &raw,
        namespace,
        &workload,
        snapshot,
        &Policy::default(),
    );
    let mut out = doc.clone();
    if let Some(patch) = &verdict.patch {
        let patch: json_patch::Patch = serde_json::from_str(patch).expect("patch");
        let mut injected = template;
        json_patch::patch(&mut injected, &patch).expect("patch applies");
        *at_mut(&mut out, &path) = injected;
    }
    (Some(verdict), out)
}

pub fn render_manifest(doc: &Value, snapshot: &Snapshot) -> Value {
    render_with_verdict(doc, snapshot).1
}
