//! Black-box tests of the TLS server and the AdmissionReview protocol.

mod common;

use std::time::Duration;

use common::*;
use hyper::StatusCode;
use revhook::server::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn injects_over_http1_and_http2_and_echoes_uid() {
    let server = TestServer::start().await;
    let review = fixture("pod-create-prod-stable.json");
    for proto in [Proto::Http1, Proto::Http2] {
        let mut client = server.client(proto).await;
        let reply = client.post("/inject", review.clone()).await;
        assert_eq!(reply.headers["content-type"], "application/json");
        let response = admission_response(&reply);
        assert_eq!(
            response["uid"], "4b6c9a43-2f0e-4d7b-9d3e-1f5c2a7e8b01",
            "{proto:?}"
        );
        assert_eq!(response["allowed"], true);
        let pod = apply_patch(&response, &request_object(&review));
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod).expect("valid Pod");
        let containers = pod.spec.expect("spec").containers;
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[1].name, "istio-proxy");
    }
}

#[tokio::test]
async fn inject_paths_with_istio_suffixes_are_served() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http2).await;
    let reply = client
        .post(
            "/inject/cluster/cluster-1/net/network-1",
            fixture("pod-create-prod-stable.json"),
        )
        .await;
    assert_eq!(admission_response(&reply)["patchType"], "JSONPatch");
}

#[tokio::test]
async fn bad_requests_get_clear_http_errors() {
    let server = TestServer::start_with(Options {
        limits: Limits {
            body_limit: 64 * 1024,
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let mut client = server.client(Proto::Http1).await;

    let reply = client.post("/inject", "this is not json").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.text().starts_with("body is not an AdmissionReview"),
        "{}",
        reply.text()
    );
    assert_eq!(reply.text().lines().count(), 1, "a one-line reason");

    let reply = client
        .post(
            "/validate",
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.text(), "AdmissionReview has no request\n");

    let reply = client
        .post(
            "/inject",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{}}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("apiVersion"), "{}", reply.text());

    let reply = client
        .post_typed(
            "/inject",
            "text/plain",
            fixture("pod-create-prod-stable.json"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let reply = client
        .post_typed(
            "/inject",
            "application/json; charset=utf-8",
            fixture("pod-create-prod-stable.json"),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "parameters on the media type are fine"
    );

    let reply = client.get("/inject").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.headers["allow"], "POST");

    let reply = client.post("/healthz", "{}").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);

    let reply = client.post("/mutate", "{}").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // The connection survived every error above.
    let reply = client
        .post("/inject", fixture("pod-create-prod-stable.json"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    // Refused from its content-length, unread (so HTTP/1.1 closes this connection after).
    let reply = client.post("/inject", vec![b' '; 65 * 1024]).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.text(), "request body exceeds 65536 bytes\n");
}

#[tokio::test]
async fn oversized_chunked_body_is_refused_while_streaming() {
    let server = TestServer::start_with(Options {
        limits: Limits {
            body_limit: 16 * 1024,
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let mut tls = raw_tls(&server).await;
    // No content-length: the limit is enforced as the chunks arrive.
    tls.write_all(b"POST /inject HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .expect("head");
    let chunk = format!("{:x}\r\n{}\r\n", 4096, " ".repeat(4096));
    for _ in 0..5 {
        if tls.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 413"), "got: {head:?}");
}

#[tokio::test]
async fn stalled_tls_handshake_is_cut_off() {
    let server = TestServer::start_with(Options {
        limits: Limits {
            handshake_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("the server closes the connection well before 5s");
    assert_eq!(
        read.expect("clean close"),
        0,
        "connection closed without a byte"
    );
}

#[tokio::test]
async fn request_timeout_from_the_api_server_bounds_a_stalled_body() {
    let server = TestServer::start().await;
    let mut tls = raw_tls(&server).await;
    // Headers promise 1000 bytes, only 10 arrive: the server answers 408 after ?timeout=.
    tls.write_all(
        b"POST /inject?timeout=300ms HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"apiVersi",
    )
    .await
    .expect("write");
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 408"), "got: {head:?}");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = TestServer::start_with(Options {
        admin: true,
        ..Options::default()
    })
    .await;
    let mut client = server.client(Proto::Http1).await;
    assert_eq!(client.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(client.get("/readyz").await.text(), "ready\n");
    client
        .post("/inject", fixture("pod-create-prod-stable.json"))
        .await;
    client
        .post("/inject", fixture("pod-create-stale-namespace.json"))
        .await;
    client.post("/inject", "garbage").await;
    let metrics = client.get("/metrics").await.text();
    assert!(
        metrics.contains(r#"revhook_requests_total{path="inject",outcome="patched"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"revhook_requests_total{path="inject",outcome="denied"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"revhook_requests_total{path="inject",outcome="error"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("revhook_request_duration_seconds_bucket"),
        "{metrics}"
    );

    // The admin port speaks plain HTTP and serves only health and metrics.
    let admin = server.admin_addr.expect("admin port");
    let mut tcp = tokio::net::TcpStream::connect(admin)
        .await
        .expect("connect");
    tcp.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("ready\n"), "{out}");
    let mut tcp = tokio::net::TcpStream::connect(admin)
        .await
        .expect("connect");
    tcp.write_all(
        b"POST /inject HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
    )
    .await
    .expect("write");
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.expect("read");
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
}

#[tokio::test]
async fn certificate_reload_keeps_open_connections_and_serves_the_new_cert() {
    let server = TestServer::start().await;
    let mut open = server.client(Proto::Http2).await;
    assert_eq!(open.get("/healthz").await.status, StatusCode::OK);

    let rotated = revhook::tls::generate_dev(&[], &[], 1, 2).expect("new certs");
    let before = server.app().metrics.render();
    // Present from the start, and at zero: no reload yet.
    assert!(
        before.contains(r#"revhook_cert_reloads_total{result="ok"} 0"#),
        "{before}"
    );
    // A bad pair first: it is rejected and the old certificate keeps serving.
    std::fs::write(server.dir.path().join("tls.key"), "not a key").expect("write");
    tokio::time::sleep(Duration::from_millis(400)).await;
    connect(server.addr, &server.certs.ca_cert, Proto::Http1)
        .await
        .expect("old certificate still served after a bad rotation");
    rotated.write(server.dir.path()).expect("rotate");

    let mut swapped = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if connect(server.addr, &rotated.ca_cert, Proto::Http1)
            .await
            .is_ok()
        {
            swapped = true;
            break;
        }
    }
    assert!(swapped, "the rotated certificate was never served");
    assert!(
        connect(server.addr, &server.certs.ca_cert, Proto::Http1)
            .await
            .is_err(),
        "new handshakes no longer get the old certificate"
    );
    // The connection opened before the rotation still works.
    let reply = open
        .post("/inject", fixture("pod-create-prod-stable.json"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let metrics = server.app().metrics.render();
    assert!(
        metrics.contains(r#"revhook_cert_reloads_total{result="ok"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"revhook_cert_reloads_total{result="error"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight_then_refuses_connections() {
    let mut server = TestServer::start().await;
    let addr = server.addr;
    let mut tls = raw_tls(&server).await;
    let body = fixture("pod-create-prod-stable.json");
    let head = format!(
        "POST /inject HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("head");
    tls.write_all(&body[..100]).await.expect("part of the body");
    tls.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let drained = server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections once shutdown began"
    );
    tls.write_all(&body[100..]).await.expect("rest of the body");
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.expect("read response");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("4b6c9a43-2f0e-4d7b-9d3e-1f5c2a7e8b01"),
        "the in-flight request was answered"
    );
    tokio::time::timeout(Duration::from_secs(5), drained)
        .await
        .expect("drained in time")
        .expect("server task");
}

/// The API server's Go transport reuses a kept-alive HTTP/1.1 connection until the server
/// says otherwise: once shutdown begins every answer says `Connection: close` and the
/// connection ends after it, so the client dials anew (through the Endpoints this replica
/// has left) instead of racing our close of an idle connection (tests/kube_rolling.rs).
#[tokio::test]
async fn once_shutdown_begins_http1_answers_retire_their_connection() {
    let mut server = TestServer::start_with(Options {
        limits: Limits {
            shutdown_delay: Duration::from_millis(800),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let mut client = server.client(Proto::Http1).await;
    let before = client
        .post("/inject", fixture("pod-create-prod-stable.json"))
        .await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(
        before.headers.get("connection"),
        None,
        "kept alive while serving"
    );
    let drained = server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = client
        .post("/inject", fixture("pod-create-prod-stable.json"))
        .await;
    assert_eq!(during.status, StatusCode::OK, "still answered");
    assert_eq!(
        during.headers.get("connection").map(|v| v.as_bytes()),
        Some(b"close".as_slice())
    );
    let next = client
        .send(
            hyper::Request::get("/healthz")
                .header("host", "localhost")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request"),
        )
        .await;
    assert!(
        next.is_err(),
        "the connection ended: {:?}",
        next.map(|r| r.status)
    );
    tokio::time::timeout(Duration::from_secs(5), drained)
        .await
        .expect("drained")
        .expect("task");
}

#[tokio::test]
async fn readiness_goes_false_as_soon_as_shutdown_begins() {
    let server = TestServer::start_with(Options {
        limits: Limits {
            shutdown_delay: Duration::from_millis(800),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let mut server = server;
    let mut client = server.client(Proto::Http1).await;
    assert_eq!(client.get("/readyz").await.status, StatusCode::OK);
    let drained = server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reply = client.get("/readyz").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.text(), "shutting down\n");
    // During the delay new connections are still accepted and served.
    let mut late = server.client(Proto::Http2).await;
    assert_eq!(
        late.post("/inject", fixture("pod-create-prod-stable.json"))
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::timeout(Duration::from_secs(5), drained)
        .await
        .expect("drained")
        .expect("task");
}

/// A revision whose template revhook cannot execute is said on `/readyz` and refuses its pods
/// with why (never a guessed sidecar), while the other revisions keep injecting.
#[tokio::test]
async fn a_revision_whose_template_cannot_run_refuses_its_pods_loudly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let injector = dir.path().join("istio-sidecar-injector-asm-1-22.yaml");
    std::fs::write(
        &injector,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio-sidecar-injector-asm-1-22}\n\
         data:\n  values: '{}'\n  config: |\n    templates:\n      sidecar: '{{ nosuchfunction }}'\n",
    )
    .expect("write injector");
    let config = String::from_utf8(fixture("local-config.yaml"))
        .expect("utf8")
        .replace(
            "  - name: asm-1-22\n",
            &format!("  - name: asm-1-22\n    injector: {}\n", injector.display()),
        )
        .replace("  prod-stable: asm-1-22\n", "  prod-stable: asm-1-23\n");
    assert!(config.contains("injector: "), "{config}");
    let server = TestServer::start_with(Options {
        config,
        ..Options::default()
    })
    .await;
    let mut client = server.client(Proto::Http1).await;

    let ready = client.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "the other revision serves");
    let text = ready.text();
    assert!(
        text.contains("revision asm-1-22 cannot inject:") && text.contains("nosuchfunction"),
        "{text}"
    );

    // "legacy" has istio-injection=enabled: the default tag, asm-1-22.
    let review = String::from_utf8(fixture("pod-create-prod-stable.json"))
        .expect("utf8")
        .replace("\"namespace\": \"shop\"", "\"namespace\": \"legacy\"");
    assert!(review.contains("\"legacy\""));
    let refused = admission_response(&client.post("/inject", review).await);
    assert_eq!(refused["allowed"], false, "{refused}");
    assert!(refused.get("patch").is_none(), "{refused}");
    let message = refused["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nosuchfunction"), "{message}");

    // "shop" selects prod-stable, now asm-1-23: injected as ever.
    let injected = admission_response(
        &client
            .post("/inject", fixture("pod-create-prod-stable.json"))
            .await,
    );
    assert_eq!(injected["allowed"], true, "{injected}");
    assert!(injected["patch"].is_string(), "{injected}");
}
