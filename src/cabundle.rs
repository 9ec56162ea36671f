//! `--manage-ca-bundle`: keeps the `caBundle` of revhook's own webhook configurations equal to
//! the CA that signed its serving certificate, at start, when the CA file changes, and when
//! someone overwrites the field (a re-applied manifest with an empty `caBundle` is the classic
//! "CA bundle missing" outage that otherwise needs a manual restart).
//!
//! Writes are server-side apply with field manager `revhook`, touching only
//! `webhooks[*].clientConfig.caBundle`.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use serde_json::{json, Value};

use crate::core::webhooks::Hooks;
use crate::metrics::Metrics;

pub const FIELD_MANAGER: &str = "revhook";

/// Which configurations to keep current.
#[derive(Debug, Clone)]
pub struct CaBundleOptions {
    pub ca_cert: PathBuf,
    pub mutating: String,
    pub validating: String,
    pub resync: Duration,
}

/// Names of the webhooks whose `caBundle` differs from `ca_pem`.
fn stale_webhooks<'a>(
    webhooks: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    ca_pem: &[u8],
) -> Vec<String> {
    webhooks
        .into_iter()
        .filter(|(_, bundle)| *bundle != Some(ca_pem))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// The server-side apply body that sets `caBundle` on the named webhooks and nothing else.
fn apply_body(kind: &str, name: &str, webhook_names: &[String], ca_pem: &[u8]) -> Value {
    use base64::Engine as _;
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let webhooks: Vec<Value> = webhook_names
        .iter()
        .map(|w| json!({"name": w, "clientConfig": {"caBundle": bundle}}))
        .collect();
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": webhooks,
    })
}

/// A Mutating- or ValidatingWebhookConfiguration as the API client reads and patches it
/// (its kind is `k8s_openapi::Resource::KIND`, its webhooks' client configs `Hooks::hooks`).
pub trait WebhookConfiguration:
    kube::Resource<DynamicType = ()>
    + k8s_openapi::Resource
    + Hooks
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<T> WebhookConfiguration for T where
    T: kube::Resource<DynamicType = ()>
        + k8s_openapi::Resource
        + Hooks
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

#[derive(Debug, thiserror::Error)]
pub enum CaBundleError {
    #[error("cannot read CA {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// One pass: reads the CA and fixes whichever webhook configuration disagrees. Returns how many
/// webhooks were updated.
pub async fn reconcile(client: &Client, opts: &CaBundleOptions) -> Result<usize, CaBundleError> {
    let ca = std::fs::read(&opts.ca_cert).map_err(|source| CaBundleError::Read {
        path: opts.ca_cert.display().to_string(),
        source,
    })?;
    let mutating = apply_ca::<MutatingWebhookConfiguration>(client, &opts.mutating, &ca).await?;
    let validating =
        apply_ca::<ValidatingWebhookConfiguration>(client, &opts.validating, &ca).await?;
    Ok(mutating + validating)
}

/// Writes `ca` into the webhooks of configuration `name` whose caBundle differs.
async fn apply_ca<K: WebhookConfiguration>(
    client: &Client,
    name: &str,
    ca: &[u8],
) -> Result<usize, CaBundleError> {
    let api: Api<K> = Api::all(client.clone());
    let Some(current) = api.get_opt(name).await? else {
        tracing::warn!(kind = K::KIND, %name, "webhook configuration not found; caBundle not managed");
        return Ok(0);
    };
    let bundles = current
        .hooks()
        .into_iter()
        .map(|(hook, config)| (hook, config.ca_bundle.as_ref().map(|b| b.0.as_slice())));
    let stale = stale_webhooks(bundles, ca);
    if !stale.is_empty() {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(
            name,
            &params,
            &Patch::Apply(apply_body(K::KIND, name, &stale, ca)),
        )
        .await?;
    }
    Ok(stale.len())
}

/// Reconciles at start, on every change to either configuration, and every `resync` (which
/// also picks up a rotated CA file).
pub async fn run(client: Client, opts: CaBundleOptions, metrics: Metrics) {
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let by_name = |n: &str| watcher::Config::default().fields(&format!("metadata.name={n}"));
    // Backoff: a failing watch must not turn into a tight loop of reconciles against the API.
    let mut m = watcher::watcher(mutating, by_name(&opts.mutating))
        .default_backoff()
        .boxed();
    let mut v = watcher::watcher(validating, by_name(&opts.validating))
        .default_backoff()
        .boxed();
    let mut tick = tokio::time::interval(opts.resync.max(Duration::from_millis(10)));
    loop {
        let event = tokio::select! {
            _ = tick.tick() => Ok(()),
            Some(e) = m.next() => e.map(|_| ()),
            Some(e) = v.next() => e.map(|_| ()),
        };
        if let Err(error) = event {
            tracing::warn!(%error, "watching the webhook configurations failed; retrying with backoff");
            continue;
        }
        match reconcile(&client, &opts).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(webhooks = n, "caBundle written");
                metrics.ca_bundle_written(n as u64);
            }
            Err(error) => tracing::warn!(%error, "caBundle reconcile failed; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_differing_webhooks_are_stale() {
        let ca = b"-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n";
        let other = b"other".as_slice();
        let stale = stale_webhooks(
            [
                ("a", Some(ca.as_slice())),
                ("b", None),
                ("c", Some(other)),
                ("d", Some(b"".as_slice())),
            ],
            ca,
        );
        assert_eq!(stale, vec!["b", "c", "d"]);
    }

    #[test]
    fn apply_body_touches_only_ca_bundles() {
        let body = apply_body(
            "MutatingWebhookConfiguration",
            "revhook",
            &["x.revhook.dev".into()],
            b"PEM",
        );
        assert_eq!(body["metadata"], json!({"name": "revhook"}));
        assert_eq!(
            body["webhooks"],
            json!([{"name": "x.revhook.dev", "clientConfig": {"caBundle": "UEVN"}}])
        );
        // The body deserializes as the typed object, so the API server accepts its shape.
        let typed: MutatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": body["metadata"],
            "webhooks": [{"name": "x.revhook.dev", "clientConfig": {"caBundle": "UEVN"},
                "sideEffects": "None", "admissionReviewVersions": ["v1"]}]
        }))
        .expect("typed");
        let bundle = typed.webhooks.expect("webhooks")[0]
            .client_config
            .ca_bundle
            .clone()
            .expect("bundle");
        assert_eq!(bundle.0, b"PEM");
    }
}
