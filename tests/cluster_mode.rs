//! Cluster mode without a cluster: Istio's objects from fixtures go through the same mapping
//! the watchers use, into a snapshot the real server serves, in inject and guard mode.

mod common;

use std::sync::Arc;

use common::*;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use revhook::core::labels::NamespaceLabels;
use revhook::core::lookup::NamespaceLookup;
use revhook::core::mapping;
use revhook::core::policy::{Mode, Policy};
use revhook::core::revisions::MeshSettings;
use revhook::core::snapshot::Snapshot;
use revhook::sources::SharedSnapshot;
use serde_json::Value;

fn cluster_snapshot() -> Snapshot {
    let text = String::from_utf8(fixture("cluster/istio-objects.yaml")).expect("utf8");
    let (mut cms, mut mwcs, mut nss) = (Vec::new(), Vec::new(), Vec::new());
    for value in revhook::core::yaml::documents(&text).expect("yaml") {
        match value["kind"].as_str() {
            Some("ConfigMap") => cms.push(serde_json::from_value::<ConfigMap>(value).expect("cm")),
            Some("MutatingWebhookConfiguration") => mwcs
                .push(serde_json::from_value::<MutatingWebhookConfiguration>(value).expect("mwc")),
            Some("Namespace") => nss.push(serde_json::from_value::<Namespace>(value).expect("ns")),
            other => panic!("unexpected kind {other:?}"),
        }
    }
    let mesh = MeshSettings {
        istio_namespace: "aks-istio-system".into(),
        ..MeshSettings::default()
    };
    let (snapshot, report) = mapping::snapshot_from_objects(
        &cms,
        &mwcs,
        nss.iter().map(|n| &n.metadata),
        mesh,
        "fixture",
    );
    assert!(report.errors.is_empty(), "{report:?}");
    snapshot
}

async fn start(mode: Mode, lookup: Option<Arc<dyn NamespaceLookup>>) -> TestServer {
    TestServer::start_fixed(
        Arc::new(SharedSnapshot::new(cluster_snapshot())),
        Options {
            policy: Policy {
                mode,
                ..Policy::default()
            },
            namespace_lookup: lookup,
            ..Options::default()
        },
    )
    .await
}

#[tokio::test]
async fn inject_mode_uses_the_image_and_istiod_of_the_configmap_revision() {
    let server = start(Mode::Inject, None).await;
    let mut client = server.client(Proto::Http2).await;
    let review = fixture("pod-create-prod-stable.json");
    let response = admission_response(&client.post("/inject", review.clone()).await);
    let pod = apply_patch(&response, &request_object(&review));
    assert_eq!(
        proxy_image(&pod).as_deref(),
        Some("mcr.microsoft.com/oss/istio/proxyv2:1.22.3-distroless")
    );
    let env = pod["spec"]["containers"][1]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ca = env
        .iter()
        .find(|e| e["name"] == "CA_ADDR")
        .expect("CA_ADDR");
    assert_eq!(ca["value"], "istiod-asm-1-22.aks-istio-system.svc:15012");
}

#[tokio::test]
async fn guard_mode_never_patches_but_still_refuses_stale_namespaces() {
    let server = start(Mode::Guard, None).await;
    let mut client = server.client(Proto::Http1).await;
    // As istiod's injection left it (revhook's webhook is called after Istio's).
    let mut injected: Value =
        serde_json::from_slice(&fixture("pod-create-prod-stable.json")).expect("fixture");
    injected["request"]["object"]["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(serde_json::json!({"name": "istio-proxy", "image": "proxyv2"}));
    let response = admission_response(
        &client
            .post("/inject", injected.to_string().into_bytes())
            .await,
    );
    assert_eq!(response["allowed"], true);
    assert!(
        response.get("patch").is_none(),
        "guard mode leaves injection to istiod: {response}"
    );
    // The same pod without the sidecar Istio should have added: refused, never patched.
    let response = admission_response(
        &client
            .post("/inject", fixture("pod-create-prod-stable.json"))
            .await,
    );
    assert_eq!(response["allowed"], false, "{response}");
    assert!(response.get("patch").is_none(), "{response}");
    let message = response["status"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("pod was not injected by Istio: ")
            && message.contains("revision \"asm-1-22\"")
            && message.contains("kubectl get pods -n aks-istio-system -l istio.io/rev=asm-1-22"),
        "{message}"
    );

    let response = admission_response(
        &client
            .post("/inject", fixture("pod-create-stale-namespace.json"))
            .await,
    );
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().expect("message");
    assert!(
        message.contains("\"asm-1-20\", which is not installed; installed: asm-1-22, asm-1-23"),
        "{message}"
    );
}

/// Answers like a namespace GET would, counting calls.
#[derive(Debug, Default)]
struct FakeLookup {
    calls: std::sync::atomic::AtomicUsize,
}

impl NamespaceLookup for FakeLookup {
    fn labels(
        &self,
        name: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<NamespaceLabels>> + Send>> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            (name == "plain").then(|| NamespaceLabels {
                injection: None,
                rev: Some("prod-canary".into()),
            })
        })
    }
}

#[tokio::test]
async fn a_namespace_missing_from_the_cache_is_looked_up_once_per_request() {
    let lookup = Arc::new(FakeLookup::default());
    let server = start(Mode::Inject, Some(lookup.clone())).await;
    let mut client = server.client(Proto::Http1).await;
    // "plain" is not in the snapshot; the lookup says it selects prod-canary.
    let review = fixture("pod-create-unlabelled-namespace.json");
    let response = admission_response(&client.post("/inject", review.clone()).await);
    let pod = apply_patch(&response, &request_object(&review));
    assert_eq!(
        proxy_image(&pod).as_deref(),
        Some("mcr.microsoft.com/oss/istio/proxyv2:1.23.0-distroless")
    );
    assert_eq!(lookup.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A namespace the snapshot knows is never looked up.
    client
        .post("/inject", fixture("pod-create-prod-stable.json"))
        .await;
    assert_eq!(lookup.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}
