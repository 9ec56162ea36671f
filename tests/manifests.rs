//! The deployment manifests parse as the Kubernetes types they claim to be, and agree with the
//! binary: every flag they pass exists, webhook paths and policies are the ones documented.
//! The Helm chart lints, renders valid objects with flags the binary has, and installs what
//! each kustomize overlay installs, up to the differences listed in `render`.

mod common;
mod render;

use std::path::Path;
use std::process::Command;

use serde_json::json;

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

fn serve_help() -> String {
    let help = Command::new(env!("CARGO_BIN_EXE_revhook"))
        .args(["serve", "--help"])
        .output()
        .expect("revhook serve --help");
    String::from_utf8_lossy(&help.stdout).into_owned()
}

/// `serve` and then only flags that `revhook serve --help` lists.
fn assert_flags_exist(args: &[String], help: &str, what: &str) {
    assert_eq!(args.first().map(String::as_str), Some("serve"), "{what}");
    for arg in &args[1..] {
        let flag = arg.split('=').next().unwrap_or_default();
        assert!(
            flag.starts_with("--")
                && (help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n"))),
            "unknown flag {flag} in {what}"
        );
    }
}

#[test]
fn every_flag_the_deployment_passes_exists() {
    let help = serve_help();
    assert_flags_exist(&args(), &help, "manifests/base");
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

/// Guard mode judges a pod after Istio's injector (#15 item 4): the API server calls mutating
/// webhook configurations in name order (seen in tests/kube_upgrade.rs), so revhook's name
/// sorts after Istio's; and its webhooks are called again (IfNeeded) should a later one change
/// the pod. The kustomize overlay and the chart agree (inject mode keeps Never).
#[test]
fn guard_mode_is_called_after_istios_injector_and_again_if_needed() {
    let Some(kustomize) = render::kustomize_tool() else {
        return;
    };
    let Some(helm) = render::helm() else { return };
    let overlay = render::kustomize(&kustomize, &render::repo_path("manifests/overlays/guard"));
    let chart = render::helm_template(&helm, &["--set", "mode=guard"]);
    let chart_inject = render::helm_template(&helm, &[]);
    let mutating = |docs: &[Value]| {
        docs.iter()
            .find(|d| d["kind"] == "MutatingWebhookConfiguration")
            .expect("MutatingWebhookConfiguration")
            .clone()
    };
    let policies = |mwc: &Value| -> Vec<Value> {
        mwc["webhooks"]
            .as_array()
            .expect("webhooks")
            .iter()
            .map(|w| w["reinvocationPolicy"].clone())
            .collect()
    };
    for (what, docs) in [("overlay", &overlay), ("chart", &chart)] {
        let mwc = mutating(docs);
        assert_eq!(policies(&mwc), vec![json!("IfNeeded"); 4], "{what}");
        let name = mwc["metadata"]["name"].as_str().expect("name");
        for istio in [
            "istio-sidecar-injector",
            "istio-sidecar-injector-asm-1-23",
            "istio-revision-tag-prod-stable-aks-istio-system",
        ] {
            assert!(name > istio, "{what}: {name} must sort after {istio}");
        }
    }
    assert_eq!(policies(&mutating(&chart_inject)), vec![json!("Never"); 4]);
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
        assert_eq!(w.reinvocation_policy.as_deref(), Some("Never"));
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

// ---------------------------------------------------------------------------------------------
// The Helm chart (manifests/helm/revhook).

/// Value sets beyond the comparison cases' values.yaml files: every template branch renders.
fn chart_variants() -> Vec<(String, Vec<String>)> {
    let config = render::repo_path("tests/fixtures/local-config.yaml");
    let set = |pairs: &[&str]| -> Vec<String> {
        pairs
            .iter()
            .flat_map(|p| ["--set".to_owned(), (*p).to_owned()])
            .collect()
    };
    let mut variants = vec![("defaults".to_owned(), Vec::new())];
    for case in render::cases() {
        let name = case
            .file_name()
            .expect("case")
            .to_string_lossy()
            .into_owned();
        let values = case.join("values.yaml").to_string_lossy().into_owned();
        variants.push((name, vec!["-f".to_owned(), values]));
    }
    let mut file_source = set(&[
        "revisions.source=file",
        "certificates.selfManaged.manageCaBundle=false",
        "certificates.selfManaged.generate=true",
    ]);
    file_source.extend([
        "--set-file".to_owned(),
        format!("revisions.config={}", config.display()),
    ]);
    variants.push((
        "file source, generated certificates".to_owned(),
        file_source,
    ));
    variants.push((
        "cert-manager with an issuer of the user's".to_owned(),
        set(&[
            "certificates.provider=cert-manager",
            "certificates.certManager.issuerRef.name=cluster-ca",
            "certificates.certManager.issuerRef.kind=ClusterIssuer",
        ]),
    ));
    variants.push((
        "another name, policy flags, everything on".to_owned(),
        set(&[
            "fullnameOverride=webhook",
            "policy.onStale=allow-uninjected",
            "policy.onConflict=deny",
            "policy.podRevisionWins=true",
            "extraArgs={--max-in-flight=512}",
            "namespace.create=true",
            "monitoring.enabled=true",
            "nodeSelector.kubernetes\\.io/os=linux",
            "tolerations[0].key=dedicated,tolerations[0].operator=Exists",
            "imagePullSecrets[0].name=registry",
        ]),
    ));
    variants
}

fn template(helm: &Path, args: &[String]) -> Vec<Value> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    render::helm_template(helm, &args)
}

#[test]
fn helm_chart_lints_strict_with_every_value_set() {
    let Some(helm) = render::helm() else { return };
    for (name, args) in chart_variants() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = render::helm_lint(&helm, &args);
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed") && !out.contains("[WARNING]"),
            "{name}:\n{out}"
        );
    }
}

#[test]
fn helm_chart_refuses_settings_that_cannot_work() {
    let Some(helm) = render::helm() else { return };
    for (set, says) in [
        ("mode=sidecar", "value must be one of 'inject', 'guard'"),
        (
            "revisions.source=file",
            "manageCaBundle needs revisions.source=cluster",
        ),
        ("certificates.provider=vault", "value must be one of"),
        ("drainTimeout=25", "got number, want string"),
        (
            "mode=guard,fullnameOverride=guard-webhook",
            "sorts before Istio's (istio-*, istiod-*)",
        ),
    ] {
        let out = Command::new(&helm)
            .args(["template", "revhook"])
            .arg(render::repo_path(render::CHART))
            .args(["--set", set])
            .output()
            .expect("helm");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} rendered");
        assert!(stderr.contains(says), "{set}: {stderr}");
    }
}

/// An object parses as its Kubernetes type and serializes back to the same JSON: no field is
/// unknown to the type, misspelled or misplaced.
fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(
    doc: &Value,
) -> Result<(), String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(typed).map_err(|e| e.to_string())?;
    if &back == doc {
        Ok(())
    } else {
        Err(format!(
            "not the same after a round trip:\n{}",
            render::differences(doc, &back)
        ))
    }
}

fn check_kubernetes_type(doc: &Value) -> Result<(), String> {
    use k8s_openapi::api::{autoscaling, core, policy, rbac};
    match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
        (Some("v1"), Some("Namespace")) => round_trips::<core::v1::Namespace>(doc),
        (Some("v1"), Some("ServiceAccount")) => round_trips::<core::v1::ServiceAccount>(doc),
        (Some("v1"), Some("Service")) => round_trips::<core::v1::Service>(doc),
        (Some("v1"), Some("Secret")) => round_trips::<core::v1::Secret>(doc),
        (Some("v1"), Some("ConfigMap")) => round_trips::<core::v1::ConfigMap>(doc),
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
            round_trips::<rbac::v1::ClusterRole>(doc)
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
            round_trips::<rbac::v1::ClusterRoleBinding>(doc)
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("Role")) => round_trips::<rbac::v1::Role>(doc),
        (Some("rbac.authorization.k8s.io/v1"), Some("RoleBinding")) => {
            round_trips::<rbac::v1::RoleBinding>(doc)
        }
        (Some("apps/v1"), Some("Deployment")) => round_trips::<Deployment>(doc),
        (Some("autoscaling/v2"), Some("HorizontalPodAutoscaler")) => {
            round_trips::<autoscaling::v2::HorizontalPodAutoscaler>(doc)
        }
        (Some("policy/v1"), Some("PodDisruptionBudget")) => {
            round_trips::<policy::v1::PodDisruptionBudget>(doc)
        }
        (Some("admissionregistration.k8s.io/v1"), Some("MutatingWebhookConfiguration")) => {
            round_trips::<MutatingWebhookConfiguration>(doc)
        }
        (Some("admissionregistration.k8s.io/v1"), Some("ValidatingWebhookConfiguration")) => {
            round_trips::<ValidatingWebhookConfiguration>(doc)
        }
        // No k8s-openapi types: the fields the kustomize manifests set (compared with them in
        // helm_chart_installs_what_each_kustomize_case_installs).
        (Some("cert-manager.io/v1"), Some("Issuer")) => {
            let spec = doc["spec"].as_object().ok_or("no spec")?;
            (spec.contains_key("selfSigned") || spec.contains_key("ca"))
                .then_some(())
                .ok_or_else(|| "neither selfSigned nor ca".into())
        }
        (Some("cert-manager.io/v1"), Some("Certificate")) => {
            let spec = &doc["spec"];
            (spec["secretName"].is_string() && spec["issuerRef"]["name"].is_string())
                .then_some(())
                .ok_or_else(|| "secretName and issuerRef.name".into())
        }
        (Some("monitoring.coreos.com/v1"), Some("ServiceMonitor")) => doc["spec"]["endpoints"]
            .is_array()
            .then_some(())
            .ok_or_else(|| "no endpoints".into()),
        (Some("monitoring.coreos.com/v1"), Some("PrometheusRule")) => doc["spec"]["groups"]
            .is_array()
            .then_some(())
            .ok_or_else(|| "no groups".into()),
        (api, kind) => Err(format!("unexpected {api:?} {kind:?}")),
    }
}

#[test]
fn helm_template_objects_are_kubernetes_types_with_the_binarys_flags() {
    let Some(helm) = render::helm() else { return };
    let help = serve_help();
    for (name, args) in chart_variants() {
        let docs = template(&helm, &args);
        assert!(docs.len() >= 9, "{name}: {} objects", docs.len());
        for doc in &docs {
            if let Err(e) = check_kubernetes_type(doc) {
                panic!("{name}: {}: {e}", render::id(doc));
            }
        }
        let args = render::container_args(&docs);
        assert_flags_exist(&args, &help, &name);
        // Paths in the args are inside the volumes the pod mounts.
        let container = &render::deployment(&docs)["spec"]["template"]["spec"]["containers"][0];
        let mounts: Vec<&str> = container["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .map(|m| m["mountPath"].as_str().expect("mountPath"))
            .collect();
        for arg in &args {
            if let Some((_, path)) = arg.split_once("=/") {
                assert!(
                    mounts.iter().any(|m| format!("/{path}").starts_with(m)),
                    "{name}: {arg} is outside {mounts:?}"
                );
            }
        }
    }
}

#[test]
fn helm_chart_values_become_the_flags_they_name() {
    let Some(helm) = render::helm() else { return };
    let variants = chart_variants();
    let args_of = |name: &str| {
        let (_, args) = variants
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("variant {name}"));
        render::container_args(&template(&helm, args))
    };
    let has = |args: &[String], want: &str| args.iter().any(|a| a == want);
    let guard = args_of("guard");
    assert!(has(&guard, "--mode=guard") && has(&guard, "--istio-namespace=aks-istio-system"));
    assert!(has(&guard, "--manage-ca-bundle"), "{guard:?}");
    let cert_manager = args_of("cert-manager");
    assert!(
        !has(&cert_manager, "--manage-ca-bundle"),
        "{cert_manager:?}"
    );
    let file = args_of("file source, generated certificates");
    assert!(has(&file, "--source=file") && has(&file, "--config=/etc/revhook/config/config.yaml"));
    assert!(
        !file.iter().any(|a| a.starts_with("--istio-namespace")),
        "{file:?}"
    );
    let renamed = args_of("another name, policy flags, everything on");
    for want in [
        "--on-stale=allow-uninjected",
        "--on-conflict=deny",
        "--pod-revision-wins",
        "--max-in-flight=512",
        "--mutating-webhook-name=webhook",
        "--validating-webhook-name=webhook",
    ] {
        assert!(has(&renamed, want), "{want} not in {renamed:?}");
    }
    // A release named revhook passes no names: the binary's defaults are the objects' names.
    assert!(!args_of("defaults")
        .iter()
        .any(|a| a.contains("webhook-name")));
}

/// The chart as the kustomize overlays: `revhook tags set` reads the mode from the mutating
/// webhook configuration's label, and Istio's ConfigMaps and Services are readable only in
/// Istio's namespaces, and only with the cluster source (which reads them).
#[test]
fn helm_chart_labels_its_mode_and_reads_istio_only_in_istios_namespaces() {
    let Some(helm) = render::helm() else { return };
    let variants = chart_variants();
    let docs_of = |name: &str| {
        let (_, args) = variants
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("variant {name}"));
        template(&helm, args)
    };
    let roles = |docs: &[Value]| -> Vec<(String, String)> {
        docs.iter()
            .filter(|d| d["kind"] == "Role" || d["kind"] == "RoleBinding")
            .map(|d| {
                (
                    d["kind"].as_str().expect("kind").to_owned(),
                    d["metadata"]["namespace"]
                        .as_str()
                        .expect("namespace")
                        .to_owned(),
                )
            })
            .collect()
    };
    let mode = |docs: &[Value]| {
        docs.iter()
            .find(|d| d["kind"] == "MutatingWebhookConfiguration")
            .expect("MutatingWebhookConfiguration")["metadata"]["labels"]["revhook.dev/mode"]
            .clone()
    };
    for (variant, want_mode, istio_ns) in [
        ("defaults", "inject", "istio-system"),
        ("guard", "guard", "aks-istio-system"),
    ] {
        let docs = docs_of(variant);
        assert_eq!(mode(&docs), want_mode, "{variant}");
        assert_eq!(
            roles(&docs),
            [
                ("Role".to_owned(), istio_ns.to_owned()),
                ("RoleBinding".to_owned(), istio_ns.to_owned())
            ],
            "{variant}"
        );
        let cluster_role = docs
            .iter()
            .find(|d| d["kind"] == "ClusterRole")
            .expect("ClusterRole");
        let cluster_wide: Vec<&Value> = cluster_role["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter(|r| r["apiGroups"] == json!([""]))
            .collect();
        assert_eq!(cluster_wide.len(), 1, "{variant}: {cluster_wide:?}");
        assert_eq!(
            cluster_wide[0]["resources"],
            json!(["namespaces"]),
            "{variant}"
        );
        let role = docs.iter().find(|d| d["kind"] == "Role").expect("Role");
        assert_eq!(
            role["rules"][0]["resources"],
            json!(["configmaps", "services"])
        );
        assert_eq!(role["rules"][0]["verbs"], json!(["get", "list", "watch"]));
    }
    let file = docs_of("file source, generated certificates");
    assert!(roles(&file).is_empty(), "{:?}", roles(&file));
}

#[test]
fn helm_generated_certificates_are_what_the_webhooks_trust() {
    let Some(helm) = render::helm() else { return };
    let variants = chart_variants();
    let (_, args) = variants
        .iter()
        .find(|(n, _)| n == "file source, generated certificates")
        .expect("variant");
    let docs = template(&helm, args);
    let secret = docs.iter().find(|d| d["kind"] == "Secret").expect("Secret");
    let ca = secret["data"]["ca.crt"].as_str().expect("ca.crt");
    let mut hooks = 0;
    for config in docs.iter().filter(|d| {
        d["kind"]
            .as_str()
            .is_some_and(|k| k.ends_with("WebhookConfiguration"))
    }) {
        for hook in config["webhooks"].as_array().expect("webhooks") {
            assert_eq!(hook["clientConfig"]["caBundle"], ca, "{}", hook["name"]);
            hooks += 1;
        }
    }
    assert_eq!(hooks, 7);
    // The serving certificate names the Service the webhooks call.
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["tls.crt"].as_str().expect("tls.crt"))
        .expect("base64");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("PEM");
    let cert = pem.parse_x509().expect("certificate");
    let names: Vec<String> = cert
        .subject_alternative_name()
        .expect("SAN")
        .expect("SAN present")
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    for want in [
        "revhook.revhook-system.svc",
        "revhook.revhook-system.svc.cluster.local",
    ] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "{want} not in {names:?}"
        );
    }
}

#[test]
fn helm_chart_installs_what_each_kustomize_case_installs() {
    let Some(helm) = render::helm() else { return };
    let Some(kustomize) = render::kustomize_tool() else {
        return;
    };
    let cases = render::cases();
    let names: Vec<String> = cases
        .iter()
        .map(|c| c.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    for overlay in [
        "base",
        "self-managed",
        "guard",
        "cert-manager",
        "monitoring",
    ] {
        assert!(
            names.iter().any(|n| n == overlay),
            "no case {overlay}: {names:?}"
        );
    }
    for case in cases {
        let values = case.join("values.yaml");
        let chart = render::by_id(
            render::helm_template(&helm, &["-f", values.to_str().expect("path")])
                .into_iter()
                .map(render::undo_chart_only)
                .collect(),
        );
        let kustomized = render::by_id(
            render::kustomize(&kustomize, &case)
                .into_iter()
                .map(render::undo_kustomize_only)
                .collect(),
        );
        assert_eq!(
            chart.keys().collect::<Vec<_>>(),
            kustomized.keys().collect::<Vec<_>>(),
            "{}: the chart installs other objects",
            case.display()
        );
        for (id, want) in &kustomized {
            assert!(
                want == &chart[id],
                "{}: {id}: the chart's object differs (a JSON patch from kustomize's to the chart's):\n{}",
                case.display(),
                render::differences(want, &chart[id])
            );
        }
    }
}
