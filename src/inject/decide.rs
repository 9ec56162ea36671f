//! Whether to inject, and which revision: Istio's two layers (webhook selectors, then
//! istiod's `injectRequired`) folded into one function.
//!
//! Precedence, first match wins:
//! 1. `hostNetwork` pods and system namespaces are never injected.
//! 2. The pod opts out: label `sidecar.istio.io/inject=false` (else the deprecated annotation).
//! 3. The namespace decides when it has a label: both labels is a conflict (`istio-injection`
//!    wins, as in Istio, with a warning; or a denial); `istio-injection=enabled` selects the
//!    `default` tag, any other value disables; `istio.io/rev=X` selects X. With
//!    `pod_revision_wins`, a pod's own `istio.io/rev` overrides the namespace's choice.
//! 4. A namespace with neither label: the pod's `istio.io/rev`, else `sidecar.istio.io/inject=true`
//!    (the `default` tag), else nothing.
//! 5. The selected value resolves to a revision, or it is stale.
//! 6. The revision's istiod has the last word (`injectRequired`, as that version reads it):
//!    the pod's `sidecar.istio.io/inject` (label, else annotation), the injector config's
//!    `neverInjectSelector` / `alwaysInjectSelector`, then its `policy`. A revision whose
//!    injector cannot be built is unusable.
//! 7. An injected pod (`sidecar.istio.io/status`) is injected again, as istiod does: by its own
//!    revision it comes out the same; by another it moves to that one. In guard mode an
//!    injected pod is left to its injector.

use crate::core::injector::{InjectionPolicy, InjectorConfig, InjectorProblem, IstioVersion};
use crate::core::labels::{self, NamespaceLabels, IGNORED_NAMESPACES};
use crate::core::revisions::{Resolved, RevisionTable, Stale, DEFAULT_TAG};

use crate::core::messages::{conflict_warning, Selector};
use crate::core::pod::PodIn;
use crate::core::policy::{Mode, OnConflict, Policy};
use crate::core::verdict::Skip;

use super::render::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'t> {
    Skip(Skip),
    /// Already injected for the resolved revision (or by an injector whose revision we cannot tell).
    AlreadyInjected,
    Inject {
        resolved: Resolved<'t>,
        selector: Selector,
        /// The revision the pod was injected for before, when it is re-injected.
        previous: Option<String>,
    },
    Stale {
        stale: Stale,
        selector: Selector,
    },
    /// Both namespace labels, with `--on-conflict deny`.
    Conflict {
        namespace: String,
    },
    /// The selected revision's injector cannot be built (inject mode only).
    Unusable {
        resolved: Resolved<'t>,
        selector: Selector,
        problem: InjectorProblem,
    },
}

/// A decision and the warnings gathered on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided<'t> {
    pub decision: Decision<'t>,
    pub warnings: Vec<String>,
}

/// The revision named in an injected pod's status annotation: `Some(None)` when the pod is
/// injected but the annotation names no revision (or is not Istio's JSON).
pub fn injected_revision(pod: &PodIn<'_>) -> Option<Option<String>> {
    let status = pod.meta().annotation(labels::SIDECAR_STATUS)?;
    #[derive(serde::Deserialize)]
    struct Status {
        #[serde(default)]
        revision: Option<String>,
    }
    Some(
        serde_json::from_str::<Status>(status)
            .ok()
            .and_then(|s| s.revision),
    )
}

/// istiod's `injectRequired` for a pod the revision's webhook was called for: the pod's
/// `sidecar.istio.io/inject` (label, else annotation) as that version reads it, the
/// injector's selectors, then its policy.
pub fn inject_required(pod: &PodIn<'_>, config: &InjectorConfig, version: IstioVersion) -> bool {
    let value = pod
        .meta()
        .label(labels::SIDECAR_INJECT)
        .or_else(|| pod.meta().annotation(labels::SIDECAR_INJECT))
        .unwrap_or_default();
    // Up to 1.26 any YAML truth word injects and any other word refuses; from 1.27 only
    // "true" and "false" count and other words fall back to the default.
    let (mut inject, mut use_default) = if version < IstioVersion(27) {
        match value.to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "on" => (true, false),
            "" => (false, true),
            _ => (false, false),
        }
    } else {
        match value {
            "true" => (true, false),
            "false" => (false, false),
            _ => (false, true),
        }
    };
    let label = |k: &str| pod.meta().label(k);
    if use_default
        && config
            .never_inject_selector
            .iter()
            .any(|s| s.selects(label))
    {
        (inject, use_default) = (false, false);
    }
    if use_default
        && config
            .always_inject_selector
            .iter()
            .any(|s| s.selects(label))
    {
        (inject, use_default) = (true, false);
    }
    match config.policy {
        InjectionPolicy::Enabled => use_default || inject,
        InjectionPolicy::Disabled => !use_default && inject,
    }
}

/// The decision for a pod sent to the webhook.
pub fn decide<'t>(
    pod: &PodIn<'_>,
    namespace: &str,
    ns_labels: &NamespaceLabels,
    table: &'t RevisionTable,
    policy: &Policy,
) -> Decided<'t> {
    decide_on(pod, namespace, ns_labels, table, policy, Path::Webhook)
}

/// The decision on either of istiod's paths: kube-inject (`revhook inject -f`) reads only the
/// pod's own `sidecar.istio.io/inject`, never the injector config's selectors or policy.
pub fn decide_on<'t>(
    pod: &PodIn<'_>,
    namespace: &str,
    ns_labels: &NamespaceLabels,
    table: &'t RevisionTable,
    policy: &Policy,
    path: Path,
) -> Decided<'t> {
    let mut warnings = Vec::new();
    let decision = match select(pod, namespace, ns_labels, policy, &mut warnings) {
        Ok((value, selector)) => resolve(pod, value, selector, table, policy, path),
        Err(Early::Skip(skip)) => Decision::Skip(skip),
        Err(Early::Conflict) => Decision::Conflict {
            namespace: namespace.to_owned(),
        },
    };
    Decided { decision, warnings }
}

/// A decision reached before any value is resolved.
enum Early {
    Skip(Skip),
    Conflict,
}

/// Steps 1–4: which `istio.io/rev` value applies, or the decision when none does.
fn select<'p>(
    pod: &'p PodIn<'_>,
    namespace: &str,
    ns: &'p NamespaceLabels,
    policy: &Policy,
    warnings: &mut Vec<String>,
) -> Result<(&'p str, Selector), Early> {
    if pod.is_host_network() {
        return Err(Early::Skip(Skip::HostNetwork));
    }
    if IGNORED_NAMESPACES.contains(&namespace) {
        return Err(Early::Skip(Skip::SystemNamespace));
    }
    // Istio's webhooks select pods by label only: `sidecar.istio.io/inject=false` keeps
    // every webhook away, `=true` opts a pod in where its namespace says nothing.
    let flag = pod.meta().label(labels::SIDECAR_INJECT);
    if flag == Some("false") {
        return Err(Early::Skip(Skip::PodOptOut));
    }
    let pod_rev = pod.meta().label(labels::ISTIO_REV);
    if ns.has_conflict() {
        if policy.on_conflict == OnConflict::Deny {
            return Err(Early::Conflict);
        }
        warnings.push(conflict_warning(namespace, ns));
    }
    let from_namespace = match (&ns.injection, &ns.rev) {
        (Some(v), _) if v == "enabled" => Some((
            DEFAULT_TAG,
            Selector::NamespaceInjection(namespace.to_owned()),
        )),
        (Some(_), _) => return Err(Early::Skip(Skip::NamespaceDisabled)),
        (None, Some(rev)) => Some((rev.as_str(), Selector::NamespaceRev(namespace.to_owned()))),
        (None, None) => None,
    };
    match (from_namespace, pod_rev) {
        (Some(_), Some(rev)) if policy.pod_revision_wins => Ok((rev, Selector::PodRev)),
        (Some(selected), _) => Ok(selected),
        (None, Some(rev)) => Ok((rev, Selector::PodRev)),
        (None, None) if flag == Some("true") => Ok((DEFAULT_TAG, Selector::PodInject)),
        (None, None) => Err(Early::Skip(Skip::NotSelected)),
    }
}

/// Steps 5–6.
fn resolve<'t>(
    pod: &PodIn<'_>,
    value: &str,
    selector: Selector,
    table: &'t RevisionTable,
    policy: &Policy,
    path: Path,
) -> Decision<'t> {
    let injected = injected_revision(pod);
    if policy.mode == Mode::Guard && injected.is_some() {
        return Decision::AlreadyInjected;
    }
    let resolved = match table.resolve(value) {
        Ok(resolved) => resolved,
        Err(stale) => return Decision::Stale { stale, selector },
    };
    let kube_inject_rules = InjectorConfig::default();
    let required = match &resolved.revision.injector {
        Ok(inj) if path == Path::KubeInject => {
            inject_required(pod, &kube_inject_rules, inj.version)
        }
        Ok(inj) => inject_required(pod, &inj.config, inj.version),
        // Guard mode judges only whether Istio injects: with the injector's config unreadable,
        // by Istio's defaults (policy enabled, no selectors).
        Err(_) if policy.mode == Mode::Guard => {
            inject_required(pod, &InjectorConfig::default(), IstioVersion::NEWEST)
        }
        Err(problem) => {
            return Decision::Unusable {
                problem: problem.clone(),
                resolved,
                selector,
            }
        }
    };
    if !required {
        return Decision::Skip(opt_out_or_policy(pod));
    }
    // An injected pod is injected again, as istiod does (it strips the earlier injection and
    // renders anew, so a pod injected for this revision comes out the same, and one injected
    // by another revision moves to this one).
    let previous = injected
        .flatten()
        .filter(|rev| *rev != resolved.revision.name);
    Decision::Inject {
        resolved,
        selector,
        previous,
    }
}

/// A pod istiod declines: its own word, or the injector's selectors and policy.
fn opt_out_or_policy(pod: &PodIn<'_>) -> Skip {
    let said = pod
        .meta()
        .label(labels::SIDECAR_INJECT)
        .or_else(|| pod.meta().annotation(labels::SIDECAR_INJECT));
    match said {
        Some(v) if labels::parse_inject_flag(v) == Some(false) => Skip::PodOptOut,
        _ => Skip::InjectorPolicy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::messages::stale_message;
    use crate::core::revisions::{MeshSettings, Revision};

    fn table() -> RevisionTable {
        let mesh = MeshSettings::default();
        RevisionTable::new(
            [
                Revision::new("asm-1-22", "img:1.22", &mesh),
                Revision::new("asm-1-23", "img:1.23", &mesh),
            ],
            [
                ("default".to_owned(), "asm-1-22".to_owned()),
                ("prod-stable".to_owned(), "asm-1-22".to_owned()),
                ("prod-canary".to_owned(), "asm-1-23".to_owned()),
            ],
        )
        .expect("table")
    }

    fn ns(injection: Option<&str>, rev: Option<&str>) -> NamespaceLabels {
        NamespaceLabels {
            injection: injection.map(Into::into),
            rev: rev.map(Into::into),
        }
    }

    fn pod(json: &str) -> PodIn<'_> {
        PodIn::parse(json).expect("pod json")
    }

    const PLAIN: &str = r#"{"spec":{"containers":[{"name":"app"}]}}"#;

    fn revision_of(d: &Decision<'_>) -> Option<String> {
        match d {
            Decision::Inject { resolved, .. } => Some(resolved.revision.name.clone()),
            _ => None,
        }
    }

    fn run(
        p: &str,
        ns_labels: NamespaceLabels,
        policy: Policy,
    ) -> (Option<String>, Decided<'static>) {
        // Leak keeps the test helper short: the table lives for the test process.
        let t: &'static RevisionTable = Box::leak(Box::new(table()));
        let json: &'static str = Box::leak(p.to_owned().into_boxed_str());
        let pod: &'static PodIn<'static> = Box::leak(Box::new(pod(json)));
        let d = decide(pod, "shop", &ns_labels, t, &policy);
        (revision_of(&d.decision), d)
    }

    #[test]
    fn host_network_is_never_injected() {
        let (_, d) = run(
            r#"{"spec":{"hostNetwork":true,"containers":[]}}"#,
            ns(Some("enabled"), None),
            Policy::default(),
        );
        assert_eq!(d.decision, Decision::Skip(Skip::HostNetwork));
    }

    #[test]
    fn system_namespaces_are_never_injected() {
        let t = table();
        let p = pod(PLAIN);
        for system in IGNORED_NAMESPACES {
            let d = decide(
                &p,
                system,
                &ns(Some("enabled"), None),
                &t,
                &Policy::default(),
            );
            assert_eq!(d.decision, Decision::Skip(Skip::SystemNamespace));
        }
    }

    #[test]
    fn pod_label_false_opts_out_even_in_enabled_namespace() {
        let (_, d) = run(
            r#"{"metadata":{"labels":{"sidecar.istio.io/inject":"false"}},"spec":{"containers":[]}}"#,
            ns(None, Some("prod-stable")),
            Policy::default(),
        );
        assert_eq!(d.decision, Decision::Skip(Skip::PodOptOut));
    }

    #[test]
    fn deprecated_annotation_counts_when_label_absent_and_label_wins_over_it() {
        let (_, d) = run(
            r#"{"metadata":{"annotations":{"sidecar.istio.io/inject":"false"}},"spec":{"containers":[]}}"#,
            ns(Some("enabled"), None),
            Policy::default(),
        );
        assert_eq!(d.decision, Decision::Skip(Skip::PodOptOut));
        let (rev, _) = run(
            r#"{"metadata":{"labels":{"sidecar.istio.io/inject":"true"},"annotations":{"sidecar.istio.io/inject":"false"}},"spec":{"containers":[]}}"#,
            ns(Some("enabled"), None),
            Policy::default(),
        );
        assert_eq!(rev.as_deref(), Some("asm-1-22"));
    }

    #[test]
    fn pod_inject_true_alone_uses_default_tag() {
        let (rev, d) = run(
            r#"{"metadata":{"labels":{"sidecar.istio.io/inject":"true"}},"spec":{"containers":[]}}"#,
            ns(None, None),
            Policy::default(),
        );
        assert_eq!(rev.as_deref(), Some("asm-1-22"));
        assert!(matches!(
            d.decision,
            Decision::Inject {
                selector: Selector::PodInject,
                ..
            }
        ));
    }

    #[test]
    fn pod_inject_true_does_not_override_disabled_namespace() {
        let (_, d) = run(
            r#"{"metadata":{"labels":{"sidecar.istio.io/inject":"true"}},"spec":{"containers":[]}}"#,
            ns(Some("disabled"), None),
            Policy::default(),
        );
        assert_eq!(d.decision, Decision::Skip(Skip::NamespaceDisabled));
    }

    #[test]
    fn namespace_injection_enabled_selects_default_tag() {
        let (rev, d) = run(PLAIN, ns(Some("enabled"), None), Policy::default());
        assert_eq!(rev.as_deref(), Some("asm-1-22"));
        assert!(matches!(
            d.decision,
            Decision::Inject {
                selector: Selector::NamespaceInjection(_),
                resolved: Resolved {
                    via_tag: Some("default"),
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn namespace_rev_tag_selects_its_revision() {
        let (rev, _) = run(PLAIN, ns(None, Some("prod-canary")), Policy::default());
        assert_eq!(rev.as_deref(), Some("asm-1-23"));
    }

    #[test]
    fn namespace_label_wins_over_pod_rev_unless_flag() {
        let p = r#"{"metadata":{"labels":{"istio.io/rev":"asm-1-23"}},"spec":{"containers":[]}}"#;
        let (rev, _) = run(p, ns(None, Some("prod-stable")), Policy::default());
        assert_eq!(rev.as_deref(), Some("asm-1-22"));
        let wins = Policy {
            pod_revision_wins: true,
            ..Policy::default()
        };
        let (rev, d) = run(p, ns(None, Some("prod-stable")), wins);
        assert_eq!(rev.as_deref(), Some("asm-1-23"));
        assert!(matches!(
            d.decision,
            Decision::Inject {
                selector: Selector::PodRev,
                ..
            }
        ));
    }

    #[test]
    fn pod_rev_chooses_when_namespace_has_no_label() {
        let p =
            r#"{"metadata":{"labels":{"istio.io/rev":"prod-canary"}},"spec":{"containers":[]}}"#;
        let (rev, _) = run(p, ns(None, None), Policy::default());
        assert_eq!(rev.as_deref(), Some("asm-1-23"));
    }

    #[test]
    fn unlabelled_pod_in_unlabelled_namespace_is_skipped() {
        let (_, d) = run(PLAIN, ns(None, None), Policy::default());
        assert_eq!(d.decision, Decision::Skip(Skip::NotSelected));
    }

    #[test]
    fn conflict_warns_and_istio_injection_wins() {
        let (rev, d) = run(
            PLAIN,
            ns(Some("enabled"), Some("asm-1-23")),
            Policy::default(),
        );
        assert_eq!(rev.as_deref(), Some("asm-1-22"));
        assert_eq!(d.warnings.len(), 1);
        assert!(
            d.warnings[0].contains("istio-injection wins"),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn conflict_with_disabled_injection_also_warns_and_skips() {
        let (_, d) = run(
            PLAIN,
            ns(Some("disabled"), Some("asm-1-23")),
            Policy::default(),
        );
        assert_eq!(d.decision, Decision::Skip(Skip::NamespaceDisabled));
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn conflict_denies_with_on_conflict_deny() {
        let policy = Policy {
            on_conflict: OnConflict::Deny,
            ..Policy::default()
        };
        let (_, d) = run(PLAIN, ns(Some("enabled"), Some("asm-1-23")), policy);
        assert_eq!(
            d.decision,
            Decision::Conflict {
                namespace: "shop".into()
            }
        );
    }

    #[test]
    fn stale_namespace_revision_is_a_typed_outcome_with_fix() {
        let (_, d) = run(PLAIN, ns(None, Some("asm-1-20")), Policy::default());
        let Decision::Stale { stale, selector } = d.decision else {
            panic!("expected stale, got {:?}", d.decision);
        };
        assert_eq!(
            stale_message(&stale, &selector),
            "namespace \"shop\" selects revision \"asm-1-20\", which is not installed; installed: asm-1-22, asm-1-23; \
             tags: default -> asm-1-22, prod-canary -> asm-1-23, prod-stable -> asm-1-22. \
             Relabel with: kubectl label namespace shop istio.io/rev=asm-1-22 --overwrite"
        );
    }

    #[test]
    fn injected_for_the_resolved_revision_is_injected_again_as_istiod_does() {
        let p = r#"{"metadata":{"annotations":{"sidecar.istio.io/status":"{\"containers\":[\"istio-proxy\"],\"revision\":\"asm-1-22\"}"}},"spec":{"containers":[]}}"#;
        let (rev, d) = run(p, ns(None, Some("prod-stable")), Policy::default());
        assert_eq!(rev.as_deref(), Some("asm-1-22"));
        assert!(matches!(
            d.decision,
            Decision::Inject { previous: None, .. }
        ));
    }

    #[test]
    fn injected_for_other_revision_is_reinjected() {
        let p = r#"{"metadata":{"annotations":{"sidecar.istio.io/status":"{\"revision\":\"asm-1-22\"}"}},"spec":{"containers":[]}}"#;
        let (rev, d) = run(p, ns(None, Some("prod-canary")), Policy::default());
        assert_eq!(rev.as_deref(), Some("asm-1-23"));
        assert!(
            matches!(d.decision, Decision::Inject { previous: Some(ref p), .. } if p == "asm-1-22")
        );
    }

    #[test]
    fn guard_mode_never_touches_injected_pods() {
        let p = r#"{"metadata":{"annotations":{"sidecar.istio.io/status":"{\"revision\":\"asm-1-20\"}"}},"spec":{"containers":[]}}"#;
        let guard = Policy {
            mode: Mode::Guard,
            ..Policy::default()
        };
        let (_, d) = run(p, ns(None, Some("asm-1-20")), guard);
        assert_eq!(d.decision, Decision::AlreadyInjected);
    }

    #[test]
    fn a_status_istio_cannot_read_is_injected_over_in_inject_mode_and_left_in_guard_mode() {
        let p = r#"{"metadata":{"annotations":{"sidecar.istio.io/status":"not json"}},"spec":{"containers":[]}}"#;
        let (rev, _) = run(p, ns(None, Some("prod-stable")), Policy::default());
        assert_eq!(rev.as_deref(), Some("asm-1-22"));
        let guard = Policy {
            mode: Mode::Guard,
            ..Policy::default()
        };
        let (_, d) = run(p, ns(None, Some("prod-stable")), guard);
        assert_eq!(d.decision, Decision::AlreadyInjected);
    }
}
