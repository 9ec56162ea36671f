//! One-shot listings of the cluster, for the commands (`check`, `tags`) rather than the
//! server: the same objects the watches follow, read once.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, ListParams};
use kube::Client;

use crate::check::ClusterObjects;
use crate::core::labels::{ISTIO_REV, ISTIO_TAG};
use crate::core::snapshot::Snapshot;

use super::cluster::ClusterOptions;
use crate::core::mapping;

/// Lists what the watches would follow, once: for commands (`tags`, `check`) rather than
/// the server.
pub async fn read_snapshot(
    client: &Client,
    opts: &ClusterOptions,
) -> Result<(Snapshot, mapping::MappingReport), kube::Error> {
    let mut configmaps = Vec::new();
    for ns in &opts.istio_namespaces {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        configmaps.extend(
            api.list(&ListParams::default().labels(ISTIO_REV))
                .await?
                .items,
        );
    }
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let webhooks = webhooks
        .list(&ListParams::default().labels(ISTIO_TAG))
        .await?
        .items;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespaces = namespaces
        .list_metadata(&ListParams::default())
        .await?
        .items;
    Ok(mapping::snapshot_from_objects(
        &configmaps,
        &webhooks,
        namespaces.iter().map(|n| &n.metadata),
        opts.mesh.clone(),
        "cluster",
    ))
}

/// Everything `check` reads from a live cluster (the same shape as a dump).
pub async fn list_objects(
    client: &Client,
    istio_namespaces: &[String],
) -> Result<ClusterObjects, kube::Error> {
    let lp = ListParams::default();
    let mut configmaps = Vec::new();
    for ns in istio_namespaces {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        configmaps.extend(api.list(&lp).await?.items);
    }
    Ok(ClusterObjects {
        namespaces: Api::all(client.clone()).list(&lp).await?.items,
        pods: list_pods(client).await?,
        configmaps,
        mutating: Api::all(client.clone()).list(&lp).await?.items,
        validating: Api::all(client.clone()).list(&lp).await?.items,
        services: Some(Api::all(client.clone()).list(&lp).await?.items),
    })
}

/// Every pod, for what a tag move would restart.
pub async fn list_pods(client: &Client) -> Result<Vec<Pod>, kube::Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    Ok(pods.list(&ListParams::default()).await?.items)
}
