//! App probe rewriting (istiod's `app_probe.go`): the kubelet cannot reach an app's HTTP,
//! TCP or gRPC probe through the sidecar's redirection (and mTLS), so each probe is pointed
//! at the agent's status port (`/app-health/<container>/<livez|readyz|startupz>`), and the
//! agent runs the original, which it reads from `ISTIO_KUBE_APP_PROBERS`. From Istio 1.25 the
//! HTTP and TCP lifecycle hooks are handled the same way (`/app-lifecycle/...`).

use serde_json::{json, Map, Value};

use super::pod::{self, PROXY_NAME};

pub const PROBERS_ENV: &str = "ISTIO_KUBE_APP_PROBERS";

const PROBES: [(&str, &str); 3] = [
    ("readinessProbe", "readyz"),
    ("livenessProbe", "livez"),
    ("startupProbe", "startupz"),
];
const HOOKS: [(&str, &str); 2] = [("preStop", "prestopz"), ("postStart", "poststartz")];

fn probe_url(container: &str, kind: &str) -> String {
    format!("/app-health/{container}/{kind}")
}

fn hook_url(container: &str, kind: &str) -> String {
    format!("/app-lifecycle/{container}/{kind}")
}

/// The init containers, then the containers (istiod's `allContainers`), without the proxy.
fn app_containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(move |k| pod["spec"][k].as_array().into_iter().flatten())
        .filter(|c| c["name"] != PROXY_NAME)
}

/// `DumpAppProbers`: the original probes (named ports resolved) as the agent reads them, or
/// `None` when there are none. Probes already pointing at `status_port` are left out.
pub fn dump_app_probers(pod: &Value, status_port: i64, lifecycle: bool) -> Option<String> {
    let mut out = Map::new();
    for c in app_containers(pod) {
        let name = c["name"].as_str().unwrap_or_default();
        for (field, kind) in PROBES {
            let prober = internal_prober(&c[field], true);
            if let Some(p) = prober.and_then(|p| resolve_named_port(p, c, status_port)) {
                out.insert(probe_url(name, kind), p);
            }
        }
        if !lifecycle {
            continue;
        }
        for (field, kind) in HOOKS {
            let prober = internal_prober(&c["lifecycle"][field], false);
            if let Some(p) = prober.and_then(|p| resolve_named_port(p, c, status_port)) {
                out.insert(hook_url(name, kind), p);
            }
        }
    }
    (!out.is_empty()).then(|| Value::Object(out).to_string())
}

/// `kubeProbeToInternalProber`: the handler (and a probe's timeout) of a probe or hook.
fn internal_prober(handler: &Value, with_timeout: bool) -> Option<Value> {
    let mut p = Map::new();
    let kind = ["httpGet", "tcpSocket", "grpc"]
        .into_iter()
        .take(if with_timeout { 3 } else { 2 })
        .find(|k| handler[*k].is_object())?;
    p.insert(kind.to_owned(), handler[kind].clone());
    if with_timeout {
        if let Some(t) = handler["timeoutSeconds"].as_i64().filter(|t| *t != 0) {
            p.insert("timeoutSeconds".into(), Value::from(t));
        }
    }
    Some(Value::Object(p))
}

/// `updateNamedPort`: a named port becomes its number (a name the container lacks drops the
/// probe); a probe already on the status port is dropped; gRPC probes are kept as they are.
fn resolve_named_port(mut p: Value, container: &Value, status_port: i64) -> Option<Value> {
    if p.get("grpc").is_some() {
        return Some(p);
    }
    let handler = if p.get("httpGet").is_some() {
        "httpGet"
    } else {
        "tcpSocket"
    };
    let port = &mut p[handler]["port"];
    match port {
        Value::String(name) => {
            let number = container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|cp| cp["name"] == name.as_str() && !name.is_empty())
                .and_then(|cp| cp["containerPort"].as_i64())?;
            *port = Value::from(number);
        }
        Value::Number(n) if n.as_i64() == Some(status_port) => return None,
        _ => {}
    }
    Some(p)
}

/// `mergeOrAppendProbers`: a fresh injection appends the env entry; a re-injection merges
/// the earlier entry's probers over the new ones.
pub fn set_probers_env(pod: &mut Value, probers: String, previously_injected: bool) {
    let Some(proxy) = pod::find_in_pod_mut(pod, PROXY_NAME).and_then(pod::object_mut) else {
        return;
    };
    let env = proxy
        .entry("env")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = env.as_array_mut() else {
        return;
    };
    if previously_injected {
        if let Some(existing) = list.iter_mut().find(|e| e["name"] == PROBERS_ENV) {
            let old: Option<Map<String, Value>> = existing["value"]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok());
            let new: Option<Map<String, Value>> = serde_json::from_str(&probers).ok();
            if let (Some(old), Some(mut new)) = (old, new) {
                new.extend(old);
                *existing = json!({"name": PROBERS_ENV, "value": Value::Object(new).to_string()});
            }
            return;
        }
    }
    list.push(json!({"name": PROBERS_ENV, "value": probers}));
}

/// `patchRewriteProbe`: every app container's probes (and, from 1.25, HTTP/TCP lifecycle
/// hooks) point at the agent on `status_port`.
pub fn rewrite_probes(pod: &mut Value, status_port: i64, lifecycle: bool) {
    for key in ["containers", "initContainers"] {
        let Some(list) = pod::existing_list_mut(pod, key) else {
            continue;
        };
        for c in list.iter_mut().filter(|c| c["name"] != PROXY_NAME) {
            rewrite_container(c, status_port, lifecycle);
        }
    }
}

fn rewrite_container(c: &mut Value, status_port: i64, lifecycle: bool) {
    let name = c["name"].as_str().unwrap_or_default().to_owned();
    for (field, kind) in PROBES {
        if let Some(probe) = c.get_mut(field).filter(|p| p.is_object()) {
            point_at_agent(probe, &probe_url(&name, kind), status_port, true);
        }
    }
    if !lifecycle {
        return;
    }
    for (field, kind) in HOOKS {
        if let Some(hook) = c
            .get_mut("lifecycle")
            .and_then(|l| l.get_mut(field))
            .filter(|h| h.is_object())
        {
            point_at_agent(hook, &hook_url(&name, kind), status_port, false);
        }
    }
}

/// `convertAppProber` / `convertAppLifecycleHandler`: an HTTP handler gets the agent's path
/// and port (HTTPS becomes HTTP: the agent calls the app over TLS); a TCP (or, for probes,
/// gRPC) handler becomes an HTTP one to the agent.
fn point_at_agent(handler: &mut Value, url: &str, status_port: i64, grpc_too: bool) {
    let Some(h) = handler.as_object_mut() else {
        return;
    };
    if let Some(http) = h.get_mut("httpGet").and_then(Value::as_object_mut) {
        http.insert("port".into(), Value::from(status_port));
        http.insert("path".into(), Value::String(url.to_owned()));
        if http.get("scheme").and_then(Value::as_str) == Some("HTTPS") {
            http.insert("scheme".into(), json!("HTTP"));
        }
        return;
    }
    let replaced = if h.contains_key("tcpSocket") {
        "tcpSocket"
    } else if grpc_too && h.contains_key("grpc") {
        "grpc"
    } else {
        return;
    };
    h.remove(replaced);
    h.insert("httpGet".into(), json!({"path": url, "port": status_port}));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"spec": {"containers": [
            {"name": "app", "ports": [{"name": "http", "containerPort": 8080}],
             "readinessProbe": {"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTPS"}, "timeoutSeconds": 2},
             "livenessProbe": {"tcpSocket": {"port": 9000}},
             "startupProbe": {"grpc": {"port": 7000}},
             "lifecycle": {"preStop": {"httpGet": {"path": "/stop", "port": 8080}}}},
            {"name": "istio-proxy", "env": [], "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}}}
        ]}})
    }

    #[test]
    fn probers_are_dumped_with_named_ports_resolved() {
        let dumped = dump_app_probers(&pod(), 15020, true).expect("probers");
        let v: Value = serde_json::from_str(&dumped).expect("json");
        assert_eq!(
            v["/app-health/app/readyz"],
            json!({"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTPS"}, "timeoutSeconds": 2})
        );
        assert_eq!(
            v["/app-health/app/livez"],
            json!({"tcpSocket": {"port": 9000}})
        );
        assert_eq!(
            v["/app-health/app/startupz"],
            json!({"grpc": {"port": 7000}})
        );
        assert_eq!(
            v["/app-lifecycle/app/prestopz"],
            json!({"httpGet": {"path": "/stop", "port": 8080}})
        );
        let old = dump_app_probers(&pod(), 15020, false).expect("probers");
        assert!(!old.contains("app-lifecycle"));
    }

    #[test]
    fn probes_point_at_the_agent() {
        let mut p = pod();
        rewrite_probes(&mut p, 15020, true);
        let app = &p["spec"]["containers"][0];
        assert_eq!(
            app["readinessProbe"],
            json!({"httpGet": {"path": "/app-health/app/readyz", "port": 15020, "scheme": "HTTP"}, "timeoutSeconds": 2})
        );
        assert_eq!(
            app["livenessProbe"],
            json!({"httpGet": {"path": "/app-health/app/livez", "port": 15020}})
        );
        assert_eq!(
            app["startupProbe"],
            json!({"httpGet": {"path": "/app-health/app/startupz", "port": 15020}})
        );
        assert_eq!(
            app["lifecycle"]["preStop"]["httpGet"]["path"],
            "/app-lifecycle/app/prestopz"
        );
        assert_eq!(
            p["spec"]["containers"][1]["readinessProbe"]["httpGet"]["port"],
            15021
        );
        assert!(
            dump_app_probers(&p, 15020, true).is_none(),
            "already rewritten"
        );
    }

    #[test]
    fn unknown_named_ports_drop_the_prober() {
        let p = json!({"spec": {"containers": [{"name": "a", "readinessProbe": {"httpGet": {"port": "nope"}}}]}});
        assert!(dump_app_probers(&p, 15020, true).is_none());
    }

    #[test]
    fn reinjection_merges_earlier_probers_over_new_ones() {
        let mut p = json!({"spec": {"containers": [{"name": "istio-proxy", "env": [
            {"name": PROBERS_ENV, "value": r#"{"/app-health/a/livez":{"tcpSocket":{"port":1}}}"#}]}]}});
        set_probers_env(
            &mut p,
            r#"{"/app-health/a/livez":{"tcpSocket":{"port":2}},"/app-health/a/readyz":{"tcpSocket":{"port":3}}}"#.into(),
            true,
        );
        let env = &p["spec"]["containers"][0]["env"];
        assert_eq!(env.as_array().map(Vec::len), Some(1));
        let v: Value = serde_json::from_str(env[0]["value"].as_str().expect("str")).expect("json");
        assert_eq!(v["/app-health/a/livez"]["tcpSocket"]["port"], 1);
        assert_eq!(v["/app-health/a/readyz"]["tcpSocket"]["port"], 3);
    }
}
