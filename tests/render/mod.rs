//! The shipped manifests as the cluster receives them: `kustomize build` of a directory and
//! `helm template` of the chart, each by its own CLI, as JSON values; and the list of
//! deliberate differences between the two.
//!
//! Helm and kustomize are found on PATH or in `target/tools/bin` (where `.ci/run` builds them
//! from the Go module proxy); `kubectl kustomize` stands in for a missing kustomize. Without
//! them a test says so and skips; with `CI=true` it fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

pub const CHART: &str = "manifests/helm/revhook";
pub const RELEASE: &str = "revhook";
pub const NAMESPACE: &str = "revhook-system";

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn yaml_docs(text: &str) -> Vec<Value> {
    revhook::core::yaml::documents(text).expect("YAML documents")
}

fn yaml_file(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_docs(&text)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A tool's path, or `None` after saying why the test skips (a panic under `CI=true`).
fn tool(name: &str, fallback: Option<PathBuf>, how: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    match on_path.or(fallback.filter(|p| p.is_file())) {
        Some(path) => Some(path),
        None if in_ci() => panic!("{name} is not on PATH: {how}"),
        None => {
            eprintln!("skipped: {name} is not on PATH ({how})");
            None
        }
    }
}

/// The Helm CLI.
pub fn helm() -> Option<PathBuf> {
    tool(
        "helm",
        Some(repo_path("target/tools/bin/helm")),
        "`bash .ci/run` builds it into target/tools/bin",
    )
}

/// The kustomize CLI, or kubectl for its built-in kustomize.
pub fn kustomize_tool() -> Option<Kustomize> {
    let standalone = repo_path("target/tools/bin/kustomize");
    let on_path = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    if let Some(p) = on_path("kustomize").or(Some(standalone).filter(|p| p.is_file())) {
        return Some(Kustomize::Standalone(p));
    }
    tool(
        "kubectl",
        None,
        "`bash .ci/run` builds kustomize into target/tools/bin",
    )
    .map(Kustomize::Kubectl)
}

/// Which CLI renders kustomizations.
pub enum Kustomize {
    Standalone(PathBuf),
    Kubectl(PathBuf),
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `helm template <RELEASE> <chart> -n <NAMESPACE>` with extra arguments (`-f`, `--set`, ...).
pub fn helm_template(helm: &Path, args: &[&str]) -> Vec<Value> {
    let mut cmd = Command::new(helm);
    cmd.args(["template", RELEASE])
        .arg(repo_path(CHART))
        .args(["--namespace", NAMESPACE])
        .args(args);
    yaml_docs(&run(&mut cmd))
}

/// `helm lint --strict` of the chart with extra arguments; its output.
pub fn helm_lint(helm: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(helm);
    cmd.args(["lint", "--strict"])
        .arg(repo_path(CHART))
        .args(["--namespace", NAMESPACE])
        .args(args);
    run(&mut cmd)
}

/// `kustomize build <dir>` (or `kubectl kustomize <dir>`).
pub fn kustomize(tool: &Kustomize, dir: &Path) -> Vec<Value> {
    let out = match tool {
        Kustomize::Standalone(k) => run(Command::new(k).arg("build").arg(dir)),
        Kustomize::Kubectl(k) => run(Command::new(k).arg("kustomize").arg(dir)),
    };
    yaml_docs(&out)
}

/// The comparison cases: `tests/fixtures/helm/<case>/` with a `kustomization.yaml` (an overlay,
/// maybe with components) and the chart's `values.yaml` meant to install the same objects.
pub fn cases() -> Vec<PathBuf> {
    let root = repo_path("tests/fixtures/helm");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("kustomization.yaml").is_file() && p.join("values.yaml").is_file())
        .collect();
    cases.sort();
    cases
}

// ---------------------------------------------------------------------------------------------
// The deliberate differences between the chart and the kustomize manifests. Each is undone here
// before objects are compared, and each is listed in manifests/helm/revhook/README.md.

/// Labels only the chart puts on objects (Helm's conventions).
pub const HELM_ONLY_LABELS: [&str; 4] = [
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
];

/// Kinds that kustomize adds outside `manifests/base` (the cert-manager overlay's objects, the
/// monitoring component's), so without the base's `app.kubernetes.io/name` and `part-of`
/// labels; the chart labels every object alike.
pub const UNLABELED_IN_KUSTOMIZE: [&str; 4] =
    ["Issuer", "Certificate", "ServiceMonitor", "PrometheusRule"];
pub const UNLABELED_CONFIGMAP: &str = "revhook-dashboard";

/// The chart's objects with the chart-only labels taken out, and a container's
/// `imagePullPolicy: IfNotPresent` (what the API server defaults a tagged image to) dropped.
pub fn undo_chart_only(mut doc: Value) -> Value {
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    let unlabeled = UNLABELED_IN_KUSTOMIZE.contains(&kind.as_str())
        || (kind == "ConfigMap" && doc["metadata"]["name"] == UNLABELED_CONFIGMAP);
    if let Some(meta) = doc["metadata"].as_object_mut() {
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            for key in HELM_ONLY_LABELS {
                labels.remove(key);
            }
            if unlabeled {
                labels.remove("app.kubernetes.io/name");
                labels.remove("app.kubernetes.io/part-of");
            }
            if labels.is_empty() {
                meta.remove("labels");
            }
        }
    }
    if let Some(containers) = doc
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
    {
        for c in containers {
            let tagged = c["image"]
                .as_str()
                .and_then(|i| i.rsplit_once(':'))
                .is_some_and(|(_, tag)| tag != "latest" && !tag.contains('/'));
            if tagged && c["imagePullPolicy"] == "IfNotPresent" {
                c.as_object_mut()
                    .expect("container")
                    .remove("imagePullPolicy");
            }
        }
    }
    doc
}

/// The kustomize objects with the webhooks' `caBundle: ''` dropped: the chart leaves the
/// field out unless it knows the CA, so an upgrade never blanks what revhook or cert-manager's
/// CA injector wrote.
pub fn undo_kustomize_only(mut doc: Value) -> Value {
    let hooks = doc.get_mut("webhooks").and_then(Value::as_array_mut);
    for hook in hooks.into_iter().flatten() {
        let config = hook["clientConfig"].as_object_mut().expect("clientConfig");
        if config.get("caBundle") == Some(&json!("")) {
            config.remove("caBundle");
        }
    }
    doc
}

/// `kind namespace/name`, how objects are matched across the two renderings.
pub fn id(doc: &Value) -> String {
    format!(
        "{} {}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["namespace"].as_str().unwrap_or(""),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Objects by id; a duplicate id is an error in either rendering.
pub fn by_id(docs: Vec<Value>) -> std::collections::BTreeMap<String, Value> {
    let mut map = std::collections::BTreeMap::new();
    for doc in docs {
        let key = id(&doc);
        assert!(map.insert(key.clone(), doc).is_none(), "{key} twice");
    }
    map
}

/// Where two objects differ, as a JSON patch from `a` to `b` (empty when equal).
pub fn differences(a: &Value, b: &Value) -> String {
    let patch = json_patch::diff(a, b);
    serde_json::to_string_pretty(&patch).expect("json")
}

/// The Deployment among rendered objects.
pub fn deployment(docs: &[Value]) -> &Value {
    docs.iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment")
}

/// The revhook container's args of a rendered Deployment.
pub fn container_args(docs: &[Value]) -> Vec<String> {
    deployment(docs)["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect()
}
