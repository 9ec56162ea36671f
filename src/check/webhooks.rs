//! Webhook configurations: an empty caBundle, a service that is gone, and the leftovers of
//! revisions that are no longer installed.

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Resource as _;

use super::{finding, ClusterObjects, Finding, Severity};
use crate::core::labels;
use crate::core::snapshot::Snapshot;
use crate::core::webhooks::Hooks as _;

/// `(namespace, name)` of a Service.
type ServiceKey = (String, String);

pub(super) fn findings(objects: &ClusterObjects, snapshot: &Snapshot) -> Vec<Finding> {
    let services = known_services(objects);
    let configs = objects
        .mutating
        .iter()
        .map(|m| (MutatingWebhookConfiguration::KIND, &m.metadata, m.hooks()))
        .chain(
            objects
                .validating
                .iter()
                .map(|v| (ValidatingWebhookConfiguration::KIND, &v.metadata, v.hooks())),
        );
    let mut out = Vec::new();
    for (kind, meta, hooks) in configs {
        let config = Config::new(kind, meta);
        for (hook, client) in hooks {
            out.extend(hook_findings(&config, hook, client, services.as_ref()));
        }
        out.extend(leftover(&config, snapshot));
    }
    out
}

/// The Services in the input; `None` when it had none at all (a dump without them).
fn known_services(objects: &ClusterObjects) -> Option<BTreeSet<ServiceKey>> {
    objects.services.as_ref().map(|s| {
        s.iter()
            .map(|svc| {
                (
                    svc.metadata.namespace.clone().unwrap_or_default(),
                    svc.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect()
    })
}

/// One webhook configuration being judged.
struct Config<'m> {
    kind: &'static str,
    name: &'m str,
    meta: &'m ObjectMeta,
}

impl<'m> Config<'m> {
    fn new(kind: &'static str, meta: &'m ObjectMeta) -> Self {
        Config {
            kind,
            name: meta.name.as_deref().unwrap_or_default(),
            meta,
        }
    }

    fn object(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    fn delete_command(&self) -> String {
        format!(
            "kubectl delete {} {}",
            self.kind.to_ascii_lowercase(),
            self.name
        )
    }
}

/// Only webhooks called through a Service are judged (a `url:` one is someone else's setup).
fn hook_findings(
    config: &Config<'_>,
    hook: &str,
    client: &WebhookClientConfig,
    services: Option<&BTreeSet<ServiceKey>>,
) -> Vec<Finding> {
    let Some(service) = client
        .service
        .as_ref()
        .map(|s| (s.namespace.clone(), s.name.clone()))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if client.ca_bundle.as_ref().is_none_or(|b| b.0.is_empty()) {
        out.push(finding(
            Severity::Error,
            "REVHOOK-CA-BUNDLE",
            Some("IST0139"),
            config.object(),
            format!("webhook {hook} has an empty caBundle: the API server cannot call it"),
            Some("run revhook with --manage-ca-bundle, or re-inject the CA (cert-manager's inject-ca-from)".into()),
        ));
    }
    if services.is_some_and(|known| !known.contains(&service)) {
        out.push(finding(
            Severity::Error,
            "REVHOOK-WEBHOOK-SERVICE",
            Some("IST0139"),
            config.object(),
            format!(
                "webhook {hook} points at service {}/{}, which does not exist",
                service.0, service.1
            ),
            Some(format!(
                "{}  # if it belongs to a removed control plane",
                config.delete_command()
            )),
        ));
    }
    out
}

/// Leftovers of revisions that are gone break later installs ("the object has been modified").
/// Tag webhooks are judged as tags, and `default` is every revision's fallback name.
fn leftover(config: &Config<'_>, snapshot: &Snapshot) -> Option<Finding> {
    let labels_ = config.meta.labels.as_ref();
    if labels_.is_some_and(|l| l.contains_key(labels::ISTIO_TAG)) {
        return None;
    }
    let rev = labels_
        .and_then(|l| l.get(labels::ISTIO_REV))
        .cloned()
        .or_else(|| leftover_revision(config.name))
        .filter(|r| r != "default" && snapshot.table.revision(r).is_none())?;
    Some(finding(
        Severity::Warning,
        "REVHOOK-LEFTOVER-WEBHOOK",
        None,
        config.object(),
        format!("belongs to revision {rev:?}, which is no longer installed; it breaks later installs and upgrades"),
        Some(config.delete_command()),
    ))
}

/// The revision in Istio's per-revision webhook names: `istio-sidecar-injector-<rev>`,
/// `istio-validator-<rev>-<istio namespace>`.
fn leftover_revision(name: &str) -> Option<String> {
    if let Some(rev) = name.strip_prefix("istio-sidecar-injector-") {
        return Some(rev.to_owned());
    }
    let rest = name.strip_prefix("istio-validator-")?;
    // The longer suffix first: `-aks-istio-system` also ends with `-istio-system`.
    let rev = rest
        .strip_suffix("-aks-istio-system")
        .or_else(|| rest.strip_suffix("-istio-system"))?;
    Some(rev.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{client, codes, mutating, service, snapshot, validating};
    use crate::core::labels::{ISTIO_REV, ISTIO_TAG};

    const ISTIOD: (&str, &str) = ("istio-system", "istiod-asm-1-23");

    fn installed() -> Snapshot {
        snapshot(&[("asm-1-23", "img:1.23")], &[], &[])
    }

    fn judge(objects: ClusterObjects) -> Vec<Finding> {
        findings(&objects, &installed())
    }

    fn with_istiod(objects: ClusterObjects) -> ClusterObjects {
        ClusterObjects {
            services: Some(vec![service(ISTIOD.0, ISTIOD.1)]),
            ..objects
        }
    }

    #[test]
    fn an_empty_or_missing_ca_bundle_is_an_error_per_webhook() {
        let mut no_bundle = client(ISTIOD, b"");
        no_bundle.ca_bundle = None;
        let found = judge(ClusterObjects {
            mutating: vec![mutating(
                "istio-sidecar-injector-asm-1-23",
                &[(ISTIO_REV, "asm-1-23")],
                vec![
                    ("empty.sidecar-injector.istio.io", client(ISTIOD, b"")),
                    ("none.sidecar-injector.istio.io", no_bundle),
                ],
            )],
            ..ClusterObjects::default()
        });
        assert_eq!(codes(&found), ["REVHOOK-CA-BUNDLE"; 2]);
        assert_eq!(
            found[0].object,
            "MutatingWebhookConfiguration/istio-sidecar-injector-asm-1-23"
        );
        assert_eq!(found[0].istio_code, Some("IST0139"));
        assert!(
            found[1].message.contains("none.sidecar-injector.istio.io"),
            "{}",
            found[1].message
        );
    }

    #[test]
    fn a_ca_bundle_or_a_url_webhook_is_no_ca_finding() {
        let mut by_url = client(ISTIOD, b"");
        by_url.service = None;
        by_url.url = Some("https://127.0.0.1:15017/inject".into());
        let found = judge(with_istiod(ClusterObjects {
            mutating: vec![mutating(
                "istio-sidecar-injector-asm-1-23",
                &[],
                vec![
                    ("a.istio.io", client(ISTIOD, b"PEM")),
                    ("b.istio.io", by_url),
                ],
            )],
            ..ClusterObjects::default()
        }));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_webhook_calling_a_missing_service_is_an_error() {
        let gone = ("istio-system", "istiod-asm-1-21");
        let found = judge(with_istiod(ClusterObjects {
            validating: vec![validating(
                "istio-validator-asm-1-23-istio-system",
                &[],
                vec![("rev.validation.istio.io", client(gone, b"PEM"))],
            )],
            ..ClusterObjects::default()
        }));
        assert_eq!(codes(&found), ["REVHOOK-WEBHOOK-SERVICE"]);
        assert_eq!(
            found[0].object,
            "ValidatingWebhookConfiguration/istio-validator-asm-1-23-istio-system"
        );
        assert!(
            found[0]
                .message
                .contains("points at service istio-system/istiod-asm-1-21"),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl delete validatingwebhookconfiguration istio-validator-asm-1-23-istio-system  # if it belongs to a removed control plane")
        );
    }

    #[test]
    fn services_are_not_judged_when_the_input_has_none() {
        let found = judge(ClusterObjects {
            mutating: vec![mutating(
                "istio-sidecar-injector-asm-1-23",
                &[],
                vec![("a.istio.io", client(("istio-system", "gone"), b"PEM"))],
            )],
            services: None,
            ..ClusterObjects::default()
        });
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_webhook_of_a_revision_no_longer_installed_is_a_leftover() {
        let found = judge(with_istiod(ClusterObjects {
            mutating: vec![
                mutating("istio-sidecar-injector-asm-1-21", &[], vec![]),
                mutating("revhook-old", &[(ISTIO_REV, "asm-1-20")], vec![]),
            ],
            validating: vec![validating(
                "istio-validator-asm-1-21-istio-system",
                &[],
                vec![],
            )],
            ..ClusterObjects::default()
        }));
        assert_eq!(codes(&found), ["REVHOOK-LEFTOVER-WEBHOOK"; 3]);
        assert!(
            found[0].message.contains("\"asm-1-21\""),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl delete mutatingwebhookconfiguration istio-sidecar-injector-asm-1-21")
        );
        assert!(
            found[1].message.contains("\"asm-1-20\""),
            "{}",
            found[1].message
        );
        assert_eq!(
            found[2].object,
            "ValidatingWebhookConfiguration/istio-validator-asm-1-21-istio-system"
        );
    }

    #[test]
    fn installed_default_tag_and_foreign_webhooks_are_not_leftovers() {
        let found = judge(with_istiod(ClusterObjects {
            mutating: vec![
                mutating("istio-sidecar-injector-asm-1-23", &[], vec![]),
                mutating("istio-sidecar-injector", &[(ISTIO_REV, "default")], vec![]),
                mutating(
                    "istio-revision-tag-prod",
                    &[(ISTIO_TAG, "prod"), (ISTIO_REV, "asm-1-21")],
                    vec![],
                ),
                mutating("cert-manager-webhook", &[], vec![]),
            ],
            validating: vec![validating("istio-validator-asm-1-21-other-ns", &[], vec![])],
            ..ClusterObjects::default()
        }));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn an_aks_validator_is_read_for_its_revision_not_the_namespace_suffix() {
        let found = judge(ClusterObjects {
            validating: vec![
                validating("istio-validator-asm-1-23-aks-istio-system", &[], vec![]),
                validating("istio-validator-asm-1-19-aks-istio-system", &[], vec![]),
            ],
            ..ClusterObjects::default()
        });
        assert_eq!(codes(&found), ["REVHOOK-LEFTOVER-WEBHOOK"]);
        assert!(
            found[0].message.contains("revision \"asm-1-19\","),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn the_rev_label_names_the_revision_before_the_webhook_name() {
        let found = judge(ClusterObjects {
            mutating: vec![mutating(
                "istio-sidecar-injector-asm-1-21",
                &[(ISTIO_REV, "asm-1-23")],
                vec![],
            )],
            ..ClusterObjects::default()
        });
        assert!(found.is_empty(), "{found:?}");
    }
}
