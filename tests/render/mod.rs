//! The shipped manifests as the cluster receives them: `kubectl kustomize` of a directory
//! (rendered here, for the features revhook's kustomizations use) and `helm template` of the
//! chart (run with the Helm CLI), as JSON values; and the list of deliberate differences
//! between the two.
//!
//! Helm is found on PATH or at `target/tools/bin/helm` (where `.ci/run` builds it). Without it
//! a test says so and skips; with `CI=true` it fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize as _;
use serde_json::{json, Map, Value};

pub const CHART: &str = "manifests/helm/revhook";
pub const RELEASE: &str = "revhook";
pub const NAMESPACE: &str = "revhook-system";

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("YAML document"))
        .filter(|v| !v.is_null())
        .collect()
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

/// kubectl (for its built-in kustomize).
pub fn kubectl() -> Option<PathBuf> {
    tool(
        "kubectl",
        None,
        "install kubectl to compare with its kustomize",
    )
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

/// `kubectl kustomize <dir>`.
pub fn kubectl_kustomize(kubectl: &Path, dir: &Path) -> Vec<Value> {
    yaml_docs(&run(Command::new(kubectl).arg("kustomize").arg(dir)))
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
// kustomize, for the fields revhook's kustomizations use. Anything else is refused loudly, so
// a kustomization that grows a feature fails here instead of rendering something else; a test
// in tests/manifests.rs compares this with `kubectl kustomize` for every case.

const CLUSTER_SCOPED: [&str; 5] = [
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

const SUPPORTED: [&str; 9] = [
    "apiVersion",
    "kind",
    "resources",
    "components",
    "patches",
    "namespace",
    "labels",
    "images",
    "configMapGenerator",
];

/// What `kubectl kustomize dir` prints, in the order resources are listed (kubectl sorts).
pub fn kustomize(dir: &Path) -> Vec<Value> {
    build(dir, Vec::new())
}

fn strs(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().expect("a string"))
}

/// One kustomization (or component) over the objects accumulated so far: its resources, its
/// components, its generators, then its transformers (kustomize's order).
fn build(dir: &Path, mut docs: Vec<Value>) -> Vec<Value> {
    let k = yaml_file(&dir.join("kustomization.yaml"))
        .pop()
        .expect("kustomization");
    for key in k.as_object().expect("kustomization is a map").keys() {
        assert!(
            SUPPORTED.contains(&key.as_str()),
            "{}: this renderer does not do `{key}`",
            dir.display()
        );
    }
    for res in strs(&k["resources"]) {
        let path = dir.join(res);
        if path.is_dir() {
            docs.extend(kustomize(&path));
        } else {
            docs.extend(yaml_file(&path));
        }
    }
    for component in strs(&k["components"]) {
        docs = build(&dir.join(component), docs);
    }
    for gen in k["configMapGenerator"].as_array().into_iter().flatten() {
        docs.push(config_map(dir, gen));
    }
    for patch in k["patches"].as_array().into_iter().flatten() {
        apply_patch(&mut docs, patch);
    }
    if let Some(ns) = k["namespace"].as_str() {
        for doc in &mut docs {
            if !CLUSTER_SCOPED.contains(&doc["kind"].as_str().unwrap_or_default()) {
                doc["metadata"]["namespace"] = json!(ns);
            }
        }
    }
    for set in k["labels"].as_array().into_iter().flatten() {
        add_labels(&mut docs, set);
    }
    for image in k["images"].as_array().into_iter().flatten() {
        set_image(&mut docs, image);
    }
    docs
}

fn config_map(dir: &Path, gen: &Value) -> Value {
    assert_eq!(
        gen["options"]["disableNameSuffixHash"], true,
        "this renderer makes no name hashes"
    );
    let mut data = Map::new();
    for file in strs(&gen["files"]) {
        assert!(!file.contains('='), "key=path file entries: not done here");
        let text = std::fs::read_to_string(dir.join(file)).expect("generator file");
        let key = Path::new(file).file_name().expect("file name");
        data.insert(key.to_string_lossy().into_owned(), json!(text));
    }
    let mut metadata = json!({"name": gen["name"]});
    if !gen["namespace"].is_null() {
        metadata["namespace"] = gen["namespace"].clone();
    }
    if !gen["options"]["labels"].is_null() {
        metadata["labels"] = gen["options"]["labels"].clone();
    }
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
}

/// `patches:` entries with a kind/name target and an inline JSON 6902 patch.
fn apply_patch(docs: &mut [Value], entry: &Value) {
    let target = &entry["target"];
    let ops: json_patch::Patch = serde_json::from_value(
        yaml_docs(entry["patch"].as_str().expect("inline patch"))
            .pop()
            .expect("patch document"),
    )
    .expect("a JSON 6902 patch (strategic merge patches: not done here)");
    let mut hits = 0;
    for doc in docs.iter_mut() {
        if doc["kind"] == target["kind"] && doc["metadata"]["name"] == target["name"] {
            json_patch::patch(doc, &ops).unwrap_or_else(|e| panic!("patch {target}: {e}"));
            hits += 1;
        }
    }
    assert_eq!(hits, 1, "patch target {target} matched {hits} objects");
}

/// `labels:` with `includeSelectors: false` (and no `includeTemplates`): metadata only.
fn add_labels(docs: &mut [Value], set: &Value) {
    assert_eq!(
        set["includeSelectors"], false,
        "selector labels: not done here"
    );
    assert!(
        set["includeTemplates"].is_null(),
        "template labels: not done here"
    );
    for doc in docs {
        let labels = doc["metadata"]
            .as_object_mut()
            .expect("metadata")
            .entry("labels")
            .or_insert_with(|| json!({}));
        for (k, v) in set["pairs"].as_object().expect("label pairs") {
            labels[k] = v.clone();
        }
    }
}

fn set_image(docs: &mut [Value], image: &Value) {
    let name = image["name"].as_str().expect("image name");
    let new = format!(
        "{}:{}",
        image["newName"].as_str().unwrap_or(name),
        image["newTag"].as_str().expect("newTag")
    );
    for doc in docs {
        let Some(spec) = doc.pointer_mut("/spec/template/spec") else {
            continue;
        };
        for list in ["containers", "initContainers"] {
            let containers = spec.get_mut(list).and_then(Value::as_array_mut);
            for c in containers.into_iter().flatten() {
                if c["image"] == name {
                    c["image"] = json!(new);
                }
            }
        }
    }
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
