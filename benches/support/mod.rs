//! What both benchmarks send: the load mix of fixture reviews, compacted as the API server
//! sends them, and the snapshot they are judged against.

// Each benchmark uses part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use revhook::core::snapshot::Snapshot;
use revhook::handler::Webhook;

/// One kind of request in the mix.
pub struct MixRequest {
    /// `inject`, `skip`, `deny` or `validate`.
    pub kind: &'static str,
    pub webhook: Webhook,
    /// The URL path the API server posts it to.
    pub path: &'static str,
    pub body: Vec<u8>,
}

/// The request mix (inject, skip, deny (stale), validate; or only one of them), compacted.
pub fn mix(only: Option<&str>) -> Vec<MixRequest> {
    [
        ("inject", Webhook::Inject, "pod-create-prod-stable.json"),
        (
            "skip",
            Webhook::Inject,
            "pod-create-unlabelled-namespace.json",
        ),
        ("deny", Webhook::Inject, "pod-create-stale-namespace.json"),
        ("validate", Webhook::Validate, "namespace-create.json"),
    ]
    .into_iter()
    .filter(|(kind, _, _)| only.is_none_or(|o| o == *kind))
    .map(|(kind, webhook, file)| MixRequest {
        kind,
        webhook,
        path: match webhook {
            Webhook::Inject => "/inject",
            Webhook::Validate => "/validate",
        },
        body: compact(&fixture(file)),
    })
    .collect()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).expect("fixture")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The config file the fixtures are written against, its revisions rendering Istio's stock
/// injection templates (default) or revhook's embedded one (`REVHOOK_BENCH_TEMPLATES=embedded`).
pub fn config_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(
        || match std::env::var("REVHOOK_BENCH_TEMPLATES").as_deref() {
            Ok("embedded") => fixtures().join("local-config.yaml"),
            Ok("stock") | Err(_) => stock_config(),
            Ok(other) => panic!("REVHOOK_BENCH_TEMPLATES={other}: stock or embedded"),
        },
    )
    .clone()
}

/// Which templates [`config_path`] renders, for the benches' output.
pub fn templates_label() -> &'static str {
    match std::env::var("REVHOOK_BENCH_TEMPLATES").as_deref() {
        Ok("embedded") => "revhook's embedded template",
        _ => "Istio's stock templates (istio-oracle --print-configmaps)",
    }
}

/// The snapshot of [`config_path`].
pub fn fixture_snapshot() -> Snapshot {
    revhook::sources::config::load(&config_path()).expect("config loads")
}

/// `local-config.yaml` with each revision given Istio's stock injector and mesh ConfigMaps:
/// those of the Istio the side-by-side oracle is built on (`istio-oracle --print-configmaps`,
/// or the file `REVHOOK_BENCH_ISTIO_CONFIGMAPS` names), written under `target/bench-config/`.
fn stock_config() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = match std::env::var_os("REVHOOK_BENCH_ISTIO_CONFIGMAPS") {
        Some(file) => std::fs::read_to_string(&file).expect("REVHOOK_BENCH_ISTIO_CONFIGMAPS"),
        None => print_configmaps(&root.join("target/tools/bin/istio-oracle")),
    };
    let docs = goyaml::documents(&text).expect("the ConfigMaps are YAML");
    let find = |key: &str| {
        docs.iter()
            .find(|d| d["data"][key].is_string())
            .unwrap_or_else(|| panic!("no ConfigMap with data.{key}"))
    };
    let dir = root.join("target/bench-config");
    std::fs::create_dir_all(&dir).expect("target/bench-config");
    // JSON is YAML: the files are read as `kubectl get configmap -o yaml` prints them.
    let write = |name: &str, doc: &serde_json::Value| {
        let path = dir.join(name);
        std::fs::write(&path, doc.to_string()).expect("write");
        path
    };
    let injector = write("istio-sidecar-injector.json", find("config"));
    let mesh = write("istio.json", find("mesh"));
    let local = std::fs::read_to_string(fixtures().join("local-config.yaml")).expect("config");
    let mut config = goyaml::from_str(&local).expect("local-config.yaml");
    for revision in config["revisions"].as_array_mut().expect("revisions") {
        revision["injector"] = injector.display().to_string().into();
        revision["mesh"] = mesh.display().to_string().into();
    }
    write("config.json", &config)
}

fn print_configmaps(oracle: &Path) -> String {
    let out = Command::new(oracle)
        .arg("--print-configmaps")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}. Build it (go build -C tests/istio-oracle -o \"$PWD/target/tools/bin/istio-oracle\" .), \
                 give the ConfigMaps in REVHOOK_BENCH_ISTIO_CONFIGMAPS, or bench revhook's own \
                 template with REVHOOK_BENCH_TEMPLATES=embedded",
                oracle.display()
            )
        });
    assert!(
        out.status.success(),
        "istio-oracle --print-configmaps failed"
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The fixture without the whitespace between tokens, keys in their order: the API server
/// sends its reviews compact (Go's encoding/json), not pretty-printed like our files.
fn compact(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            out.push(b);
            (in_string, escaped) = match (escaped, b) {
                (true, _) => (true, false),
                (false, b'\\') => (true, true),
                (false, b'"') => (false, false),
                _ => (true, false),
            };
        } else if !b.is_ascii_whitespace() {
            in_string = b == b'"';
            out.push(b);
        }
    }
    let same = |j: &[u8]| serde_json::from_slice::<serde_json::Value>(j).expect("fixture is JSON");
    assert_eq!(same(&out), same(json), "compacting changed the fixture");
    out
}
