//! Property: for any pod revhook injects, the patch applies, the result is a valid Pod with
//! exactly one `istio-proxy`, and the pod's own containers, init containers, volumes and
//! labels are unchanged.

use std::collections::BTreeMap;

use proptest::prelude::*;
use revhook::core::pod::PodIn;
use revhook::core::policy::Policy;
use revhook::core::snapshot::Snapshot;
use revhook::inject::{review_pod, Target};
use revhook::sources::config;
use serde_json::{json, Value};

fn snapshot() -> Snapshot {
    config::parse(
        "revisions:\n  - {name: asm-1-22, image: example/proxyv2:1.22.0}\n  - {name: asm-1-23, image: example/proxyv2:1.23.0}\n\
         tags: {default: asm-1-22}\nnamespaces:\n  shop: {istio.io/rev: asm-1-23}\n",
        "proptest",
    )
    .expect("config")
}

fn container(name: String, ports: Vec<u16>, env: usize) -> Value {
    let ports: Vec<Value> = ports
        .into_iter()
        .map(|p| json!({"containerPort": i32::from(p).max(1), "protocol": "TCP"}))
        .collect();
    let env: Vec<Value> = (0..env)
        .map(|i| json!({"name": format!("VAR_{i}"), "value": "x".repeat(i % 7)}))
        .collect();
    json!({"name": name, "image": "example/app:1", "ports": ports, "env": env})
}

prop_compose! {
    fn label_key()(prefix in "[a-z]{1,8}(\\.[a-z]{1,5})?", sep in prop::sample::select(vec!["/", "~", "-", "_"]), name in "[a-z0-9]{1,8}") -> String {
        // Real keys cannot hold `~`, but a patch path must escape whatever it is given.
        format!("{prefix}{sep}{name}")
    }
}

prop_compose! {
    fn arb_pod()(
        names in prop::collection::btree_set("[a-z][a-z0-9-]{0,10}[a-z0-9]", 1..6),
        custom_proxy in any::<bool>(),
        ports in prop::collection::vec(prop::collection::vec(1u16..65535, 0..3), 6),
        env in prop::collection::vec(0usize..12, 6),
        init in prop::collection::btree_set("init-[a-z]{1,6}", 0..3),
        volumes in prop::collection::btree_set(prop::sample::select(vec!["data", "cache", "istio-envoy", "istio-data", "config"]), 0..4),
        labels in prop::option::of(prop::collection::btree_map(label_key(), "[a-z0-9]{0,10}", 0..5)),
        annotations in prop::option::of(prop::collection::btree_map(label_key(), ".{0,20}", 0..4)),
        has_init in any::<bool>(),
        has_volumes in any::<bool>(),
        opt_in in any::<bool>(),
    ) -> Value {
        let mut containers: Vec<Value> = names
            .into_iter()
            .filter(|n| n != "istio-proxy")
            .enumerate()
            .map(|(i, n)| container(n, ports[i].clone(), env[i]))
            .collect();
        if custom_proxy {
            containers.push(json!({"name": "istio-proxy", "image": "auto", "resources": {"requests": {"cpu": "10m"}}}));
        }
        let mut spec = json!({"containers": containers});
        if has_init {
            spec["initContainers"] = Value::Array(init.into_iter().map(|n| container(n, vec![], 1)).collect());
        }
        if has_volumes {
            spec["volumes"] = Value::Array(volumes.into_iter().map(|n| json!({"name": n, "emptyDir": {}})).collect());
        }
        let mut metadata = json!({"name": "p"});
        let mut labels: Option<BTreeMap<String, String>> = labels;
        if opt_in {
            labels.get_or_insert_with(BTreeMap::new).insert("sidecar.istio.io/inject".into(), "true".into());
        }
        if let Some(l) = labels {
            metadata["labels"] = json!(l);
        }
        if let Some(a) = annotations {
            metadata["annotations"] = json!(a);
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
    }
}

fn names(v: &Value, array: &str) -> Vec<String> {
    v["spec"][array]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_injected_pod_is_valid_with_one_proxy_and_its_own_parts_unchanged(pod in arb_pod()) {
        let snap = snapshot();
        let raw = pod.to_string();
        let parsed = PodIn::parse(&raw).expect("generated pods parse");
        let verdict = review_pod(&Target::pod(&parsed, &raw, "shop"), &snap, &Policy::default());
        prop_assert!(verdict.allowed);
        let patch = verdict.patch.expect("shop selects a revision: a patch");
        let ops: json_patch::Patch = serde_json::from_str(&patch).expect("patch JSON");
        let mut out = pod.clone();
        json_patch::patch(&mut out, &ops).expect("the patch applies");

        serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(out.clone()).expect("a valid Pod");
        let containers = names(&out, "containers");
        prop_assert_eq!(containers.iter().filter(|n| *n == "istio-proxy").count(), 1);

        let own = |v: &Value, array: &str| -> Vec<Value> {
            v["spec"][array].as_array().cloned().unwrap_or_default()
                .into_iter().filter(|c| !matches!(c["name"].as_str(), Some("istio-proxy" | "istio-init"))).collect()
        };
        prop_assert_eq!(own(&out, "containers"), own(&pod, "containers"));
        prop_assert_eq!(own(&out, "initContainers"), own(&pod, "initContainers"));
        let inits = names(&out, "initContainers");
        prop_assert_eq!(inits.last().map(String::as_str), Some("istio-init"));

        let vols = names(&out, "volumes");
        let mut unique = vols.clone();
        unique.sort();
        unique.dedup();
        prop_assert_eq!(unique.len(), vols.len(), "no duplicate volume names: {:?}", vols);
        for v in names(&pod, "volumes") {
            prop_assert!(vols.contains(&v));
        }
        if let Some(labels) = pod["metadata"]["labels"].as_object() {
            for (k, v) in labels {
                if !k.starts_with("security.istio.io/") && !k.starts_with("service.istio.io/") {
                    prop_assert_eq!(&out["metadata"]["labels"][k], v);
                }
            }
        }
        prop_assert_eq!(&out["metadata"]["annotations"]["istio.io/rev"], "asm-1-23");

        // A second pass (an injected pod is injected again, as istiod does) changes nothing,
        // except for a pod with its own istio-proxy: istiod's re-injection does not lay the
        // pod's own fields over the new sidecar again (they are in the status annotation), so
        // they give way to the template's, and revhook does what istiod does (Istio's injector,
        // tests/istio-oracle, turns such a pod's 10m CPU request into the template's 100m the
        // same way). The shipped webhooks use reinvocationPolicy Never, as Istio's do.
        let raw2 = out.to_string();
        let parsed2 = PodIn::parse(&raw2).expect("injected pod parses");
        let again = review_pod(&Target::pod(&parsed2, &raw2, "shop"), &snap, &Policy::default());
        prop_assert!(again.allowed);
        let custom_proxy = names(&pod, "containers").iter().any(|n| n == "istio-proxy");
        if !custom_proxy {
            prop_assert!(again.patch.is_none(), "{:?}", again.patch);
        }
    }
}
