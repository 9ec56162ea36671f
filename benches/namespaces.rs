//! What many namespaces cost (#15 item 8): memory and the work of one label change.
//!
//! 1. Memory. `revhook serve --source cluster` (the built binary, or `REVHOOK_BIN`) against a
//!    fake API server on loopback that lists N namespaces page by page, as kube-apiserver does
//!    (500 a page), each with the metadata a real one carries (labels, a last-applied
//!    annotation, managed fields: about 1 KB of JSON). Once revhook is ready, its resident set
//!    (VmRSS) and peak (VmHWM) are read from /proc; the cost per namespace is the difference
//!    from N = 0. N is `REVHOOK_BENCH_NAMESPACES` (comma-separated; default 0,10000,100000).
//! 2. One change (criterion), at 10,000 and 100,000 namespaces: a namespace label change (an
//!    O(log n) insert into the persistent map and a snapshot sharing the revisions), and a
//!    revision change (the revision part rebuilt from the objects, the namespaces attached as
//!    they are). Before, either change rebuilt the whole snapshot, namespaces included.
//!
//! `cargo bench --bench namespaces`; `REVHOOK_BENCH_SKIP_RSS=1` runs only the criterion part.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::ConfigMap;
use revhook::core::labels::NamespaceLabels;
use revhook::core::mapping;
use revhook::core::namespaces::Namespaces;
use revhook::core::revisions::MeshSettings;
use revhook::sources::SharedSnapshot;
use serde_json::{json, Value};

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The injector ConfigMaps of the AKS fixture: two revisions, as in a cluster mid-upgrade.
fn istio_configmaps() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kube/aks-istio.yaml");
    let text = std::fs::read_to_string(&path).expect("fixture");
    revhook::core::yaml::documents(&text)
        .expect("fixture YAML")
        .into_iter()
        .filter(|v| v["kind"] == "ConfigMap")
        .map(|mut v| {
            v["metadata"]["namespace"] = json!("istio-system");
            v
        })
        .collect()
}

/// Namespace `i` as the API server returns its metadata: the label revhook reads among
/// others, a last-applied annotation and the managed fields.
fn namespace_metadata(i: usize) -> Value {
    let name = format!("team-{i:06}");
    let rev = ["asm-1-22", "asm-1-23", "prod-stable"][i % 3];
    let applied = format!(
        r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"annotations":{{}},"labels":{{"istio.io/rev":"{rev}","team":"team-{}","cost-center":"cc-{}"}},"name":"{name}"}}}}"#,
        i % 97,
        i % 1013
    );
    json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {
            "name": name,
            "uid": format!("6f1c2a4e-{:04x}-4b7d-9a1e-{i:012x}", i % 65536),
            "resourceVersion": format!("{}", 100_000 + i),
            "creationTimestamp": "2025-03-01T10:00:00Z",
            "labels": {
                "kubernetes.io/metadata.name": name,
                "istio.io/rev": rev,
                "team": format!("team-{}", i % 97),
                "cost-center": format!("cc-{}", i % 1013)
            },
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied},
            "managedFields": [{
                "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
                "time": "2025-03-01T10:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {
                    "f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                    "f:labels": {".": {}, "f:cost-center": {}, "f:istio.io/rev": {}, "f:kubernetes.io/metadata.name": {}, "f:team": {}}
                }}
            }]
        }
    })
}

fn json_response(v: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    r
}

fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// One page of namespaces, generated on the fly (the fake holds nothing per namespace).
fn namespace_page(total: usize, query: &str) -> Value {
    let start: usize = query_value(query, "continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit: usize = query_value(query, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(total.max(1));
    let end = total.min(start + limit);
    let items: Vec<Value> = (start..end).map(namespace_metadata).collect();
    let mut meta = json!({"resourceVersion": "1"});
    if end < total {
        meta["continue"] = json!(end.to_string());
    }
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": meta, "items": items})
}

/// The fake API server: namespaces, Istio's ConfigMaps, and an empty list of anything else;
/// watches stay open and quiet.
async fn serve_api(
    total: usize,
    configmaps: std::sync::Arc<Vec<Value>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    if query.contains("watch=true") || query.contains("watch=1") {
        let quiet = futures::stream::pending::<Result<Frame<Bytes>, Infallible>>();
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(quiet))));
    }
    let body = if path == "/api/v1/namespaces" {
        namespace_page(total, &query)
    } else if path.ends_with("/configmaps") {
        json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "1"}, "items": *configmaps})
    } else {
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": []})
    };
    Ok(json_response(&body))
}

/// Starts the fake API server on a loopback port in a runtime of its own thread.
fn start_fake_api(total: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let configmaps = std::sync::Arc::new(istio_configmaps());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let configmaps = configmaps.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        serve_api(total, configmaps.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn revhook_binary() -> PathBuf {
    std::env::var_os("REVHOOK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_revhook")))
}

/// revhook's memory once it has listed `total` namespaces: (ready after, VmRSS, VmHWM).
fn measure(total: usize, certs: &Path) -> (Duration, u64, u64) {
    let api = start_fake_api(total);
    let admin = free_addr();
    let started = Instant::now();
    let child = Command::new(revhook_binary())
        .args([
            "serve",
            &format!("--listen={}", free_addr()),
            &format!("--admin-listen={admin}"),
            &format!("--tls-cert={}", certs.join("tls.crt").display()),
            &format!("--tls-key={}", certs.join("tls.key").display()),
            "--source=cluster",
            "--istio-namespace=istio-system",
            &format!("--kube-api-url=http://{api}"),
        ])
        .env("RUST_LOG", "warn")
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start revhook");
    let mut child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(300);
    while http_status(admin, "/readyz") != Some(200) {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("revhook exited: {status}");
        }
        assert!(Instant::now() < deadline, "revhook never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready = started.elapsed();
    // Let the rebuild after the first sync and any freeing settle.
    std::thread::sleep(Duration::from_secs(2));
    let (rss, hwm) = memory_kib(child.0.id());
    (ready, rss, hwm)
}

fn memory_report() {
    let counts: Vec<usize> = std::env::var("REVHOOK_BENCH_NAMESPACES")
        .unwrap_or_else(|_| "0,10000,100000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    revhook::tls::generate_dev(&["localhost".to_owned()], &[], 2, 2)
        .expect("certs")
        .write(dir.path())
        .expect("write certs");
    println!("revhook: {}", revhook_binary().display());
    println!(
        "{:>10} {:>10} {:>12} {:>12} {:>14}",
        "namespaces", "ready", "VmRSS MiB", "VmHWM MiB", "bytes/ns (RSS)"
    );
    let mut base = None;
    for total in counts {
        let (ready, rss, hwm) = measure(total, dir.path());
        let base_rss = *base.get_or_insert(rss);
        let per_ns = if total == 0 {
            "-".to_owned()
        } else {
            format!("{}", (rss.saturating_sub(base_rss) * 1024) / total as u64)
        };
        println!(
            "{total:>10} {:>9.2}s {:>12.1} {:>12.1} {per_ns:>14}",
            ready.as_secs_f64(),
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }
}

fn labels(rev: &str) -> NamespaceLabels {
    NamespaceLabels {
        injection: None,
        rev: Some(rev.to_owned()),
    }
}

fn label_change(c: &mut Criterion) {
    let configmaps: Vec<ConfigMap> = istio_configmaps()
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("ConfigMap"))
        .collect();
    let webhooks: Vec<MutatingWebhookConfiguration> = Vec::new();
    let mut group = c.benchmark_group("cluster_change");
    for total in [10_000usize, 100_000] {
        let map: HashMap<String, NamespaceLabels> = (0..total)
            .map(|i| (format!("team-{i:06}"), labels("asm-1-22")))
            .collect();
        let (snapshot, _) = mapping::snapshot_from_parts(
            &configmaps,
            &webhooks,
            map.clone(),
            MeshSettings::default(),
            "bench",
        );
        let shared = SharedSnapshot::new(snapshot);
        let mut namespaces: Namespaces = map.into();
        let mut flip = false;
        group.bench_with_input(BenchmarkId::new("publish", total), &total, |b, _| {
            b.iter(|| {
                flip = !flip;
                let rev = if flip { "asm-1-23" } else { "asm-1-22" };
                namespaces.insert("team-000042", labels(rev));
                let next = shared.load().with_namespaces(namespaces.clone());
                shared.store(next);
            })
        });
        group.bench_with_input(BenchmarkId::new("revisions", total), &total, |b, _| {
            b.iter(|| {
                let (mut next, _) = mapping::snapshot_from_parts(
                    &configmaps,
                    &webhooks,
                    HashMap::new(),
                    MeshSettings::default(),
                    "bench",
                );
                next.namespaces = namespaces.clone();
                shared.store(next);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, label_change);

fn main() {
    if std::env::var_os("REVHOOK_BENCH_SKIP_RSS").is_none() {
        memory_report();
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
