//! The router in-process, without TLS or sockets: the same `server::route` the listener calls,
//! driven with plain request bodies (as kubewarden's policy-server tests its router).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use revhook::core::policy::Policy;
use revhook::health::Health;
use revhook::metrics::Metrics;
use revhook::server::{self, App, Limits};
use revhook::sources::{config, SharedSnapshot};
use serde_json::Value;

fn app(ready: bool) -> App {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/local-config.yaml");
    let snapshot = config::load(&path).expect("local config");
    let health = Arc::new(Health::default());
    if ready {
        health.set_certs_loaded();
        health.set_synced(true);
    }
    App::new(
        Arc::new(SharedSnapshot::new(snapshot)),
        Policy::default(),
        Metrics::new(),
        health,
        Limits::default(),
    )
}

fn request(method: Method, path: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

async fn send(app: &App, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let reply = server::route(app, request(method, path, body), false).await;
    let status = reply.status();
    let body = reply
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, body)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn inject_answers_a_review_with_its_uid_and_a_patch() {
    let app = app(true);
    let (status, body) = send(
        &app,
        Method::POST,
        "/inject",
        fixture("pod-create-prod-stable.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let review: Value = serde_json::from_slice(&body).expect("json");
    let response = &review["response"];
    assert_eq!(response["uid"], "4b6c9a43-2f0e-4d7b-9d3e-1f5c2a7e8b01");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
}

#[tokio::test]
async fn validate_refuses_a_stale_namespace_with_its_message() {
    let app = app(true);
    let (status, body) = send(
        &app,
        Method::POST,
        "/validate",
        fixture("validate/namespace-stale-rev.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let review: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(review["response"]["status"]["code"], 403);
}

#[tokio::test]
async fn paths_and_methods_outside_the_webhooks_get_http_errors() {
    let app = app(true);
    let (status, _) = send(&app, Method::GET, "/inject", Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = send(&app, Method::POST, "/elsewhere", Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = send(&app, Method::GET, "/healthz", Vec::new()).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"ok\n".as_slice())
    );
}

#[tokio::test]
async fn readiness_follows_health() {
    let (status, body) = send(&app(false), Method::GET, "/readyz", Vec::new()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
    let (status, _) = send(&app(true), Method::GET, "/readyz", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn no_verdict_before_the_sources_have_synced() {
    let app = app(false);
    for (path, fixture_name) in [
        ("/inject", "pod-create-prod-stable.json"),
        ("/validate", "validate/namespace-stale-rev.json"),
    ] {
        let (status, body) = send(&app, Method::POST, path, fixture(fixture_name)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let status_body: Value = serde_json::from_slice(&body).expect("a Status object");
        assert_eq!(status_body["kind"], "Status");
        assert!(
            status_body["message"]
                .as_str()
                .is_some_and(|m| m.contains("not synced")),
            "{path}: {status_body}"
        );
    }
}

/// A namespace lookup that always fails, as against an unreachable API server.
#[derive(Debug)]
struct FailingLookup;

impl revhook::core::lookup::NamespaceLookup for FailingLookup {
    fn labels(
        &self,
        _name: String,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Option<revhook::core::labels::NamespaceLabels>> + Send,
        >,
    > {
        Box::pin(async { None })
    }
}

#[tokio::test]
async fn a_namespace_that_cannot_be_looked_up_gets_no_verdict() {
    let mut app = app(true);
    app.namespace_lookup = Some(Arc::new(FailingLookup));
    let review = String::from_utf8(fixture("pod-create-prod-stable.json"))
        .expect("utf-8")
        .replace("\"shop\"", "\"unseen\"");
    let (status, body) = send(&app, Method::POST, "/inject", review.into_bytes()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let status_body: Value = serde_json::from_slice(&body).expect("a Status object");
    assert!(
        status_body["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"unseen\"") && m.contains("looking it up failed")),
        "{status_body}"
    );
}

#[tokio::test]
async fn pods_refused_a_verdict_before_sync_are_counted_as_not_synced() {
    let app = app(false);
    let (status, _) = send(
        &app,
        Method::POST,
        "/inject",
        fixture("pod-create-prod-stable.json"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let metrics = app.metrics.render();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("revhook_injection_denials_total") && l.contains(r#"reason="not-synced""#)
        })
        .unwrap_or_else(|| panic!("no not-synced series: {metrics}"));
    assert!(line.ends_with(" 1"), "{line}");
}
