//! Manifests as Istio's webhook test sees them (`webhook_test.go`, the same from 1.22 to
//! master): each injectable document (a `List` split into its items) becomes the Pod its
//! controller would create, with a simulated owner reference (`objectToPod`,
//! `simulateOwnerRef`), and the golden's document becomes the Pod expected back.

use serde_json::{json, Value};

/// The documents of a YAML stream as Go reads them, empty ones dropped.
pub fn yaml_docs(text: &str) -> Result<Vec<Value>, String> {
    revhook::core::yaml::documents(text).map_err(|e| e.to_string())
}

/// The documents the webhook test injects (`getInjectableYamlDocs`), in order.
pub fn injectable_parts(doc: &Value) -> Vec<Value> {
    match doc["kind"].as_str().unwrap_or_default() {
        "Deployment"
        | "DeploymentConfig"
        | "DaemonSet"
        | "StatefulSet"
        | "Job"
        | "ReplicaSet"
        | "ReplicationController"
        | "CronJob"
        | "Pod" => vec![doc.clone()],
        "List" => doc["items"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(injectable_parts)
            .collect(),
        _ => vec![],
    }
}

/// The Pod a controller would create from this workload, as the webhook test builds it.
pub fn object_to_pod(obj: &Value) -> Value {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let (metadata, spec) = match kind {
        "Pod" => (obj["metadata"].clone(), obj["spec"].clone()),
        "CronJob" => {
            let template = &obj["spec"]["jobTemplate"]["spec"]["template"];
            let meta = simulate_owner_ref(&template["metadata"], name, api_version, kind);
            (meta, template["spec"].clone())
        }
        // Double nested: the Pod's owner is the ReplicaSet the Deployment made.
        "Deployment" => {
            let template = &obj["spec"]["template"];
            let owner = format!("{name}-fake");
            let mut meta =
                simulate_owner_ref(&template["metadata"], &owner, "apps/v1", "ReplicaSet");
            meta["generateName"] = json!(format!("{owner}-"));
            meta["labels"]["pod-template-hash"] = json!("fake");
            (meta, template["spec"].clone())
        }
        _ => {
            let template = &obj["spec"]["template"];
            let meta = simulate_owner_ref(&template["metadata"], name, api_version, kind);
            (meta, template["spec"].clone())
        }
    };
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

fn simulate_owner_ref(metadata: &Value, name: &str, api_version: &str, kind: &str) -> Value {
    let mut meta = match metadata {
        Value::Object(_) => metadata.clone(),
        _ => json!({}),
    };
    meta["generateName"] = json!(name);
    meta["ownerReferences"] = json!([{
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "controller": true,
    }]);
    meta
}

/// The Pod as Go serializes it, which is how both the API server and Istio's test send it:
/// struct-typed fields are never omitted (`metadata.creationTimestamp: null`, `status: {}`,
/// every container's `resources: {}`, every `resourceFieldRef`'s `divisor: "0"`). A JSON Patch
/// is written against this shape (`add /spec/initContainers/0/resources/limits` needs the
/// `resources` object to exist).
pub fn go_shaped(mut pod: Value) -> Value {
    if pod["metadata"].get("creationTimestamp").is_none() {
        pod["metadata"]["creationTimestamp"] = Value::Null;
    }
    if pod.get("status").is_none() {
        pod["status"] = json!({});
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in pod["spec"][list].as_array_mut().into_iter().flatten() {
            if container.get("resources").is_none() {
                container["resources"] = json!({});
            }
        }
    }
    zero_divisors(&mut pod["spec"]);
    pod
}

fn zero_divisors(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "resourceFieldRef" && child.get("divisor").is_none() {
                    child["divisor"] = json!("0");
                }
                zero_divisors(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(zero_divisors),
        _ => {}
    }
}

/// The namespace of the admission request. Istio's test passes the manifest's own namespace,
/// empty when it has none; an API server always names one, and `default` is what a manifest
/// without one lands in (the templates read `valueOrDefault .DeploymentMeta.Namespace
/// "default"`, so the goldens say `default` too).
pub fn request_namespace(part: &Value) -> String {
    part["metadata"]["namespace"]
        .as_str()
        .filter(|ns| !ns.is_empty())
        .unwrap_or("default")
        .to_owned()
}

/// An AdmissionReview v1 for a Pod CREATE, as the API server sends it for a controller.
pub fn admission_review(pod: &Value, namespace: &str, uid: &str) -> Value {
    let pod_kind = json!({"group": "", "version": "v1", "kind": "Pod"});
    let pods = json!({"group": "", "version": "v1", "resource": "pods"});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": pod_kind,
            "resource": pods,
            "requestKind": pod_kind,
            "requestResource": pods,
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_becomes_a_pod_owned_by_its_replicaset() {
        let docs = yaml_docs(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: hello}\nspec:\n  template:\n    metadata: {labels: {app: hello}}\n    spec: {containers: [{name: hello, image: x}]}\n---\n",
        )
        .expect("yaml");
        assert_eq!(docs.len(), 1);
        let pod = object_to_pod(&docs[0]);
        assert_eq!(pod["metadata"]["generateName"], "hello-fake-");
        assert_eq!(pod["metadata"]["labels"]["pod-template-hash"], "fake");
        assert_eq!(pod["metadata"]["labels"]["app"], "hello");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["name"], "hello-fake");
        assert_eq!(pod["spec"]["containers"][0]["name"], "hello");
        let sent = go_shaped(pod);
        assert_eq!(sent["spec"]["containers"][0]["resources"], json!({}));
        assert_eq!(sent["metadata"]["creationTimestamp"], Value::Null);
        assert_eq!(sent["status"], json!({}));
        assert_eq!(request_namespace(&docs[0]), "default");
    }

    #[test]
    fn a_list_is_split_into_its_workloads_and_services_are_dropped() {
        let list = json!({"kind": "List", "items": [
            {"kind": "Service", "metadata": {"name": "s"}},
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "ns"},
             "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}
        ]});
        let parts = injectable_parts(&list);
        assert_eq!(parts.len(), 1);
        let pod = object_to_pod(&parts[0]);
        assert_eq!(pod["metadata"]["generateName"], "j");
        assert_eq!(
            pod["metadata"]["ownerReferences"][0],
            json!({"apiVersion": "batch/v1", "kind": "Job", "name": "j", "controller": true})
        );
        assert_eq!(request_namespace(&parts[0]), "ns");
        let review = admission_review(&pod, "ns", "u");
        assert_eq!(review["request"]["object"], pod);
        assert_eq!(review["request"]["operation"], "CREATE");
    }
}
