//! The upgrade guides' flows against a real kube-apiserver (and controller manager), with the
//! commands users run: `kubectl apply --server-side -k` of each shipped overlay (flow 6),
//! `revhook check` on the live cluster and on a `kubectl get -o json` dump of it, a blanked
//! caBundle reported and repaired (flow 3), and `revhook tags` and `check` as the CLI in inject
//! and guard mode (flow 7). Each step asserts the stored objects and the messages users see.

mod envtest;
mod render;

use std::path::{Path, PathBuf};
use std::time::Duration;

use envtest::objects::{self, api_message, value};
use envtest::web;
use envtest::{eventually, ControlPlane, NetNs, Options, Revhook, RevhookOptions};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

// === Running the CLIs ===

/// What a command printed and how it ended.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn of(out: std::process::Output) -> Ran {
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(self, what: &str) -> Ran {
        assert_eq!(
            self.code,
            Some(0),
            "{what}:\n{}\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// `kubectl ARGS` against the test's API server, with its discovery cache in the test's
/// directory (a CRD installed a moment ago is then known).
fn kubectl(kubectl: &Path, cp: &ControlPlane, args: &[&str]) -> Ran {
    let out = std::process::Command::new(kubectl)
        .args(args)
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .arg("--cache-dir")
        .arg(cp.path().join("kubectl-cache"))
        .output()
        .expect("run kubectl");
    Ran::of(out)
}

/// `revhook ARGS` (the built binary) with the admin kubeconfig.
fn run_revhook(cp: &ControlPlane, args: &[&str]) -> Ran {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revhook"))
        .args(args)
        .env("KUBECONFIG", &cp.kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run revhook");
    Ran::of(out)
}

// === Stored as rendered ===

/// Every field of `rendered` is in `stored` with the same value (the API server adds defaults,
/// status and metadata of its own; it must not drop or change a field it was given).
fn assert_stored_as_rendered(stored: &Value, rendered: &Value, at: &str) {
    match (rendered, stored) {
        (Value::Object(want), Value::Object(got)) => {
            for (key, want) in want {
                let here = format!("{at}.{key}");
                match got.get(key) {
                    Some(got) => assert_stored_as_rendered(got, want, &here),
                    // `caBundle: ''` is an empty byte string: Go omits it when it stores it.
                    None if key == "caBundle" && want == "" => {}
                    None => panic!("{here}: rendered {want}, not stored"),
                }
            }
        }
        (Value::Array(want), Value::Array(got)) => {
            assert_eq!(got.len(), want.len(), "{at}: {got:?} stored for {want:?}");
            for (i, (got, want)) in got.iter().zip(want).enumerate() {
                assert_stored_as_rendered(got, want, &format!("{at}[{i}]"));
            }
        }
        (want, got) => assert_eq!(got, want, "{at}"),
    }
}

/// The shipped overlays: each directory of `manifests/overlays` with a kustomization.
fn overlays() -> Vec<PathBuf> {
    let root = objects::repo_path("manifests/overlays");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("kustomization.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// The smallest CustomResourceDefinition that makes the API server serve `kind` (any content
/// accepted): what the cert-manager overlay needs installed before it, without cert-manager.
fn crd_stub(group: &str, kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "names": {"kind": kind, "listKind": format!("{kind}List"), "plural": plural,
                      "singular": kind.to_ascii_lowercase()},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                     "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

async fn wait_established(client: &Client, name: &str) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    eventually(&format!("CRD {name} established"), WAIT, || {
        let crds = crds.clone();
        async move {
            let crd = crds.get(name).await.map_err(|e| e.to_string())?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(()).ok_or("not yet".to_owned())
        }
    })
    .await;
}

/// Flow 6: `kubectl apply --server-side -k` of each overlay, as its README comment says to
/// install it, after what it needs (Istio's namespaces; cert-manager's CRDs, as stubs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_overlay_applies_server_side_and_is_stored_as_rendered() {
    let Some(tool) = render::kustomize_tool() else {
        return;
    };
    let Some(kubectl_bin) = envtest::kubectl() else {
        return;
    };
    let Some(cp) = ControlPlane::start(Options::default()).await else {
        return;
    };
    let admin = cp.client().await;
    for ns in ["istio-system", "aks-istio-system"] {
        objects::apply(
            &admin,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await;
    }
    for (kind, plural) in [("Certificate", "certificates"), ("Issuer", "issuers")] {
        objects::apply(&admin, &crd_stub("cert-manager.io", kind, plural)).await;
        wait_established(&admin, &format!("{plural}.cert-manager.io")).await;
    }

    let overlays = overlays();
    let names: Vec<&str> = overlays
        .iter()
        .filter_map(|p| p.file_name()?.to_str())
        .collect();
    // Each directory is a case; the three the READMEs document must be among them.
    for documented in ["cert-manager", "guard", "self-managed"] {
        assert!(names.contains(&documented), "{documented} in {names:?}");
    }
    // One after the other on the same cluster, as a user switching overlays would: kubectl's
    // field manager owns every field, so each apply leaves exactly its own rendering.
    for dir in &overlays {
        let name = dir.file_name().and_then(|n| n.to_str()).expect("name");
        let rendered = render::kustomize(&tool, dir);
        let dir_arg = dir.to_str().expect("path");
        let ran = kubectl(
            &kubectl_bin,
            &cp,
            &["apply", "--server-side", "-k", dir_arg],
        )
        .ok(&format!("kubectl apply --server-side -k {name}"));
        // One line per object, each applied.
        let lines: Vec<&str> = ran.stdout.lines().collect();
        assert_eq!(lines.len(), rendered.len(), "{name}:\n{}", ran.stdout);
        assert!(
            lines.iter().all(|l| l.ends_with(" serverside-applied")),
            "{name}:\n{}",
            ran.stdout
        );
        assert!(ran.stderr.is_empty(), "{name}: {}", ran.stderr);
        for doc in &rendered {
            let id = render::id(doc);
            let api = objects::api_for(&admin, doc).await;
            let stored = api
                .get(doc["metadata"]["name"].as_str().expect("name"))
                .await
                .unwrap_or_else(|e| panic!("{name}: {id} not stored: {e}"));
            let stored = value(stored);
            assert_stored_as_rendered(&stored, doc, &format!("{name}: {id}"));
            assert!(
                lines.iter().any(|l| l.starts_with(&format!(
                    "{}/{} ",
                    kubectl_kind(doc),
                    doc["metadata"]["name"].as_str().expect("name")
                ))),
                "{name}: kubectl did not report {id}:\n{}",
                ran.stdout
            );
        }
        eprintln!("{name}: {} objects stored as rendered", rendered.len());
    }
}

/// How kubectl names an object's kind in its output (`deployment.apps`, `namespace`...).
fn kubectl_kind(doc: &Value) -> String {
    let kind = doc["kind"].as_str().expect("kind").to_ascii_lowercase();
    let api_version = doc["apiVersion"].as_str().expect("apiVersion");
    match api_version.split_once('/') {
        Some((group, _)) => format!("{kind}.{group}"),
        None => kind,
    }
}

// === Flow 3: `check` live and on a dump; a blank caBundle reported, then repaired ===

/// The serving certificate of revhook behind its Service (names the API server verifies).
fn revhook_tls() -> envtest::Tls {
    envtest::Tls::generate(
        "revhook",
        &[
            "revhook.revhook-system.svc",
            "revhook.revhook-system.svc.cluster.local",
        ],
    )
}

/// revhook as the self-managed overlay runs it, inside `netns` (`extra`: more flags).
fn start_revhook_in(
    cp: &ControlPlane,
    netns: &NetNs,
    kubeconfig: &Path,
    name: &str,
    tls: &envtest::Tls,
    extra: &[String],
) -> Revhook {
    let mut args: Vec<String> = ["--source=cluster", "--istio-namespace=istio-system"]
        .map(String::from)
        .to_vec();
    args.extend_from_slice(extra);
    Revhook::start(
        name,
        cp.path(),
        RevhookOptions {
            kubeconfig: Some(kubeconfig),
            args,
            wait_ready: true,
            tls: Some(tls.clone()),
            netns: Some(netns),
        },
    )
}

/// Objects that each make `check` say something, written before revhook's webhooks exist
/// (they would refuse most of them): a namespace on a removed revision, one with both
/// injection labels, a tag on a missing revision, a leftover validating webhook of a removed
/// revision, and a pod of shop started without its sidecar.
async fn seed_problems(client: &Client) {
    let docs = objects::yaml_docs(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: retired, labels: {istio.io/rev: asm-1-20}}
---
apiVersion: v1
kind: Namespace
metadata: {name: mixed, labels: {istio.io/rev: prod-canary, istio-injection: enabled}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: istio-revision-tag-prod-old
  labels: {istio.io/tag: prod-old, istio.io/rev: asm-1-21}
webhooks: []
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: istio-validator-asm-1-20-istio-system
  labels: {istio.io/rev: asm-1-20}
webhooks: []
---
apiVersion: v1
kind: Pod
metadata: {name: bare, namespace: shop, labels: {app: bare}}
spec:
  serviceAccountName: web
  containers: [{name: app, image: registry.example.com/shop/bare:1.0.0}]
"#,
    );
    objects::apply_all(client, &docs).await;
}

/// `revhook check -o json` (live, or `--from-file` when `dump` is given).
fn check_json(cp: &ControlPlane, dump: Option<&Path>, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["check", "-o", "json"];
    let dump_arg;
    if let Some(dump) = dump {
        dump_arg = dump.display().to_string();
        args.extend(["--from-file", dump_arg.as_str()]);
    }
    args.extend_from_slice(extra);
    let ran = run_revhook(cp, &args);
    let report = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("check -o json: {e}:\n{}\n{}", ran.stdout, ran.stderr));
    (ran.code, report)
}

/// The README's dump, made by running its commands as they are written (bash, kubectl with
/// `KUBECONFIG` pointing at this cluster), for `check --from-file`.
fn readme_dump(kubectl_bin: &Path, cp: &ControlPlane, name: &str) -> PathBuf {
    let readme = std::fs::read_to_string(objects::repo_path("README.md")).expect("README");
    let block: String = readme
        .split("```sh\n")
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("> dump.yaml"))
        .expect("the README's dump commands")
        .to_owned();
    let dir = cp.path().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path_env = format!(
        "{}:{}",
        kubectl_bin.parent().expect("kubectl's directory").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block])
        .current_dir(&dir)
        .env("PATH", path_env)
        .env("KUBECONFIG", &cp.kubeconfig)
        .env("KUBECACHEDIR", cp.path().join("kubectl-cache"))
        .output()
        .expect("bash");
    let ran = Ran::of(out).ok(&block);
    assert!(ran.stderr.is_empty(), "{block}: {}", ran.stderr);
    dir.join("dump.yaml")
}

/// `check` on the live cluster and on the README's dump of it: the same report, finding by
/// finding (then the per-revision summary and the migration progress).
fn assert_live_and_dump_agree(
    kubectl_bin: &Path,
    cp: &ControlPlane,
    name: &str,
    args: &[&str],
) -> Value {
    let dump = readme_dump(kubectl_bin, cp, name);
    let (live_code, live) = check_json(cp, None, args);
    let (dump_code, from_dump) = check_json(cp, Some(&dump), args);
    let (a, b) = (
        live["findings"].as_array().expect("findings"),
        from_dump["findings"].as_array().expect("findings"),
    );
    for (i, (l, d)) in a.iter().zip(b).enumerate() {
        assert_eq!(
            l, d,
            "{name}: finding {i}, live (left) and from the dump (right)"
        );
    }
    assert_eq!(
        a.len(),
        b.len(),
        "{name}: live {a:#?}\nfrom the dump {b:#?}"
    );
    assert_eq!(live["revisions"], from_dump["revisions"], "{name}");
    assert_eq!(live["progress"], from_dump["progress"], "{name}");
    assert_eq!(live_code, dump_code, "{name}: exit codes");
    live
}

fn findings_with<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == code)
        .collect()
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["code"].as_str().unwrap_or("?"),
                f["object"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// A pod of shop through a server-side dry run (the webhooks are called, nothing is stored).
async fn dry_run_shop_pod(client: &Client) -> Result<Value, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let pod: Pod = objects::typed(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "probe", "labels": {"app": "probe"}},
        "spec": {"serviceAccountName": "web", "containers": [{"name": "app", "image": "app"}]}
    }));
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    pods.create(&dry_run, &pod)
        .await
        .map(value)
        .map_err(|e| api_message(&e))
}

fn proxy_image(pod: &Value) -> Option<&str> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "istio-proxy")?["image"]
        .as_str()
}

/// `check`'s arguments for each cluster: Istio in istio-system, or the AKS add-on.
const ISTIO: &[&str] = &["--istio-namespace", "istio-system"];
const AKS: &[&str] = &["--istio-namespace", "aks-istio-system", "--platform", "aks"];

const ASM_1_22_PROXY: &str = "mcr.microsoft.com/oss/istio/proxyv2:1.22.3-distroless";

/// The ReplicaSet of Deployment shop/web and its `ReplicaFailure` condition, once it has one.
async fn web_replicaset_failure(client: &Client) -> (String, Value) {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), "shop");
    eventually(
        "a ReplicaFailure condition on web's ReplicaSet",
        WAIT,
        || {
            let replicasets = replicasets.clone();
            async move {
                let list = replicasets
                    .list(&kube::api::ListParams::default().labels("app=web"))
                    .await
                    .map_err(|e| e.to_string())?;
                for rs in list.items.into_iter().map(value) {
                    let failure = rs["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|c| c["type"] == "ReplicaFailure")
                        .cloned();
                    if let Some(condition) = failure {
                        let name = rs["metadata"]["name"].as_str().unwrap_or_default();
                        return Ok((name.to_owned(), condition));
                    }
                }
                Err("no condition yet".to_owned())
            }
        },
    )
    .await
}

/// The Cloud Service Mesh troubleshooting guide: someone re-applies the manifests and blanks
/// revhook's caBundle while revhook runs without `--manage-ca-bundle`. Pods are refused with
/// the API server's x509 error, the ReplicaSet says FailedCreate, and `check` names both the
/// blank caBundle and the refused ReplicaSet, live and from a dump alike; revhook restarted
/// with `--manage-ca-bundle` (the self-managed overlay) writes the CA back, the ReplicaSet's
/// retry creates the pod with its sidecar, and `check` no longer reports either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blank_ca_bundle_is_reported_and_repaired_and_check_agrees_with_a_dump() {
    let Some(kubectl_bin) = envtest::kubectl() else {
        return;
    };
    let Some(cp) = ControlPlane::start(Options {
        controller_manager: true,
    })
    .await
    else {
        return;
    };
    let Some(netns) = NetNs::create() else {
        return;
    };
    let admin = cp.client().await;
    let tls = revhook_tls();
    objects::apply_all(&admin, &objects::revhook_namespace_and_service()).await;
    objects::apply(&admin, &objects::revhook_endpoints(&[netns.inner_ip], &[])).await;
    objects::apply(&admin, &objects::revhook_tls_secret(&tls)).await;
    objects::apply_all(&admin, &objects::istio_fixture_in("istio-system")).await;
    let shop = objects::yaml_file("tests/fixtures/kube/shop.yaml");
    let (deployment, rest): (Vec<Value>, Vec<Value>) =
        shop.into_iter().partition(|d| d["kind"] == "Deployment");
    objects::apply_all(&admin, &rest).await;
    seed_problems(&admin).await;

    // revhook runs (without --manage-ca-bundle); the shipped webhook configurations are
    // applied as the kustomize base has them: service references and `caBundle: ''`.
    let kubeconfig = cp.kubeconfig_in(&netns, "revhook-in-netns");
    let mut revhook = start_revhook_in(&cp, &netns, &kubeconfig, "revhook-1", &tls, &[]);
    objects::apply_all(
        &admin,
        &objects::shipped_webhooks(objects::service_client_config("")),
    )
    .await;
    let refused = eventually("the API server to call revhook without a CA", WAIT, || {
        let admin = admin.clone();
        async move {
            match dry_run_shop_pod(&admin).await {
                Err(m) if m.contains("x509") => Ok(m),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert!(
        refused.starts_with(r#"Internal error occurred: failed calling webhook "rev.namespace.inject.revhook.dev": failed to call webhook: Post "https://revhook.revhook-system.svc:443/inject?timeout=10s": "#),
        "{refused}"
    );
    assert!(
        refused.ends_with("x509: certificate signed by unknown authority"),
        "{refused}"
    );

    // The Deployment's pod is refused: its ReplicaSet says so.
    objects::apply_all(&admin, &deployment).await;
    let (rs, condition) = web_replicaset_failure(&admin).await;
    assert_eq!(condition["reason"], "FailedCreate");
    assert!(
        condition["message"]
            .as_str()
            .is_some_and(|m| m.contains("x509: certificate signed by unknown authority")),
        "{condition}"
    );

    // `check` while the caBundle is blank: both configurations, and the refused ReplicaSet
    // with the guide's fix for an unknown authority; the dump agrees.
    let report = assert_live_and_dump_agree(&kubectl_bin, &cp, "dump-blank.yaml", ISTIO);
    let blank = findings_with(&report, "REVHOOK-CA-BUNDLE");
    let objects_blank: Vec<&str> = blank.iter().filter_map(|f| f["object"].as_str()).collect();
    assert_eq!(
        objects_blank,
        [
            "MutatingWebhookConfiguration/revhook",
            "ValidatingWebhookConfiguration/revhook"
        ],
        "{report:#}"
    );
    assert_eq!(blank[0]["severity"], "error");
    assert_eq!(blank[0]["istio_code"], "IST0139");
    assert_eq!(
        blank[0]["message"],
        "webhooks namespace.inject.revhook.dev, rev.namespace.inject.revhook.dev, rev.object.inject.revhook.dev, object.inject.revhook.dev: empty caBundle: the API server cannot call it"
    );
    assert_eq!(
        blank[0]["fix"],
        "run revhook with --manage-ca-bundle, or re-inject the CA (cert-manager's inject-ca-from)"
    );
    let refused = findings_with(&report, "REVHOOK-PODS-REFUSED");
    assert_eq!(refused.len(), 1, "{report:#}");
    assert_eq!(refused[0]["object"], format!("ReplicaSet/shop/{rs}"));
    assert!(
        refused[0]["fix"]
            .as_str()
            .is_some_and(|f| f.starts_with("the webhook's caBundle does not match its serving certificate: re-inject the CA (revhook --manage-ca-bundle")),
        "{}",
        refused[0]
    );
    // The problems seeded before revhook's webhooks existed, each reported.
    let all = codes(&report);
    for want in [
        "REVHOOK-STALE-NAMESPACE Namespace/retired",
        "REVHOOK-CONFLICT Namespace/mixed",
        "REVHOOK-TAG-DANGLING Tag/prod-old",
        "REVHOOK-LEFTOVER-WEBHOOK ValidatingWebhookConfiguration/istio-validator-asm-1-20-istio-system",
        "REVHOOK-POD-NO-SIDECAR Pod/shop/bare",
    ] {
        assert!(all.iter().any(|c| c == want), "{want} in {all:#?}");
    }
    // And the table users read says it the same way.
    let table = run_revhook(&cp, &["check", "--istio-namespace", "istio-system"]);
    assert_eq!(table.code, Some(1), "{}", table.stdout);
    assert!(
        table.stdout.contains("REVHOOK-CA-BUNDLE")
            && table
                .stdout
                .contains("fix: run revhook with --manage-ca-bundle"),
        "{}",
        table.stdout
    );

    // The repair: revhook restarted as the self-managed overlay runs it.
    revhook.proc.terminate();
    revhook
        .proc
        .wait_exit(WAIT)
        .expect("revhook exits on SIGTERM");
    let ca_cert = Revhook::ca_path(cp.path(), "revhook-2");
    let _revhook = start_revhook_in(
        &cp,
        &netns,
        &kubeconfig,
        "revhook-2",
        &tls,
        &[
            "--manage-ca-bundle".into(),
            format!("--ca-cert={}", ca_cert.display()),
        ],
    );
    eventually("revhook to write its caBundle", WAIT, || {
        let admin = admin.clone();
        let ca = tls.ca_pem.clone();
        async move {
            let bundles = objects::revhook_ca_bundles(&admin).await;
            let wrong: Vec<&String> = bundles
                .iter()
                .filter(|(_, b)| b != ca.as_bytes())
                .map(|(n, _)| n)
                .collect();
            (bundles.len() == 7 && wrong.is_empty())
                .then_some(())
                .ok_or(format!("not the CA on {wrong:?}"))
        }
    })
    .await;
    // The ReplicaSet controller retries on its own: the pod is created, with its sidecar.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "shop");
    let pod = eventually("the ReplicaSet to create web's pod", WAIT, || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&kube::api::ListParams::default().labels("app=web"))
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .next()
                .map(value)
                .ok_or("no pod yet".to_owned())
        }
    })
    .await;
    assert_eq!(proxy_image(&pod), Some(ASM_1_22_PROXY), "{pod:#}");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["name"], rs.as_str());

    let report = eventually("check to see the repair", WAIT, || {
        let (_, report) = check_json(&cp, None, ISTIO);
        async move {
            let left: Vec<String> = codes(&report)
                .into_iter()
                .filter(|c| {
                    c.starts_with("REVHOOK-CA-BUNDLE") || c.starts_with("REVHOOK-PODS-REFUSED")
                })
                .collect();
            left.is_empty().then_some(report).ok_or(format!("{left:?}"))
        }
    })
    .await;
    let repaired = assert_live_and_dump_agree(&kubectl_bin, &cp, "dump-repaired.yaml", ISTIO);
    assert_eq!(codes(&repaired), codes(&report));
    // What was seeded is still said; only the repaired problems are gone.
    for want in [
        "REVHOOK-STALE-NAMESPACE Namespace/retired",
        "REVHOOK-CONFLICT Namespace/mixed",
    ] {
        assert!(codes(&repaired).iter().any(|c| c == want), "{want}");
    }
    eprintln!("check after the repair: {:#?}", codes(&repaired));
}

// === Flow 7: `revhook tags` and `check` as the CLI, in inject and in guard mode ===

const AKS_NS: &str = "aks-istio-system";
const ASM_1_23_PROXY: &str = "mcr.microsoft.com/oss/istio/proxyv2:1.23.0-distroless";

/// `revhook ARGS --istio-namespace aks-istio-system`.
fn revhook_aks(cp: &ControlPlane, args: &[&str]) -> Ran {
    let mut all = args.to_vec();
    all.extend(["--istio-namespace", AKS_NS]);
    run_revhook(cp, &all)
}

/// revhook in `mode` for the add-on's namespace, inside `netns` behind its Service (as
/// installed in a cluster), its shipped webhook configurations labelled with the mode as the
/// overlays label them; returns once the API server calls it.
async fn serve_in_mode(
    cp: &ControlPlane,
    client: &Client,
    netns: &NetNs,
    tls: &envtest::Tls,
    mode: &str,
) -> Revhook {
    let kubeconfig = cp.kubeconfig_in(netns, &format!("revhook-{mode}"));
    let mut revhook = Revhook::start(
        &format!("revhook-{mode}"),
        cp.path(),
        RevhookOptions {
            kubeconfig: Some(&kubeconfig),
            args: vec![
                "--source=cluster".into(),
                format!("--istio-namespace={AKS_NS}"),
                format!("--mode={mode}"),
            ],
            wait_ready: true,
            tls: Some(tls.clone()),
            netns: Some(netns),
        },
    );
    let mut webhooks = objects::shipped_webhooks(objects::service_client_config(&tls.ca_bundle()));
    for doc in &mut webhooks {
        if doc["kind"] == "MutatingWebhookConfiguration" {
            doc["metadata"]["labels"]["revhook.dev/mode"] = json!(mode);
        }
    }
    objects::apply_all(client, &webhooks).await;
    revhook.wait_for_api_server_calls(client).await;
    revhook
}

async fn get_opt(
    client: &Client,
    api_version: &str,
    kind: &str,
    ns: Option<&str>,
    name: &str,
) -> Option<Value> {
    let mut probe = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if let Some(ns) = ns {
        probe["metadata"]["namespace"] = json!(ns);
    }
    objects::api_for(client, &probe)
        .await
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("get {kind} {name}: {e}"))
        .map(value)
}

async fn tag_webhook(client: &Client, name: &str) -> Option<Value> {
    get_opt(
        client,
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        None,
        name,
    )
    .await
}

/// A namespace `payments` on `prod-next`, with a ServiceAccount; created once revhook (which
/// refuses a namespace on a tag it does not know) has seen the tag.
async fn payments_on_prod_next(client: &Client) {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "payments", "labels": {"istio.io/rev": "prod-next"}}});
    eventually(
        "namespace payments on prod-next to be admitted",
        WAIT,
        || {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                objects::try_apply(&client, &ns)
                    .await
                    .map(|_| ())
                    .map_err(|e| api_message(&e))
            }
        },
    )
    .await;
    objects::apply(
        client,
        &json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "pay", "namespace": "payments"}}),
    )
    .await;
}

async fn create_payments_pod(client: &Client, name: &str) -> Result<Value, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "payments");
    let pod: Pod = objects::typed(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "pay"}},
        "spec": {"serviceAccountName": "pay", "containers": [{"name": "pay", "image": "registry.example.com/pay:2"}]}
    }));
    pods.create(&PostParams::default(), &pod)
        .await
        .map(value)
        .map_err(|e| api_message(&e))
}

/// The tag commands users run during an upgrade, as the binary, against the real API
/// server: in inject mode (revhook injects, tags are `webhooks: []` objects) and in guard mode
/// (Istio injects, tags are what `istioctl tag set` writes), with `check` after each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_check_as_the_cli_in_inject_and_guard_mode() {
    let Some(kubectl_bin) = envtest::kubectl() else {
        return;
    };
    let Some(chart) = envtest::istiod::helm_and_chart() else {
        return;
    };
    let Some(cp) = ControlPlane::start(Options::default()).await else {
        return;
    };
    let client = cp.client().await;
    objects::apply_all(&client, &objects::istio_fixture_in(AKS_NS)).await;
    objects::apply_all(&client, &web::shop_without_deployment()).await;
    let Some(netns) = NetNs::create() else {
        return;
    };
    // Installed as the READMEs say: its namespace, Service (Endpoints: the replica in the
    // network namespace) and serving Secret.
    let tls = revhook_tls();
    objects::apply_all(&client, &objects::revhook_namespace_and_service()).await;
    objects::apply(&client, &objects::revhook_endpoints(&[netns.inner_ip], &[])).await;
    objects::apply(&client, &objects::revhook_tls_secret(&tls)).await;
    let mut revhook = serve_in_mode(&cp, &client, &netns, &tls, "inject").await;

    // --- inject mode ---
    let list = revhook_aks(&cp, &["tags", "list"]).ok("tags list");
    assert_eq!(
        list.stdout,
        concat!(
            "TAG                  REVISION             NAMESPACES\n",
            "prod-canary          asm-1-23             -\n",
            "prod-stable          asm-1-22             shop\n",
        )
    );
    // Refusals name the reason and change nothing.
    for (args, message) in [
        (
            &["tags", "set", "prod-stable", "--revision", "asm-1-23"][..],
            r#"tag "prod-stable" already points at "asm-1-22"; pass --overwrite to move it"#,
        ),
        (
            &["tags", "set", "prod-next", "--revision", "asm-1-99"][..],
            r#"revision "asm-1-99" is not installed (installed: asm-1-22, asm-1-23); tag "prod-next" was not changed"#,
        ),
        (
            &[
                "tags",
                "set",
                "asm-1-22",
                "--revision",
                "asm-1-23",
                "--overwrite",
            ][..],
            r#""asm-1-22" is the name of a revision; a tag may not shadow a revision"#,
        ),
    ] {
        let ran = revhook_aks(&cp, args);
        assert_ne!(ran.code, Some(0), "{args:?}: {}", ran.stdout);
        assert!(ran.stderr.contains(message), "{args:?}: {}", ran.stderr);
        assert!(ran.stdout.is_empty(), "{args:?}: {}", ran.stdout);
    }
    let stable = tag_webhook(&client, "istio-revision-tag-prod-stable")
        .await
        .expect("prod-stable");
    assert_eq!(stable["metadata"]["labels"]["istio.io/rev"], "asm-1-22");
    assert!(tag_webhook(&client, "istio-revision-tag-prod-next")
        .await
        .is_none());

    // A new tag, in inject mode: an object only revhook acts on.
    let set = revhook_aks(
        &cp,
        &[
            "tags",
            "set",
            "prod-next",
            "--revision",
            "asm-1-23",
            "--mode",
            "inject",
        ],
    )
    .ok("tags set prod-next");
    assert_eq!(
        set.stdout,
        "tag prod-next -> asm-1-23 (inject mode); restart workloads to move running pods (revhook tags plan shows which)\n"
    );
    let next = tag_webhook(&client, "istio-revision-tag-prod-next")
        .await
        .expect("tag written");
    assert_eq!(
        next["metadata"]["labels"],
        json!({"istio.io/tag": "prod-next", "istio.io/rev": "asm-1-23", "app.kubernetes.io/managed-by": "revhook"})
    );
    assert!(
        next["webhooks"].as_array().is_none_or(Vec::is_empty),
        "nothing but revhook acts on it: {next:#}"
    );
    payments_on_prod_next(&client).await;
    let pod = create_payments_pod(&client, "pay-1")
        .await
        .expect("a pod on the new tag");
    assert_eq!(proxy_image(&pod), Some(ASM_1_23_PROXY));
    let list = revhook_aks(&cp, &["tags", "list"]).ok("tags list");
    assert!(
        list.stdout
            .contains("prod-next            asm-1-23             payments\n"),
        "{}",
        list.stdout
    );
    let plan = revhook_aks(
        &cp,
        &["tags", "plan", "prod-next", "--revision", "asm-1-22"],
    )
    .ok("tags plan");
    assert_eq!(
        plan.stdout,
        format!(
            "tag prod-next: asm-1-23 -> asm-1-22\nimage: {ASM_1_23_PROXY} -> {ASM_1_22_PROXY}\n\
             namespaces selecting the tag: payments\npods on another proxy image afterwards: 1\n\
             \x20 kubectl delete pod pay-1 -n payments\nnothing was changed\n"
        )
    );
    let next_after_plan = tag_webhook(&client, "istio-revision-tag-prod-next")
        .await
        .expect("tag");
    assert_eq!(
        next_after_plan["metadata"]["labels"]["istio.io/rev"],
        "asm-1-23"
    );

    // `tags remove` says what it breaks, and without a terminal removes only with --yes.
    let asked = revhook_aks(&cp, &["tags", "remove", "prod-next"]);
    assert_ne!(asked.code, Some(0), "{}", asked.stderr);
    for line in [
        "tag prod-next -> asm-1-23\n",
        "will delete: MutatingWebhookConfiguration istio-revision-tag-prod-next\n",
        "namespaces selecting the tag: payments\npods on it: 1\n",
        "pass --yes",
    ] {
        assert!(asked.stderr.contains(line), "{line:?} in {}", asked.stderr);
    }
    assert!(tag_webhook(&client, "istio-revision-tag-prod-next")
        .await
        .is_some());
    let removed = revhook_aks(&cp, &["tags", "remove", "prod-next", "--yes"]).ok("remove");
    assert_eq!(removed.stdout, "tag prod-next removed\n");
    assert!(tag_webhook(&client, "istio-revision-tag-prod-next")
        .await
        .is_none());
    // What it said it would break: payments' new pods are refused, and `check` says why.
    let refused = eventually("revhook to refuse pods on the removed tag", WAIT, || {
        let client = client.clone();
        async move {
            match create_payments_pod(&client, "pay-2").await {
                Err(m) => Ok(m),
                Ok(_) => {
                    let pods: Api<Pod> = Api::namespaced(client.clone(), "payments");
                    let _ = pods.delete("pay-2", &Default::default()).await;
                    Err("admitted (revhook had not seen the removal yet)".to_owned())
                }
            }
        }
    })
    .await;
    assert!(
        refused.starts_with(r#"admission webhook "rev.namespace.inject.revhook.dev" denied the request: namespace "payments" selects revision "prod-next", which is not installed"#),
        "{refused}"
    );
    let report = assert_live_and_dump_agree(&kubectl_bin, &cp, "inject.yaml", AKS);
    let stale = findings_with(&report, "REVHOOK-STALE-NAMESPACE");
    assert_eq!(stale.len(), 1, "{report:#}");
    assert_eq!(stale[0]["object"], "Namespace/payments");
    assert!(
        findings_with(&report, "REVHOOK-INJECTOR-OVERLAP").is_empty(),
        "{report:#}"
    );

    // --- guard mode: Istio's injector (a stub istiod) injects, revhook only refuses ---
    revhook.proc.stop();
    let mut revhook = serve_in_mode(&cp, &client, &netns, &tls, "guard").await;
    // Without the revision's own injector configuration there is nothing to copy: refused,
    // naming the istioctl command.
    let ran = revhook_aks(&cp, &["tags", "set", "prod-next", "--revision", "asm-1-23"]);
    assert_ne!(ran.code, Some(0));
    assert!(
        ran.stderr.contains(r#"revision "asm-1-23" has no injector MutatingWebhookConfiguration (labelled istio.io/rev=asm-1-23, without istio.io/tag) to copy Istio's webhooks from; revhook does not write this tag in guard mode, run: istioctl tag set prod-next --revision asm-1-23 -i aks-istio-system"#),
        "{}",
        ran.stderr
    );
    assert!(
        tag_webhook(&client, "istio-revision-tag-prod-next-aks-istio-system")
            .await
            .is_none()
    );

    // asm-1-23's injector as Istio's chart installs it, calling the stub by URL.
    let istiod = envtest::istiod::StubIstiod::start("asm-1-23").await;
    let url = istiod.url("/inject/cluster/Kubernetes/net/network1");
    let injector = envtest::istiod::render(
        &chart,
        AKS_NS,
        &[
            "revision=asm-1-23".to_owned(),
            format!("global.istioNamespace={AKS_NS}"),
            format!("istiodRemote.injectionURL={url}"),
            format!("istiodRemote.injectionCABundle={}", istiod.tls.ca_bundle()),
        ],
        "mutatingwebhook.yaml",
    )
    .pop()
    .expect("asm-1-23's injector");
    objects::apply(&client, &injector).await;
    let set = revhook_aks(&cp, &["tags", "set", "prod-next", "--revision", "asm-1-23"])
        .ok("tags set in guard mode");
    assert_eq!(
        set.stdout,
        "tag prod-next -> asm-1-23 (guard mode); restart workloads to move running pods (revhook tags plan shows which)\n"
    );
    let injector_name = injector["metadata"]["name"].as_str().expect("name");
    assert!(
        set.stderr.contains(&format!(
            "guard mode: Istio's injector webhooks copied from {injector_name}, and Service {AKS_NS}/istiod-revision-tag-prod-next"
        )),
        "{}",
        set.stderr
    );
    let written = tag_webhook(&client, "istio-revision-tag-prod-next-aks-istio-system")
        .await
        .expect("Istio's tag webhook written");
    assert_eq!(written["metadata"]["labels"]["istio.io/tag"], "prod-next");
    assert_eq!(written["metadata"]["labels"]["istio.io/rev"], "asm-1-23");
    let hooks = written["webhooks"].as_array().expect("Istio's webhooks");
    assert!(!hooks.is_empty());
    for hook in hooks {
        assert_eq!(hook["clientConfig"]["url"], json!(url), "{hook:#}");
        assert_eq!(
            hook["clientConfig"]["caBundle"],
            json!(istiod.tls.ca_bundle()),
            "{hook:#}"
        );
    }
    let service = get_opt(
        &client,
        "v1",
        "Service",
        Some(AKS_NS),
        "istiod-revision-tag-prod-next",
    )
    .await
    .expect("the tag's istiod Service");
    assert_eq!(service["metadata"]["labels"]["istio.io/tag"], "prod-next");
    assert_eq!(service["spec"]["selector"]["istio.io/rev"], "asm-1-23");

    // payments is on prod-next again: Istio injects through the tag, revhook admits.
    let pod = eventually(
        "Istio's injector to be called through the tag",
        WAIT,
        || {
            let client = client.clone();
            async move {
                let pods: Api<Pod> = Api::namespaced(client.clone(), "payments");
                let _ = pods.delete("pay-3", &Default::default()).await;
                let pod = create_payments_pod(&client, "pay-3").await?;
                match proxy_image(&pod) {
                    Some(envtest::istiod::STUB_PROXY_IMAGE) => Ok(pod),
                    other => Err(format!("proxy {other:?}")),
                }
            }
        },
    )
    .await;
    assert_eq!(pod["metadata"]["name"], "pay-3");
    let list = revhook_aks(&cp, &["tags", "list"]).ok("tags list");
    assert!(
        list.stdout
            .contains("prod-next            asm-1-23             payments\n"),
        "{}",
        list.stdout
    );
    let plan = revhook_aks(
        &cp,
        &["tags", "plan", "prod-next", "--revision", "asm-1-22"],
    )
    .ok("tags plan in guard mode");
    assert!(
        plan.stdout.starts_with(&format!(
            "tag prod-next: asm-1-23 -> asm-1-22\nimage: {ASM_1_23_PROXY} -> {ASM_1_22_PROXY}\nnamespaces selecting the tag: payments\npods on another proxy image afterwards: 2\n"
        )),
        "{}",
        plan.stdout
    );

    // `check` in guard mode: Istio's injector and revhook's select the same pods. Without
    // revhook's Deployment in the input that is reported (with why it may be meant); with the
    // guard overlay's Deployment (`--mode=guard`) it is what is meant, and not reported.
    let report = assert_live_and_dump_agree(&kubectl_bin, &cp, "guard-no-deployment.yaml", AKS);
    let overlap = findings_with(&report, "REVHOOK-INJECTOR-OVERLAP");
    assert!(!overlap.is_empty(), "{report:#}");
    assert!(
        overlap.iter().all(|f| f["message"]
            .as_str()
            .is_some_and(|m| m.contains("revhook's Deployment was not in the input: if it runs --mode=guard, this overlap is intended"))),
        "{overlap:#?}"
    );
    let Some(tool) = render::kustomize_tool() else {
        return;
    };
    let guard = render::kustomize(&tool, &objects::repo_path("manifests/overlays/guard"));
    for doc in guard
        .iter()
        .filter(|d| d["kind"] == "Namespace" || d["kind"] == "Deployment")
    {
        objects::apply(&client, doc).await;
    }
    let report = assert_live_and_dump_agree(&kubectl_bin, &cp, "guard.yaml", AKS);
    assert!(
        findings_with(&report, "REVHOOK-INJECTOR-OVERLAP").is_empty(),
        "{report:#}"
    );

    let removed = revhook_aks(&cp, &["tags", "remove", "prod-next", "--yes"]).ok("remove");
    assert_eq!(removed.stdout, "tag prod-next removed\n");
    assert!(
        tag_webhook(&client, "istio-revision-tag-prod-next-aks-istio-system")
            .await
            .is_none()
    );
    assert!(get_opt(
        &client,
        "v1",
        "Service",
        Some(AKS_NS),
        "istiod-revision-tag-prod-next"
    )
    .await
    .is_none());
    let log = revhook.proc.log_text();
    // The pod Istio injected through the tag is admitted untouched.
    assert!(
        log.lines()
            .any(|l| l.contains("name=pay-3") && l.contains("decision=skip:already-injected")),
        "{log}"
    );
    assert!(
        !log.contains("decision=inject:"),
        "guard never injects:\n{log}"
    );
    revhook.proc.assert_running();
}
