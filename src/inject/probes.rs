//! App probe rewriting: the kubelet cannot reach an app's HTTP/TCP/gRPC probe through the
//! sidecar's redirection (and mTLS), so each probe is pointed at the agent's status port
//! (`/app-health/<container>/<livez|readyz|startupz>`), and the agent runs the original,
//! which it reads from `ISTIO_KUBE_APP_PROBERS`.

use serde_json::{json, Map, Value};

/// One rewritten probe: the container index, the probe field, and its new value.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewrite {
    pub container: usize,
    pub field: &'static str,
    pub probe: Value,
}

/// What rewriting a pod's probes produces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rewritten {
    pub rewrites: Vec<Rewrite>,
    /// Value of `ISTIO_KUBE_APP_PROBERS`, when any probe was rewritten.
    pub probers: Option<String>,
}

const KINDS: [(&str, &str); 3] = [
    ("livenessProbe", "livez"),
    ("readinessProbe", "readyz"),
    ("startupProbe", "startupz"),
];

/// A named port resolved against the container's ports; numbers pass through.
fn resolve_port(port: &Value, container: &Value) -> Option<Value> {
    match port {
        Value::Number(_) => Some(port.clone()),
        Value::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Some(json!(n));
            }
            container["ports"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == *name)
                .map(|p| p["containerPort"].clone())
        }
        _ => None,
    }
}

/// Rewrites the probes of `containers` (the pod's app containers, with their indices).
pub fn rewrite<'c>(
    containers: impl IntoIterator<Item = (usize, &'c Value)>,
    status_port: u16,
) -> Rewritten {
    let mut out = Rewritten::default();
    let mut probers = Map::new();
    for (index, container) in containers {
        let name = container["name"].as_str().unwrap_or_default();
        for (field, kind) in KINDS {
            let probe = &container[field];
            let Some(original) = prober(probe, container) else {
                continue;
            };
            let path = format!("/app-health/{name}/{kind}");
            let mut new_probe = probe.clone();
            let mut http = json!({"path": path, "port": status_port});
            // The agent serves plain HTTP; an explicit scheme (HTTPS) must say so.
            if probe["httpGet"].get("scheme").is_some() {
                http["scheme"] = json!("HTTP");
            }
            if let Some(obj) = new_probe.as_object_mut() {
                obj.remove("tcpSocket");
                obj.remove("grpc");
                obj.insert("httpGet".into(), http);
            }
            probers.insert(path, original);
            out.rewrites.push(Rewrite {
                container: index,
                field,
                probe: new_probe,
            });
        }
    }
    if !probers.is_empty() {
        out.probers = Some(Value::Object(probers).to_string());
    }
    out
}

/// The original probe as the agent needs it, or `None` for probes that stay as they are
/// (`exec`, or a port that cannot be resolved).
fn prober(probe: &Value, container: &Value) -> Option<Value> {
    let mut entry = Map::new();
    if let Some(http) = probe["httpGet"].as_object() {
        let mut http = http.clone();
        let port = resolve_port(http.get("port")?, container)?;
        http.insert("port".into(), port);
        entry.insert("httpGet".into(), Value::Object(http));
    } else if let Some(tcp) = probe["tcpSocket"].as_object() {
        let port = resolve_port(tcp.get("port")?, container)?;
        entry.insert("tcpSocket".into(), json!({"port": port}));
    } else if let Some(grpc) = probe["grpc"].as_object() {
        entry.insert("grpc".into(), Value::Object(grpc.clone()));
    } else {
        return None;
    }
    if let Some(t) = probe.get("timeoutSeconds") {
        entry.insert("timeoutSeconds".into(), t.clone());
    }
    Some(Value::Object(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_tcp_and_grpc_probes_point_at_the_agent() {
        let c = json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}],
            "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}, "timeoutSeconds": 2, "periodSeconds": 5},
            "readinessProbe": {"tcpSocket": {"port": 8080}},
            "startupProbe": {"grpc": {"port": 9000}}});
        let r = rewrite([(0, &c)], 15020);
        assert_eq!(r.rewrites.len(), 3);
        assert_eq!(
            r.rewrites[0].probe,
            json!({"httpGet": {"path": "/app-health/web/livez", "port": 15020}, "timeoutSeconds": 2, "periodSeconds": 5})
        );
        assert_eq!(
            r.rewrites[1].probe,
            json!({"httpGet": {"path": "/app-health/web/readyz", "port": 15020}})
        );
        let probers: Value =
            serde_json::from_str(r.probers.as_deref().expect("probers")).expect("json");
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
    fn exec_probes_and_unresolvable_ports_stay() {
        let c = json!({"name": "w", "livenessProbe": {"exec": {"command": ["true"]}},
            "readinessProbe": {"httpGet": {"port": "nope"}}});
        let r = rewrite([(0, &c)], 15020);
        assert!(r.rewrites.is_empty());
        assert!(r.probers.is_none());
    }
}
