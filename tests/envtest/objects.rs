//! Objects for the API server: YAML applied by server-side apply (as `kubectl apply
//! --server-side` does), revhook's webhook configurations as the shipped manifests define
//! them, and the reads the tests assert on.

use std::path::{Path, PathBuf};

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde_json::{json, Value};

pub const FIELD_MANAGER: &str = "envtest";

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The YAML documents of a file in the repository, as JSON values (empty documents dropped).
pub fn yaml_file(rel: &str) -> Vec<Value> {
    let path = repo_path(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_docs(&text)
}

pub fn yaml_docs(text: &str) -> Vec<Value> {
    revhook::core::yaml::documents(text).expect("YAML documents")
}

/// The API for an object's kind (discovered from the server, so any kind works).
pub async fn api_for(client: &Client, obj: &Value) -> Api<DynamicObject> {
    let api_version = obj["apiVersion"].as_str().expect("apiVersion");
    let kind = obj["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("discover {api_version} {kind}: {e}"));
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) if caps.scope == kube::discovery::Scope::Namespaced => {
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        _ => Api::all_with(client.clone(), &resource),
    }
}

/// Server-side applies one object; the API server's answer (or its refusal) is returned.
pub async fn try_apply(client: &Client, obj: &Value) -> Result<DynamicObject, kube::Error> {
    let name = obj["metadata"]["name"].as_str().expect("metadata.name");
    let api = api_for(client, obj).await;
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
}

pub async fn apply(client: &Client, obj: &Value) -> DynamicObject {
    try_apply(client, obj)
        .await
        .unwrap_or_else(|e| panic!("apply {} {}: {e}", obj["kind"], obj["metadata"]["name"]))
}

pub async fn apply_all(client: &Client, docs: &[Value]) {
    for doc in docs {
        apply(client, doc).await;
    }
}

/// revhook's webhook configurations from `manifests/base` (same rules, selectors,
/// failurePolicy, timeouts, sideEffects, reinvocationPolicy), each webhook's `clientConfig`
/// replaced by `client_config(shipped)`, `shipped` being the manifest's own clientConfig.
pub fn shipped_webhooks(client_config: impl Fn(&Value) -> Value) -> Vec<Value> {
    let mut docs = yaml_file("manifests/base/mutatingwebhook.yaml");
    docs.extend(yaml_file("manifests/base/validatingwebhook.yaml"));
    webhooks_calling(docs, client_config)
}

/// The webhook configurations among `docs` (what `kustomize build` of an overlay renders),
/// each webhook's `clientConfig` replaced by `client_config(shipped)`.
pub fn webhooks_calling(docs: Vec<Value>, client_config: impl Fn(&Value) -> Value) -> Vec<Value> {
    let mut docs: Vec<Value> = docs
        .into_iter()
        .filter(|d| {
            d["kind"] == "MutatingWebhookConfiguration"
                || d["kind"] == "ValidatingWebhookConfiguration"
        })
        .collect();
    for doc in &mut docs {
        let hooks = doc["webhooks"].as_array_mut().expect("webhooks");
        for hook in hooks {
            hook["clientConfig"] = client_config(&hook["clientConfig"]);
        }
    }
    docs
}

/// `clientConfig.url` (`base_url` + the shipped service path) with a caBundle (empty
/// string: none, as shipped).
pub fn url_client_config<'a>(base_url: &'a str, ca_bundle: &str) -> impl Fn(&Value) -> Value + 'a {
    let ca = ca_bundle.to_owned();
    move |shipped| {
        let path = shipped["service"]["path"]
            .as_str()
            .expect("shipped webhooks name a service path");
        json!({"url": format!("{base_url}{path}"), "caBundle": ca})
    }
}

/// The shipped `clientConfig.service` as it is, with a caBundle.
pub fn service_client_config(ca_bundle: &str) -> impl Fn(&Value) -> Value {
    let ca = ca_bundle.to_owned();
    move |shipped| json!({"service": shipped["service"], "caBundle": ca})
}

/// A JSON value as a k8s-openapi type.
pub fn typed<T: serde::de::DeserializeOwned>(v: impl serde::Serialize) -> T {
    serde_json::from_value(serde_json::to_value(v).expect("serialize")).expect("typed")
}

/// A value as JSON (for field-by-field assertions on typed objects).
pub fn value(v: impl serde::Serialize) -> Value {
    serde_json::to_value(v).expect("serialize")
}

/// The message of an API error (a webhook's denial is `Status.message`).
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// A token of a ServiceAccount from the TokenRequest API (what the kubelet mounts into a pod).
pub async fn service_account_token(client: &Client, namespace: &str, name: &str) -> String {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request: TokenRequest = typed(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600}
    }));
    let answer: TokenRequest = sas
        .create_subresource("token", name, &kube::api::PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{name}: {e}"));
    answer.status.expect("token status").token
}

/// The `helm` binary: on PATH, else where `.ci/run` builds it (`target/tools/bin/helm`).
pub fn helm() -> PathBuf {
    let built = repo_path("target/tools/bin/helm");
    if built.is_file() {
        return built;
    }
    PathBuf::from("helm")
}

/// The Istio reference chart folder for a tag such as `1.22.3` (`istio-1.22.0`).
fn istio_reference_for(tag: &str) -> PathBuf {
    let mut parts = tag.split('.');
    let (major, minor) = (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"));
    repo_path(&format!("../shared/reference/istio-{major}.{minor}.0"))
}

/// A fixture's injector ConfigMaps made real: each is replaced by what Istio's own chart of
/// the version its `values.global.tag` names renders (`helm template` of the istiod chart in
/// `../shared/reference`, with the fixture's values as Helm values), so its templates are
/// that Istio version's own; the revision's mesh ConfigMap (`istio-<rev>`) the chart renders
/// is added beside it.
pub fn with_istio_charts(docs: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for doc in docs {
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        let injector = doc["kind"] == "ConfigMap" && name.starts_with("istio-sidecar-injector");
        if !injector {
            out.push(doc);
            continue;
        }
        let values: Value = serde_json::from_str(doc["data"]["values"].as_str().expect("values"))
            .expect("fixture values are JSON");
        let rendered = render_istiod_chart(
            &values,
            doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or("istio-system"),
        );
        let revision = values["revision"].as_str().unwrap_or_default();
        let mesh_name = if revision.is_empty() {
            "istio".to_owned()
        } else {
            format!("istio-{revision}")
        };
        let pick = |n: &str| {
            rendered
                .iter()
                .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == n)
                .cloned()
                .unwrap_or_else(|| panic!("the chart rendered no ConfigMap {n}"))
        };
        let mut real = doc.clone();
        real["data"] = pick(name)["data"].clone();
        out.push(real);
        out.push(pick(&mesh_name));
    }
    out
}

fn render_istiod_chart(values: &Value, namespace: &str) -> Vec<Value> {
    let tag = values["global"]["tag"].as_str().expect("values.global.tag");
    let chart = istio_reference_for(tag).join("chart");
    assert!(
        chart.is_dir(),
        "{} is missing (../shared beside the repository)",
        chart.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("values.json");
    std::fs::write(&file, values.to_string()).expect("write values");
    let out = std::process::Command::new(helm())
        .args(["template", "istiod"])
        .arg(&chart)
        .args(["--namespace", namespace, "--values"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("helm (needed to render Istio's charts): {e}"));
    assert!(
        out.status.success(),
        "helm template {}: {}",
        chart.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_docs(&String::from_utf8_lossy(&out.stdout))
}

/// The AKS add-on fixture (`tests/fixtures/kube/aks-istio.yaml`) in `namespace`, its injector
/// ConfigMaps made real by [`with_istio_charts`].
pub fn istio_fixture_in(namespace: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_path("tests/fixtures/kube/aks-istio.yaml"))
        .expect("fixture")
        .replace("aks-istio-system", namespace);
    with_istio_charts(yaml_docs(&text))
}

/// revhook's Namespace and Service as `manifests/base` ships them, the Service without its
/// selector: nothing but the test writes its Endpoints (a cluster's endpoints controller
/// writes the ready pods' addresses; no kubelet runs pods here).
pub fn revhook_namespace_and_service() -> Vec<Value> {
    let mut docs = yaml_file("manifests/base/namespace.yaml");
    for mut svc in yaml_file("manifests/base/service.yaml") {
        if let Some(spec) = svc["spec"].as_object_mut() {
            spec.remove("selector");
        }
        docs.push(svc);
    }
    docs
}

/// The Endpoints of revhook's Service as the endpoints controller writes them: ready replicas
/// under `addresses`, the others under `notReadyAddresses` (the API server calls only the
/// former); revhook listens on the shipped ports inside each network namespace.
pub fn revhook_endpoints(ready: &[std::net::IpAddr], not_ready: &[std::net::IpAddr]) -> Value {
    let addresses = |ips: &[std::net::IpAddr]| -> Vec<Value> {
        ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect()
    };
    let mut subset = json!({
        "ports": [
            {"name": "https-webhook", "port": 15017, "protocol": "TCP"},
            {"name": "http-admin", "port": 15014, "protocol": "TCP"}
        ]
    });
    if !ready.is_empty() {
        subset["addresses"] = json!(addresses(ready));
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(addresses(not_ready));
    }
    let subsets = if ready.is_empty() && not_ready.is_empty() {
        json!([])
    } else {
        json!([subset])
    };
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "revhook", "namespace": "revhook-system"},
        "subsets": subsets
    })
}

/// revhook's serving certificate as the self-managed overlay stores it (`revhook-tls`:
/// `ca.crt`, `tls.crt`, `tls.key`), which `check` verifies the caBundle against.
pub fn revhook_tls_secret(tls: &super::Tls) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "revhook-tls", "namespace": "revhook-system"},
        "type": "Opaque",
        "stringData": {"ca.crt": tls.ca_pem, "tls.crt": tls.cert_pem, "tls.key": tls.key_pem}
    })
}

/// What `kubectl get namespaces,pods,configmaps,mutatingwebhookconfigurations,
/// validatingwebhookconfigurations,services,deployments,statefulsets,replicasets,
/// endpointslices,events -A -o json` writes (the README's dump for `revhook check
/// --from-file`), as one List written to `path`.
pub async fn dump(client: &Client, path: &Path) {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    async fn all<K>(client: &Client) -> Vec<Value>
    where
        K: kube::Resource
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::all(client.clone());
        api.list(&kube::api::ListParams::default())
            .await
            .expect("list for the dump")
            .items
            .into_iter()
            .map(value)
            .collect()
    }
    let mut items = all::<Namespace>(client).await;
    items.extend(all::<Pod>(client).await);
    items.extend(all::<ConfigMap>(client).await);
    items.extend(all::<MutatingWebhookConfiguration>(client).await);
    items.extend(all::<ValidatingWebhookConfiguration>(client).await);
    items.extend(all::<Service>(client).await);
    items.extend(all::<Deployment>(client).await);
    items.extend(all::<StatefulSet>(client).await);
    items.extend(all::<ReplicaSet>(client).await);
    items.extend(all::<EndpointSlice>(client).await);
    items.extend(all::<Event>(client).await);
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    std::fs::write(path, list.to_string()).expect("write the dump");
}

/// A merge patch of an object at `path` (`/api/v1/namespaces/shop`), as kubectl sends it:
/// the stored object, or the API server's refusal; and the warnings it answered with (the
/// lines kubectl prints as `Warning: ...`).
pub async fn merge_patch(
    client: &Client,
    path: &str,
    patch: &Value,
) -> (Result<Value, String>, Vec<String>) {
    let request = hyper::Request::patch(path)
        .header("content-type", "application/merge-patch+json")
        .body(kube::client::Body::from(patch.to_string().into_bytes()))
        .expect("request");
    let response = client.send(request).await.expect("API server answers");
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .map(warning_text)
        .collect();
    let status = response.status();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .expect("response body");
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let result = if status.is_success() {
        Ok(body)
    } else {
        Err(body["message"].as_str().unwrap_or_default().to_owned())
    };
    (result, warnings)
}

/// The text of a `Warning: 299 - "text"` header (RFC 7234), unescaped.
fn warning_text(header: &str) -> String {
    let quoted = header
        .split_once(" - ")
        .map_or(header, |(_, q)| q)
        .trim_matches('"');
    quoted.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// The caBundles of revhook's two webhook configurations, webhook by webhook.
pub async fn revhook_ca_bundles(client: &Client) -> Vec<(String, Vec<u8>)> {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    let m: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let v: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mut out = Vec::new();
    for hook in m
        .get("revhook")
        .await
        .expect("mwc")
        .webhooks
        .unwrap_or_default()
    {
        out.push((
            hook.name,
            hook.client_config
                .ca_bundle
                .map(|b| b.0)
                .unwrap_or_default(),
        ));
    }
    for hook in v
        .get("revhook")
        .await
        .expect("vwc")
        .webhooks
        .unwrap_or_default()
    {
        out.push((
            hook.name,
            hook.client_config
                .ca_bundle
                .map(|b| b.0)
                .unwrap_or_default(),
        ));
    }
    out
}
