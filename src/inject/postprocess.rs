//! What istiod does to the merged pod outside the templates (`postProcessPod`): cluster and
//! network from the webhook path, prometheus metrics merging, app probe rewriting, the status
//! annotation, and the order of the containers.

use serde_json::{json, Map, Value};

use crate::core::injector::Injector;
use crate::core::mesh;

use super::annotations::parse_go_bool;
use super::pipeline::STATUS_ANNOTATION;
use super::pod::{self, Move, CORE_DUMP_NAME, INIT_NAME, PROXY_NAME, VALIDATION_NAME};
use super::probes;
use super::render::{Path, PodContext};

const PROMETHEUS_ENV: &str = "ISTIO_PROMETHEUS_ANNOTATIONS";
const NETWORK_LABEL: &str = "topology.istio.io/network";

pub fn post_process(
    pod: &mut Value,
    template_pod: &Value,
    original: &Value,
    inj: &Injector,
    ctx: &PodContext<'_>,
) -> Result<(), String> {
    pod::meta_map_mut(pod, "annotations");
    pod::meta_map_mut(pod, "labels");
    let mesh = effective_mesh(inj, original, ctx)?;
    let status_port = mesh["defaultConfig"]["statusPort"]
        .as_i64()
        .unwrap_or(15020);
    overwrite_cluster_info(pod, ctx.proxy_envs);
    apply_prometheus_merge(pod, &mesh, status_port)?;
    apply_rewrite(pod, inj, status_port);
    apply_metadata(pod, template_pod, inj, ctx);
    reorder(pod, inj, original)
}

/// The mesh config the post-processing reads: kube-inject applies the pod's proxy config
/// annotation to it; the webhook does not.
fn effective_mesh(inj: &Injector, original: &Value, ctx: &PodContext<'_>) -> Result<Value, String> {
    match (ctx.path, pod::annotation(original, "proxy.istio.io/config")) {
        (Path::KubeInject, Some(text)) => {
            let mut m = inj.mesh.clone();
            m["defaultConfig"] = mesh::merge_proxy_config(text, &inj.mesh["defaultConfig"])
                .map_err(|e| e.to_string())?;
            Ok(m)
        }
        _ => Ok(inj.mesh.clone()),
    }
}

/// `overwriteClusterInfo`: the webhook path's cluster and network replace the proxy's env
/// entries of those names, appended in name order.
fn overwrite_cluster_info(pod: &mut Value, envs: &[(String, String)]) {
    if envs.is_empty() {
        return;
    }
    let Some(proxy) = pod::find_in_pod_mut(pod, PROXY_NAME) else {
        return;
    };
    let Some(c) = pod::object_mut(proxy) else {
        return;
    };
    let env = c.entry("env").or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = env.as_array_mut() else {
        return;
    };
    list.retain(|e| !envs.iter().any(|(k, _)| e["name"] == k.as_str()));
    for (k, v) in envs {
        list.push(json!({"name": k, "value": v}));
    }
}

/// Prometheus annotation keys compared as istiod does (`SanitizeLabelName`): every character
/// that is not a letter, digit or `_` reads as `_`.
fn sanitized(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn prometheus_annotation<'v>(pod: &'v Value, which: &str) -> Option<(&'v String, &'v str)> {
    pod["metadata"]["annotations"]
        .as_object()?
        .iter()
        .filter(|(k, _)| sanitized(k) == which)
        .find_map(|(k, v)| v.as_str().map(|v| (k, v)))
}

/// The pod's `prometheus.io/port` (in any spelling that sanitizes to it).
pub fn prometheus_port(pod: &Value) -> Option<&str> {
    prometheus_annotation(pod, "prometheus_io_port").map(|(_, v)| v)
}

pub fn clear_prometheus_annotations(pod: &mut Value) {
    const KEYS: [&str; 3] = [
        "prometheus_io_path",
        "prometheus_io_port",
        "prometheus_io_scrape",
    ];
    if let Some(map) = pod::existing_annotations_mut(pod) {
        map.retain(|k, _| !KEYS.contains(&sanitized(k).as_str()));
    }
}

/// `applyPrometheusMerge`: with metrics merging on, the app's scrape annotations move into
/// the proxy's `ISTIO_PROMETHEUS_ANNOTATIONS` and the pod is scraped at the agent.
fn apply_prometheus_merge(pod: &mut Value, mesh: &Value, status_port: i64) -> Result<(), String> {
    let scrape = prometheus_annotation(pod, "prometheus_io_scrape")
        .and_then(|(_, v)| parse_go_bool(v))
        .unwrap_or(true);
    if !scrape || !merge_enabled(pod, mesh) {
        return Ok(());
    }
    let target = status_port.to_string();
    if prometheus_port(pod) == Some(target.as_str()) {
        return Ok(());
    }
    let mut config = Map::new();
    for (field, key) in [
        ("scrape", "prometheus_io_scrape"),
        ("path", "prometheus_io_path"),
        ("port", "prometheus_io_port"),
    ] {
        if let Some((_, v)) = prometheus_annotation(pod, key) {
            if !v.is_empty() {
                config.insert(field.into(), Value::String(v.to_owned()));
            }
        }
    }
    if !config.is_empty() {
        if let Some(proxy) = pod::find_in_pod_mut(pod, PROXY_NAME).and_then(pod::object_mut) {
            let text = Value::Object(config).to_string();
            let env = proxy
                .entry("env")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(list) = env.as_array_mut() {
                list.push(json!({"name": PROMETHEUS_ENV, "value": text}));
            }
        }
    }
    clear_prometheus_annotations(pod);
    if let Some(map) = pod::meta_map_mut(pod, "annotations") {
        map.insert("prometheus.io/port".into(), Value::String(target));
        map.insert("prometheus.io/path".into(), json!("/stats/prometheus"));
        map.insert("prometheus.io/scrape".into(), json!("true"));
    }
    Ok(())
}

/// `enablePrometheusMerge`: the pod's annotation, else the mesh config, else on.
fn merge_enabled(pod: &Value, mesh: &Value) -> bool {
    if let Some(v) = pod::annotation(pod, "prometheus.istio.io/merge-metrics") {
        if let Some(b) = parse_go_bool(v) {
            return b;
        }
    }
    mesh["enablePrometheusMerge"].as_bool().unwrap_or(true)
}

/// `applyRewrite`: app probes are pointed at the agent, which runs the originals.
fn apply_rewrite(pod: &mut Value, inj: &Injector, status_port: i64) {
    if pod::find_in_pod(pod, PROXY_NAME).is_none() {
        return;
    }
    let configured = inj.values["sidecarInjectorWebhook"]["rewriteAppHTTPProbe"]
        .as_bool()
        .unwrap_or(false);
    let rewrite = pod::annotation(pod, "sidecar.istio.io/rewriteAppHTTPProbers")
        .and_then(parse_go_bool)
        .unwrap_or(configured);
    if !rewrite {
        return;
    }
    let lifecycle = inj.version >= crate::core::injector::IstioVersion(25);
    if let Some(probers) = probes::dump_app_probers(pod, status_port, lifecycle) {
        let previously_injected = pod::annotation(pod, STATUS_ANNOTATION).is_some();
        probes::set_probers_env(pod, probers, previously_injected);
    }
    let port = pod::annotation(pod, "status.sidecar.istio.io/port")
        .map(|p| p.trim().parse::<i64>().unwrap_or(0))
        .unwrap_or(status_port);
    probes::rewrite_probes(pod, port, lifecycle);
}

/// `applyMetadata`: the network label, the status annotation (what the templates injected,
/// and the revision, never a tag), and the config's injected annotations.
fn apply_metadata(pod: &mut Value, template_pod: &Value, inj: &Injector, ctx: &PodContext<'_>) {
    if let Some((_, network)) = ctx
        .proxy_envs
        .iter()
        .find(|(k, _)| k == "ISTIO_META_NETWORK")
    {
        if let Some(labels) = pod::meta_map_mut(pod, "labels") {
            labels.insert(NETWORK_LABEL.into(), Value::String(network.clone()));
        }
    }
    let status = injection_status_value(template_pod, ctx.revision);
    let injected = match ctx.path {
        Path::Webhook => &inj.config.injected_annotations,
        Path::KubeInject => &Default::default(),
    };
    if let Some(map) = pod::meta_map_mut(pod, "annotations") {
        map.insert(STATUS_ANNOTATION.into(), Value::String(status));
        for (k, v) in injected {
            map.insert(k.clone(), Value::String(v.clone()));
        }
    }
}

/// `getInjectionStatus`: the names the templates injected; an empty list is `null`, as Go
/// marshals a nil slice.
fn injection_status_value(template_pod: &Value, revision: &str) -> String {
    let names = |key: &str| -> Value {
        let list: Vec<Value> = template_pod["spec"][key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| i["name"].clone())
            .collect();
        if list.is_empty() {
            Value::Null
        } else {
            Value::Array(list)
        }
    };
    let revision = if revision.is_empty() {
        "default"
    } else {
        revision
    };
    // Field order as istiod's struct: initContainers, containers, volumes, imagePullSecrets, revision.
    format!(
        "{{\"initContainers\":{},\"containers\":{},\"volumes\":{},\"imagePullSecrets\":{},\"revision\":{}}}",
        names("initContainers"),
        names("containers"),
        names("volumes"),
        names("imagePullSecrets"),
        Value::String(revision.to_owned())
    )
}

/// `reorderPod`: the proxy goes last among the containers (so `kubectl exec` defaults to the
/// app), or first when the application must wait for it; as a native sidecar it follows the
/// redirection init container so that the other init containers are in the mesh.
fn reorder(pod: &mut Value, inj: &Injector, original: &Value) -> Result<(), String> {
    let hold_in_mesh = match pod::annotation(original, "proxy.istio.io/config") {
        Some(text) => mesh::merge_proxy_config(text, &inj.mesh["defaultConfig"])
            .map_err(|e| e.to_string())?["holdApplicationUntilProxyStarts"]
            .as_bool()
            .unwrap_or(false),
        None => inj.mesh["defaultConfig"]["holdApplicationUntilProxyStarts"]
            .as_bool()
            .unwrap_or(false),
    };
    let hold = hold_in_mesh
        || inj.values["global"]["proxy"]["holdApplicationUntilProxyStarts"]
            .as_bool()
            .unwrap_or(false);
    let place = if hold { Move::First } else { Move::Last };
    pod::modify_containers(pod, "containers", PROXY_NAME, place);
    let native = pod::find_container(&pod["spec"]["initContainers"], PROXY_NAME).is_some();
    let init_order: [(&str, Move); 4] = if native {
        [
            (CORE_DUMP_NAME, Move::First),
            (PROXY_NAME, Move::First),
            (VALIDATION_NAME, Move::First),
            (INIT_NAME, Move::First),
        ]
    } else {
        [
            (VALIDATION_NAME, Move::First),
            (INIT_NAME, Move::Last),
            (CORE_DUMP_NAME, Move::Last),
            ("", Move::Last),
        ]
    };
    for (name, how) in init_order {
        if !name.is_empty() {
            pod::modify_containers(pod, "initContainers", name, how);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_what_the_templates_injected() {
        let t = json!({"spec": {"initContainers": [{"name": "istio-init"}], "containers": [{"name": "istio-proxy"}], "volumes": [{"name": "v"}]}});
        assert_eq!(
            injection_status_value(&t, "asm-1-23"),
            r#"{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["v"],"imagePullSecrets":null,"revision":"asm-1-23"}"#
        );
        assert!(injection_status_value(&json!({}), "").ends_with(r#""revision":"default"}"#));
    }

    #[test]
    fn prometheus_keys_match_in_any_spelling() {
        let mut pod = json!({"metadata": {"annotations": {"prometheus.io/port": "9090", "prometheus_io/scrape": "true", "x": "y"}}});
        assert_eq!(prometheus_port(&pod), Some("9090"));
        clear_prometheus_annotations(&mut pod);
        assert_eq!(pod["metadata"]["annotations"], json!({"x": "y"}));
    }

    #[test]
    fn cluster_envs_replace_and_append_in_order() {
        let mut pod = json!({"spec": {"containers": [{"name": "istio-proxy", "env": [
            {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"}, {"name": "A", "value": "1"}]}]}});
        overwrite_cluster_info(
            &mut pod,
            &[
                ("ISTIO_META_CLUSTER_ID".into(), "c2".into()),
                ("ISTIO_META_NETWORK".into(), "n2".into()),
            ],
        );
        assert_eq!(
            pod["spec"]["containers"][0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "ISTIO_META_CLUSTER_ID", "value": "c2"}, {"name": "ISTIO_META_NETWORK", "value": "n2"}])
        );
    }
}
