//! The `web` Deployment in namespace `shop` that the upgrade flows restart and inspect
//! (`kube_upgrade`, `kube_asm_canary`): its stored pods' containers and env, its newest
//! ReplicaSet, and `kubectl rollout restart`.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use super::objects;

/// A container of a stored pod, by name.
pub fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {}", pod["metadata"]["name"]))
}

/// An env entry's `value` (null when absent or given by `valueFrom`).
pub fn env<'a>(c: &'a Value, name: &str) -> &'a Value {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == name)
        .map(|e| &e["value"])
        .unwrap_or(&Value::Null)
}

/// The pod-template-hash of the Deployment's newest ReplicaSet.
pub async fn current_template_hash(client: &Client) -> Result<String, String> {
    let deploy: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let d = deploy.get("web").await.map_err(|e| e.to_string())?;
    let revision = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
        .cloned()
        .ok_or("no deployment revision yet")?;
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), "shop");
    let list = rs
        .list(&ListParams::default().labels("app=web"))
        .await
        .map_err(|e| e.to_string())?;
    list.items
        .iter()
        .find(|r| {
            r.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                == Some(&revision)
        })
        .and_then(|r| {
            r.metadata
                .labels
                .as_ref()?
                .get("pod-template-hash")
                .cloned()
        })
        .ok_or_else(|| format!("no ReplicaSet for deployment revision {revision}"))
}

/// `kubectl rollout restart deployment/web -n shop`.
pub async fn rollout_restart(client: &Client, at: &str) {
    let deploy: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    deploy
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": at}}}}})),
        )
        .await
        .expect("rollout restart");
}

/// Namespace shop and the app's ServiceAccount from `tests/fixtures/kube/shop.yaml`, without
/// its Deployment: for tests that create the app's pods themselves.
pub fn shop_without_deployment() -> Vec<Value> {
    objects::yaml_file("tests/fixtures/kube/shop.yaml")
        .into_iter()
        .filter(|d| d["kind"] != "Deployment")
        .collect()
}
