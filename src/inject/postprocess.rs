//! What istiod does to the merged pod outside the templates (`postProcessPod`): cluster and
//! network from the webhook path, prometheus metrics merging, app probe rewriting, the status
//! annotation, and the order of the containers.

use std::borrow::Cow;

use serde_json::{json, Value};

use crate::core::injector::{Injector, IstioVersion};
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
    apply_prometheus_merge(pod, &mesh, status_port, inj.version)?;
    apply_rewrite(pod, inj, status_port);
    apply_metadata(pod, template_pod, inj, ctx);
    reorder(pod, inj, original)
}

/// The mesh config the post-processing reads: kube-inject applies the pod's proxy config
/// annotation to it; the webhook does not.
fn effective_mesh<'i>(
    inj: &'i Injector,
    original: &Value,
    ctx: &PodContext<'_>,
) -> Result<Cow<'i, Value>, String> {
    match (ctx.path, pod::annotation(original, "proxy.istio.io/config")) {
        (Path::KubeInject, Some(text)) => {
            let mut m = inj.mesh.clone();
            m["defaultConfig"] = mesh::merge_proxy_config(text, &inj.mesh["defaultConfig"])
                .map_err(|e| e.to_string())?;
            Ok(Cow::Owned(m))
        }
        _ => Ok(Cow::Borrowed(&inj.mesh)),
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

/// The Istio version since which `prometheus.istio.io/scrape-targets` names several app
/// endpoints and the scraped ports are checked (after 1.30; Istio's master).
const SCRAPE_TARGETS_SINCE: IstioVersion = IstioVersion(31);

/// Data-plane ports a merged scrape must not point at, with why (as the agent names them).
const RESERVED_PORTS: [(&str, &str); 9] = [
    ("15000", "Envoy admin"),
    ("15001", "outbound traffic capture"),
    ("15004", "pilot debug"),
    ("15006", "inbound traffic capture"),
    ("15008", "HBONE tunnel"),
    ("15020", "pilot-agent status / merged Prometheus"),
    ("15021", "Envoy health"),
    ("15053", "DNS proxy"),
    ("15090", "Envoy Prometheus (already merged)"),
];

/// Removes the app's scrape annotations, in every spelling (and, in the versions that read
/// it, `prometheus.istio.io/scrape-targets`).
pub fn clear_prometheus_annotations(pod: &mut Value, version: IstioVersion) {
    let targets = version >= SCRAPE_TARGETS_SINCE;
    if let Some(map) = pod::existing_annotations_mut(pod) {
        map.retain(|k, _| {
            let key = sanitized(k);
            !(matches!(
                key.as_str(),
                "prometheus_io_path" | "prometheus_io_port" | "prometheus_io_scrape"
            ) || (targets && key == "prometheus_istio_io_scrape_targets"))
        });
    }
}

/// What the agent is told to scrape (`PrometheusScrapeConfiguration`), in its JSON field
/// order.
#[derive(Debug, Default)]
struct ScrapeConfig {
    scrape: String,
    path: String,
    port: String,
    /// (port, path) pairs.
    targets: Vec<(String, String)>,
}

impl ScrapeConfig {
    fn of(pod: &Value, version: IstioVersion) -> Self {
        let text = |key| {
            prometheus_annotation(pod, key)
                .map(|(_, v)| v.to_owned())
                .unwrap_or_default()
        };
        let targets = match prometheus_annotation(pod, "prometheus_istio_io_scrape_targets") {
            Some((key, raw)) if version >= SCRAPE_TARGETS_SINCE => parse_scrape_targets(raw)
                .unwrap_or_else(|e| {
                    tracing::warn!("failed to parse {key} annotation: {e}");
                    Vec::new()
                }),
            _ => Vec::new(),
        };
        ScrapeConfig {
            scrape: text("prometheus_io_scrape"),
            path: text("prometheus_io_path"),
            port: text("prometheus_io_port"),
            targets,
        }
    }

    fn is_empty(&self) -> bool {
        self.scrape.is_empty()
            && self.path.is_empty()
            && self.port.is_empty()
            && self.targets.is_empty()
    }

    /// With targets, the first is also the single port and path older agents read; every
    /// port must be a port, not the agent's own and not one of the data plane's.
    fn settle(&mut self, agent_port: &str) -> Result<(), String> {
        if let Some((port, path)) = self.targets.first() {
            (self.port, self.path) = (port.clone(), path.clone());
            for (port, _) in &self.targets {
                check_scrape_port(port, agent_port, "scrape targets", "target port")?;
            }
        } else if !self.port.is_empty() {
            check_scrape_port(&self.port, agent_port, "scrape configuration", "port")?;
        }
        Ok(())
    }

    /// As Go's `json.Marshal` writes it: every string field, then the targets if any.
    fn to_go_json(&self) -> String {
        let mut out = String::from("{\"scrape\":");
        gotmpl::write_json_string(&mut out, &self.scrape);
        out.push_str(",\"path\":");
        gotmpl::write_json_string(&mut out, &self.path);
        out.push_str(",\"port\":");
        gotmpl::write_json_string(&mut out, &self.port);
        if !self.targets.is_empty() {
            out.push_str(",\"targets\":[");
            for (i, (port, path)) in self.targets.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"port\":");
                gotmpl::write_json_string(&mut out, port);
                out.push_str(",\"path\":");
                gotmpl::write_json_string(&mut out, path);
                out.push('}');
            }
            out.push(']');
        }
        out.push('}');
        out
    }
}

/// `port:path` pairs separated by commas; a missing path is `/metrics`.
fn parse_scrape_targets(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut targets = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (port, path) = entry.split_once(':').unwrap_or((entry, ""));
        let port = port.trim();
        if port.is_empty() {
            return Err(format!("empty port in scrape target {entry:?}"));
        }
        let path = match path.trim() {
            "" => "/metrics",
            path => path,
        };
        targets.push((port.to_owned(), path.to_owned()));
    }
    Ok(targets)
}

fn check_scrape_port(port: &str, agent_port: &str, what: &str, which: &str) -> Result<(), String> {
    let canon = match port.parse::<i64>() {
        Ok(n) if (1..=65535).contains(&n) => n.to_string(),
        _ => {
            return Err(format!(
                "invalid prometheus {what}: invalid {which} {port:?}"
            ))
        }
    };
    if canon == agent_port {
        return Err(format!(
            "invalid prometheus {what}: {which} {port} conflicts with agent port"
        ));
    }
    if let Some((_, reason)) = RESERVED_PORTS.iter().find(|(p, _)| *p == canon) {
        return Err(format!(
            "invalid prometheus {what}: {which} {port} is reserved for Istio ({reason}) and cannot be scraped"
        ));
    }
    Ok(())
}

/// `applyPrometheusMerge`: with metrics merging on, the app's scrape annotations move into
/// the proxy's `ISTIO_PROMETHEUS_ANNOTATIONS` and the pod is scraped at the agent.
fn apply_prometheus_merge(
    pod: &mut Value,
    mesh: &Value,
    status_port: i64,
    version: IstioVersion,
) -> Result<(), String> {
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
    let mut config = ScrapeConfig::of(pod, version);
    if version >= SCRAPE_TARGETS_SINCE {
        config.settle(&target)?;
    }
    if !config.is_empty() {
        if let Some(proxy) = pod::find_in_pod_mut(pod, PROXY_NAME).and_then(pod::object_mut) {
            let env = proxy
                .entry("env")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(list) = env.as_array_mut() {
                list.push(json!({"name": PROMETHEUS_ENV, "value": config.to_go_json()}));
            }
        }
    }
    clear_prometheus_annotations(pod, version);
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
        clear_prometheus_annotations(&mut pod, IstioVersion::NEWEST);
        assert_eq!(pod["metadata"]["annotations"], json!({"x": "y"}));
    }

    fn scrape_pod(annotations: Value) -> Value {
        json!({"metadata": {"annotations": annotations},
               "spec": {"containers": [{"name": "istio-proxy", "env": []}]}})
    }

    fn merged_env(pod: &Value) -> &str {
        pod["spec"]["containers"][0]["env"][0]["value"]
            .as_str()
            .expect("ISTIO_PROMETHEUS_ANNOTATIONS")
    }

    #[test]
    fn scrape_config_is_written_as_go_marshals_it() {
        let mut pod =
            scrape_pod(json!({"prometheus.io/port": "9102", "prometheus.io/path": "/a&b"}));
        apply_prometheus_merge(&mut pod, &json!({}), 15020, IstioVersion(30)).expect("merged");
        assert_eq!(
            merged_env(&pod),
            r#"{"scrape":"","path":"/a\u0026b","port":"9102"}"#
        );
        assert_eq!(
            pod["metadata"]["annotations"]["prometheus.io/port"],
            "15020"
        );
    }

    #[test]
    fn scrape_targets_are_read_only_by_the_versions_that_know_them() {
        let annotations =
            json!({"prometheus.istio.io/scrape-targets": " 8080:/metrics , 9100 ,, 9200:"});
        let mut newest = scrape_pod(annotations.clone());
        apply_prometheus_merge(&mut newest, &json!({}), 15020, IstioVersion::NEWEST)
            .expect("merged");
        assert_eq!(
            merged_env(&newest),
            r#"{"scrape":"","path":"/metrics","port":"8080","targets":[{"port":"8080","path":"/metrics"},{"port":"9100","path":"/metrics"},{"port":"9200","path":"/metrics"}]}"#
        );
        assert!(newest["metadata"]["annotations"]
            .get("prometheus.istio.io/scrape-targets")
            .is_none());
        // Before, the annotation is someone else's: left alone, and nothing to merge.
        let mut older = scrape_pod(annotations);
        apply_prometheus_merge(&mut older, &json!({}), 15020, IstioVersion(30)).expect("merged");
        assert_eq!(older["spec"]["containers"][0]["env"], json!([]));
        assert!(older["metadata"]["annotations"]
            .get("prometheus.istio.io/scrape-targets")
            .is_some());
    }

    #[test]
    fn scrape_ports_that_cannot_be_scraped_are_refused() {
        for (annotations, want) in [
            (
                json!({"prometheus.istio.io/scrape-targets": "80,x:/m"}),
                r#"invalid target port "x""#,
            ),
            (json!({"prometheus.istio.io/scrape-targets": ":/m"}), ""),
            (
                json!({"prometheus.istio.io/scrape-targets": "15090"}),
                "reserved for Istio (Envoy Prometheus (already merged))",
            ),
            (
                json!({"prometheus.io/port": "15021"}),
                "port 15021 is reserved for Istio (Envoy health)",
            ),
            (
                json!({"prometheus.io/port": "070000"}),
                r#"invalid port "070000""#,
            ),
        ] {
            let mut pod = scrape_pod(annotations.clone());
            let got = apply_prometheus_merge(&mut pod, &json!({}), 15020, IstioVersion::NEWEST);
            if want.is_empty() {
                // An unparsable targets annotation is ignored (with a warning), as istiod does.
                assert!(got.is_ok(), "{annotations}: {got:?}");
            } else {
                let err = got.expect_err("refused");
                assert!(err.contains(want), "{annotations}: {err}");
            }
        }
        // The agent's own port in a target: as the pod's port, the merge is already done.
        let mut pod = scrape_pod(json!({"prometheus.istio.io/scrape-targets": "15020"}));
        let err = apply_prometheus_merge(&mut pod, &json!({}), 15020, IstioVersion::NEWEST)
            .expect_err("refused");
        assert!(err.contains("conflicts with agent port"), "{err}");
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
