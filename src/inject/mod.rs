//! `POST /inject`: decide, resolve the revision, and answer with a JSON Patch that injects
//! what the revision's istiod would. Pure: a function of the request, the snapshot and the
//! policy.
//!
//! `decide` (Istio's rules) → `pipeline` (istiod's `injectPod`: `render` the revision's own
//! templates and merge them into the pod, custom injection, `postprocess`: prometheus,
//! `probes`, status, container order) → `diff` (RFC 6902, admitted pod to injected pod).

pub mod annotations;
pub mod decide;
pub mod diff;
pub mod pipeline;
pub mod pod;
mod postprocess;
mod probes;
pub mod render;
pub mod strategic;
mod workload;

use std::borrow::Cow;

use serde_json::Value;

use crate::core::injector::Injector;
use crate::core::labels::NamespaceLabels;
use crate::core::messages;
use crate::core::pod::PodIn;
use crate::core::policy::{Mode, OnStale, Policy};
use crate::core::request::{GroupVersionKind, PodRequestIn, RequestIn};
use crate::core::snapshot::Snapshot;
use crate::core::verdict::{Allow, Deny, Failure, Skip, Verdict};

use decide::Decision;
use pipeline::PipelineError;
pub use render::Path;
pub use workload::Workload;

/// The UID and GID istiod gives the proxy when the namespace does not say (OpenShift).
pub const PROXY_UID: i64 = 1337;

/// One pod to judge, and what is known about where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Target<'p, 'a> {
    pub pod: &'p PodIn<'a>,
    /// The pod's JSON, as admitted.
    pub raw: &'p str,
    pub namespace: &'p str,
    /// The namespace's labels when they were looked up outside the snapshot.
    pub ns_labels: Option<&'p NamespaceLabels>,
    /// The workload, when known from a manifest; else derived from owner references.
    pub workload: Option<&'p Workload>,
    /// The webhook, or kube-inject (`revhook inject -f`).
    pub path: Path,
    /// `ISTIO_META_CLUSTER_ID` / `ISTIO_META_NETWORK` from the webhook's URL path, sorted.
    pub proxy_envs: &'p [(String, String)],
}

impl<'p, 'a> Target<'p, 'a> {
    /// A pod in `namespace` sent to the webhook, with nothing else known.
    pub fn pod(pod: &'p PodIn<'a>, raw: &'p str, namespace: &'p str) -> Self {
        Target {
            pod,
            raw,
            namespace,
            ns_labels: None,
            workload: None,
            path: Path::Webhook,
            proxy_envs: &[],
        }
    }
}

/// istiod's `parseInjectEnvs`: `/inject/cluster/<id>/net/<network>` (and the older
/// `/inject/:ENV:cluster=<id>:ENV:net=<network>`) set the proxy's cluster ID and network.
pub fn inject_path_envs(path: &str) -> Vec<(String, String)> {
    let Some(rest) = path.strip_prefix("/inject") else {
        return Vec::new();
    };
    let mut envs: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: &str| {
        let name = match k {
            "cluster" => "ISTIO_META_CLUSTER_ID",
            "net" => "ISTIO_META_NETWORK",
            _ => return,
        };
        if !v.is_empty() {
            envs.retain(|(n, _)| n != name);
            envs.push((name.to_owned(), v.to_owned()));
        }
    };
    if rest.contains(":ENV:") {
        for kv in rest.split(":ENV:").skip(1) {
            if let Some((k, v)) = kv.split_once('=') {
                put(k, v.trim_end_matches('/'));
            }
        }
    } else {
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        for pair in parts.chunks(2) {
            if let [k, v] = pair {
                put(k, v);
            }
        }
    }
    envs.sort();
    envs
}

/// Reviews a request sent to the mutating webhook, its object as raw JSON. `ns_labels`
/// gives the namespace's labels when the snapshot does not have them.
pub fn review(
    req: &RequestIn<'_>,
    snapshot: &Snapshot,
    policy: &Policy,
    ns_labels: Option<&NamespaceLabels>,
    proxy_envs: &[(String, String)],
) -> Verdict {
    if let Some(skip) = skip_unless_pod_create(&req.kind, &req.operation) {
        return skip;
    }
    let Some(raw) = req.object() else {
        return missing_object();
    };
    let pod = match PodIn::parse(raw) {
        Ok(pod) => pod,
        Err(e) => {
            return Verdict::fail(
                Failure::BadPod,
                format!("request.object is not a valid Pod: {e}"),
            )
        }
    };
    let namespace = pod_namespace(req.namespace.as_deref(), &pod);
    let target = Target {
        ns_labels,
        proxy_envs,
        ..Target::pod(&pod, raw, namespace)
    };
    review_pod(&target, snapshot, policy)
}

/// Reviews a request whose object was parsed as a Pod while decoding (the fast path).
/// `raw_object` gives the pod's JSON; it is read only for a pod that is injected.
pub fn review_pod_request(
    req: &PodRequestIn<'_>,
    raw_object: impl FnOnce() -> Option<String>,
    snapshot: &Snapshot,
    policy: &Policy,
    ns_labels: Option<&NamespaceLabels>,
    proxy_envs: &[(String, String)],
) -> Verdict {
    if let Some(skip) = skip_unless_pod_create(&req.kind, &req.operation) {
        return skip;
    }
    let Some(pod) = &req.object else {
        return missing_object();
    };
    let namespace = pod_namespace(req.namespace.as_deref(), pod);
    let target = Target {
        ns_labels,
        proxy_envs,
        ..Target::pod(pod, "", namespace)
    };
    review_pod_with(&target, snapshot, policy, || raw_object().map(Cow::Owned))
}

/// Injection happens only when a Pod is created; anything else passes.
fn skip_unless_pod_create(kind: &GroupVersionKind<'_>, operation: &str) -> Option<Verdict> {
    if kind.kind != "Pod" || !kind.group.is_empty() {
        return Some(Verdict::skip(Skip::NotAPod));
    }
    (operation != "CREATE").then(|| Verdict::skip(Skip::NotCreate))
}

/// The request's namespace, else the pod's own, else `default` (as the API server would).
fn pod_namespace<'r>(request_namespace: Option<&'r str>, pod: &'r PodIn<'_>) -> &'r str {
    request_namespace
        .or(pod.meta().namespace.as_deref())
        .unwrap_or("default")
}

fn missing_object() -> Verdict {
    Verdict::fail(Failure::NoObject, "request.object is missing".into())
}

/// Reviews one parsed pod: the webhook's paths, offline `revhook inject` and the golden tests
/// all end here.
pub fn review_pod(target: &Target<'_, '_>, snapshot: &Snapshot, policy: &Policy) -> Verdict {
    review_pod_with(target, snapshot, policy, || Some(Cow::Borrowed(target.raw)))
}

fn review_pod_with<'r>(
    target: &Target<'_, '_>,
    snapshot: &Snapshot,
    policy: &Policy,
    raw: impl FnOnce() -> Option<Cow<'r, str>>,
) -> Verdict {
    if let Some(problem) = crate::core::pod::oversized(target.pod.meta()) {
        return Verdict::fail(Failure::Oversized, format!("pod refused: {problem}"));
    }
    let no_labels = NamespaceLabels::default();
    let ns_labels = target
        .ns_labels
        .or_else(|| snapshot.namespace(target.namespace))
        .unwrap_or(&no_labels);
    let decided = decide::decide_on(
        target.pod,
        target.namespace,
        ns_labels,
        &snapshot.table,
        policy,
        target.path,
    );
    let verdict = match decided.decision {
        Decision::Skip(skip) => Verdict::skip(skip),
        Decision::AlreadyInjected => Verdict::skip(Skip::AlreadyInjected),
        Decision::Conflict { namespace } => {
            Verdict::deny(Deny::Conflict, messages::conflict_message(&namespace))
        }
        Decision::Stale { stale, selector } => {
            let message = messages::stale_message(&stale, &selector);
            refuse_or_admit_uninjected(policy, Deny::Stale, message)
        }
        Decision::Unusable {
            resolved, problem, ..
        } => {
            let message = format!(
                "revision {:?} cannot inject: {problem}. Fix its injector ConfigMap, or move the namespace to another revision",
                resolved.revision.name
            );
            refuse_or_admit_uninjected(policy, Deny::TemplateError, message)
        }
        // Guard: revhook's webhook runs after Istio's (webhook configurations are called in
        // name order), so an uninjected pod here is one Istio's injector left bare.
        Decision::Inject {
            resolved, selector, ..
        } if policy.mode == Mode::Guard => {
            if arrived_injected(target.pod) {
                Verdict::guard(&resolved.revision.name)
            } else {
                let message = messages::uninjected_message(&resolved, &selector);
                refuse_or_admit_uninjected(policy, Deny::Uninjected, message)
            }
        }
        Decision::Inject { resolved, .. } => match (&resolved.revision.injector, raw()) {
            (Ok(inj), Some(raw)) => inject(target, inj, &resolved.revision.name, &raw),
            (Ok(_), None) => missing_object(),
            (Err(problem), _) => Verdict::deny(Deny::TemplateError, problem.to_string()),
        },
    };
    verdict.with_warnings(decided.warnings)
}

/// Whether a pod carries a sidecar already: an `istio-proxy` container, or one among the
/// init containers (a native sidecar). The status annotation is judged before this.
fn arrived_injected(pod: &PodIn<'_>) -> bool {
    let proxy = |c: &crate::core::pod::ContainerIn<'_>| c.name == pod::PROXY_NAME;
    pod.containers().iter().any(proxy) || pod.init_containers().iter().any(proxy)
}

/// A pod that cannot get its sidecar: refused, or under `--on-stale allow-uninjected`
/// admitted without one and told so.
fn refuse_or_admit_uninjected(policy: &Policy, deny: Deny, message: String) -> Verdict {
    match policy.on_stale {
        OnStale::Deny => Verdict::deny(deny, message),
        OnStale::AllowUninjected => Verdict::allow(Allow::StaleUninjected)
            .with_warnings(vec![format!("pod will start WITHOUT a sidecar: {message}")]),
    }
}

/// The verdict that injects the revision into the target pod: the pipeline's pod, as a patch.
fn inject(target: &Target<'_, '_>, inj: &Injector, revision: &str, raw: &str) -> Verdict {
    let mut admitted: Value = match serde_json::from_str(raw) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return Verdict::fail(Failure::BadPod, "request.object is not an object".into()),
        Err(e) => {
            return Verdict::fail(
                Failure::BadPod,
                format!("request.object is not a valid Pod: {e}"),
            )
        }
    };
    // istiod works on the pod as Go decodes and encodes it; so do we, and the patch is
    // computed from it (the fields this leaves out are zero or null: no operation needs them).
    // `managedFields` (large, never read by the templates, never patched) is out of both sides,
    // and the request's namespace is in while the templates run, as istiod prepares the pod.
    if let Some(meta) = admitted.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    strategic::as_go_encodes(&mut admitted);
    let had_metadata = admitted.get("metadata").is_some_and(Value::is_object);
    let added_namespace = set_namespace(&mut admitted, target.namespace);
    let derived;
    let workload = match target.workload {
        Some(w) => w,
        None => {
            derived = Workload::of_pod(target.pod, target.namespace);
            &derived
        }
    };
    let ctx = render::PodContext {
        path: target.path,
        revision,
        deploy_name: &workload.name,
        deploy_namespace: &workload.namespace,
        kind: &workload.kind,
        api_version: &workload.api_version,
        proxy_envs: target.proxy_envs,
        proxy_uid: PROXY_UID,
        proxy_gid: PROXY_UID,
    };
    match pipeline::inject_pod(inj, &admitted, &ctx, gotmpl::Limits::default()) {
        Ok(mut injected) => {
            strategic::as_go_encodes(&mut injected);
            if added_namespace {
                // The patch leaves the namespace as the pod has it: unset (and the metadata
                // absent, when it was).
                for pod in [&mut admitted, &mut injected] {
                    if let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.remove("namespace");
                    }
                }
                if !had_metadata {
                    if let Some(pod) = admitted.as_object_mut() {
                        pod.remove("metadata");
                    }
                }
            }
            let mut verdict = Verdict::inject(revision, diff::diff(&admitted, &injected));
            // Injected already (the API server's reinvocation, a copied spec): nothing to say.
            if verdict.patch.as_deref() == Some("[]") {
                verdict.patch = None;
            }
            verdict
        }
        Err(PipelineError::Annotation(e)) => Verdict::deny(Deny::InvalidAnnotation, e.to_string()),
        Err(e) => Verdict::deny(
            Deny::TemplateError,
            format!("revision {revision:?} could not inject this pod: {e}"),
        ),
    }
}

/// The proxy image the revision's templates give this pod (what a restart would run), or
/// `None` when they cannot inject it.
pub fn injected_proxy_image(
    inj: &Injector,
    parsed: &PodIn<'_>,
    raw: &Value,
    namespace: &str,
    revision: &str,
) -> Option<String> {
    let mut pod = raw.clone();
    prepare(&mut pod, namespace);
    let workload = Workload::of_pod(parsed, namespace);
    let ctx = render::PodContext {
        path: Path::Webhook,
        revision,
        deploy_name: &workload.name,
        deploy_namespace: &workload.namespace,
        kind: &workload.kind,
        api_version: &workload.api_version,
        proxy_envs: &[],
        proxy_uid: PROXY_UID,
        proxy_gid: PROXY_UID,
    };
    let injected = pipeline::inject_pod(inj, &pod, &ctx, gotmpl::Limits::default()).ok()?;
    pod::find_in_pod(&injected, pod::PROXY_NAME)?["image"]
        .as_str()
        .map(str::to_owned)
}

/// As istiod prepares the admitted pod: `managedFields` (large, never read) out, the
/// request's namespace in when the pod has none.
fn prepare(pod: &mut Value, namespace: &str) {
    if let Some(meta) = pod::meta_object(pod) {
        meta.remove("managedFields");
    }
    set_namespace(pod, namespace);
}

/// Sets the request's namespace on a pod that has none; whether it did.
fn set_namespace(pod: &mut Value, namespace: &str) -> bool {
    let Some(meta) = pod::meta_object(pod) else {
        return false;
    };
    let empty = meta
        .get("namespace")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if empty {
        meta.insert("namespace".into(), Value::String(namespace.to_owned()));
    }
    empty
}

#[cfg(test)]
mod tests;
