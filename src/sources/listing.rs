//! One-shot listings of the cluster, for the commands (`check`, `tags`) rather than the
//! server: the same objects the watches follow, read once.

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::check::{keep_certificates, ClusterObjects};
use crate::core::labels::ISTIO_REV;
use crate::core::mapping::INJECTOR_CONFIGMAP;
use crate::core::snapshot::Snapshot;
use crate::core::webhooks::Hooks as _;

use super::cluster::ClusterOptions;
use crate::core::mapping;

/// Lists what the watches would follow, once: for commands (`tags`, `check`) rather than
/// the server. Run with a person's credentials, it finds Istio where it is (every namespace
/// holding an injector ConfigMap) unless `--istio-namespace` narrows it. Services that may not
/// be read leave their revisions judged by the ConfigMap alone.
pub async fn read_snapshot(
    client: &Client,
    opts: &ClusterOptions,
) -> Result<(Snapshot, mapping::MappingReport), kube::Error> {
    let namespaces = if opts.istio_namespaces.is_empty() {
        injector_namespaces(client).await?
    } else {
        opts.istio_namespaces.iter().cloned().collect()
    };
    let labelled = ListParams::default().labels(ISTIO_REV);
    let mut configmaps = Vec::new();
    let mut services = Vec::new();
    let mut services_read = BTreeSet::new();
    for ns in &namespaces {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        configmaps.extend(api.list(&labelled).await?.items);
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        match api.list(&labelled).await {
            Ok(list) => {
                services.extend(list.items);
                services_read.insert(ns.clone());
            }
            Err(e) if forbidden(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let webhooks = webhooks.list(&ListParams::default()).await?.items;
    let listed: Api<Namespace> = Api::all(client.clone());
    let listed = listed.list_metadata(&ListParams::default()).await?.items;
    let istio = mapping::IstioObjects {
        configmaps: configmaps.iter().collect(),
        webhooks: webhooks.iter().collect(),
        services: services.iter().collect(),
        services_read,
    };
    let labels = listed
        .iter()
        .filter_map(|n| {
            Some((
                n.metadata.name.clone()?,
                mapping::namespace_labels(&n.metadata),
            ))
        })
        .collect();
    Ok(mapping::snapshot_from_istio(
        &istio,
        labels,
        opts.mesh.clone(),
        "cluster",
    ))
}

/// Every namespace holding an injector ConfigMap (found by its `istio.io/rev` label and
/// `istio-sidecar-injector[-<rev>]` name); `istio-system` when none does or they may not be
/// listed cluster-wide.
async fn injector_namespaces(client: &Client) -> Result<BTreeSet<String>, kube::Error> {
    let mut unreadable = Vec::new();
    let found = istio_homes(client, &[], &mut unreadable).await?;
    for what in unreadable {
        tracing::warn!("cannot list {what}; pass --istio-namespace to say where Istio is");
    }
    if found.is_empty() {
        return Ok(BTreeSet::from(["istio-system".to_owned()]));
    }
    Ok(found)
}

/// Everything `check` reads from a live cluster: the same kinds a dump holds (the README's
/// `kubectl get` command), so the live path and the dump path go through the same rules.
///
/// ConfigMaps are read in full in the given Istio namespaces and in every namespace holding an
/// injector ConfigMap (found by its `istio.io/rev` label), as the rules look for Istio where it
/// is. Kinds the caller may not list are reported in `unreadable` and not judged.
pub async fn list_objects(
    client: &Client,
    istio_namespaces: &[String],
) -> Result<ClusterObjects, kube::Error> {
    let lp = ListParams::default();
    let mut objects = ClusterObjects::default();
    for ns in istio_homes(client, istio_namespaces, &mut objects.unreadable).await? {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        objects.configmaps.extend(api.list(&lp).await?.items);
    }
    objects.namespaces = Api::all(client.clone()).list(&lp).await?.items;
    objects.pods = list_pods(client).await?;
    objects.mutating = Api::all(client.clone()).list(&lp).await?.items;
    objects.validating = Api::all(client.clone()).list(&lp).await?.items;
    // As in a dump, a kind with no object at all is `None` (not judged): the two paths agree.
    objects.services = non_empty(Api::all(client.clone()).list(&lp).await?.items);
    let unreadable = &mut objects.unreadable;
    objects.deployments = optional::<Deployment>(client, &lp, unreadable)
        .await?
        .unwrap_or_default();
    objects.statefulsets = optional::<StatefulSet>(client, &lp, unreadable)
        .await?
        .unwrap_or_default();
    objects.replicasets = optional::<ReplicaSet>(client, &lp, unreadable)
        .await?
        .unwrap_or_default();
    objects.endpoint_slices = optional::<EndpointSlice>(client, &lp, unreadable)
        .await?
        .and_then(non_empty);
    // Only refusals: every other event is noise to `check`.
    let failed = ListParams::default().fields("reason=FailedCreate");
    objects.events = optional::<Event>(client, &failed, unreadable)
        .await?
        .unwrap_or_default();
    objects.secrets = revhook_tls_secrets(client, &objects.mutating, &objects.validating).await?;
    Ok(objects)
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

/// The given Istio namespaces and every namespace holding an injector ConfigMap.
async fn istio_homes(
    client: &Client,
    given: &[String],
    unreadable: &mut Vec<String>,
) -> Result<BTreeSet<String>, kube::Error> {
    let mut homes: BTreeSet<String> = given.iter().cloned().collect();
    let labelled: Api<ConfigMap> = Api::all(client.clone());
    match labelled
        .list_metadata(&ListParams::default().labels(ISTIO_REV))
        .await
    {
        Ok(list) => homes.extend(list.items.into_iter().filter_map(|c| {
            let name = c.metadata.name.as_deref()?;
            let injector = name == INJECTOR_CONFIGMAP
                || name
                    .strip_prefix(INJECTOR_CONFIGMAP)
                    .is_some_and(|s| s.starts_with('-'));
            injector.then_some(c.metadata.namespace?)
        })),
        Err(e) if forbidden(&e) => {
            unreadable.push("configmaps in all namespaces (only --istio-namespace is read)".into())
        }
        Err(e) => return Err(e),
    }
    Ok(homes)
}

/// The API server refused the list (RBAC) or does not serve the kind.
fn forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 403 || status.code == 404)
}

/// Lists a kind cluster-wide; `None` (and its name in `unreadable`) when not allowed.
async fn optional<K>(
    client: &Client,
    lp: &ListParams,
    unreadable: &mut Vec<String>,
) -> Result<Option<Vec<K>>, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    match api.list(lp).await {
        Ok(list) => Ok(Some(list.items)),
        Err(e) if forbidden(&e) => {
            unreadable.push(K::plural(&K::DynamicType::default()).into_owned());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// revhook's serving certificate (Secret `revhook-tls`) next to each Service revhook's
/// webhooks call, certificates only; one that cannot be read is not judged.
async fn revhook_tls_secrets(
    client: &Client,
    mutating: &[MutatingWebhookConfiguration],
    validating: &[ValidatingWebhookConfiguration],
) -> Result<Vec<Secret>, kube::Error> {
    let namespaces: BTreeSet<String> = mutating
        .iter()
        .flat_map(|m| m.hooks())
        .chain(validating.iter().flat_map(|v| v.hooks()))
        .filter(|(name, _)| name.ends_with(".revhook.dev"))
        .filter_map(|(_, c)| c.service.as_ref().map(|s| s.namespace.clone()))
        .collect();
    let mut out = Vec::new();
    for ns in namespaces {
        let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        match api.get_opt("revhook-tls").await {
            Ok(Some(secret)) => out.push(keep_certificates(secret)),
            Ok(None) => {}
            Err(e) if forbidden(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Every pod, for what a tag move would restart.
pub async fn list_pods(client: &Client) -> Result<Vec<Pod>, kube::Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    Ok(pods.list(&ListParams::default()).await?.items)
}
