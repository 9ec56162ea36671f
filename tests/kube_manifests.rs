//! The shipped manifests against a real kube-apiserver: the kustomize base is accepted as it
//! is, and revhook runs with a token of its own ServiceAccount under the shipped RBAC, with the
//! shipped flags (plus the self-managed overlay's `--manage-ca-bundle`): every call it makes
//! succeeds, it becomes ready, writes the caBundle, writes it back when a re-applied manifest
//! blanks it, and injects. The Helm chart the same way (its `helm template` output applied
//! server-side, revhook with the chart's args, RBAC and token), and through a real
//! `helm install` and `helm upgrade`.

mod envtest;
mod render;

use std::collections::BTreeSet;
use std::time::Duration;

use envtest::objects::{self, api_message, value};
use envtest::web;
use envtest::{eventually, ControlPlane, NetNs, Options, Revhook, RevhookOptions, Tls};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
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

/// What `kustomize build manifests/base` renders; `None` (skip) without kustomize, except
/// under `CI=true`, where that fails.
fn render_base() -> Option<Vec<Value>> {
    let tool = render::kustomize_tool()?;
    Some(render::kustomize(
        &tool,
        &objects::repo_path("manifests/base"),
    ))
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

/// The shipped RBAC: exactly what revhook needs, nothing near it.
async fn assert_least_privilege(admin: &Client) {
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
            allowed(admin, namespace, call).await,
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
            !allowed(admin, namespace, call).await,
            "{call:?} in {namespace:?} is denied"
        );
    }
}

/// `kubectl auth can-i --list` as revhook (`sa`): exactly the README's list, in Istio's
/// namespace and in an application namespace.
async fn assert_rules_are_the_readmes(sa: &Client) {
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
        assert_eq!(rules_in(sa, namespace).await, want, "in {namespace}");
    }
}

async fn wait_for_ca_bundles(client: &Client, ca_pem: &str, what: &str) {
    let client = client.clone();
    eventually(what, WAIT, || {
        let client = client.clone();
        async move {
            let bundles = objects::revhook_ca_bundles(&client).await;
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
    // after Istio: Istio's namespace exists for its Role).
    let Some(docs) = render_base() else { return };
    objects::apply(
        &admin,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ISTIO_NS}}),
    )
    .await;
    // (kustomize versions order them differently: compared as a set, applied Namespace first)
    let mut kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"Namespace"));
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "HorizontalPodAutoscaler",
            "MutatingWebhookConfiguration",
            "Namespace",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
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
        assert_eq!(hook["reinvocationPolicy"], "Never");
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

    assert_least_privilege(&admin).await;

    // revhook with its own ServiceAccount's token and the shipped flags (+ self-managed).
    objects::apply_all(&admin, &objects::istio_fixture_in("istio-system")).await;
    let token = objects::service_account_token(&admin, NS, "revhook").await;
    let kubeconfig = cp.kubeconfig_with_token("revhook-sa", &token);
    assert_rules_are_the_readmes(&envtest::client_from_kubeconfig(&kubeconfig).await).await;
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

    objects::apply_all(&admin, &web::shop_without_deployment()).await;
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
    let Some(base) = render_base() else { return };
    // The shipped Namespace and Service, the Service without its selector (see `endpoints`).
    for mut doc in base
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
    objects::apply_all(&admin, &web::shop_without_deployment()).await;

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

// ---------------------------------------------------------------------------------------------
// The Helm chart against the same API server: `helm template` output applied server-side (what
// `helm install` sends), and revhook run with the chart's args, RBAC and certificates.

/// The chart rendered for release `revhook` in revhook-system, or `None` without Helm.
fn render_chart(args: &[&str]) -> Option<Vec<Value>> {
    let helm = render::helm()?;
    Some(render::helm_template(&helm, args))
}

/// Applies every rendered object and checks the API server stored it with the chart's labels.
async fn apply_chart(admin: &Client, docs: &[Value]) {
    for doc in docs {
        let stored = objects::apply(admin, doc).await;
        assert_eq!(
            stored.name_any(),
            doc["metadata"]["name"].as_str().expect("name")
        );
        let labels = stored.labels();
        for (key, want) in [
            ("app.kubernetes.io/part-of", "revhook"),
            ("app.kubernetes.io/managed-by", "Helm"),
        ] {
            assert_eq!(
                labels.get(key).map(String::as_str),
                Some(want),
                "{}",
                render::id(doc)
            );
        }
    }
}

/// The pod's files on this machine: each volume the revhook container mounts, as a directory
/// (the Secret's is where the harness writes the serving certificates; a ConfigMap's is
/// written from the rendered ConfigMap), and the container's args with the mount paths
/// replaced by those directories, minus the flags the harness sets.
fn localize(docs: &[Value], dir: &std::path::Path, name: &str) -> Vec<String> {
    let spec = &render::deployment(docs)["spec"]["template"]["spec"];
    let volumes = spec["volumes"].as_array().expect("volumes");
    let mut mounts = Vec::new();
    for mount in spec["containers"][0]["volumeMounts"]
        .as_array()
        .expect("mounts")
    {
        let volume = volumes
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("the mount's volume");
        let local = if volume["secret"].is_object() {
            Revhook::ca_path(dir, name)
                .parent()
                .expect("certs dir")
                .to_owned()
        } else {
            let cm_name = &volume["configMap"]["name"];
            let cm = docs
                .iter()
                .find(|d| d["kind"] == "ConfigMap" && &d["metadata"]["name"] == cm_name)
                .expect("the chart renders the mounted ConfigMap");
            let local = dir.join(format!("{name}-{}", mount["name"].as_str().expect("name")));
            std::fs::create_dir_all(&local).expect("mkdir");
            for (key, text) in cm["data"].as_object().expect("data") {
                std::fs::write(local.join(key), text.as_str().expect("text")).expect("write");
            }
            local
        };
        let path = mount["mountPath"].as_str().expect("mountPath").to_owned();
        mounts.push((path, local));
    }
    shipped_args(docs)
        .into_iter()
        .map(|arg| {
            mounts.iter().fold(arg, |arg, (path, local)| {
                arg.replace(&format!("={path}/"), &format!("={}/", local.display()))
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_chart_runs_revhook_under_its_rbac_for_real() {
    let values = render::repo_path("tests/fixtures/helm/self-managed/values.yaml");
    let Some(docs) = render_chart(&["-f", values.to_str().expect("path")]) else {
        return;
    };
    let Some(cp) = ControlPlane::start(Options::default()).await else {
        return;
    };
    let admin = cp.client().await;

    // What `helm install` sends, accepted as it is.
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Service",
        "PodDisruptionBudget",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "Role",
        "RoleBinding",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    // Installed after Istio: its namespace is there for the Role that reads its objects.
    objects::apply(
        &admin,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ISTIO_NS}}),
    )
    .await;
    apply_chart(&admin, &docs).await;
    let mwc: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
    let stored = value(mwc.get("revhook").await.expect("stored mwc"));
    for hook in stored["webhooks"].as_array().expect("webhooks") {
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["clientConfig"]["service"]["name"], "revhook");
        assert_eq!(hook["clientConfig"]["service"]["namespace"], NS);
        assert!(hook["clientConfig"]["caBundle"].is_null(), "{hook}");
    }
    assert_least_privilege(&admin).await;

    // revhook with the chart's ServiceAccount's token and the chart's args.
    objects::apply_all(&admin, &objects::istio_fixture_in("istio-system")).await;
    let token = objects::service_account_token(&admin, NS, "revhook").await;
    let kubeconfig = cp.kubeconfig_with_token("revhook-helm-sa", &token);
    assert_rules_are_the_readmes(&envtest::client_from_kubeconfig(&kubeconfig).await).await;
    let args = localize(&docs, cp.path(), "revhook-helm");
    assert!(args.contains(&"--manage-ca-bundle".to_owned()), "{args:?}");
    let mut revhook = Revhook::start(
        "revhook-helm",
        cp.path(),
        RevhookOptions {
            kubeconfig: Some(&kubeconfig),
            args,
            wait_ready: true,
            ..RevhookOptions::default()
        },
    );

    // The chart's webhook configurations pointed at this revhook by URL (the API server cannot
    // reach a Service here), without a caBundle as the chart renders them: revhook writes it.
    let base = format!("https://{}", revhook.addr);
    let pointed: Vec<Value> = docs
        .iter()
        .filter(|d| {
            d["kind"]
                .as_str()
                .is_some_and(|k| k.ends_with("WebhookConfiguration"))
        })
        .cloned()
        .map(|mut doc| {
            for hook in doc["webhooks"].as_array_mut().expect("webhooks") {
                let path = hook["clientConfig"]["service"]["path"].clone();
                hook["clientConfig"] =
                    json!({"url": format!("{base}{}", path.as_str().expect("path"))});
            }
            doc
        })
        .collect();
    assert_eq!(pointed.len(), 2);
    objects::apply_all(&admin, &pointed).await;
    wait_for_ca_bundles(&admin, &revhook.tls.ca_pem, "revhook to write its caBundle").await;
    revhook.wait_for_api_server_calls(&admin).await;

    objects::apply_all(&admin, &web::shop_without_deployment()).await;
    let pod = create_injected_pod(&admin, "from-helm").await;
    assert_eq!(
        proxy_of(&pod)["image"],
        "mcr.microsoft.com/oss/istio/proxyv2:1.22.3-distroless"
    );

    // `helm upgrade` re-applies the webhook configurations: the chart leaves caBundle out, so
    // what revhook wrote stays (the kustomize manifests' `caBundle: ''` blanks it until
    // revhook writes it back).
    let writes_before = ca_bundle_writes(&revhook);
    objects::apply_all(&admin, &pointed).await;
    let bundles = objects::revhook_ca_bundles(&admin).await;
    assert_eq!(bundles.len(), 7);
    for (name, bundle) in &bundles {
        assert_eq!(
            bundle.as_slice(),
            revhook.tls.ca_pem.as_bytes(),
            "{name} after an upgrade"
        );
    }
    let pod = create_injected_pod(&admin, "after-upgrade").await;
    assert_eq!(
        proxy_of(&pod)["image"],
        "mcr.microsoft.com/oss/istio/proxyv2:1.22.3-distroless"
    );
    assert_eq!(
        ca_bundle_writes(&revhook),
        writes_before,
        "nothing to repair"
    );

    revhook.proc.assert_running();
    let log = revhook.proc.log_text();
    for bad in ["forbidden", "Forbidden", "watch failed", "reconcile failed"] {
        assert!(!log.contains(bad), "revhook logged {bad:?}:\n{log}");
    }
}

/// The Helm CLI against the test's API server (admin kubeconfig), with Helm's own files kept in
/// the test's directory; its stdout.
fn helm_on(helm: &std::path::Path, cp: &ControlPlane, args: &[&str]) -> String {
    let home = cp.path().join("helm-home");
    let out = std::process::Command::new(helm)
        .args(args)
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("helm");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helm {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The serving Secret as the API server stores it, as the files revhook reads.
async fn stored_tls(admin: &Client, name: &str) -> envtest::Tls {
    use k8s_openapi::api::core::v1::Secret;
    let secret = Api::<Secret>::namespaced(admin.clone(), NS)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("Secret {name}: {e}"));
    let data = secret.data.expect("Secret data");
    let pem = |key: &str| {
        String::from_utf8(
            data.get(key)
                .unwrap_or_else(|| panic!("no {key}"))
                .0
                .clone(),
        )
        .expect("PEM text")
    };
    envtest::Tls {
        ca_pem: pem("ca.crt"),
        cert_pem: pem("tls.crt"),
        key_pem: pem("tls.key"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_with_a_config_file_and_generated_certificates_serves_through_its_service() {
    let Some(helm) = render::helm() else {
        return;
    };
    let Some(cp) = ControlPlane::start(Options::default()).await else {
        return;
    };
    let Some(netns) = NetNs::create() else {
        return;
    };
    let admin = cp.client().await;
    let chart = objects::repo_path(render::CHART);
    let config = format!(
        "revisions.config={}",
        objects::repo_path("tests/fixtures/local-config.yaml").display()
    );
    let release = |verb: &str| -> Vec<String> {
        [
            verb,
            "revhook",
            chart.to_str().expect("path"),
            "--namespace",
            NS,
            "--create-namespace",
            "--set",
            "revisions.source=file",
            "--set-file",
            &config,
            "--set",
            "certificates.selfManaged.manageCaBundle=false",
            "--set",
            "certificates.selfManaged.generate=true",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };

    // `helm install`, for real: Helm's own apply, its lookup, its release record.
    helm_on(&helm, &cp, &as_strs(&release("install")));
    let installed = objects::yaml_docs(&helm_on(
        &helm,
        &cp,
        &["get", "manifest", "revhook", "--namespace", NS],
    ));
    let kinds: Vec<&str> = installed
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    for kind in ["Secret", "ConfigMap", "Deployment", "Service"] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    // No endpoints controller runs here: the Endpoints the test writes stay.
    objects::apply(&admin, &endpoints(&netns)).await;

    // revhook in the network namespace with the installed Secret and ConfigMap as its files.
    let tls = stored_tls(&admin, "revhook-tls").await;
    let ca_pem = tls.ca_pem.clone();
    let args = localize(&installed, cp.path(), "revhook-helm-file");
    assert!(args.contains(&"--source=file".to_owned()), "{args:?}");
    let mut revhook = Revhook::start(
        "revhook-helm-file",
        cp.path(),
        RevhookOptions {
            args,
            wait_ready: true,
            tls: Some(tls),
            netns: Some(&netns),
            ..RevhookOptions::default()
        },
    );
    // The webhook configurations exactly as installed: Service references and Helm's CA.
    let bundles = objects::revhook_ca_bundles(&admin).await;
    assert_eq!(bundles.len(), 7);
    for (name, bundle) in &bundles {
        assert_eq!(bundle.as_slice(), ca_pem.as_bytes(), "{name}");
    }
    revhook.wait_for_api_server_calls(&admin).await;
    objects::apply_all(&admin, &web::shop_without_deployment()).await;

    // The API server resolved the chart's Service, verified Helm's certificate for its name
    // against the chart's caBundle, and got the revision the config file gives prod-stable.
    let pod = create_injected_pod(&admin, "helm-through-service").await;
    assert_eq!(
        proxy_of(&pod)["image"],
        "mcr.microsoft.com/oss/istio/proxyv2:1.22.0-distroless"
    );
    let status = pod["metadata"]["annotations"]["sidecar.istio.io/status"]
        .as_str()
        .expect("status annotation");
    assert!(status.contains(r#""revision":"asm-1-22""#), "{status}");
    // The chart's --log-format=json.
    let log = revhook.proc.log_text();
    assert!(log.contains(r#""decision":"inject:asm-1-22""#), "{log}");

    // `helm upgrade` keeps the CA (the chart looks the Secret up) and the caBundle with it, so
    // the running revhook is still trusted.
    helm_on(&helm, &cp, &as_strs(&release("upgrade")));
    assert_eq!(stored_tls(&admin, "revhook-tls").await.ca_pem, ca_pem);
    for (name, bundle) in objects::revhook_ca_bundles(&admin).await {
        assert_eq!(bundle, ca_pem.as_bytes(), "{name} after the upgrade");
    }
    let pod = create_injected_pod(&admin, "helm-after-upgrade").await;
    assert_eq!(
        proxy_of(&pod)["image"],
        "mcr.microsoft.com/oss/istio/proxyv2:1.22.0-distroless"
    );
    revhook.proc.assert_running();
}

/// What a client gets from revhook's webhook port for a `/validate` review: the status line,
/// or the TLS error that ended the connection. `cert`: the client certificate it presents.
async fn call_webhook(revhook: &Revhook, cert: Option<&Tls>) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(revhook.tls.ca_pem.as_bytes()) {
        roots.add(ca.expect("CA PEM")).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let config = match cert {
        Some(cert) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .expect("certificate PEM"),
                PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key PEM"),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(revhook.addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let body = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"ConfigMap"},"resource":{"group":"","version":"v1","resource":"configmaps"},"operation":"CREATE","object":{}}}"#;
    let request = format!(
        "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // With TLS 1.3 the client's side of the handshake ends before the server has checked
    // its certificate: a refusal arrives as an alert on the first read.
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    match tokio::time::timeout(WAIT, tls.read_to_end(&mut got)).await {
        Ok(Ok(_)) if !got.is_empty() => Ok(String::from_utf8_lossy(&got)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()),
        Ok(Ok(_)) => Err("closed without an answer".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer".into()),
    }
}

/// `serve --client-ca` (#17 item 11): the API server, given a client certificate for its
/// webhooks by its AdmissionConfiguration, is served; a client without a certificate, or
/// with one from another CA, does not get past the TLS handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_ca_only_the_api_server_is_served() {
    let presented = Tls::generate_client("kube-apiserver-webhook-client");
    let Some(cp) = ControlPlane::start_presenting(Options::default(), Some(&presented)).await
    else {
        return;
    };
    let admin = cp.client().await;
    let client_ca = cp.path().join("webhook-client-ca.crt");
    std::fs::write(&client_ca, &presented.ca_pem).expect("write client CA");
    let mut revhook = Revhook::start(
        "revhook-client-ca",
        cp.path(),
        RevhookOptions {
            args: vec![
                "--source=file".into(),
                format!(
                    "--config={}",
                    objects::repo_path("tests/fixtures/local-config.yaml").display()
                ),
                format!("--client-ca={}", client_ca.display()),
            ],
            wait_ready: true,
            ..RevhookOptions::default()
        },
    );
    let base = format!("https://{}", revhook.addr);
    let webhooks =
        objects::shipped_webhooks(objects::url_client_config(&base, &revhook.tls.ca_bundle()));
    objects::apply_all(&admin, &webhooks).await;
    revhook.wait_for_api_server_calls(&admin).await;
    objects::apply_all(&admin, &web::shop_without_deployment()).await;
    let pod = create_injected_pod(&admin, "with-client-ca").await;
    assert_eq!(
        proxy_of(&pod)["image"],
        "mcr.microsoft.com/oss/istio/proxyv2:1.22.0-distroless",
        "the API server presented its certificate and got the injection"
    );

    let stranger = Tls::generate_client("stranger");
    for (who, cert) in [
        ("no certificate", None),
        ("a certificate from another CA", Some(&stranger)),
    ] {
        let refused = call_webhook(&revhook, cert).await;
        assert!(refused.is_err(), "{who}: answered {refused:?}");
    }
    // The API server's certificate, presented by this test, is served: the refusals above
    // are about the certificate, not the request.
    let served = call_webhook(&revhook, Some(&presented)).await;
    assert_eq!(served.as_deref(), Ok("HTTP/1.1 200 OK"));
    let log = revhook.proc.log_text();
    assert!(log.contains("decision=inject:asm-1-22"), "{log}");
}
