//! Injection through the real server: revision resolution, retagging, stale and conflicting
//! labels, idempotence.

mod common;

use common::*;
use revhook::core::policy::{OnConflict, OnStale, Policy};
use serde_json::Value;

const STABLE_IMAGE: &str = "mcr.microsoft.com/oss/istio/proxyv2:1.22.0-distroless";
const CANARY_IMAGE: &str = "mcr.microsoft.com/oss/istio/proxyv2:1.23.0-distroless";

#[tokio::test]
async fn prod_stable_namespace_gets_the_stable_revision_and_retag_moves_it() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http2).await;
    let review = fixture("pod-create-prod-stable.json");

    let response = admission_response(&client.post("/inject", review.clone()).await);
    let pod = apply_patch(&response, &request_object(&review));
    assert_eq!(proxy_image(&pod).as_deref(), Some(STABLE_IMAGE));
    assert_eq!(pod["metadata"]["annotations"]["istio.io/rev"], "asm-1-22");

    // `istioctl tag set prod-stable --revision asm-1-23`, as the config file sees it.
    let config = String::from_utf8(fixture("local-config.yaml"))
        .expect("utf8")
        .replace("prod-stable: asm-1-22", "prod-stable: asm-1-23");
    server.set_config(&config).await;
    let response = admission_response(&client.post("/inject", review.clone()).await);
    let pod = apply_patch(&response, &request_object(&review));
    assert_eq!(proxy_image(&pod).as_deref(), Some(CANARY_IMAGE));
    let status: Value = serde_json::from_str(
        pod["metadata"]["annotations"]["sidecar.istio.io/status"]
            .as_str()
            .expect("status annotation"),
    )
    .expect("status JSON");
    assert_eq!(status["revision"], "asm-1-23");
}

#[tokio::test]
async fn a_bad_config_reload_keeps_the_previous_revisions() {
    let server = TestServer::start().await;
    let before = server.app().snapshot.load();
    std::fs::write(&server.config_path, "revisions: [").expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(std::sync::Arc::ptr_eq(
        &before,
        &server.app().snapshot.load()
    ));
    let metrics = server.app().metrics.render();
    assert!(
        metrics.contains(r#"revhook_snapshot_updates_total{result="error"} 1"#),
        "{metrics}"
    );
    let mut client = server.client(Proto::Http1).await;
    let review = fixture("pod-create-prod-stable.json");
    let response = admission_response(&client.post("/inject", review.clone()).await);
    assert_eq!(
        proxy_image(&apply_patch(&response, &request_object(&review))).as_deref(),
        Some(STABLE_IMAGE)
    );
}

#[tokio::test]
async fn injecting_twice_is_a_no_op() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http1).await;
    let review = fixture("pod-create-prod-stable.json");
    let response = admission_response(&client.post("/inject", review.clone()).await);
    let injected = apply_patch(&response, &request_object(&review));

    let again = review_with_object(&review, &injected, "second-pass");
    let response = admission_response(&client.post("/inject", again).await);
    assert_eq!(response["uid"], "second-pass");
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none(), "{response}");
    assert!(response.get("patchType").is_none());
}

#[tokio::test]
async fn stale_namespace_revision_is_denied_with_what_is_installed_and_the_fix() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http1).await;
    let response = admission_response(
        &client
            .post("/inject", fixture("pod-create-stale-namespace.json"))
            .await,
    );
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(
        response["status"]["message"],
        "namespace \"retired\" selects revision \"asm-1-20\", which is not installed; \
         installed: asm-1-22, asm-1-23; tags: default -> asm-1-22, prod-canary -> asm-1-23, \
         prod-stable -> asm-1-22. Relabel with: kubectl label namespace retired istio.io/rev=asm-1-22 --overwrite"
    );
}

#[tokio::test]
async fn stale_revision_with_allow_uninjected_admits_with_a_warning() {
    let server = TestServer::start_with(Options {
        policy: Policy {
            on_stale: OnStale::AllowUninjected,
            ..Policy::default()
        },
        ..Options::default()
    })
    .await;
    let mut client = server.client(Proto::Http2).await;
    let response = admission_response(
        &client
            .post("/inject", fixture("pod-create-stale-namespace.json"))
            .await,
    );
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
    let warnings: Vec<&str> = response["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings.iter().all(|w| w.chars().count() <= 120),
        "{warnings:?}"
    );
    let joined = warnings.join(" ");
    assert!(joined.contains("WITHOUT a sidecar"), "{joined}");
    assert!(
        joined.contains("\"asm-1-20\", which is not installed"),
        "{joined}"
    );
}

#[tokio::test]
async fn conflicting_namespace_labels_warn_by_default_and_deny_on_request() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http1).await;
    let review = fixture("pod-create-conflict-namespace.json");
    let response = admission_response(&client.post("/inject", review.clone()).await);
    assert_eq!(response["allowed"], true);
    // istio-injection wins, as in Istio: the default tag's revision.
    assert_eq!(
        proxy_image(&apply_patch(&response, &request_object(&review))).as_deref(),
        Some(STABLE_IMAGE)
    );
    let warnings = response["warnings"].to_string();
    assert!(warnings.contains("istio-injection wins"), "{warnings}");

    let strict = TestServer::start_with(Options {
        policy: Policy {
            on_conflict: OnConflict::Deny,
            ..Policy::default()
        },
        ..Options::default()
    })
    .await;
    let mut client = strict.client(Proto::Http1).await;
    let response = admission_response(&client.post("/inject", review).await);
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().expect("message");
    assert!(
        message.contains("has both istio-injection and istio.io/rev"),
        "{message}"
    );
    assert!(
        message.contains("kubectl label namespace mixed istio-injection-"),
        "{message}"
    );
}

#[tokio::test]
async fn opt_out_and_unselected_pods_pass_untouched_and_pod_rev_selects() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http2).await;
    for name in [
        "pod-create-opt-out.json",
        "pod-create-unlabelled-namespace.json",
    ] {
        let response = admission_response(&client.post("/inject", fixture(name)).await);
        assert_eq!(response["allowed"], true, "{name}");
        assert!(response.get("patch").is_none(), "{name}: {response}");
    }
    let review = fixture("pod-create-pod-rev-canary.json");
    let response = admission_response(&client.post("/inject", review.clone()).await);
    assert_eq!(
        proxy_image(&apply_patch(&response, &request_object(&review))).as_deref(),
        Some(CANARY_IMAGE)
    );
}
