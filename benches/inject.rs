//! The per-request hot path: AdmissionReview bytes in → response bytes out, through the
//! revision's own injection templates (Istio's stock templates by default, see
//! `support::config_path`), for pods of about 2, 8, 32 and 64 KiB (the shapes the Istio
//! oracle's side-by-side bench sends, byte for byte), one with override annotations, the load
//! mix one request at a time, hostile shapes, and the server's judging hand-off.
//!
//! Run: `cargo bench --bench inject` (`REVHOOK_BENCH_TEMPLATES=embedded` for revhook's own
//! template; the stock ConfigMaps come from `target/tools/bin/istio-oracle`).

mod support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use revhook::core::policy::Policy;
use revhook::core::snapshot::Snapshot;
use revhook::handler::{handle, Webhook};
use serde_json::{json, Value};

fn snapshot() -> Snapshot {
    support::fixture_snapshot()
}

/// A Deployment's pod as the ReplicaSet controller creates it, with `containers` containers of
/// `env` variables each and a `last-applied` annotation of `annotation_bytes`.
fn review(
    containers: usize,
    env: usize,
    annotation_bytes: usize,
    managed_fields: usize,
) -> Vec<u8> {
    let containers: Vec<Value> = (0..containers)
        .map(|c| {
            json!({
                "name": format!("app-{c}"),
                "image": format!("registry.example.com/shop/app-{c}:2.4.1"),
                "ports": [{"name": "http", "containerPort": 8080 + c, "protocol": "TCP"}],
                "env": (0..env).map(|i| json!({"name": format!("SETTING_{i}"), "value": format!("value-{i}-{}", "x".repeat(i % 24))})).collect::<Vec<_>>(),
                "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080 + c}, "periodSeconds": 5},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
                "terminationMessagePath": "/dev/termination-log",
                "imagePullPolicy": "IfNotPresent"
            })
        })
        .collect();
    let managed: Vec<Value> = (0..managed_fields)
        .map(|i| json!({"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
            "time": "2026-11-24T10:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:containers": {format!("k:{{\"name\":\"app-{i}\"}}"): {".": {}}}}}}))
        .collect();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "4b6c9a43-2f0e-4d7b-9d3e-1f5c2a7e8b01",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "generateName": "checkout-6f7d9c8b5-", "namespace": "shop",
                    "labels": {"app": "checkout", "version": "v2", "pod-template-hash": "6f7d9c8b5"},
                    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"a\":\"".to_owned() + &"b".repeat(annotation_bytes) + "\"}"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-6f7d9c8b5", "uid": "0e5a1f3c", "controller": true, "blockOwnerDeletion": true}],
                    "managedFields": managed
                },
                "spec": {
                    "serviceAccountName": "checkout",
                    "containers": containers,
                    "volumes": [{"name": "config", "configMap": {"name": "checkout-config"}}],
                    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "terminationGracePeriodSeconds": 30
                },
                "status": {}
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    });
    serde_json::to_vec(&review).expect("json")
}

/// The typical pod with override annotations and app probes to rewrite: the slower path
/// (fields re-rendered per pod) must stay within the targets too.
fn annotated(body: &[u8]) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(body).expect("review");
    let object = &mut review["request"]["object"];
    let annotations = object["metadata"]["annotations"]
        .as_object_mut()
        .expect("annotations");
    for (k, v) in [
        ("sidecar.istio.io/proxyCPU", "250m"),
        ("sidecar.istio.io/proxyMemoryLimit", "512Mi"),
        ("sidecar.istio.io/logLevel", "debug"),
        (
            "traffic.sidecar.istio.io/excludeOutboundIPRanges",
            "10.96.0.1/32",
        ),
        ("traffic.sidecar.istio.io/excludeInboundPorts", "9091"),
        (
            "proxy.istio.io/config",
            "holdApplicationUntilProxyStarts: true\nconcurrency: 2",
        ),
        ("prometheus.io/scrape", "true"),
        ("prometheus.io/port", "9102"),
    ] {
        annotations.insert(k.to_owned(), json!(v));
    }
    for c in object["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
    {
        c["livenessProbe"] =
            json!({"httpGet": {"path": "/live", "port": "http"}, "timeoutSeconds": 2});
    }
    serde_json::to_vec(&review).expect("json")
}

/// The side-by-side sizes: (label, containers, env per container, annotation bytes, managed
/// fields), as `tests/istio-oracle/bench.go` builds them.
const SIZES: [(&str, usize, usize, usize, usize); 4] = [
    ("2KiB", 1, 6, 500, 1),
    ("8KiB", 2, 24, 3600, 3),
    ("32KiB", 6, 70, 5500, 5),
    ("64KiB", 12, 70, 11000, 10),
];

fn bench(c: &mut Criterion) {
    let snapshot = snapshot();
    let policy = Policy::default();
    println!("inject: {}", support::templates_label());
    let mut group = c.benchmark_group("inject");
    let mut cases: Vec<(String, Vec<u8>)> = SIZES
        .iter()
        .map(|&(label, containers, env, annotation, managed)| {
            (
                label.to_owned(),
                review(containers, env, annotation, managed),
            )
        })
        .collect();
    cases.push(("8KiB-annotated".to_owned(), annotated(&cases[1].1)));
    for (label, body) in &cases {
        // Every case must be injected, or its time means nothing.
        let handled = handle(Webhook::Inject, body, &snapshot, &policy).expect("handled");
        assert!(
            handled.verdict.patch.is_some(),
            "{label}: no patch: {:?}",
            handled.verdict.status
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("revhook", label), body, |b, body| {
            b.iter(|| {
                handle(Webhook::Inject, body, &snapshot, &policy)
                    .expect("handled")
                    .body
            })
        });
    }
    group.finish();
}

/// The load benchmark's request mix, one fixture at a time, through the same handler: what
/// revhook's own work costs per request, without the transport. Beside each, `json-scan`: only
/// checking the same bytes as UTF-8 and scanning them with serde_json into `IgnoredAny`, the
/// least any handler built on serde_json can spend on a review.
fn load_mix(c: &mut Criterion) {
    let snapshot = support::fixture_snapshot();
    let policy = Policy::default();
    let mut group = c.benchmark_group("load-mix");
    for request in support::mix(None) {
        let webhook = request.webhook;
        handle(webhook, &request.body, &snapshot, &policy).expect("handled");
        group.bench_with_input(
            BenchmarkId::new("revhook", request.kind),
            &request.body,
            |b, body| {
                b.iter(|| {
                    handle(webhook, body, &snapshot, &policy)
                        .expect("handled")
                        .body
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("json-scan", request.kind),
            &request.body,
            |b, body| {
                b.iter(|| {
                    let text = std::str::from_utf8(body).expect("UTF-8");
                    serde_json::from_str::<serde::de::IgnoredAny>(text).expect("JSON")
                })
            },
        );
    }
    group.finish();
}

/// Hostile shapes over growing sizes: each doubling of the input should about double the time.
/// A quadratic step shows as a 4x jump per row (the red-team run measured 10k env entries of a
/// custom `istio-proxy` at 0.58 s and 40k at 9.7 s before the merge used an index).
fn hostile(c: &mut Criterion) {
    let snapshot = snapshot();
    let policy = Policy::default();
    let mut group = c.benchmark_group("hostile");
    group.sample_size(10);
    for n in [5_000usize, 10_000, 20_000] {
        let custom_env = custom_proxy_env(n);
        group.throughput(Throughput::Bytes(custom_env.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("custom-proxy-env", n),
            &custom_env,
            |b, body| {
                b.iter(|| handle(Webhook::Inject, body, &snapshot, &policy).expect("handled"))
            },
        );
        let reinjected = reinjected_with_listed_containers(n);
        group.throughput(Throughput::Bytes(reinjected.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("reinject-status-list", n),
            &reinjected,
            |b, body| {
                b.iter(|| handle(Webhook::Inject, body, &snapshot, &policy).expect("handled"))
            },
        );
    }
    // A `proxy.istio.io/config` annotation in YAML up to the annotations' 256 KiB: nested
    // maps or sequences (quadratic in libyaml, which serde_yaml ran) are refused at goyaml's
    // depth limit, so their cost stops growing; a flat map is read whole, linearly.
    for kib in [32usize, 64, 128, 240] {
        for (shape, unit) in [
            ("nested-maps", "{a: "),
            ("nested-lists", "["),
            ("flat-map", ""),
        ] {
            let body = proxy_config_yaml(shape, unit, kib * 1024);
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("proxy-config-{shape}"), format!("{kib}KiB")),
                &body,
                |b, body| {
                    b.iter(|| handle(Webhook::Inject, body, &snapshot, &policy).expect("handled"))
                },
            );
        }
    }
    group.finish();
}

/// A pod annotated with a `proxy.istio.io/config` of `unit` repeated to `bytes` (a flat map's
/// keys numbered, so each is its own).
fn proxy_config_yaml(shape: &str, unit: &str, bytes: usize) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(&review(1, 1, 10, 0)).expect("json");
    let text = if shape == "flat-map" {
        let mut text = String::with_capacity(bytes);
        for line in (0..).map(|i| format!("k{i}: v\n")) {
            if text.len() + line.len() > bytes {
                break;
            }
            text.push_str(&line);
        }
        text
    } else {
        unit.repeat(bytes / unit.len())
    };
    review["request"]["object"]["metadata"]["annotations"]["proxy.istio.io/config"] = json!(text);
    serde_json::to_vec(&review).expect("json")
}

/// A pod whose own `istio-proxy` carries `n` env entries (Istio's custom injection).
fn custom_proxy_env(n: usize) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(&review(1, 1, 10, 0)).expect("json");
    let env: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("E{i}"), "value": "v"}))
        .collect();
    let containers = review["request"]["object"]["spec"]["containers"]
        .as_array_mut()
        .expect("containers");
    containers.push(json!({"name": "istio-proxy", "image": "auto", "env": env}));
    serde_json::to_vec(&review).expect("json")
}

/// A pod injected for another revision whose status annotation lists `n` containers, all
/// present in the pod (re-injection removes each).
fn reinjected_with_listed_containers(n: usize) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(&review(1, 1, 10, 0)).expect("json");
    let names: Vec<String> = (0..n).map(|i| format!("old-{i}")).collect();
    let status =
        json!({"revision": "asm-1-23", "containers": names, "initContainers": [], "volumes": []});
    let pod = &mut review["request"]["object"];
    pod["metadata"]["annotations"]["sidecar.istio.io/status"] = json!(status.to_string());
    let containers = pod["spec"]["containers"]
        .as_array_mut()
        .expect("containers");
    containers.extend(names.iter().map(|n| json!({"name": n, "image": "i"})));
    serde_json::to_vec(&review).expect("json")
}

/// The server's path for a request in-process, without TLS (routing, body read, judging,
/// metrics, log line): judged inline on the runtime's workers, as before #17, or handed to a
/// judging thread and back. One request at a time (the hand-off's latency), and 64 spawned
/// at once on a 2-worker runtime (what it costs when busy).
fn judging(c: &mut Criterion) {
    use revhook::server::{route, App, Limits};
    use std::sync::Arc;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("judging");
    for (variant, inline_body_limit) in [("inline", usize::MAX), ("threads", 0)] {
        let health = Arc::new(revhook::health::Health::default());
        health.set_synced(true);
        let app = Arc::new(App::new(
            Arc::new(revhook::sources::SharedSnapshot::new(
                support::fixture_snapshot(),
            )),
            Policy::default(),
            revhook::metrics::Metrics::new(),
            health,
            Limits {
                inline_body_limit,
                ..Limits::default()
            },
        ));
        let post = |path: &'static str, body: &bytes::Bytes| {
            hyper::Request::post(format!("{path}?timeout=10s"))
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(body.clone()))
                .expect("request")
        };
        for request in support::mix(Some("inject"))
            .into_iter()
            .chain(support::mix(Some("validate")))
        {
            let body = bytes::Bytes::from(request.body);
            let path = request.path;
            group.bench_function(
                BenchmarkId::new(format!("{variant}/one"), request.kind),
                |b| {
                    b.iter(|| {
                        let (app, req) = (app.clone(), post(path, &body));
                        let task = runtime.spawn(async move { route(&app, req, false).await });
                        runtime.block_on(task).expect("task").status()
                    })
                },
            );
            group.bench_function(
                BenchmarkId::new(format!("{variant}/64-at-once"), request.kind),
                |b| {
                    b.iter(|| {
                        runtime.block_on(async {
                            let tasks: Vec<_> = (0..64)
                                .map(|_| {
                                    let (app, req) = (app.clone(), post(path, &body));
                                    tokio::spawn(async move { route(&app, req, false).await })
                                })
                                .collect();
                            for task in tasks {
                                assert!(task.await.expect("task").status().is_success());
                            }
                        })
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench, load_mix, hostile, judging);
criterion_main!(benches);
