//! App probe rewriting: the kubelet cannot reach an app's HTTP/TCP/gRPC probe through the
//! sidecar's redirection (and mTLS), so each probe is pointed at the agent's status port
//! (`/app-health/<container>/<livez|readyz|startupz>`), and the agent runs the original,
//! which it reads from `ISTIO_KUBE_APP_PROBERS`.
//!
//! Probes are common on the hot path, so they are handled as raw JSON: the patch touches only
//! the handler fields of a probe, and the original handler is copied, not re-serialized,
//! unless a named port has to be resolved.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::patch::PatchWriter;
use crate::core::json::push_json_str;
use crate::core::pod::ContainerIn;

/// The handler and timeout of a probe; everything else in it is left alone.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProbeIn<'a> {
    #[serde(borrow, default)]
    http_get: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tcp_socket: Option<&'a RawValue>,
    #[serde(borrow, default)]
    grpc: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timeout_seconds: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct PortOnly<'a> {
    #[serde(borrow)]
    port: Option<&'a RawValue>,
    #[serde(default)]
    scheme: Option<serde::de::IgnoredAny>,
}

const KINDS: [(&str, &str); 3] = [
    ("livenessProbe", "livez"),
    ("readinessProbe", "readyz"),
    ("startupProbe", "startupz"),
];

/// A port as written (number, or a numeric or named string) resolved to its number.
fn resolve_port(raw: &RawValue, container: &ContainerIn<'_>) -> Option<i64> {
    match serde_json::from_str::<Value>(raw.get()).ok()? {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => name.parse().ok().or_else(|| {
            container
                .ports
                .as_deref()?
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| i64::from(p.container_port))
        }),
        _ => None,
    }
}

/// A handler JSON object with its `port` replaced by a number when it was a name (as written
/// when it already was one), and whether it names a `scheme`.
fn with_numeric_port<'h>(
    handler: &'h RawValue,
    container: &ContainerIn<'_>,
) -> Option<(Cow<'h, str>, bool)> {
    let parsed: PortOnly<'_> = serde_json::from_str(handler.get()).ok()?;
    let has_scheme = parsed.scheme.is_some();
    let port = parsed.port?;
    if port.get().starts_with(|c: char| c.is_ascii_digit()) {
        return Some((Cow::Borrowed(handler.get()), has_scheme));
    }
    let number = resolve_port(port, container)?;
    let mut map: serde_json::Map<String, Value> = serde_json::from_str(handler.get()).ok()?;
    map.insert("port".into(), Value::from(number));
    Some((Cow::Owned(Value::Object(map).to_string()), has_scheme))
}

/// Rewrites the probes of the app containers (`(index in the patched pod, container)`),
/// writing patch operations; returns the `ISTIO_KUBE_APP_PROBERS` value when any probe was.
pub fn rewrite(
    containers: &[(usize, &ContainerIn<'_>)],
    status_port: u16,
    w: &mut PatchWriter,
) -> Option<String> {
    let mut probers = String::new();
    // One buffer for every operation's path.
    let mut op_path = String::with_capacity(64);
    for (index, container) in containers {
        let probes = [
            container.liveness_probe,
            container.readiness_probe,
            container.startup_probe,
        ];
        for ((field, kind), raw) in KINDS.iter().zip(probes) {
            let Some(raw) = raw else { continue };
            let Ok(probe) = serde_json::from_str::<ProbeIn<'_>>(raw.get()) else {
                continue;
            };
            let (handler, original) = if let Some(h) = probe.http_get {
                ("httpGet", with_numeric_port(h, container))
            } else if let Some(t) = probe.tcp_socket {
                let original = with_numeric_port(t, container).map(|(o, _)| (o, false));
                ("tcpSocket", original)
            } else if let Some(g) = probe.grpc {
                ("grpc", Some((Cow::Borrowed(g.get()), false)))
            } else {
                continue;
            };
            let Some((original, scheme)) = original else {
                continue;
            };
            let path = format!("/app-health/{}/{kind}", container.name);
            op_path.clear();
            let _ = write!(op_path, "/spec/containers/{index}/{field}/");
            let base_len = op_path.len();
            if handler != "httpGet" {
                op_path.push_str(handler);
                w.remove(&op_path);
                op_path.truncate(base_len);
            }
            op_path.push_str("httpGet");
            w.add_with(&op_path, |http| {
                http.push_str("{\"path\":");
                push_json_str(http, &path);
                let _ = write!(http, ",\"port\":{status_port}");
                // The agent serves plain HTTP; an explicit scheme (HTTPS) must say so.
                if scheme {
                    http.push_str(",\"scheme\":\"HTTP\"");
                }
                http.push('}');
            });

            if probers.is_empty() {
                probers.reserve(256);
                probers.push('{');
            } else {
                probers.push(',');
            }
            push_json_str(&mut probers, &path);
            probers.push_str(":{");
            push_json_str(&mut probers, handler);
            probers.push(':');
            probers.push_str(&original);
            if let Some(t) = probe.timeout_seconds {
                probers.push_str(",\"timeoutSeconds\":");
                probers.push_str(t.get());
            }
            probers.push('}');
        }
    }
    if probers.is_empty() {
        None
    } else {
        probers.push('}');
        Some(probers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::pod::PodIn;
    use serde_json::json;

    fn run(pod: Value) -> (Value, Option<Value>) {
        let raw = pod.to_string();
        let parsed = PodIn::parse(&raw).expect("pod");
        let containers: Vec<(usize, &ContainerIn<'_>)> =
            parsed.containers().iter().enumerate().collect();
        let mut w = PatchWriter::default();
        let probers = rewrite(&containers, 15020, &mut w);
        let patch: json_patch::Patch = serde_json::from_str(&w.finish()).expect("patch");
        let mut out = pod;
        json_patch::patch(&mut out, &patch).expect("applies");
        (
            out,
            probers.map(|p| serde_json::from_str(&p).expect("probers JSON")),
        )
    }

    #[test]
    fn http_tcp_and_grpc_probes_point_at_the_agent() {
        let (out, probers) = run(json!({"spec": {"containers": [{"name": "web",
            "ports": [{"name": "http", "containerPort": 8080}],
            "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}, "timeoutSeconds": 2, "periodSeconds": 5},
            "readinessProbe": {"tcpSocket": {"port": 8080}},
            "startupProbe": {"grpc": {"port": 9000}}}]}}));
        let c = &out["spec"]["containers"][0];
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"path": "/app-health/web/livez", "port": 15020}, "timeoutSeconds": 2, "periodSeconds": 5})
        );
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet": {"path": "/app-health/web/readyz", "port": 15020}})
        );
        assert_eq!(
            c["startupProbe"],
            json!({"httpGet": {"path": "/app-health/web/startupz", "port": 15020}})
        );
        let probers = probers.expect("probers");
        assert_eq!(
            probers["/app-health/web/livez"],
            json!({"httpGet": {"path": "/live", "port": 8080}, "timeoutSeconds": 2})
        );
        assert_eq!(
            probers["/app-health/web/readyz"],
            json!({"tcpSocket": {"port": 8080}})
        );
        assert_eq!(
            probers["/app-health/web/startupz"],
            json!({"grpc": {"port": 9000}})
        );
    }

    #[test]
    fn https_probes_say_http_explicitly() {
        let (out, probers) = run(json!({"spec": {"containers": [{"name": "s",
            "readinessProbe": {"httpGet": {"port": 8443, "scheme": "HTTPS"}}}]}}));
        assert_eq!(
            out["spec"]["containers"][0]["readinessProbe"]["httpGet"]["scheme"],
            "HTTP"
        );
        assert_eq!(
            probers.expect("probers")["/app-health/s/readyz"]["httpGet"]["scheme"],
            "HTTPS"
        );
    }

    #[test]
    fn exec_probes_and_unresolvable_ports_stay() {
        let pod = json!({"spec": {"containers": [{"name": "w",
            "livenessProbe": {"exec": {"command": ["true"]}},
            "readinessProbe": {"httpGet": {"port": "nope"}}}]}});
        let (out, probers) = run(pod.clone());
        assert_eq!(out, pod);
        assert!(probers.is_none());
    }
}
