//! revhook's own golden files: inputs under `tests/golden/annotations/` that cover every
//! override annotation, rendered and compared with `<name>.injected.yaml`.
//! `REVHOOK_BLESS=1 cargo test --test golden` rewrites the expected files.

mod common;

use std::path::{Path, PathBuf};

use common::manifest::{render_with_verdict, yaml_docs};
use revhook::core::snapshot::Snapshot;
use revhook::sources::config;
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/annotations")
}

fn snapshot() -> Snapshot {
    config::parse(
        "revisions:\n  - {name: asm-1-23, image: docker.io/istio/proxyv2:1.23.0}\n\
         namespaces:\n  shop: {istio.io/rev: asm-1-23}\n",
        "golden",
    )
    .expect("config")
}

fn render_file(input: &Path) -> (Vec<Value>, String) {
    let text = std::fs::read_to_string(input).expect("input");
    let snap = snapshot();
    let mut docs = Vec::new();
    let mut out = String::new();
    for doc in yaml_docs(&text) {
        let (verdict, rendered) = render_with_verdict(&doc, &snap);
        if let Some(v) = verdict {
            assert!(v.allowed, "{}: denied: {:?}", input.display(), v.status);
        }
        out.push_str("---\n");
        out.push_str(&revhook::core::yaml::to_string(&rendered).expect("yaml"));
        docs.push(rendered);
    }
    (docs, out)
}

fn proxy(pod_spec: &Value) -> &Value {
    pod_spec["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "istio-proxy"))
        .expect("istio-proxy")
}

fn init_args(pod_spec: &Value) -> Vec<String> {
    pod_spec["initContainers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "istio-init"))
        .and_then(|c| c["args"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn env<'v>(container: &'v Value, name: &str) -> Option<&'v Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| &e["value"])
}

#[test]
fn golden_files_match_and_say_what_the_annotations_mean() {
    let bless = std::env::var_os("REVHOOK_BLESS").is_some();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("golden dir")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && !p.to_string_lossy().ends_with(".injected.yaml")
        })
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 6, "golden inputs: {inputs:?}");
    let mut mismatched = Vec::new();
    for input in &inputs {
        let (docs, text) = render_file(input);
        for doc in &docs {
            let pod_json = if doc["kind"] == "Pod" {
                doc.clone()
            } else {
                doc["spec"]["template"].clone()
            };
            serde_json::from_value::<k8s_openapi::api::core::v1::PodTemplateSpec>(pod_json)
                .expect("a valid pod template");
        }
        let expected = input.with_extension("injected.yaml");
        if bless {
            std::fs::write(&expected, &text).expect("write golden");
        } else if std::fs::read_to_string(&expected).ok().as_deref() != Some(text.as_str()) {
            mismatched.push(expected.display().to_string());
        }
    }
    assert!(
        mismatched.is_empty(),
        "golden files differ (REVHOOK_BLESS=1 to regenerate after review): {mismatched:?}"
    );
}

/// The first document of a golden input, rendered.
fn render(name: &str) -> Value {
    render_file(&dir().join(name)).0.remove(0)
}

/// The pod's `sidecar.istio.io/status` annotation, parsed.
fn sidecar_status(pod: &Value) -> Value {
    serde_json::from_str(
        pod["metadata"]["annotations"]["sidecar.istio.io/status"]
            .as_str()
            .expect("status"),
    )
    .expect("json")
}

#[test]
fn resource_and_log_level_annotations_take_effect() {
    let pod = render("resources-and-logging.yaml");
    let p = proxy(&pod["spec"]);
    assert_eq!(
        p["resources"]["requests"],
        serde_json::json!({"cpu": "250m", "memory": "256Mi"})
    );
    assert_eq!(
        p["resources"]["limits"],
        serde_json::json!({"cpu": "1", "memory": "512Mi"})
    );
    let args: Vec<&str> = p["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--proxyLogLevel=debug"));
    assert!(args.contains(&"--proxyComponentLogLevel=misc:error,rbac:debug"));
    assert!(args.contains(&"--log_output_level=default:debug"));
}

#[test]
fn traffic_annotations_reach_istio_init_and_the_proxy() {
    let pod = render("traffic.yaml");
    let args = init_args(&pod["spec"]).join(" ");
    assert!(args.contains("-m TPROXY"), "{args}");
    assert!(
        args.contains(
            "-i 10.0.0.0/8,172.16.0.0/12 -x 10.96.0.1/32 -b 8080,9090 -d 15090,15021,9091,15030"
        ),
        "{args}"
    );
    assert!(
        args.contains("-o 5432") && args.contains("-k net1"),
        "{args}"
    );
    let p = proxy(&pod["spec"]);
    assert_eq!(
        env(p, "ISTIO_META_INTERCEPTION_MODE"),
        Some(&Value::from("TPROXY"))
    );
    assert_eq!(p["securityContext"]["runAsUser"], 0);
}

#[test]
fn proxy_config_holds_apps_and_probes_are_rewritten() {
    let pod = render("proxy-config-and-probes.yaml");
    let spec = &pod["spec"];
    assert_eq!(
        spec["containers"][0]["name"], "istio-proxy",
        "held apps start after the proxy"
    );
    let p = proxy(spec);
    assert_eq!(
        p["lifecycle"]["postStart"]["exec"]["command"],
        serde_json::json!(["pilot-agent", "wait"])
    );
    assert!(p["args"].to_string().contains("\"--concurrency\",\"2\""));
    assert_eq!(env(p, "ISTIO_META_DNS_CAPTURE"), Some(&Value::from("true")));
    let app = &spec["containers"][1];
    assert_eq!(
        app["livenessProbe"]["httpGet"],
        serde_json::json!({"path": "/app-health/app/livez", "port": 15020})
    );
    assert_eq!(app["livenessProbe"]["timeoutSeconds"], 2);
    assert_eq!(
        app["readinessProbe"]["httpGet"]["path"],
        "/app-health/app/readyz"
    );
    assert_eq!(
        app["startupProbe"]["httpGet"]["path"],
        "/app-health/app/startupz"
    );
    let probers: Value = serde_json::from_str(
        env(p, "ISTIO_KUBE_APP_PROBERS")
            .and_then(Value::as_str)
            .expect("probers"),
    )
    .expect("json");
    assert_eq!(
        probers["/app-health/app/livez"]["httpGet"]["port"], 8080,
        "the named port is resolved"
    );
    assert_eq!(
        env(p, "ISTIO_PROMETHEUS_ANNOTATIONS"),
        Some(&Value::from(r#"{"scrape":"true","path":"","port":"9102"}"#))
    );
}

#[test]
fn image_volume_and_probe_annotations_take_effect() {
    let pod = render("images-and-volumes.yaml");
    let spec = &pod["spec"];
    let p = proxy(spec);
    assert_eq!(p["image"], "docker.io/istio/proxyv2-fips:1.23.0-debug");
    assert_eq!(
        spec["initContainers"][0]["image"],
        "docker.io/istio/proxyv2-fips:1.23.0-debug"
    );
    assert!(spec["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .any(|v| v["name"] == "extra-certs" && v["secret"]["secretName"] == "extra-certs"));
    assert!(p["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .any(|m| m["name"] == "extra-certs" && m["mountPath"] == "/etc/extra-certs"));
    assert_eq!(
        spec["containers"][0]["readinessProbe"]["httpGet"]["path"], "/ready",
        "rewriting was switched off"
    );
    assert!(pod["metadata"]["annotations"]
        .get("prometheus.io/scrape")
        .is_none());
    assert_eq!(p["readinessProbe"]["initialDelaySeconds"], 5);
    assert_eq!(p["readinessProbe"]["periodSeconds"], 10);
    assert_eq!(p["readinessProbe"]["failureThreshold"], 6);
    assert!(sidecar_status(&pod)["volumes"]
        .as_array()
        .expect("volumes")
        .contains(&Value::from("extra-certs")));
}

#[test]
fn a_custom_proxy_in_a_deployment_is_merged_with_the_injected_one() {
    let deployment = render("custom-proxy-and-deployment.yaml");
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        spec["initContainers"].as_array().map(Vec::len),
        Some(1),
        "the custom istio-init is merged, not doubled"
    );
    // Merged as istiod merges (strategic merge): the pod's fields win, the others stay.
    assert_eq!(
        spec["initContainers"][0]["resources"],
        serde_json::json!({"requests": {"cpu": "10m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}})
    );
    assert_eq!(
        spec["initContainers"][0]["image"],
        "docker.io/istio/proxyv2:1.23.0"
    );
    let p = proxy(spec);
    assert_eq!(
        p["resources"],
        serde_json::json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}})
    );
    assert_eq!(env(p, "EXTRA"), Some(&Value::from("1")));
    assert_eq!(
        env(p, "ISTIO_META_WORKLOAD_NAME"),
        Some(&Value::from("web"))
    );
    assert_eq!(
        env(p, "ISTIO_META_OWNER"),
        Some(&Value::from(
            "kubernetes://apis/apps/v1/namespaces/shop/deployments/web"
        ))
    );
}

#[test]
fn interception_none_adds_no_init_container() {
    let pod = render("interception-none.yaml");
    assert!(
        pod["spec"].get("initContainers").is_none(),
        "{}",
        pod["spec"]
    );
    assert_eq!(sidecar_status(&pod)["initContainers"], Value::Null);
}

#[test]
fn a_bad_annotation_is_denied_naming_it() {
    let doc: Value = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop", "annotations": {"sidecar.istio.io/proxyCPU": "lots"}},
        "spec": {"containers": [{"name": "app"}]}});
    let (verdict, _) = render_with_verdict(&doc, &snapshot());
    let verdict = verdict.expect("a pod");
    assert!(!verdict.allowed);
    let message = verdict.status.expect("status").message;
    assert!(
        message.contains("'lots' for annotation 'sidecar.istio.io/proxyCPU'")
            && message.contains("quantity"),
        "{message}"
    );
}
