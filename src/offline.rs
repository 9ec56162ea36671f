//! `revhook inject -f`: offline injection of manifests, like `istioctl kube-inject`, with the
//! webhook's own engine. Pods and workloads' pod templates are injected; everything else
//! passes through unchanged.

use serde_json::Value;

use crate::core::labels::NamespaceLabels;
use crate::core::pod::PodIn;
use crate::core::policy::Policy;
use crate::core::snapshot::Snapshot;
use crate::core::verdict::{Decision, Skip, Verdict};
use crate::core::yaml::{self, YamlError};
use crate::inject::{review_pod, Target, Workload};

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("not YAML or JSON: {0}")]
    Parse(#[source] YamlError),
    #[error("{kind} {name:?}: {message}")]
    Refused {
        kind: String,
        name: String,
        message: String,
    },
    #[error("{kind} {name:?}: the pod template cannot be read: {detail}")]
    BadTemplate {
        kind: String,
        name: String,
        detail: String,
    },
    #[error("revision or tag {0:?}: {1}")]
    Stale(String, String),
    #[error("cannot write YAML: {0}")]
    Write(#[source] YamlError),
}

/// Where a manifest keeps its pod template.
pub fn template_path(doc: &Value) -> Option<&'static [&'static str]> {
    match doc["kind"].as_str()? {
        "Pod" => Some(&[]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template"]),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController"
        | "DeploymentConfig" => Some(&["spec", "template"]),
        _ => None,
    }
}

fn at<'v>(doc: &'v Value, path: &[&str]) -> &'v Value {
    path.iter().fold(doc, |v, k| &v[*k])
}

fn at_mut<'v>(doc: &'v mut Value, path: &[&str]) -> &'v mut Value {
    path.iter().fold(doc, |v, k| &mut v[*k])
}

/// The documents of a YAML stream (or JSON), as `kubectl apply -f` reads them: empty
/// documents are left out; a `kind: List` is one document.
pub fn documents(text: &str) -> Result<Vec<Value>, OfflineError> {
    yaml::documents(text).map_err(OfflineError::Parse)
}

/// A `v1` `List` (what `kubectl get -o yaml` prints for several objects).
pub fn is_list(doc: &Value) -> bool {
    doc["kind"] == "List" && doc["apiVersion"].as_str().is_none_or(|v| v == "v1")
}

/// The verdict for a manifest's pod (when it has one) and the manifest with the patch applied.
pub fn render(
    doc: &Value,
    snapshot: &Snapshot,
    policy: &Policy,
    ns_labels: Option<&NamespaceLabels>,
) -> Result<(Option<Verdict>, Value), OfflineError> {
    let Some(path) = template_path(doc) else {
        return Ok((None, doc.clone()));
    };
    let kind = doc["kind"].as_str().unwrap_or("Pod");
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
    let api_version = doc["apiVersion"].as_str().unwrap_or("v1");
    let bad = |detail: String| OfflineError::BadTemplate {
        kind: kind.to_owned(),
        name: name.to_owned(),
        detail,
    };
    let template = at(doc, path).clone();
    let raw = template.to_string();
    let pod = PodIn::parse(&raw).map_err(|e| bad(e.to_string()))?;
    // A Pod names its workload through owner references, as in the webhook; a workload is its
    // own owner.
    let workload = if kind == "Pod" {
        Workload::of_pod(&pod, namespace)
    } else {
        Workload::new(api_version, kind, name, namespace)
    };
    let target = Target {
        ns_labels,
        workload: Some(&workload),
        path: crate::inject::Path::KubeInject,
        ..Target::pod(&pod, &raw, namespace)
    };
    let verdict = review_pod(&target, snapshot, policy);
    let mut out = doc.clone();
    if let Some(patch) = &verdict.patch {
        let patch: json_patch::Patch =
            serde_json::from_str(patch).map_err(|e| bad(e.to_string()))?;
        let mut injected = template;
        json_patch::patch(&mut injected, &patch).map_err(|e| bad(e.to_string()))?;
        *at_mut(&mut out, path) = injected;
    }
    Ok((Some(verdict), out))
}

/// Which revision offline injection uses: `--revision`, `--tag`, or the `default` tag.
pub fn selection(revision: Option<&str>, tag: Option<&str>) -> NamespaceLabels {
    NamespaceLabels {
        injection: None,
        rev: Some(
            revision
                .or(tag)
                .unwrap_or(crate::core::revisions::DEFAULT_TAG)
                .to_owned(),
        ),
    }
}

/// What `inject -f` gives: the YAML stream to `kubectl apply -f -`, and the pods it left
/// alone that their authors may not expect to be left alone (printed on stderr, as
/// `istioctl kube-inject` prints them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Injected {
    pub text: String,
    pub warnings: Vec<String>,
}

/// Injects every pod and pod template of a manifest stream, as if each document's namespace
/// selected `selection`. A pod that opts out (`sidecar.istio.io/inject: "false"`), runs on the
/// host's network, or is already injected is left as it is (the first two with a warning).
pub fn inject_manifests(
    text: &str,
    snapshot: &Snapshot,
    policy: &Policy,
    selection: &NamespaceLabels,
) -> Result<Injected, OfflineError> {
    let value = selection.rev.as_deref().unwrap_or_default();
    if let Err(stale) = snapshot.table.resolve(value) {
        return Err(OfflineError::Stale(value.to_owned(), stale.to_string()));
    }
    let mut out = Injected::default();
    let run = Run {
        snapshot,
        policy,
        selection,
    };
    for doc in documents(text)? {
        let injected = run.document(doc, &mut out.warnings)?;
        out.text.push_str("---\n");
        out.text
            .push_str(&yaml::to_string(&injected).map_err(OfflineError::Write)?);
    }
    Ok(out)
}

/// One `inject -f` run's fixed inputs.
struct Run<'a> {
    snapshot: &'a Snapshot,
    policy: &'a Policy,
    selection: &'a NamespaceLabels,
}

impl Run<'_> {
    /// One document injected: a pod or workload gets its pod injected, a `List` stays a
    /// `List` with each item injected (as `istioctl kube-inject` does), anything else passes
    /// unchanged.
    fn document(&self, doc: Value, warnings: &mut Vec<String>) -> Result<Value, OfflineError> {
        if is_list(&doc) {
            let mut list = doc;
            if let Some(items) = list.get_mut("items").and_then(Value::as_array_mut) {
                for item in items.iter_mut() {
                    *item = self.document(item.take(), warnings)?;
                }
            }
            return Ok(list);
        }
        proxy_config_applies(&doc)?;
        let (verdict, rendered) = render(&doc, self.snapshot, self.policy, Some(self.selection))?;
        let Some(verdict) = verdict else {
            return Ok(rendered);
        };
        if !verdict.allowed {
            let message = verdict.status.map(|s| s.message).unwrap_or_default();
            return Err(refused(&doc, message));
        }
        warnings.extend(skip_warning(&doc, &verdict.decision));
        Ok(rendered)
    }
}

/// istioctl kube-inject applies a pod's `proxy.istio.io/config` before it decides whether to
/// inject (`IntoObject`, after the host-network check): one it cannot read fails the manifest
/// even when the pod opts out, and so it does here.
fn proxy_config_applies(doc: &Value) -> Result<(), OfflineError> {
    let Some(template) = template_path(doc).map(|path| at(doc, path)) else {
        return Ok(());
    };
    if template["spec"]["hostNetwork"] == true {
        return Ok(());
    }
    let Some(text) = template["metadata"]["annotations"]["proxy.istio.io/config"].as_str() else {
        return Ok(());
    };
    match crate::core::mesh::merge_proxy_config(text, &crate::core::mesh::default_proxy_config()) {
        Ok(_) => Ok(()),
        Err(e) => Err(refused(doc, format!("could not parse proxy config: {e}"))),
    }
}

/// A manifest refused, named by its kind and name.
fn refused(doc: &Value, message: String) -> OfflineError {
    OfflineError::Refused {
        kind: doc["kind"].as_str().unwrap_or_default().to_owned(),
        name: doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        message,
    }
}

/// Why a pod of the manifests was left without a sidecar, when its author may not expect it:
/// `Skipping injection because Deployment "shop/web" has host networking enabled`.
fn skip_warning(doc: &Value, decision: &Decision) -> Option<String> {
    let why = match decision {
        Decision::Skip(Skip::HostNetwork) => "has host networking enabled",
        Decision::Skip(Skip::PodOptOut) => "has sidecar injection disabled",
        _ => return None,
    };
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let full_name = match doc["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_owned(),
    };
    Some(match doc["kind"].as_str() {
        Some(kind) if !kind.is_empty() => {
            format!("Skipping injection because {kind} {full_name:?} {why}")
        }
        _ => format!("Skipping injection because {full_name:?} {why}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::config;

    fn snap() -> Snapshot {
        config::parse(
            "revisions:\n  - {name: asm-1-22, image: img:1.22}\n  - {name: asm-1-23, image: img:1.23}\ntags: {default: asm-1-22, prod-canary: asm-1-23}\n",
            "t",
        )
        .expect("config")
    }

    #[test]
    fn streams_skip_empty_documents_and_keep_lists_whole() {
        let stream = "---\na: 1\n---\n# nothing\n---\nb: 2\n";
        assert_eq!(
            documents(stream).expect("stream"),
            vec![serde_json::json!({"a": 1}), serde_json::json!({"b": 2})]
        );
        let list = "apiVersion: v1\nkind: List\nitems:\n- a: 1\n- b: 2\n";
        let docs = documents(list).expect("list");
        assert_eq!(docs.len(), 1);
        assert!(is_list(&docs[0]));
    }

    /// A `List` comes out a `List`, its pods injected and other items unchanged, as
    /// `istioctl kube-inject` writes it (Istio's `list.yaml` and `list-frontend.yaml` cases).
    #[test]
    fn a_list_stays_a_list_with_its_items_injected() {
        let text = "apiVersion: v1\nkind: List\nmetadata: {resourceVersion: \"\"}\nitems:\n\
                    - {apiVersion: v1, kind: Service, metadata: {name: web}, spec: {ports: [{port: 80}]}}\n\
                    - apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: web}\n  spec:\n    template:\n      spec:\n        containers: [{name: web, image: nginx}]\n\
                    - {apiVersion: v1, kind: List, items: [{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: a, image: b}]}}]}\n";
        let out = inject_manifests(
            text,
            &snap(),
            &Policy::default(),
            &selection(None, Some("prod-canary")),
        )
        .expect("injects")
        .text;
        let docs = documents(&out).expect("output parses");
        assert_eq!(docs.len(), 1, "{out}");
        let list = &docs[0];
        assert!(is_list(list), "{out}");
        assert_eq!(list["metadata"], serde_json::json!({"resourceVersion": ""}));
        let items = list["items"].as_array().expect("items");
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[0]["spec"],
            serde_json::json!({"ports": [{"port": 80}]})
        );
        let containers = &items[1]["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[1]["name"], "istio-proxy", "{out}");
        assert_eq!(containers[1]["image"], "img:1.23");
        let pod = &items[2]["items"][0];
        assert_eq!(pod["spec"]["containers"][1]["image"], "img:1.23", "{out}");
    }

    #[test]
    fn tag_selects_the_revision_and_non_pods_pass_through() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n---\n\
                    apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: nginx}]\n";
        let out = inject_manifests(
            text,
            &snap(),
            &Policy::default(),
            &selection(None, Some("prod-canary")),
        )
        .expect("injects")
        .text;
        let docs = documents(&out).expect("output parses");
        assert_eq!(docs[0]["kind"], "Service");
        assert_eq!(
            docs[0]["spec"],
            serde_json::json!({"ports": [{"port": 80}]})
        );
        assert_eq!(
            docs[1]["spec"]["template"]["spec"]["containers"][1]["image"],
            "img:1.23"
        );
    }

    /// A host-network or opted-out pod is left alone, said on the side with its kind and
    /// name (as istioctl kube-inject says it); an injected one is not mentioned.
    #[test]
    fn pods_left_alone_are_warned_about_by_kind_and_name() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: agent, namespace: ops}\n\
                    spec: {template: {spec: {hostNetwork: true, containers: [{name: a, image: b}]}}}\n---\n\
                    apiVersion: v1\nkind: Pod\nmetadata: {name: debug, annotations: {sidecar.istio.io/inject: \"false\"}}\n\
                    spec: {containers: [{name: a, image: b}]}\n---\n\
                    apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a, image: b}]}\n";
        let out = inject_manifests(text, &snap(), &Policy::default(), &selection(None, None))
            .expect("injects");
        assert_eq!(
            out.warnings,
            vec![
                r#"Skipping injection because Deployment "ops/agent" has host networking enabled"#,
                r#"Skipping injection because Pod "debug" has sidecar injection disabled"#,
            ]
        );
        let docs = documents(&out.text).expect("output parses");
        assert_eq!(
            docs[0]["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert_eq!(docs[2]["spec"]["containers"][1]["name"], "istio-proxy");
    }

    /// As istioctl kube-inject: a proxy config it cannot read fails the manifest, even for
    /// a pod that opts out; a host-network pod is left alone before that.
    #[test]
    fn an_unreadable_proxy_config_fails_even_an_opted_out_pod() {
        let pod = |extra: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {{sidecar.istio.io/inject: \"false\"}}\n  \
                 annotations: {{proxy.istio.io/config: \"drainDuration: forever\"}}\nspec: {{{extra}containers: [{{name: a, image: b}}]}}\n"
            )
        };
        let run = |text: &str| {
            inject_manifests(text, &snap(), &Policy::default(), &selection(None, None))
        };
        let err = run(&pod("")).expect_err("refused");
        assert!(
            err.to_string().contains("could not parse proxy config"),
            "{err}"
        );
        assert!(err.to_string().contains("drainDuration"), "{err}");
        run(&pod("hostNetwork: true, ")).expect("a host-network pod is skipped first");
    }

    #[test]
    fn unknown_revision_is_an_error_naming_what_is_installed() {
        let err = inject_manifests(
            "kind: Pod\n",
            &snap(),
            &Policy::default(),
            &selection(Some("asm-1-20"), None),
        )
        .expect_err("stale");
        assert!(
            err.to_string().contains("installed: asm-1-22, asm-1-23"),
            "{err}"
        );
    }
}
