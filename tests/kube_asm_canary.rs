//! The Anthos Service Mesh in-cluster canary upgrade (#16 flow 2) against a real kube-apiserver
//! and controller manager: revhook (the built binary, `serve --source cluster`, no
//! `--istio-namespace`: it finds Istio in istio-system) injects each revision's own Istio
//! templates, rendered by helm from Istio's charts; the namespace moves from
//! `istio-injection=enabled` (the old revision, through the `default` tag) to
//! `istio.io/rev=asm-183-2` and back, as the guide's `kubectl label` commands do; the upgrade
//! is completed as the guide completes it (`kubectl delete Service,Deployment istiod-<old>`),
//! which leaves the old revision's injector ConfigMap and MutatingWebhookConfiguration
//! behind: revhook treats it as removed, says what is left, and `check` reports it.
//!
//! Also here: where `serve` looks for Istio when no namespace is given, under the shipped
//! least-privilege RBAC (#15 item 3).

mod envtest;
mod render;

use std::time::Duration;

use envtest::objects::{self, api_message, value};
use envtest::web::{container, current_template_hash, env, rollout_restart};
use envtest::{eventually, ControlPlane, Options, Revhook, RevhookOptions};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const ISTIO_NS: &str = "istio-system";
const OLD: &str = "asm-182-2";
const NEW: &str = "asm-183-2";
const NAMESPACE_PATH: &str = "/api/v1/namespaces/shop";

/// What each revision's proxies are, as its ConfigMaps say (the canary has its own mesh
/// identity; the old revision Istio's defaults).
struct Expected {
    image: &'static str,
    trust_domain: &'static str,
    mesh_id: &'static str,
    cluster_id: &'static str,
    network: Option<&'static str>,
}

fn expected(rev: &str) -> Expected {
    match rev {
        OLD => Expected {
            image: "gcr.io/gke-release/asm/proxyv2:1.22.3-asm.2",
            trust_domain: "cluster.local",
            mesh_id: "cluster.local",
            cluster_id: "Kubernetes",
            network: None,
        },
        NEW => Expected {
            image: "gcr.io/gke-release/asm/proxyv2:1.23.0-asm.1",
            trust_domain: "corp.example",
            mesh_id: "proj-123",
            cluster_id: "cluster-7",
            network: Some("net-a"),
        },
        other => panic!("no revision {other}"),
    }
}

/// A control plane with ASM's objects, the old revision's own injector configuration (as
/// Istio's chart renders it), and revhook registered as the shipped manifests register it.
struct Cluster {
    // Dropped first: its log lives in the control plane's directory.
    revhook: Revhook,
    cp: ControlPlane,
    client: Client,
}

/// The old revision's injector MutatingWebhookConfiguration, as Istio's 1.22 chart renders it
/// (calling its istiod Service; it selects only what names asm-182-2 itself, which nothing
/// here does while it is stored, so the API server never calls it).
fn old_revision_injector() -> Option<Value> {
    let (helm, _) = envtest::istiod::helm_and_chart()?;
    let chart = objects::repo_path("../shared/reference/istio-1.22.0/chart");
    let rendered = envtest::istiod::render(
        &(helm, chart),
        ISTIO_NS,
        &[
            format!("revision={OLD}"),
            format!("global.istioNamespace={ISTIO_NS}"),
        ],
        "mutatingwebhook.yaml",
    );
    rendered.into_iter().next()
}

async fn asm_cluster() -> Option<Cluster> {
    let old_injector = old_revision_injector()?;
    let cp = ControlPlane::start(Options {
        controller_manager: true,
    })
    .await?;
    let client = cp.client().await;
    let fixture =
        objects::with_istio_charts(objects::yaml_file("tests/fixtures/kube/asm-istio.yaml"));
    objects::apply_all(&client, &fixture).await;
    objects::apply(&client, &old_injector).await;
    // No --istio-namespace: the well-known namespaces (aks-istio-system and asm-system do not
    // exist here).
    let revhook = Revhook::start(
        "revhook",
        cp.path(),
        RevhookOptions {
            kubeconfig: Some(&cp.kubeconfig),
            args: vec!["--source=cluster".to_owned()],
            wait_ready: true,
            ..RevhookOptions::default()
        },
    );
    let webhooks = objects::shipped_webhooks(objects::url_client_config(
        &format!("https://{}", revhook.addr),
        &revhook.tls.ca_bundle(),
    ));
    objects::apply_all(&client, &webhooks).await;
    let mut revhook = revhook;
    revhook.wait_for_api_server_calls(&client).await;
    Some(Cluster {
        revhook,
        cp,
        client,
    })
}

/// The app: namespace shop with `istio-injection=enabled`, its ServiceAccount and Deployment.
fn app() -> Vec<Value> {
    let mut docs = objects::yaml_file("tests/fixtures/kube/shop.yaml");
    for doc in &mut docs {
        if doc["kind"] == "Namespace" {
            doc["metadata"]["labels"] = json!({"istio-injection": "enabled"});
        }
    }
    docs
}

/// The stored pod carries revision `rev`'s proxy: its image, its istiod's address (the CA
/// and the discovery address of its proxy config), its mesh identity, its status and labels;
/// the app container is untouched.
fn assert_injected(pod: &Value, rev: &str) {
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let want = expected(rev);
    let proxy = container(pod, "istio-proxy");
    assert_eq!(proxy["image"], want.image, "{name}: proxy image");
    let istiod = format!("istiod-{rev}.{ISTIO_NS}.svc:15012");
    assert_eq!(env(proxy, "CA_ADDR"), &json!(istiod), "{name}: CA address");
    let proxy_config: Value = serde_json::from_str(
        env(proxy, "PROXY_CONFIG")
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no PROXY_CONFIG")),
    )
    .expect("PROXY_CONFIG is JSON");
    assert_eq!(
        proxy_config["discoveryAddress"], istiod,
        "{name}: discovery address"
    );
    assert_eq!(env(proxy, "TRUST_DOMAIN"), want.trust_domain, "{name}");
    assert_eq!(env(proxy, "ISTIO_META_MESH_ID"), want.mesh_id, "{name}");
    assert_eq!(
        env(proxy, "ISTIO_META_CLUSTER_ID"),
        want.cluster_id,
        "{name}"
    );
    assert_eq!(
        env(proxy, "ISTIO_META_NETWORK").as_str(),
        want.network,
        "{name}"
    );
    let init = &pod["spec"]["initContainers"][0];
    assert_eq!(init["name"], "istio-init", "{name}");
    assert_eq!(init["image"], want.image, "{name}: init image");
    let status: Value = serde_json::from_str(
        pod["metadata"]["annotations"]["sidecar.istio.io/status"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no sidecar.istio.io/status")),
    )
    .expect("status annotation is JSON");
    assert_eq!(status["revision"], rev, "{name}: status revision");
    assert_eq!(status["containers"], json!(["istio-proxy"]), "{name}");
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["security.istio.io/tlsMode"], "istio", "{name}");
    assert_eq!(labels["service.istio.io/canonical-name"], "web", "{name}");
    assert_eq!(
        labels["service.istio.io/canonical-revision"], "v1",
        "{name}"
    );
    assert_eq!(labels["app"], "web", "{name}");
    let app = container(pod, "web");
    assert_eq!(app["image"], "registry.example.com/shop/web:1.0.0");
    assert_eq!(pod["spec"]["serviceAccountName"], "web");
}

/// The pod of the Deployment's newest ReplicaSet, once its hash is not one of `previous`.
async fn pod_of_new_replicaset(client: &Client, previous: &[String]) -> (String, Value) {
    let client = client.clone();
    let previous = previous.to_vec();
    eventually("the new ReplicaSet's pod", WAIT, || {
        let client = client.clone();
        let previous = previous.clone();
        async move {
            let hash = current_template_hash(&client).await?;
            if previous.contains(&hash) {
                return Err(format!("the Deployment still names ReplicaSet {hash}"));
            }
            let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
            let selector = format!("app=web,pod-template-hash={hash}");
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .next()
                .map(|p| (hash.clone(), value(p)))
                .ok_or(format!("no pod of ReplicaSet {hash} yet"))
        }
    })
    .await
}

/// A bare pod of shop (out of the Deployment's selector).
fn probe_pod() -> Pod {
    objects::typed(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "probe", "labels": {"app": "bare"}},
        "spec": {"serviceAccountName": "web", "containers": [{"name": "app", "image": "app"}]}
    }))
}

/// Waits until revhook injects `rev` into a pod of shop (server-side dry runs: revhook's watch
/// has seen the change).
async fn wait_until_injecting(client: &Client, rev: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let want = expected(rev).image;
    eventually(&format!("revhook to inject {rev}"), WAIT, || {
        let pods = pods.clone();
        async move {
            let pp = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            let pod = value(
                pods.create(&pp, &probe_pod())
                    .await
                    .map_err(|e| api_message(&e))?,
            );
            let image = container(&pod, "istio-proxy")["image"].clone();
            (image == want)
                .then_some(())
                .ok_or(format!("dry-run pod has proxy {image}"))
        }
    })
    .await;
}

async fn namespace_labels(client: &Client) -> Value {
    let ns: Api<Namespace> = Api::all(client.clone());
    value(ns.get("shop").await.expect("namespace shop"))["metadata"]["labels"].clone()
}

/// `kubectl label namespace shop <labels> --overwrite` (a null removes a label, as `key-`).
async fn label_shop(client: &Client, labels: Value) -> (Result<Value, String>, Vec<String>) {
    objects::merge_patch(
        client,
        NAMESPACE_PATH,
        &json!({"metadata": {"labels": labels}}),
    )
    .await
}

/// What `kubectl label namespace shop istio.io/rev=<rev> istio-injection- --overwrite` prints
/// as warnings: one per line kubectl shows (split to the API server's 120 characters, never
/// inside the command).
fn relabel_warning(rev: &str) -> Vec<String> {
    vec![
        format!(
            "namespace \"shop\" now selects istio.io/rev={rev}; running pods keep their proxy until restarted:"
        ),
        "kubectl rollout restart deployment -n shop".to_owned(),
    ]
}

/// Moves shop to `labels`, waits for revhook to inject `rev`, restarts the Deployment, and
/// returns the new ReplicaSet's hash and pod.
async fn move_and_restart(
    c: &Cluster,
    labels: Value,
    rev: &str,
    previous: &[String],
    at: &str,
) -> (String, Value) {
    let (stored, _) = label_shop(&c.client, labels).await;
    stored.unwrap_or_else(|e| panic!("relabel refused: {e}"));
    wait_until_injecting(&c.client, rev).await;
    rollout_restart(&c.client, at).await;
    pod_of_new_replicaset(&c.client, previous).await
}

/// `revhook` with the admin kubeconfig and no `--istio-namespace` (Istio is found where it
/// is): exit code and standard output, standard error after it.
fn revhook_cli(c: &Cluster, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revhook"))
        .args(args)
        .env("KUBECONFIG", &c.cp.kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run revhook");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The message shop's namespace gets for selecting the half-removed old revision.
fn half_removed_left() -> String {
    format!(
        "its istiod Service {ISTIO_NS}/istiod-{OLD} is gone; left behind: ConfigMap {ISTIO_NS}/istio-sidecar-injector-{OLD}, ConfigMap {ISTIO_NS}/istio-{OLD}, MutatingWebhookConfiguration istio-sidecar-injector-{OLD}"
    )
}

fn finish_removing() -> String {
    format!(
        "Finish removing {OLD}: kubectl delete configmap istio-sidecar-injector-{OLD} istio-{OLD} -n {ISTIO_NS}; kubectl delete mutatingwebhookconfiguration istio-sidecar-injector-{OLD} (or: istioctl uninstall --revision {OLD})"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asm_canary_upgrade_rollback_and_completion() {
    let Some(mut c) = asm_cluster().await else {
        return;
    };
    let client = c.client.clone();
    // revhook found Istio in istio-system, and says the other well-known namespaces are not
    // there (once it has looked).
    let revhook = &c.revhook;
    eventually(
        "/readyz to name the namespaces that do not exist",
        WAIT,
        || async {
            let (code, ready) = revhook.admin_get("/readyz");
            let absent = [
                "namespace aks-istio-system does not exist: no revision there (watched)",
                "namespace asm-system does not exist: no revision there (watched)",
            ];
            (code == 200 && absent.iter().all(|a| ready.lines().any(|l| l == *a)))
                .then_some(())
                .ok_or(format!("{code} {ready}"))
        },
    )
    .await;
    objects::apply_all(&client, &app()).await;

    // Before: istio-injection=enabled → the default tag → asm-182-2.
    let (first, pod) = pod_of_new_replicaset(&client, &[]).await;
    assert_injected(&pod, OLD);
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ReplicaSet");
    assert_eq!(owner["name"], format!("web-{first}"));

    // `kubectl label namespace shop istio.io/rev=asm-183-2 istio-injection- --overwrite`,
    // then `kubectl rollout restart`: new pods on the canary.
    let (stored, warnings) = label_shop(
        &client,
        json!({"istio.io/rev": NEW, "istio-injection": null}),
    )
    .await;
    let stored = stored.expect("moving to an installed revision is allowed");
    assert_eq!(stored["metadata"]["labels"]["istio.io/rev"], NEW);
    assert_eq!(stored["metadata"]["labels"].get("istio-injection"), None);
    assert_eq!(warnings, relabel_warning(NEW));
    wait_until_injecting(&client, NEW).await;
    rollout_restart(&client, "2026-12-01T22:00:00Z").await;
    let (second, pod) = pod_of_new_replicaset(&client, std::slice::from_ref(&first)).await;
    assert_injected(&pod, NEW);

    // Rollback, as the guide does it: the old labels back, and a restart.
    let (third, pod) = move_and_restart(
        &c,
        json!({"istio-injection": "enabled", "istio.io/rev": null}),
        OLD,
        &[first.clone(), second.clone()],
        "2026-12-01T22:10:00Z",
    )
    .await;
    assert_injected(&pod, OLD);
    assert_eq!(
        namespace_labels(&client).await,
        json!({"istio-injection": "enabled", "kubernetes.io/metadata.name": "shop"})
    );

    // The upgrade again, and completed as the guide completes it.
    let (fourth, pod) = move_and_restart(
        &c,
        json!({"istio.io/rev": NEW, "istio-injection": null}),
        NEW,
        &[first, second, third],
        "2026-12-01T22:20:00Z",
    )
    .await;
    assert_injected(&pod, NEW);
    let services: Api<Service> = Api::namespaced(client.clone(), ISTIO_NS);
    services
        .delete(&format!("istiod-{OLD}"), &Default::default())
        .await
        .expect("kubectl delete service istiod-asm-182-2");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ISTIO_NS);
    deployments
        .delete(&format!("istiod-{OLD}"), &Default::default())
        .await
        .expect("kubectl delete deployment istiod-asm-182-2");

    // Going back to the old revision is now refused with what is left and how to finish.
    let back = format!(
        "admission webhook \"namespaces.validate.revhook.dev\" denied the request: namespace \"shop\" selects revision \"{OLD}\", which is half-removed ({}); installed: {NEW}; tags: default -> {OLD}. Relabel with: kubectl label namespace shop istio.io/rev={NEW} --overwrite. {}",
        half_removed_left(),
        finish_removing()
    );
    let refused = eventually("revhook to see asm-182-2 half-removed", WAIT, || {
        let client = client.clone();
        async move {
            match label_shop(&client, json!({"istio.io/rev": OLD})).await {
                (Ok(_), _) => {
                    // revhook had not seen the deletion yet: undo, and try again.
                    label_shop(&client, json!({"istio.io/rev": NEW}))
                        .await
                        .0
                        .map_err(|e| format!("undo: {e}"))?;
                    Err("allowed (revhook had not seen the deletion yet)".to_owned())
                }
                (Err(message), _) => Ok(message),
            }
        }
    })
    .await;
    assert_eq!(refused, back);
    let (injection, _) = label_shop(
        &client,
        json!({"istio-injection": "enabled", "istio.io/rev": null}),
    )
    .await;
    assert_eq!(
        injection.expect_err("istio-injection=enabled selects the default tag, on the old revision"),
        format!(
            "admission webhook \"namespaces.validate.revhook.dev\" denied the request: namespace \"shop\" has istio-injection=enabled, which selects tag \"default\", which points at revision \"{OLD}\" that is half-removed ({}); installed: {NEW}; tags: default -> {OLD}. Point the default tag at a revision (istioctl tag set default --revision {NEW}) or relabel with: kubectl label namespace shop istio-injection- istio.io/rev={NEW}. {}",
            half_removed_left(),
            finish_removing()
        )
    );
    // Nothing refused was stored; the running pod stays on the canary.
    assert_eq!(
        namespace_labels(&client).await,
        json!({"istio.io/rev": NEW, "kubernetes.io/metadata.name": "shop"})
    );
    let (hash, pod) = pod_of_new_replicaset(&client, &[]).await;
    assert_eq!(hash, fourth);
    assert_injected(&pod, NEW);
    let (code, ready) = c.revhook.admin_get("/readyz");
    assert_eq!(code, 200);
    assert!(
        ready.contains(&format!(
            "revision {OLD} is half-removed, not installed: {}",
            half_removed_left()
        )),
        "{ready}"
    );

    // `revhook check` on the live cluster and on a dump of it: the half-removed revision with
    // its own code, and the default tag left on it.
    let (code, out, err) = revhook_cli(&c, &["check", "-o", "json"]);
    assert_eq!(code, Some(1), "errors found: {out}{err}");
    let live: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let dump = c.cp.path().join("asm-dump.json");
    objects::dump(&client, &dump).await;
    let (_, out, err) = revhook_cli(
        &c,
        &[
            "check",
            "-o",
            "json",
            "--from-file",
            dump.to_str().expect("path"),
        ],
    );
    let from_dump: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(live["findings"], from_dump["findings"]);
    assert_eq!(live["revisions"], from_dump["revisions"]);
    let findings = live["findings"].as_array().expect("findings");
    let half = findings
        .iter()
        .find(|f| f["code"] == "REVHOOK-REVISION-HALF-REMOVED")
        .unwrap_or_else(|| panic!("{live}"));
    assert_eq!(half["object"], format!("Revision/{OLD}"));
    assert_eq!(
        half["message"],
        format!(
            "revision \"{OLD}\" is half removed: its istiod Service {ISTIO_NS}/istiod-{OLD} is gone, but left behind: ConfigMap {ISTIO_NS}/istio-sidecar-injector-{OLD}, ConfigMap {ISTIO_NS}/istio-{OLD}, MutatingWebhookConfiguration istio-sidecar-injector-{OLD}. revhook treats it as not installed (namespaces and pods on it are stale)"
        )
    );
    assert_eq!(
        half["fix"],
        format!(
            "finish removing it: kubectl delete configmap istio-sidecar-injector-{OLD} istio-{OLD} -n {ISTIO_NS} && kubectl delete mutatingwebhookconfiguration istio-sidecar-injector-{OLD}   (or reinstall it if it should still serve)"
        )
    );
    let dangling = findings
        .iter()
        .find(|f| f["code"] == "REVHOOK-TAG-DANGLING")
        .unwrap_or_else(|| panic!("{live}"));
    assert_eq!(dangling["object"], "Tag/default");
    assert_eq!(
        dangling["fix"],
        format!("istioctl tag set default --revision {NEW} --overwrite")
    );
    // The canary's summary: its Service, and the mesh identity its proxies carry.
    let canary = live["revisions"]
        .as_array()
        .expect("revisions")
        .iter()
        .find(|r| r["revision"] == NEW)
        .unwrap_or_else(|| panic!("{live}"));
    assert_eq!(canary["service"], format!("{ISTIO_NS}/istiod-{NEW}"));
    assert_eq!(canary["namespaces"], json!(["shop"]));
    assert_eq!(
        canary["mesh"],
        json!({"trustDomain": "corp.example", "clusterId": "cluster-7", "meshId": "proj-123", "network": "net-a"})
    );
    c.cp.assert_running();
    c.revhook.proc.assert_running();
}

// === #15 item 3: where serve looks for Istio, under the shipped RBAC ===

/// The shipped base's RBAC (ServiceAccount, ClusterRole and binding, the Role in Istio's
/// namespace) applied, and a token of revhook's ServiceAccount; `None` without kustomize.
async fn shipped_rbac_token(client: &Client) -> Option<String> {
    let docs = render::kustomize(
        &render::kustomize_tool()?,
        &render::repo_path("manifests/base"),
    );
    let rbac = [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    for kind in rbac {
        for doc in docs.iter().filter(|d| d["kind"] == kind) {
            objects::apply(client, doc).await;
        }
    }
    Some(objects::service_account_token(client, "revhook-system", "revhook").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_looks_where_istio_usually_is_and_skips_what_it_may_not_read() {
    let Some(cp) = ControlPlane::start(Options::default()).await else {
        return;
    };
    let client = cp.client().await;
    let fixture =
        objects::with_istio_charts(objects::yaml_file("tests/fixtures/kube/asm-istio.yaml"));
    objects::apply_all(&client, &fixture).await;
    // asm-system exists (someone else's), and the shipped Role grants only istio-system.
    objects::apply(
        &client,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "asm-system"}}),
    )
    .await;
    let Some(token) = shipped_rbac_token(&client).await else {
        return;
    };
    let kubeconfig = cp.kubeconfig_with_token("revhook-sa", &token);

    // No --istio-namespace: the well-known namespaces; those it may not read are skipped,
    // never a failed sync.
    let mut revhook = Revhook::start(
        "revhook-well-known",
        cp.path(),
        RevhookOptions {
            kubeconfig: Some(&kubeconfig),
            args: vec!["--source=cluster".to_owned()],
            wait_ready: true,
            ..RevhookOptions::default()
        },
    );
    let (code, ready) = revhook.admin_get("/readyz");
    assert_eq!(code, 200, "{ready}");
    let lines: Vec<&str> = ready.lines().collect();
    assert_eq!(lines[0], "ready", "{ready}");
    for ns in ["aks-istio-system", "asm-system"] {
        for kind in ["configmaps", "services"] {
            let said = format!("skipped {kind} in {ns}: forbidden: {kind} is forbidden: User \"system:serviceaccount:revhook-system:revhook\" cannot list resource \"{kind}\" in API group \"\" in the namespace \"{ns}\"");
            assert!(lines.contains(&said.as_str()), "{said}\n{ready}");
        }
    }
    assert!(
        !ready.contains(" in istio-system:"),
        "istio-system is read: {ready}"
    );
    let log = revhook.proc.log_text();
    assert!(
        log.contains(
            "cannot read configmaps in asm-system; skipped (Istio is not looked for there)"
        ),
        "{log}"
    );
    // It serves from istio-system: a pod on the default tag gets asm-182-2.
    let webhooks = objects::shipped_webhooks(objects::url_client_config(
        &format!("https://{}", revhook.addr),
        &revhook.tls.ca_bundle(),
    ));
    objects::apply_all(&client, &webhooks).await;
    revhook.wait_for_api_server_calls(&client).await;
    let shop: Vec<Value> = app()
        .into_iter()
        .filter(|d| d["kind"] != "Deployment")
        .collect();
    objects::apply_all(&client, &shop).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let pod = value(
        pods.create(&dry_run, &probe_pod())
            .await
            .unwrap_or_else(|e| panic!("{}", api_message(&e))),
    );
    assert_eq!(container(&pod, "istio-proxy")["image"], expected(OLD).image);
    drop(revhook);

    // Named with --istio-namespace, a namespace it may not read is a failed sync: never ready.
    let mut strict = Revhook::start(
        "revhook-named",
        cp.path(),
        RevhookOptions {
            kubeconfig: Some(&kubeconfig),
            args: [
                "--source=cluster",
                "--istio-namespace",
                ISTIO_NS,
                "--istio-namespace",
                "asm-system",
            ]
            .map(String::from)
            .to_vec(),
            wait_ready: false,
            ..RevhookOptions::default()
        },
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, ready) = strict.admin_get("/readyz");
    assert_eq!(
        (code, ready.trim_end()),
        (503, "revisions not known yet"),
        "a named namespace that cannot be read"
    );
    strict.proc.assert_running();
    let log = strict.proc.log_text();
    assert!(log.contains("watch failed; retrying with backoff"), "{log}");
}
