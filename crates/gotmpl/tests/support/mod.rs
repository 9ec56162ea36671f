//! Template data for Istio's stock templates, shared by the corpus test and the bench:
//! `SidecarTemplateData` for `inject/hello.yaml`'s pod with a version's settings.
#![allow(dead_code)]

use gotmpl::{from_json, istio};
use serde_json::{json, Value as J};
use std::path::Path;

pub fn yaml_file(path: &Path) -> J {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    goyaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `mesh.DefaultProxyConfig()` as protobuf JSON (read from the versions' `mesh/mesh.go`).
pub fn default_proxy_config() -> J {
    json!({
        "configPath": "./etc/istio/proxy",
        "binaryPath": "/usr/local/bin/envoy",
        "serviceCluster": "istio-proxy",
        "drainDuration": "45s",
        "discoveryAddress": "istiod.istio-system.svc:15012",
        "proxyAdminPort": 15000,
        "controlPlaneAuthPolicy": "MUTUAL_TLS",
        "statNameLength": 189,
        "statusPort": 15020,
        "terminationDrainDuration": "5s"
    })
}

/// The mesh config of a default install (what `default.mesh.gen.yaml` holds).
pub fn default_mesh() -> J {
    json!({
        "defaultConfig": {"discoveryAddress": "istiod.istio-system.svc:15012"},
        "defaultProviders": {"metrics": ["prometheus"]},
        "enablePrometheusMerge": true,
        "rootNamespace": "istio-system",
        "trustDomain": "cluster.local"
    })
}

/// The chart defaults: under `defaults:` (1.22–1.23) or `_internal_defaults_do_not_set:`.
pub fn chart_values(version: &Path) -> J {
    let v = yaml_file(&version.join("chart/values.yaml"));
    let defaults = v
        .get("_internal_defaults_do_not_set")
        .or_else(|| v.get("defaults"))
        .cloned()
        .expect("values.yaml has no defaults section");
    assert!(
        defaults.get("global").is_some(),
        "{}: no global values",
        version.display()
    );
    defaults
}

/// The first Deployment of `inject/hello.yaml`.
pub fn hello_deployment(version: &Path) -> J {
    let text = std::fs::read_to_string(version.join("inject/hello.yaml")).unwrap();
    goyaml::from_str(&text).unwrap()
}

/// `SidecarTemplateData` for the deployment's pod, as istiod builds it for kube-inject.
/// `SidecarTemplateData` of Istio 1.`minor` (`u32::MAX`: master) for a workload.
pub fn template_data(
    minor: u32,
    deployment: &J,
    values: &J,
    mesh: &J,
    native_sidecars: bool,
) -> gotmpl::Value {
    let mut proxy = default_proxy_config();
    if let (Some(p), Some(J::Object(over))) = (proxy.as_object_mut(), mesh.get("defaultConfig")) {
        p.extend(over.clone());
    }
    let mut mesh = mesh.clone();
    mesh["defaultConfig"] = proxy.clone();
    let image = proxy_image(&values["global"]);
    let pod = &deployment["spec"]["template"];
    let data = json!({
        "typeMeta": {"kind": deployment["kind"], "apiVersion": deployment["apiVersion"]},
        "deploymentMeta": {"name": deployment["metadata"]["name"], "namespace": ""},
        "objectMeta": pod["metadata"],
        "spec": pod["spec"],
        "proxyConfig": proxy,
        "meshConfig": mesh,
        "values": values,
        "revision": "default",
        "proxyImage": image,
        "proxyInitImage": image,
        "proxyUID": 1337,
        "proxyGID": 1337,
        "nativeSidecars": native_sidecars
    });
    from_json(&data, &istio::sidecar_template_data_for(minor))
}

/// istiod's `ProxyImage`: `hub/name:tag`, the name `global.proxy.image` or `proxyv2`
/// (image variants are not modelled).
pub fn proxy_image(global: &J) -> String {
    let name = global["proxy"]["image"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("proxyv2");
    let tag = match &global["tag"] {
        J::String(s) => s.clone(),
        J::Null => String::new(),
        other => other.to_string(),
    };
    format!("{}/{name}:{tag}", global["hub"].as_str().unwrap_or(""))
}

/// The minor version of an `istio-1.NN.0` folder; `u32::MAX` for `istio-master`.
pub fn minor_of(version: &Path) -> u32 {
    let name = version
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    name.trim_start_matches("istio-1.")
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(u32::MAX)
}
