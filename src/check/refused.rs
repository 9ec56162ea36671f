//! Workloads whose pods a webhook refused: the Cloud Service Mesh guide's "pods never appear,
//! but the ReplicaSet exists". The ReplicaSet controller records the API server's answer in a
//! `ReplicaFailure` condition (reason `FailedCreate`); the Job, StatefulSet and DaemonSet
//! controllers in `FailedCreate` events. Each message is classified with the fix that guide's
//! table gives for it.

use std::collections::BTreeMap;

use super::{finding, ClusterObjects, Finding, Severity};

/// What a webhook refusal says about its cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cause {
    /// `context deadline exceeded`, `Client.Timeout exceeded`: the API server cannot reach
    /// the webhook (on private clusters, the control plane cannot reach port 15017).
    Timeout,
    /// `no endpoints available for service "<name>"`: the injector's pods are not ready.
    NoEndpoints { service: Option<String> },
    /// `service "<name>" not found`: the revision is half removed.
    ServiceNotFound { service: Option<String> },
    /// `x509: certificate signed by unknown authority`: the caBundle does not match.
    UnknownAuthority,
    /// `the object has been modified` from `istio-validator-<old revision>`: a leftover
    /// validating webhook of an uninstalled revision.
    LeftoverValidator { webhook: Option<String> },
    /// The webhook answered and refused (`denied the request`): its reason says why.
    Denied,
    /// Another failure calling a webhook.
    Other,
}

/// The text between the first pair of double quotes after `after`.
fn quoted_after<'m>(message: &'m str, after: &str) -> Option<&'m str> {
    let rest = &message[message.find(after)? + after.len()..];
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    Some(&rest[start..start + len])
}

/// The cause of a refusal, or `None` when the message is not about a webhook (a quota...).
pub(super) fn classify(message: &str) -> Option<Cause> {
    if !message.contains("admission webhook") && !message.contains("calling webhook") {
        return None;
    }
    let service = |after: &str| quoted_after(message, after).map(str::to_owned);
    Some(if message.contains("no endpoints available for service") {
        Cause::NoEndpoints {
            service: service("no endpoints available for service"),
        }
    } else if message.contains("context deadline exceeded")
        || message.contains("Client.Timeout exceeded")
        || message.contains("i/o timeout")
    {
        Cause::Timeout
    } else if message.contains("x509: certificate signed by unknown authority") {
        Cause::UnknownAuthority
    } else if message.contains("the object has been modified") {
        // A Kubernetes name: lower-case letters, digits, '-' and '.'.
        let webhook = message
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
            .find(|w| w.starts_with("istio-validator-"))
            .map(|w| w.trim_end_matches('.').to_owned());
        Cause::LeftoverValidator { webhook }
    } else if message.contains("service \"") && message.contains("\" not found") {
        Cause::ServiceNotFound {
            service: service("service"),
        }
    } else if message.contains("denied the request") {
        Cause::Denied
    } else {
        Cause::Other
    })
}

impl Cause {
    /// The Cloud Service Mesh guide's fix for this cause.
    pub(super) fn fix(&self, message: &str) -> Option<String> {
        match self {
            Cause::Timeout => Some("the API server cannot reach the webhook in time: on a private cluster open the webhook's port (istiod: 15017) from the control plane to the nodes (a firewall rule for the control plane's range), else check the webhook's pods".into()),
            Cause::NoEndpoints { service } => Some(format!(
                "the injector's pods are not ready: check the Deployment behind Service {} (kubectl get pods,endpointslices -n <its namespace>)",
                service.as_deref().unwrap_or("<service>")
            )),
            Cause::ServiceNotFound { service } => Some(format!(
                "Service {} is gone (a half-removed revision): reinstall it, or finish removing it and delete the webhook configuration that still calls it",
                service.as_deref().unwrap_or("<service>")
            )),
            Cause::UnknownAuthority => Some("the webhook's caBundle does not match its serving certificate: re-inject the CA (revhook --manage-ca-bundle, cert-manager's inject-ca-from, or restart istiod so it patches its webhooks)".into()),
            Cause::LeftoverValidator { webhook } => Some(format!(
                "a validating webhook of an uninstalled revision is left: kubectl delete validatingwebhookconfiguration {}",
                webhook.as_deref().unwrap_or("istio-validator-<old revision>-<istio namespace>")
            )),
            // revhook's (and most webhooks') refusals end with the command that fixes them.
            Cause::Denied => message
                .find("kubectl ")
                .map(|i| message[i..].trim_end_matches('.').to_owned())
                .or_else(|| Some("the webhook refused the pod on purpose: its reason above says what to change".into())),
            Cause::Other => None,
        }
    }
}

/// One refused workload: where the message was read, and the message.
struct Refusal<'o> {
    source: &'static str,
    message: &'o str,
    cause: Cause,
}

pub(super) fn findings(objects: &ClusterObjects) -> Vec<Finding> {
    let mut by_object: BTreeMap<String, Refusal<'_>> = BTreeMap::new();
    for rs in &objects.replicasets {
        let conditions = rs.status.iter().flat_map(|s| s.conditions.iter().flatten());
        for c in conditions.filter(|c| c.type_ == "ReplicaFailure" && c.status == "True") {
            let Some(message) = c.message.as_deref() else {
                continue;
            };
            let Some(cause) = classify(message) else {
                continue;
            };
            let object = format!(
                "ReplicaSet/{}/{}",
                rs.metadata.namespace.as_deref().unwrap_or("default"),
                rs.metadata.name.as_deref().unwrap_or_default()
            );
            by_object.insert(
                object,
                Refusal {
                    source: "ReplicaFailure condition, reason FailedCreate",
                    message,
                    cause,
                },
            );
        }
    }
    // A ReplicaSet in the input speaks through its condition, which its controller clears
    // once it creates pods again: its FailedCreate events (kept an hour) are history then.
    let replicasets: std::collections::BTreeSet<(&str, &str)> = objects
        .replicasets
        .iter()
        .map(|rs| {
            (
                rs.metadata.namespace.as_deref().unwrap_or("default"),
                rs.metadata.name.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    let of_a_listed_replicaset = |e: &&k8s_openapi::api::core::v1::Event| {
        let o = &e.involved_object;
        o.kind.as_deref() == Some("ReplicaSet")
            && replicasets.contains(&(
                o.namespace
                    .as_deref()
                    .or(e.metadata.namespace.as_deref())
                    .unwrap_or("default"),
                o.name.as_deref().unwrap_or_default(),
            ))
    };
    // Events: the latest per object, for objects without a condition saying it.
    let mut events: Vec<_> = objects
        .events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .filter(|e| !of_a_listed_replicaset(e))
        .collect();
    events.sort_by_key(|e| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
    });
    for e in events.into_iter().rev() {
        let (Some(kind), Some(name), Some(message)) = (
            e.involved_object.kind.as_deref(),
            e.involved_object.name.as_deref(),
            e.message.as_deref(),
        ) else {
            continue;
        };
        let Some(cause) = classify(message) else {
            continue;
        };
        let ns = e
            .involved_object
            .namespace
            .as_deref()
            .or(e.metadata.namespace.as_deref())
            .unwrap_or("default");
        by_object
            .entry(format!("{kind}/{ns}/{name}"))
            .or_insert(Refusal {
                source: "FailedCreate event",
                message,
                cause,
            });
    }
    by_object
        .into_iter()
        .map(|(object, r)| {
            finding(
                Severity::Error,
                "REVHOOK-PODS-REFUSED",
                None,
                object,
                format!("cannot create its pods ({}): {}", r.source, r.message),
                r.cause.fix(r.message),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{codes, failed_create_event, replicaset_failing};

    const DENIED: &str = "admission webhook \"rev.namespace.inject.revhook.dev\" denied the request: namespace \"shop\" selects tag \"prod-stable\", which points at revision \"asm-1-22\" that is not installed; installed: asm-1-23. Relabel with: kubectl label namespace shop istio.io/rev=asm-1-23 --overwrite";

    #[test]
    fn each_message_of_the_guides_table_gets_its_cause() {
        let call = |tail: &str| {
            format!("Internal error occurred: failed calling webhook \"namespace.sidecar-injector.istio.io\": failed to call webhook: Post \"https://istiod-asm-1-22.istio-system.svc:443/inject?timeout=10s\": {tail}")
        };
        assert_eq!(
            classify(&call("context deadline exceeded")),
            Some(Cause::Timeout)
        );
        assert_eq!(
            classify(&call(
                "net/http: request canceled (Client.Timeout exceeded while awaiting headers)"
            )),
            Some(Cause::Timeout)
        );
        assert_eq!(
            classify(&call(
                "no endpoints available for service \"istiod-asm-1-22\""
            )),
            Some(Cause::NoEndpoints {
                service: Some("istiod-asm-1-22".into())
            })
        );
        assert_eq!(
            classify(&call("service \"istiod-asm-1-22\" not found")),
            Some(Cause::ServiceNotFound {
                service: Some("istiod-asm-1-22".into())
            })
        );
        assert_eq!(
            classify(&call(
                "tls: failed to verify certificate: x509: certificate signed by unknown authority"
            )),
            Some(Cause::UnknownAuthority)
        );
        assert_eq!(
            classify("Internal error occurred: failed calling webhook \"rev.validation.istio.io\" of istio-validator-asm-1-20-istio-system: the object has been modified; please apply your changes to the latest version and try again"),
            Some(Cause::LeftoverValidator {
                webhook: Some("istio-validator-asm-1-20-istio-system".into())
            })
        );
        assert_eq!(classify(DENIED), Some(Cause::Denied));
        assert_eq!(classify(&call("EOF")), Some(Cause::Other));
        assert_eq!(
            classify("pods \"web-1\" is forbidden: exceeded quota: compute"),
            None,
            "not a webhook"
        );
    }

    #[test]
    fn fixes_follow_the_cause() {
        assert_eq!(
            Cause::Denied.fix(DENIED).as_deref(),
            Some("kubectl label namespace shop istio.io/rev=asm-1-23 --overwrite")
        );
        assert!(Cause::Timeout.fix("").is_some_and(|f| f.contains("15017")));
        assert!(Cause::LeftoverValidator {
            webhook: Some("istio-validator-asm-1-20-istio-system".into())
        }
        .fix("")
        .is_some_and(|f| f.ends_with(
            "kubectl delete validatingwebhookconfiguration istio-validator-asm-1-20-istio-system"
        )));
        assert_eq!(Cause::Other.fix(""), None);
    }

    #[test]
    fn a_replicaset_with_a_webhook_failure_condition_is_named() {
        let objects = ClusterObjects {
            replicasets: vec![
                replicaset_failing("shop", "web-7c9d", Some(DENIED)),
                replicaset_failing(
                    "shop",
                    "quota-1",
                    Some("pods \"q\" is forbidden: exceeded quota"),
                ),
                replicaset_failing("shop", "fine-1", None),
            ],
            ..ClusterObjects::default()
        };
        let found = findings(&objects);
        assert_eq!(codes(&found), ["REVHOOK-PODS-REFUSED"]);
        assert_eq!(found[0].object, "ReplicaSet/shop/web-7c9d");
        assert_eq!(found[0].severity, Severity::Error);
        assert!(
            found[0].message.starts_with("cannot create its pods (ReplicaFailure condition, reason FailedCreate): admission webhook"),
            "{}",
            found[0].message
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("kubectl label namespace shop istio.io/rev=asm-1-23 --overwrite")
        );
    }

    #[test]
    fn events_name_jobs_and_statefulsets_once_each_with_the_latest_message() {
        let timeout = "Error creating: Internal error occurred: failed calling webhook \"x.istio.io\": context deadline exceeded";
        let objects = ClusterObjects {
            replicasets: vec![replicaset_failing("shop", "web-7c9d", Some(DENIED))],
            events: vec![
                failed_create_event("shop", "Job", "migrate", timeout, 100),
                failed_create_event("shop", "Job", "migrate", DENIED, 200),
                failed_create_event("shop", "StatefulSet", "db", timeout, 50),
                failed_create_event("shop", "ReplicaSet", "web-7c9d", timeout, 300),
                failed_create_event("shop", "Job", "quota", "exceeded quota", 10),
            ],
            ..ClusterObjects::default()
        };
        let found = findings(&objects);
        let objects: Vec<&str> = found.iter().map(|f| f.object.as_str()).collect();
        assert_eq!(
            objects,
            [
                "Job/shop/migrate",
                "ReplicaSet/shop/web-7c9d",
                "StatefulSet/shop/db"
            ]
        );
        assert!(
            found[0].message.contains("denied the request"),
            "the latest: {}",
            found[0].message
        );
        assert!(
            found[1].message.contains("ReplicaFailure"),
            "the condition wins: {}",
            found[1].message
        );
        assert!(found[2]
            .message
            .starts_with("cannot create its pods (FailedCreate event)"));
    }

    #[test]
    fn a_replicaset_that_creates_pods_again_is_not_named_for_its_old_events() {
        let x509 = "Error creating: Internal error occurred: failed calling webhook \"rev.namespace.inject.revhook.dev\": failed to call webhook: Post \"https://revhook.revhook-system.svc:443/inject?timeout=10s\": tls: failed to verify certificate: x509: certificate signed by unknown authority";
        let events = vec![
            failed_create_event("shop", "ReplicaSet", "web-7c9d", x509, 100),
            failed_create_event("shop", "ReplicaSet", "gone-1", x509, 100),
        ];
        // Repaired: the controller cleared its condition; the events stay for an hour.
        let repaired = findings(&ClusterObjects {
            replicasets: vec![replicaset_failing("shop", "web-7c9d", None)],
            events: events.clone(),
            ..ClusterObjects::default()
        });
        let objects: Vec<&str> = repaired.iter().map(|f| f.object.as_str()).collect();
        assert_eq!(
            objects,
            ["ReplicaSet/shop/gone-1"],
            "a ReplicaSet not in the input is still judged by its events"
        );
        // Still failing: named, by its condition.
        let failing = findings(&ClusterObjects {
            replicasets: vec![replicaset_failing("shop", "web-7c9d", Some(x509))],
            events,
            ..ClusterObjects::default()
        });
        assert!(failing[1].message.contains("ReplicaFailure"), "{failing:?}");
    }
}
