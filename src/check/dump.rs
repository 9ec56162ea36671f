//! Reading a `kubectl get ... -o yaml` dump into the objects `check` judges.

use super::{CheckError, ClusterObjects};

impl ClusterObjects {
    /// Reads a dump: a `kind: List` or a multi-document stream, YAML or JSON. Other kinds are
    /// ignored.
    pub fn from_dump(text: &str) -> Result<Self, CheckError> {
        let mut objects = ClusterObjects::default();
        let mut services = Vec::new();
        let mut saw_services = false;
        for doc in crate::offline::documents(text)? {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let err = |e: serde_json::Error| CheckError::Object {
                kind: kind.clone(),
                name: name.clone(),
                detail: e.to_string(),
            };
            match kind.as_str() {
                "Namespace" => objects
                    .namespaces
                    .push(serde_json::from_value(doc).map_err(err)?),
                "Pod" => objects.pods.push(serde_json::from_value(doc).map_err(err)?),
                "ConfigMap" => objects
                    .configmaps
                    .push(serde_json::from_value(doc).map_err(err)?),
                "MutatingWebhookConfiguration" => objects
                    .mutating
                    .push(serde_json::from_value(doc).map_err(err)?),
                "ValidatingWebhookConfiguration" => objects
                    .validating
                    .push(serde_json::from_value(doc).map_err(err)?),
                "Service" => {
                    saw_services = true;
                    services.push(serde_json::from_value(doc).map_err(err)?);
                }
                _ => {}
            }
        }
        objects.services = saw_services.then_some(services);
        Ok(objects)
    }
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
            ClusterObjects::from_dump("kind: Secret\nmetadata: {name: s}\n---\n").expect("reads");
        assert!(objects.namespaces.is_empty() && objects.pods.is_empty());
        let err = ClusterObjects::from_dump("kind: Pod\nmetadata: {name: web}\nspec: 7\n")
            .expect_err("a Pod whose spec is a number");
        assert!(
            matches!(&err, CheckError::Object { kind, name, .. } if kind == "Pod" && name == "web"),
            "{err}"
        );
    }
}
