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
    /// Paths whose GET the fake holds for a while before answering (a slow API server).
    slow: HashMap<String, Duration>,
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

/// A label selector of `key`, `key=value` and `!key` terms, as kube-rs sends them.
fn selector_matches(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .filter(|t| !t.is_empty())
        .all(|term| match term.strip_prefix('!') {
            Some(key) => labels.get(key).is_none(),
            None => match term.split_once('=') {
                Some((k, v)) => labels.get(k).and_then(Value::as_str) == Some(v),
                None => labels.get(term).is_some(),
            },
        })
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
    let slow = state.lock().expect("lock").slow.get(&path).copied();
    if let Some(delay) = slow {
        tokio::time::sleep(delay).await;
    }
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
            .replace("%2F", "/")
            .replace("%3D", "=")
            .replace("%2C", ",")
            .replace("%21", "!");
        let items: Vec<Value> = items
            .iter()
            .filter(|i| selector_matches(&selector, &i["metadata"]["labels"]))
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

/// An injector ConfigMap with revhook's own templates (the injection itself is tested
/// elsewhere; here what matters is which revision serves).
fn configmap(rev: &str, tag: &str) -> Value {
    let (config, _) =
        revhook::core::injector::configmap_parts(revhook::core::injector::EMBEDDED_INJECTOR)
            .expect("embedded injector");
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("istio-sidecar-injector-{rev}"), "namespace": "istio-system", "resourceVersion": "3", "labels": {"istio.io/rev": rev}},
        "data": {"config": config, "values": json!({"global": {"hub": "docker.io/istio", "tag": tag}, "revision": rev}).to_string()}})
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
const SERVICES: &str = "/api/v1/namespaces/istio-system/services";
const MUTATING: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
const NAMESPACES: &str = "/api/v1/namespaces";

/// A revision's istiod Service, as Istio's chart labels it.
fn istiod_service(rev: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("istiod-{rev}"), "namespace": "istio-system", "resourceVersion": "3",
            "labels": {"app": "istiod", "istio.io/rev": rev}},
        "spec": {"selector": {"app": "istiod", "istio.io/rev": rev}, "ports": [{"port": 15012}]}})
}

/// A fake cluster with revisions asm-1-22 and asm-1-23 (injector ConfigMaps and istiod
/// Services in istio-system, also listed cluster-wide), the given tags and namespaces.
fn cluster(tags: Vec<Value>, namespaces: Vec<Value>) -> Shared {
    let state: Shared = Arc::default();
    {
        let mut st = state.lock().expect("lock");
        let configmaps = vec![
            configmap("asm-1-22", "1.22.0"),
            configmap("asm-1-23", "1.23.0"),
        ];
        let services = vec![istiod_service("asm-1-22"), istiod_service("asm-1-23")];
        st.lists.insert(CONFIGMAPS.into(), configmaps.clone());
        st.lists.insert("/api/v1/configmaps".into(), configmaps);
        st.lists.insert(SERVICES.into(), services.clone());
        st.lists.insert("/api/v1/services".into(), services);
        st.lists.insert(MUTATING.into(), tags);
        st.lists.insert(NAMESPACES.into(), namespaces);
    }
    state
}

/// The fake cluster the watcher tests serve from: tags prod-stable → asm-1-22 and
/// prod-canary → asm-1-23, namespace shop on prod-stable, namespace plain (on prod-canary)
/// created after the list, and revhook's own webhook configurations with an empty caBundle.
fn watched_cluster() -> Shared {
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
    state
}

/// revhook serving in cluster mode from a fake API, with `--manage-ca-bundle`.
struct Served {
    state: Shared,
    running: run::Running,
    certs: revhook::tls::DevCerts,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Served {
    /// Starts revhook against `state`; it is not waited for (see [`Served::wait_ready`]).
    async fn start(state: Shared) -> Served {
        let api_url = start_fake_api(state.clone()).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = revhook::tls::generate_dev(&[], &[], 1, 2).expect("certs");
        certs.write(dir.path()).expect("write");
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
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
        Served {
            state,
            running,
            certs,
            _dir: dir,
            _stop: stop,
        }
    }

    /// Started and synced: every watch has listed.
    async fn ready(state: Shared) -> Served {
        let served = Served::start(state).await;
        served.wait_ready().await;
        served
    }

    async fn wait_ready(&self) {
        let health = &self.running.app.health;
        let mut ready = false;
        for _ in 0..100 {
            if health.ready().is_ok() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            ready,
            "ready once every watch has listed: {:?}",
            health.ready()
        );
    }

    async fn client(&self) -> Client {
        connect(self.running.addr, &self.certs.ca_cert, Proto::Http2)
            .await
            .expect("connect")
    }

    /// The proxy image injected into the fixture's pod.
    async fn injected_image(&self, client: &mut Client, fixture_name: &str) -> Option<String> {
        let review = fixture(fixture_name);
        let response = admission_response(&client.post("/inject", review.clone()).await);
        proxy_image(&apply_patch(&response, &request_object(&review)))
    }

    /// Sends a watch event to every open watch on `collection`.
    fn send_watch_event(&self, collection: &str, event: &Value) {
        let line = event.to_string() + "\n";
        let st = self.state.lock().expect("lock");
        let watchers = st.watches.get(collection).expect("a watch is open");
        for w in watchers {
            let _ = w.send(Bytes::from(line.clone()));
        }
    }

    /// Waits (bounded) until the served snapshot's tag points at `revision`. Other watches
    /// may rebuild the snapshot too: this waits for one event's effect, not any change.
    async fn wait_for_tag(&self, tag: &str, revision: &str) {
        for _ in 0..250 {
            if self.running.app.snapshot.load().table.tag_target(tag) == Some(revision) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The PATCH requests once at least `count` have arrived (bounded wait), after a further
    /// pause in which any extra one would show.
    async fn patches_after_quiet(&self, count: usize) -> Vec<(String, String, String, Value)> {
        for _ in 0..100 {
            if self.state.lock().expect("lock").patches.len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.state.lock().expect("lock").patches.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_is_not_ready_until_every_watch_has_listed() {
    let served = Served::start(watched_cluster()).await;
    assert!(
        served.running.app.health.ready().is_err(),
        "not ready before the first sync"
    );
    served.wait_ready().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_gets_the_revision_its_namespace_tag_points_at() {
    let served = Served::ready(watched_cluster()).await;
    let mut client = served.client().await;
    assert_eq!(
        served
            .injected_image(&mut client, "pod-create-prod-stable.json")
            .await
            .as_deref(),
        Some("docker.io/istio/proxyv2:1.22.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_watch_event_swaps_in_a_snapshot_that_injects_the_new_revision() {
    let served = Served::ready(watched_cluster()).await;
    let mut client = served.client().await;
    let before = served.running.app.snapshot.load();
    // `istioctl tag set prod-stable --revision asm-1-23`.
    served.send_watch_event(
        MUTATING,
        &json!({"type": "MODIFIED", "object": tag("prod-stable", "asm-1-23", "11")}),
    );
    served.wait_for_tag("prod-stable", "asm-1-23").await;
    assert!(
        !Arc::ptr_eq(&before, &served.running.app.snapshot.load()),
        "a new snapshot was swapped in"
    );
    assert_eq!(
        served
            .injected_image(&mut client, "pod-create-prod-stable.json")
            .await
            .as_deref(),
        Some("docker.io/istio/proxyv2:1.23.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_the_cache_does_not_know_is_fetched_and_its_label_applies() {
    let served = Served::ready(watched_cluster()).await;
    let mut client = served.client().await;
    assert_eq!(
        served
            .injected_image(&mut client, "pod-create-unlabelled-namespace.json")
            .await
            .as_deref(),
        Some("docker.io/istio/proxyv2:1.23.0")
    );
    assert!(served
        .state
        .lock()
        .expect("lock")
        .gets
        .iter()
        .any(|g| g.starts_with("GET /api/v1/namespaces/plain")));
}

/// GETs of namespaces whose name starts with `prefix`, as the fake API server saw them.
fn namespace_gets(state: &Shared, prefix: &str) -> Vec<String> {
    let path = format!("GET /api/v1/namespaces/{prefix}");
    state
        .lock()
        .expect("lock")
        .gets
        .iter()
        .filter(|g| g.starts_with(&path))
        .cloned()
        .collect()
}

/// The value of one sample in the server's metrics, 0 if absent.
fn metric(served: &Served, series: &str) -> f64 {
    served
        .running
        .app
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Item 11 of issue #17: 500 reviews naming random namespaces made 500 GETs on a real API
/// server. Now GETs stay under the lookup rate (20 a second, as many at once), an absent
/// name is remembered (asking again makes no GET), and every such review gets no verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_naming_random_namespaces_cannot_make_a_get_each() {
    let served = Served::ready(watched_cluster()).await;
    let review = String::from_utf8(fixture("pod-create-prod-stable.json")).expect("utf-8");
    let named = |ns: &str| review.replace("\"shop\"", &format!("\"{ns}\""));
    let started = std::time::Instant::now();
    let mut senders = Vec::new();
    for c in 0..10 {
        let mut client = served.client().await;
        let bodies: Vec<String> = (0..50).map(|i| named(&format!("rnd-{c}-{i}"))).collect();
        senders.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for body in bodies {
                statuses.push(client.post("/inject", body).await.status);
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for sender in senders {
        statuses.extend(sender.await.expect("sender"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(statuses.len(), 500);
    assert!(
        statuses
            .iter()
            .all(|s| *s == hyper::StatusCode::SERVICE_UNAVAILABLE),
        "no verdict for a namespace that cannot be known: {statuses:?}"
    );
    let gets = namespace_gets(&served.state, "rnd-");
    let bound = 20.0 + 20.0 * elapsed + 1.0;
    assert!(
        !gets.is_empty() && gets.len() as f64 <= bound,
        "{} GETs for 500 names in {elapsed:.2} s (bound {bound:.0})",
        gets.len()
    );
    let limited = metric(
        &served,
        r#"revhook_namespace_lookups_total{result="limited"}"#,
    );
    let absent = metric(
        &served,
        r#"revhook_namespace_lookups_total{result="absent"}"#,
    );
    assert_eq!(
        limited + absent,
        500.0,
        "every lookup counted by its outcome"
    );
    assert!(limited > 0.0, "the rate was reached");
    // The names asked for are remembered absent: asking again within seconds makes no GET.
    let asked: Vec<String> = gets
        .iter()
        .filter_map(|g| g.split(['/', '?']).nth(4).map(str::to_owned))
        .collect();
    let mut client = served.client().await;
    for ns in asked.iter().take(10) {
        let reply = client.post("/inject", named(ns)).await;
        assert_eq!(reply.status, hyper::StatusCode::SERVICE_UNAVAILABLE);
        assert!(reply.text().contains("does not exist"), "{}", reply.text());
    }
    assert_eq!(
        namespace_gets(&served.state, "rnd-").len(),
        gets.len(),
        "no new GET for names remembered absent"
    );
    // Names no namespace can have are never asked for.
    let reply = client.post("/inject", named("Not_A_Name")).await;
    assert!(
        reply.text().contains("is not a namespace name"),
        "{}",
        reply.text()
    );
    assert!(namespace_gets(&served.state, "Not_A_Name").is_empty());
}

/// Fifty reviews at once for one namespace the snapshot does not know share one GET, and
/// every one gets its label's revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reviews_for_one_new_namespace_share_one_get() {
    let state = watched_cluster();
    state.lock().expect("lock").slow.insert(
        "/api/v1/namespaces/plain".into(),
        Duration::from_millis(500),
    );
    let served = Served::ready(state).await;
    // Connected first, so that all fifty are sent within the GET's half second.
    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(served.client().await);
    }
    let reviews: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            let mut review: Value =
                serde_json::from_slice(&fixture("pod-create-unlabelled-namespace.json"))
                    .expect("review");
            review["request"]["uid"] = json!(format!("uid-{i}"));
            let body = serde_json::to_vec(&review).expect("json");
            tokio::spawn(async move { client.post("/inject", body).await })
        })
        .collect();
    let object = request_object(&fixture("pod-create-unlabelled-namespace.json"));
    let mut answered = 0;
    for review in reviews {
        let response = admission_response(&review.await.expect("sender"));
        assert_eq!(
            proxy_image(&apply_patch(&response, &object)).as_deref(),
            Some("docker.io/istio/proxyv2:1.23.0")
        );
        answered += 1;
    }
    assert_eq!(answered, 50);
    assert_eq!(
        namespace_gets(&served.state, "plain").len(),
        1,
        "one GET for fifty reviews"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_bundle_is_server_side_applied_once_to_both_configurations() {
    let served = Served::ready(watched_cluster()).await;
    // Once written, nothing more: no reconcile loop against the API server.
    let patches = served.patches_after_quiet(2).await;
    assert_eq!(
        patches.len(),
        2,
        "PATCH requests: {} (first: {:?})",
        patches.len(),
        patches.first().map(|p| &p.0)
    );
    use base64::Engine as _;
    let bundle = base64::engine::general_purpose::STANDARD.encode(served.certs.ca_cert.as_bytes());
    // Server-side apply of the CA, as field manager revhook.
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

/// A fake cluster with tag prod-stable → asm-1-22, selected by namespace shop, and the
/// `revhook tags` commands run against it.
struct TagsCluster {
    state: Shared,
    url: String,
}

impl TagsCluster {
    async fn start() -> TagsCluster {
        let state = cluster(
            vec![tag("prod-stable", "asm-1-22", "5")],
            vec![namespace_meta("shop", "prod-stable")],
        );
        {
            let mut st = state.lock().expect("lock");
            st.lists.insert(
                "/api/v1/pods".into(),
                vec![json!({"metadata": {"name": "web-1", "namespace": "shop"}})],
            );
        }
        let url = start_fake_api(state.clone()).await;
        TagsCluster { state, url }
    }

    /// `revhook tags ARGS --kube-api-url URL`: (exit code, stdout, stderr).
    async fn tags(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let args: Vec<String> = ["tags"]
            .iter()
            .chain(args)
            .map(|s| (*s).to_owned())
            .chain(["--kube-api-url".to_owned(), self.url.clone()])
            .collect();
        tokio::task::spawn_blocking(move || {
            revhook(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .expect("join")
    }

    fn writes(&self) -> Vec<String> {
        self.state.lock().expect("lock").writes.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_list_shows_each_tag_its_revision_and_namespaces() {
    let cluster = TagsCluster::start().await;
    let (code, out, err) = cluster.tags(&["list"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("prod-stable") && out.contains("asm-1-22") && out.contains("shop"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_set_refuses_to_move_a_tag_without_overwrite_or_onto_a_missing_revision() {
    let cluster = TagsCluster::start().await;
    let (code, _, err) = cluster
        .tags(&["set", "prod-stable", "--revision", "asm-1-23"])
        .await;
    assert_eq!(code, Some(2));
    assert!(err.contains("pass --overwrite"), "{err}");
    let (code, _, err) = cluster
        .tags(&["set", "prod-canary", "--revision", "asm-1-30"])
        .await;
    assert_eq!(code, Some(2));
    assert!(err.contains("not installed"), "{err}");
    assert!(cluster.writes().is_empty(), "refusals write nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_set_in_guard_mode_refuses_when_it_cannot_copy_istios_injector() {
    // No revhook installed (no revhook.dev/mode label): guard, and this cluster has no
    // injector webhook configuration of asm-1-23 to copy.
    let cluster = TagsCluster::start().await;
    let (code, _, err) = cluster
        .tags(&["set", "prod-canary", "--revision", "asm-1-23"])
        .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("run: istioctl tag set prod-canary --revision asm-1-23 -i istio-system"),
        "{err}"
    );
    assert!(cluster.writes().is_empty(), "refusals write nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_set_replaces_a_moved_tag_and_creates_a_new_one_as_istioctl_does() {
    let cluster = TagsCluster::start().await;
    let (code, _, err) = cluster
        .tags(&[
            "set",
            "prod-stable",
            "--revision",
            "asm-1-23",
            "--overwrite",
            "--mode",
            "inject",
        ])
        .await;
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = cluster
        .tags(&[
            "set",
            "prod-canary",
            "--revision",
            "asm-1-23",
            "--mode",
            "inject",
        ])
        .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        cluster.writes(),
        vec![
            format!("PUT {MUTATING}/istio-revision-tag-prod-stable"),
            format!("POST {MUTATING}"),
        ]
    );
    let st = cluster.state.lock().expect("lock");
    let canary = st
        .objects
        .get(&format!("{MUTATING}/istio-revision-tag-prod-canary"))
        .expect("created");
    assert_eq!(canary["metadata"]["labels"]["istio.io/rev"], "asm-1-23");
    assert_eq!(
        canary["webhooks"],
        json!([]),
        "nothing but revhook acts on revhook's tags"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_remove_says_what_breaks_and_deletes_only_with_yes_without_a_terminal() {
    let cluster = TagsCluster::start().await;
    let (code, _, err) = cluster.tags(&["remove", "prod-stable"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("pass --yes"), "{err}");
    assert!(cluster.writes().is_empty(), "nothing removed without a yes");
    let (code, out, err) = cluster.tags(&["remove", "prod-stable", "--yes"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("removed"), "{out}");
    assert!(
        err.contains("namespaces selecting the tag: shop\npods on it: 1\n"),
        "{err}"
    );
    assert_eq!(
        cluster.writes(),
        vec![format!("DELETE {MUTATING}/istio-revision-tag-prod-stable")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_remove_of_a_tag_that_does_not_exist_fails() {
    let cluster = TagsCluster::start().await;
    let (code, _, err) = cluster.tags(&["remove", "no-such-tag"]).await;
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
