//! From what the handler decided to the typed metrics calls.
//!
//! A [`Verdict`] says what happened in its typed `decision` but not which tag was used or which
//! stale value was named; for the few outcomes whose series carry those, the decision is taken
//! again (it reads labels and the table; no patch is built, and an injection allocates nothing
//! here).

use std::sync::Arc;

use crate::core::labels::{self, NamespaceLabels};
use crate::core::pod::PodIn;
use crate::core::policy::Policy;
use crate::core::revisions::Stale;
use crate::core::snapshot::Snapshot;
use crate::core::verdict::{self, Allow, Deny, Failure, Skip, Verdict};
use crate::handler::{Decoded, Webhook};
use crate::inject::decide::{self, Decision};

use super::{DenyReason, InjectOutcome, Metrics, SkipReason, ValidationDenial};

impl Metrics {
    /// Records one judged admission request: its revision series and Istio's counters.
    pub fn admission(
        &self,
        webhook: Webhook,
        req: &Decoded<'_>,
        verdict: &Verdict,
        snapshot: &Arc<Snapshot>,
        policy: &Policy,
        ns_labels: Option<&NamespaceLabels>,
    ) {
        self.observe_snapshot(snapshot);
        match webhook {
            Webhook::Inject => {
                let outcome = inject_outcome(verdict, snapshot);
                if !needs_decision(outcome) {
                    return self.injection(None, None, outcome);
                }
                let counted = with_pod(req, |pod, namespace| {
                    self.decided_injection(pod, namespace, outcome, snapshot, policy, ns_labels);
                    Some(())
                });
                if counted.is_none() {
                    self.injection(None, None, outcome);
                }
            }
            Webhook::Validate => {
                if let Some(reason) = validation_denial(verdict) {
                    let revision = named_revision(req);
                    self.validation_denied(reason, revision.as_deref());
                }
            }
        }
    }
}

impl Metrics {
    /// Counts `outcome` with the revision and tag the pod selected, as the decision saw them
    /// (borrowed from the snapshot: the usual injection allocates nothing here).
    fn decided_injection(
        &self,
        pod: &PodIn<'_>,
        namespace: &str,
        outcome: InjectOutcome,
        snapshot: &Snapshot,
        policy: &Policy,
        ns_labels: Option<&NamespaceLabels>,
    ) {
        let none = NamespaceLabels::default();
        let ns = ns_labels
            .or_else(|| snapshot.namespace(namespace))
            .unwrap_or(&none);
        let decided = decide::decide(pod, namespace, ns, &snapshot.table, policy);
        match &decided.decision {
            Decision::Inject { resolved, .. } | Decision::Unusable { resolved, .. } => {
                let revision = resolved.revision.name.as_str();
                self.injection(Some(revision), resolved.via_tag, outcome);
            }
            Decision::Stale { stale, .. } => {
                let (revision, tag) = stale_labels(stale, snapshot);
                self.injection(revision, tag, outcome);
            }
            _ => self.injection(None, None, outcome),
        }
    }
}

/// The outcome a verdict of `/inject` stands for.
pub fn inject_outcome(verdict: &Verdict, snapshot: &Snapshot) -> InjectOutcome {
    match verdict.decision {
        verdict::Decision::Inject(_) => InjectOutcome::Injected,
        verdict::Decision::Guard(_) => InjectOutcome::Skipped(SkipReason::Guard),
        verdict::Decision::Allow(Allow::StaleUninjected) => {
            InjectOutcome::Skipped(SkipReason::StaleAllowed)
        }
        verdict::Decision::Skip(skip) => InjectOutcome::Skipped(skip_reason(skip)),
        verdict::Decision::Deny(Deny::Stale) if snapshot.table.is_empty() => {
            InjectOutcome::Denied(DenyReason::NotSynced)
        }
        verdict::Decision::Deny(Deny::Stale) => InjectOutcome::Denied(DenyReason::Stale),
        verdict::Decision::Deny(Deny::Conflict) => InjectOutcome::Denied(DenyReason::Conflict),
        verdict::Decision::Deny(Deny::InvalidAnnotation) => {
            InjectOutcome::Denied(DenyReason::InvalidAnnotation)
        }
        verdict::Decision::Deny(Deny::TemplateError) => {
            InjectOutcome::Denied(DenyReason::TemplateError)
        }
        verdict::Decision::Deny(Deny::Uninjected) => InjectOutcome::Denied(DenyReason::Uninjected),
        verdict::Decision::Fail(Failure::BadPod | Failure::NoObject | Failure::Oversized) => {
            InjectOutcome::Denied(DenyReason::InvalidPod)
        }
        verdict::Decision::Fail(Failure::Patch | Failure::NoSidecar) => {
            InjectOutcome::Denied(DenyReason::TemplateError)
        }
        _ if verdict.allowed => InjectOutcome::Skipped(SkipReason::Other),
        _ => InjectOutcome::Denied(DenyReason::Other),
    }
}

fn skip_reason(skip: Skip) -> SkipReason {
    match skip {
        Skip::HostNetwork => SkipReason::HostNetwork,
        Skip::SystemNamespace => SkipReason::SystemNamespace,
        Skip::PodOptOut => SkipReason::PodOptOut,
        Skip::NamespaceDisabled => SkipReason::NamespaceDisabled,
        Skip::NotSelected => SkipReason::NotSelected,
        Skip::AlreadyInjected => SkipReason::AlreadyInjected,
        Skip::NotAPod => SkipReason::NotAPod,
        Skip::NotCreate => SkipReason::NotCreate,
        Skip::InjectorPolicy => SkipReason::InjectorPolicy,
    }
}

/// Whether the outcome's series name a revision or tag.
fn needs_decision(outcome: InjectOutcome) -> bool {
    match outcome {
        InjectOutcome::Injected => true,
        InjectOutcome::Skipped(reason) => reason.has_revision(),
        InjectOutcome::Denied(reason) => reason.has_revision(),
    }
}

/// A stale value is a tag (pointing at a missing revision, or itself removed) or a revision.
fn stale_labels<'s>(stale: &'s Stale, snapshot: &Snapshot) -> (Option<&'s str>, Option<&'s str>) {
    let requested = stale.requested.as_str();
    match &stale.dangling_tag_target {
        Some(target) => (Some(target.as_str()), Some(requested)),
        None if snapshot.table.tag_target(requested).is_some() => (None, Some(requested)),
        None => (Some(requested), None),
    }
}

/// Runs `f` on the request's pod and namespace (the namespace as the injector takes it).
fn with_pod<T>(req: &Decoded<'_>, f: impl FnOnce(&PodIn<'_>, &str) -> Option<T>) -> Option<T> {
    match req {
        Decoded::Pod(r) => {
            let pod = r.object.as_ref()?;
            f(pod, pod_namespace(r.namespace.as_deref(), pod))
        }
        Decoded::Any(r) => {
            let pod = PodIn::parse(r.object()?).ok()?;
            f(&pod, pod_namespace(r.namespace.as_deref(), &pod))
        }
    }
}

/// The request's namespace, else the pod's own, else `default` (as the injector does).
fn pod_namespace<'a>(request: Option<&'a str>, pod: &'a PodIn<'_>) -> &'a str {
    request
        .or(pod.meta().namespace.as_deref())
        .unwrap_or("default")
}

/// The denial a verdict of `/validate` stands for, if it is one.
pub fn validation_denial(verdict: &Verdict) -> Option<ValidationDenial> {
    if verdict.allowed {
        return None;
    }
    Some(match verdict.decision {
        verdict::Decision::Deny(Deny::Stale) => ValidationDenial::Stale,
        verdict::Decision::Deny(Deny::InvalidLabel) => ValidationDenial::InvalidLabel,
        verdict::Decision::Deny(Deny::Conflict) => ValidationDenial::Conflict,
        verdict::Decision::Deny(Deny::Tag) => ValidationDenial::Tag,
        verdict::Decision::Fail(Failure::BadObject | Failure::NoObject | Failure::Oversized) => {
            ValidationDenial::InvalidObject
        }
        _ => ValidationDenial::Other,
    })
}

/// The `istio.io/rev` value an object (or its pod template) names. Read only for denials.
fn named_revision(req: &Decoded<'_>) -> Option<String> {
    let Decoded::Any(r) = req else {
        return None;
    };
    let object: serde_json::Value = serde_json::from_str(r.object()?).ok()?;
    let templates = [
        "/metadata",
        "/spec/template/metadata",
        "/spec/jobTemplate/spec/template/metadata",
    ];
    templates.iter().find_map(|path| {
        object
            .pointer(path)?
            .get("labels")?
            .get(labels::ISTIO_REV)?
            .as_str()
            .map(str::to_owned)
    })
}
