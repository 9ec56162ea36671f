//! The deployment manifests parse as the Kubernetes types they claim to be, and agree with the
//! binary: every flag they pass exists, webhook paths and policies are the ones documented.

mod common;

use std::path::Path;
use std::process::Command;

use common::manifest::yaml_docs;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;

fn docs(path: &str) -> Vec<Value> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests")
        .join(path);
    yaml_docs(&std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display())))
}

fn deployment() -> Deployment {
    let doc = docs("base/deployment.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("Deployment");
    serde_json::from_value(doc).expect("a valid Deployment")
}

fn args() -> Vec<String> {
    let d = deployment();
    let spec = d.spec.and_then(|s| s.template.spec).expect("pod spec");
    spec.containers[0].args.clone().unwrap_or_default()
}

#[test]
fn every_flag_the_deployment_passes_exists() {
    let help = Command::new(env!("CARGO_BIN_EXE_revhook"))
        .args(["serve", "--help"])
        .output()
        .expect("revhook serve --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let args = args();
    assert_eq!(args.first().map(String::as_str), Some("serve"));
    for arg in &args[1..] {
        let flag = arg.split('=').next().unwrap_or_default();
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "unknown flag {flag} in manifests"
        );
    }
    let overlay = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("manifests/overlays/self-managed/kustomization.yaml"),
    )
    .expect("overlay");
    for flag in ["--manage-ca-bundle", "--ca-cert"] {
        assert!(overlay.contains(flag) && help.contains(flag), "{flag}");
    }
}

#[test]
fn guard_overlay_replaces_the_arguments_it_means_to() {
    let args = args();
    let overlay = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/overlays/guard/kustomization.yaml"),
    )
    .expect("overlay");
    for (index, prefix) in [(6, "--istio-namespace="), (7, "--mode=")] {
        assert!(
            args[index].starts_with(prefix),
            "args[{index}] is {:?}",
            args[index]
        );
        assert!(
            overlay.contains(&format!("/args/{index}\n        value: {prefix}")),
            "guard overlay patches args[{index}]"
        );
    }
}

/// `revhook tags set` reads the installed mode from this label (#15 item 4): the base says
/// inject, the guard overlay replaces it with guard, and moves the Role that reads Istio's
/// objects to the add-on's namespace.
#[test]
fn the_guard_overlay_sets_the_mode_label_and_the_istio_namespace_role() {
    let doc = docs("base/mutatingwebhook.yaml").remove(0);
    assert_eq!(doc["metadata"]["labels"]["revhook.dev/mode"], "inject");
    let overlay = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/overlays/guard/kustomization.yaml"),
    )
    .expect("overlay");
    assert!(
        overlay.contains("path: /metadata/labels/revhook.dev~1mode\n        value: guard"),
        "{overlay}"
    );
    for kind in ["Role", "RoleBinding"] {
        assert!(
            overlay.contains(&format!(
                "kind: {kind}\n      name: revhook-istio\n    patch: |-\n      - op: replace\n        path: /metadata/namespace\n        value: aks-istio-system"
            )),
            "the guard overlay reads Istio's objects in aks-istio-system only ({kind})"
        );
    }
}

#[test]
fn mutating_webhooks_fail_closed_on_inject_and_skip_system_namespaces() {
    let doc = docs("base/mutatingwebhook.yaml").remove(0);
    let mwc: MutatingWebhookConfiguration = serde_json::from_value(doc).expect("valid MWC");
    let webhooks = mwc.webhooks.expect("webhooks");
    assert_eq!(webhooks.len(), 4);
    for w in &webhooks {
        let service = w.client_config.service.as_ref().expect("service");
        assert_eq!(
            (service.name.as_str(), service.path.as_deref(), service.port),
            ("revhook", Some("/inject"), Some(443))
        );
        assert_eq!(w.failure_policy.as_deref(), Some("Fail"), "{}", w.name);
        assert_eq!(w.side_effects, "None");
        assert_eq!(w.reinvocation_policy.as_deref(), Some("IfNeeded"));
        assert_eq!(w.admission_review_versions, vec!["v1"]);
        let ns = serde_json::to_string(&w.namespace_selector).expect("json");
        assert!(
            ns.contains("kube-system") && ns.contains("NotIn"),
            "{}: {ns}",
            w.name
        );
    }
}

#[test]
fn validating_webhooks_cover_namespaces_workloads_and_tags() {
    let doc = docs("base/validatingwebhook.yaml").remove(0);
    let vwc: ValidatingWebhookConfiguration = serde_json::from_value(doc).expect("valid VWC");
    let webhooks = vwc.webhooks.expect("webhooks");
    let resources: Vec<String> = webhooks
        .iter()
        .flat_map(|w| w.rules.iter().flatten())
        .flat_map(|r| r.resources.clone().unwrap_or_default())
        .collect();
    for r in [
        "namespaces",
        "pods",
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
        "jobs",
        "cronjobs",
        "mutatingwebhookconfigurations",
    ] {
        assert!(resources.iter().any(|x| x == r), "{r} not validated");
    }
    for w in &webhooks {
        assert_eq!(
            w.client_config
                .service
                .as_ref()
                .and_then(|s| s.path.as_deref()),
            Some("/validate")
        );
        assert_eq!(w.side_effects, "None");
    }
    let tags = webhooks
        .iter()
        .find(|w| w.name.starts_with("tags."))
        .expect("tag webhook");
    assert!(serde_json::to_string(&tags.object_selector)
        .expect("json")
        .contains("istio.io/tag"));
}

#[test]
fn every_manifest_document_is_a_known_kind() {
    for file in [
        "base/namespace.yaml",
        "base/rbac.yaml",
        "base/deployment.yaml",
        "base/service.yaml",
        "base/disruption.yaml",
        "overlays/cert-manager/certificates.yaml",
    ] {
        for doc in docs(file) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let ok = match kind.as_str() {
                "Namespace" => {
                    serde_json::from_value::<k8s_openapi::api::core::v1::Namespace>(doc).is_ok()
                }
                "ServiceAccount" => {
                    serde_json::from_value::<k8s_openapi::api::core::v1::ServiceAccount>(doc)
                        .is_ok()
                }
                "ClusterRole" => {
                    serde_json::from_value::<k8s_openapi::api::rbac::v1::ClusterRole>(doc).is_ok()
                }
                "ClusterRoleBinding" => {
                    serde_json::from_value::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(doc)
                        .is_ok()
                }
                "Role" => serde_json::from_value::<k8s_openapi::api::rbac::v1::Role>(doc).is_ok(),
                "RoleBinding" => {
                    serde_json::from_value::<k8s_openapi::api::rbac::v1::RoleBinding>(doc).is_ok()
                }
                "Deployment" => serde_json::from_value::<Deployment>(doc).is_ok(),
                "HorizontalPodAutoscaler" => serde_json::from_value::<
                    k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
                >(doc)
                .is_ok(),
                "Service" => {
                    serde_json::from_value::<k8s_openapi::api::core::v1::Service>(doc).is_ok()
                }
                "PodDisruptionBudget" => {
                    serde_json::from_value::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(doc)
                        .is_ok()
                }
                "Issuer" | "Certificate" => doc["apiVersion"] == "cert-manager.io/v1",
                _ => false,
            };
            assert!(ok, "{file}: {kind} does not parse");
        }
    }
}
