//! `POST /inject`: decide, resolve the revision, and answer with a JSON Patch that adds the
//! revision's sidecar. Pure: a function of the request, the snapshot and the policy.
//!
//! `decide` (Istio's rules) → `assemble` (the patch: `custom` merge, `probes`, `metadata`,
//! `overrides` from the pod's annotations) → `patch` (RFC 6902 written into one buffer).

mod assemble;
mod custom;
pub mod decide;
mod metadata;
pub mod overrides;
mod patch;
mod probes;
pub mod strategic;
mod workload;

use crate::core::labels::NamespaceLabels;
use crate::core::messages;
use crate::core::pod::{self, PodIn};
use crate::core::policy::{Mode, OnStale, Policy};
use crate::core::request::{GroupVersionKind, PodRequestIn, RequestIn};
use crate::core::sidecar::{self, PROXY_NAME};
use crate::core::snapshot::Snapshot;
use crate::core::verdict::{Allow, Deny, Failure, Skip, Verdict};

use decide::Decision;
pub use workload::Workload;

/// Why a patch could not be built for a pod that should be injected.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("pod has no spec.containers")]
    NoContainers,
    #[error(transparent)]
    Override(#[from] overrides::OverrideError),
    #[error("internal: sidecar template: {0}")]
    Template(serde_json::Error),
    #[error("spec.{array}[{index}]: {source}")]
    CustomContainer {
        array: &'static str,
        index: usize,
        source: serde_json::Error,
    },
    #[error("spec.{array}[{index}] is not an object")]
    NotAnObject { array: &'static str, index: usize },
}

/// One pod to judge, and what is known about where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Target<'p, 'a> {
    pub pod: &'p PodIn<'a>,
    /// The pod's JSON; read only for custom injection (a pod with its own `istio-proxy`).
    pub raw: &'p str,
    pub namespace: &'p str,
    /// The namespace's labels when they were looked up outside the snapshot.
    pub ns_labels: Option<&'p NamespaceLabels>,
    /// The workload, when known from a manifest; else derived from owner references.
    pub workload: Option<&'p Workload>,
}

impl<'p, 'a> Target<'p, 'a> {
    /// A pod in `namespace`, with nothing else known.
    pub fn pod(pod: &'p PodIn<'a>, raw: &'p str, namespace: &'p str) -> Self {
        Target {
            pod,
            raw,
            namespace,
            ns_labels: None,
            workload: None,
        }
    }
}

/// Reviews a request sent to the mutating webhook, its object as raw JSON. `ns_labels`
/// gives the namespace's labels when the snapshot does not have them.
pub fn review(
    req: &RequestIn<'_>,
    snapshot: &Snapshot,
    policy: &Policy,
    ns_labels: Option<&NamespaceLabels>,
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
        ..Target::pod(&pod, raw, namespace)
    };
    review_pod(&target, snapshot, policy)
}

/// Reviews a request whose object was parsed as a Pod while decoding (the fast path).
/// `raw_object` gives the pod's JSON; it is called only for Istio's custom injection (a pod
/// that carries its own `istio-proxy` or `istio-init`), which is rare.
pub fn review_pod_request(
    req: &PodRequestIn<'_>,
    raw_object: impl FnOnce() -> Option<String>,
    snapshot: &Snapshot,
    policy: &Policy,
    ns_labels: Option<&NamespaceLabels>,
) -> Verdict {
    if let Some(skip) = skip_unless_pod_create(&req.kind, &req.operation) {
        return skip;
    }
    let Some(pod) = &req.object else {
        return missing_object();
    };
    let namespace = pod_namespace(req.namespace.as_deref(), pod);
    let raw = if has_custom_containers(pod) {
        match raw_object() {
            Some(raw) => raw,
            None => return missing_object(),
        }
    } else {
        String::new()
    };
    let target = Target {
        ns_labels,
        ..Target::pod(pod, &raw, namespace)
    };
    review_pod(&target, snapshot, policy)
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

/// Whether the pod carries Istio's custom injection containers (whose raw JSON is merged).
fn has_custom_containers(pod: &PodIn<'_>) -> bool {
    pod.container_index(PROXY_NAME).is_some()
        || pod
            .init_containers()
            .iter()
            .any(|c| c.name == sidecar::INIT_NAME || c.name == sidecar::VALIDATION_NAME)
}

/// Reviews one parsed pod: the webhook's paths, offline `revhook inject` and the golden tests
/// all end here.
pub fn review_pod(target: &Target<'_, '_>, snapshot: &Snapshot, policy: &Policy) -> Verdict {
    if let Some(problem) = pod::oversized(target.pod.meta()) {
        return Verdict::fail(Failure::Oversized, format!("pod refused: {problem}"));
    }
    let no_labels = NamespaceLabels::default();
    let ns_labels = target
        .ns_labels
        .or_else(|| snapshot.namespace(target.namespace))
        .unwrap_or(&no_labels);
    let decided = decide::decide(
        target.pod,
        target.namespace,
        ns_labels,
        &snapshot.table,
        policy,
    );
    let verdict = match decided.decision {
        Decision::Skip(skip) => Verdict::skip(skip),
        Decision::AlreadyInjected => Verdict::skip(Skip::AlreadyInjected),
        Decision::Conflict { namespace } => {
            Verdict::deny(Deny::Conflict, messages::conflict_message(&namespace))
        }
        Decision::Stale { stale, selector } => {
            let message = messages::stale_message(&stale, &selector);
            match policy.on_stale {
                OnStale::Deny => Verdict::deny(Deny::Stale, message),
                OnStale::AllowUninjected => Verdict::allow(Allow::StaleUninjected)
                    .with_warnings(vec![format!("pod will start WITHOUT a sidecar: {message}")]),
            }
        }
        Decision::Inject { resolved, .. } if policy.mode == Mode::Guard => {
            Verdict::guard(&resolved.revision.name)
        }
        Decision::Inject {
            resolved, previous, ..
        } => inject(
            target,
            &resolved.revision.name,
            previous.as_deref(),
            snapshot,
        ),
    };
    verdict.with_warnings(decided.warnings)
}

/// The verdict that injects `revision`'s sidecar into the target pod.
fn inject(
    target: &Target<'_, '_>,
    revision: &str,
    previous: Option<&str>,
    snapshot: &Snapshot,
) -> Verdict {
    let Some(sidecar) = snapshot.sidecar(revision) else {
        return Verdict::fail(
            Failure::NoSidecar,
            format!("revision {revision:?} has no rendered sidecar"),
        );
    };
    let derived;
    let workload = match target.workload {
        Some(w) => w,
        None => {
            derived = Workload::of_pod(target.pod, target.namespace);
            &derived
        }
    };
    match assemble::build_patch(target.pod, target.raw, sidecar, previous, workload) {
        Ok(patch) => Verdict::inject(revision, patch),
        Err(e) => Verdict::fail(Failure::Patch, e.to_string()),
    }
}

#[cfg(test)]
mod tests;
