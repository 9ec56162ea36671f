//! istiod's `injectPod`: the pod with its earlier injection stripped is rendered through the
//! revision's templates, the pod's own containers named like injected ones are laid back over
//! the result (custom injection), and the post-processing istiod does outside the templates
//! follows. The result is the whole injected pod; the patch is its difference from the pod
//! as admitted.

use serde_json::{Map, Value};

use crate::core::injector::{Injector, IstioVersion};

use super::annotations::{self, AnnotationError};
use super::pod::{self, INIT_NAME, PROXY_NAME, VALIDATION_NAME};
use super::postprocess;
use super::render::{self, PodContext, RenderError, Rendered};
use super::strategic::merge_pod;

pub const STATUS_ANNOTATION: &str = "sidecar.istio.io/status";
pub const OVERRIDES_ANNOTATION: &str = "proxy.istio.io/overrides";

/// Why a pod that should be injected could not be.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("{OVERRIDES_ANNOTATION} is not valid JSON of containers: {0}")]
    Overrides(String),
    #[error("the pod's own {name} container cannot be merged: {error}")]
    Reapply { name: String, error: String },
    #[error("post-processing: {0}")]
    PostProcess(String),
}

/// Injects `pod` (as admitted, `managedFields` removed and its namespace set) with the
/// revision's templates. Returns the injected pod.
pub fn inject_pod(
    inj: &Injector,
    pod: &Value,
    ctx: &PodContext<'_>,
    limits: gotmpl::Limits,
) -> Result<Value, PipelineError> {
    validate_annotations(pod)?;
    let envs = cluster_and_network(inj, pod, ctx.proxy_envs);
    let ctx = &PodContext {
        proxy_envs: &envs,
        ..ctx.clone()
    };
    let stripped = reinsert_overrides(strip_pod(pod, inj.status_port(), inj.version))?;
    let Rendered {
        merged,
        template_pod,
    } = render::run_templates(inj, pod, &stripped, ctx, limits)?;
    let mut merged = reapply_overwritten_containers(merged, pod, &template_pod)?;
    adjust_init_container_user(&mut merged, pod, inj, &stripped);
    postprocess::post_process(&mut merged, &template_pod, pod, inj, ctx)
        .map_err(PipelineError::PostProcess)?;
    Ok(merged)
}

/// istiod's `extractClusterAndNetwork`: the revision's cluster name and network, the webhook
/// path's over them, the pod's `topology.istio.io/network` label over all, as the proxy's
/// `ISTIO_META_CLUSTER_ID` / `ISTIO_META_NETWORK` (in name order).
fn cluster_and_network(
    inj: &Injector,
    pod: &Value,
    from_path: &[(String, String)],
) -> Vec<(String, String)> {
    const CLUSTER: &str = "ISTIO_META_CLUSTER_ID";
    const NETWORK: &str = "ISTIO_META_NETWORK";
    let global = &inj.values["global"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let path = |name: &str| {
        from_path
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let cluster = path(CLUSTER).unwrap_or_else(|| text(&global["multiCluster"]["clusterName"]));
    let mut network = path(NETWORK).unwrap_or_else(|| text(&global["network"]));
    if let Some(label) = pod["metadata"]["labels"]["topology.istio.io/network"].as_str() {
        network = label.to_owned();
    }
    [(CLUSTER, cluster), (NETWORK, network)]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn validate_annotations(pod: &Value) -> Result<(), AnnotationError> {
    let Some(map) = pod["metadata"]["annotations"].as_object() else {
        return Ok(());
    };
    annotations::validate(
        map.iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v))),
    )
}

/// The containers an earlier injection's status annotation lists (lenient, as istiod reads it).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectionStatus {
    #[serde(default)]
    pub init_containers: Option<Vec<String>>,
    #[serde(default)]
    pub containers: Option<Vec<String>>,
}

pub fn injection_status(pod: &Value) -> Option<InjectionStatus> {
    serde_json::from_str(pod::annotation(pod, STATUS_ANNOTATION)?).ok()
}

/// istiod's `stripPod`: an earlier injection's containers come out, its prometheus
/// annotations too when they point at the agent, and its status annotation.
fn strip_pod(pod: &Value, status_port: i64, version: IstioVersion) -> Value {
    let Some(status) = injection_status(pod) else {
        return pod.clone();
    };
    let mut out = pod.clone();
    for (key, names) in [
        ("containers", &status.containers),
        ("initContainers", &status.init_containers),
    ] {
        for name in names.iter().flatten() {
            pod::modify_containers(&mut out, key, name, pod::Move::Remove);
        }
    }
    let target = status_port.to_string();
    if postprocess::prometheus_port(&out).is_some_and(|p| p == target) {
        postprocess::clear_prometheus_annotations(&mut out, version);
    }
    if let Some(map) = pod::existing_annotations_mut(&mut out) {
        map.remove(STATUS_ANNOTATION);
    }
    out
}

/// The containers a pod's overrides annotation keeps from its first injection.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Overrides {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    containers: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    init_containers: Vec<Value>,
}

fn overrides_of(pod: &Value) -> Result<Overrides, PipelineError> {
    match pod::annotation(pod, OVERRIDES_ANNOTATION) {
        None => Ok(Overrides::default()),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| PipelineError::Overrides(e.to_string()))
        }
    }
}

/// istiod's `reinsertOverrides`: containers the overrides annotation holds, and the pod lacks,
/// are put back, so a re-injection renders over the same pod as the first injection did.
fn reinsert_overrides(mut pod: Value) -> Result<Value, PipelineError> {
    let overrides = overrides_of(&pod)?;
    for (key, list) in [
        ("containers", overrides.containers),
        ("initContainers", overrides.init_containers),
    ] {
        for c in list {
            let name = c["name"].as_str().unwrap_or_default().to_owned();
            if pod::find_container(&pod["spec"][key], &name).is_none() {
                if let Some(l) = pod::list_mut(&mut pod, key) {
                    l.push(c);
                }
            }
        }
    }
    Ok(pod)
}

/// istiod's `reapplyOverwrittenContainers`: a container the templates inject and the pod
/// defines itself (Istio's custom injection, e.g. its own `istio-proxy`) is merged back over
/// the injected one, its fields winning; `image: auto` keeps the injected image. The first
/// injection records them in `proxy.istio.io/overrides` for later re-injections.
fn reapply_overwritten_containers(
    mut merged: Value,
    original: &Value,
    template_pod: &Value,
) -> Result<Value, PipelineError> {
    let existing = overrides_of(original)?;
    let status = injection_status(original);
    let already_injected = pod::annotation(original, STATUS_ANNOTATION).is_some();
    let mut applied = Overrides::default();
    for key in ["containers", "initContainers"] {
        let injected_before: &[String] = status
            .as_ref()
            .and_then(|s| match key {
                "containers" => s.containers.as_deref(),
                _ => s.init_containers.as_deref(),
            })
            .unwrap_or_default();
        let recorded = match key {
            "containers" => &existing.containers,
            _ => &existing.init_containers,
        };
        for c in template_pod["spec"][key].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or_default();
            if injected_before.iter().any(|n| n == name) {
                continue;
            }
            let own = recorded
                .iter()
                .find(|o| o["name"] == name)
                .or_else(|| match key {
                    "containers" => pod::find_container(&original["spec"]["containers"], name),
                    _ => pod::find_in_pod(original, name),
                });
            let Some(own) = own else { continue };
            let mut overlay = own.clone();
            if overlay["image"] == "auto" {
                if let Some(m) = overlay.as_object_mut() {
                    m.remove("image");
                }
            }
            let mut patch_spec = Map::new();
            patch_spec.insert(key.to_owned(), Value::Array(vec![overlay.clone()]));
            let patch = Value::Object(Map::from_iter([(
                "spec".to_owned(),
                Value::Object(patch_spec),
            )]));
            merge_pod(&mut merged, patch).map_err(|e| PipelineError::Reapply {
                name: name.to_owned(),
                error: e.to_string(),
            })?;
            match key {
                "containers" => applied.containers.push(overlay),
                _ => applied.init_containers.push(overlay),
            }
        }
    }
    let any = !applied.containers.is_empty() || !applied.init_containers.is_empty();
    if !already_injected && any {
        let text =
            serde_json::to_string(&applied).map_err(|e| PipelineError::Overrides(e.to_string()))?;
        if let Some(map) = pod::meta_map_mut(&mut merged, "annotations") {
            map.insert(OVERRIDES_ANNOTATION.to_owned(), Value::String(text));
        }
    }
    Ok(merged)
}

/// istiod's `adjustInitContainerUser`: when the pod's own `istio-proxy` runs as another user,
/// the redirection must exempt that user, not 1337 (else the proxy's traffic loops back to
/// it); TPROXY keeps the proxy at root; `istio-validation` runs as the proxy's user.
fn adjust_init_container_user(
    merged: &mut Value,
    original: &Value,
    inj: &Injector,
    pod_meta: &Value,
) {
    let Some(user) = pod::find_in_pod(original, PROXY_NAME) else {
        return;
    };
    let sc = &user["securityContext"];
    let run_as_user = sc["runAsUser"].as_i64();
    let run_as_group = sc["runAsGroup"].as_i64();
    if run_as_user.is_none() && run_as_group.is_none() {
        return;
    }
    let init_key = [INIT_NAME, VALIDATION_NAME]
        .into_iter()
        .find(|n| pod::find_container(&merged["spec"]["initContainers"], n).is_some());
    let Some(init_name) = init_key else {
        return;
    };
    let tproxy = inj.mesh["defaultConfig"]["interceptionMode"] == "TPROXY"
        || pod::annotation(merged, "sidecar.istio.io/interceptionMode") == Some("TPROXY");
    let _ = pod_meta;
    if tproxy && run_as_user.is_some() {
        if let Some(proxy) = pod::find_in_pod_mut(merged, PROXY_NAME) {
            if let Some(sc) = proxy
                .get_mut("securityContext")
                .and_then(Value::as_object_mut)
            {
                sc.insert("runAsUser".into(), Value::from(0));
            }
        }
    }
    let Some(init) = pod::existing_list_mut(merged, "initContainers")
        .and_then(|l| l.iter_mut().find(|c| c["name"] == init_name))
    else {
        return;
    };
    if !tproxy && init_name == VALIDATION_NAME {
        let sc = init.as_object_mut().map(|m| {
            m.entry("securityContext")
                .or_insert_with(|| Value::Object(Map::new()))
        });
        if let Some(sc) = sc.and_then(pod::object_mut) {
            if let Some(u) = run_as_user {
                sc.insert("runAsUser".into(), Value::from(u));
            }
            if let Some(g) = run_as_group {
                sc.insert("runAsGroup".into(), Value::from(g));
            }
        }
    }
    let Some(uid) = run_as_user.filter(|u| *u != 0) else {
        return;
    };
    if let Some(args) = init.get_mut("args").and_then(Value::as_array_mut) {
        if let Some(i) = args.iter().position(|a| a == "-u") {
            if let Some(slot) = args.get_mut(i + 1) {
                *slot = Value::String(uid.to_string());
            }
        }
    }
}
