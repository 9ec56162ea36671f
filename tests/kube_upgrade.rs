//! The AKS Istio add-on minor upgrade against a real kube-apiserver and controller manager:
//! revhook (the built binary, `serve --source cluster`) is registered the way the shipped
//! manifests register it, and the Deployment's pods are created by the ReplicaSet controller
//! through the API server's webhook calls, exactly as in a cluster.

mod envtest;
mod render;

use std::collections::BTreeMap;
use std::time::Duration;

use envtest::objects::{self, api_message, value};
use envtest::web::{self, container, current_template_hash, env, rollout_restart};
use envtest::{eventually, ControlPlane, Options, Revhook, RevhookOptions};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const ISTIO_NS: &str = "aks-istio-system";

/// A control plane with the add-on's objects and revhook registered for real.
struct Cluster {
    // Dropped first: its log lives in the control plane's directory.
    revhook: Revhook,
    cp: ControlPlane,
    client: Client,
}

/// Which shipped manifests register revhook's webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shipped {
    /// `manifests/base` (inject mode).
    Base,
    /// `kustomize build manifests/overlays/guard` (guard mode: reinvoked IfNeeded).
    GuardOverlay,
}

impl Shipped {
    /// The webhook configurations, or `None` (skip) without kustomize for the overlay.
    fn webhook_docs(self) -> Option<Vec<Value>> {
        match self {
            Shipped::Base => {
                let mut docs = objects::yaml_file("manifests/base/mutatingwebhook.yaml");
                docs.extend(objects::yaml_file("manifests/base/validatingwebhook.yaml"));
                Some(docs)
            }
            Shipped::GuardOverlay => Some(render::kustomize(
                &render::kustomize_tool()?,
                &render::repo_path("manifests/overlays/guard"),
            )),
        }
    }
}

async fn cluster(extra_args: &[&str]) -> Option<Cluster> {
    cluster_as(extra_args, Shipped::Base).await
}

async fn cluster_as(extra_args: &[&str], shipped: Shipped) -> Option<Cluster> {
    let webhook_docs = shipped.webhook_docs()?;
    let cp = ControlPlane::start(Options {
        controller_manager: true,
    })
    .await?;
    let client = cp.client().await;
    objects::apply_all(&client, &objects::istio_fixture_in(ISTIO_NS)).await;
    let mut args: Vec<String> = ["--source=cluster", "--istio-namespace", ISTIO_NS]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra_args.iter().map(|s| s.to_string()));
    let revhook = Revhook::start(
        "revhook",
        cp.path(),
        RevhookOptions {
            kubeconfig: Some(&cp.kubeconfig),
            args,
            wait_ready: true,
            ..RevhookOptions::default()
        },
    );
    let webhooks = objects::webhooks_calling(
        webhook_docs,
        objects::url_client_config(
            &format!("https://{}", revhook.addr),
            &revhook.tls.ca_bundle(),
        ),
    );
    objects::apply_all(&client, &webhooks).await;
    let mut revhook = revhook;
    revhook.wait_for_api_server_calls(&client).await;
    Some(Cluster {
        cp,
        revhook,
        client,
    })
}

fn proxy_image(rev: &str) -> &'static str {
    match rev {
        "asm-1-22" => "mcr.microsoft.com/oss/istio/proxyv2:1.22.3-distroless",
        "asm-1-23" => "mcr.microsoft.com/oss/istio/proxyv2:1.23.0-distroless",
        other => panic!("no image for {other}"),
    }
}

/// The proxy's resources and log levels the revision's `values` give (asm-1-23: defaults).
fn proxy_settings(rev: &str) -> (Value, &'static str, &'static str) {
    match rev {
        "asm-1-22" => (
            json!({"limits": {"cpu": "1500m", "memory": "768Mi"}, "requests": {"cpu": "50m", "memory": "96Mi"}}),
            "--proxyLogLevel=info",
            "--proxyComponentLogLevel=misc:warning",
        ),
        "asm-1-23" => (
            json!({"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}),
            "--proxyLogLevel=warning",
            "--proxyComponentLogLevel=misc:error",
        ),
        other => panic!("no settings for {other}"),
    }
}

/// The stored pod carries revision `rev`'s sidecar, and the app container is untouched.
fn assert_injected(pod: &Value, rev: &str) {
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let proxy = container(pod, "istio-proxy");
    assert_eq!(proxy["image"], proxy_image(rev), "{name}: proxy image");
    assert_eq!(
        env(proxy, "CA_ADDR"),
        &json!(format!("istiod-{rev}.{ISTIO_NS}.svc:15012")),
        "{name}: the proxy talks to its revision's istiod"
    );
    let (resources, log_level, component_log_level) = proxy_settings(rev);
    assert_eq!(proxy["resources"], resources, "{name}: proxy resources");
    let args = proxy["args"].as_array().expect("proxy args");
    assert_eq!(args[..2], [json!("proxy"), json!("sidecar")], "{name}");
    assert!(args.contains(&json!(log_level)), "{name}: {args:?}");
    assert!(
        args.contains(&json!(component_log_level)),
        "{name}: {args:?}"
    );
    let status: Value = serde_json::from_str(
        pod["metadata"]["annotations"]["sidecar.istio.io/status"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no sidecar.istio.io/status")),
    )
    .expect("status annotation is JSON");
    assert_eq!(status["revision"], rev, "{name}: status revision");
    assert_eq!(status["containers"], json!(["istio-proxy"]));
    assert_eq!(status["initContainers"], json!(["istio-init"]));
    let sidecar_volumes = [
        "workload-socket",
        "credential-socket",
        "workload-certs",
        "istio-envoy",
        "istio-data",
        "istio-podinfo",
        "istio-token",
        "istiod-ca-cert",
    ];
    assert_eq!(status["volumes"], json!(sidecar_volumes));
    let volumes: Vec<&str> = pod["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in sidecar_volumes {
        assert!(volumes.contains(&v), "{name}: volume {v} in {volumes:?}");
    }
    // The API server's ServiceAccount admission ran before the webhook: both token volumes.
    assert!(
        volumes.iter().any(|v| v.starts_with("kube-api-access-")),
        "{name}: {volumes:?}"
    );
    let token = pod["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "istio-token")
        .expect("istio-token");
    assert_eq!(
        token["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "istio-ca"
    );
    let init = &pod["spec"]["initContainers"];
    assert_eq!(init[0]["name"], "istio-init", "{name}: init container");
    assert_eq!(init[0]["image"], proxy_image(rev), "{name}: init image");
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["security.istio.io/tlsMode"], "istio");
    assert_eq!(labels["service.istio.io/canonical-name"], "web");
    assert_eq!(labels["service.istio.io/canonical-revision"], "v1");
    let app = container(pod, "web");
    assert_eq!(app["image"], "registry.example.com/shop/web:1.0.0");
    assert_eq!(pod["spec"]["serviceAccountName"], "web");
}

/// Pods of the Deployment `web` by ReplicaSet (pod-template-hash), oldest first within one.
async fn web_pods(client: &Client) -> Vec<Value> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let mut list: Vec<Value> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .map(value)
        .collect();
    list.sort_by_key(|p| {
        p["metadata"]["creationTimestamp"]
            .as_str()
            .map(str::to_owned)
    });
    list
}

/// The pods of the Deployment's newest ReplicaSet, once it has `count` of them and it is not
/// one of `previous` (right after a restart the Deployment still names the old one).
async fn pods_of_new_replicaset(client: &Client, count: usize, previous: &[Value]) -> Vec<Value> {
    let previous: Vec<Value> = previous
        .iter()
        .map(|p| p["metadata"]["labels"]["pod-template-hash"].clone())
        .collect();
    let client = client.clone();
    eventually("the new ReplicaSet's pods", WAIT, || {
        let client = client.clone();
        let previous = previous.clone();
        async move {
            let hash = current_template_hash(&client).await?;
            if previous.contains(&json!(hash)) {
                return Err(format!("the Deployment still names ReplicaSet hash {hash}"));
            }
            let pods: Vec<Value> = web_pods(&client)
                .await
                .into_iter()
                .filter(|p| p["metadata"]["labels"]["pod-template-hash"] == hash.as_str())
                .collect();
            if pods.len() >= count {
                Ok(pods)
            } else {
                Err(format!("{} pods of ReplicaSet hash {hash}", pods.len()))
            }
        }
    })
    .await
}

/// A bare pod for namespace shop under the app's ServiceAccount (the label keeps it out of
/// the Deployment's selector).
fn shop_pod(name: &str) -> Pod {
    objects::typed(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bare"}},
        "spec": {"serviceAccountName": "web", "containers": [{"name": "app", "image": "app"}]}
    }))
}

/// Waits until revhook injects `rev` into a pod of namespace shop: a server-side dry run (the
/// webhooks are `sideEffects: None`, so the API server calls them and returns the mutated pod,
/// storing nothing). This is how the test knows revhook's watch has seen a change.
async fn wait_until_injecting(client: &Client, rev: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let probe = shop_pod("probe");
    let want = proxy_image(rev);
    eventually(&format!("revhook to inject {rev}"), WAIT, || {
        let pods = pods.clone();
        let probe = probe.clone();
        async move {
            let pp = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            let pod = value(
                pods.create(&pp, &probe)
                    .await
                    .map_err(|e| api_message(&e))?,
            );
            let image = container(&pod, "istio-proxy")["image"].clone();
            if image == want {
                Ok(())
            } else {
                Err(format!("dry-run pod has proxy {image}"))
            }
        }
    })
    .await;
}

/// Moves a tag as `istioctl tag set <tag> --revision <rev> --overwrite` does (the tag
/// webhook's istio.io/rev label).
async fn set_tag(client: &Client, tag: &str, rev: &str) -> Result<(), kube::Error> {
    let mwc: Api<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration> =
        Api::all(client.clone());
    mwc.patch(
        &format!("istio-revision-tag-{tag}"),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"istio.io/rev": rev}}})),
    )
    .await
    .map(|_| ())
}

async fn tag_target(client: &Client, tag: &str) -> Option<String> {
    let mwc: Api<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration> =
        Api::all(client.clone());
    mwc.get(&format!("istio-revision-tag-{tag}"))
        .await
        .expect("tag webhook")
        .metadata
        .labels?
        .get("istio.io/rev")
        .cloned()
}

async fn label_namespace(client: &Client, labels: Value) -> Result<(), kube::Error> {
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": labels}})),
    )
    .await
    .map(|_| ())
}

async fn namespace_labels(client: &Client) -> BTreeMap<String, String> {
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.get("shop")
        .await
        .expect("namespace")
        .metadata
        .labels
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aks_minor_upgrade_moves_pods_with_the_tag_and_refuses_mistakes() {
    let Some(mut c) = cluster(&[]).await else {
        return;
    };
    let client = c.client.clone();
    objects::apply_all(
        &client,
        &objects::yaml_file("tests/fixtures/kube/shop.yaml"),
    )
    .await;

    // Before the upgrade: prod-stable → asm-1-22.
    let before = pods_of_new_replicaset(&client, 1, &[]).await;
    assert_eq!(before.len(), 1);
    assert_injected(&before[0], "asm-1-22");
    let owner = &before[0]["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ReplicaSet");
    assert!(owner["name"].as_str().unwrap_or("").starts_with("web-"));

    // `az aks mesh upgrade start` installed asm-1-23; move the stable tag and restart.
    set_tag(&client, "prod-stable", "asm-1-23")
        .await
        .expect("moving a tag to an installed revision is allowed");
    wait_until_injecting(&client, "asm-1-23").await;
    rollout_restart(&client, "2026-12-01T22:00:00Z").await;
    let after = pods_of_new_replicaset(&client, 1, &before).await;
    assert_eq!(after.len(), 1);
    assert_injected(&after[0], "asm-1-23");
    // Mistakes are refused when they are made, with revhook's message.
    let removed = label_namespace(&client, json!({"istio.io/rev": "asm-1-20"}))
        .await
        .expect_err("a namespace on a revision that is not installed is refused");
    assert_eq!(
        api_message(&removed),
        concat!(
            r#"admission webhook "namespaces.validate.revhook.dev" denied the request: "#,
            r#"namespace "shop" selects revision "asm-1-20", which is not installed; "#,
            "installed: asm-1-22, asm-1-23; tags: prod-canary -> asm-1-23, prod-stable -> asm-1-23. ",
            "Relabel with: kubectl label namespace shop istio.io/rev=asm-1-23 --overwrite"
        )
    );

    let both = label_namespace(&client, json!({"istio-injection": "enabled"}))
        .await
        .expect_err("both injection labels are refused");
    assert_eq!(
        api_message(&both),
        concat!(
            r#"admission webhook "namespaces.validate.revhook.dev" denied the request: "#,
            r#"namespace "shop" would have both istio-injection=enabled and istio.io/rev=prod-stable: "#,
            "the control plane that injects would be ambiguous (Istio lets istio-injection win silently). ",
            "Keep one: kubectl label namespace shop istio-injection-"
        )
    );

    // A tag moved to a missing revision is NOT refused: the API server never sends
    // Mutating/ValidatingWebhookConfiguration writes to admission webhooks (so that no webhook
    // can lock itself in), and the shipped `tags.validate.revhook.dev` rule never runs in a
    // real cluster. What protects users is the next step: nothing can select the dangling tag.
    set_tag(&client, "prod-canary", "asm-1-21")
        .await
        .expect("the API server stores tag webhooks without calling any webhook");
    let tag_rev = tag_target(&client, "prod-canary").await;
    assert_eq!(tag_rev.as_deref(), Some("asm-1-21"));
    let log = c.revhook.proc.log_text();
    assert!(
        log.contains("kind=Namespace"),
        "requests are logged by kind:\n{log}"
    );
    assert!(
        !log.contains("kind=MutatingWebhookConfiguration"),
        "revhook was never asked about a tag webhook:\n{log}"
    );
    let dangling = eventually(
        "the namespace on a dangling tag to be refused",
        WAIT,
        || {
            let client = client.clone();
            async move {
                match label_namespace(&client, json!({"istio.io/rev": "prod-canary"})).await {
                    Ok(()) => {
                        // revhook had not seen the tag move yet: undo, and try again.
                        label_namespace(&client, json!({"istio.io/rev": "prod-stable"}))
                            .await
                            .map_err(|e| api_message(&e))?;
                        Err("allowed (revhook had not seen the tag move yet)".to_owned())
                    }
                    Err(e) => Ok(api_message(&e)),
                }
            }
        },
    )
    .await;
    assert_eq!(
        dangling,
        concat!(
            r#"admission webhook "namespaces.validate.revhook.dev" denied the request: "#,
            r#"namespace "shop" selects tag "prod-canary", which points at revision "asm-1-21" that is not installed; "#,
            "installed: asm-1-22, asm-1-23; tags: prod-canary -> asm-1-21, prod-stable -> asm-1-23. ",
            "Relabel with: kubectl label namespace shop istio.io/rev=asm-1-23 --overwrite"
        )
    );
    set_tag(&client, "prod-canary", "asm-1-23")
        .await
        .expect("the tag back on an installed revision");

    // Nothing refused was stored.
    let labels = namespace_labels(&client).await;
    assert_eq!(
        labels.get("istio.io/rev").map(String::as_str),
        Some("prod-stable")
    );
    assert_eq!(labels.get("istio-injection"), None);

    // Rollback (`az aks mesh upgrade rollback`), with revhook's own tag commands: the plan
    // names what would change, `tags set` writes the tag, a restart brings asm-1-22.
    let (code, plan) = revhook_cli(
        &c,
        &["tags", "plan", "prod-stable", "--revision", "asm-1-22"],
    );
    assert_eq!(code, Some(0), "{plan}");
    // One pod runs asm-1-23 (the restarted one); the pre-upgrade pod, if the Deployment
    // controller kept it, already runs asm-1-22.
    assert_eq!(
        plan,
        concat!(
            "tag prod-stable: asm-1-23 -> asm-1-22\n",
            "image: mcr.microsoft.com/oss/istio/proxyv2:1.23.0-distroless -> mcr.microsoft.com/oss/istio/proxyv2:1.22.3-distroless\n",
            "namespaces selecting the tag: shop\n",
            "pods on another proxy image afterwards: 1\n",
            "  kubectl rollout restart deployment/web -n shop\n",
            "nothing was changed\n",
        )
    );
    assert_eq!(
        tag_target(&client, "prod-stable").await.as_deref(),
        Some("asm-1-23")
    );
    let (code, set) = revhook_cli(
        &c,
        &[
            "tags",
            "set",
            "prod-stable",
            "--revision",
            "asm-1-22",
            "--overwrite",
        ],
    );
    assert_eq!(code, Some(0), "{set}");
    assert!(
        set.starts_with("tag prod-stable -> asm-1-22 (inject mode); restart workloads"),
        "{set}"
    );
    assert_eq!(
        tag_target(&client, "prod-stable").await.as_deref(),
        Some("asm-1-22")
    );
    wait_until_injecting(&client, "asm-1-22").await;
    rollout_restart(&client, "2026-12-01T22:10:00Z").await;
    let rolled_back = pods_of_new_replicaset(&client, 1, &after).await;
    assert_injected(&rolled_back[0], "asm-1-22");
    c.cp.assert_running();
    c.revhook.proc.assert_running();
}

/// `az aks mesh upgrade complete` run before the tag was moved: asm-1-22's injector is removed
/// while `prod-stable` still points at it. Returns the name of the ReplicaSet whose pods revhook
/// then refuses.
async fn upgrade_completed_before_the_tag_moved(c: &Cluster) -> String {
    let client = c.client.clone();
    objects::apply_all(
        &client,
        &objects::yaml_file("tests/fixtures/kube/shop.yaml"),
    )
    .await;
    let before = pods_of_new_replicaset(&client, 1, &[]).await;
    assert_injected(&before[0], "asm-1-22");

    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), ISTIO_NS);
    configmaps
        .delete("istio-sidecar-injector-asm-1-22", &Default::default())
        .await
        .expect("remove asm-1-22's injector");
    wait_until_refusing(&client).await;
    rollout_restart(&client, "2026-12-01T23:00:00Z").await;
    let old_hash = before[0]["metadata"]["labels"]["pod-template-hash"].clone();
    eventually("a new ReplicaSet", WAIT, || {
        let client = client.clone();
        let old_hash = old_hash.clone();
        async move {
            let hash = current_template_hash(&client).await?;
            if json!(hash) == old_hash {
                return Err("the Deployment still names the old ReplicaSet".into());
            }
            Ok(format!("web-{hash}"))
        }
    })
    .await
}

/// Waits until a dry-run pod in shop is refused (revhook has seen the revision go).
async fn wait_until_refusing(client: &Client) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let probe = shop_pod("probe");
    eventually("revhook to refuse pods in shop", WAIT, || {
        let pods = pods.clone();
        let probe = probe.clone();
        async move {
            let pp = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            match pods.create(&pp, &probe).await {
                Ok(_) => Err("still admitted".to_owned()),
                Err(e) => Ok(api_message(&e)),
            }
        }
    })
    .await
}

const DANGLING_DENIAL: &str = concat!(
    r#"admission webhook "rev.namespace.inject.revhook.dev" denied the request: "#,
    r#"namespace "shop" selects tag "prod-stable", which points at revision "asm-1-22" that is not installed; "#,
    "installed: asm-1-23; tags: prod-canary -> asm-1-23, prod-stable -> asm-1-22. ",
    "Relabel with: kubectl label namespace shop istio.io/rev=asm-1-23 --overwrite"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_pod_leaves_its_replicaset_with_failed_create() {
    let Some(c) = cluster(&[]).await else {
        return;
    };
    let rs_name = upgrade_completed_before_the_tag_moved(&c).await;
    let replicasets: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "shop");
    let condition = eventually("ReplicaFailure on the new ReplicaSet", WAIT, || {
        let replicasets = replicasets.clone();
        let rs_name = rs_name.clone();
        async move {
            let rs = value(replicasets.get(&rs_name).await.map_err(|e| e.to_string())?);
            rs["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "ReplicaFailure")
                .cloned()
                .ok_or_else(|| format!("conditions: {}", rs["status"]["conditions"]))
        }
    })
    .await;
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["reason"], "FailedCreate");
    // The ReplicaSet controller copies the API server's refusal: revhook's message, verbatim.
    assert_eq!(condition["message"], DANGLING_DENIAL);

    // The ReplicaSet has no pods, and none was stored without a sidecar.
    let hash = rs_name.trim_start_matches("web-");
    let pods = web_pods(&c.client).await;
    assert!(
        pods.iter()
            .all(|p| p["metadata"]["labels"]["pod-template-hash"] != hash),
        "no pod of {rs_name} is stored"
    );
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.client.clone(), "shop");
    let failed = eventually("a FailedCreate event", WAIT, || {
        let events = events.clone();
        let rs_name = rs_name.clone();
        async move {
            let list = events
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("FailedCreate")
                        && e.involved_object.name.as_deref() == Some(rs_name.as_str())
                })
                .ok_or_else(|| "no event yet".to_owned())
        }
    })
    .await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert!(
        failed
            .message
            .as_deref()
            .unwrap_or_default()
            .contains(DANGLING_DENIAL),
        "{:?}",
        failed.message
    );

    // `revhook check` against this API server reports the tag that caused it.
    let (code, out) = revhook_check(&c);
    assert_eq!(code, Some(1), "errors found → exit 1:\n{out}");
    assert!(out.contains("prod-stable"), "{out}");
    assert!(out.contains("asm-1-22"), "{out}");
    eprintln!("check:\n{out}");
}

/// A revhook command against this API server (admin kubeconfig, the add-on's namespace):
/// exit code, and standard output followed by standard error.
fn revhook_cli(c: &Cluster, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revhook"))
        .args(args)
        .args(["--istio-namespace", ISTIO_NS])
        .env("KUBECONFIG", &c.cp.kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run revhook");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `revhook check` (live) with the admin kubeconfig: exit code and standard output.
fn revhook_check(c: &Cluster) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revhook"))
        .args(["check", "--istio-namespace", ISTIO_NS, "--platform", "aks"])
        .env("KUBECONFIG", &c.cp.kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run revhook check");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_replicaset_whose_pods_were_refused() {
    let Some(c) = cluster(&[]).await else {
        return;
    };
    let rs_name = upgrade_completed_before_the_tag_moved(&c).await;
    let replicasets: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "shop");
    eventually("ReplicaFailure on the new ReplicaSet", WAIT, || {
        let replicasets = replicasets.clone();
        let rs_name = rs_name.clone();
        async move {
            let rs = value(replicasets.get(&rs_name).await.map_err(|e| e.to_string())?);
            let failing = rs["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "ReplicaFailure");
            failing.then_some(()).ok_or_else(|| "not yet".to_owned())
        }
    })
    .await;
    let (code, out) = revhook_check(&c);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("shop/{rs_name}")) || out.contains(&format!("ReplicaSet {rs_name}")),
        "check names the ReplicaSet that cannot create pods:\n{out}"
    );
    assert!(
        out.contains("FailedCreate") || out.contains("ReplicaFailure"),
        "{out}"
    );
    eprintln!("check:\n{out}");

    // The same rules over a dump of the same cluster give the same findings: the live
    // listing and `--from-file` fill the same objects.
    let dump = dump_cluster(&c).await;
    let dump_arg = dump.display().to_string();
    let live = check_json(&c, &[]);
    let from_dump = check_json(&c, &["--from-file", &dump_arg]);
    assert_eq!(live["findings"], from_dump["findings"]);
    assert_eq!(live["revisions"], from_dump["revisions"]);
    assert_eq!(live["progress"], from_dump["progress"]);
    let findings = live["findings"].as_array().expect("findings");
    let refused = findings
        .iter()
        .find(|f| f["code"] == "REVHOOK-PODS-REFUSED")
        .unwrap_or_else(|| panic!("{live}"));
    assert_eq!(refused["object"], format!("ReplicaSet/shop/{rs_name}"));
    // The denial's own fix (relabel onto the installed revision) is the finding's fix.
    assert_eq!(
        refused["fix"],
        "kubectl label namespace shop istio.io/rev=asm-1-23 --overwrite"
    );
    // asm-1-22's injector ConfigMap is gone but its Service is not: half removed.
    assert!(
        findings
            .iter()
            .any(|f| f["code"] == "REVHOOK-REVISION-HALF-REMOVED"
                && f["object"] == "Revision/asm-1-22"),
        "{live}"
    );
}

/// `revhook check -o json` against this API server with extra arguments (`--from-file` reads
/// a dump instead).
fn check_json(c: &Cluster, extra: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revhook"))
        .args([
            "check",
            "--istio-namespace",
            ISTIO_NS,
            "--platform",
            "aks",
            "-o",
            "json",
        ])
        .args(extra)
        .env("KUBECONFIG", &c.cp.kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run revhook check");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// What `kubectl get namespaces,pods,...,events -A -o json` writes, in the control plane's
/// directory.
async fn dump_cluster(c: &Cluster) -> std::path::PathBuf {
    let path = c.cp.path().join("check-dump.json");
    objects::dump(&c.client, &path).await;
    path
}

/// revhook (started, not synced) registered as shipped; one pod created in namespace shop
/// must be refused by a webhook failure that says why, never admitted by a verdict.
async fn assert_no_verdict_before_sync(cp: &ControlPlane, revhook: &mut Revhook) {
    let client = cp.client().await;
    let (code, body) = revhook.admin_get("/readyz");
    assert_ne!(code, 200, "not ready before the first sync: {body}");
    let webhooks = objects::shipped_webhooks(objects::url_client_config(
        &format!("https://{}", revhook.addr),
        &revhook.tls.ca_bundle(),
    ));
    objects::apply_all(&client, &webhooks).await;
    revhook.wait_for_api_server_calls(&client).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let pod = shop_pod("before-sync");
    let result = pods.create(&PostParams::default(), &pod).await;
    revhook.proc.assert_running();
    match result {
        Ok(stored) => panic!(
            "a pod was stored while revhook knew no revision; its containers: {:?}",
            stored
                .spec
                .map(|s| s.containers.into_iter().map(|c| c.name).collect::<Vec<_>>())
        ),
        Err(e) => {
            let message = api_message(&e);
            // A webhook failure (failurePolicy: Fail refuses), not a verdict about revisions.
            assert!(
                message.contains("failed calling webhook"),
                "an error, not a verdict: {message}"
            );
            assert!(message.contains("sync"), "says why: {message}");
            assert!(!message.contains("installed: none"), "{message}");
        }
    }
}

/// A control plane with the add-on's objects and namespace shop (no Deployment).
async fn control_plane_with_shop() -> Option<ControlPlane> {
    let cp = ControlPlane::start(Options::default()).await?;
    let client = cp.client().await;
    objects::apply_all(&client, &objects::istio_fixture_in(ISTIO_NS)).await;
    objects::apply_all(&client, &web::shop_without_deployment()).await;
    Some(cp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_verdict_before_the_first_sync_api_unreachable() {
    let Some(cp) = control_plane_with_shop().await else {
        return;
    };
    // revhook whose lists never answer (nothing listens on port 1), with the default policy
    // (a missing revision is refused). Seen today: the namespace lookup fails too, the pod is
    // judged "not selected" and stored without a sidecar.
    let mut revhook = Revhook::start(
        "revhook-unreachable",
        cp.path(),
        RevhookOptions {
            args: [
                "--source=cluster",
                "--istio-namespace",
                ISTIO_NS,
                "--kube-api-url=http://127.0.0.1:1",
            ]
            .map(String::from)
            .to_vec(),
            wait_ready: false,
            ..RevhookOptions::default()
        },
    );
    assert_no_verdict_before_sync(&cp, &mut revhook).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_verdict_before_the_first_sync_lists_refused() {
    let Some(cp) = control_plane_with_shop().await else {
        return;
    };
    // A ServiceAccount that may read namespaces and webhooks but not list ConfigMaps: the
    // real API server answers revhook's ConfigMap list 403 for as long as the test runs, so
    // revhook never syncs, while its namespace lookups succeed. With
    // `--on-stale allow-uninjected` a verdict from the empty snapshot stores the pod bare.
    let client = cp.client().await;
    let rbac = objects::yaml_docs(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: revhook-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: revhook-partial, namespace: revhook-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: revhook-partial}
rules:
  - apiGroups: [""]
    resources: ["namespaces"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["admissionregistration.k8s.io"]
    resources: ["mutatingwebhookconfigurations"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: revhook-partial}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: revhook-partial}
subjects: [{kind: ServiceAccount, name: revhook-partial, namespace: revhook-system}]
"#,
    );
    objects::apply_all(&client, &rbac).await;
    let token = objects::service_account_token(&client, "revhook-system", "revhook-partial").await;
    let kubeconfig = cp.kubeconfig_with_token("revhook-partial", &token);
    let mut revhook = Revhook::start(
        "revhook-partial",
        cp.path(),
        RevhookOptions {
            kubeconfig: Some(&kubeconfig),
            args: [
                "--source=cluster",
                "--istio-namespace",
                ISTIO_NS,
                "--on-stale=allow-uninjected",
            ]
            .map(String::from)
            .to_vec(),
            wait_ready: false,
            ..RevhookOptions::default()
        },
    );
    assert_no_verdict_before_sync(&cp, &mut revhook).await;
}

/// A bare pod in namespace shop (prod-stable), created for real.
async fn create_shop_pod(client: &Client, name: &str) -> Result<Value, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let pod = shop_pod(name);
    pods.create(&PostParams::default(), &pod)
        .await
        .map(value)
        .map_err(|e| api_message(&e))
}

/// revhook as the guard overlay runs it on AKS (`--mode=guard`, the overlay's webhook
/// configurations): the add-on's istiod injects, revhook only refuses. Here no istiod answers,
/// as when the add-on's injector is missing.
async fn guard_cluster() -> Option<Cluster> {
    let c = cluster_as(&["--mode=guard"], Shipped::GuardOverlay).await?;
    objects::apply_all(&c.client, &web::shop_without_deployment()).await;
    Some(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_mode_refuses_a_pod_on_a_removed_revision_and_never_injects() {
    let Some(c) = guard_cluster().await else {
        return;
    };
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(c.client.clone(), ISTIO_NS);
    configmaps
        .delete("istio-sidecar-injector-asm-1-22", &Default::default())
        .await
        .expect("remove asm-1-22's injector");
    // (Before revhook sees the removal, the bare probe is refused as uninjected.)
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "shop");
    let probe = shop_pod("probe");
    eventually("guard to see asm-1-22 removed", WAIT, || {
        let (pods, probe) = (pods.clone(), probe.clone());
        async move {
            let pp = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            match pods.create(&pp, &probe).await {
                Err(e) if api_message(&e) == DANGLING_DENIAL => Ok(()),
                Err(e) => Err(api_message(&e)),
                Ok(_) => Err("admitted".to_owned()),
            }
        }
    })
    .await;
    let stored = create_shop_pod(&c.client, "on-removed").await;
    assert_eq!(stored.err().as_deref(), Some(DANGLING_DENIAL));

    // Back on an installed revision: guard admits and changes nothing (istiod's job).
    objects::apply_all(
        &c.client,
        &objects::istio_fixture_in(ISTIO_NS)
            .into_iter()
            .filter(|d| d["metadata"]["name"] == "istio-sidecar-injector-asm-1-22")
            .collect::<Vec<_>>(),
    )
    .await;
    // asm-1-22 is installed again, and no injector of the add-on is registered here: the pod
    // is now refused for what Istio's injector did not do, never injected by revhook.
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "shop");
    let probe = shop_pod("probe");
    let refused = eventually("guard to see asm-1-22 back", WAIT, || {
        let pods = pods.clone();
        let probe = probe.clone();
        async move {
            let pp = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            match pods.create(&pp, &probe).await {
                Ok(_) => Ok(String::from("admitted")),
                Err(e) if api_message(&e) == DANGLING_DENIAL => Err("still stale".to_owned()),
                Err(e) => Ok(api_message(&e)),
            }
        }
    })
    .await;
    assert_eq!(refused, UNINJECTED_DENIAL);
    let log = c.revhook.proc.log_text();
    assert!(log.contains("decision=deny:uninjected"), "{log}");
    assert!(
        !log.contains("decision=inject:"),
        "guard never injects:\n{log}"
    );
}

/// What guard mode answers for a pod of shop (on prod-stable → asm-1-22) that Istio's
/// injector left without its sidecar.
const UNINJECTED_DENIAL: &str = concat!(
    r#"admission webhook "rev.namespace.inject.revhook.dev" denied the request: "#,
    r#"pod was not injected by Istio: namespace "shop" selects istio.io/rev=prod-stable, "#,
    r#"which gives it to revision "asm-1-22" through tag "prod-stable", but it arrived without "#,
    "the istio-proxy sidecar (no istio-proxy container, no sidecar.istio.io/status annotation): ",
    "Istio's injector did not inject it. Check the revision's injector webhooks and their ",
    "caBundle (kubectl get mutatingwebhookconfiguration -l istio.io/rev=asm-1-22 -o yaml) and ",
    "that its istiod is healthy (kubectl get pods -n aks-istio-system -l istio.io/rev=asm-1-22)"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_mode_refuses_a_pod_that_arrives_uninjected() {
    let Some(c) = guard_cluster().await else {
        return;
    };
    // shop selects prod-stable → asm-1-22, an installed revision, but no injector of the
    // add-on ran (none is registered): the pod would start outside the mesh.
    let refused = create_shop_pod(&c.client, "uninjected")
        .await
        .expect_err("a pod Istio should have injected is refused");
    assert_eq!(refused, UNINJECTED_DENIAL);
    // Nothing was stored.
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "shop");
    assert!(pods.get_opt("uninjected").await.expect("get pod").is_none());
    let log = c.revhook.proc.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("decision=deny:uninjected") && l.contains("uninjected")),
        "{log}"
    );
}

/// Istio's tag webhook for prod-stable as `istioctl tag set` writes it (the chart's namespace
/// webhook), named `name` and calling the stub istiod.
fn stub_tag_webhook(name: &str, istiod: &envtest::istiod::StubIstiod) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"istio.io/tag": "prod-stable", "istio.io/rev": "asm-1-22"}},
        "webhooks": [{
            "name": "rev.namespace.sidecar-injector.istio.io",
            "clientConfig": {"url": istiod.url("/inject"), "caBundle": istiod.tls.ca_bundle()},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchExpressions": [
                {"key": "istio.io/rev", "operator": "In", "values": ["prod-stable"]},
                {"key": "istio-injection", "operator": "DoesNotExist"}]},
            "objectSelector": {"matchExpressions": [
                {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}]},
            "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail", "reinvocationPolicy": "Never"
        }]
    })
}

/// A dry-run pod of shop as the API server would store it, or its refusal.
async fn dry_run_shop_pod(client: &Client, pod: &Pod) -> Result<Value, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    pods.create(&pp, pod)
        .await
        .map(value)
        .map_err(|e| api_message(&e))
}

/// The API server calls mutating webhook configurations in the order of their names (what
/// the guard overlay relies on, seen here rather than assumed): Istio's tag configuration
/// `istio-revision-tag-prod-stable` comes before `revhook`, which then sees the injected pod;
/// the same webhook under a name after `revhook` is called too late, and revhook refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_mode_sees_pods_after_istios_injector_in_name_order() {
    let Some(mut c) = guard_cluster().await else {
        return;
    };
    let istiod = envtest::istiod::StubIstiod::start("asm-1-22").await;
    let before = "istio-revision-tag-prod-stable";
    objects::apply(&c.client, &stub_tag_webhook(before, &istiod)).await;
    wait_until_istio_injects(&c.client).await;
    let stored = create_shop_pod(&c.client, "injected-first")
        .await
        .expect("injected by Istio, then admitted by revhook");
    assert_eq!(
        container(&stored, "istio-proxy")["image"],
        envtest::istiod::STUB_PROXY_IMAGE
    );
    let status: Value = serde_json::from_str(
        stored["metadata"]["annotations"]["sidecar.istio.io/status"]
            .as_str()
            .expect("status annotation"),
    )
    .expect("status JSON");
    assert_eq!(status["revision"], "asm-1-22");
    assert_eq!(
        stored["spec"]["containers"]
            .as_array()
            .map(|cs| cs.iter().filter(|c| c["name"] == "istio-proxy").count()),
        Some(1),
        "one sidecar: revhook never injects in guard mode"
    );
    let log = c.revhook.proc.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("injected-first") && l.contains("decision=skip:already-injected")),
        "revhook was called after Istio's injector:\n{log}"
    );

    // The same webhook named after revhook: back to the inject-mode form under the tag's own
    // name, and Istio's injector as `zz-istio-injector`.
    objects::apply(
        &c.client,
        &json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": before}, "webhooks": []}),
    )
    .await;
    let after = "zz-istio-injector";
    // The API server has loaded it once a pod revhook's webhooks do not select (opted out)
    // comes back injected: this stub's selector does not look at the opt-out, as Istio's does.
    let mut stub = stub_tag_webhook(after, &istiod);
    stub["webhooks"][0]["objectSelector"] = json!({});
    objects::apply(&c.client, &stub).await;
    let mut opted_out = shop_pod("opted-out");
    opted_out
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("sidecar.istio.io/inject".into(), "false".into());
    eventually("zz-istio-injector to be called", WAIT, || {
        let (client, pod) = (c.client.clone(), opted_out.clone());
        async move {
            let pod = dry_run_shop_pod(&client, &pod).await?;
            let proxies = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| {
                    c["name"] == "istio-proxy" && c["image"] == envtest::istiod::STUB_PROXY_IMAGE
                })
                .count();
            (proxies == 1)
                .then_some(())
                .ok_or(format!("containers {}", pod["spec"]["containers"]))
        }
    })
    .await;
    let refused = create_shop_pod(&c.client, "injected-too-late")
        .await
        .expect_err("revhook, called before zz-istio-injector, sees the pod bare");
    assert_eq!(refused, UNINJECTED_DENIAL);
    c.revhook.proc.assert_running();
}

// === #15 item 4: `revhook tags` in guard mode never breaks Istio's own injection ===

/// What `istioctl tag set <tag> --revision <rev> -i <ns>` writes, built as istioctl builds it:
/// Istio's chart rendered with the values istioctl passes (revision, the tag, the revision's
/// injection URL and reinvocation policy), then each webhook given the revision's caBundle
/// (and, for a service, its name and path), the revision's labels but `app` merged over the
/// chart's, the operator's labels dropped (a user-managed tag), the revision's annotations.
fn istioctl_tag_objects(
    chart: &(std::path::PathBuf, std::path::PathBuf),
    canonical: &Value,
    tag: &str,
    rev: &str,
) -> (Value, Value) {
    let injector = canonical["webhooks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| {
            w["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("sidecar-injector.istio.io"))
        })
        .expect("the revision's injector webhook");
    let url = injector["clientConfig"]["url"].as_str().unwrap_or_default();
    let mut values = vec![
        format!("revision={rev}"),
        format!("revisionTags[0]={tag}"),
        "sidecarInjectorWebhook.enableNamespacesByDefault=false".to_owned(),
        format!("istiodRemote.injectionURL={url}"),
        format!("global.istioNamespace={ISTIO_NS}"),
    ];
    if let Some(policy) = injector["reinvocationPolicy"].as_str() {
        values.push(format!(
            "sidecarInjectorWebhook.reinvocationPolicy={policy}"
        ));
    }
    let user_managed = |labels: &mut Value| {
        if let Some(map) = labels.as_object_mut() {
            map.retain(|k, _| !k.contains("operator.istio.io"));
        }
    };
    let mut mwc = envtest::istiod::render(chart, ISTIO_NS, &values, "revision-tags-mwc.yaml")
        .pop()
        .expect("tag webhook rendered");
    for hook in mwc["webhooks"].as_array_mut().expect("webhooks") {
        hook["clientConfig"]["caBundle"] = injector["clientConfig"]["caBundle"].clone();
        if hook["clientConfig"]["service"].is_object() {
            hook["clientConfig"]["service"]["path"] =
                injector["clientConfig"]["service"]["path"].clone();
            hook["clientConfig"]["service"]["name"] =
                injector["clientConfig"]["service"]["name"].clone();
        }
    }
    for (k, v) in canonical["metadata"]["labels"].as_object().expect("labels") {
        if k != "app" {
            mwc["metadata"]["labels"][k] = v.clone();
        }
    }
    user_managed(&mut mwc["metadata"]["labels"]);
    if let Some(annotations) = canonical["metadata"]["annotations"].as_object() {
        for (k, v) in annotations {
            mwc["metadata"]["annotations"][k] = v.clone();
        }
    }
    let mut svc = envtest::istiod::render(
        chart,
        ISTIO_NS,
        &[
            format!("revision={rev}"),
            format!("revisionTags[0]={tag}"),
            format!("global.istioNamespace={ISTIO_NS}"),
        ],
        "revision-tags-svc.yaml",
    )
    .pop()
    .expect("tag Service rendered");
    user_managed(&mut svc["metadata"]["labels"]);
    (mwc, svc)
}

/// A revision's injector configuration as Istio's chart installs it in the add-on's namespace,
/// calling `url` (a remote istiod) with `ca_bundle`, or its istiod Service when `url` is None.
fn revision_injector(
    chart: &(std::path::PathBuf, std::path::PathBuf),
    rev: &str,
    url: Option<(&str, &str)>,
) -> Value {
    let mut values = vec![
        format!("revision={rev}"),
        format!("global.istioNamespace={ISTIO_NS}"),
        "sidecarInjectorWebhook.reinvocationPolicy=IfNeeded".to_owned(),
        "sidecarInjectorWebhookAnnotations.example\\.com/owner=mesh-team".to_owned(),
    ];
    if let Some((url, ca)) = url {
        values.push(format!("istiodRemote.injectionURL={url}"));
        values.push(format!("istiodRemote.injectionCABundle={ca}"));
    }
    envtest::istiod::render(chart, ISTIO_NS, &values, "mutatingwebhook.yaml")
        .pop()
        .expect("the revision's injector rendered")
}

/// The stored object as the API server defaulted it, next to `expected` dry-run created under
/// another name (defaulted the same way): the fields istioctl writes, side by side.
async fn stored_and_expected(client: &Client, stored: &Value, expected: &Value) -> (Value, Value) {
    let mut probe = expected.clone();
    let name = format!(
        "{}-expected",
        expected["metadata"]["name"].as_str().expect("name")
    );
    probe["metadata"]["name"] = json!(name);
    let api = objects::api_for(client, &probe).await;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let defaulted = value(
        api.create(&dry_run, &objects::typed(probe))
            .await
            .unwrap_or_else(|e| panic!("dry-run {name}: {}", api_message(&e))),
    );
    let fields = |v: &Value| {
        json!({
            "labels": v["metadata"]["labels"],
            "annotations": v["metadata"]["annotations"],
            "webhooks": v["webhooks"],
            "ports": v["spec"]["ports"],
            "selector": v["spec"]["selector"],
            "type": v["spec"]["type"],
        })
    };
    (fields(stored), fields(&defaulted))
}

async fn get_value(client: &Client, kind_of: &Value, name: &str) -> Option<Value> {
    let api = objects::api_for(client, kind_of).await;
    api.get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("get {name}: {e}"))
        .map(value)
}

/// revhook's MutatingWebhookConfiguration labelled as the guard overlay ships it.
async fn label_revhook_guard(client: &Client) {
    let mwc: Api<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration> =
        Api::all(client.clone());
    mwc.patch(
        "revhook",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"revhook.dev/mode": "guard"}}})),
    )
    .await
    .expect("label revhook's configuration");
}

/// Waits until the API server calls the stub istiod for a pod of shop (its webhook informer
/// has the new tag configuration), with server-side dry runs.
async fn wait_until_istio_injects(client: &Client) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let probe = shop_pod("probe");
    eventually("Istio's injector to be called for shop", WAIT, || {
        let (pods, probe) = (pods.clone(), probe.clone());
        async move {
            let pp = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            let pod = value(
                pods.create(&pp, &probe)
                    .await
                    .map_err(|e| api_message(&e))?,
            );
            let image = container(&pod, "istio-proxy")["image"].clone();
            (image == envtest::istiod::STUB_PROXY_IMAGE)
                .then_some(())
                .ok_or(format!("proxy {image}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_tags_set_writes_what_istioctl_writes_and_istio_keeps_injecting() {
    let Some(chart) = envtest::istiod::helm_and_chart() else {
        return;
    };
    let Some(mut c) = guard_cluster().await else {
        return;
    };
    label_revhook_guard(&c.client).await;
    // asm-1-23's istiod (a stub) behind its injector configuration, by URL; asm-1-22's by
    // its Service, as the chart installs a revision in the cluster.
    let istiod = envtest::istiod::StubIstiod::start("asm-1-23").await;
    let url = istiod.url("/inject/cluster/Kubernetes/net/network1");
    let canonical_23 = revision_injector(&chart, "asm-1-23", Some((&url, &istiod.tls.ca_bundle())));
    let canonical_22 = revision_injector(&chart, "asm-1-22", None);
    objects::apply_all(&c.client, &[canonical_23.clone(), canonical_22.clone()]).await;

    // No --mode: revhook's configuration says guard.
    let (code, out) = revhook_cli(
        &c,
        &[
            "tags",
            "set",
            "prod-stable",
            "--revision",
            "asm-1-23",
            "--overwrite",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("(guard mode)"), "{out}");
    assert!(
        out.contains("replaced MutatingWebhookConfiguration istio-revision-tag-prod-stable "),
        "{out}"
    );

    // Field by field what istioctl writes: the webhook configuration and the Service.
    let (want_mwc, want_svc) =
        istioctl_tag_objects(&chart, &canonical_23, "prod-stable", "asm-1-23");
    let name = want_mwc["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    assert_eq!(name, "istio-revision-tag-prod-stable-aks-istio-system");
    let stored = get_value(&c.client, &want_mwc, &name)
        .await
        .expect("tag webhook written");
    let (got, want) = stored_and_expected(&c.client, &stored, &want_mwc).await;
    assert_eq!(got, want);
    assert_eq!(got["webhooks"][0]["clientConfig"]["url"], json!(url));
    let stored = get_value(&c.client, &want_svc, "istiod-revision-tag-prod-stable")
        .await
        .expect("tag Service written");
    let (got, want) = stored_and_expected(&c.client, &stored, &want_svc).await;
    assert_eq!(got, want);
    assert!(
        get_value(&c.client, &want_mwc, "istio-revision-tag-prod-stable")
            .await
            .is_none(),
        "the tag under its old name would keep calling asm-1-22's injector"
    );

    // The service form, copied from asm-1-22's injector.
    let (code, out) = revhook_cli(
        &c,
        &[
            "tags",
            "set",
            "prod-canary",
            "--revision",
            "asm-1-22",
            "--overwrite",
            "--mode",
            "guard",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let (want_mwc, _) = istioctl_tag_objects(&chart, &canonical_22, "prod-canary", "asm-1-22");
    let name = want_mwc["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let stored = get_value(&c.client, &want_mwc, &name)
        .await
        .expect("tag webhook written");
    let (got, want) = stored_and_expected(&c.client, &stored, &want_mwc).await;
    assert_eq!(got, want);
    assert_eq!(
        got["webhooks"][1]["clientConfig"]["service"]["name"],
        "istiod-asm-1-22"
    );

    // shop selects prod-stable: the API server calls asm-1-23's istiod through the tag, and
    // revhook (guard) admits the injected pod untouched.
    wait_until_istio_injects(&c.client).await;
    let pod = create_shop_pod(&c.client, "through-the-tag")
        .await
        .expect("an injected pod is admitted");
    assert_eq!(
        container(&pod, "istio-proxy")["image"],
        envtest::istiod::STUB_PROXY_IMAGE
    );
    assert!(
        istiod
            .calls()
            .iter()
            .any(|p| p == "/inject/cluster/Kubernetes/net/network1"),
        "{:?}",
        istiod.calls()
    );
    c.revhook.proc.assert_running();

    tags_remove_says_what_it_breaks_and_asks(&c, &want_svc).await;
}

/// `revhook tags remove` through a pseudo-terminal (`script`), answering `answer`.
fn revhook_on_terminal(c: &Cluster, args: &[&str], answer: &str) -> (Option<i32>, String) {
    use std::io::Write as _;
    let command = std::iter::once(env!("CARGO_BIN_EXE_revhook"))
        .chain(args.iter().copied())
        .chain(["--istio-namespace", ISTIO_NS])
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("KUBECONFIG", &c.cp.kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs revhook on a pseudo-terminal");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(answer.as_bytes())
        .expect("answer");
    let out = child.wait_with_output().expect("script");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn tags_remove_says_what_it_breaks_and_asks(c: &Cluster, svc: &Value) {
    let tag_mwc = "istio-revision-tag-prod-stable-aks-istio-system";
    let kind_of_mwc = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {}});
    let still_there = |what: &str| {
        let what = what.to_owned();
        let kind_of_mwc = kind_of_mwc.clone();
        async move {
            let mwc = get_value(&c.client, &kind_of_mwc, tag_mwc).await.is_some();
            let service = get_value(&c.client, svc, "istiod-revision-tag-prod-stable")
                .await
                .is_some();
            assert_eq!((mwc, service), (true, true), "{what}");
        }
    };
    // A script without --yes: nothing is removed.
    let (code, out) = revhook_cli(c, &["tags", "remove", "prod-stable"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("namespaces selecting the tag: shop"), "{out}");
    assert!(out.contains("pods on it: 1"), "{out}");
    assert!(
        out.contains(&format!("MutatingWebhookConfiguration {tag_mwc}")),
        "{out}"
    );
    assert!(
        out.contains("Service aks-istio-system/istiod-revision-tag-prod-stable"),
        "{out}"
    );
    assert!(out.contains("pass --yes"), "{out}");
    still_there("no terminal, no --yes").await;

    // On a terminal: asked, and "n" keeps it.
    let (code, out) = revhook_on_terminal(c, &["tags", "remove", "prod-stable"], "n\n");
    assert!(out.contains("remove tag prod-stable? [y/N]"), "{out}");
    assert!(out.contains("nothing was changed"), "{code:?} {out}");
    still_there("answered n").await;

    // "y" removes the webhook configuration and the Service.
    let (code, out) = revhook_on_terminal(c, &["tags", "remove", "prod-stable"], "y\n");
    assert!(out.contains("tag prod-stable removed"), "{code:?} {out}");
    assert!(get_value(&c.client, &kind_of_mwc, tag_mwc).await.is_none());
    assert!(get_value(&c.client, svc, "istiod-revision-tag-prod-stable")
        .await
        .is_none());

    // --yes for scripts.
    let (code, out) = revhook_cli(c, &["tags", "remove", "prod-canary", "--yes"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = revhook_cli(c, &["tags", "remove", "prod-canary", "--yes"]);
    assert_ne!(code, Some(0), "gone: {out}");
    assert!(out.contains("does not exist"), "{out}");
}
