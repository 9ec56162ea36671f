//! Pods built from fuzzer input: any patch revhook returns applies cleanly and yields a valid
//! Pod with exactly one istio-proxy (the invariant tests/patch_properties.rs checks in CI).
#![no_main]

use libfuzzer_sys::fuzz_target;
use revhook::core::policy::Policy;
use revhook::core::pod::PodIn;
use revhook::inject::{review_pod, Target};
use serde_json::{json, Value};
use std::sync::OnceLock;

fn snapshot() -> &'static revhook::core::snapshot::Snapshot {
    static SNAPSHOT: OnceLock<revhook::core::snapshot::Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        revhook::sources::config::parse(
            "revisions:\n  - {name: asm-1-23, image: example/proxyv2:1.23.0}\nnamespaces:\n  shop: {istio.io/rev: asm-1-23}\n",
            "fuzz",
        )
        .expect("config")
    })
}

fuzz_target!(|data: &[u8]| {
    // Bytes shape a pod: container names, label keys and values, optional arrays.
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{0}');
    let mut containers = Vec::new();
    for name in parts.by_ref().take(4) {
        let name: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(20).collect();
        if !name.is_empty() && !containers.iter().any(|c: &Value| c["name"] == name) {
            containers.push(json!({"name": name, "image": "x"}));
        }
    }
    if containers.is_empty() {
        containers.push(json!({"name": "app"}));
    }
    let labels: serde_json::Map<String, Value> = parts
        .by_ref()
        .take(6)
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), Value::String(v.to_owned()))
        })
        .filter(|(k, _)| !k.is_empty() && k != "sidecar.istio.io/inject" && k != "istio.io/rev")
        .collect();
    let mut pod = json!({"metadata": {"name": "p", "labels": labels}, "spec": {"containers": containers}});
    if data.first().is_some_and(|b| b & 1 == 1) {
        pod["spec"]["volumes"] = json!([{"name": "istio-envoy", "emptyDir": {}}, {"name": "data"}]);
    }
    if data.first().is_some_and(|b| b & 2 == 2) {
        pod["spec"]["initContainers"] = json!([{"name": "migrate"}]);
    }
    let raw = pod.to_string();
    let Ok(parsed) = PodIn::parse(&raw) else { return };
    let verdict = review_pod(&Target::pod(&parsed, &raw, "shop"), snapshot(), &Policy::default());
    let Some(patch) = verdict.patch else { return };
    let patch: json_patch::Patch = serde_json::from_str(&patch).expect("patch is JSON Patch");
    let mut out = pod.clone();
    json_patch::patch(&mut out, &patch).expect("patch applies");
    let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(out).expect("valid Pod");
    let proxies = typed.spec.expect("spec").containers.iter().filter(|c| c.name == "istio-proxy").count();
    assert_eq!(proxies, 1);
});
