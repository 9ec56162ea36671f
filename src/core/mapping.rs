//! From the objects Istio's own tools write to revisions, tags and namespace labels.
//!
//! Pure: objects in, snapshot parts out. Shared by the cluster watchers, `revhook check` on a
//! dump, and `revhook tags`, so that all three read a cluster the same way.
//!
//! - Revisions: ConfigMaps `istio-sidecar-injector` / `istio-sidecar-injector-<rev>` in the
//!   Istio namespace, whose `values` key holds the injector's Helm values as JSON
//!   (`global.hub`, `global.tag`, `global.proxy.image`, `global.variant`, `revision`...).
//! - Tags: MutatingWebhookConfigurations labelled `istio.io/tag=<tag>`, `istio.io/rev=<rev>`,
//!   as `istioctl tag set` writes them.

use std::collections::HashMap;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::core::labels::{NamespaceLabels, ISTIO_REV, ISTIO_TAG};
use crate::core::revisions::{
    check_label_value, default_discovery_address, MeshSettings, ProxyDefaults, Revision,
    RevisionTable, TableError,
};

use crate::core::snapshot::Snapshot;

pub const INJECTOR_CONFIGMAP: &str = "istio-sidecar-injector";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("ConfigMap {namespace}/{name}: data.values is missing")]
    NoValues { namespace: String, name: String },
    #[error("ConfigMap {namespace}/{name}: data.values is not JSON: {detail}")]
    BadValues {
        namespace: String,
        name: String,
        detail: String,
    },
    #[error("ConfigMap {namespace}/{name}: no proxy image (values.global.hub/tag or values.global.proxy.image)")]
    NoImage { namespace: String, name: String },
}

/// Whether a ConfigMap is a revision's injector config.
fn is_injector_configmap(meta: &ObjectMeta) -> bool {
    meta.name.as_deref().is_some_and(|n| {
        n == INJECTOR_CONFIGMAP || n.starts_with(&format!("{INJECTOR_CONFIGMAP}-"))
    })
}

/// The revision a ConfigMap belongs to: its `istio.io/rev` label, else the name's suffix.
fn revision_name(meta: &ObjectMeta, values: &Value) -> String {
    let from_label = meta.labels.as_ref().and_then(|l| l.get(ISTIO_REV)).cloned();
    let from_values = values["revision"].as_str().map(str::to_owned);
    let from_name = meta
        .name
        .as_deref()
        .and_then(|n| n.strip_prefix(INJECTOR_CONFIGMAP))
        .and_then(|s| s.strip_prefix('-'))
        .map(str::to_owned);
    let name = from_label
        .or(from_values.filter(|v| !v.is_empty()))
        .or(from_name)
        .unwrap_or_default();
    if name.is_empty() {
        "default".to_owned()
    } else {
        name
    }
}

fn value_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The proxy image Istio's template would use: `global.proxy.image` when it is a full
/// reference (contains `/`), else `<hub>/<image>:<tag>`, plus `-<variant>` on the tag.
pub fn proxy_image(values: &Value) -> Option<String> {
    let global = &values["global"];
    let image = value_str(&global["proxy"]["image"]).unwrap_or_else(|| "proxyv2".to_owned());
    if image.contains('/') {
        return Some(image);
    }
    let hub = value_str(&global["hub"])?;
    let tag = value_str(&global["tag"])?;
    let variant = value_str(&global["variant"]);
    let tag = match variant {
        Some(v) if !tag.ends_with(&format!("-{v}")) => format!("{tag}-{v}"),
        _ => tag,
    };
    Some(format!("{}/{image}:{tag}", hub.trim_end_matches('/')))
}

/// A revision from its injector ConfigMap; `None` when the ConfigMap is not one.
fn revision_from_configmap(cm: &ConfigMap) -> Option<Result<Revision, MappingError>> {
    if !is_injector_configmap(&cm.metadata) {
        return None;
    }
    let namespace = cm.metadata.namespace.clone().unwrap_or_default();
    let name = cm.metadata.name.clone().unwrap_or_default();
    let Some(raw) = cm.data.as_ref().and_then(|d| d.get("values")) else {
        return Some(Err(MappingError::NoValues { namespace, name }));
    };
    let values: Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(e) => {
            return Some(Err(MappingError::BadValues {
                namespace,
                name,
                detail: e.to_string(),
            }))
        }
    };
    let Some(image) = proxy_image(&values) else {
        return Some(Err(MappingError::NoImage { namespace, name }));
    };
    let rev_name = revision_name(&cm.metadata, &values);
    let istio_ns = value_str(&values["global"]["istioNamespace"]).unwrap_or(namespace);
    let proxy = &values["global"]["proxy"];
    let d = ProxyDefaults::default();
    let res = &proxy["resources"];
    Some(Ok(Revision {
        discovery_address: default_discovery_address(&rev_name, &istio_ns),
        proxy_image: image,
        cni: values["pilot"]["cni"]["enabled"].as_bool().unwrap_or(false)
            || values["istio_cni"]["enabled"].as_bool().unwrap_or(false),
        native_sidecar: false,
        multus: [
            &values["cni"]["provider"],
            &values["pilot"]["cni"]["provider"],
        ]
        .iter()
        .any(|p| p.as_str() == Some("multus")),
        proxy: ProxyDefaults {
            cpu_request: value_str(&res["requests"]["cpu"]).unwrap_or(d.cpu_request),
            memory_request: value_str(&res["requests"]["memory"]).unwrap_or(d.memory_request),
            cpu_limit: value_str(&res["limits"]["cpu"]).unwrap_or(d.cpu_limit),
            memory_limit: value_str(&res["limits"]["memory"]).unwrap_or(d.memory_limit),
            log_level: value_str(&proxy["logLevel"]).unwrap_or(d.log_level),
            component_log_level: value_str(&proxy["componentLogLevel"])
                .unwrap_or(d.component_log_level),
            concurrency: proxy["concurrency"]
                .as_u64()
                .and_then(|c| u32::try_from(c).ok())
                .filter(|c| *c > 0),
        },
        name: rev_name,
    }))
}

/// `(tag, revision)` of an `istioctl tag` MutatingWebhookConfiguration.
fn tag_from_webhook(mwc: &MutatingWebhookConfiguration) -> Option<(String, String)> {
    let labels = mwc.metadata.labels.as_ref()?;
    let tag = labels.get(ISTIO_TAG)?.clone();
    let rev = labels.get(ISTIO_REV).cloned().unwrap_or_default();
    Some((tag, rev))
}

/// The injection labels of a namespace.
pub fn namespace_labels(meta: &ObjectMeta) -> NamespaceLabels {
    NamespaceLabels::from_pairs(
        meta.labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// What could not be mapped, reported beside the snapshot rather than failing it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MappingReport {
    pub errors: Vec<String>,
}

/// Builds a snapshot from what is in the cluster. A ConfigMap that cannot be read, a revision
/// seen twice or a tag named like a revision is reported, and left out, rather than failing
/// the whole snapshot: the hot path keeps serving what is known.
pub fn snapshot_from_objects<'a>(
    configmaps: impl IntoIterator<Item = &'a ConfigMap>,
    webhooks: impl IntoIterator<Item = &'a MutatingWebhookConfiguration>,
    namespaces: impl IntoIterator<Item = &'a ObjectMeta>,
    mesh: MeshSettings,
    origin: &str,
) -> (Snapshot, MappingReport) {
    let namespaces: HashMap<String, NamespaceLabels> = namespaces
        .into_iter()
        .filter_map(|m| Some((m.name.clone()?, namespace_labels(m))))
        .collect();
    snapshot_from_parts(configmaps, webhooks, namespaces, mesh, origin)
}

/// As [`snapshot_from_objects`], with the namespace labels already extracted.
pub fn snapshot_from_parts<'a>(
    configmaps: impl IntoIterator<Item = &'a ConfigMap>,
    webhooks: impl IntoIterator<Item = &'a MutatingWebhookConfiguration>,
    namespaces: HashMap<String, NamespaceLabels>,
    mesh: MeshSettings,
    origin: &str,
) -> (Snapshot, MappingReport) {
    let mut report = MappingReport::default();
    let revisions = usable_revisions(configmaps, &mut report);
    let tags = usable_tags(webhooks, &revisions, &mut report);
    // Every name was checked above, so the table builds; if it ever did not, the revisions
    // alone still serve (never an empty table: that would deny every pod as stale).
    let table = match RevisionTable::new(revisions.clone(), tags) {
        Ok(t) => t,
        Err(e) => {
            report.errors.push(e.to_string());
            RevisionTable::new(revisions, []).unwrap_or_default()
        }
    };
    (Snapshot::new(table, mesh, namespaces, origin), report)
}

/// The revisions the ConfigMaps define. One that cannot be read, has a name that is no valid
/// label value, or repeats another's name is reported and skipped: the others keep serving.
fn usable_revisions<'a>(
    configmaps: impl IntoIterator<Item = &'a ConfigMap>,
    report: &mut MappingReport,
) -> Vec<Revision> {
    let mut revisions: Vec<Revision> = Vec::new();
    for cm in configmaps {
        let rev = match revision_from_configmap(cm) {
            None => continue,
            Some(Err(e)) => {
                report.errors.push(e.to_string());
                continue;
            }
            Some(Ok(rev)) => rev,
        };
        let source = cm.metadata.name.as_deref().unwrap_or("injector ConfigMap");
        if let Err(e) = check_label_value(&rev.name) {
            report
                .errors
                .push(format!("{source}: {e}; revision skipped"));
        } else if revisions.iter().any(|r| r.name == rev.name) {
            report.errors.push(format!(
                "revision {:?} is defined by more than one ConfigMap; the first is used",
                rev.name
            ));
        } else {
            revisions.push(rev);
        }
    }
    revisions
}

/// The tags the tag webhooks define, each once; a tag with an invalid name or the name of a
/// revision is reported and skipped.
fn usable_tags<'a>(
    webhooks: impl IntoIterator<Item = &'a MutatingWebhookConfiguration>,
    revisions: &[Revision],
    report: &mut MappingReport,
) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for mwc in webhooks {
        let Some((tag, rev)) = tag_from_webhook(mwc) else {
            continue;
        };
        let source = mwc.metadata.name.as_deref().unwrap_or("tag webhook");
        if let Err(e) = check_label_value(&tag) {
            report.errors.push(format!("{source}: {e}; tag skipped"));
        } else if revisions.iter().any(|r| r.name == tag) {
            report.errors.push(format!(
                "{source}: {}",
                TableError::TagNamedLikeRevision(tag)
            ));
        } else if !tags.iter().any(|(t, _)| *t == tag) {
            tags.push((tag, rev));
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn cm(name: &str, rev_label: Option<&str>, values: Value) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("aks-istio-system".into()),
                labels: rev_label.map(|r| BTreeMap::from([(ISTIO_REV.to_owned(), r.to_owned())])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("values".to_owned(), values.to_string())])),
            ..ConfigMap::default()
        }
    }

    fn tag(name: &str, tag: &str, rev: &str) -> MutatingWebhookConfiguration {
        MutatingWebhookConfiguration {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([
                    (ISTIO_TAG.to_owned(), tag.to_owned()),
                    (ISTIO_REV.to_owned(), rev.to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            webhooks: None,
        }
    }

    #[test]
    fn revision_from_hub_tag_and_variant() {
        let values = serde_json::json!({"global": {"hub": "mcr.microsoft.com/oss/istio", "tag": "1.23.0",
            "variant": "distroless", "istioNamespace": "aks-istio-system",
            "proxy": {"image": "proxyv2", "logLevel": "info", "resources": {"requests": {"cpu": "50m"}}}},
            "revision": "asm-1-23"});
        let rev = revision_from_configmap(&cm(
            "istio-sidecar-injector-asm-1-23",
            Some("asm-1-23"),
            values,
        ))
        .expect("an injector ConfigMap")
        .expect("maps");
        assert_eq!(rev.name, "asm-1-23");
        assert_eq!(
            rev.proxy_image,
            "mcr.microsoft.com/oss/istio/proxyv2:1.23.0-distroless"
        );
        assert_eq!(
            rev.discovery_address,
            "istiod-asm-1-23.aks-istio-system.svc:15012"
        );
        assert_eq!(rev.proxy.cpu_request, "50m");
        assert_eq!(rev.proxy.log_level, "info");
        assert!(!rev.cni);
    }

    #[test]
    fn full_image_reference_and_default_revision() {
        let values = serde_json::json!({"global": {"hub": "docker.io/istio", "tag": "1.22.3",
            "proxy": {"image": "registry.example/istio/proxyv2:1.22.3-patched"}}, "pilot": {"cni": {"enabled": true}}});
        let rev = revision_from_configmap(&cm("istio-sidecar-injector", None, values))
            .expect("injector")
            .expect("maps");
        assert_eq!(rev.name, "default");
        assert_eq!(
            rev.proxy_image,
            "registry.example/istio/proxyv2:1.22.3-patched"
        );
        assert_eq!(rev.discovery_address, "istiod.aks-istio-system.svc:15012");
        assert!(rev.cni);
    }

    #[test]
    fn revision_name_falls_back_to_the_configmap_name() {
        let values = serde_json::json!({"global": {"hub": "h", "tag": "1.22.0"}});
        let rev = revision_from_configmap(&cm("istio-sidecar-injector-1-22-0", None, values))
            .expect("injector")
            .expect("maps");
        assert_eq!(rev.name, "1-22-0");
        assert_eq!(rev.proxy_image, "h/proxyv2:1.22.0");
    }

    #[test]
    fn a_configmap_that_is_no_injector_config_is_ignored() {
        assert!(revision_from_configmap(&cm("istio", None, serde_json::json!({}))).is_none());
    }

    #[test]
    fn an_injector_configmap_whose_values_are_not_json_is_reported() {
        let mut bad = cm("istio-sidecar-injector-x", None, Value::Null);
        bad.data = Some(BTreeMap::from([(
            "values".to_owned(),
            "{not json".to_owned(),
        )]));
        assert!(matches!(
            revision_from_configmap(&bad),
            Some(Err(MappingError::BadValues { .. }))
        ));
    }

    #[test]
    fn an_injector_configmap_without_a_proxy_image_is_reported() {
        let no_image = cm(
            "istio-sidecar-injector-y",
            None,
            serde_json::json!({"global": {}}),
        );
        assert!(matches!(
            revision_from_configmap(&no_image),
            Some(Err(MappingError::NoImage { .. }))
        ));
    }

    #[test]
    fn an_injector_configmap_without_values_is_reported() {
        let mut no_values = cm("istio-sidecar-injector-z", None, Value::Null);
        no_values.data = None;
        assert!(matches!(
            revision_from_configmap(&no_values),
            Some(Err(MappingError::NoValues { .. }))
        ));
    }

    #[test]
    fn snapshot_from_cluster_objects() {
        let v = |t: &str| serde_json::json!({"global": {"hub": "docker.io/istio", "tag": t}});
        let cms = [
            cm(
                "istio-sidecar-injector-asm-1-22",
                Some("asm-1-22"),
                v("1.22.0"),
            ),
            cm(
                "istio-sidecar-injector-asm-1-23",
                Some("asm-1-23"),
                v("1.23.0"),
            ),
            cm("kube-root-ca.crt", None, serde_json::json!({})),
        ];
        let tags = [
            tag("istio-revision-tag-prod-stable", "prod-stable", "asm-1-22"),
            tag("istio-revision-tag-asm-1-23", "asm-1-23", "asm-1-23"),
        ];
        let ns = ObjectMeta {
            name: Some("shop".into()),
            labels: Some(BTreeMap::from([(
                ISTIO_REV.to_owned(),
                "prod-stable".to_owned(),
            )])),
            ..ObjectMeta::default()
        };
        let (snap, report) =
            snapshot_from_objects(&cms, &tags, [&ns], MeshSettings::default(), "cluster");
        assert_eq!(snap.table.revisions().count(), 2);
        assert_eq!(snap.table.tag_target("prod-stable"), Some("asm-1-22"));
        assert_eq!(
            report.errors.len(),
            1,
            "the tag named like a revision: {report:?}"
        );
        assert_eq!(
            snap.namespace("shop").and_then(|n| n.rev.as_deref()),
            Some("prod-stable")
        );
        assert!(snap.sidecar("asm-1-23").is_some());
    }

    #[test]
    fn a_bad_revision_among_good_ones_is_reported_and_the_good_ones_keep_serving() {
        let values = |rev: &str| serde_json::json!({"global": {"hub": "h", "tag": "1.23.0"}, "revision": rev});
        let good = cm(
            "istio-sidecar-injector-asm-1-23",
            Some("asm-1-23"),
            values("asm-1-23"),
        );
        let bad_name = "Not A Label!";
        let bad = cm(
            "istio-sidecar-injector-broken",
            Some(bad_name),
            values(bad_name),
        );
        let tags = [
            tag("istio-revision-tag-prod-stable", "prod-stable", "asm-1-23"),
            tag("istio-revision-tag-bad", "bad tag", "asm-1-23"),
        ];
        let (snapshot, report) = snapshot_from_parts(
            [&bad, &good],
            &tags,
            HashMap::new(),
            MeshSettings::default(),
            "test",
        );
        assert!(snapshot.table.revision("asm-1-23").is_some());
        let resolved = snapshot.table.resolve("prod-stable").expect("tag resolves");
        assert_eq!(resolved.revision.name, "asm-1-23");
        assert_eq!(snapshot.table.revisions().count(), 1);
        assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
        assert!(
            report.errors[0].contains("istio-sidecar-injector-broken")
                && report.errors[0].contains("revision skipped"),
            "{:?}",
            report.errors
        );
        assert!(
            report.errors[1].contains("tag skipped"),
            "{:?}",
            report.errors
        );
    }
}
