//! `revhook inject -f` on a multi-document manifest, against golden output
//! (`REVHOOK_BLESS=1 cargo test --test inject_file` regenerates it).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_revhook"))
        .args(args)
        .output()
        .expect("revhook")
}

#[test]
fn multi_document_manifest_matches_golden_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/inject-file");
    let input = dir.join("app.yaml");
    let out = run(&[
        "inject",
        "-f",
        input.to_str().expect("path"),
        "--tag",
        "prod-canary",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    let expected = dir.join("app.injected.yaml");
    if std::env::var_os("REVHOOK_BLESS").is_some() {
        std::fs::write(&expected, &text).expect("bless");
    }
    assert_eq!(
        text,
        std::fs::read_to_string(&expected).expect("golden output"),
        "REVHOOK_BLESS=1 regenerates after review"
    );

    let docs = revhook::offline::documents(&text).expect("output is YAML kubectl can apply");
    assert_eq!(docs.len(), 4);
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, vec!["Deployment", "Service", "CronJob", "Pod"]);
    let proxy = |spec: &Value| {
        spec["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == "istio-proxy"))
            .cloned()
    };
    let deploy = &docs[0]["spec"]["template"]["spec"];
    assert_eq!(
        proxy(deploy).expect("injected")["image"],
        "mcr.microsoft.com/oss/istio/proxyv2:1.23.0-distroless"
    );
    let env = proxy(deploy).expect("proxy")["env"].clone();
    assert!(env
        .as_array()
        .expect("env")
        .iter()
        .any(|e| e["name"] == "ISTIO_META_OWNER"
            && e["value"] == "kubernetes://apis/apps/v1/namespaces/shop/deployments/checkout"));
    assert_eq!(
        deploy["containers"][0]["readinessProbe"]["httpGet"]["path"],
        "/app-health/checkout/readyz"
    );
    let source: Vec<Value> =
        revhook::offline::documents(&std::fs::read_to_string(&input).expect("input"))
            .expect("input");
    assert_eq!(docs[1], source[1], "a Service passes through unchanged");
    assert!(proxy(&docs[2]["spec"]["jobTemplate"]["spec"]["template"]["spec"]).is_some());
    assert_eq!(docs[3], source[3], "an opted-out pod is left alone");
}

/// A `kind: List` comes out as one List with its pods injected, as `istioctl kube-inject`
/// writes it (Istio's own `list.yaml` and `list-frontend.yaml` cases), not split into documents.
#[test]
fn a_list_stays_a_list_with_its_pods_injected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/inject-file");
    let input = dir.join("list.yaml");
    let out = run(&["inject", "-f", input.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    let expected = dir.join("list.injected.yaml");
    if std::env::var_os("REVHOOK_BLESS").is_some() {
        std::fs::write(&expected, &text).expect("bless");
    }
    assert_eq!(
        text,
        std::fs::read_to_string(&expected).expect("golden output"),
        "REVHOOK_BLESS=1 regenerates after review"
    );

    let docs = revhook::offline::documents(&text).expect("output is YAML kubectl can apply");
    assert_eq!(docs.len(), 1, "one List: {text}");
    let source = revhook::offline::documents(&std::fs::read_to_string(&input).expect("input"))
        .expect("input");
    assert_eq!(source.len(), 1, "the empty documents are skipped");
    let (list, before) = (&docs[0], &source[0]);
    assert!(revhook::offline::is_list(list));
    assert_eq!(list["metadata"], before["metadata"]);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    let containers = items[0]["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["cart", "istio-proxy"]);
    assert_eq!(
        items[1], before["items"][1],
        "a Service passes through unchanged"
    );
    assert_eq!(
        items[2], before["items"][2],
        "a ConfigMap passes through unchanged"
    );
    assert_eq!(items[2]["data"]["legacy"], "on");
}

#[test]
fn unknown_revision_fails_with_what_is_installed() {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/inject-file/app.yaml");
    let out = run(&[
        "inject",
        "-f",
        input.to_str().expect("path"),
        "--revision",
        "asm-1-20",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("installed: asm-1-22, asm-1-23"), "{stderr}");
}

/// `--injector` and `--mesh` take a revision's own ConfigMaps as files (here revhook's own
/// injector ConfigMap and an `istio` mesh ConfigMap): that revision injects every pod, with the
/// mesh config's trust domain and istiod address and the injector's image; `--native-sidecars`
/// turns the proxy into a native sidecar; a broken injector is refused with the reason.
#[test]
fn a_revisions_own_configmaps_as_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp");
    let mesh = dir.path().join("mesh.yaml");
    std::fs::write(
        &mesh,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\ndata:\n  mesh: |\n    trustDomain: example.org\n    defaultConfig:\n      discoveryAddress: istiod.mesh.svc:15012\n",
    )
    .expect("mesh");
    let injector = root.join("src/default-injector.yaml");
    let input = root.join("tests/golden/inject-file/app.yaml");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "inject",
            "-f",
            input.to_str().expect("path"),
            "--injector",
            injector.to_str().expect("path"),
            "--mesh",
            mesh.to_str().expect("path"),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let out = run(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.contains("value: example.org"),
        "TRUST_DOMAIN from the mesh file"
    );
    assert!(
        text.contains("value: istiod.mesh.svc:15012"),
        "CA_ADDR from the mesh file"
    );
    assert!(
        text.contains("image: docker.io/istio/proxyv2:1.23.0"),
        "image from the values"
    );
    assert!(
        text.contains("\"revision\":\"default\""),
        "the ConfigMap's revision"
    );

    let out = run(&args(&["--native-sidecars", "true"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.contains("restartPolicy: Always"), "a native sidecar");

    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio-sidecar-injector}\ndata:\n  values: '{}'\n  config: |\n    templates:\n      sidecar: '{{ nosuchfunction }}'\n",
    )
    .expect("broken");
    let out = run(&[
        "inject",
        "-f",
        input.to_str().expect("path"),
        "--injector",
        broken.to_str().expect("path"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot inject") && err.contains("nosuchfunction"),
        "{err}"
    );
}
