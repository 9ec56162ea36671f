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

/// Injection is idempotent, as istiod's is: an injected pod is injected again (the API
/// server's reinvocation, a copied pod spec) and comes out the same, with an empty patch.
#[test]
fn a_second_pass_injects_again_and_changes_nothing() {
    let (_, once) = inject(&deployment_pod(), "shop");
    let (v, twice) = inject(&once, "shop");
    assert_eq!(v.decision, Decision::Inject("asm-1-22".into()));
    assert_eq!(v.patch, None, "no patch for nothing to change");
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
    // Byte for byte what Istio's injector writes (checked with tests/istio-oracle): every
    // field, in the Go struct's order.
    assert_eq!(
        prom["value"],
        r#"{"scrape":"true","path":"","port":"9090"}"#
    );

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
fn custom_istio_proxy_container_is_merged_over_the_generated_one() {
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [
            {"name": "app"},
            {"name": "istio-proxy", "image": "auto", "resources": {"requests": {"cpu": "10m"}},
             "volumeMounts": [{"name": "extra", "mountPath": "/extra"}],
             "securityContext": {"runAsUser": 1500},
             "env": [{"name": "TRUST_DOMAIN", "value": "custom"}, {"name": "EXTRA", "value": "1"}]}
        ]}
    });
    let (_, out) = inject(&pod, "shop");
    assert_eq!(names(&out, "containers"), vec!["app", "istio-proxy"]);
    let proxy = &out["spec"]["containers"][1];
    assert_eq!(proxy["image"], "example/proxyv2:1.22.0");
    // Strategic merge, as istiod: the pod's fields win, the rest of the sidecar stays.
    assert_eq!(
        proxy["resources"],
        json!({"requests": {"cpu": "10m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}})
    );
    let mounts: Vec<&str> = proxy["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(
        mounts.contains(&"extra") && mounts.contains(&"istio-token"),
        "{mounts:?}"
    );
    assert_eq!(proxy["securityContext"]["runAsUser"], 1500);
    assert_eq!(proxy["securityContext"]["runAsNonRoot"], true);
    let init = &out["spec"]["initContainers"][0];
    let args: Vec<&str> = init["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .collect();
    let u = args.iter().position(|a| *a == "-u").expect("-u");
    assert_eq!(
        args[u + 1],
        "1500",
        "the redirection exempts the proxy's own user"
    );
    let overrides = out["metadata"]["annotations"]["proxy.istio.io/overrides"]
        .as_str()
        .expect("overrides recorded for re-injection");
    assert!(overrides.contains("\"istio-proxy\""), "{overrides}");
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
fn guard_mode_admits_a_pod_its_injector_injected_without_patch() {
    let guard = Policy {
        mode: Mode::Guard,
        ..Policy::default()
    };
    // A proxy container, or one among the init containers (a native sidecar), even without
    // Istio's status annotation.
    let mut sidecar = deployment_pod();
    sidecar["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(json!({"name": "istio-proxy", "image": "proxyv2"}));
    let mut native = deployment_pod();
    native["spec"]["initContainers"] =
        json!([{"name": "istio-proxy", "image": "proxyv2", "restartPolicy": "Always"}]);
    for injected in [sidecar, native] {
        let raw = injected.to_string();
        let pod = PodIn::parse(&raw).expect("pod");
        let v = review_pod(&Target::pod(&pod, &raw, "shop"), &snapshot(), &guard);
        assert!(v.allowed && v.patch.is_none());
        assert_eq!(v.decision, Decision::Guard("asm-1-22".into()));
    }
    let mut annotated = deployment_pod();
    annotated["metadata"]["annotations"] =
        json!({"sidecar.istio.io/status": r#"{"revision":"asm-1-22"}"#});
    let raw = annotated.to_string();
    let pod = PodIn::parse(&raw).expect("pod");
    let v = review_pod(&Target::pod(&pod, &raw, "shop"), &snapshot(), &guard);
    assert!(v.allowed && v.patch.is_none());
    assert_eq!(v.decision, Decision::Skip(Skip::AlreadyInjected));
}

#[test]
fn guard_mode_refuses_a_pod_istio_left_uninjected_or_warns_per_on_stale() {
    let raw = deployment_pod().to_string();
    let pod = PodIn::parse(&raw).expect("pod");
    let guard = Policy {
        mode: Mode::Guard,
        ..Policy::default()
    };
    let v = review_pod(&Target::pod(&pod, &raw, "shop"), &snapshot(), &guard);
    assert!(!v.allowed && v.patch.is_none());
    assert_eq!(
        v.decision,
        Decision::Deny(crate::core::verdict::Deny::Uninjected)
    );
    let status = v.status.expect("status");
    assert_eq!(status.code, 403);
    assert!(
        status.message.starts_with(
            "pod was not injected by Istio: namespace \"shop\" selects istio.io/rev=prod-stable, which gives it to revision \"asm-1-22\""
        ),
        "{}",
        status.message
    );
    let lenient = Policy {
        on_stale: OnStale::AllowUninjected,
        ..guard
    };
    let v = review_pod(&Target::pod(&pod, &raw, "shop"), &snapshot(), &lenient);
    assert!(v.allowed && v.patch.is_none());
    assert_eq!(
        v.decision,
        Decision::Allow(crate::core::verdict::Allow::StaleUninjected)
    );
    assert!(
        v.warnings.join(" ").contains("WITHOUT a sidecar"),
        "{:?}",
        v.warnings
    );
    // A pod Istio's selectors do not give to any revision is none of guard's business.
    let v = review_pod(&Target::pod(&pod, &raw, "plain"), &snapshot(), &guard);
    assert_eq!(v.decision, Decision::Skip(Skip::NotSelected));
}

#[test]
fn non_pods_and_updates_are_allowed_untouched() {
    let body = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1",
        "kind":{"group":"","version":"v1","kind":"Pod"},"operation":"UPDATE","namespace":"shop","object":{"spec":{"containers":[]}}}}"#;
    let req = crate::admission::decode(body.as_bytes()).expect("review");
    let v = review(&req, &snapshot(), &Policy::default(), None, &[]);
    assert!(v.allowed && v.patch.is_none());
    let body = body
        .replace("\"UPDATE\"", "\"CREATE\"")
        .replace("\"kind\":\"Pod\"", "\"kind\":\"Service\"");
    let req = crate::admission::decode(body.as_bytes()).expect("review");
    assert_eq!(
        review(&req, &snapshot(), &Policy::default(), None, &[]).decision,
        Decision::Skip(Skip::NotAPod)
    );
}

#[test]
fn malformed_pod_object_gets_a_clear_denial() {
    let body = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1",
        "kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"shop","object":{"spec":{"containers":"nope"}}}}"#;
    let req = crate::admission::decode(body.as_bytes()).expect("review");
    let v = review(&req, &snapshot(), &Policy::default(), None, &[]);
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

/// istiod renders over the pod with its earlier injection stripped and merges the result into
/// the pod as it came: containers the new templates inject again are replaced, others listed
/// in the old status stay (as in istiod). A status listing thousands stays linear.
#[test]
fn reinjection_renders_over_the_stripped_pod_at_any_count() {
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
    assert_eq!(left.iter().filter(|n| *n == "istio-proxy").count(), 1);
    assert_eq!(left.last().map(String::as_str), Some("istio-proxy"));
    let apps = out["spec"]["containers"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == "istio-proxy"))
        .and_then(|p| p["env"].as_array())
        .and_then(|env| {
            env.iter()
                .find(|e| e["name"] == "ISTIO_META_APP_CONTAINERS")
        })
        .map(|e| e["value"].clone());
    assert_eq!(
        apps,
        Some(json!("web")),
        "the templates saw the stripped pod"
    );
}

#[test]
fn inject_paths_name_the_cluster_and_network() {
    let envs = |p: &str| inject_path_envs(p);
    assert_eq!(
        envs("/inject/cluster/c1/net/n1"),
        [
            ("ISTIO_META_CLUSTER_ID".to_owned(), "c1".to_owned()),
            ("ISTIO_META_NETWORK".to_owned(), "n1".to_owned())
        ]
    );
    assert_eq!(
        envs("/inject/:ENV:cluster=c2:ENV:net=n2"),
        envs("/inject/cluster/c2/net/n2")
    );
    assert!(envs("/inject").is_empty());
    assert!(envs("/inject/unknown/x").is_empty());
    assert!(envs("/validate/cluster/c1").is_empty());
}

#[test]
fn the_paths_cluster_and_network_reach_the_proxy_and_the_pod() {
    let pod = deployment_pod();
    let raw = pod.to_string();
    let parsed = PodIn::parse(&raw).expect("pod");
    let envs = inject_path_envs("/inject/cluster/east/net/net-east");
    let target = Target {
        proxy_envs: &envs,
        ..Target::pod(&parsed, &raw, "shop")
    };
    let v = review_pod(&target, &snapshot(), &Policy::default());
    let ops: json_patch::Patch = serde_json::from_str(&v.patch.expect("patch")).expect("patch");
    let mut out = pod.clone();
    json_patch::patch(&mut out, &ops).expect("applies");
    assert_eq!(
        out["metadata"]["labels"]["topology.istio.io/network"],
        "net-east"
    );
    let env = out["spec"]["containers"][1]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let get = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .map(|e| e["value"].clone())
    };
    assert_eq!(get("ISTIO_META_CLUSTER_ID"), Some(json!("east")));
    assert_eq!(get("ISTIO_META_NETWORK"), Some(json!("net-east")));
    assert_eq!(
        env.iter()
            .filter(|e| e["name"] == "ISTIO_META_CLUSTER_ID")
            .count(),
        1,
        "replaced, not doubled"
    );
}

/// Cluster mode: the revision's mesh ConfigMap and injector values say who its proxies are
/// (trust domain, mesh ID, cluster ID, network), and the injected proxy says it too.
#[test]
fn the_injected_proxy_carries_the_revisions_own_mesh_identity() {
    use crate::core::mapping;
    use k8s_openapi::api::core::v1::ConfigMap;
    let (config, _) =
        crate::core::injector::configmap_parts(crate::core::injector::EMBEDDED_INJECTOR)
            .expect("embedded injector");
    let cm = |name: &str, data: Value| -> ConfigMap {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "istio-system",
            "labels": {"istio.io/rev": "asm-1-23"}}, "data": data}),
        )
        .expect("ConfigMap")
    };
    let values = json!({"global": {"hub": "example", "tag": "1.23.0", "meshID": "corp-mesh",
        "network": "net-a", "multiCluster": {"clusterName": "cluster-7"}}, "revision": "asm-1-23"});
    let injector = cm(
        "istio-sidecar-injector-asm-1-23",
        json!({"config": config, "values": values.to_string()}),
    );
    let mesh = cm(
        "istio-asm-1-23",
        json!({"mesh": "trustDomain: corp.example\ndefaultConfig:\n  discoveryAddress: istiod-asm-1-23.istio-system.svc:15012\n"}),
    );
    let namespaces = std::collections::HashMap::from([(
        "shop".to_owned(),
        crate::core::labels::NamespaceLabels {
            injection: None,
            rev: Some("asm-1-23".into()),
        },
    )]);
    let (snap, report) = mapping::snapshot_from_parts(
        [&injector, &mesh],
        [],
        namespaces,
        crate::core::revisions::MeshSettings::default(),
        "test",
    );
    assert!(report.errors.is_empty(), "{report:?}");
    let raw = deployment_pod().to_string();
    let parsed = PodIn::parse(&raw).expect("pod");
    let verdict = review_pod(
        &Target::pod(&parsed, &raw, "shop"),
        &snap,
        &Policy::default(),
    );
    assert_eq!(verdict.decision, Decision::Inject("asm-1-23".into()));
    let patch: json_patch::Patch =
        serde_json::from_str(verdict.patch.as_deref().expect("patch")).expect("patch JSON");
    let mut pod = deployment_pod();
    json_patch::patch(&mut pod, &patch).expect("applies");
    let proxy = pod["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "istio-proxy"))
        .expect("proxy");
    let env = |name: &str| {
        proxy["env"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["name"] == name))
            .map(|e| e["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(env("TRUST_DOMAIN"), "corp.example");
    assert_eq!(env("ISTIO_META_MESH_ID"), "corp-mesh");
    assert_eq!(env("ISTIO_META_CLUSTER_ID"), "cluster-7");
    assert_eq!(env("ISTIO_META_NETWORK"), "net-a");
    assert_eq!(env("CA_ADDR"), "istiod-asm-1-23.istio-system.svc:15012");
}
