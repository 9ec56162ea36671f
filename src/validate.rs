//! `POST /validate`: refuses conflicting injection labels and stale revisions and tags at the
//! moment of the mistake (the namespace edit, the Deployment apply, the tag move), rather than
//! later as pods without sidecars or ReplicaSets that cannot create pods.
//!
//! Pure. Rules, by object:
//! - Namespace (CREATE, UPDATE): both injection labels, an `istio.io/rev` naming nothing
//!   installed, an `istio-injection` value other than `enabled`/`disabled` → deny; a changed
//!   `istio.io/rev` → allow with a restart reminder.
//! - Pod (CREATE): an unknown `istio.io/rev` label → deny; the deprecated
//!   `sidecar.istio.io/inject` annotation → allow with a warning.
//! - Workloads (CREATE, UPDATE): their pod template under the Pod rules, naming the workload.
//! - Revision tags (Istio's tag MutatingWebhookConfigurations): a tag pointing at a missing
//!   revision or named like a revision → deny; DELETE while namespaces use it → warn.
//!
//! An UPDATE is judged only when it changes the labels a rule reads, so an unrelated edit to an
//! already-broken object is allowed (with a warning). DELETE is never denied. `dryRun` is
//! judged the same.

use std::borrow::Cow;

use serde::Deserialize;

use crate::core::labels::{self, NamespaceLabels};
use crate::core::messages::{stale_message, Selector};
use crate::core::pod::StringMap;
use crate::core::policy::Policy;
use crate::core::request::RequestIn;
use crate::core::revisions::DEFAULT_TAG;
use crate::core::snapshot::Snapshot;
use crate::core::verdict::{Allow, Deny, Failure, Verdict};

/// The metadata the rules read, from any object.
#[derive(Debug, Default, Deserialize)]
struct ObjectIn<'a> {
    #[serde(borrow, default)]
    metadata: MetaIn<'a>,
    #[serde(borrow, default)]
    spec: Option<SpecIn<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct MetaIn<'a> {
    #[serde(borrow, default, deserialize_with = "crate::core::pod::borrowed_opt")]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    labels: Option<StringMap<'a>>,
    #[serde(borrow, default)]
    annotations: Option<StringMap<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecIn<'a> {
    #[serde(borrow, default)]
    template: Option<TemplateIn<'a>>,
    #[serde(borrow, default)]
    job_template: Option<JobTemplateIn<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct TemplateIn<'a> {
    #[serde(borrow, default)]
    metadata: MetaIn<'a>,
}

#[derive(Debug, Default, Deserialize)]
struct JobTemplateIn<'a> {
    #[serde(borrow, default)]
    spec: Option<Box<SpecIn<'a>>>,
}

impl<'a> MetaIn<'a> {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref().and_then(|l| l.get(key))
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref().and_then(|a| a.get(key))
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

impl<'a> SpecIn<'a> {
    /// The pod template's metadata: `spec.template`, or a CronJob's
    /// `spec.jobTemplate.spec.template`.
    fn pod_template(&self) -> Option<&MetaIn<'a>> {
        if let Some(t) = &self.template {
            return Some(&t.metadata);
        }
        self.job_template
            .as_ref()
            .and_then(|j| j.spec.as_ref())
            .and_then(|s| s.template.as_ref())
            .map(|t| &t.metadata)
    }
}

const WORKLOADS: [&str; 6] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
];

/// Reviews a request sent to the validating webhook.
pub fn review(req: &RequestIn<'_>, snapshot: &Snapshot, _policy: &Policy) -> Verdict {
    let kind = req.kind.kind.as_ref();
    let group = req.kind.group.as_ref();
    let operation = req.operation.as_ref();
    let (object, old) = match (parse(req.object()), parse(req.old_object())) {
        (Ok(o), Ok(old)) => (o, old),
        (Err(e), _) | (_, Err(e)) => {
            return Verdict::fail(
                Failure::BadObject,
                format!("{kind} object cannot be read: {e}"),
            )
        }
    };
    match (group, kind, operation) {
        (_, _, "DELETE") if is_tag_webhook(group, kind, old.as_ref()) => {
            tag_deleted(old.as_ref(), snapshot)
        }
        (_, _, "DELETE") => Verdict::allow(Allow::Delete),
        ("", "Namespace", "CREATE" | "UPDATE") => match object {
            Some(ns) => namespace(&ns, old.as_ref(), snapshot),
            None => missing_object(kind),
        },
        ("", "Pod", "CREATE") => match object {
            Some(pod) => pod_rules(&pod.metadata, None, snapshot, "pod", true),
            None => missing_object(kind),
        },
        ("apps" | "batch", k, "CREATE" | "UPDATE") if WORKLOADS.contains(&k) => match object {
            Some(w) => workload(k, &w, old.as_ref(), snapshot),
            None => missing_object(kind),
        },
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration", "CREATE" | "UPDATE") => {
            match object {
                Some(w) if w.metadata.label(labels::ISTIO_TAG).is_some() => {
                    tag(&w, old.as_ref(), snapshot)
                }
                Some(_) => Verdict::allow(Allow::NotATag),
                None => missing_object(kind),
            }
        }
        ("", "Pod", _) => Verdict::allow(Allow::Clean),
        _ => Verdict::allow(Allow::UnknownKind).with_warnings(vec![format!(
            "revhook has no validation rules for {}{kind} {operation}; allowed",
            if group.is_empty() {
                String::new()
            } else {
                format!("{group}/")
            }
        )]),
    }
}

fn parse(raw: Option<&str>) -> Result<Option<ObjectIn<'_>>, serde_json::Error> {
    raw.map(serde_json::from_str).transpose()
}

fn missing_object(kind: &str) -> Verdict {
    Verdict::fail(
        Failure::NoObject,
        format!("request.object is missing for {kind}"),
    )
}

// === impl Namespace rules ===

fn namespace_labels(meta: &MetaIn<'_>) -> NamespaceLabels {
    NamespaceLabels {
        injection: meta.label(labels::ISTIO_INJECTION).map(str::to_owned),
        rev: meta.label(labels::ISTIO_REV).map(str::to_owned),
    }
}

/// What is wrong with a namespace's injection labels, as a denial.
/// `creating`: the namespace does not exist yet, so the fix cannot be a relabel.
fn namespace_problem(
    name: &str,
    labels: &NamespaceLabels,
    snapshot: &Snapshot,
    creating: bool,
) -> Option<Verdict> {
    if labels.has_conflict() {
        return Some(Verdict::deny(Deny::Conflict,format!(
                "namespace {name:?} would have both istio-injection={} and istio.io/rev={}: the control plane that injects would be ambiguous (Istio lets istio-injection win silently). Keep one: kubectl label namespace {name} istio-injection-",
                labels.injection.as_deref().unwrap_or_default(),
                labels.rev.as_deref().unwrap_or_default()
            )));
    }
    if let Some(value) = &labels.injection {
        if value != "enabled" && value != "disabled" {
            return Some(Verdict::deny(Deny::InvalidLabel,format!("namespace {name:?}: istio-injection={value:?} is not a value Istio reads; use enabled or disabled (or istio.io/rev=<revision or tag>)")));
        }
    }
    if let Some(rev) = &labels.rev {
        if let Err(stale) = snapshot.table.resolve(rev) {
            return Some(Verdict::deny(
                Deny::Stale,
                stale_message(
                    &stale,
                    &if creating {
                        Selector::NewNamespace(name.to_owned())
                    } else {
                        Selector::NamespaceRev(name.to_owned())
                    },
                ),
            ));
        }
    }
    // `istio-injection=enabled` selects the default tag (or the default revision): a pod there
    // would be refused as stale, so the label is refused when it is written.
    if labels.injection.as_deref() == Some("enabled") {
        if let Err(stale) = snapshot.table.resolve(DEFAULT_TAG) {
            return Some(Verdict::deny(
                Deny::Stale,
                stale_message(&stale, &Selector::NamespaceInjection(name.to_owned())),
            ));
        }
    }
    None
}

fn namespace(ns: &ObjectIn<'_>, old: Option<&ObjectIn<'_>>, snapshot: &Snapshot) -> Verdict {
    let name = ns.metadata.name();
    let now = namespace_labels(&ns.metadata);
    let before = old.map(|o| namespace_labels(&o.metadata));
    let changed = before.as_ref().is_none_or(|b| *b != now);
    if let Some(problem) = namespace_problem(name, &now, snapshot, old.is_none()) {
        if changed {
            return problem;
        }
        // An unrelated edit to a namespace that was already broken: not blocked, but said.
        let message = problem.status.map(|s| s.message).unwrap_or_default();
        return Verdict::allow(Allow::Warn).with_warnings(vec![format!("still broken: {message}")]);
    }
    match before {
        Some(b) if b.rev != now.rev && now.rev.is_some() => {
            Verdict::allow(Allow::Warn).with_warnings(vec![format!(
                "namespace {name:?} now selects istio.io/rev={}; running pods keep their proxy until restarted: kubectl rollout restart deployment -n {name}",
                now.rev.as_deref().unwrap_or_default()
            )])
        }
        _ => Verdict::allow(Allow::Clean),
    }
}

// === impl Pod and workload rules ===

/// The Pod rules on a pod's (or template's) metadata; `subject` names it in messages.
/// `note_deprecated` says whether the deprecated inject annotation is worth a warning.
fn pod_rules(
    meta: &MetaIn<'_>,
    old: Option<&MetaIn<'_>>,
    snapshot: &Snapshot,
    subject: &str,
    note_deprecated: bool,
) -> Verdict {
    let mut warnings = Vec::new();
    if note_deprecated
        && meta.label(labels::SIDECAR_INJECT).is_none()
        && meta.annotation(labels::SIDECAR_INJECT).is_some()
    {
        warnings.push(format!(
            "{subject}: the sidecar.istio.io/inject annotation is deprecated; use the label sidecar.istio.io/inject instead"
        ));
    }
    let rev = meta.label(labels::ISTIO_REV);
    let changed = old.is_none_or(|o| o.label(labels::ISTIO_REV) != rev);
    if let Some(rev) = rev {
        if let Err(stale) = snapshot.table.resolve(rev) {
            let message = format!("{subject}: {}", stale_message(&stale, &Selector::PodRev));
            if changed {
                return Verdict::deny(Deny::Stale, message).with_warnings(warnings);
            }
            warnings.push(format!("still broken: {message}"));
        }
    }
    let why = if warnings.is_empty() {
        Allow::Clean
    } else {
        Allow::Warn
    };
    Verdict::allow(why).with_warnings(warnings)
}

fn workload(
    kind: &str,
    w: &ObjectIn<'_>,
    old: Option<&ObjectIn<'_>>,
    snapshot: &Snapshot,
) -> Verdict {
    let subject = format!("{kind} {:?} pod template", w.metadata.name());
    let Some(template) = w.spec.as_ref().and_then(SpecIn::pod_template) else {
        return Verdict::allow(Allow::Clean);
    };
    let old_template = old
        .and_then(|o| o.spec.as_ref())
        .and_then(SpecIn::pod_template);
    // On UPDATE the deprecated-annotation warning is noise unless the template changed it.
    let note_deprecated = old_template.is_none_or(|o| {
        o.annotation(labels::SIDECAR_INJECT) != template.annotation(labels::SIDECAR_INJECT)
    });
    pod_rules(template, old_template, snapshot, &subject, note_deprecated)
}

// === impl revision tag rules ===

fn is_tag_webhook(group: &str, kind: &str, old: Option<&ObjectIn<'_>>) -> bool {
    group == "admissionregistration.k8s.io"
        && kind == "MutatingWebhookConfiguration"
        && old.is_some_and(|o| o.metadata.label(labels::ISTIO_TAG).is_some())
}

fn tag(w: &ObjectIn<'_>, old: Option<&ObjectIn<'_>>, snapshot: &Snapshot) -> Verdict {
    let tag = w.metadata.label(labels::ISTIO_TAG).unwrap_or_default();
    let target = w.metadata.label(labels::ISTIO_REV);
    let unchanged = old.is_some_and(|o| {
        o.metadata.label(labels::ISTIO_TAG) == Some(tag)
            && o.metadata.label(labels::ISTIO_REV) == target
    });
    let problem = if snapshot.table.revision(tag).is_some() {
        Some(format!(
            "tag {tag:?} has the name of an installed revision; a tag may not shadow a revision (both are istio.io/rev values)"
        ))
    } else {
        match target {
            None => Some(format!(
                "tag {tag:?} has no istio.io/rev label naming its revision"
            )),
            Some(rev) if snapshot.table.revision(rev).is_none() => {
                let installed: Vec<&str> = snapshot
                    .table
                    .revisions()
                    .map(|r| r.name.as_str())
                    .collect();
                Some(format!(
                    "tag {tag:?} would point at revision {rev:?}, which is not installed; installed: {}. Namespaces selecting {tag} would get pods without a sidecar. Point it at an installed revision: istioctl tag set {tag} --revision {} --overwrite",
                    if installed.is_empty() { "none".to_owned() } else { installed.join(", ") },
                    snapshot.table.suggested_target().unwrap_or_else(|| "<revision>".into())
                ))
            }
            Some(_) => None,
        }
    };
    match problem {
        Some(message) if unchanged => {
            Verdict::allow(Allow::Warn).with_warnings(vec![format!("still broken: {message}")])
        }
        Some(message) => Verdict::deny(Deny::Tag, message),
        None => Verdict::allow(Allow::Clean),
    }
}

/// The most namespaces a warning names.
const NAMED_NAMESPACES: usize = 10;

fn tag_deleted(old: Option<&ObjectIn<'_>>, snapshot: &Snapshot) -> Verdict {
    let tag = old
        .and_then(|o| o.metadata.label(labels::ISTIO_TAG))
        .unwrap_or_default();
    // Without a namespace cache there is nothing to say (an empty file source, say).
    if snapshot.namespaces.is_empty() {
        return Verdict::allow(Allow::Delete);
    }
    let users = snapshot.namespaces_selecting(tag);
    if users.is_empty() {
        return Verdict::allow(Allow::Delete);
    }
    let mut named = users
        .iter()
        .take(NAMED_NAMESPACES)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if users.len() > NAMED_NAMESPACES {
        named.push_str(&format!(" and {} more", users.len() - NAMED_NAMESPACES));
    }
    Verdict::allow(Allow::Warn).with_warnings(vec![format!(
        "tag {tag:?} is deleted while namespaces still select it: {named}; their new pods will be refused or start without a sidecar until relabelled"
    )])
}

#[cfg(test)]
mod tests;
