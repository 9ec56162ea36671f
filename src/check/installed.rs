//! Which revisions are installed, and what is left of those that are not.
//!
//! A revision is installed when its injector ConfigMap (`istio-sidecar-injector[-<rev>]`) **and**
//! its istiod Service (`istiod[-<rev>]`) exist: the ASM guide finishes an upgrade with
//! `kubectl delete Service,Deployment,HPA,PDB istiod-<old>`, which leaves the ConfigMap and the
//! webhook configurations behind, and proxies injected for it would name a Service that is gone.
//! When the input has no Services at all, the ConfigMap alone counts (nothing can be judged).
//!
//! Istio is looked for where it is: the given namespaces when an injector ConfigMap is there,
//! else every namespace that holds one (AKS `aks-istio-system`, ASM `asm-system`...).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Resource as _;
use serde_json::Value;

use super::{ClusterObjects, DeploymentStatus};
use crate::core::labels::ISTIO_REV;
pub(super) use crate::core::mapping::{istiod_name, own_revision, revision_in_webhook_name};
use crate::core::mapping::{istiod_revision, INJECTOR_CONFIGMAP};
use crate::core::revisions::HalfRemoved;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;

/// Where AKS keeps a revision's mesh settings: `istio-shared-configmap-<rev>`.
pub(super) const AKS_SHARED_CONFIGMAP: &str = "istio-shared-configmap-";

/// What exists of one revision.
#[derive(Debug, Default)]
pub(super) struct Parts<'o> {
    pub(super) revision: String,
    /// The Istio namespace it lives in.
    pub(super) namespace: String,
    pub(super) injector: Option<&'o ConfigMap>,
    /// `istio[-<rev>]`: the revision's mesh config.
    pub(super) mesh: Option<&'o ConfigMap>,
    pub(super) shared: Option<&'o ConfigMap>,
    pub(super) service: Option<&'o Service>,
    pub(super) deployment: Option<&'o Deployment>,
    /// `(kind, name)` of its own webhook configurations.
    pub(super) webhooks: Vec<(&'static str, String)>,
}

impl Parts<'_> {
    /// `istiod` for the default revision, else `istiod-<rev>`.
    pub(super) fn istiod_name(&self) -> String {
        istiod_name(&self.revision)
    }

    pub(super) fn deployment_status(&self) -> Option<DeploymentStatus> {
        let d = self.deployment?;
        Some(DeploymentStatus {
            name: d.metadata.name.clone().unwrap_or_default(),
            replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
        })
    }

    /// What of the revision exists, as `Kind namespace/name` phrases.
    pub(super) fn present(&self) -> Vec<String> {
        let ns = &self.namespace;
        let mut out = Vec::new();
        let mut cm = |c: Option<&ConfigMap>| {
            if let Some(name) = c.and_then(|c| c.metadata.name.as_deref()) {
                out.push(format!("ConfigMap {ns}/{name}"));
            }
        };
        cm(self.injector);
        cm(self.mesh);
        cm(self.shared);
        if self.service.is_some() {
            out.push(format!("Service {ns}/{}", self.istiod_name()));
        }
        if let Some(d) = self.deployment_status() {
            out.push(format!(
                "Deployment {ns}/{} ({}/{} ready)",
                d.name, d.ready, d.replicas
            ));
        }
        out.extend(self.webhooks.iter().map(|(k, n)| format!("{k} {n}")));
        out
    }

    /// What the webhook is told of this revision when its injector ConfigMap is left without
    /// its istiod Service (`None` otherwise: nothing selects a revision by its Service).
    pub(super) fn left_behind(&self) -> Option<HalfRemoved> {
        let injector = self.injector?.metadata.name.clone()?;
        if self.service.is_some() {
            return None;
        }
        let configmaps = std::iter::once(injector)
            .chain(
                [self.mesh, self.shared]
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.metadata.name.clone()),
            )
            .collect();
        let webhooks = self
            .webhooks
            .iter()
            .filter(|(kind, name)| {
                *kind == MutatingWebhookConfiguration::KIND && name.starts_with(INJECTOR_CONFIGMAP)
            })
            .map(|(_, name)| name.clone())
            .collect();
        Some(HalfRemoved {
            revision: self.revision.clone(),
            namespace: self.namespace.clone(),
            service: self.istiod_name(),
            configmaps,
            webhooks,
        })
    }

    /// The commands that delete what exists of the revision (the ASM guide's, completed).
    pub(super) fn removal_commands(&self) -> Vec<String> {
        let ns = &self.namespace;
        let mut out = Vec::new();
        if self.service.is_some() || self.deployment.is_some() {
            out.push(format!(
                "kubectl delete service,deployment,horizontalpodautoscaler,poddisruptionbudget {} -n {ns} --ignore-not-found",
                self.istiod_name()
            ));
        }
        let cms: Vec<&str> = [self.injector, self.mesh, self.shared]
            .into_iter()
            .flatten()
            .filter_map(|c| c.metadata.name.as_deref())
            .collect();
        if !cms.is_empty() {
            out.push(format!(
                "kubectl delete configmap {} -n {ns}",
                cms.join(" ")
            ));
        }
        for (kind, name) in &self.webhooks {
            out.push(format!(
                "kubectl delete {} {name}",
                kind.to_ascii_lowercase()
            ));
        }
        out
    }
}

/// The revisions of a cluster, installed or not.
#[derive(Debug)]
pub(super) struct Inventory<'o> {
    pub(super) istio_namespaces: Vec<String>,
    /// The input had Services: a revision needs its istiod Service to be installed.
    pub(super) services_known: bool,
    pub(super) revisions: BTreeMap<String, Parts<'o>>,
    /// The shared ConfigMaps by the revision they name (also of revisions with nothing else).
    pub(super) shared: BTreeMap<String, &'o ConfigMap>,
}

impl<'o> Inventory<'o> {
    pub(super) fn of(objects: &'o ClusterObjects, given: &[String]) -> Self {
        let istio_namespaces = istio_namespaces(&objects.configmaps, given);
        let in_istio = |m: &ObjectMeta| {
            m.namespace
                .as_ref()
                .is_some_and(|n| istio_namespaces.contains(n))
        };
        let mut inv = Inventory {
            services_known: objects.services.is_some(),
            revisions: BTreeMap::new(),
            shared: BTreeMap::new(),
            istio_namespaces: istio_namespaces.clone(),
        };
        let istio_cms: Vec<&ConfigMap> = objects
            .configmaps
            .iter()
            .filter(|c| in_istio(&c.metadata))
            .collect();
        for cm in &istio_cms {
            inv.add_configmap(cm);
        }
        for svc in objects.services.iter().flatten() {
            if let Some(rev) = istiod_revision(&svc.metadata).filter(|_| in_istio(&svc.metadata)) {
                inv.parts(&rev, &svc.metadata).service = Some(svc);
            }
        }
        for d in &objects.deployments {
            if let Some(rev) = istiod_revision(&d.metadata).filter(|_| in_istio(&d.metadata)) {
                inv.parts(&rev, &d.metadata).deployment = Some(d);
            }
        }
        // Mesh configs last: `istio-<x>` is a revision's only once the revision is known.
        for cm in istio_cms {
            inv.add_mesh_config(cm);
        }
        inv.add_webhooks(objects);
        inv
    }

    fn parts(&mut self, revision: &str, meta: &ObjectMeta) -> &mut Parts<'o> {
        self.revisions
            .entry(revision.to_owned())
            .or_insert_with(|| Parts {
                revision: revision.to_owned(),
                namespace: meta.namespace.clone().unwrap_or_default(),
                ..Parts::default()
            })
    }

    fn add_configmap(&mut self, cm: &'o ConfigMap) {
        let name = cm.metadata.name.as_deref().unwrap_or_default();
        if let Some(rev) = name.strip_prefix(AKS_SHARED_CONFIGMAP) {
            self.shared.insert(rev.to_owned(), cm);
        } else if is_injector(name) {
            let rev = injector_revision(cm);
            self.parts(&rev, &cm.metadata).injector = Some(cm);
        }
    }

    /// `istio` and `istio-<rev>` hold mesh configs; other `istio-*` ConfigMaps (leader
    /// elections, the CA root) name no revision that exists.
    fn add_mesh_config(&mut self, cm: &'o ConfigMap) {
        let name = cm.metadata.name.as_deref().unwrap_or_default();
        if name.starts_with(AKS_SHARED_CONFIGMAP) || is_injector(name) {
            return;
        }
        if let Some(parts) = mesh_revision(name).and_then(|r| self.revisions.get_mut(&r)) {
            parts.mesh = Some(cm);
        }
    }

    /// Each revision's own webhook configurations (Istio's names), and the shared ConfigMaps
    /// of revisions with other parts.
    fn add_webhooks(&mut self, objects: &'o ClusterObjects) {
        let names = objects
            .mutating
            .iter()
            .map(|m| (MutatingWebhookConfiguration::KIND, &m.metadata))
            .chain(objects.validating.iter().map(|v| {
                (
                    k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration::KIND,
                    &v.metadata,
                )
            }));
        for (kind, meta) in names {
            let name = meta.name.clone().unwrap_or_default();
            if let Some(parts) = own_revision(meta).and_then(|r| self.revisions.get_mut(&r)) {
                parts.webhooks.push((kind, name));
            }
        }
        for (rev, cm) in &self.shared {
            if let Some(parts) = self.revisions.get_mut(rev) {
                parts.shared = Some(cm);
            }
        }
    }

    /// Installed: the injector ConfigMap, and its istiod Service where Services are known.
    pub(super) fn is_installed(&self, revision: &str) -> bool {
        self.revisions
            .get(revision)
            .is_some_and(|p| p.injector.is_some() && (!self.services_known || p.service.is_some()))
    }

    /// The injector ConfigMaps of installed revisions and the mesh configs beside them (`istio`,
    /// `istio-<rev>`, AKS's shared one, which their injectors layer): what the snapshot is
    /// built from.
    pub(super) fn installed_injectors(&self) -> Vec<&'o ConfigMap> {
        self.revisions
            .values()
            .filter(|p| self.is_installed(&p.revision))
            .flat_map(|p| [p.injector, p.mesh, p.shared])
            .flatten()
            .collect()
    }

    /// Revisions of which something that serves is left (ConfigMap, Service, Deployment)
    /// without being installed.
    pub(super) fn half_removed(&self) -> impl Iterator<Item = &Parts<'o>> {
        self.revisions.values().filter(|p| {
            !self.is_installed(&p.revision)
                && (p.injector.is_some() || p.service.is_some() || p.deployment.is_some())
        })
    }
}

fn is_injector(name: &str) -> bool {
    name == INJECTOR_CONFIGMAP
        || name
            .strip_prefix(INJECTOR_CONFIGMAP)
            .is_some_and(|s| s.starts_with('-'))
}

/// The revision of an injector ConfigMap: its `istio.io/rev` label, else `values.revision`,
/// else the name's suffix, else `default` (as the webhook's mapping reads it).
fn injector_revision(cm: &ConfigMap) -> String {
    let from_label = cm
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ISTIO_REV))
        .cloned();
    let from_values = || {
        cm.data
            .as_ref()
            .and_then(|d| d.get("values"))
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
            .and_then(|v| v["revision"].as_str().map(str::to_owned))
            .filter(|r| !r.is_empty())
    };
    let from_name = || {
        cm.metadata
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix(INJECTOR_CONFIGMAP))
            .and_then(|s| s.strip_prefix('-'))
            .map(str::to_owned)
    };
    from_label
        .filter(|r| !r.is_empty())
        .or_else(from_values)
        .or_else(from_name)
        .unwrap_or_else(|| "default".into())
}

/// `istio` → `default`, `istio-<rev>` → `<rev>` (other `istio-*` names are not mesh configs,
/// which the caller checks by requiring the revision to exist).
fn mesh_revision(name: &str) -> Option<String> {
    if name == "istio" {
        return Some("default".into());
    }
    name.strip_prefix("istio-")
        .filter(|r| !r.is_empty() && *r != "ca-root-cert")
        .map(str::to_owned)
}

/// Where Istio is: the given namespaces that hold an injector ConfigMap; if none does, every
/// namespace that holds one; if there is none anywhere, the given namespaces.
fn istio_namespaces(configmaps: &[ConfigMap], given: &[String]) -> Vec<String> {
    let holding: BTreeSet<&str> = configmaps
        .iter()
        .filter(|c| c.metadata.name.as_deref().is_some_and(is_injector))
        .filter_map(|c| c.metadata.namespace.as_deref())
        .collect();
    let narrowed: Vec<String> = given
        .iter()
        .filter(|n| holding.contains(n.as_str()))
        .cloned()
        .collect();
    if !narrowed.is_empty() {
        narrowed
    } else if !holding.is_empty() {
        holding.into_iter().map(str::to_owned).collect()
    } else {
        given.to_vec()
    }
}

/// Ready endpoints of a Service: from its EndpointSlices, else from its Endpoints; `None` when
/// the input has neither kind.
pub(super) fn ready_endpoints(
    objects: &ClusterObjects,
    namespace: &str,
    service: &str,
) -> Option<usize> {
    if let Some(slices) = &objects.endpoint_slices {
        let ready = slices
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
            .filter(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    .is_some_and(|n| n == service)
            })
            .flat_map(|s| &s.endpoints)
            // Unset means ready (the API's documented default).
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .map(|e| e.addresses.len().max(1))
            .sum();
        return Some(ready);
    }
    let endpoints = objects.endpoints.as_ref()?;
    Some(
        endpoints
            .iter()
            .filter(|e| {
                e.metadata.namespace.as_deref() == Some(namespace)
                    && e.metadata.name.as_deref() == Some(service)
            })
            .flat_map(|e| e.subsets.iter().flatten())
            .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{
        configmap, deployment, endpoint_slice, injector, mutating, service, validating,
    };
    use crate::core::labels::ISTIO_TAG;

    fn objects(configmaps: Vec<ConfigMap>, services: Option<Vec<Service>>) -> ClusterObjects {
        ClusterObjects {
            configmaps,
            services,
            ..ClusterObjects::default()
        }
    }

    fn given() -> Vec<String> {
        vec!["istio-system".into()]
    }

    #[test]
    fn a_revision_is_installed_with_its_configmap_and_its_service() {
        let o = objects(
            vec![
                injector("istio-system", "asm-1-22", "1.22.3"),
                injector("istio-system", "asm-1-23", "1.23.0"),
            ],
            Some(vec![service("istio-system", "istiod-asm-1-23")]),
        );
        let inv = Inventory::of(&o, &given());
        assert!(inv.is_installed("asm-1-23"));
        assert!(!inv.is_installed("asm-1-22"), "its Service was deleted");
        let half: Vec<&str> = inv.half_removed().map(|p| p.revision.as_str()).collect();
        assert_eq!(half, ["asm-1-22"]);
        assert_eq!(inv.installed_injectors().len(), 1);
    }

    #[test]
    fn the_snapshot_is_built_with_each_installed_revisions_mesh_configs() {
        let o = objects(
            vec![
                injector("istio-system", "asm-1-23", "1.23.0"),
                configmap(
                    "istio-system",
                    "istio-asm-1-23",
                    &[("mesh", "trustDomain: corp.example\n")],
                ),
                injector("istio-system", "asm-1-22", "1.22.3"),
                configmap("istio-system", "istio-asm-1-22", &[("mesh", "{}")]),
            ],
            Some(vec![service("istio-system", "istiod-asm-1-23")]),
        );
        let inv = Inventory::of(&o, &given());
        let names: Vec<&str> = inv
            .installed_injectors()
            .iter()
            .filter_map(|c| c.metadata.name.as_deref())
            .collect();
        assert_eq!(names, ["istio-sidecar-injector-asm-1-23", "istio-asm-1-23"]);
        let report = crate::check::run(&o, &crate::check::CheckOptions::default());
        let summary = &report.revisions[0];
        assert_eq!(summary.revision, "asm-1-23");
        assert_eq!(
            summary.mesh.as_ref().map(|m| m.trust_domain.as_str()),
            Some("corp.example")
        );
    }

    #[test]
    fn without_services_in_the_input_the_configmap_is_enough() {
        let o = objects(vec![injector("istio-system", "asm-1-22", "1.22.3")], None);
        let inv = Inventory::of(&o, &given());
        assert!(inv.is_installed("asm-1-22"));
        assert_eq!(inv.half_removed().count(), 0);
    }

    #[test]
    fn a_service_left_without_its_configmap_is_half_removed_too() {
        let o = ClusterObjects {
            deployments: vec![deployment("istio-system", "istiod-asm-1-21", 2, 0)],
            ..objects(
                vec![],
                Some(vec![service("istio-system", "istiod-asm-1-21")]),
            )
        };
        let inv = Inventory::of(&o, &given());
        let half: Vec<&Parts<'_>> = inv.half_removed().collect();
        assert_eq!(half.len(), 1);
        assert_eq!(
            half[0].present(),
            [
                "Service istio-system/istiod-asm-1-21",
                "Deployment istio-system/istiod-asm-1-21 (0/2 ready)"
            ]
        );
        assert_eq!(
            half[0].removal_commands(),
            ["kubectl delete service,deployment,horizontalpodautoscaler,poddisruptionbudget istiod-asm-1-21 -n istio-system --ignore-not-found"]
        );
    }

    #[test]
    fn tag_services_and_foreign_services_are_not_istiods() {
        let mut tag = service("istio-system", "istiod-revision-tag-prod");
        tag.metadata.labels = crate::check::tests::map(&[(ISTIO_TAG, "prod")]);
        let o = objects(
            vec![],
            Some(vec![
                tag,
                service("istio-system", "other"),
                service("shop", "istiod-x"),
            ]),
        );
        assert!(Inventory::of(&o, &given()).revisions.is_empty());
    }

    #[test]
    fn the_default_revision_is_istiod_and_istio_sidecar_injector() {
        let mut cm = configmap(
            "istio-system",
            "istio-sidecar-injector",
            &[("values", "{}")],
        );
        cm.metadata.labels = None;
        let o = objects(vec![cm], Some(vec![service("istio-system", "istiod")]));
        let inv = Inventory::of(&o, &given());
        assert!(inv.is_installed("default"));
        assert_eq!(inv.revisions["default"].istiod_name(), "istiod");
    }

    #[test]
    fn istio_is_found_where_it_is_and_the_flag_narrows() {
        let aks = objects(
            vec![
                injector("aks-istio-system", "asm-1-22", "1.22.3"),
                configmap("istio-system", "unrelated", &[]),
            ],
            None,
        );
        let inv = Inventory::of(&aks, &given());
        assert_eq!(inv.istio_namespaces, ["aks-istio-system"]);
        assert!(inv.is_installed("asm-1-22"));
        let both = objects(
            vec![
                injector("aks-istio-system", "asm-1-22", "1.22.3"),
                injector("istio-system", "asm-1-23", "1.23.0"),
            ],
            None,
        );
        let inv = Inventory::of(&both, &given());
        assert_eq!(inv.istio_namespaces, ["istio-system"], "the flag narrows");
        assert!(!inv.is_installed("asm-1-22"));
        let none = objects(vec![], None);
        assert_eq!(
            Inventory::of(&none, &given()).istio_namespaces,
            ["istio-system"]
        );
    }

    #[test]
    fn a_revisions_parts_are_collected_with_their_removal_commands() {
        let o = ClusterObjects {
            mutating: vec![
                mutating("istio-sidecar-injector-asm-1-22", &[], vec![]),
                mutating(
                    "istio-revision-tag-prod",
                    &[(ISTIO_TAG, "prod"), (ISTIO_REV, "asm-1-22")],
                    vec![],
                ),
            ],
            validating: vec![validating(
                "istio-validator-asm-1-22-istio-system",
                &[],
                vec![],
            )],
            ..objects(
                vec![
                    injector("istio-system", "asm-1-22", "1.22.3"),
                    configmap("istio-system", "istio-asm-1-22", &[]),
                    configmap("istio-system", "istio-shared-configmap-asm-1-22", &[]),
                    configmap("istio-system", "istio-ca-root-cert", &[]),
                ],
                Some(vec![]),
            )
        };
        let inv = Inventory::of(&o, &given());
        let parts = &inv.revisions["asm-1-22"];
        assert_eq!(
            parts.removal_commands(),
            [
                "kubectl delete configmap istio-sidecar-injector-asm-1-22 istio-asm-1-22 istio-shared-configmap-asm-1-22 -n istio-system",
                "kubectl delete mutatingwebhookconfiguration istio-sidecar-injector-asm-1-22",
                "kubectl delete validatingwebhookconfiguration istio-validator-asm-1-22-istio-system",
            ]
        );
        assert!(!inv.revisions.contains_key("ca-root-cert"));
    }

    #[test]
    fn ready_endpoints_come_from_slices_else_endpoints_else_are_unknown() {
        let mut o = ClusterObjects::default();
        assert_eq!(ready_endpoints(&o, "istio-system", "istiod"), None);
        o.endpoint_slices = Some(vec![
            endpoint_slice("istio-system", "istiod", &[true, false, true]),
            endpoint_slice("istio-system", "other", &[true]),
        ]);
        assert_eq!(ready_endpoints(&o, "istio-system", "istiod"), Some(2));
        assert_eq!(ready_endpoints(&o, "istio-system", "gone"), Some(0));
    }

    #[test]
    fn webhook_names_carry_the_revision() {
        assert_eq!(
            revision_in_webhook_name("istio-validator-asm-1-23-aks-istio-system").as_deref(),
            Some("asm-1-23")
        );
        assert_eq!(
            revision_in_webhook_name("istio-sidecar-injector-asm-1-21").as_deref(),
            Some("asm-1-21")
        );
        assert_eq!(
            revision_in_webhook_name("istio-validator-asm-1-21-other"),
            None
        );
        assert_eq!(revision_in_webhook_name("revhook"), None);
    }
}
