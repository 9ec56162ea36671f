//! Reading a `kubectl get ... -o yaml` dump into the objects `check` judges.

use k8s_openapi::api::core::v1::Secret;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{CheckError, ClusterObjects};
use crate::core::yaml;

/// The keys of a TLS Secret `check` reads; everything else (the private key) is dropped.
const CERTIFICATE_KEYS: [&str; 2] = ["tls.crt", "ca.crt"];

/// A Secret with only its certificates: `check` never holds a private key.
pub fn keep_certificates(mut secret: Secret) -> Secret {
    if let Some(data) = secret.data.as_mut() {
        data.retain(|k, _| CERTIFICATE_KEYS.contains(&k.as_str()));
    }
    if let Some(data) = secret.string_data.as_mut() {
        data.retain(|k, _| CERTIFICATE_KEYS.contains(&k.as_str()));
    }
    secret.metadata.annotations = None;
    secret.metadata.managed_fields = None;
    secret
}

impl ClusterObjects {
    /// Reads a dump: a `kind: List` or a multi-document stream, YAML or JSON. Other kinds are
    /// ignored.
    pub fn from_dump(text: &str) -> Result<Self, CheckError> {
        let mut objects = ClusterObjects::default();
        for mut doc in yaml::documents(text)? {
            if doc["kind"] == "List" {
                if let Some(Value::Array(items)) = doc.get_mut("items").map(Value::take) {
                    for item in items {
                        objects.add(item)?;
                    }
                }
            } else {
                objects.add(doc)?;
            }
        }
        Ok(objects)
    }

    fn add(&mut self, mut doc: Value) -> Result<(), CheckError> {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        if kind == "Secret" {
            // Before anything else reads it: the private key never goes further.
            if let Some(data) = doc.get_mut("data").and_then(Value::as_object_mut) {
                data.retain(|k, _| CERTIFICATE_KEYS.contains(&k.as_str()));
            }
        }
        match kind.as_str() {
            "Namespace" => self.namespaces.push(typed(&kind, doc)?),
            "Pod" => self.pods.push(typed(&kind, doc)?),
            "ConfigMap" => self.configmaps.push(typed(&kind, doc)?),
            "MutatingWebhookConfiguration" => self.mutating.push(typed(&kind, doc)?),
            "ValidatingWebhookConfiguration" => self.validating.push(typed(&kind, doc)?),
            "Service" => push(&mut self.services, typed(&kind, doc)?),
            "Deployment" => self.deployments.push(typed(&kind, doc)?),
            "StatefulSet" => self.statefulsets.push(typed(&kind, doc)?),
            "ReplicaSet" => self.replicasets.push(typed(&kind, doc)?),
            "EndpointSlice" => push(&mut self.endpoint_slices, typed(&kind, doc)?),
            "Endpoints" => push(&mut self.endpoints, typed(&kind, doc)?),
            "Event" => self.events.push(typed(&kind, doc)?),
            "Secret" => self.secrets.push(keep_certificates(typed(&kind, doc)?)),
            _ => {}
        }
        Ok(())
    }
}

/// Adds to a kind that is judged only when the input has it.
fn push<T>(list: &mut Option<Vec<T>>, item: T) {
    list.get_or_insert_with(Vec::new).push(item);
}

fn typed<T: DeserializeOwned>(kind: &str, doc: Value) -> Result<T, CheckError> {
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    serde_json::from_value(doc).map_err(|e| CheckError::Object {
        kind: kind.to_owned(),
        name,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_judged_only_when_the_dump_has_some() {
        let without =
            ClusterObjects::from_dump("kind: Namespace\nmetadata: {name: shop}\n").expect("reads");
        assert_eq!(without.namespaces.len(), 1);
        assert!(without.services.is_none());
        let with = ClusterObjects::from_dump(
            "kind: List\nitems:\n- {kind: Service, metadata: {name: istiod, namespace: istio-system}}\n",
        )
        .expect("reads");
        assert_eq!(with.services.map(|s| s.len()), Some(1));
    }

    #[test]
    fn other_kinds_are_ignored_and_a_malformed_object_is_named() {
        let objects =
            ClusterObjects::from_dump("kind: Role\nmetadata: {name: s}\n---\n").expect("reads");
        assert!(objects.namespaces.is_empty() && objects.pods.is_empty());
        let err = ClusterObjects::from_dump("kind: Pod\nmetadata: {name: web}\nspec: 7\n")
            .expect_err("a Pod whose spec is a number");
        assert!(
            matches!(&err, CheckError::Object { kind, name, .. } if kind == "Pod" && name == "web"),
            "{err}"
        );
    }

    #[test]
    fn workloads_endpoints_and_events_are_read() {
        let objects = ClusterObjects::from_dump(
            "kind: List\nitems:\n\
             - {kind: Deployment, apiVersion: apps/v1, metadata: {name: istiod-asm-1-23, namespace: istio-system}}\n\
             - {kind: StatefulSet, apiVersion: apps/v1, metadata: {name: db, namespace: shop}}\n\
             - {kind: ReplicaSet, apiVersion: apps/v1, metadata: {name: web-1, namespace: shop}}\n\
             - {kind: EndpointSlice, apiVersion: discovery.k8s.io/v1, addressType: IPv4, endpoints: [], metadata: {name: istiod-x, namespace: istio-system}}\n\
             - {kind: Event, apiVersion: v1, involvedObject: {kind: ReplicaSet, name: web-1}, metadata: {name: e, namespace: shop}}\n",
        )
        .expect("reads");
        assert_eq!(objects.deployments.len(), 1);
        assert_eq!(objects.statefulsets.len(), 1);
        assert_eq!(objects.replicasets.len(), 1);
        assert_eq!(objects.endpoint_slices.map(|s| s.len()), Some(1));
        assert!(objects.endpoints.is_none(), "no Endpoints in this dump");
        assert_eq!(objects.events.len(), 1);
    }

    #[test]
    fn a_secrets_private_key_is_dropped_on_reading() {
        let objects = ClusterObjects::from_dump(
            "kind: Secret\nmetadata: {name: revhook-tls, namespace: revhook-system}\n\
             data: {tls.crt: Y2VydA==, tls.key: a2V5, ca.crt: Y2E=}\n",
        )
        .expect("reads");
        let data = objects.secrets[0].data.as_ref().expect("data");
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(keys, ["ca.crt", "tls.crt"]);
    }
}
