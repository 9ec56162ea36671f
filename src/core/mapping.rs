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
//! - Installed: a revision is installed when it can serve, that is when its injector ConfigMap
//!   **and** its istiod Service (`istiod-<rev>`, `istiod` for the default revision) exist in
//!   its namespace. Where the Services were not read (a dump without them), the ConfigMap
//!   alone counts. A ConfigMap whose Service is gone is a revision removed in part
//!   ([`HalfRemoved`]), stale for admission.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::core::injector::{InjectorProblem, InjectorSource};
use crate::core::labels::{NamespaceLabels, ISTIO_REV, ISTIO_TAG};
use crate::core::revisions::{
    check_label_value, HalfRemoved, MeshSettings, Revision, RevisionTable, TableError,
};

use crate::core::snapshot::Snapshot;

pub const INJECTOR_CONFIGMAP: &str = "istio-sidecar-injector";
/// The default revision's istiod Service; a revision's is `istiod-<rev>`.
pub const ISTIOD: &str = "istiod";
/// `istioctl tag set` writes a Service `istiod-revision-tag-<tag>` for each tag: no istiod.
const TAG_SERVICE_PREFIX: &str = "istiod-revision-tag-";

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
}

/// The mesh config ConfigMaps istiod of `revision` reads, in the order it layers them: its
/// `istio[-<rev>]` ConfigMap, then (AKS) `istio-shared-configmap-<rev>`.
fn mesh_configmap_names(revision: &str) -> [String; 2] {
    let own = if revision == "default" {
        "istio".to_owned()
    } else {
        format!("istio-{revision}")
    };
    [own, format!("istio-shared-configmap-{revision}")]
}

/// The mesh config texts of a revision found beside its injector ConfigMap.
fn mesh_layers<'a>(
    revision: &str,
    namespace: &str,
    configmaps: &HashMap<(&'a str, &'a str), &'a ConfigMap>,
) -> Vec<String> {
    mesh_configmap_names(revision)
        .iter()
        .filter_map(|name| configmaps.get(&(namespace, name.as_str())))
        .filter_map(|cm| cm.data.as_ref()?.get("mesh").cloned())
        .collect()
}

/// Whether a ConfigMap is a revision's injector config.
fn is_injector_configmap(meta: &ObjectMeta) -> bool {
    meta.name.as_deref().is_some_and(|n| {
        n == INJECTOR_CONFIGMAP || n.starts_with(&format!("{INJECTOR_CONFIGMAP}-"))
    })
}

/// The revision an injector ConfigMap belongs to: its `istio.io/rev` label, else its values'
/// `revision`, else the name's suffix, else `default`.
pub fn revision_name(meta: &ObjectMeta, values: &Value) -> String {
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

/// Whether the revision's istiod runs native sidecars: its `ENABLE_NATIVE_SIDECARS`, and
/// where that is unset or `auto`, what the cluster supports (`mesh.native_sidecars_auto`).
fn native_sidecars(values: &Value, mesh: &MeshSettings) -> bool {
    match values["pilot"]["env"]["ENABLE_NATIVE_SIDECARS"] {
        Value::Bool(b) => b,
        Value::String(ref s) if s == "true" => true,
        Value::String(ref s) if s == "false" => false,
        _ => mesh.native_sidecars_auto,
    }
}

/// A revision from its injector ConfigMap (and the mesh ConfigMaps beside it); `None` when
/// the ConfigMap is not an injector's. A ConfigMap whose values cannot be read is an error
/// (no revision name can be trusted); one whose config or templates cannot be used gives a
/// revision that refuses its pods with the reason.
fn revision_from_configmap(
    cm: &ConfigMap,
    configmaps: &HashMap<(&str, &str), &ConfigMap>,
    mesh: &MeshSettings,
) -> Option<Result<Revision, MappingError>> {
    if !is_injector_configmap(&cm.metadata) {
        return None;
    }
    let namespace = cm.metadata.namespace.clone().unwrap_or_default();
    let name = cm.metadata.name.clone().unwrap_or_default();
    let data = cm.data.as_ref();
    let Some(raw) = data.and_then(|d| d.get("values")) else {
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
    let rev_name = revision_name(&cm.metadata, &values);
    let Some(config) = data.and_then(|d| d.get("config")) else {
        let problem = InjectorProblem::ConfigShape(format!(
            "ConfigMap {namespace}/{name} has no data.config"
        ));
        let image = crate::core::injector::values_proxy_image(&values);
        return Some(Ok(Revision::unusable(&rev_name, image, problem)));
    };
    let source = InjectorSource {
        config: config.clone(),
        values: raw.clone(),
        mesh: mesh_layers(&rev_name, &namespace, configmaps),
        native_sidecars: native_sidecars(&values, mesh),
        version: None,
    };
    Some(Ok(Revision::from_source(&rev_name, Ok(source))))
}

/// `(tag, revision)` of an `istioctl tag` MutatingWebhookConfiguration.
fn tag_from_webhook(mwc: &MutatingWebhookConfiguration) -> Option<(String, String)> {
    let labels = mwc.metadata.labels.as_ref()?;
    let tag = labels.get(ISTIO_TAG)?.clone();
    let rev = labels.get(ISTIO_REV).cloned().unwrap_or_default();
    Some((tag, rev))
}

/// `istiod` for the default revision, else `istiod-<rev>`.
pub fn istiod_name(revision: &str) -> String {
    if revision == "default" {
        ISTIOD.to_owned()
    } else {
        format!("{ISTIOD}-{revision}")
    }
}

/// The revision an istiod Service or Deployment serves: `istiod` is the default revision,
/// `istiod-<rev>` is `<rev>` (its `istio.io/rev` label first). Tag Services are not istiods.
pub fn istiod_revision(meta: &ObjectMeta) -> Option<String> {
    let name = meta.name.as_deref()?;
    let labels = meta.labels.as_ref();
    if name.starts_with(TAG_SERVICE_PREFIX) || labels.is_some_and(|l| l.contains_key(ISTIO_TAG)) {
        return None;
    }
    let from_name = if name == ISTIOD {
        Some("default".to_owned())
    } else {
        name.strip_prefix("istiod-").map(str::to_owned)
    }?;
    Some(
        labels
            .and_then(|l| l.get(ISTIO_REV))
            .filter(|r| !r.is_empty())
            .cloned()
            .unwrap_or(from_name),
    )
}

/// The revision a webhook configuration belongs to by Istio's naming:
/// `istio-sidecar-injector[-<rev>]`, `istio-validator[-<rev>]-<istio namespace>`; the
/// `istio.io/rev` label first. Tag webhooks belong to their tag, not to a revision.
pub fn own_revision(meta: &ObjectMeta) -> Option<String> {
    let name = meta.name.as_deref()?;
    let labels = meta.labels.as_ref();
    if labels.is_some_and(|l| l.contains_key(ISTIO_TAG)) {
        return None;
    }
    if !name.starts_with(INJECTOR_CONFIGMAP) && !name.starts_with("istio-validator") {
        return None;
    }
    labels
        .and_then(|l| l.get(ISTIO_REV))
        .cloned()
        .or_else(|| revision_in_webhook_name(name))
}

/// The revision in Istio's per-revision webhook names: `istio-sidecar-injector-<rev>`,
/// `istio-validator-<rev>-<istio namespace>`.
pub fn revision_in_webhook_name(name: &str) -> Option<String> {
    if let Some(rev) = name.strip_prefix("istio-sidecar-injector-") {
        return Some(rev.to_owned());
    }
    let rest = name.strip_prefix("istio-validator-")?;
    // The longer suffix first: `-aks-istio-system` also ends with `-istio-system`.
    let rev = rest
        .strip_suffix("-aks-istio-system")
        .or_else(|| rest.strip_suffix("-istio-system"))?;
    Some(rev.to_owned())
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

/// As [`snapshot_from_objects`], with the namespace labels already extracted. No Service is
/// known: every injector ConfigMap counts as installed.
pub fn snapshot_from_parts<'a>(
    configmaps: impl IntoIterator<Item = &'a ConfigMap>,
    webhooks: impl IntoIterator<Item = &'a MutatingWebhookConfiguration>,
    namespaces: HashMap<String, NamespaceLabels>,
    mesh: MeshSettings,
    origin: &str,
) -> (Snapshot, MappingReport) {
    let objects = IstioObjects {
        configmaps: configmaps.into_iter().collect(),
        webhooks: webhooks.into_iter().collect(),
        ..IstioObjects::default()
    };
    snapshot_from_istio(&objects, namespaces, mesh, origin)
}

/// Istio's objects as read from a cluster, for one snapshot.
#[derive(Debug, Default, Clone)]
pub struct IstioObjects<'a> {
    /// ConfigMaps of Istio's namespaces (injector and mesh configs; others are ignored).
    pub configmaps: Vec<&'a ConfigMap>,
    /// Tag webhook configurations, and the revisions' own injector configurations (named in
    /// what a half-removed revision left behind).
    pub webhooks: Vec<&'a MutatingWebhookConfiguration>,
    /// Services of the namespaces in `services_read`.
    pub services: Vec<&'a Service>,
    /// Namespaces whose Services were read: a revision there is installed only with its
    /// istiod Service. Elsewhere its injector ConfigMap alone counts (nothing can be judged).
    pub services_read: BTreeSet<String>,
}

/// Builds a snapshot of the revisions that can serve: an injector ConfigMap with its istiod
/// Service (where Services were read). One whose Service is gone is kept as [`HalfRemoved`],
/// so that what selects it is told what is left and how to finish removing it.
pub fn snapshot_from_istio(
    objects: &IstioObjects<'_>,
    namespaces: HashMap<String, NamespaceLabels>,
    mesh: MeshSettings,
    origin: &str,
) -> (Snapshot, MappingReport) {
    let mut report = MappingReport::default();
    let (revisions, half_removed) = usable_revisions(objects, &mesh, &mut report);
    let tags = usable_tags(objects.webhooks.iter().copied(), &revisions, &mut report);
    // Every name was checked above, so the table builds; if it ever did not, the revisions
    // alone still serve (never an empty table: that would deny every pod as stale).
    let table = match RevisionTable::new(revisions.clone(), tags) {
        Ok(t) => t,
        Err(e) => {
            report.errors.push(e.to_string());
            RevisionTable::new(revisions, []).unwrap_or_default()
        }
    };
    let table = table.with_half_removed(half_removed);
    (Snapshot::new(table, mesh, namespaces, origin), report)
}

/// Whether a revision of `namespace` has its istiod Service, where that can be told.
fn can_serve(objects: &IstioObjects<'_>, namespace: &str, revision: &str) -> bool {
    !objects.services_read.contains(namespace)
        || objects.services.iter().any(|svc| {
            svc.metadata.namespace.as_deref() == Some(namespace)
                && istiod_revision(&svc.metadata).as_deref() == Some(revision)
        })
}

/// What is left of `revision` in `namespace`: its injector ConfigMap, its mesh ConfigMaps,
/// and its own injector webhook configurations.
fn left_behind(
    revision: &str,
    namespace: &str,
    injector: &str,
    configmaps: &HashMap<(&str, &str), &ConfigMap>,
    webhooks: &[&MutatingWebhookConfiguration],
) -> HalfRemoved {
    let mut names = vec![injector.to_owned()];
    names.extend(
        mesh_configmap_names(revision)
            .into_iter()
            .filter(|n| configmaps.contains_key(&(namespace, n.as_str()))),
    );
    let mut hooks: Vec<String> = webhooks
        .iter()
        .filter(|w| {
            w.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(INJECTOR_CONFIGMAP))
                && own_revision(&w.metadata).as_deref() == Some(revision)
        })
        .filter_map(|w| w.metadata.name.clone())
        .collect();
    hooks.sort();
    HalfRemoved {
        revision: revision.to_owned(),
        namespace: namespace.to_owned(),
        service: istiod_name(revision),
        configmaps: names,
        webhooks: hooks,
    }
}

/// The revisions the ConfigMaps define that can serve, and those removed in part. One that
/// cannot be read, has a name that is no valid label value, or repeats another's name is
/// reported and skipped: the others keep serving.
fn usable_revisions(
    objects: &IstioObjects<'_>,
    mesh: &MeshSettings,
    report: &mut MappingReport,
) -> (Vec<Revision>, Vec<HalfRemoved>) {
    let by_name: HashMap<(&str, &str), &ConfigMap> = objects
        .configmaps
        .iter()
        .filter_map(|cm| {
            let m = &cm.metadata;
            Some(((m.namespace.as_deref()?, m.name.as_deref()?), *cm))
        })
        .collect();
    let mut revisions: Vec<Revision> = Vec::new();
    let mut half_removed = Vec::new();
    for cm in &objects.configmaps {
        let rev = match revision_from_configmap(cm, &by_name, mesh) {
            None => continue,
            Some(Err(e)) => {
                report.errors.push(e.to_string());
                continue;
            }
            Some(Ok(rev)) => rev,
        };
        let source = cm.metadata.name.as_deref().unwrap_or("injector ConfigMap");
        let namespace = cm.metadata.namespace.as_deref().unwrap_or_default();
        if let Err(e) = check_label_value(&rev.name) {
            report
                .errors
                .push(format!("{source}: {e}; revision skipped"));
        } else if revisions.iter().any(|r| r.name == rev.name) {
            report.errors.push(format!(
                "revision {:?} is defined by more than one ConfigMap; the first is used",
                rev.name
            ));
        } else if !can_serve(objects, namespace, &rev.name) {
            half_removed.push(left_behind(
                &rev.name,
                namespace,
                source,
                &by_name,
                &objects.webhooks,
            ));
        } else {
            revisions.push(rev.in_namespace(namespace));
        }
    }
    (revisions, half_removed)
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

    /// An injector ConfigMap with revhook's own template (the config), and these values.
    fn injector(name: &str, rev_label: Option<&str>, values: Value) -> ConfigMap {
        let mut c = cm(name, rev_label, values);
        let (config, _) =
            crate::core::injector::configmap_parts(crate::core::injector::EMBEDDED_INJECTOR)
                .expect("embedded injector");
        c.data
            .get_or_insert_with(BTreeMap::new)
            .insert("config".to_owned(), config);
        c
    }

    fn mesh_cm(name: &str, mesh: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("aks-istio-system".into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("mesh".to_owned(), mesh.to_owned())])),
            ..ConfigMap::default()
        }
    }

    fn one(cm: &ConfigMap, others: &[&ConfigMap]) -> Option<Result<Revision, MappingError>> {
        let map: HashMap<(&str, &str), &ConfigMap> = others
            .iter()
            .map(|c| {
                let m = &c.metadata;
                (
                    (
                        m.namespace.as_deref().unwrap_or_default(),
                        m.name.as_deref().unwrap_or_default(),
                    ),
                    *c,
                )
            })
            .collect();
        revision_from_configmap(cm, &map, &MeshSettings::default())
    }

    #[test]
    fn revision_from_hub_tag_and_variant_with_its_mesh_config() {
        let values = serde_json::json!({"global": {"hub": "mcr.microsoft.com/oss/istio", "tag": "1.23.0",
            "variant": "distroless", "istioNamespace": "aks-istio-system",
            "proxy": {"image": "proxyv2", "logLevel": "info", "resources": {"requests": {"cpu": "50m"}}}},
            "revision": "asm-1-23"});
        let mesh = mesh_cm(
            "istio-asm-1-23",
            "defaultConfig:\n  discoveryAddress: istiod-asm-1-23.aks-istio-system.svc:15012\n",
        );
        let shared = mesh_cm(
            "istio-shared-configmap-asm-1-23",
            "defaultConfig:\n  proxyMetadata: {ISTIO_META_DNS_CAPTURE: \"true\"}\n",
        );
        let cm = injector("istio-sidecar-injector-asm-1-23", Some("asm-1-23"), values);
        let rev = one(&cm, &[&mesh, &shared])
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
        let inj = rev.injector.expect("usable");
        assert_eq!(
            inj.values["global"]["proxy"]["resources"]["requests"]["cpu"],
            "50m"
        );
        assert_eq!(
            inj.mesh["defaultConfig"]["proxyMetadata"]["ISTIO_META_DNS_CAPTURE"], "true",
            "the AKS shared mesh config is layered over the revision's"
        );
        assert_eq!(inj.version, crate::core::injector::IstioVersion(23));
    }

    #[test]
    fn full_image_reference_and_default_revision() {
        let values = serde_json::json!({"global": {"hub": "docker.io/istio", "tag": "1.22.3",
            "proxy": {"image": "registry.example/istio/proxyv2:1.22.3-patched"}}, "pilot": {"cni": {"enabled": true}}});
        let rev = one(&injector("istio-sidecar-injector", None, values), &[])
            .expect("injector")
            .expect("maps");
        assert_eq!(rev.name, "default");
        assert_eq!(
            rev.proxy_image,
            "registry.example/istio/proxyv2:1.22.3-patched"
        );
    }

    #[test]
    fn revision_name_falls_back_to_the_configmap_name() {
        let values = serde_json::json!({"global": {"hub": "h", "tag": "1.22.0"}});
        let rev = one(
            &injector("istio-sidecar-injector-1-22-0", None, values),
            &[],
        )
        .expect("injector")
        .expect("maps");
        assert_eq!(rev.name, "1-22-0");
        assert_eq!(rev.proxy_image, "h/proxyv2:1.22.0");
    }

    #[test]
    fn native_sidecars_follow_the_revisions_istiod_env() {
        let values = |env: Value| serde_json::json!({"global": {"hub": "h", "tag": "1.29.0"}, "pilot": {"env": env}});
        for (env, native) in [
            (serde_json::json!({"ENABLE_NATIVE_SIDECARS": "true"}), true),
            (
                serde_json::json!({"ENABLE_NATIVE_SIDECARS": "false"}),
                false,
            ),
            (serde_json::json!({}), false),
        ] {
            let rev = one(
                &injector("istio-sidecar-injector-x", None, values(env)),
                &[],
            )
            .expect("injector")
            .expect("maps");
            assert_eq!(rev.injector.expect("usable").native_sidecars, native);
        }
    }

    #[test]
    fn a_configmap_that_is_no_injector_config_is_ignored() {
        assert!(one(&cm("istio", None, serde_json::json!({})), &[]).is_none());
    }

    #[test]
    fn an_injector_configmap_whose_values_are_not_json_is_reported() {
        let mut bad = cm("istio-sidecar-injector-x", None, Value::Null);
        bad.data = Some(BTreeMap::from([(
            "values".to_owned(),
            "{not json".to_owned(),
        )]));
        assert!(matches!(
            one(&bad, &[]),
            Some(Err(MappingError::BadValues { .. }))
        ));
    }

    #[test]
    fn an_injector_without_config_or_with_a_broken_template_is_an_unusable_revision() {
        let no_config = cm(
            "istio-sidecar-injector-y",
            None,
            serde_json::json!({"global": {}}),
        );
        let rev = one(&no_config, &[]).expect("injector").expect("a revision");
        let problem = rev.injector.expect_err("unusable");
        assert!(problem.to_string().contains("no data.config"), "{problem}");
        let mut broken = injector("istio-sidecar-injector-y", None, serde_json::json!({}));
        broken.data.as_mut().expect("data").insert(
            "config".into(),
            "templates:\n  sidecar: '{{ nosuch .Values }}'\n".into(),
        );
        let rev = one(&broken, &[]).expect("injector").expect("a revision");
        assert!(matches!(
            rev.injector,
            Err(crate::core::injector::InjectorProblem::TemplateParse { .. })
        ));
    }

    #[test]
    fn an_injector_configmap_without_values_is_reported() {
        let mut no_values = cm("istio-sidecar-injector-z", None, Value::Null);
        no_values.data = None;
        assert!(matches!(
            one(&no_values, &[]),
            Some(Err(MappingError::NoValues { .. }))
        ));
    }

    #[test]
    fn snapshot_from_cluster_objects() {
        let v = |t: &str| serde_json::json!({"global": {"hub": "docker.io/istio", "tag": t}});
        let cms = [
            injector(
                "istio-sidecar-injector-asm-1-22",
                Some("asm-1-22"),
                v("1.22.0"),
            ),
            injector(
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
        assert!(snap
            .table
            .revision("asm-1-23")
            .is_some_and(|r| r.injector.is_ok()));
    }

    fn service(name: &str, labels: &[(&str, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("aks-istio-system".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }

    fn injector_webhook(name: &str, rev: &str) -> MutatingWebhookConfiguration {
        MutatingWebhookConfiguration {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([(ISTIO_REV.to_owned(), rev.to_owned())])),
                ..ObjectMeta::default()
            },
            webhooks: None,
        }
    }

    #[test]
    fn a_revision_whose_istiod_service_is_gone_is_half_removed_not_installed() {
        let v = |rev: &str| serde_json::json!({"global": {"hub": "h", "tag": "1.23.0"}, "revision": rev});
        let old = injector(
            "istio-sidecar-injector-asm-1-22",
            Some("asm-1-22"),
            v("asm-1-22"),
        );
        let new = injector(
            "istio-sidecar-injector-asm-1-23",
            Some("asm-1-23"),
            v("asm-1-23"),
        );
        let old_mesh = mesh_cm("istio-asm-1-22", "trustDomain: cluster.local\n");
        let services = [
            service("istiod-asm-1-23", &[(ISTIO_REV, "asm-1-23")]),
            // The tag's Service selects asm-1-22's istiod, but it is no istiod.
            service(
                "istiod-revision-tag-prod-stable",
                &[(ISTIO_REV, "asm-1-22"), (ISTIO_TAG, "prod-stable")],
            ),
        ];
        let webhooks = [
            injector_webhook("istio-sidecar-injector-asm-1-22", "asm-1-22"),
            injector_webhook("istio-sidecar-injector-asm-1-23", "asm-1-23"),
            tag("istio-revision-tag-prod-stable", "prod-stable", "asm-1-22"),
        ];
        let objects = IstioObjects {
            configmaps: vec![&old, &new, &old_mesh],
            webhooks: webhooks.iter().collect(),
            services: services.iter().collect(),
            services_read: BTreeSet::from(["aks-istio-system".to_owned()]),
        };
        let (snap, report) =
            snapshot_from_istio(&objects, HashMap::new(), MeshSettings::default(), "test");
        assert!(report.errors.is_empty(), "{report:?}");
        let installed: Vec<&str> = snap.table.revisions().map(|r| r.name.as_str()).collect();
        assert_eq!(installed, ["asm-1-23"]);
        assert_eq!(
            snap.table
                .revision("asm-1-23")
                .map(|r| r.namespace.as_str()),
            Some("aks-istio-system")
        );
        let half: Vec<&HalfRemoved> = snap.table.half_removed().map(|h| h.as_ref()).collect();
        assert_eq!(
            half,
            [&HalfRemoved {
                revision: "asm-1-22".into(),
                namespace: "aks-istio-system".into(),
                service: "istiod-asm-1-22".into(),
                configmaps: vec![
                    "istio-sidecar-injector-asm-1-22".into(),
                    "istio-asm-1-22".into()
                ],
                webhooks: vec!["istio-sidecar-injector-asm-1-22".into()],
            }]
        );
        let stale = snap.table.resolve("prod-stable").expect_err("tag onto it");
        assert_eq!(stale.dangling_tag_target.as_deref(), Some("asm-1-22"));
        assert!(stale.half_removed.is_some());

        // Where Services were not read, the ConfigMap alone counts (a dump without them).
        let unknown = IstioObjects {
            services_read: BTreeSet::new(),
            ..objects.clone()
        };
        let (snap, _) =
            snapshot_from_istio(&unknown, HashMap::new(), MeshSettings::default(), "test");
        assert_eq!(snap.table.revisions().count(), 2);
        assert_eq!(snap.table.half_removed().count(), 0);
    }

    #[test]
    fn istiod_services_and_revision_webhooks_are_told_by_name_and_label() {
        let meta = |name: &str, labels: &[(&str, &str)]| service(name, labels).metadata;
        assert_eq!(
            istiod_revision(&meta("istiod", &[])).as_deref(),
            Some("default")
        );
        assert_eq!(
            istiod_revision(&meta("istiod-asm-1-23", &[])).as_deref(),
            Some("asm-1-23")
        );
        assert_eq!(
            istiod_revision(&meta("istiod-x", &[(ISTIO_REV, "asm-1-24")])).as_deref(),
            Some("asm-1-24"),
            "the label first"
        );
        assert_eq!(istiod_revision(&meta("istiod-revision-tag-a", &[])), None);
        assert_eq!(istiod_revision(&meta("web", &[])), None);
        assert_eq!(istiod_name("default"), "istiod");
        assert_eq!(istiod_name("asm-1-23"), "istiod-asm-1-23");
        let hook = injector_webhook("istio-sidecar-injector-asm-1-22", "asm-1-22");
        assert_eq!(own_revision(&hook.metadata).as_deref(), Some("asm-1-22"));
        let tag_hook = tag("istio-revision-tag-prod", "prod", "asm-1-22");
        assert_eq!(own_revision(&tag_hook.metadata), None);
    }

    #[test]
    fn a_bad_revision_among_good_ones_is_reported_and_the_good_ones_keep_serving() {
        let values = |rev: &str| serde_json::json!({"global": {"hub": "h", "tag": "1.23.0"}, "revision": rev});
        let good = injector(
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
