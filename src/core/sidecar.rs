//! Istio's default `sidecar` template (1.22–1.24), rendered once per revision.
//!
//! The sidecar is the same for every pod of a revision except a few env values and labels, so
//! each revision's JSON is rendered into fragments when the snapshot is built and a request
//! only splices its own parts in. A per-pod override replaces a whole field's fragment.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::core::revisions::{MeshSettings, Revision};

use super::json::push_json_str;

pub const PROXY_NAME: &str = "istio-proxy";
pub const INIT_NAME: &str = "istio-init";
pub const VALIDATION_NAME: &str = "istio-validation";
pub const PROXY_UID: i64 = 1337;

/// How the pod's traffic reaches the proxy (`sidecar.istio.io/interceptionMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InterceptionMode {
    /// iptables REDIRECT (Istio's default).
    #[default]
    Redirect,
    /// iptables TPROXY: the proxy sees the original source address.
    Tproxy,
    /// No capture: no init container, the app talks to the proxy itself.
    None,
}

impl InterceptionMode {
    /// The annotation's values, as Istio spells them.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "REDIRECT" => Some(InterceptionMode::Redirect),
            "TPROXY" => Some(InterceptionMode::Tproxy),
            "NONE" => Some(InterceptionMode::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InterceptionMode::Redirect => "REDIRECT",
            InterceptionMode::Tproxy => "TPROXY",
            InterceptionMode::None => "NONE",
        }
    }
}
/// The agent's status (health, merged metrics) port.
pub const DEFAULT_STATUS_PORT: u16 = 15020;
pub const DEFAULT_AGENT_LOG_LEVEL: &str = "default:info";

/// The sidecar volumes, in Istio's order.
pub const VOLUME_NAMES: [&str; 8] = [
    "workload-socket",
    "credential-socket",
    "workload-certs",
    "istio-envoy",
    "istio-data",
    "istio-podinfo",
    "istio-token",
    "istiod-ca-cert",
];

/// Per-pod values spliced into the proxy container.
#[derive(Debug, Default, Clone)]
pub struct PodParts<'a> {
    /// JSON array of the app containers' ports (value of `ISTIO_META_POD_PORTS`).
    pub pod_ports: &'a str,
    /// Comma-separated app container names (`ISTIO_META_APP_CONTAINERS`).
    pub app_containers: &'a str,
    pub workload_name: &'a str,
    pub owner: &'a str,
    /// The app's own prometheus annotations, as JSON (`ISTIO_PROMETHEUS_ANNOTATIONS`).
    pub prometheus_annotations: Option<&'a str>,
    /// `PROXY_CONFIG` (from `proxy.istio.io/config`), `{}` when none.
    pub proxy_config: Option<&'a str>,
    /// `ISTIO_META_INTERCEPTION_MODE`; empty means `REDIRECT`.
    pub interception_mode: InterceptionMode,
    /// Extra env entries, already serialized as JSON objects (probe rewriting and such).
    pub extra_env: &'a [String],
}

/// A revision's sidecar, pre-rendered.
#[derive(Debug)]
pub struct RenderedSidecar {
    pub revision: Arc<Revision>,
    /// `(field, json)` of the proxy container in Istio's order; `env` is spliced separately.
    proxy_fields: Vec<(&'static str, String)>,
    env_head: String,
    env_middle: String,
    env_tail: String,
    /// The init container (`istio-init`, or `istio-validation` with CNI).
    pub init_container: String,
    init_tail: String,
    pub init_name: &'static str,
    /// Each volume as JSON, in [`VOLUME_NAMES`] order.
    pub volumes: Vec<String>,
    /// Value of the `sidecar.istio.io/status` annotation.
    pub status: String,
    /// The same value as a JSON string literal (escaped once, here).
    pub status_json: String,
}

impl RenderedSidecar {
    pub fn new(revision: Arc<Revision>, mesh: &MeshSettings) -> Self {
        let proxy = proxy_container(&revision);
        let proxy_fields = match proxy {
            Value::Object(map) => map
                .into_iter()
                .filter(|(k, _)| k != "env")
                .map(|(k, v)| (field_name(&k), v.to_string()))
                .collect(),
            _ => Vec::new(),
        };
        let init_name = if revision.cni {
            VALIDATION_NAME
        } else {
            INIT_NAME
        };
        let init_tail = init_tail(&revision, init_name == VALIDATION_NAME);
        let (env_head, env_middle, env_tail) = env_groups(&revision, mesh);
        let status = status_annotation(&revision, init_name);
        let status_json = Value::String(status.clone()).to_string();
        let mut rendered = RenderedSidecar {
            proxy_fields,
            env_head,
            env_middle,
            env_tail,
            init_container: String::new(),
            init_tail,
            init_name,
            volumes: volumes().into_iter().map(|v| v.to_string()).collect(),
            status,
            status_json,
            revision,
        };
        rendered.init_container =
            rendered.render_init(&Interception::default(), &rendered.revision.proxy_image);
        rendered
    }

    /// The proxy container for one pod. `overrides` replace whole fields (`image`, `args`...);
    /// an empty override removes the field.
    pub fn render_proxy(
        &self,
        parts: &PodParts<'_>,
        overrides: &[(&'static str, String)],
    ) -> String {
        let mut out = String::with_capacity(4096);
        self.write_proxy(&mut out, parts, overrides);
        out
    }

    /// As [`Self::render_proxy`], appended to `out` (the patch, usually: no copy of its own).
    pub fn write_proxy(
        &self,
        out: &mut String,
        parts: &PodParts<'_>,
        overrides: &[(&'static str, String)],
    ) {
        out.push('{');
        let mut first = true;
        for (field, json) in &self.proxy_fields {
            if *field == "ports" {
                self.push_env(out, parts);
                first = false;
            }
            let json = overrides
                .iter()
                .find(|(f, _)| f == field)
                .map_or(json.as_str(), |(_, j)| j.as_str());
            // An empty override removes the field.
            if !json.is_empty() {
                push_field(out, &mut first, field, json);
            }
        }
        for (field, json) in overrides {
            if !json.is_empty() && !self.proxy_fields.iter().any(|(f, _)| f == field) {
                push_field(out, &mut first, field, json);
            }
        }
        out.push('}');
    }

    fn push_env(&self, out: &mut String, parts: &PodParts<'_>) {
        out.push_str(",\"env\":[");
        out.push_str(&self.env_head);
        push_env_value(out, "PROXY_CONFIG", parts.proxy_config.unwrap_or("{}\n"));
        push_env_value(out, "ISTIO_META_POD_PORTS", parts.pod_ports);
        push_env_value(out, "ISTIO_META_APP_CONTAINERS", parts.app_containers);
        out.push_str(&self.env_middle);
        push_env_value(
            out,
            "ISTIO_META_INTERCEPTION_MODE",
            parts.interception_mode.as_str(),
        );
        push_env_value(out, "ISTIO_META_WORKLOAD_NAME", parts.workload_name);
        push_env_value(out, "ISTIO_META_OWNER", parts.owner);
        out.push_str(&self.env_tail);
        if let Some(prom) = parts.prometheus_annotations {
            push_env_value(out, "ISTIO_PROMETHEUS_ANNOTATIONS", prom);
        }
        for extra in parts.extra_env {
            out.push(',');
            out.push_str(extra);
        }
        out.push(']');
    }
}

fn push_field(out: &mut String, first: &mut bool, field: &str, json: &str) {
    if !*first {
        out.push(',');
    }
    *first = false;
    push_json_str(out, field);
    out.push(':');
    out.push_str(json);
}

/// Appends `,{"name":..,"value":..}` (the env head is never empty, so a comma always fits).
fn push_env_value(out: &mut String, name: &str, value: &str) {
    out.push_str(",{\"name\":");
    push_json_str(out, name);
    out.push_str(",\"value\":");
    push_json_str(out, value);
    out.push('}');
}

fn field_name(k: &str) -> &'static str {
    match k {
        "name" => "name",
        "image" => "image",
        "args" => "args",
        "ports" => "ports",
        "readinessProbe" => "readinessProbe",
        "resources" => "resources",
        "securityContext" => "securityContext",
        "startupProbe" => "startupProbe",
        "volumeMounts" => "volumeMounts",
        "restartPolicy" => "restartPolicy",
        "lifecycle" => "lifecycle",
        _ => "unknown",
    }
}

fn field_ref(path: &str) -> Value {
    json!({"fieldRef": {"fieldPath": path}})
}

fn resource_ref(resource: &str) -> Value {
    json!({"resourceFieldRef": {"divisor": "0", "resource": resource}})
}

fn env_list(items: &[(&str, Value)]) -> String {
    items
        .iter()
        .map(|(name, source)| {
            let mut entry = json!({ "name": name });
            match source {
                Value::String(_) => entry["value"] = source.clone(),
                _ => {
                    entry["valueFrom"] = source.clone();
                }
            }
            entry.to_string()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The fixed env entries around the per-pod ones, as three comma-joined groups (the middle and
/// tail start with a comma so they splice after a per-pod entry).
fn env_groups(rev: &Revision, mesh: &MeshSettings) -> (String, String, String) {
    let head = env_list(&[
        ("PILOT_CERT_PROVIDER", json!("istiod")),
        ("CA_ADDR", json!(rev.discovery_address)),
        ("POD_NAME", field_ref("metadata.name")),
        ("POD_NAMESPACE", field_ref("metadata.namespace")),
        ("INSTANCE_IP", field_ref("status.podIP")),
        ("SERVICE_ACCOUNT", field_ref("spec.serviceAccountName")),
        ("HOST_IP", field_ref("status.hostIP")),
        ("ISTIO_CPU_LIMIT", resource_ref("limits.cpu")),
    ]);
    let middle = env_list(&[
        ("GOMEMLIMIT", resource_ref("limits.memory")),
        ("GOMAXPROCS", resource_ref("limits.cpu")),
        ("ISTIO_META_CLUSTER_ID", json!(mesh.cluster_id)),
        ("ISTIO_META_NODE_NAME", field_ref("spec.nodeName")),
    ]);
    let tail = env_list(&[
        ("ISTIO_META_MESH_ID", json!(mesh.mesh_id)),
        ("TRUST_DOMAIN", json!(mesh.trust_domain)),
    ]);
    (head, format!(",{middle}"), format!(",{tail}"))
}

fn resources(rev: &Revision) -> Value {
    json!({
        "limits": {"cpu": rev.proxy.cpu_limit, "memory": rev.proxy.memory_limit},
        "requests": {"cpu": rev.proxy.cpu_request, "memory": rev.proxy.memory_request},
    })
}

/// `args` of the proxy container for given log levels and concurrency.
pub fn proxy_args(
    log_level: &str,
    component_log_level: &str,
    agent_log_level: &str,
    concurrency: Option<u32>,
) -> Value {
    let mut args = vec![
        json!("proxy"),
        json!("sidecar"),
        json!("--domain"),
        json!("$(POD_NAMESPACE).svc.cluster.local"),
        json!(format!("--proxyLogLevel={log_level}")),
        json!(format!("--proxyComponentLogLevel={component_log_level}")),
        json!(format!("--log_output_level={agent_log_level}")),
    ];
    if let Some(n) = concurrency {
        args.push(json!("--concurrency"));
        args.push(json!(n.to_string()));
    }
    Value::Array(args)
}

/// The proxy's own readiness (`period`, `failure`) or startup probe on the agent's port 15021.
pub fn ready_probe(period: u32, failure: u32, initial_delay: Option<u32>) -> Value {
    let mut probe = json!({
        "failureThreshold": failure,
        "httpGet": {"path": "/healthz/ready", "port": 15021},
        "periodSeconds": period,
        "timeoutSeconds": 3,
    });
    if let Some(delay) = initial_delay {
        probe["initialDelaySeconds"] = json!(delay);
    }
    probe
}

/// The proxy's volume mounts, with a pod's `userVolumeMount`s after them.
pub fn volume_mounts(user: &[(String, Value)]) -> Value {
    let mut mounts = vec![
        json!({"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"}),
        json!({"mountPath": "/var/run/secrets/credential-uds", "name": "credential-socket"}),
        json!({"mountPath": "/var/run/secrets/workload-spiffe-credentials", "name": "workload-certs"}),
        json!({"mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert"}),
        json!({"mountPath": "/var/lib/istio/data", "name": "istio-data"}),
        json!({"mountPath": "/etc/istio/proxy", "name": "istio-envoy"}),
        json!({"mountPath": "/var/run/secrets/tokens", "name": "istio-token"}),
        json!({"mountPath": "/etc/istio/pod", "name": "istio-podinfo"}),
    ];
    for (name, mount) in user {
        let mut m = mount.clone();
        m["name"] = json!(name);
        mounts.push(m);
    }
    Value::Array(mounts)
}

/// The proxy's security context; TPROXY needs root and NET_ADMIN to bind transparently.
pub fn proxy_security_context(tproxy: bool) -> Value {
    if tproxy {
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": false,
            "runAsUser": 0,
        })
    } else {
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": true,
            "runAsUser": PROXY_UID,
        })
    }
}

fn proxy_container(rev: &Revision) -> Value {
    let probe = |period: u32, failure: u32| ready_probe(period, failure, None);
    let mut c = json!({
        "name": PROXY_NAME,
        "image": rev.proxy_image,
        "args": proxy_args(&rev.proxy.log_level, &rev.proxy.component_log_level, DEFAULT_AGENT_LOG_LEVEL, rev.proxy.concurrency),
        "env": [],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": probe(15, 4),
        "resources": resources(rev),
        "securityContext": proxy_security_context(false),
        "startupProbe": probe(1, 600),
        "volumeMounts": volume_mounts(&[]),
    });
    if rev.native_sidecar {
        c["restartPolicy"] = json!("Always");
    }
    c
}

/// `istio-iptables` arguments for the given traffic settings.
pub struct Interception<'a> {
    pub mode: InterceptionMode,
    pub include_outbound_ip_ranges: &'a str,
    pub exclude_outbound_ip_ranges: &'a str,
    pub include_inbound_ports: &'a str,
    pub exclude_inbound_ports: &'a str,
    pub exclude_outbound_ports: &'a str,
    pub kubevirt_interfaces: &'a str,
    /// The agent's status port, never redirected (0: none).
    pub status_port: u16,
}

impl Default for Interception<'_> {
    fn default() -> Self {
        Interception {
            mode: InterceptionMode::Redirect,
            include_outbound_ip_ranges: "*",
            exclude_outbound_ip_ranges: "",
            include_inbound_ports: "*",
            exclude_inbound_ports: "",
            exclude_outbound_ports: "",
            kubevirt_interfaces: "",
            status_port: DEFAULT_STATUS_PORT,
        }
    }
}

/// Appends the `istio-iptables` arguments for the given traffic settings, as a JSON array.
fn push_iptables_args(out: &mut String, t: &Interception<'_>, validation: bool) {
    let mut exclude_inbound = String::from("15090,15021");
    if t.status_port != 0 {
        exclude_inbound.push(',');
        exclude_inbound.push_str(&t.status_port.to_string());
    }
    if !t.exclude_inbound_ports.is_empty() {
        exclude_inbound.push(',');
        exclude_inbound.push_str(t.exclude_inbound_ports);
    }
    let mut args: Vec<&str> = vec![
        "istio-iptables",
        "-p",
        "15001",
        "-z",
        "15006",
        "-u",
        "1337",
        "-m",
        t.mode.as_str(),
        "-i",
        t.include_outbound_ip_ranges,
        "-x",
        t.exclude_outbound_ip_ranges,
        "-b",
        t.include_inbound_ports,
        "-d",
        &exclude_inbound,
    ];
    if !t.exclude_outbound_ports.is_empty() {
        args.extend(["-o", t.exclude_outbound_ports]);
    }
    if !t.kubevirt_interfaces.is_empty() {
        args.extend(["-k", t.kubevirt_interfaces]);
    }
    args.push("--log_output_level=default:info");
    if validation {
        args.extend(["--run-validation", "--skip-rule-apply"]);
    }
    out.push('[');
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, a);
    }
    out.push(']');
}

fn init_security_context(validation: bool) -> Value {
    if validation {
        proxy_security_context(false)
    } else {
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": false,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "runAsUser": 0,
        })
    }
}

impl RenderedSidecar {
    /// The init container for one pod's traffic settings and image (the fixed parts were
    /// rendered with the revision).
    pub fn render_init(&self, traffic: &Interception<'_>, image: &str) -> String {
        let mut out = String::with_capacity(self.init_container.len() + 128);
        out.push_str("{\"name\":");
        push_json_str(&mut out, self.init_name);
        out.push_str(",\"image\":");
        push_json_str(&mut out, image);
        out.push_str(",\"args\":");
        push_iptables_args(&mut out, traffic, self.init_name == VALIDATION_NAME);
        out.push_str(&self.init_tail);
        out
    }
}

/// `,"resources":..,"securityContext":..}`: the init container's fields that do not vary.
fn init_tail(rev: &Revision, validation: bool) -> String {
    format!(
        ",\"resources\":{},\"securityContext\":{}}}",
        resources(rev),
        init_security_context(validation)
    )
}

fn volumes() -> Vec<Value> {
    vec![
        json!({"name": "workload-socket", "emptyDir": {}}),
        json!({"name": "credential-socket", "emptyDir": {}}),
        json!({"name": "workload-certs", "emptyDir": {}}),
        json!({"name": "istio-envoy", "emptyDir": {"medium": "Memory"}}),
        json!({"name": "istio-data", "emptyDir": {}}),
        json!({"name": "istio-podinfo", "downwardAPI": {"items": [
            {"fieldRef": {"fieldPath": "metadata.labels"}, "path": "labels"},
            {"fieldRef": {"fieldPath": "metadata.annotations"}, "path": "annotations"},
        ]}}),
        json!({"name": "istio-token", "projected": {"sources": [
            {"serviceAccountToken": {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}},
        ]}}),
        json!({"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}}),
    ]
}

/// Istio's `sidecar.istio.io/status` JSON; `revision` is always the revision, never a tag.
fn status_annotation(rev: &Revision, init_name: &str) -> String {
    status_json(rev, Some(init_name), &[])
}

/// The status annotation for a pod whose init container or volumes differ from the default
/// (interception `NONE` has no init container; `userVolume`s are listed too).
pub fn status_json(rev: &Revision, init_name: Option<&str>, extra_volumes: &[&str]) -> String {
    let mut init: Vec<&str> = init_name.into_iter().collect();
    let mut containers = vec![PROXY_NAME];
    if rev.native_sidecar {
        init.push(PROXY_NAME);
        containers.clear();
    }
    let volumes: Vec<&str> = VOLUME_NAMES
        .iter()
        .copied()
        .chain(extra_volumes.iter().copied())
        .collect();
    json!({
        "initContainers": if init.is_empty() { Value::Null } else { json!(init) },
        "containers": containers,
        "volumes": volumes,
        "imagePullSecrets": null,
        "revision": rev.name,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sidecar(native: bool, cni: bool) -> RenderedSidecar {
        let mesh = MeshSettings::default();
        let mut rev = Revision::new("asm-1-23", "example/proxyv2:1.23.0", &mesh);
        rev.native_sidecar = native;
        rev.cni = cni;
        RenderedSidecar::new(Arc::new(rev), &mesh)
    }

    fn parts() -> PodParts<'static> {
        PodParts {
            pod_ports: r#"[{"containerPort":80}]"#,
            app_containers: "app",
            workload_name: "shop",
            owner: "kubernetes://apis/apps/v1/namespaces/ns/deployments/shop",
            ..PodParts::default()
        }
    }

    #[test]
    fn proxy_container_is_valid_and_carries_the_revision() {
        let s = sidecar(false, false);
        let json = s.render_proxy(&parts(), &[]);
        let c: k8s_openapi::api::core::v1::Container =
            serde_json::from_str(&json).expect("a valid Container");
        assert_eq!(c.name, "istio-proxy");
        assert_eq!(c.image.as_deref(), Some("example/proxyv2:1.23.0"));
        let env = c.env.unwrap_or_default();
        let get = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(
            get("CA_ADDR").as_deref(),
            Some("istiod-asm-1-23.istio-system.svc:15012")
        );
        assert_eq!(get("ISTIO_META_WORKLOAD_NAME").as_deref(), Some("shop"));
        assert_eq!(get("TRUST_DOMAIN").as_deref(), Some("cluster.local"));
        assert_eq!(c.ports.unwrap_or_default()[0].container_port, 15090);
        let rp = c.readiness_probe.expect("readiness");
        assert_eq!(
            rp.http_get.expect("http").path.as_deref(),
            Some("/healthz/ready")
        );
    }

    #[test]
    fn overrides_replace_whole_fields_and_add_missing_ones() {
        let s = sidecar(false, false);
        let over = [
            ("image", "\"other/proxy:1\"".to_owned()),
            (
                "lifecycle",
                r#"{"postStart":{"exec":{"command":["pilot-agent","wait"]}}}"#.to_owned(),
            ),
        ];
        let v: Value = serde_json::from_str(&s.render_proxy(&parts(), &over)).expect("json");
        assert_eq!(v["image"], "other/proxy:1");
        assert!(v["lifecycle"]["postStart"].is_object());
    }

    #[test]
    fn status_names_revision_and_what_was_added() {
        let v: Value = serde_json::from_str(&sidecar(false, false).status).expect("json");
        assert_eq!(v["revision"], "asm-1-23");
        assert_eq!(v["initContainers"], json!(["istio-init"]));
        assert_eq!(v["containers"], json!(["istio-proxy"]));
        assert_eq!(v["volumes"].as_array().map(Vec::len), Some(8));
    }

    #[test]
    fn native_sidecar_and_cni_variants() {
        let s = sidecar(true, true);
        let status: Value = serde_json::from_str(&s.status).expect("json");
        assert_eq!(
            status["initContainers"],
            json!(["istio-validation", "istio-proxy"])
        );
        assert_eq!(status["containers"], json!([]));
        let v: Value = serde_json::from_str(&s.render_proxy(&parts(), &[])).expect("json");
        assert_eq!(v["restartPolicy"], "Always");
        let init: Value = serde_json::from_str(&s.init_container).expect("json");
        assert_eq!(init["securityContext"]["runAsUser"], 1337);
        assert!(init["args"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("--run-validation"))));
    }
}
