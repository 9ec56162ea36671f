use super::metadata::append_multus_network;
use super::*;
use crate::core::verdict::Decision;
use crate::sources::config;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

fn snapshot() -> Snapshot {
    config::parse(
        r#"
revisions:
  - { name: asm-1-22, image: "example/proxyv2:1.22.0" }
  - { name: asm-1-23, image: "example/proxyv2:1.23.0" }
  - { name: native, image: "example/proxyv2:1.24.0", nativeSidecar: true, cni: true }
tags: { default: asm-1-22, prod-stable: asm-1-22, prod-canary: asm-1-23 }
namespaces:
  shop: { istio.io/rev: prod-stable }
  canary: { istio.io/rev: prod-canary }
  native: { istio.io/rev: native }
"#,
        "test",
    )
    .expect("config")
}

/// Runs a pod through `review_pod` and applies the patch, returning the verdict and the pod.
fn inject(pod: &Value, ns: &str) -> (Verdict, Value) {
    let raw = pod.to_string();
    let parsed = PodIn::parse(&raw).expect("pod");
    let verdict = review_pod(
        &Target::pod(&parsed, &raw, ns),
        &snapshot(),
        &Policy::default(),
    );
    let mut out = pod.clone();
    if let Some(p) = &verdict.patch {
        let ops: json_patch::Patch = serde_json::from_str(p).expect("patch is JSON Patch");
        json_patch::patch(&mut out, &ops).expect("patch applies");
    }
    (verdict, out)
}

fn names(v: &Value, array: &str) -> Vec<String> {
    v["spec"][array]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["name"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn deployment_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "generateName": "web-7d4b9c-",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c", "uid": "1", "controller": true}]
        },
        "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 8080, "name": "http"}]}]}
    })
}

#[test]
fn injects_a_valid_pod_with_the_revision_of_the_tag() {
    let (v, out) = inject(&deployment_pod(), "shop");
    assert!(v.allowed);
    assert_eq!(v.decision, Decision::Inject("asm-1-22".into()));
    let pod: Pod = serde_json::from_value(out.clone()).expect("valid Pod");
    let spec = pod.spec.expect("spec");
    assert_eq!(spec.containers.len(), 2);
    assert_eq!(
        spec.containers[1].image.as_deref(),
        Some("example/proxyv2:1.22.0")
    );
    assert_eq!(names(&out, "initContainers"), vec!["istio-init"]);
    assert_eq!(names(&out, "volumes").len(), 8);
    let ann = &out["metadata"]["annotations"];
    assert_eq!(ann["istio.io/rev"], "asm-1-22");
    let status: Value =
        serde_json::from_str(ann["sidecar.istio.io/status"].as_str().expect("status"))
            .expect("json");
    assert_eq!(
        status["revision"], "asm-1-22",
        "the status names the revision, never the tag"
    );
    assert_eq!(ann["kubectl.kubernetes.io/default-container"], "web");
    assert_eq!(ann["prometheus.io/port"], "15020");
    let labels = &out["metadata"]["labels"];
    assert_eq!(labels["security.istio.io/tlsMode"], "istio");
    assert_eq!(labels["service.istio.io/canonical-name"], "web");
    assert_eq!(labels["service.istio.io/canonical-revision"], "latest");
    let env = &out["spec"]["containers"][1]["env"];
    let get = |n: &str| {
        env.as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == n))
            .map(|e| e["value"].clone())
    };
    assert_eq!(get("ISTIO_META_WORKLOAD_NAME"), Some(json!("web")));
    assert_eq!(
        get("ISTIO_META_OWNER"),
        Some(json!(
            "kubernetes://apis/apps/v1/namespaces/shop/deployments/web"
        ))
    );
    assert_eq!(get("ISTIO_META_APP_CONTAINERS"), Some(json!("web")));
    assert_eq!(
        get("ISTIO_META_POD_PORTS"),
        Some(json!(r#"[{"name":"http","containerPort":8080}]"#))
    );
    assert_eq!(
        get("CA_ADDR"),
        Some(json!("istiod-asm-1-22.istio-system.svc:15012"))
    );
}

#[test]
fn second_pass_is_a_no_op() {
    let (_, once) = inject(&deployment_pod(), "shop");
    let (v, twice) = inject(&once, "shop");
    assert_eq!(v.decision, Decision::Skip(Skip::AlreadyInjected));
    assert!(v.patch.is_none());
    assert_eq!(once, twice);
}

#[test]
fn reinjection_for_another_revision_replaces_the_old_sidecar() {
    let (_, old) = inject(&deployment_pod(), "shop");
    let (v, new) = inject(&old, "canary");
    assert_eq!(v.decision, Decision::Inject("asm-1-23".into()));
    assert_eq!(names(&new, "containers"), vec!["web", "istio-proxy"]);
    assert_eq!(names(&new, "initContainers"), vec!["istio-init"]);
    assert_eq!(names(&new, "volumes").len(), 8);
    assert_eq!(
        new["spec"]["containers"][1]["image"],
        "example/proxyv2:1.23.0"
    );
    serde_json::from_value::<Pod>(new).expect("valid Pod");
}

#[test]
fn existing_init_containers_volumes_and_maps_are_kept() {
    let pod = json!({
        "metadata": {"name": "p", "labels": {"a/b~c": "x"}, "annotations": {"kubectl.kubernetes.io/default-container": "side"}},
        "spec": {
            "initContainers": [{"name": "migrate", "image": "m"}],
            "containers": [{"name": "app", "image": "a"}, {"name": "side", "image": "s"}],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "istio-envoy", "emptyDir": {}}]
        }
    });
    let (_, out) = inject(&pod, "shop");
    // As istiod does (its multi-init golden case): the pod's own init containers run first.
    assert_eq!(names(&out, "initContainers"), vec!["migrate", "istio-init"]);
    assert_eq!(
        names(&out, "containers"),
        vec!["app", "side", "istio-proxy"]
    );
    let vols = names(&out, "volumes");
    assert_eq!(
        vols.iter().filter(|n| *n == "istio-envoy").count(),
        1,
        "{vols:?}"
    );
    assert_eq!(vols.len(), 9);
    assert_eq!(out["metadata"]["labels"]["a/b~c"], "x");
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"],
        "side"
    );
    assert_eq!(
        out["metadata"]["labels"]["service.istio.io/canonical-name"],
        "p"
    );
}

#[test]
fn pod_without_metadata_maps_gets_them_created() {
    let pod = json!({"spec": {"containers": [{"name": "app", "image": "a"}]}});
    let (_, out) = inject(&pod, "shop");
    assert_eq!(
        out["metadata"]["labels"]["security.istio.io/tlsMode"],
        "istio"
    );
    assert_eq!(out["metadata"]["annotations"]["istio.io/rev"], "asm-1-22");
}

#[test]
fn apps_own_prometheus_annotations_move_to_the_agent() {
    let pod = json!({
        "metadata": {"name": "p", "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}},
        "spec": {"containers": [{"name": "app"}]}
    });
    let (_, out) = inject(&pod, "shop");
    assert_eq!(
        out["metadata"]["annotations"]["prometheus.io/port"],
        "15020"
    );
    let env = out["spec"]["containers"][1]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let prom = env
        .iter()
        .find(|e| e["name"] == "ISTIO_PROMETHEUS_ANNOTATIONS")
        .expect("env");
    assert_eq!(prom["value"], r#"{"port":"9090","scrape":"true"}"#);

    let opted_out = json!({
        "metadata": {"name": "p", "annotations": {"prometheus.io/scrape": "false"}},
        "spec": {"containers": [{"name": "app"}]}
    });
    let (_, out) = inject(&opted_out, "shop");
    assert_eq!(
        out["metadata"]["annotations"]["prometheus.io/scrape"],
        "false"
    );
}

#[test]
fn custom_istio_proxy_container_overrides_the_generated_one() {
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [
            {"name": "app"},
            {"name": "istio-proxy", "image": "auto", "resources": {"requests": {"cpu": "10m"}},
             "env": [{"name": "TRUST_DOMAIN", "value": "custom"}, {"name": "EXTRA", "value": "1"}]}
        ]}
    });
    let (_, out) = inject(&pod, "shop");
    assert_eq!(names(&out, "containers"), vec!["app", "istio-proxy"]);
    let proxy = &out["spec"]["containers"][1];
    assert_eq!(proxy["image"], "example/proxyv2:1.22.0");
    assert_eq!(proxy["resources"], json!({"requests": {"cpu": "10m"}}));
    let env = proxy["env"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        env.iter().filter(|e| e["name"] == "TRUST_DOMAIN").count(),
        1
    );
    assert!(env
        .iter()
        .any(|e| e["name"] == "TRUST_DOMAIN" && e["value"] == "custom"));
    assert!(env.iter().any(|e| e["name"] == "EXTRA"));
    assert!(env.iter().any(|e| e["name"] == "CA_ADDR"));
}

#[test]
fn native_sidecar_revision_puts_proxy_in_init_containers() {
    let (v, out) = inject(&deployment_pod(), "native");
    assert_eq!(v.decision, Decision::Inject("native".into()));
    assert_eq!(
        names(&out, "initContainers"),
        vec!["istio-validation", "istio-proxy"]
    );
    assert_eq!(names(&out, "containers"), vec!["web"]);
    assert_eq!(out["spec"]["initContainers"][1]["restartPolicy"], "Always");
    serde_json::from_value::<Pod>(out).expect("valid Pod");
}

#[test]
fn native_sidecar_revision_moves_a_custom_proxy_container_into_init_containers() {
    let mut pod = deployment_pod();
    pod["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(json!({"name": "istio-proxy", "image": "auto",
            "resources": {"limits": {"memory": "1Gi"}}}));
    let (v, out) = inject(&pod, "native");
    assert_eq!(v.decision, Decision::Inject("native".into()));
    assert_eq!(names(&out, "containers"), vec!["web"]);
    assert_eq!(
        names(&out, "initContainers"),
        vec!["istio-validation", "istio-proxy"]
    );
    let proxy = &out["spec"]["initContainers"][1];
    assert_eq!(proxy["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(proxy["image"], "example/proxyv2:1.24.0");
    assert_eq!(proxy["restartPolicy"], "Always");
    serde_json::from_value::<Pod>(out).expect("valid Pod");
}

#[test]
fn stale_namespace_is_denied_with_message_and_allow_uninjected_warns() {
    let mut snap = snapshot();
    snap.namespaces.insert(
        "old",
        NamespaceLabels {
            injection: None,
            rev: Some("asm-1-20".into()),
        },
    );
    let raw = deployment_pod().to_string();
    let pod = PodIn::parse(&raw).expect("pod");
    let v = review_pod(&Target::pod(&pod, &raw, "old"), &snap, &Policy::default());
    assert!(!v.allowed);
    let status = v.status.expect("status");
    assert_eq!(status.code, 403);
    assert!(status
        .message
        .contains("namespace \"old\" selects revision \"asm-1-20\", which is not installed"));
    assert!(status
        .message
        .contains("kubectl label namespace old istio.io/rev=asm-1-22 --overwrite"));

    let allow = Policy {
        on_stale: OnStale::AllowUninjected,
        ..Policy::default()
    };
    let v = review_pod(&Target::pod(&pod, &raw, "old"), &snap, &allow);
    assert!(v.allowed && v.patch.is_none());
    assert!(v.warnings.iter().all(|w| w.chars().count() <= 120));
    assert!(v.warnings.join(" ").contains("WITHOUT a sidecar"));
}

#[test]
fn guard_mode_allows_without_patch() {
    let raw = deployment_pod().to_string();
    let pod = PodIn::parse(&raw).expect("pod");
    let guard = Policy {
        mode: Mode::Guard,
        ..Policy::default()
    };
    let v = review_pod(&Target::pod(&pod, &raw, "shop"), &snapshot(), &guard);
    assert!(v.allowed && v.patch.is_none());
    assert_eq!(v.decision, Decision::Guard("asm-1-22".into()));
}

#[test]
fn workload_names_follow_owner_references() {
    let pod = |owner: Value, labels: Value| json!({"metadata": {"name": "x-1", "labels": labels, "ownerReferences": [owner]}, "spec": {"containers": []}});
    let cases = [
        (
            pod(
                json!({"apiVersion":"batch/v1","kind":"Job","name":"report-28934560","controller":true}),
                json!({}),
            ),
            "report",
            "kubernetes://apis/batch/v1/namespaces/ns/cronjobs/report",
        ),
        (
            pod(
                json!({"apiVersion":"batch/v1","kind":"Job","name":"once","controller":true}),
                json!({}),
            ),
            "once",
            "kubernetes://apis/batch/v1/namespaces/ns/jobs/once",
        ),
        (
            pod(
                json!({"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","controller":true}),
                json!({}),
            ),
            "db",
            "kubernetes://apis/apps/v1/namespaces/ns/statefulsets/db",
        ),
        (
            pod(
                json!({"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","controller":true}),
                json!({}),
            ),
            "rs",
            "kubernetes://apis/apps/v1/namespaces/ns/replicasets/rs",
        ),
    ];
    for (p, name, owner) in cases {
        let raw = p.to_string();
        let parsed = PodIn::parse(&raw).expect("pod");
        let w = Workload::of_pod(&parsed, "ns");
        assert_eq!((w.name.as_str(), w.owner.as_str()), (name, owner));
    }
}

#[test]
fn non_pods_and_updates_are_allowed_untouched() {
    let body = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1",
        "kind":{"group":"","version":"v1","kind":"Pod"},"operation":"UPDATE","namespace":"shop","object":{"spec":{"containers":[]}}}}"#;
    let req = crate::admission::decode(body.as_bytes()).expect("review");
    let v = review(&req, &snapshot(), &Policy::default(), None);
    assert!(v.allowed && v.patch.is_none());
    let body = body
        .replace("\"UPDATE\"", "\"CREATE\"")
        .replace("\"kind\":\"Pod\"", "\"kind\":\"Service\"");
    let req = crate::admission::decode(body.as_bytes()).expect("review");
    assert_eq!(
        review(&req, &snapshot(), &Policy::default(), None).decision,
        Decision::Skip(Skip::NotAPod)
    );
}

#[test]
fn malformed_pod_object_gets_a_clear_denial() {
    let body = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1",
        "kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"shop","object":{"spec":{"containers":"nope"}}}}"#;
    let req = crate::admission::decode(body.as_bytes()).expect("review");
    let v = review(&req, &snapshot(), &Policy::default(), None);
    assert!(!v.allowed);
    let status = v.status.expect("status");
    assert_eq!(status.code, 400);
    assert!(
        status.message.contains("not a valid Pod"),
        "{}",
        status.message
    );
}

#[test]
fn multus_cni_revisions_add_the_istio_cni_network_in_the_existing_form() {
    assert_eq!(append_multus_network(None), "default/istio-cni");
    assert_eq!(
        append_multus_network(Some("alt_cni")),
        "alt_cni, default/istio-cni"
    );
    assert_eq!(
        append_multus_network(Some(r#"[{"name": "alt_cni"}]"#)),
        r#"[{"name": "alt_cni"}, {"name": "default/istio-cni"}]"#
    );
    assert_eq!(
        append_multus_network(Some("default/istio-cni")),
        "default/istio-cni"
    );
    let snap = config::parse(
        "revisions:\n  - {name: m, image: i, cni: true, cniProvider: multus}\nnamespaces:\n  shop: {istio.io/rev: m}\n",
        "t",
    )
    .expect("config");
    let pod = json!({"metadata": {"name": "p", "annotations": {"k8s.v1.cni.cncf.io/networks": "alt_cni"}}, "spec": {"containers": [{"name": "a"}]}});
    let raw = pod.to_string();
    let parsed = PodIn::parse(&raw).expect("pod");
    let v = review_pod(
        &Target::pod(&parsed, &raw, "shop"),
        &snap,
        &Policy::default(),
    );
    let ops: json_patch::Patch = serde_json::from_str(&v.patch.expect("patch")).expect("patch");
    let mut out = pod.clone();
    json_patch::patch(&mut out, &ops).expect("applies");
    assert_eq!(
        out["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"],
        "alt_cni, default/istio-cni"
    );
    assert_eq!(names(&out, "initContainers"), vec!["istio-validation"]);
}

#[test]
fn metadata_larger_than_kubernetes_allows_is_refused_before_any_rule_runs() {
    // A 3 MB stale istio.io/rev used to take seconds and return 25,003 warnings.
    let mut pod = deployment_pod();
    pod["metadata"]["labels"]["istio.io/rev"] = json!("x".repeat(3_000_000));
    let (v, _) = inject(&pod, "shop");
    assert_eq!(
        v.decision,
        Decision::Fail(crate::core::verdict::Failure::Oversized)
    );
    let status = v.status.expect("status");
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("label istio.io/rev has a value of 3000000 bytes"),
        "{}",
        status.message
    );
    assert!(v.warnings.len() <= crate::core::verdict::MAX_WARNINGS);
}

#[test]
fn reinjection_removes_every_listed_container_at_any_count() {
    let mut pod = deployment_pod();
    let old: Vec<String> = (0..3_000).map(|i| format!("old-{i}")).collect();
    let status =
        json!({"revision": "asm-1-23", "containers": old, "initContainers": [], "volumes": []});
    pod["metadata"]["annotations"] = json!({"sidecar.istio.io/status": status.to_string()});
    let containers = pod["spec"]["containers"]
        .as_array_mut()
        .expect("containers");
    containers.extend(old.iter().map(|n| json!({"name": n, "image": "i"})));
    let (v, out) = inject(&pod, "shop");
    assert_eq!(v.decision, Decision::Inject("asm-1-22".into()));
    let left = names(&out, "containers");
    assert!(
        left.iter().all(|n| !n.starts_with("old-")),
        "{}",
        left.len()
    );
    assert!(left.contains(&"istio-proxy".to_owned()), "{left:?}");
}
