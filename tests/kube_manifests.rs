//! The shipped manifests against a real kube-apiserver: the kustomize base is accepted as it
//! is, and revhook runs with a token of its own ServiceAccount under the shipped RBAC, with the
//! shipped flags (plus the self-managed overlay's `--manage-ca-bundle`): every call it makes
//! succeeds, it becomes ready, writes the caBundle, writes it back when a re-applied manifest
//! blanks it, and injects.

mod envtest;

use std::collections::BTreeSet;
use std::time::Duration;

use envtest::objects::{self, api_message, value};
use envtest::{eventually, ControlPlane, NetNs, Options, Revhook, RevhookOptions};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{PostParams, ResourceExt};
use kube::{Api, Client};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const NS: &str = "revhook-system";
const SA_USER: &str = "system:serviceaccount:revhook-system:revhook";
/// Istio's namespace as the base ships it (the Role that reads ConfigMaps and Services).
const ISTIO_NS: &str = "istio-system";

/// What `kubectl kustomize manifests/base` renders, for the transformers the base uses
/// (`namespace`, `labels` without selectors, `images`); kubectl is not needed.
fn render_base() -> Vec<Value> {
    let kustomization = objects::yaml_file("manifests/base/kustomization.yaml")
        .pop()
        .expect("kustomization");
    // Without a `namespace:` transformer every namespaced object names its own.
    let namespace = kustomization["namespace"].as_str();
    assert_eq!(
        kustomization["labels"][0]["includeSelectors"], false,
        "this renderer only adds metadata labels"
    );
    let labels = kustomization["labels"][0]["pairs"]
        .as_object()
        .expect("label pairs")
        .clone();
    let images = kustomization["images"].as_array().expect("images").clone();
    let cluster_scoped = [
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ];
    let mut docs = Vec::new();
    for file in kustomization["resources"].as_array().expect("resources") {
        let file = file.as_str().expect("resource path");
        for mut doc in objects::yaml_file(&format!("manifests/base/{file}")) {
            let kind = doc["kind"].as_str().expect("kind").to_owned();
            if !cluster_scoped.contains(&kind.as_str()) {
                if let Some(namespace) = namespace {
                    doc["metadata"]["namespace"] = json!(namespace);
                }
                assert!(
                    doc["metadata"]["namespace"].is_string(),
                    "{kind} {} names no namespace",
                    doc["metadata"]["name"]
                );
            }
            let meta_labels = doc["metadata"]
                .as_object_mut()
                .expect("metadata")
                .entry("labels")
                .or_insert_with(|| json!({}));
            for (k, v) in &labels {
                meta_labels[k] = v.clone();
            }
            if kind == "Deployment" {
                for c in doc["spec"]["template"]["spec"]["containers"]
                    .as_array_mut()
                    .expect("containers")
                {
                    for image in &images {
                        if c["image"] == image["name"] {
                            c["image"] = json!(format!(
                                "{}:{}",
                                image["newName"].as_str().expect("newName"),
                                image["newTag"].as_str().expect("newTag")
                            ));
                        }
                    }
                }
            }
            docs.push(doc);
        }
    }
    docs
}

/// The shipped Deployment's revhook args, minus those the harness sets (listener addresses
/// and the serving certificate paths, which point into a Secret volume in a pod).
fn shipped_args(docs: &[Value]) -> Vec<String> {
    let deploy = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("Deployment");
    let args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args");
    let harness = [
        "serve",
        "--listen=",
        "--admin-listen=",
        "--tls-cert=",
        "--tls-key=",
    ];
    args.iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .filter(|a| {
            !harness
                .iter()
                .any(|h| a == h || (h.ends_with('=') && a.starts_with(h)))
        })
        .collect()
}

/// Whether the API server authorizes revhook's ServiceAccount for one call (in `namespace`,
/// or cluster-wide when it is empty).
async fn allowed(
    client: &Client,
    namespace: &str,
    (verb, group, resource, name): (&str, &str, &str, &str),
) -> bool {
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let review: SubjectAccessReview = objects::typed(json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {
            "user": SA_USER,
            "groups": ["system:serviceaccounts", "system:serviceaccounts:revhook-system", "system:authenticated"],
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "name": name, "namespace": namespace}
        }
    }));
    let answer = reviews
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview");
    answer.status.expect("review status").allowed
}

/// One allowed call: (API group, resource, resource name or "", verb).
type Permission = (String, String, String, String);

/// The README's permission table (between `<!-- rbac:begin -->` and `<!-- rbac:end -->`),
/// one `(scope, permission)` per allowed call: scope `cluster`, `istio` (Istio's namespace) or
/// `everyone` (what the API server gives every authenticated user).
fn readme_permissions() -> BTreeSet<(String, Permission)> {
    let readme = std::fs::read_to_string(objects::repo_path("README.md")).expect("README");
    let table = readme
        .split("<!-- rbac:begin -->")
        .nth(1)
        .and_then(|t| t.split("<!-- rbac:end -->").next())
        .expect("the README's permission table");
    let list = |cell: &str| -> Vec<String> {
        cell.split(',')
            .map(|v| v.trim().trim_matches('`').replace("\"\"", ""))
            .collect()
    };
    let mut out = BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with('|')).skip(2) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let [scope, group, resources, names, verbs] = cells[..] else {
            panic!("a permission row has five cells: {row}");
        };
        let scope = match scope {
            s if s.starts_with("cluster") => "cluster",
            s if s.starts_with("Istio") => "istio",
            s if s.starts_with("every authenticated user") => "everyone",
            other => panic!("unknown scope {other:?}"),
        };
        let group = list(group).remove(0);
        for resource in list(resources) {
            for name in list(names) {
                for verb in list(verbs) {
                    out.insert((
                        scope.to_owned(),
                        (group.clone(), resource.clone(), name.clone(), verb),
                    ));
                }
            }
        }
    }
    assert!(!out.is_empty(), "an empty permission table");
    out
}

/// What the API server says the client may do in `namespace` (SelfSubjectRulesReview, as
/// `kubectl auth can-i --list` asks), one permission per call.
async fn rules_in(client: &Client, namespace: &str) -> BTreeSet<Permission> {
    use k8s_openapi::api::authorization::v1::SelfSubjectRulesReview;
    let reviews: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let review: SelfSubjectRulesReview = objects::typed(json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace}
    }));
    let status = reviews
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectRulesReview")
        .status
        .expect("status");
    assert!(!status.incomplete, "{:?}", status.evaluation_error);
    let mut out = BTreeSet::new();
    for rule in status.resource_rules {
        let names = rule.resource_names.unwrap_or_else(|| vec![String::new()]);
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for name in &names {
                    for verb in &rule.verbs {
                        out.insert((group.clone(), resource.clone(), name.clone(), verb.clone()));
                    }
                }
            }
        }
    }
    out
}

/// The caBundles of revhook's two webhook configurations, webhook by webhook.
async fn ca_bundles(client: &Client) -> Vec<(String, Vec<u8>)> {
    let m: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let v: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mut out = Vec::new();
    for hook in m
        .get("revhook")
        .await
        .expect("mwc")
        .webhooks
        .unwrap_or_default()
    {
        out.push((
            hook.name,
            hook.client_config
                .ca_bundle
                .map(|b| b.0)
                .unwrap_or_default(),
        ));
    }
    for hook in v
        .get("revhook")
        .await
        .expect("vwc")
        .webhooks
        .unwrap_or_default()
    {
        out.push((
            hook.name,
            hook.client_config
                .ca_bundle
                .map(|b| b.0)
                .unwrap_or_default(),
        ));
    }
    out
}

async fn wait_for_ca_bundles(client: &Client, ca_pem: &str, what: &str) {
    let client = client.clone();
    eventually(what, WAIT, || {
        let client = client.clone();
        async move {
            let bundles = ca_bundles(&client).await;
            let wrong: Vec<&str> = bundles
                .iter()
                .filter(|(_, b)| b.as_slice() != ca_pem.as_bytes())
                .map(|(n, _)| n.as_str())
                .collect();
            if bundles.len() == 7 && wrong.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} webhooks, caBundle not the CA on {wrong:?}",
                    bundles.len()
                ))
            }
        }
    })
    .await;
}

/// Re-applies revhook's webhook configurations as shipped (`caBundle: ''`), pointed at the
/// test's revhook by `clientConfig.url`: what `kubectl apply --server-side` of a manifest
/// does to a caBundle someone else wrote.
async fn apply_webhooks_with_blank_ca_bundle(client: &Client, revhook: &Revhook) {
    let base = format!("https://{}", revhook.addr);
    let docs = objects::shipped_webhooks(objects::url_client_config(&base, ""));
    objects::apply_all(client, &docs).await;
}

async fn create_injected_pod(client: &Client, name: &str) -> Value {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let pod: Pod = objects::typed(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"serviceAccountName": "web", "containers": [{"name": "web", "image": "web"}]}
    }));
    let stored = pods
        .create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("pod {name}: {}", api_message(&e)));
    value(stored)
}

fn proxy_of(pod: &Value) -> &Value {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "istio-proxy")
        .unwrap_or_else(|| panic!("no istio-proxy in {}", pod["metadata"]["name"]))
}

/// `revhook_ca_bundle_writes_total` from revhook's /metrics.
fn ca_bundle_writes(revhook: &Revhook) -> u64 {
    let (code, body) = revhook.admin_get("/metrics");
    assert_eq!(code, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("revhook_ca_bundle_writes_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no revhook_ca_bundle_writes_total in:\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_manifests_and_rbac_run_revhook_for_real() {
    let Some(cp) = ControlPlane::start(Options::default()).await else {
        return;
    };
    let admin = cp.client().await;

    // The base, as kustomize renders it, is accepted by the API server (revhook is installed
    // after Istio: Istio's namespace exists).
    objects::apply(
        &admin,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ISTIO_NS}}),
    )
    .await;
    let docs = render_base();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Service",
            "PodDisruptionBudget",
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration"
        ]
    );
    for doc in &docs {
        let stored = objects::apply(&admin, doc).await;
        assert_eq!(
            stored.name_any(),
            doc["metadata"]["name"].as_str().expect("name")
        );
        assert_eq!(
            stored
                .labels()
                .get("app.kubernetes.io/part-of")
                .map(String::as_str),
            Some("revhook"),
            "{} {}",
            doc["kind"],
            doc["metadata"]["name"]
        );
    }
    let mwc: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
    let stored = value(mwc.get("revhook").await.expect("stored mwc"));
    let hooks = stored["webhooks"].as_array().expect("webhooks");
    assert_eq!(hooks.len(), 4);
    for hook in hooks {
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["timeoutSeconds"], 10);
        assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
        assert_eq!(hook["clientConfig"]["service"]["name"], "revhook");
        assert_eq!(hook["clientConfig"]["service"]["namespace"], NS);
        assert_eq!(hook["clientConfig"]["service"]["port"], 443);
    }
    let deploy = value(
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(admin.clone(), NS)
            .get("revhook")
            .await
            .expect("stored deployment"),
    );
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/example/revhook:0.1.0"
    );

    // The shipped RBAC: exactly what revhook needs, nothing near it.
    let wh = "admissionregistration.k8s.io";
    for (namespace, call) in [
        ("", ("list", "", "namespaces", "")),
        ("", ("watch", "", "namespaces", "")),
        ("", ("get", "", "namespaces", "shop")),
        ("", ("list", wh, "mutatingwebhookconfigurations", "")),
        ("", ("watch", wh, "validatingwebhookconfigurations", "")),
        (
            "",
            ("patch", wh, "mutatingwebhookconfigurations", "revhook"),
        ),
        (
            "",
            ("patch", wh, "validatingwebhookconfigurations", "revhook"),
        ),
        (ISTIO_NS, ("list", "", "configmaps", "")),
        (ISTIO_NS, ("watch", "", "configmaps", "")),
        (ISTIO_NS, ("list", "", "services", "")),
        (ISTIO_NS, ("watch", "", "services", "")),
    ] {
        assert!(
            allowed(&admin, namespace, call).await,
            "{call:?} in {namespace:?}"
        );
    }
    for (namespace, call) in [
        (
            "",
            (
                "patch",
                wh,
                "mutatingwebhookconfigurations",
                "istio-revision-tag-prod-stable",
            ),
        ),
        (
            "",
            ("delete", wh, "mutatingwebhookconfigurations", "revhook"),
        ),
        ("", ("create", wh, "mutatingwebhookconfigurations", "")),
        ("", ("list", "", "configmaps", "")),
        ("", ("list", "", "services", "")),
        ("shop", ("list", "", "configmaps", "")),
        ("shop", ("get", "", "services", "web")),
        (ISTIO_NS, ("get", "", "secrets", "")),
        (
            ISTIO_NS,
            ("update", "", "configmaps", "istio-sidecar-injector"),
        ),
        ("", ("list", "", "pods", "")),
        ("", ("create", "", "pods", "")),
        ("", ("update", "", "namespaces", "shop")),
    ] {
        assert!(
            !allowed(&admin, namespace, call).await,
            "{call:?} in {namespace:?} is denied"
        );
    }

    // revhook with its own ServiceAccount's token and the shipped flags (+ self-managed).
    let istio = std::fs::read_to_string(objects::repo_path("tests/fixtures/kube/aks-istio.yaml"))
        .expect("fixture")
        .replace("aks-istio-system", "istio-system");
    objects::apply_all(&admin, &objects::yaml_docs(&istio)).await;
    let token = objects::service_account_token(&admin, NS, "revhook").await;
    let kubeconfig = cp.kubeconfig_with_token("revhook-sa", &token);
    // `kubectl auth can-i --list` as revhook: exactly the README's list, in Istio's namespace
    // and in an application namespace.
    let sa = envtest::client_from_kubeconfig(&kubeconfig).await;
    let readme = readme_permissions();
    for (namespace, scopes) in [
        (ISTIO_NS, &["cluster", "istio", "everyone"][..]),
        ("shop", &["cluster", "everyone"][..]),
    ] {
        let want: BTreeSet<Permission> = readme
            .iter()
            .filter(|(scope, _)| scopes.contains(&scope.as_str()))
            .map(|(_, p)| p.clone())
            .collect();
        assert_eq!(rules_in(&sa, namespace).await, want, "in {namespace}");
    }
    let ca_cert = Revhook::ca_path(cp.path(), "revhook");
    let mut args = shipped_args(&docs);
    assert!(args.contains(&"--source=cluster".to_owned()), "{args:?}");
    args.push("--manage-ca-bundle".into());
    args.push(format!("--ca-cert={}", ca_cert.display()));
    let mut revhook = Revhook::start(
        "revhook",
        cp.path(),
        RevhookOptions {
            kubeconfig: Some(&kubeconfig),
            args,
            wait_ready: true,
            ..RevhookOptions::default()
        },
    );

    // Pointed at this revhook, with the manifest's blank caBundle: revhook writes the CA.
    apply_webhooks_with_blank_ca_bundle(&admin, &revhook).await;
    wait_for_ca_bundles(&admin, &revhook.tls.ca_pem, "revhook to write its caBundle").await;
    revhook.wait_for_api_server_calls(&admin).await;

    objects::apply_all(
        &admin,
        &objects::yaml_file("tests/fixtures/kube/shop.yaml")
            .into_iter()
            .filter(|d| d["kind"] != "Deployment")
            .collect::<Vec<_>>(),
    )
    .await;
    let pod = create_injected_pod(&admin, "first").await;
    assert_eq!(
        proxy_of(&pod)["image"],
        "mcr.microsoft.com/oss/istio/proxyv2:1.22.3-distroless"
    );

    // Someone re-applies the manifests: the caBundle is blank again (the API server could
    // not verify revhook, and pods in injected namespaces would be refused); revhook writes
    // it back, once per webhook.
    let writes_before = ca_bundle_writes(&revhook);
    apply_webhooks_with_blank_ca_bundle(&admin, &revhook).await;
    wait_for_ca_bundles(
        &admin,
        &revhook.tls.ca_pem,
        "revhook to repair its caBundle",
    )
    .await;
    // The counter moves just after the writes the API server already shows.
    let written = eventually("the repair counted", WAIT, || {
        let n = ca_bundle_writes(&revhook) - writes_before;
        async move { (n >= 7).then_some(n).ok_or(format!("{n} writes counted")) }
    })
    .await;
    assert_eq!(written, 7, "seven webhooks rewritten, once each");
    revhook.wait_for_api_server_calls(&admin).await;
    let pod = create_injected_pod(&admin, "after-repair").await;
    assert_eq!(
        proxy_of(&pod)["image"],
        "mcr.microsoft.com/oss/istio/proxyv2:1.22.3-distroless"
    );

    // Every call revhook made under that RBAC succeeded.
    revhook.proc.assert_running();
    let log = revhook.proc.log_text();
    for bad in [
        "forbidden",
        "Forbidden",
        "watch failed",
        "reconcile failed",
        "lookup failed",
    ] {
        assert!(!log.contains(bad), "revhook logged {bad:?}:\n{log}");
    }
    assert!(log.contains("caBundle written"), "{log}");
}

/// The Endpoints of revhook's Service: revhook's address inside the network namespace (the
/// Service has no selector, so nothing else writes them; a real cluster's endpoints
/// controller writes the ready pods' addresses).
fn endpoints(ns: &NetNs) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "revhook", "namespace": NS},
        "subsets": [{
            "addresses": [{"ip": ns.inner_ip.to_string()}],
            "ports": [
                {"name": "https-webhook", "port": 15017, "protocol": "TCP"},
                {"name": "http-admin", "port": 15014, "protocol": "TCP"}
            ]
        }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_webhooks_reach_revhook_through_its_endpoints() {
    let Some(cp) = ControlPlane::start(Options::default()).await else {
        return;
    };
    let Some(netns) = NetNs::create() else {
        return;
    };
    let admin = cp.client().await;
    // The shipped Namespace and Service, the Service without its selector (see `endpoints`).
    for mut doc in render_base()
        .into_iter()
        .filter(|d| d["kind"] == "Namespace" || d["kind"] == "Service")
    {
        if let Some(spec) = doc["spec"].as_object_mut() {
            spec.remove("selector");
        }
        objects::apply(&admin, &doc).await;
    }
    objects::apply(&admin, &endpoints(&netns)).await;

    // revhook inside the namespace, from a config file (it needs no API server for this).
    let mut revhook = Revhook::start(
        "revhook-netns",
        cp.path(),
        RevhookOptions {
            args: vec![
                "--source=file".into(),
                format!(
                    "--config={}",
                    objects::repo_path("tests/fixtures/local-config.yaml").display()
                ),
            ],
            wait_ready: true,
            netns: Some(&netns),
            ..RevhookOptions::default()
        },
    );
    assert_eq!(revhook.addr.ip(), netns.inner_ip);
    // The shipped webhook configurations, service references untouched, with the CA.
    let webhooks =
        objects::shipped_webhooks(objects::service_client_config(&revhook.tls.ca_bundle()));
    objects::apply_all(&admin, &webhooks).await;
    revhook.wait_for_api_server_calls(&admin).await;
    objects::apply_all(
        &admin,
        &objects::yaml_file("tests/fixtures/kube/shop.yaml")
            .into_iter()
            .filter(|d| d["kind"] != "Deployment")
            .collect::<Vec<_>>(),
    )
    .await;

    // The API server resolved revhook.revhook-system.svc:443 to the Endpoints' address and
    // port 15017, verified the certificate for that name, and got the injection.
    let pod = create_injected_pod(&admin, "through-service").await;
    assert_eq!(
        proxy_of(&pod)["image"],
        "mcr.microsoft.com/oss/istio/proxyv2:1.22.0-distroless",
        "the revision the config file gives prod-stable"
    );
    let status = pod["metadata"]["annotations"]["sidecar.istio.io/status"]
        .as_str()
        .expect("status annotation");
    assert!(status.contains(r#""revision":"asm-1-22""#), "{status}");

    // /validate goes the same way.
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    let refused = ns
        .patch(
            "shop",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"istio.io/rev": "asm-1-20"}}})),
        )
        .await
        .expect_err("a removed revision is refused");
    let message = api_message(&refused);
    assert!(
        message.starts_with(
            r#"admission webhook "namespaces.validate.revhook.dev" denied the request: namespace "shop" selects revision "asm-1-20", which is not installed"#
        ),
        "{message}"
    );
    let log = revhook.proc.log_text();
    assert!(log.contains("decision=inject:asm-1-22"), "{log}");
}
