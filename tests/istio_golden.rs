//! Istio's own golden injection cases (1.23.0, in `../shared/reference/istio-1.23.0-inject/`)
//! rendered by revhook and compared field by field with what istiod produced.
//!
//! Prints a summary (cases equal / differing, per field) and fails if any case differs on a
//! compared field, except the few listed in `KNOWN_DIFFERENCES` with the reason. Skips, saying so, when the reference folder is not
//! beside the project. `REVHOOK_GOLDEN_DETAIL=1` prints every difference.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

mod common;

use common::manifest::{at, render_manifest, yaml_docs};
use revhook::core::snapshot::Snapshot;
use revhook::offline::template_path;
use revhook::sources::config;
use serde_json::Value;

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/istio-1.23.0-inject")
}

/// Inputs Istio's test renders with settings other than the defaults (its inject_test.go):
/// left out of the default comparison.
const CUSTOM_SETTINGS: &[&str] = &[
    "format-duration.yaml",
    "traffic-params.yaml",
    "status_params.yaml",
    "kubevirtInterfaces.yaml",
    "reroute-virtual-interfaces.yaml",
    "hello-existing-cncf-networks.yaml",
    "hello-existing-cncf-networks-json.yaml",
    "hello-probes-noProxyHoldApplication-ProxyConfig.yaml",
    "traffic-annotations.yaml",
    "native-sidecar.yaml",
    "native-sidecar-opt-in.yaml",
    "native-sidecar-opt-out.yaml",
    "custom-template.yaml",
    "merge-probers.yaml",
    "hello-tracing-disabled.yaml",
    "hello-openshift.yaml",
    "hello-openshift-custom-injection.yaml",
    "hello-probes-localhost.yaml",
];

/// Cases revhook deliberately renders differently, with why. Every other case must equal
/// Istio's output on every compared field.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "cronjob.yaml",
        "istiod's kube-inject writes the labels and annotations on the CronJob's jobTemplate metadata, where pods never see them; revhook writes them on the pod template",
    ),
    ("enable-core-dump.yaml", "sidecar.istio.io/enableCoreDump (the enable-core-dump init container) is not implemented"),
    ("enable-core-dump-annotation.yaml", "sidecar.istio.io/enableCoreDump is not implemented"),
    ("gateway.yaml", "custom injection templates (inject.istio.io/templates: gateway) are not implemented"),
    ("grpc-agent.yaml", "custom injection templates (inject.istio.io/templates: grpc-agent) are not implemented"),
    ("grpc-simple.yaml", "custom injection templates (inject.istio.io/templates: grpc-simple) are not implemented"),
];

const FIELDS: &[&str] = &[
    "containers",
    "initContainers",
    "volumes",
    "ports",
    "env",
    "probes",
    "labels",
    "status",
    "images",
];

fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_docs(&text)
}

fn snapshot(namespace: &str) -> Snapshot {
    config::parse(
        &format!(
            "revisions:\n  - name: default\n    image: gcr.io/istio-testing/proxyv2:latest\n\
             namespaces:\n  {namespace}: {{istio-injection: enabled}}\n"
        ),
        "istio-golden",
    )
    .expect("config")
}

/// revhook's rendering of one manifest document, as a pod in an injection-enabled namespace.
fn render(doc: &Value) -> Value {
    let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
    render_manifest(doc, &snapshot(namespace))
}

fn names(v: &Value) -> Value {
    Value::Array(
        v.as_array()
            .into_iter()
            .flatten()
            .map(|c| c["name"].clone())
            .collect(),
    )
}

fn per_container(t: &Value, f: impl Fn(&Value) -> Value) -> Value {
    let mut out = serde_json::Map::new();
    for array in ["initContainers", "containers"] {
        for c in t["spec"][array].as_array().into_iter().flatten() {
            out.insert(c["name"].as_str().unwrap_or_default().to_owned(), f(c));
        }
    }
    Value::Object(out)
}

/// Normalizes a value read from YAML or JSON: numbers in strings stay strings, but
/// `containerPort: 80` and `containerPort: "80"` must not differ by representation.
fn field(t: &Value, name: &str) -> Value {
    match name {
        "containers" => names(&t["spec"]["containers"]),
        "initContainers" => names(&t["spec"]["initContainers"]),
        "volumes" => names(&t["spec"]["volumes"]),
        "ports" => per_container(t, |c| c["ports"].clone()),
        "env" => per_container(t, |c| {
            let set: BTreeSet<String> = c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["name"].as_str().map(str::to_owned))
                .collect();
            serde_json::json!(set)
        }),
        "probes" => per_container(
            t,
            |c| serde_json::json!({"liveness": c["livenessProbe"], "readiness": c["readinessProbe"], "startup": c["startupProbe"]}),
        ),
        "labels" => t["metadata"]["labels"].clone(),
        "status" => t["metadata"]["annotations"]["sidecar.istio.io/status"]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null),
        "images" => per_container(t, |c| c["image"].clone()),
        _ => Value::Null,
    }
}

#[test]
fn istio_golden_cases() {
    let dir = reference_dir();
    if !dir.is_dir() {
        // Istio's cases are not ours to ship: they live in shared/ beside the project. On a
        // developer's machine without them the test says so; in CI their absence fails it.
        let message = format!(
            "Istio's golden cases not found at {} (they live in shared/ beside the project)",
            dir.display()
        );
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("SKIPPED: {message}");
        return;
    }
    let detail = std::env::var_os("REVHOOK_GOLDEN_DETAIL").is_some();
    let mut inputs: Vec<String> = std::fs::read_dir(&dir)
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml") && !n.ends_with(".iop.yaml"))
        .filter(|n| dir.join(format!("{n}.injected")).is_file())
        .filter(|n| !CUSTOM_SETTINGS.contains(&n.as_str()))
        .collect();
    inputs.sort();
    let mut per_field: BTreeMap<&str, (usize, Vec<String>)> =
        FIELDS.iter().map(|f| (*f, (0, vec![]))).collect();
    let mut equal_cases = 0;
    let mut claimed_failures = Vec::new();
    for input in &inputs {
        let ours: Vec<Value> = docs(&dir.join(input)).iter().map(render).collect();
        let theirs = docs(&dir.join(format!("{input}.injected")));
        let mut case_equal = true;
        for f in FIELDS {
            let same = ours.len() == theirs.len()
                && ours
                    .iter()
                    .zip(&theirs)
                    .all(|(o, t)| match template_path(o) {
                        None => true,
                        Some(p) => field(at(o, p), f) == field(at(t, p), f),
                    });
            let entry = per_field.get_mut(f).expect("field");
            if same {
                entry.0 += 1;
            } else {
                entry.1.push(input.clone());
                case_equal = false;
                if detail {
                    for (o, t) in ours.iter().zip(&theirs) {
                        if let Some(p) = template_path(o) {
                            let (a, b) = (field(at(o, p), f), field(at(t, p), f));
                            if a != b {
                                eprintln!("{input} {f}:\n  revhook: {a}\n  istio:   {b}");
                            }
                        }
                    }
                }
                if !KNOWN_DIFFERENCES.iter().any(|(case, _)| case == input) {
                    claimed_failures.push(format!("{input}: {f}"));
                }
            }
        }
        if case_equal {
            equal_cases += 1;
        }
    }
    println!(
        "Istio 1.23.0 golden cases with default settings: {} compared, {} equal on every field",
        inputs.len(),
        equal_cases
    );
    println!("| field | equal | differing | differing cases |");
    println!("|---|---|---|---|");
    for (f, (eq, diff)) in &per_field {
        println!("| {f} | {eq} | {} | {} |", diff.len(), diff.join(", "));
    }
    assert!(
        inputs.len() > 40,
        "expected Istio's default-settings cases, found {}",
        inputs.len()
    );
    println!("Known, deliberate differences:");
    for (case, why) in KNOWN_DIFFERENCES {
        println!("- {case}: {why}");
    }
    assert!(
        claimed_failures.is_empty(),
        "cases that should match Istio differ: {claimed_failures:?}"
    );
}
