//! revhook's own restarts against a real kube-apiserver, with `failurePolicy: Fail` as
//! shipped (flow 5 of the upgrade guides' flows):
//!
//! - in inject and in guard mode, revhook restarted while a Deployment scales up: pods the
//!   ReplicaSet creates meanwhile are refused (the API server cannot call revhook, or revhook
//!   has not synced and gives no verdict) and created by the ReplicaSet's retries afterwards,
//!   never stored without a sidecar;
//! - what the API server's webhook client does with a keep-alive connection the webhook
//!   closes, measured with a webhook of the test's own behind a Service;
//! - a rolling restart of two replicas behind revhook's Service (each replica in its own
//!   network namespace, Endpoints written from readiness as the endpoints controller writes
//!   them, the shipped `--shutdown-delay`) under a stream of pod creations: none fails.

mod envtest;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envtest::objects::{self, api_message, value};
use envtest::web;
use envtest::{eventually, ControlPlane, NetNs, Options, Revhook, RevhookOptions, Tls};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const ASM_1_22_PROXY: &str = "mcr.microsoft.com/oss/istio/proxyv2:1.22.3-distroless";

// === revhook as the shipped Deployment runs it ===

/// The shipped Deployment (`manifests/base/deployment.yaml`).
fn shipped_deployment() -> Value {
    objects::yaml_file("manifests/base/deployment.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the shipped Deployment")
}

/// The shipped container's flags that are not about where it listens or its certificate files
/// (the harness sets those): `--shutdown-delay`, `--drain-timeout`, `--source`...
fn shipped_flags() -> Vec<String> {
    let deploy = shipped_deployment();
    let harness = ["--listen=", "--admin-listen=", "--tls-cert=", "--tls-key="];
    deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .filter(|a| a != "serve" && !harness.iter().any(|h| a.starts_with(h)))
        .collect()
}

/// The shipped flag `--NAME=VALUE`'s value.
fn shipped_flag(name: &str) -> String {
    shipped_flags()
        .into_iter()
        .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("the shipped Deployment sets --{name}"))
}

/// A Go duration such as `5s` (what the manifests use).
fn seconds(go: &str) -> Duration {
    Duration::from_secs(
        go.strip_suffix('s')
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{go}: whole seconds")),
    )
}

/// The kubelet's readiness probing as the shipped Deployment configures it.
#[derive(Debug, Clone, Copy)]
struct Probe {
    period: Duration,
    failure_threshold: u32,
}

fn shipped_probe() -> Probe {
    let deploy = shipped_deployment();
    let probe = &deploy["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["httpGet"]["path"], "/readyz");
    Probe {
        period: Duration::from_secs(probe["periodSeconds"].as_u64().expect("periodSeconds")),
        failure_threshold: probe["failureThreshold"]
            .as_u64()
            .expect("failureThreshold") as u32,
    }
}

/// revhook's serving certificate for its Service's names.
fn revhook_tls() -> Tls {
    Tls::generate(
        "revhook",
        &[
            "revhook.revhook-system.svc",
            "revhook.revhook-system.svc.cluster.local",
        ],
    )
}

/// One replica (a pod): its network namespace and the revhook running there.
struct Replica {
    name: String,
    revhook: Revhook,
}

/// Starts a replica in `netns` with the shipped flags (`mode` and `extra` on top).
fn start_replica(
    cp: &ControlPlane,
    netns: &NetNs,
    kubeconfig: &std::path::Path,
    name: &str,
    tls: &Tls,
    extra: &[String],
) -> Replica {
    // `extra` replaces a shipped flag of the same name; text logs (the tests read them).
    let name_of = |flag: &str| flag.split('=').next().unwrap_or_default().to_owned();
    let replaced: Vec<String> = extra.iter().map(|f| name_of(f)).collect();
    let mut args: Vec<String> = shipped_flags()
        .into_iter()
        .filter(|a| !a.starts_with("--log-format") && !replaced.contains(&name_of(a)))
        .collect();
    args.extend_from_slice(extra);
    let revhook = Revhook::start(
        name,
        cp.path(),
        RevhookOptions {
            kubeconfig: Some(kubeconfig),
            args,
            wait_ready: false,
            tls: Some(tls.clone()),
            netns: Some(netns),
        },
    );
    Replica {
        name: name.to_owned(),
        revhook,
    }
}

// === The endpoints controller, played by the test ===

/// What the test's endpoints controller knows of one replica.
struct Tracked {
    ip: IpAddr,
    admin: SocketAddr,
    ready: bool,
    failures: u32,
    /// Deleted: out of the Endpoints at once, whatever its probe says (as the endpoints
    /// controller drops a pod with a deletion timestamp).
    terminating: bool,
}

/// When (since the controller started) it wrote the Endpoints, and the ready addresses.
type Written = (Duration, Vec<IpAddr>);

/// Probes each replica's `/readyz` as the kubelet does (the shipped period and failure
/// threshold; one success makes it ready) and writes revhook's Endpoints whenever the ready
/// set changes, as the endpoints controller does; a replica marked terminating leaves the
/// Endpoints at once.
#[derive(Clone)]
struct EndpointsController {
    replicas: Arc<Mutex<Vec<Tracked>>>,
    written: Arc<Mutex<Vec<Written>>>,
    stop: Arc<AtomicBool>,
}

impl EndpointsController {
    fn start(client: Client, probe: Probe) -> EndpointsController {
        let controller = EndpointsController {
            replicas: Arc::new(Mutex::new(Vec::new())),
            written: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let this = controller.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut last: Option<(Vec<IpAddr>, Vec<IpAddr>)> = None;
            let mut next_probe = Instant::now();
            while !this.stop.load(Ordering::Acquire) {
                if Instant::now() >= next_probe {
                    this.probe_all().await;
                    next_probe += probe.period;
                    let threshold = probe.failure_threshold;
                    for r in this.replicas.lock().expect("replicas").iter_mut() {
                        if r.failures >= threshold {
                            r.ready = false;
                        }
                    }
                }
                let sets = this.sets();
                if last.as_ref() != Some(&sets) {
                    let endpoints = objects::revhook_endpoints(&sets.0, &sets.1);
                    if objects::try_apply(&client, &endpoints).await.is_ok() {
                        this.written
                            .lock()
                            .expect("written")
                            .push((started.elapsed(), sets.0.clone()));
                        last = Some(sets);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        controller
    }

    /// (ready, not ready) addresses.
    fn sets(&self) -> (Vec<IpAddr>, Vec<IpAddr>) {
        let replicas = self.replicas.lock().expect("replicas");
        let ready = replicas
            .iter()
            .filter(|r| r.ready && !r.terminating)
            .map(|r| r.ip)
            .collect();
        let not_ready = replicas
            .iter()
            .filter(|r| !r.ready || r.terminating)
            .map(|r| r.ip)
            .collect();
        (ready, not_ready)
    }

    async fn probe_all(&self) {
        let targets: Vec<(usize, SocketAddr)> = self
            .replicas
            .lock()
            .expect("replicas")
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.admin))
            .collect();
        for (i, admin) in targets {
            let ok = readyz(admin).await;
            let mut replicas = self.replicas.lock().expect("replicas");
            let r = &mut replicas[i];
            if ok {
                r.ready = true;
                r.failures = 0;
            } else {
                r.failures += 1;
            }
        }
    }

    /// A new pod: probed from now on, not ready until a probe succeeds.
    fn add(&self, ip: IpAddr, admin: SocketAddr) {
        let mut replicas = self.replicas.lock().expect("replicas");
        replicas.retain(|r| r.ip != ip);
        replicas.push(Tracked {
            ip,
            admin,
            ready: false,
            failures: 0,
            terminating: false,
        });
    }

    /// The pod is being deleted: out of the Endpoints, and no longer probed once gone.
    fn terminate(&self, ip: IpAddr) {
        for r in self.replicas.lock().expect("replicas").iter_mut() {
            if r.ip == ip {
                r.terminating = true;
            }
        }
    }

    fn forget(&self, ip: IpAddr) {
        self.replicas
            .lock()
            .expect("replicas")
            .retain(|r| r.ip != ip || !r.terminating);
    }

    /// Waits until the Endpoints written list `ip` as ready.
    async fn wait_ready(&self, ip: IpAddr) {
        let this = self.clone();
        eventually(&format!("{ip} in revhook's Endpoints"), WAIT, || {
            let this = this.clone();
            async move {
                let written = this.written.lock().expect("written");
                match written.last() {
                    Some((_, ready)) if ready.contains(&ip) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        })
        .await;
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// One readiness probe: `GET /readyz` answered 200 within a second (the kubelet's default
/// probe timeout).
async fn readyz(admin: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let probe = async {
        let mut tcp = tokio::net::TcpStream::connect(admin).await.ok()?;
        tcp.write_all(b"GET /readyz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(1), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

// === Part 1: one replica restarted, in inject and in guard mode ===

/// The control plane of the restart flows: the Istio fixture in istio-system, namespace shop,
/// revhook's Namespace and Service (Endpoints from the test's controller), and revhook's
/// shipped webhook configurations calling the Service, trusting `tls`'s CA.
async fn restart_cluster(tls: &Tls) -> Option<(ControlPlane, Client)> {
    let cp = ControlPlane::start(Options {
        controller_manager: true,
    })
    .await?;
    let client = cp.client().await;
    objects::apply_all(&client, &objects::revhook_namespace_and_service()).await;
    objects::apply_all(&client, &objects::istio_fixture_in("istio-system")).await;
    objects::apply_all(&client, &web::shop_without_deployment()).await;
    objects::apply_all(
        &client,
        &objects::shipped_webhooks(objects::service_client_config(&tls.ca_bundle())),
    )
    .await;
    Some((cp, client))
}

/// `kubectl scale deployment/web -n shop --replicas=N`.
async fn scale_web(client: &Client, replicas: i32) {
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "shop");
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .expect("scale web");
}

async fn shop_pods(client: &Client) -> Vec<Value> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    pods.list(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .into_iter()
        .map(value)
        .collect()
}

async fn wait_for_web_pods(client: &Client, count: usize) -> Vec<Value> {
    let client = client.clone();
    eventually(
        &format!("{count} pods of web"),
        Duration::from_secs(120),
        || {
            let client = client.clone();
            async move {
                let pods: Vec<Value> = shop_pods(&client)
                    .await
                    .into_iter()
                    .filter(|p| p["metadata"]["labels"]["app"] == "web")
                    .collect();
                (pods.len() >= count)
                    .then_some(pods.clone())
                    .ok_or(format!("{} pods", pods.len()))
            }
        },
    )
    .await
}

fn proxy_image(pod: &Value) -> Option<&str> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "istio-proxy")?["image"]
        .as_str()
}

/// The FailedCreate events in shop: by event name, how many times it happened and its
/// message (the event recorder counts a repeated message on one event).
async fn failed_creates(client: &Client) -> std::collections::BTreeMap<String, (i32, String)> {
    let events: Api<Event> = Api::namespaced(client.clone(), "shop");
    events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .map(|e| {
            (
                e.metadata.name.unwrap_or_default(),
                (e.count.unwrap_or(1), e.message.unwrap_or_default()),
            )
        })
        .collect()
}

/// The refusals between two readings of [`failed_creates`]: each message, as often as it
/// happened since.
fn refusals_since(
    before: &std::collections::BTreeMap<String, (i32, String)>,
    now: &std::collections::BTreeMap<String, (i32, String)>,
) -> Vec<(i32, String)> {
    now.iter()
        .filter_map(|(name, (count, message))| {
            let seen = before.get(name).map_or(0, |(c, _)| *c);
            (*count > seen).then(|| (count - seen, message.clone()))
        })
        .collect()
}

/// Istio's injector for shop (prod-stable), as `istioctl tag set` points the tag at a
/// revision's istiod: a webhook calling `url` (a stub istiod), the namespace selector of
/// Istio's chart for a tag.
fn istio_tag_injector(url: &str, ca_bundle: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "istio-revision-tag-prod-stable",
                     "labels": {"istio.io/tag": "prod-stable", "istio.io/rev": "asm-1-22"}},
        "webhooks": [{
            "name": "rev.namespace.sidecar-injector.istio.io",
            "clientConfig": {"url": url, "caBundle": ca_bundle},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchExpressions": [
                {"key": "istio.io/rev", "operator": "In", "values": ["prod-stable"]},
                {"key": "istio-injection", "operator": "DoesNotExist"}]},
            "objectSelector": {"matchExpressions": [
                {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}]},
            "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
            "reinvocationPolicy": "Never"
        }]
    })
}

/// revhook (one replica) is killed while web scales up, and comes back with its reads of the
/// API server held for a while (so it serves before it has synced): the pods the ReplicaSet
/// creates meanwhile are refused, for a reason that is never a verdict, and the ReplicaSet's
/// retries create them once revhook has synced, each with the sidecar of its mode's injector.
async fn restart_while_scaling(
    cp: &ControlPlane,
    client: &Client,
    netns: &NetNs,
    tls: &Tls,
    mode: &str,
    from: usize,
    to: usize,
) -> Vec<Value> {
    let controller = EndpointsController::start(client.clone(), shipped_probe());
    let open = Arc::new(AtomicBool::new(true));
    let kubeconfig = cp.kubeconfig_in_gated(netns, &format!("revhook-{mode}"), open.clone());
    let mode_flag = format!("--mode={mode}");
    let mut first = start_replica(
        cp,
        netns,
        &kubeconfig,
        &format!("{mode}-1"),
        tls,
        std::slice::from_ref(&mode_flag),
    );
    controller.add(netns.inner_ip, first.revhook.admin);
    controller.wait_ready(netns.inner_ip).await;
    first.revhook.wait_for_api_server_calls(client).await;
    let before = wait_for_web_pods(client, from).await;
    let failures_before = failed_creates(client).await;

    // The crash: no graceful shutdown, the endpoint drops when probes fail.
    first.revhook.proc.stop();
    scale_web(client, to as i32).await;
    eventually("the ReplicaSet to be refused", WAIT, || {
        let client = client.clone();
        let before = failures_before.clone();
        async move {
            let now = failed_creates(&client).await;
            (!refusals_since(&before, &now).is_empty())
                .then_some(())
                .ok_or("no FailedCreate yet".to_owned())
        }
    })
    .await;
    // The restart, its first reads of the API server held: it listens unsynced. Its /readyz
    // says 503, so it stays out of the Endpoints (the API server's calls meanwhile fail with
    // "no endpoints available"); and a call that reaches it anyway gets an error, no verdict.
    open.store(false, Ordering::Release);
    let second = start_replica(
        cp,
        netns,
        &kubeconfig,
        &format!("{mode}-2"),
        tls,
        &[mode_flag],
    );
    controller.add(netns.inner_ip, second.revhook.admin);
    let (code, body) = second.revhook.admin_get("/readyz");
    assert_eq!(code, 503, "not ready before its first sync: {body}");
    // While it has not synced, a call is answered with an error, never a verdict.
    let unsynced = call_unsynced(&second.revhook, tls).await;
    assert!(
        unsynced.starts_with("HTTP/1.1 503") && unsynced.contains("no verdict before it has"),
        "{unsynced}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    open.store(true, Ordering::Release);
    let after = wait_for_web_pods(client, to).await;
    controller.stop();

    // Every refusal was a failure to call revhook, retried by the ReplicaSet; none a verdict.
    let refusals = refusals_since(&failures_before, &failed_creates(client).await);
    assert!(!refusals.is_empty());
    for (_, message) in &refusals {
        assert!(
            message.contains("failed calling webhook") && message.contains("revhook.dev"),
            "{message}"
        );
        assert!(!message.contains("denied the request"), "{message}");
    }
    eprintln!("{mode}: refused while revhook restarted (times, message): {refusals:#?}");
    let created_after: Vec<Value> = after
        .into_iter()
        .filter(|p| {
            !before
                .iter()
                .any(|b| b["metadata"]["uid"] == p["metadata"]["uid"])
        })
        .collect();
    assert_eq!(created_after.len(), to - from);
    let mut second = second;
    second.revhook.proc.assert_running();
    drop(first);
    second.revhook.proc.stop();
    created_after
}

/// A review sent straight to a replica (as the API server would), for its status line and
/// body.
async fn call_unsynced(revhook: &Revhook, tls: &Tls) -> String {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(tls.ca_pem.as_bytes()) {
        roots.add(ca.expect("CA")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(revhook.addr)
        .await
        .expect("connect");
    let name = ServerName::try_from("revhook.revhook-system.svc").expect("name");
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS");
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "shop", "operation": "CREATE",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"},
                   "spec": {"containers": [{"name": "app", "image": "app"}]}}}})
    .to_string();
    let request = format!(
        "POST /inject HTTP/1.1\r\nhost: revhook\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_modes_survive_revhooks_restart_with_failure_policy_fail() {
    let tls = revhook_tls();
    let Some((cp, client)) = restart_cluster(&tls).await else {
        return;
    };
    let Some(netns) = NetNs::create() else {
        return;
    };
    let web: Vec<Value> = objects::yaml_file("tests/fixtures/kube/shop.yaml")
        .into_iter()
        .filter(|d| d["kind"] == "Deployment")
        .collect();

    // Inject mode: revhook injects; every pod stored has the sidecar of asm-1-22.
    objects::apply_all(&client, &web).await;
    let created = restart_while_scaling(&cp, &client, &netns, &tls, "inject", 1, 4).await;
    for pod in shop_pods(&client).await {
        assert_eq!(
            proxy_image(&pod),
            Some(ASM_1_22_PROXY),
            "never stored without its sidecar: {}",
            pod["metadata"]["name"]
        );
    }
    assert_eq!(created.len(), 3);

    // Guard mode: Istio (a stub istiod, called through the tag) injects, revhook only refuses.
    let istiod = envtest::istiod::StubIstiod::start("asm-1-22").await;
    objects::apply(
        &client,
        &istio_tag_injector(&istiod.url("/inject"), &istiod.tls.ca_bundle()),
    )
    .await;
    let mwc: Api<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration> =
        Api::all(client.clone());
    mwc.patch(
        "revhook",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"revhook.dev/mode": "guard"}}})),
    )
    .await
    .expect("label revhook's configuration guard");
    let created = restart_while_scaling(&cp, &client, &netns, &tls, "guard", 4, 7).await;
    for pod in &created {
        assert_eq!(
            proxy_image(pod),
            Some(envtest::istiod::STUB_PROXY_IMAGE),
            "Istio's sidecar, and revhook's is not added: {pod:#}"
        );
        let containers = pod["spec"]["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 2, "one sidecar: {pod:#}");
    }
    assert!(!istiod.calls().is_empty());
}

// === Part 2: what the API server's webhook client does with a connection the webhook closes ===

/// What the test's webhook does with the next request on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Answers and keeps the connection open (keep-alive).
    Answer,
    /// Answers, then closes the connection a moment later while it is idle (what a server
    /// does to an idle keep-alive connection when it shuts down, or at its idle timeout).
    AnswerThenCloseIdle,
    /// Reads the request and closes the connection without answering (a request that was
    /// on its way when the server closed the connection).
    CloseUnanswered,
    /// Answers with `Connection: close`, then closes.
    AnswerConnectionClose,
}

/// A validating webhook of the test's own behind a Service, that does to each connection
/// what it is told, and records which connection each request came on.
struct Closer {
    port: u16,
    tls: Tls,
    behaviour: Arc<Mutex<Behaviour>>,
    /// (connection number, object name) per request, in order.
    requests: Arc<Mutex<Vec<(usize, String)>>>,
    /// The ALPN protocol of each connection.
    protocols: Arc<Mutex<Vec<Option<Vec<u8>>>>>,
}

impl Closer {
    async fn start(ip: IpAddr) -> Closer {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let tls = Tls::generate("closer", &["closer.measure.svc"]);
        let certs = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate");
        let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).expect("key");
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("TLS config");
        // Both offered: which one the API server picks is part of what is measured.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let closer = Closer {
            port,
            tls,
            behaviour: Arc::new(Mutex::new(Behaviour::Answer)),
            requests: Arc::new(Mutex::new(Vec::new())),
            protocols: Arc::new(Mutex::new(Vec::new())),
        };
        let (behaviour, requests, protocols) = (
            closer.behaviour.clone(),
            closer.requests.clone(),
            closer.protocols.clone(),
        );
        let connections = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, behaviour, requests, protocols) = (
                    acceptor.clone(),
                    behaviour.clone(),
                    requests.clone(),
                    protocols.clone(),
                );
                let id = connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                    protocols.lock().expect("protocols").push(alpn);
                    serve_connection(stream, id, behaviour, requests).await;
                });
            }
        });
        closer
    }

    fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("behaviour") = behaviour;
    }

    fn requests_for(&self, name: &str) -> Vec<usize> {
        self.requests
            .lock()
            .expect("requests")
            .iter()
            .filter(|(_, n)| n == name)
            .map(|(c, _)| *c)
            .collect()
    }
}

/// HTTP/1.1 by hand, so that the test decides exactly when the connection closes.
async fn serve_connection<S>(
    mut stream: S,
    id: usize,
    behaviour: Arc<Mutex<Behaviour>>,
    requests: Arc<Mutex<Vec<(usize, String)>>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Headers, then the body their content-length says.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let review: Value =
            serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
        buf.drain(..head_end + length);
        let name = review["request"]["name"].as_str().unwrap_or("").to_owned();
        requests.lock().expect("requests").push((id, name));
        let now = *behaviour.lock().expect("behaviour");
        if now == Behaviour::CloseUnanswered {
            let _ = stream.shutdown().await;
            return;
        }
        let answer = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": true}})
        .to_string();
        let close = if now == Behaviour::AnswerConnectionClose {
            "connection: close\r\n"
        } else {
            ""
        };
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{close}\r\n{answer}",
            answer.len()
        );
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
        let _ = stream.flush().await;
        match now {
            Behaviour::AnswerConnectionClose => {
                let _ = stream.shutdown().await;
                return;
            }
            Behaviour::AnswerThenCloseIdle => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = stream.shutdown().await;
                return;
            }
            _ => {}
        }
    }
}

/// The closer's Service, its Endpoints, and the validating webhook that calls it for
/// ConfigMaps in namespace `measure` (`failurePolicy: Fail`, as revhook's pod webhooks).
fn closer_objects(ip: IpAddr, closer: &Closer) -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "measure"}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "closer", "namespace": "measure"},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": "https"}]}}),
        json!({"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "closer", "namespace": "measure"},
            "subsets": [{"addresses": [{"ip": ip.to_string()}],
                         "ports": [{"name": "https", "port": closer.port, "protocol": "TCP"}]}]}),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "closer"},
        "webhooks": [{
            "name": "closer.measure.revhook.dev",
            "clientConfig": {"service": {"name": "closer", "namespace": "measure", "path": "/validate", "port": 443},
                             "caBundle": closer.tls.ca_bundle()},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "measure"}},
            "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "timeoutSeconds": 10
        }]}),
    ]
}

async fn create_configmap(client: &Client, name: &str) -> Result<(), String> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "measure");
    let cm: ConfigMap = objects::typed(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
    );
    cms.create(&PostParams::default(), &cm)
        .await
        .map(|_| ())
        .map_err(|e| api_message(&e))
}

/// The facts the rolling restart rests on, measured with the API server's own webhook client
/// (Go's HTTP/1.1 transport behind a `service:` reference):
/// 1. it speaks HTTP/1.1 to a Service's webhook, even when offered h2;
/// 2. it keeps the connection alive and sends the next request on it;
/// 3. a connection the webhook closed while idle is not reused: the next request opens a new
///    connection and succeeds;
/// 4. a request already sent on a connection the webhook closes without answering fails
///    (`failed calling webhook ... EOF`) and is not retried, so with `failurePolicy: Fail`
///    the object is refused;
/// 5. after `Connection: close` it opens a new connection.
///
/// So a webhook server that shuts down loses nothing as long as it closes a keep-alive
/// connection only while no request is on its way on it; the only loss is a request written
/// in the instant between its close and the client seeing the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_servers_webhook_client_and_keep_alive_connections_the_webhook_closes() {
    let Some(cp) = ControlPlane::start(Options::default()).await else {
        return;
    };
    let Some(netns) = NetNs::create() else {
        return;
    };
    let client = cp.client().await;
    // The webhook listens on the host end of the namespace's veth pair: an address an
    // Endpoints object accepts (not loopback), reached through the Service.
    let closer = Closer::start(netns.host_ip).await;
    objects::apply_all(&client, &closer_objects(netns.host_ip, &closer)).await;
    // Until the API server has loaded the configuration, ConfigMaps pass uncalled.
    let tries = AtomicUsize::new(0);
    let warm = eventually("the API server to call the webhook", WAIT, || {
        let client = client.clone();
        let name = format!("warm-{}", tries.fetch_add(1, Ordering::Relaxed));
        let closer = &closer;
        async move {
            create_configmap(&client, &name).await?;
            let on = closer.requests_for(&name);
            on.first().copied().ok_or("not called yet".to_owned())
        }
    })
    .await;

    // 1, 2: HTTP/1.1, kept alive.
    create_configmap(&client, "keep-1").await.expect("keep-1");
    let keep = closer.requests_for("keep-1");
    assert_eq!(keep, [warm], "the next request on the same connection");
    let protocols = closer.protocols.lock().expect("protocols").clone();
    assert!(
        protocols
            .iter()
            .all(|p| p.as_deref() == Some(b"http/1.1".as_slice())),
        "HTTP/1.1 to a Service's webhook: {protocols:?}"
    );

    // 3: closed while idle, then not reused.
    closer.set(Behaviour::AnswerThenCloseIdle);
    create_configmap(&client, "idle-1").await.expect("idle-1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    closer.set(Behaviour::Answer);
    create_configmap(&client, "idle-2")
        .await
        .expect("a request after the webhook closed its idle connection succeeds");
    let (before, after) = (closer.requests_for("idle-1"), closer.requests_for("idle-2"));
    assert_eq!((before.len(), after.len()), (1, 1));
    assert_ne!(before[0], after[0], "on a new connection");

    // 4: closed with a request on it: refused, not retried.
    closer.set(Behaviour::CloseUnanswered);
    let lost = create_configmap(&client, "lost-1")
        .await
        .expect_err("a request the webhook closed the connection on fails");
    tokio::time::sleep(Duration::from_secs(1)).await;
    closer.set(Behaviour::Answer);
    assert_eq!(
        closer.requests_for("lost-1").len(),
        1,
        "sent once, never retried: {lost}"
    );
    assert!(
        lost.starts_with(r#"Internal error occurred: failed calling webhook "closer.measure.revhook.dev": failed to call webhook: Post "https://closer.measure.svc:443/validate?timeout=10s": "#),
        "{lost}"
    );
    assert!(lost.ends_with("EOF"), "{lost}");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "measure");
    assert!(
        cms.get_opt("lost-1").await.expect("get").is_none(),
        "refused"
    );

    // 5: `Connection: close` honoured.
    closer.set(Behaviour::AnswerConnectionClose);
    create_configmap(&client, "close-1").await.expect("close-1");
    closer.set(Behaviour::Answer);
    create_configmap(&client, "close-2").await.expect("close-2");
    assert_ne!(
        closer.requests_for("close-1"),
        closer.requests_for("close-2"),
        "a new connection after Connection: close"
    );
    eprintln!("measured: {lost}");
}

// === Part 3: a rolling restart of two replicas under a stream of pod creations ===

/// What one creation gave: the stored pod's proxy image, or the refusal.
type Created = Result<Option<String>, String>;

/// Pods created one after another by `workers` tasks, each pausing between creations, until
/// stopped: what each creation gave (the stored pod's proxy image, or the refusal).
struct PodStream {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<Vec<Created>>>,
}

impl PodStream {
    fn start(client: &Client, workers: usize, pause: Duration) -> PodStream {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|w| {
                let (client, stop) = (client.clone(), stop.clone());
                tokio::spawn(async move {
                    let pods: Api<Pod> = Api::namespaced(client, "shop");
                    let mut results = Vec::new();
                    let mut i = 0;
                    while !stop.load(Ordering::Acquire) {
                        let pod: Pod = objects::typed(json!({
                            "apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": format!("stream-{w}-{i}"), "labels": {"app": "stream"}},
                            "spec": {"serviceAccountName": "web",
                                     "containers": [{"name": "app", "image": "registry.example.com/app:1"}]}
                        }));
                        let result = pods
                            .create(&PostParams::default(), &pod)
                            .await
                            .map(|p| proxy_image(&value(p)).map(str::to_owned))
                            .map_err(|e| api_message(&e));
                        results.push(result);
                        i += 1;
                        tokio::time::sleep(pause).await;
                    }
                    results
                })
            })
            .collect();
        PodStream { stop, workers }
    }

    async fn finish(self) -> Vec<Created> {
        self.stop.store(true, Ordering::Release);
        let mut all = Vec::new();
        for w in self.workers {
            all.extend(w.await.expect("stream worker"));
        }
        all
    }
}

/// How many admission requests a replica logged after it began shutting down (readiness
/// false): requests the API server still sent it on kept-alive connections after it had left
/// the Endpoints.
fn served_while_leaving(log: &str) -> usize {
    log.lines()
        .skip_while(|l| !l.contains("shutdown: readiness false"))
        .filter(|l| l.contains("webhook=\"inject\"") || l.contains("webhook=\"validate\""))
        .count()
}

/// `kubectl rollout restart deployment/revhook` of the shipped Deployment (two replicas,
/// `maxSurge: 1`, `maxUnavailable: 0`): a new replica starts and becomes ready, then an old
/// one is deleted (out of the Endpoints, SIGTERM: readiness false, `--shutdown-delay`, then it
/// drains and exits); twice. Meanwhile two tasks create pods in an injected namespace, one
/// every 100 ms each: none is refused, and each is stored with its sidecar.
///
/// Why 0 is the bound (the measurement above gives the API server's side): the API server
/// dials only addresses in the Endpoints, and the replica being deleted leaves them at once,
/// so new connections go to the others. But it keeps sending requests on the connections it
/// already holds to that replica, whatever the Endpoints say: measured here before revhook
/// answered them with `Connection: close` once shutting down, a replica served 156 and 170
/// requests over its 5 s delay after leaving the Endpoints, and the drain then closed those
/// connections under a live stream, where a request written in the instant before the API
/// server reads the close fails and is not retried. Now each such connection carries one
/// more request, answered with `Connection: close`, and the API server dials anew (1 to 4
/// requests measured per replica). What the drain still closes are connections that carried
/// nothing for the whole delay; the API server takes its most recently used idle connection
/// first, so under this stream (two at a time) it never picks one. A burst needing more
/// connections at once than it used in the last 5 s, at the instant of the drain, is the one
/// loss left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_two_replicas_loses_no_pod_creation() {
    let tls = revhook_tls();
    let Some(cp) = ControlPlane::start(Options::default()).await else {
        return;
    };
    let client = cp.client().await;
    let (Some(a), Some(b), Some(c)) = (NetNs::create(), NetNs::create(), NetNs::create()) else {
        return;
    };
    objects::apply_all(&client, &objects::revhook_namespace_and_service()).await;
    objects::apply_all(&client, &objects::istio_fixture_in("istio-system")).await;
    objects::apply_all(&client, &web::shop_without_deployment()).await;
    objects::apply_all(
        &client,
        &objects::shipped_webhooks(objects::service_client_config(&tls.ca_bundle())),
    )
    .await;
    let delay = seconds(&shipped_flag("shutdown-delay"));
    let drain = seconds(&shipped_flag("drain-timeout"));
    let controller = EndpointsController::start(client.clone(), shipped_probe());
    let pod_of = |ns: &NetNs, name: &str| {
        let kubeconfig = cp.kubeconfig_in(ns, name);
        let replica = start_replica(&cp, ns, &kubeconfig, name, &tls, &[]);
        controller.add(ns.inner_ip, replica.revhook.admin);
        replica
    };

    // The first replica alone until the API server calls it (the barrier reads its log),
    // then the second.
    let mut old_a = pod_of(&a, "revhook-a");
    controller.wait_ready(a.inner_ip).await;
    old_a.revhook.wait_for_api_server_calls(&client).await;
    let old_b = pod_of(&b, "revhook-b");
    controller.wait_ready(b.inner_ip).await;

    let stream = PodStream::start(&client, 2, Duration::from_millis(100));
    // Long enough for the API server to keep connections to both replicas.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let mut shutdowns = Vec::new();
    let mut new_replicas = Vec::new();
    for (old, old_ns, new_ns, new_name) in
        [(old_a, &a, &c, "revhook-c"), (old_b, &b, &a, "revhook-a2")]
    {
        // maxSurge 1: the new pod first, ready and in the Endpoints.
        let new = pod_of(new_ns, new_name);
        controller.wait_ready(new_ns.inner_ip).await;
        // maxUnavailable 0: only then is an old one deleted.
        let mut old = old;
        let t0 = Instant::now();
        controller.terminate(old_ns.inner_ip);
        old.revhook.proc.terminate();
        let status = old
            .revhook
            .proc
            .wait_exit(delay + drain + Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{} still runs after its grace period", old.name));
        let took = t0.elapsed();
        controller.forget(old_ns.inner_ip);
        assert!(status.success(), "{} exited {status}", old.name);
        assert!(
            took >= delay,
            "{}: the shutdown delay is kept ({took:?})",
            old.name
        );
        let log = old.revhook.proc.log_text();
        assert!(log.contains("shutdown complete"), "{log}");
        shutdowns.push((old.name.clone(), took, served_while_leaving(&log)));
        new_replicas.push(new);
    }
    let rolled = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let results = stream.finish().await;
    controller.stop();

    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let timeline = controller.written.lock().expect("written").clone();
    eprintln!(
        "rolling restart in {rolled:?}: {} pods created, {} refused; replicas shut down (name, \
         SIGTERM to exit, requests served after leaving the Endpoints): {shutdowns:?}; \
         Endpoints written (time, ready): {timeline:?}",
        results.len() - failed.len(),
        failed.len()
    );
    assert!(
        results.len() >= 20,
        "a stream, not a trickle: {}",
        results.len()
    );
    // One more request per kept-alive connection (a handful), not the delay's whole traffic.
    for (name, _, served) in &shutdowns {
        assert!(
            *served < 20,
            "{name} served {served} requests after leaving the Endpoints: its kept-alive \
             connections were not retired"
        );
    }
    assert!(
        failed.is_empty(),
        "refused during the rolling restart: {failed:#?}"
    );
    for image in results.iter().flatten() {
        assert_eq!(
            image.as_deref(),
            Some(ASM_1_22_PROXY),
            "stored with its sidecar"
        );
    }
    for mut replica in new_replicas {
        replica.revhook.proc.assert_running();
    }
}
