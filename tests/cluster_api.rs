//! Cluster mode against a fake Kubernetes API server on loopback: the real kube-rs watchers
//! list and watch Istio's objects, a watch event moves a tag, a namespace the cache does not
//! know is fetched, and `--manage-ca-bundle` server-side-applies the CA.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use revhook::cabundle::CaBundleOptions;
use revhook::core::revisions::MeshSettings;
use revhook::run::{self, ServeOptions};
use revhook::sources::cluster::ClusterOptions;
use revhook::sources::Source;
use serde_json::{json, Value};
use tokio::sync::mpsc;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

#[derive(Default)]
struct FakeState {
    /// Collection path → items.
    lists: HashMap<String, Vec<Value>>,
    /// Single objects by path.
    objects: HashMap<String, Value>,
    /// Open watches by collection path.
    watches: HashMap<String, Vec<mpsc::UnboundedSender<Bytes>>>,
    /// (path, query, content-type, body) of every PATCH.
    patches: Vec<(String, String, String, Value)>,
    gets: Vec<String>,
    /// "METHOD path" of every create, replace and delete.
    writes: Vec<String>,
}

type Shared = Arc<Mutex<FakeState>>;

fn full(v: Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    r
}

fn not_found(path: &str) -> Response<Body> {
    let mut r = full(
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{path} not found")}),
    );
    *r.status_mut() = hyper::StatusCode::NOT_FOUND;
    r
}

/// The list's apiVersion and kind, and its items' kind: metadata-only when the client asked
/// for `PartialObjectMetadataList` (kube-rs's metadata watches), else the full type.
fn list_kind(path: &str, metadata_only: bool) -> (&'static str, &'static str, &'static str) {
    if metadata_only {
        return (
            "meta.k8s.io/v1",
            "PartialObjectMetadataList",
            "PartialObjectMetadata",
        );
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    match last {
        "configmaps" => ("v1", "ConfigMapList", "ConfigMap"),
        "namespaces" => ("v1", "NamespaceList", "Namespace"),
        "pods" => ("v1", "PodList", "Pod"),
        "services" => ("v1", "ServiceList", "Service"),
        "mutatingwebhookconfigurations" => (
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfigurationList",
            "MutatingWebhookConfiguration",
        ),
        _ => (
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfigurationList",
            "ValidatingWebhookConfiguration",
        ),
    }
}

async fn serve_api(
    state: Shared,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let method = req.method().clone();
    let metadata_only = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("PartialObjectMetadata"));
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut st = state.lock().expect("lock");
    st.gets.push(format!("{method} {path}?{query}"));
    if method == hyper::Method::PATCH {
        let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        // Apply the caBundle like the API server would, so a reconcile sees it done.
        if let Some(obj) = st.objects.get_mut(&path) {
            if let Some(bundle) = patch["webhooks"][0]["clientConfig"]["caBundle"].as_str() {
                obj["webhooks"][0]["clientConfig"]["caBundle"] = json!(bundle);
            }
        }
        st.patches.push((path.clone(), query, content_type, patch));
        return Ok(st
            .objects
            .get(&path)
            .cloned()
            .map_or_else(|| not_found(&path), full));
    }
    if method == hyper::Method::POST || method == hyper::Method::PUT {
        let mut obj: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        obj["metadata"]["resourceVersion"] = json!("20");
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (collection, item) = if method == hyper::Method::POST {
            (path.clone(), format!("{path}/{name}"))
        } else {
            (
                path.rsplit_once('/')
                    .map(|(c, _)| c.to_owned())
                    .unwrap_or_default(),
                path.clone(),
            )
        };
        let list = st.lists.entry(collection).or_default();
        list.retain(|o| o["metadata"]["name"] != name.as_str());
        list.push(obj.clone());
        st.objects.insert(item, obj.clone());
        st.writes.push(format!("{method} {path}"));
        return Ok(full(obj));
    }
    if method == hyper::Method::DELETE {
        st.writes.push(format!("{method} {path}"));
        let (collection, name) = path
            .rsplit_once('/')
            .map(|(c, n)| (c.to_owned(), n.to_owned()))
            .unwrap_or_default();
        if let Some(list) = st.lists.get_mut(&collection) {
            list.retain(|o| o["metadata"]["name"] != name.as_str());
        }
        st.objects.remove(&path);
        return Ok(full(
            json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 200}),
        ));
    }
    if query.contains("watch=true") || query.contains("watch=1") {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        st.watches.entry(path).or_default().push(tx);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(stream))));
    }
    if let Some(items) = st.lists.get(&path) {
        let selector = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("labelSelector="))
            .unwrap_or_default()
            .replace("%2F", "/");
        let items: Vec<Value> = items
            .iter()
            .filter(|i| selector.is_empty() || i["metadata"]["labels"].get(&selector).is_some())
            .cloned()
            .collect();
        let (api_version, kind, item_kind) = list_kind(&path, metadata_only);
        let item_api = api_version;
        let items: Vec<Value> = items
            .into_iter()
            .map(|mut i| {
                i["apiVersion"] = json!(item_api);
                i["kind"] = json!(item_kind);
                i
            })
            .collect();
        return Ok(full(
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items}),
        ));
    }
    let from_list = path.rsplit_once('/').and_then(|(collection, name)| {
        st.lists
            .get(collection)?
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .cloned()
    });
    Ok(st
        .objects
        .get(&path)
        .cloned()
        .or(from_list)
        .map_or_else(|| not_found(&path), full))
}

fn configmap(rev: &str, tag: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("istio-sidecar-injector-{rev}"), "namespace": "istio-system", "resourceVersion": "3", "labels": {"istio.io/rev": rev}},
        "data": {"values": json!({"global": {"hub": "docker.io/istio", "tag": tag}, "revision": rev}).to_string()}})
}

fn tag(name: &str, rev: &str, rv: &str) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": format!("istio-revision-tag-{name}"), "resourceVersion": rv, "labels": {"istio.io/tag": name, "istio.io/rev": rev}},
        "webhooks": []})
}

fn namespace_meta(name: &str, rev: &str) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "resourceVersion": "4", "labels": {"istio.io/rev": rev}}})
}

async fn start_fake_api(state: Shared) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| serve_api(state.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

const CONFIGMAPS: &str = "/api/v1/namespaces/istio-system/configmaps";
const MUTATING: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
const NAMESPACES: &str = "/api/v1/namespaces";

/// A fake cluster with revisions asm-1-22 and asm-1-23, the given tags and namespaces.
fn cluster(tags: Vec<Value>, namespaces: Vec<Value>) -> Shared {
    let state: Shared = Arc::default();
    {
        let mut st = state.lock().expect("lock");
        st.lists.insert(
            CONFIGMAPS.into(),
            vec![
                configmap("asm-1-22", "1.22.0"),
                configmap("asm-1-23", "1.23.0"),
            ],
        );
        st.lists.insert(MUTATING.into(), tags);
        st.lists.insert(NAMESPACES.into(), namespaces);
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_follow_istio_objects_and_the_ca_bundle_is_applied() {
    let state = cluster(
        vec![
            tag("prod-stable", "asm-1-22", "5"),
            tag("prod-canary", "asm-1-23", "6"),
        ],
        vec![namespace_meta("shop", "prod-stable")],
    );
    {
        let mut st = state.lock().expect("lock");
        // A namespace created after the list: only a direct GET finds it.
        st.objects.insert(
            "/api/v1/namespaces/plain".into(),
            namespace_meta("plain", "prod-canary"),
        );
        let webhook = |kind: &str| {
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": "revhook", "resourceVersion": "7"},
            "webhooks": [{"name": "x.revhook.dev", "clientConfig": {"service": {"name": "revhook", "namespace": "revhook-system"}, "caBundle": ""},
                "sideEffects": "None", "admissionReviewVersions": ["v1"]}]})
        };
        st.objects.insert(
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/revhook".into(),
            webhook("MutatingWebhookConfiguration"),
        );
        st.objects.insert(
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/revhook".into(),
            webhook("ValidatingWebhookConfiguration"),
        );
    }
    let api_url = start_fake_api(state.clone()).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let certs = revhook::tls::generate_dev(&[], &[], 1, 2).expect("certs");
    certs.write(dir.path()).expect("write");
    let (_stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = run::start(
        ServeOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            tls_cert: Some(dir.path().join("tls.crt")),
            tls_key: Some(dir.path().join("tls.key")),
            source: Source::Cluster(ClusterOptions {
                istio_namespaces: vec!["istio-system".into()],
                mesh: MeshSettings::default(),
                api_url: Some(api_url),
            }),
            ca_bundle: Some(CaBundleOptions {
                ca_cert: dir.path().join("ca.crt"),
                mutating: "revhook".into(),
                validating: "revhook".into(),
                resync: Duration::from_secs(30),
            }),
            ..ServeOptions::default()
        },
        async move {
            let _ = stop_rx.await;
        },
    )
    .await
    .expect("server starts");
    assert!(
        running.app.health.ready().is_err(),
        "not ready before the first sync"
    );
    let mut ready = false;
    for _ in 0..100 {
        if running.app.health.ready().is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ready,
        "ready once every watch has listed: {:?}",
        running.app.health.ready()
    );

    let mut client = connect(running.addr, &certs.ca_cert, Proto::Http2)
        .await
        .expect("connect");
    let review = fixture("pod-create-prod-stable.json");
    let response = admission_response(&client.post("/inject", review.clone()).await);
    assert_eq!(
        proxy_image(&apply_patch(&response, &request_object(&review))).as_deref(),
        Some("docker.io/istio/proxyv2:1.22.0")
    );

    // `istioctl tag set prod-stable --revision asm-1-23`: a watch event.
    let before = running.app.snapshot.load();
    let event = json!({"type": "MODIFIED", "object": tag("prod-stable", "asm-1-23", "11")})
        .to_string()
        + "\n";
    {
        let st = state.lock().expect("lock");
        let watchers = st
            .watches
            .get("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations")
            .expect("a tag watch is open");
        for w in watchers {
            let _ = w.send(Bytes::from(event.clone()));
        }
    }
    // Other watches may rebuild the snapshot too: wait for this event's effect, not any change.
    for _ in 0..250 {
        if running.app.snapshot.load().table.tag_target("prod-stable") == Some("asm-1-23") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !Arc::ptr_eq(&before, &running.app.snapshot.load()),
        "a new snapshot was swapped in"
    );
    let response = admission_response(&client.post("/inject", review.clone()).await);
    assert_eq!(
        proxy_image(&apply_patch(&response, &request_object(&review))).as_deref(),
        Some("docker.io/istio/proxyv2:1.23.0")
    );

    // A pod in a namespace the cache does not know: one GET, and its label applies.
    let review = fixture("pod-create-unlabelled-namespace.json");
    let response = admission_response(&client.post("/inject", review.clone()).await);
    assert_eq!(
        proxy_image(&apply_patch(&response, &request_object(&review))).as_deref(),
        Some("docker.io/istio/proxyv2:1.23.0")
    );
    assert!(state
        .lock()
        .expect("lock")
        .gets
        .iter()
        .any(|g| g.starts_with("GET /api/v1/namespaces/plain")));

    // caBundle: server-side apply of the CA, as field manager revhook, on both configurations.
    for _ in 0..100 {
        if state.lock().expect("lock").patches.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once written, nothing more: no reconcile loop against the API server.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let patches = state.lock().expect("lock").patches.clone();
    assert_eq!(
        patches.len(),
        2,
        "PATCH requests: {} (first: {:?})",
        patches.len(),
        patches.first().map(|p| &p.0)
    );
    use base64::Engine as _;
    let bundle = base64::engine::general_purpose::STANDARD.encode(certs.ca_cert.as_bytes());
    for (path, query, content_type, body) in &patches {
        assert!(path.ends_with("webhookconfigurations/revhook"), "{path}");
        assert!(
            query.contains("fieldManager=revhook") && query.contains("force=true"),
            "{query}"
        );
        assert_eq!(content_type, "application/apply-patch+yaml");
        assert_eq!(body["webhooks"][0]["clientConfig"]["caBundle"], bundle);
        assert_eq!(body["webhooks"][0]["name"], "x.revhook.dev");
    }
}

fn revhook(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revhook"))
        .args(args)
        .output()
        .expect("revhook");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_commands_read_and_write_istios_tag_webhooks() {
    let state = cluster(
        vec![tag("prod-stable", "asm-1-22", "5")],
        vec![namespace_meta("shop", "prod-stable")],
    );
    let url = start_fake_api(state.clone()).await;
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            revhook(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
    };
    let with_url = |a: &[&str]| -> Vec<String> {
        a.iter()
            .map(|s| (*s).to_owned())
            .chain(["--kube-api-url".to_owned(), url.clone()])
            .collect()
    };

    let (code, out, err) = run(with_url(&["tags", "list"])).await.expect("join");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("prod-stable") && out.contains("asm-1-22") && out.contains("shop"),
        "{out}"
    );

    let (code, _, err) = run(with_url(&[
        "tags",
        "set",
        "prod-stable",
        "--revision",
        "asm-1-23",
    ]))
    .await
    .expect("join");
    assert_eq!(code, Some(2));
    assert!(err.contains("pass --overwrite"), "{err}");
    let (code, _, err) = run(with_url(&[
        "tags",
        "set",
        "prod-canary",
        "--revision",
        "asm-1-30",
    ]))
    .await
    .expect("join");
    assert_eq!(code, Some(2));
    assert!(err.contains("not installed"), "{err}");
    assert!(
        state.lock().expect("lock").writes.is_empty(),
        "refusals write nothing"
    );

    let (code, _, err) = run(with_url(&[
        "tags",
        "set",
        "prod-stable",
        "--revision",
        "asm-1-23",
        "--overwrite",
    ]))
    .await
    .expect("join");
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(with_url(&[
        "tags",
        "set",
        "prod-canary",
        "--revision",
        "asm-1-23",
    ]))
    .await
    .expect("join");
    assert_eq!(code, Some(0), "{err}");
    {
        let st = state.lock().expect("lock");
        assert_eq!(
            st.writes,
            vec![
                "PUT /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-revision-tag-prod-stable",
                "POST /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            ]
        );
        let canary = st.objects.get("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-revision-tag-prod-canary").expect("created");
        assert_eq!(canary["metadata"]["labels"]["istio.io/rev"], "asm-1-23");
        assert_eq!(
            canary["webhooks"],
            json!([]),
            "nothing but revhook acts on revhook's tags"
        );
    }

    let (code, out, err) = run(with_url(&["tags", "remove", "prod-stable"]))
        .await
        .expect("join");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("removed") && err.contains("namespaces still select prod-stable: shop"),
        "{out} {err}"
    );
    let (code, _, err) = run(with_url(&["tags", "remove", "no-such-tag"]))
        .await
        .expect("join");
    assert_eq!(code, Some(2));
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_a_live_cluster() {
    let state = cluster(
        vec![
            tag("prod-stable", "asm-1-22", "5"),
            tag("default", "asm-1-22", "6"),
        ],
        vec![
            namespace_meta("shop", "prod-stable"),
            namespace_meta("retired", "asm-1-20"),
        ],
    );
    {
        let mut st = state.lock().expect("lock");
        st.lists.insert(
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations".into(),
            vec![],
        );
        st.lists.insert("/api/v1/pods".into(), vec![json!({"metadata": {"name": "web-1", "namespace": "shop"},
            "spec": {"containers": [{"name": "web"}, {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.22.0"}]},
            "status": {"phase": "Running"}})]);
        st.lists.insert("/api/v1/services".into(), vec![]);
    }
    let url = start_fake_api(state.clone()).await;
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        revhook(&["check", "-o", "json", "--kube-api-url", &url])
    })
    .await
    .expect("join");
    assert_eq!(code, Some(1), "a stale namespace is an error: {err}");
    let report: Value = serde_json::from_str(&out).expect("json report");
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(codes.contains(&"REVHOOK-STALE-NAMESPACE"), "{codes:?}");
    assert_eq!(report["revisions"][0]["namespaces"], json!(["shop"]));
}
