//! Differential test against Istio's own injector code (`tests/istio-oracle/`, a Go program on
//! `istio.io/istio/pkg/kube/inject`).
//!
//! Pods generated with proptest (Istio's injection annotations and labels with valid and edge
//! values, custom `istio-proxy` containers, probes of every kind and port form, named ports,
//! init and native sidecar containers, security contexts, host network, several containers,
//! gateways, several templates) go through the oracle (kube-inject: `IntoResourceFile`) with
//! this Istio version's default ConfigMaps (`istio-oracle --print-configmaps`), and
//! - `oracle_accepts_or_refuses_generated_pods_as_expected`: every pod is injected, skipped or
//!   refused by Istio as the generator expects (this exercises generator and oracle in CI);
//! - `revhook_injects_what_istio_injects`: the same pods through `revhook inject -f
//!   --injector --mesh` must equal Istio's output field by field, under the normalization of
//!   [`normalize`]. Saved regression cases under `tests/fixtures/oracle/` run first; a new
//!   difference is shrunk and saved there with both outputs.
//!
//! Cases: `REVHOOK_ORACLE_CASES` (default [`DEFAULT_CASES`]), seed `REVHOOK_ORACLE_SEED`
//! (default: random, printed). All cases go through one oracle process and one revhook process.
//! The oracle is built once per run into `target/tools/bin/istio-oracle` (`.ci/run` builds it
//! first); without Go or the Istio module the tests skip with a message, and fail under CI=true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Generated cases per run unless `REVHOOK_ORACLE_CASES` says otherwise (CI runs this many:
/// about 2 s through the oracle on the CI machine).
const DEFAULT_CASES: usize = 100;
/// Shrinking stops after this many candidate runs (each runs both tools on one pod).
const MAX_SHRINK_STEPS: usize = 150;

// ---------------------------------------------------------------------------------------------
// The tools

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Skips (returns `None`) with a message outside CI; fails under CI=true.
fn unavailable<T>(why: String) -> Option<T> {
    assert!(!in_ci(), "{why} (required when CI=true)");
    eprintln!("SKIP: {why}; the Istio oracle test did not run");
    None
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo().join("target"))
}

fn find_go() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("go"))
        .chain([PathBuf::from("/usr/local/go/bin/go")])
        .find(|p| p.is_file())
}

/// The built oracle and the default ConfigMaps it printed.
struct Oracle {
    bin: PathBuf,
    configmaps: PathBuf,
    _dir: tempfile::TempDir,
}

/// Builds the oracle once per test process when its sources are newer than the binary (`.ci/run`
/// builds it first) and asks it for the default ConfigMaps.
fn oracle() -> Option<&'static Oracle> {
    static ORACLE: OnceLock<Option<Oracle>> = OnceLock::new();
    ORACLE.get_or_init(build_oracle).as_ref()
}

fn build_oracle() -> Option<Oracle> {
    let bin = target_dir().join("tools/bin/istio-oracle");
    if !is_fresh(&bin) {
        go_build(&bin)?;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let configmaps = dir.path().join("configmaps.yaml");
    let printed = Command::new(&bin)
        .arg("--print-configmaps")
        .output()
        .expect("run istio-oracle");
    assert!(
        printed.status.success(),
        "istio-oracle --print-configmaps: {}",
        String::from_utf8_lossy(&printed.stderr)
    );
    std::fs::write(&configmaps, &printed.stdout).expect("write configmaps");
    Some(Oracle {
        bin,
        configmaps,
        _dir: dir,
    })
}

/// The files the binary is built from.
fn oracle_sources() -> Vec<PathBuf> {
    let dir = repo().join("tests/istio-oracle");
    std::fs::read_dir(&dir)
        .expect("tests/istio-oracle")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "go" || e == "mod" || e == "sum")
        })
        .collect()
}

/// The binary exists and is newer than every source file.
fn is_fresh(bin: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(bin) else {
        return false;
    };
    oracle_sources()
        .iter()
        .all(|src| modified(src).is_none_or(|m| m <= built))
}

fn go_build(bin: &Path) -> Option<()> {
    let Some(go) = find_go() else {
        return unavailable("go is not installed".to_owned());
    };
    let started = std::time::Instant::now();
    let out = Command::new(&go)
        .args(["build", "-o"])
        .arg(bin)
        .arg(".")
        .current_dir(repo().join("tests/istio-oracle"))
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run go build");
    if !out.status.success() {
        return unavailable(format!(
            "go build of tests/istio-oracle failed (is the istio.io/istio module reachable?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    eprintln!(
        "istio-oracle built in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Some(())
}

/// What one tool did with one document.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Injected(Value),
    /// Left alone (host network, `sidecar.istio.io/inject: "false"`).
    Skipped(Value),
    Refused(String),
}

impl Outcome {
    fn kind(&self) -> Expect {
        match self {
            Outcome::Injected(_) => Expect::Injected,
            Outcome::Skipped(_) => Expect::Skipped,
            Outcome::Refused(_) => Expect::Refused,
        }
    }

    fn object(&self) -> Option<&Value> {
        match self {
            Outcome::Injected(v) | Outcome::Skipped(v) => Some(v),
            Outcome::Refused(_) => None,
        }
    }
}

#[derive(Deserialize)]
struct BatchLine {
    index: usize,
    outcome: String,
    #[serde(default)]
    object: Option<Value>,
    #[serde(default)]
    error: Option<String>,
}

/// Writes documents as one stream: each document as one line of JSON (JSON is YAML, and no
/// string is read differently by a YAML 1.1 parser such as Go's).
fn write_stream(path: &Path, docs: &[Value]) {
    let mut text = String::new();
    for doc in docs {
        text.push_str("---\n");
        text.push_str(&serde_json::to_string(doc).expect("json"));
        text.push('\n');
    }
    std::fs::write(path, text).expect("write stream");
}

/// Every document through Istio's kube-inject, one oracle process for all of them.
fn run_oracle(oracle: &Oracle, docs: &[Value]) -> Vec<Outcome> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("cases.yaml");
    write_stream(&input, docs);
    let out = Command::new(&oracle.bin)
        .arg("--batch")
        .arg("-f")
        .arg(&input)
        .arg("--injector")
        .arg(&oracle.configmaps)
        .arg("--mesh")
        .arg(&oracle.configmaps)
        .output()
        .expect("run istio-oracle");
    assert!(
        out.status.success(),
        "istio-oracle --batch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<BatchLine> = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a batch line"))
        .collect();
    assert_eq!(lines.len(), docs.len(), "one line per document");
    lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            assert_eq!(line.index, i);
            match (line.outcome.as_str(), line.object) {
                ("injected", Some(o)) => Outcome::Injected(o),
                ("skipped", Some(o)) => Outcome::Skipped(o),
                ("refused", _) => Outcome::Refused(line.error.unwrap_or_default()),
                (other, _) => panic!("oracle outcome {other:?} without an object"),
            }
        })
        .collect()
}

/// `revhook inject -f` over all documents in one process, with the oracle's ConfigMaps.
fn revhook_inject(oracle: &Oracle, input: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_revhook"))
        .arg("inject")
        .arg("-f")
        .arg(input)
        .arg("--injector")
        .arg(&oracle.configmaps)
        .arg("--mesh")
        .arg(&oracle.configmaps)
        .output()
        .expect("run revhook")
}

fn yaml_stream(text: &str) -> Result<Vec<Value>, String> {
    revhook::core::yaml::documents(text).map_err(|e| e.to_string())
}

/// revhook's outcome for each document: the documents Istio accepted go through one process;
/// the ones Istio refused, and all of them again one by one if that process fails, each alone.
fn run_revhook(oracle: &Oracle, docs: &[Value], istio: &[Outcome]) -> Vec<Outcome> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut out: Vec<Option<Outcome>> = vec![None; docs.len()];
    let accepted: Vec<usize> = (0..docs.len())
        .filter(|&i| istio[i].kind() != Expect::Refused)
        .collect();
    if !accepted.is_empty() {
        let input = dir.path().join("accepted.yaml");
        let batch: Vec<Value> = accepted.iter().map(|&i| docs[i].clone()).collect();
        write_stream(&input, &batch);
        let result = revhook_inject(oracle, &input);
        let parsed = result
            .status
            .success()
            .then(|| yaml_stream(&String::from_utf8_lossy(&result.stdout)).ok())
            .flatten()
            .filter(|objs| objs.len() == accepted.len());
        if let Some(objs) = parsed {
            for (&i, obj) in accepted.iter().zip(objs) {
                out[i] = Some(classify(&docs[i], obj));
            }
        }
    }
    for (i, slot) in out.iter_mut().enumerate() {
        if slot.is_none() {
            *slot = Some(revhook_one(oracle, &docs[i], dir.path()));
        }
    }
    out.into_iter()
        .map(|o| o.expect("every case ran"))
        .collect()
}

fn revhook_one(oracle: &Oracle, doc: &Value, dir: &Path) -> Outcome {
    let input = dir.join("one.yaml");
    write_stream(&input, std::slice::from_ref(doc));
    let result = revhook_inject(oracle, &input);
    if !result.status.success() {
        return Outcome::Refused(String::from_utf8_lossy(&result.stderr).into_owned());
    }
    match yaml_stream(&String::from_utf8_lossy(&result.stdout)) {
        Ok(mut objs) if objs.len() == 1 => classify(doc, objs.remove(0)),
        Ok(objs) => Outcome::Refused(format!("revhook printed {} documents for one", objs.len())),
        Err(e) => Outcome::Refused(format!("revhook printed no YAML: {e}")),
    }
}

/// Injected when the output differs from the input under normalization.
fn classify(input: &Value, output: Value) -> Outcome {
    if normalize(input) == normalize(&output) {
        Outcome::Skipped(output)
    } else {
        Outcome::Injected(output)
    }
}

// ---------------------------------------------------------------------------------------------
// Normalization: what differs only in representation

/// The document with representation differences removed: `null`, `{}` and `[]` are absent (Go's
/// omitempty cannot tell them apart), Kubernetes quantities are compared by value (`1000m` =
/// `1`, `1Gi` = `1073741824`), JSON held in env values and annotation values is parsed (its
/// key order and spacing are not meaning), and object keys are sorted (serde_json's map).
fn normalize(v: &Value) -> Value {
    normalize_at(v, &mut Vec::new()).unwrap_or(Value::Null)
}

fn normalize_at(v: &Value, path: &mut Vec<String>) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                path.push(k.clone());
                if let Some(n) = normalize_at(child, path) {
                    out.insert(k.clone(), n);
                }
                path.pop();
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let out: Vec<Value> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    path.push(i.to_string());
                    let n = normalize_at(item, path).unwrap_or_else(|| json!({}));
                    path.pop();
                    n
                })
                .collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        Value::String(s) if is_quantity_path(path) => Some(quantity(s)),
        Value::Number(n) if is_quantity_path(path) => Some(quantity(&n.to_string())),
        Value::String(s) if holds_json(path) => match serde_json::from_str::<Value>(s) {
            Ok(parsed @ (Value::Object(_) | Value::Array(_))) => {
                Some(normalize_at(&parsed, path).unwrap_or_else(|| json!({})))
            }
            _ => Some(v.clone()),
        },
        other => Some(other.clone()),
    }
}

fn is_quantity_path(path: &[String]) -> bool {
    let n = path.len();
    (n >= 2 && matches!(path[n - 2].as_str(), "limits" | "requests" | "overhead"))
        || path.last().is_some_and(|k| k == "sizeLimit")
}

/// An env value (`env[i].value`) or an annotation value.
fn holds_json(path: &[String]) -> bool {
    let n = path.len();
    (n >= 3 && path[n - 1] == "value" && path[n - 3] == "env")
        || (n >= 2 && path[n - 2] == "annotations")
}

/// A quantity as its value in nano-units (`q:<integer>`), or the text when it does not parse.
fn quantity(s: &str) -> Value {
    parse_quantity(s)
        .map(|nanos| Value::String(format!("q:{nanos}")))
        .unwrap_or_else(|| Value::String(s.to_owned()))
}

fn parse_quantity(s: &str) -> Option<i128> {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(end);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let digits: i128 = format!("{whole}{frac}").parse().ok()?;
    let (exp10, exp2): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        e => (e.strip_prefix(['e', 'E'])?.parse().ok()?, 0),
    };
    let scale = 9 + exp10 - i32::try_from(frac.len()).ok()?;
    let mut value = digits.checked_mul(1i128.checked_shl(exp2)?)?;
    if scale >= 0 {
        value = value.checked_mul(10i128.checked_pow(u32::try_from(scale).ok()?)?)?;
    } else {
        let div = 10i128.checked_pow(u32::try_from(-scale).ok()?)?;
        if value % div != 0 {
            return None;
        }
        value /= div;
    }
    Some(sign * value)
}

/// The paths where two normalized documents differ.
fn differences(a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_at(a, b, &mut String::new(), &mut out);
    out
}

fn diff_at(a: &Value, b: &Value, path: &mut String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                diff_at(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    path,
                    out,
                );
                path.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                diff_at(p, q, path, out);
                path.truncate(len);
            }
        }
        _ if a == b => {}
        _ => out.push(format!(
            "{}: istio {} / revhook {}",
            if path.is_empty() { "." } else { path },
            short(a),
            short(b)
        )),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

/// Istio's and revhook's outcomes compared: `None` when equal, else what differs.
fn compare(istio: &Outcome, revhook: &Outcome) -> Option<Vec<String>> {
    match (istio, revhook) {
        (Outcome::Refused(_), Outcome::Refused(_)) => None,
        (a, b) if a.kind() != b.kind() => Some(vec![format!(
            "outcome: istio {:?} / revhook {:?}{}",
            a.kind(),
            b.kind(),
            match (a, b) {
                (Outcome::Refused(e), _) | (_, Outcome::Refused(e)) => format!(" ({})", e.trim()),
                _ => String::new(),
            }
        )]),
        (a, b) => {
            let d = differences(
                &normalize(a.object().expect("object")),
                &normalize(b.object().expect("object")),
            );
            (!d.is_empty()).then_some(d)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The generator

/// What Istio is expected to do with a generated pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Injected,
    /// Host network, or `sidecar.istio.io/inject: "false"` (the label if present, else the
    /// annotation; any other value falls back to the policy, `enabled` in kube-inject).
    Skipped,
    /// An annotation Istio validates has an invalid value, or a template does not exist.
    Refused,
}

/// One generated case: the manifest document and what Istio should do with it.
#[derive(Clone, Debug)]
struct Case {
    doc: Value,
    expect: Expect,
}

/// Annotations: name, valid values, invalid values (refused by Istio's validation).
const ANNOTATIONS: &[(&str, &[&str], &[&str])] = &[
    (
        "sidecar.istio.io/proxyCPU",
        &["100m", "250m", "1", "0.5", "3"],
        &["abc", "1.2.3"],
    ),
    (
        "sidecar.istio.io/proxyMemory",
        &["128Mi", "1Gi", "2Gi", "500M", "64Mi"],
        &["12XB"],
    ),
    (
        "sidecar.istio.io/proxyCPULimit",
        &["2", "500m", "1500m"],
        &["lots"],
    ),
    (
        "sidecar.istio.io/proxyMemoryLimit",
        &["1Gi", "256Mi", "2G"],
        &["x1Gi"],
    ),
    (
        "traffic.sidecar.istio.io/includeOutboundIPRanges",
        &["*", "10.0.0.0/8", "10.0.0.0/8,172.16.0.0/12", ""],
        &["10.0.0.1/33", "300.1.1.1/32"],
    ),
    (
        "traffic.sidecar.istio.io/excludeOutboundIPRanges",
        &["10.96.0.1/32", "", "169.254.169.254/32,10.0.0.0/24"],
        &["nope"],
    ),
    (
        "traffic.sidecar.istio.io/includeInboundPorts",
        &["*", "8080", "8080,9090", ""],
        &["70000", "http"],
    ),
    (
        "traffic.sidecar.istio.io/excludeInboundPorts",
        &["9091", "15020,9091", ""],
        &["-1"],
    ),
    (
        "traffic.sidecar.istio.io/excludeOutboundPorts",
        &["5432", "5432,6379"],
        &["abc"],
    ),
    (
        "traffic.sidecar.istio.io/includeOutboundPorts",
        &["443", "80,443"],
        &[],
    ),
    (
        "traffic.sidecar.istio.io/excludeInterfaces",
        &["eth1", "eth1,eth2"],
        &[],
    ),
    (
        "status.sidecar.istio.io/port",
        &["15020", "15021", "0"],
        &["abc", "99999"],
    ),
    (
        "readiness.status.sidecar.istio.io/initialDelaySeconds",
        &["0", "1", "10"],
        &["-1", "x"],
    ),
    (
        "readiness.status.sidecar.istio.io/periodSeconds",
        &["2", "30"],
        &["1.5"],
    ),
    (
        "readiness.status.sidecar.istio.io/failureThreshold",
        &["3", "30"],
        &["many"],
    ),
    (
        "sidecar.istio.io/interceptionMode",
        &["REDIRECT", "TPROXY", "NONE"],
        &["redirect", "FOO"],
    ),
    (
        "sidecar.istio.io/logLevel",
        &["debug", "info", "warning"],
        &[],
    ),
    (
        "sidecar.istio.io/componentLogLevel",
        &["misc:error", "upstream:debug,connection:trace"],
        &[],
    ),
    (
        "sidecar.istio.io/agentLogLevel",
        &["debug", "default:info"],
        &[],
    ),
    (
        "sidecar.istio.io/proxyImage",
        &[
            "docker.io/istio/proxyv2:1.23.0",
            "example.com/mesh/proxy:custom",
        ],
        &[],
    ),
    (
        "sidecar.istio.io/proxyImageType",
        &["distroless", "debug"],
        &[],
    ),
    (
        "proxy.istio.io/config",
        &[
            "holdApplicationUntilProxyStarts: true",
            "concurrency: 2",
            "proxyMetadata:\n  ISTIO_META_DNS_CAPTURE: \"true\"\n",
            "terminationDrainDuration: 10s",
            "{}",
        ],
        &["concurrency: [", "drainDuration: forever"],
    ),
    (
        "prometheus.istio.io/merge-metrics",
        &["true", "false"],
        &["maybe"],
    ),
    ("sidecar.istio.io/nativeSidecar", &["true", "false"], &[]),
    (
        "sidecar.istio.io/rewriteAppHTTPProbers",
        &["true", "false"],
        &[],
    ),
    ("prometheus.io/scrape", &["true", "false"], &[]),
    ("prometheus.io/port", &["9102", "8080"], &[]),
    ("prometheus.io/path", &["/metrics", "/stats"], &[]),
    (
        "sidecar.istio.io/userVolume",
        &[r#"{"extra":{"emptyDir":{}}}"#],
        &[],
    ),
    (
        "sidecar.istio.io/userVolumeMount",
        &[r#"{"extra":{"mountPath":"/extra","readOnly":true}}"#],
        &[],
    ),
    (
        "sidecar.istio.io/bootstrapOverride",
        &["custom-bootstrap"],
        &[],
    ),
    ("sidecar.istio.io/enableCoreDump", &["true", "false"], &[]),
    ("kubectl.kubernetes.io/default-container", &["app-0"], &[]),
    (
        "inject.istio.io/templates",
        &[
            "sidecar",
            "grpc-agent",
            "grpc-simple",
            "sidecar,grpc-simple",
        ],
        &["nope", "sidecar,nope"],
    ),
];

/// One annotation: which, valid or not, which value (indices wrap; all shrink to the first
/// valid value of the first annotation).
fn annotation() -> impl Strategy<Value = (usize, bool, usize)> {
    (0..ANNOTATIONS.len(), prop::bool::weighted(0.12), 0usize..8)
}

/// The `sidecar.istio.io/inject` value on the pod's label and on its annotation.
fn inject_value() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::weighted(
        0.25,
        prop::sample::select(vec!["true", "false", "", "yes", "enabled", "TRUE"]),
    )
}

#[derive(Clone, Copy, Debug)]
enum PortForm {
    Number,
    /// The container's first named port (the number when it has none).
    Named,
}

#[derive(Clone, Copy, Debug)]
enum ProbeKind {
    HttpGet { https: bool, headers: bool },
    TcpSocket,
    Grpc,
    Exec,
}

#[derive(Clone, Debug)]
struct Probe {
    kind: ProbeKind,
    port: PortForm,
    timing: bool,
}

fn probe() -> impl Strategy<Value = Probe> {
    let kind = prop_oneof![
        3 => (any::<bool>(), any::<bool>()).prop_map(|(https, headers)| ProbeKind::HttpGet { https, headers }),
        1 => Just(ProbeKind::TcpSocket),
        1 => Just(ProbeKind::Grpc),
        1 => Just(ProbeKind::Exec),
    ];
    let port = prop_oneof![Just(PortForm::Number), Just(PortForm::Named)];
    (kind, port, any::<bool>()).prop_map(|(kind, port, timing)| Probe { kind, port, timing })
}

#[derive(Clone, Debug)]
struct Port {
    name: Option<&'static str>,
    udp: bool,
}

fn port() -> impl Strategy<Value = Port> {
    (
        prop::option::of(prop::sample::select(vec![
            "http", "grpc", "metrics", "tcp", "http-web",
        ])),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(name, udp)| Port { name, udp })
}

#[derive(Clone, Copy, Debug)]
enum Security {
    RunAsUser(i64),
    /// Pod Security "restricted".
    Restricted,
    Privileged,
}

fn security() -> impl Strategy<Value = Option<Security>> {
    prop::option::weighted(
        0.3,
        prop_oneof![
            prop::sample::select(vec![0i64, 1000, 1337, 65534]).prop_map(Security::RunAsUser),
            Just(Security::Restricted),
            Just(Security::Privileged),
        ],
    )
}

#[derive(Clone, Debug)]
struct AppContainer {
    ports: Vec<Port>,
    readiness: Option<Probe>,
    liveness: Option<Probe>,
    startup: Option<Probe>,
    security: Option<Security>,
    resources: bool,
    env: usize,
}

fn app_container() -> impl Strategy<Value = AppContainer> {
    (
        prop::collection::vec(port(), 0..3),
        prop::option::weighted(0.5, probe()),
        prop::option::weighted(0.4, probe()),
        prop::option::weighted(0.2, probe()),
        security(),
        any::<bool>(),
        0usize..4,
    )
        .prop_map(
            |(ports, readiness, liveness, startup, security, resources, env)| AppContainer {
                ports,
                readiness,
                liveness,
                startup,
                security,
                resources,
                env,
            },
        )
}

/// A pod's own `istio-proxy` container (Istio's "custom injection").
#[derive(Clone, Debug)]
struct CustomProxy {
    auto_image: bool,
    resources: bool,
    env: bool,
    run_as_user: Option<i64>,
    volume_mount: bool,
}

fn custom_proxy() -> impl Strategy<Value = CustomProxy> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::weighted(0.3, prop::sample::select(vec![0i64, 1234, 1337])),
        any::<bool>(),
    )
        .prop_map(
            |(auto_image, resources, env, run_as_user, volume_mount)| CustomProxy {
                auto_image,
                resources,
                env,
                run_as_user,
                volume_mount,
            },
        )
}

#[derive(Clone, Debug)]
struct Spec {
    deployment: bool,
    gateway: bool,
    host_network: bool,
    containers: Vec<AppContainer>,
    custom_proxy: Option<CustomProxy>,
    init_container: bool,
    native_sidecar: bool,
    pod_security: Option<Security>,
    version_label: bool,
    network_label: bool,
    inject_label: Option<&'static str>,
    inject_annotation: Option<&'static str>,
    annotations: Vec<(usize, bool, usize)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            prop::bool::weighted(0.4),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.05),
            prop::collection::vec(app_container(), 1..4),
            prop::option::weighted(0.15, custom_proxy()),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.15),
        ),
        (
            security(),
            any::<bool>(),
            prop::bool::weighted(0.1),
            inject_value(),
            inject_value(),
            prop::collection::vec(annotation(), 0..5),
        ),
    )
        .prop_map(
            |(
                (
                    deployment,
                    gateway,
                    host_network,
                    containers,
                    custom_proxy,
                    init_container,
                    native_sidecar,
                ),
                (
                    pod_security,
                    version_label,
                    network_label,
                    inject_label,
                    inject_annotation,
                    annotations,
                ),
            )| Spec {
                deployment,
                gateway,
                host_network,
                containers,
                custom_proxy,
                init_container,
                native_sidecar,
                pod_security,
                version_label,
                network_label,
                inject_label,
                inject_annotation,
                annotations,
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    spec().prop_map(|s| Case {
        doc: s.document(),
        expect: s.expect(),
    })
}

impl Spec {
    /// The annotations, as set on the pod (a later one of the same name wins).
    fn annotation_values(&self) -> BTreeMap<&'static str, (&'static str, bool)> {
        let mut out = BTreeMap::new();
        for &(which, invalid, value) in &self.annotations {
            let (name, valid, bad) = ANNOTATIONS[which];
            let entry = if invalid && !bad.is_empty() {
                (bad[value % bad.len()], false)
            } else {
                (valid[value % valid.len()], true)
            };
            out.insert(name, entry);
        }
        if self.gateway {
            out.insert("inject.istio.io/templates", ("gateway", true));
        }
        out
    }

    /// In Istio's order (`IntoObject`): host network first, then `proxy.istio.io/config` is
    /// parsed (so an invalid one refuses even an opted-out pod), then the inject label or
    /// annotation, then the other annotations are validated and the templates looked up.
    fn expect(&self) -> Expect {
        let annotations = self.annotation_values();
        let inject = self.inject_label_value().or(self.inject_annotation);
        if self.host_network {
            Expect::Skipped
        } else if annotations
            .get("proxy.istio.io/config")
            .is_some_and(|&(_, valid)| !valid)
        {
            Expect::Refused
        } else if inject == Some("false") {
            Expect::Skipped
        } else if annotations.values().any(|&(_, valid)| !valid) {
            Expect::Refused
        } else {
            Expect::Injected
        }
    }

    /// A gateway always opts in with the label, as Istio's gateway charts do.
    fn inject_label_value(&self) -> Option<&'static str> {
        if self.gateway {
            Some("true")
        } else {
            self.inject_label
        }
    }

    fn document(&self) -> Value {
        let mut labels = Map::new();
        let app = if self.gateway {
            labels.insert("istio".into(), json!("ingressgateway"));
            "gateway"
        } else {
            "checkout"
        };
        labels.insert("app".into(), json!(app));
        if self.version_label {
            labels.insert("version".into(), json!("v2"));
        }
        if self.network_label {
            labels.insert("topology.istio.io/network".into(), json!("network-2"));
        }
        if let Some(v) = self.inject_label_value() {
            labels.insert("sidecar.istio.io/inject".into(), json!(v));
        }
        let mut annotations: Map<String, Value> = self
            .annotation_values()
            .into_iter()
            .map(|(k, (v, _))| (k.to_owned(), json!(v)))
            .collect();
        if let Some(v) = self.inject_annotation {
            annotations.insert("sidecar.istio.io/inject".into(), json!(v));
        }
        let mut metadata = json!({"labels": labels});
        if !annotations.is_empty() {
            metadata["annotations"] = Value::Object(annotations);
        }
        let pod_spec = self.pod_spec();
        if self.deployment {
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": app, "namespace": "shop"},
                "spec": {
                    "selector": {"matchLabels": {"app": app}},
                    "template": {"metadata": metadata, "spec": pod_spec}
                }
            })
        } else {
            metadata["name"] = json!(format!("{app}-7d9c8"));
            metadata["namespace"] = json!("shop");
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec})
        }
    }

    fn pod_spec(&self) -> Value {
        let mut containers: Vec<Value> = if self.gateway {
            vec![json!({"name": "istio-proxy", "image": "auto"})]
        } else {
            self.containers
                .iter()
                .enumerate()
                .map(|(i, c)| c.render(i))
                .collect()
        };
        let mut volumes = vec![json!({"name": "config", "configMap": {"name": "checkout-config"}})];
        if let Some(p) = &self.custom_proxy {
            if !self.gateway {
                containers.push(p.render());
                if p.volume_mount {
                    volumes.push(json!({"name": "extra-certs", "emptyDir": {}}));
                }
            }
        }
        let mut spec = json!({"containers": containers, "volumes": volumes});
        let mut init = Vec::new();
        if self.init_container {
            init.push(json!({"name": "init-db", "image": "busybox:1.36", "command": ["sh", "-c", "echo ready"]}));
        }
        if self.native_sidecar {
            init.push(json!({"name": "log-shipper", "image": "fluent/fluent-bit:3.0", "restartPolicy": "Always"}));
        }
        if !init.is_empty() {
            spec["initContainers"] = Value::Array(init);
        }
        if self.host_network {
            spec["hostNetwork"] = json!(true);
        }
        if let Some(s) = self.pod_security {
            spec["securityContext"] = match s {
                Security::RunAsUser(uid) => json!({"runAsUser": uid, "fsGroup": 2000}),
                Security::Restricted => {
                    json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
                }
                Security::Privileged => {
                    json!({"runAsUser": 0, "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]})
                }
            };
        }
        spec
    }
}

impl AppContainer {
    fn render(&self, index: usize) -> Value {
        let ports: Vec<(i64, Option<String>, bool)> = self
            .ports
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let number =
                    8080 + 10 * i64::try_from(index).unwrap_or(0) + i64::try_from(j).unwrap_or(0);
                (number, p.name.map(|n| format!("{n}-{index}{j}")), p.udp)
            })
            .collect();
        let mut c = json!({
            "name": format!("app-{index}"),
            "image": format!("registry.example.com/shop/app-{index}:2.4.1"),
        });
        if !ports.is_empty() {
            c["ports"] = Value::Array(
                ports
                    .iter()
                    .map(|(number, name, udp)| {
                        let mut p = json!({"containerPort": number, "protocol": if *udp { "UDP" } else { "TCP" }});
                        if let Some(n) = name {
                            p["name"] = json!(n);
                        }
                        p
                    })
                    .collect(),
            );
        }
        let first_number = ports
            .first()
            .map_or(8080 + 10 * i64::try_from(index).unwrap_or(0), |p| p.0);
        let first_name = ports.iter().find_map(|p| p.1.clone());
        for (field, probe) in [
            ("readinessProbe", &self.readiness),
            ("livenessProbe", &self.liveness),
            ("startupProbe", &self.startup),
        ] {
            if let Some(p) = probe {
                c[field] = p.render(first_number, first_name.as_deref());
            }
        }
        if let Some(s) = self.security {
            c["securityContext"] = match s {
                Security::RunAsUser(uid) => json!({"runAsUser": uid}),
                Security::Restricted => json!({
                    "allowPrivilegeEscalation": false,
                    "runAsNonRoot": true,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"}
                }),
                Security::Privileged => json!({"privileged": true}),
            };
        }
        if self.resources {
            c["resources"] = json!({"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "0.5Gi"}});
        }
        if self.env > 0 {
            c["env"] = Value::Array(
                (0..self.env)
                    .map(|i| json!({"name": format!("SETTING_{i}"), "value": format!("value-{i}")}))
                    .collect(),
            );
        }
        c["volumeMounts"] = json!([{"name": "config", "mountPath": "/etc/app"}]);
        c
    }
}

impl Probe {
    fn render(&self, number: i64, name: Option<&str>) -> Value {
        let port = match (self.port, name) {
            (PortForm::Named, Some(n)) => json!(n),
            _ => json!(number),
        };
        let mut p = match self.kind {
            ProbeKind::HttpGet { https, headers } => {
                let mut get = json!({"path": "/ready", "port": port});
                if https {
                    get["scheme"] = json!("HTTPS");
                }
                if headers {
                    get["httpHeaders"] = json!([{"name": "X-Probe", "value": "kubelet"}]);
                }
                json!({"httpGet": get})
            }
            ProbeKind::TcpSocket => json!({"tcpSocket": {"port": port}}),
            // A gRPC probe's port is a number only.
            ProbeKind::Grpc => json!({"grpc": {"port": number, "service": "health"}}),
            ProbeKind::Exec => json!({"exec": {"command": ["cat", "/tmp/healthy"]}}),
        };
        if self.timing {
            for (k, v) in [
                ("initialDelaySeconds", 5),
                ("periodSeconds", 10),
                ("timeoutSeconds", 2),
                ("failureThreshold", 3),
            ] {
                p[k] = json!(v);
            }
        }
        p
    }
}

impl CustomProxy {
    fn render(&self) -> Value {
        let image = if self.auto_image {
            "auto"
        } else {
            "docker.io/istio/proxyv2:1.23.0"
        };
        let mut c = json!({"name": "istio-proxy", "image": image});
        if self.resources {
            c["resources"] = json!({"requests": {"cpu": "50m", "memory": "64Mi"}});
        }
        if self.env {
            c["env"] = json!([{"name": "EXTRA_PROXY_SETTING", "value": "1"}]);
        }
        if let Some(uid) = self.run_as_user {
            c["securityContext"] = json!({"runAsUser": uid});
        }
        if self.volume_mount {
            c["volumeMounts"] = json!([{"name": "extra-certs", "mountPath": "/etc/extra-certs"}]);
        }
        c
    }
}

// ---------------------------------------------------------------------------------------------
// Running cases

fn case_count() -> usize {
    std::env::var("REVHOOK_ORACLE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn seed() -> u64 {
    std::env::var("REVHOOK_ORACLE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

fn runner(seed: u64) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        RunnerConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// `count` cases as value trees (so a failing one can be shrunk).
fn generate(count: usize) -> (u64, Vec<Box<dyn ValueTree<Value = Case>>>) {
    let seed = seed();
    let mut runner = runner(seed);
    let strategy = case().boxed();
    let trees = (0..count)
        .map(|_| strategy.new_tree(&mut runner).expect("generate a case"))
        .collect();
    (seed, trees)
}

/// Shrinks a failing case: simplifies while `fails` holds, as proptest's runner does.
fn shrink(
    mut tree: Box<dyn ValueTree<Value = Case>>,
    mut fails: impl FnMut(&Case) -> bool,
) -> Case {
    let mut last_failure = tree.current();
    let mut steps = 0;
    if !tree.simplify() {
        return last_failure;
    }
    while steps < MAX_SHRINK_STEPS {
        steps += 1;
        let candidate = tree.current();
        if fails(&candidate) {
            last_failure = candidate;
            if !tree.simplify() {
                break;
            }
        } else if !tree.complicate() {
            break;
        }
    }
    last_failure
}

/// Istio's outcome for one case matches the generator's expectation (and a skipped document
/// comes back unchanged, an injected one with Istio's status annotation).
fn oracle_disagreement(case: &Case, outcome: &Outcome) -> Option<String> {
    if outcome.kind() != case.expect {
        return Some(format!(
            "expected {:?}, Istio: {:?}{}",
            case.expect,
            outcome.kind(),
            match outcome {
                Outcome::Refused(e) => format!(" ({})", e.trim()),
                _ => String::new(),
            }
        ));
    }
    match outcome {
        Outcome::Skipped(obj) => {
            let d = differences(&normalize(&case.doc), &normalize(obj));
            (!d.is_empty()).then(|| format!("skipped but changed: {d:?}"))
        }
        Outcome::Injected(obj) => {
            let template = if obj["kind"] == "Pod" {
                &obj["metadata"]
            } else {
                &obj["spec"]["template"]["metadata"]
            };
            template["annotations"]["sidecar.istio.io/status"]
                .as_str()
                .is_none()
                .then(|| "injected without sidecar.istio.io/status".to_owned())
        }
        Outcome::Refused(_) => None,
    }
}

#[test]
fn oracle_accepts_or_refuses_generated_pods_as_expected() {
    let Some(oracle) = oracle() else { return };
    let (seed, trees) = generate(case_count());
    let cases: Vec<Case> = trees.iter().map(|t| t.current()).collect();
    let docs: Vec<Value> = cases.iter().map(|c| c.doc.clone()).collect();
    let started = std::time::Instant::now();
    let outcomes = run_oracle(oracle, &docs);
    let elapsed = started.elapsed();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for o in &outcomes {
        *tally.entry(format!("{:?}", o.kind())).or_default() += 1;
    }
    eprintln!(
        "istio oracle: {} generated cases (seed {seed}) in {:.2}s: {tally:?}",
        cases.len(),
        elapsed.as_secs_f64()
    );
    let failing = cases
        .iter()
        .zip(&outcomes)
        .position(|(c, o)| oracle_disagreement(c, o).is_some());
    if let Some(i) = failing {
        let first = oracle_disagreement(&cases[i], &outcomes[i]).unwrap_or_default();
        let tree = trees.into_iter().nth(i).expect("tree");
        let minimal = shrink(tree, |c| {
            oracle_disagreement(c, &run_oracle(oracle, std::slice::from_ref(&c.doc))[0]).is_some()
        });
        let why = oracle_disagreement(
            &minimal,
            &run_oracle(oracle, std::slice::from_ref(&minimal.doc))[0],
        );
        panic!(
            "case {i} (seed {seed}, REVHOOK_ORACLE_SEED={seed} reproduces): {first}\nshrunk to:\n{}\n{why:?}",
            serde_json::to_string_pretty(&minimal.doc).expect("json")
        );
    }
    // The generator must reach every outcome, or it tests less than it says.
    if cases.len() >= DEFAULT_CASES {
        for kind in ["Injected", "Skipped", "Refused"] {
            assert!(
                tally.contains_key(kind),
                "no {kind} case in {} (seed {seed}): {tally:?}",
                cases.len()
            );
        }
    }
}

/// The oracle's two paths, as Istio's own inject test checks them: the webhook (an
/// AdmissionReview through `inject.NewWebhook`'s handler, its patch applied) and kube-inject give
/// the same pod for a fixture of the load mix.
#[test]
fn oracle_webhook_and_kube_inject_agree() {
    let Some(oracle) = oracle() else { return };
    let review_path = repo().join("tests/fixtures/pod-create-prod-stable.json");
    let review: Value =
        serde_json::from_slice(&std::fs::read(&review_path).expect("fixture")).expect("json");
    let out = Command::new(&oracle.bin)
        .arg("--webhook")
        .arg(&review_path)
        .arg("--injector")
        .arg(&oracle.configmaps)
        .arg("--mesh")
        .arg(&oracle.configmaps)
        .output()
        .expect("run istio-oracle");
    assert!(
        out.status.success(),
        "istio-oracle --webhook: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let webhook: Value = serde_json::from_slice(&out.stdout).expect("a pod");
    let pod = review["request"]["object"].clone();
    let kube_inject = match &run_oracle(oracle, std::slice::from_ref(&pod))[0] {
        Outcome::Injected(o) => o.clone(),
        other => panic!("kube-inject: {other:?}"),
    };
    let names = |p: &Value, field: &str| -> Vec<String> {
        p["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(names(&webhook, "containers"), ["checkout", "istio-proxy"]);
    assert_eq!(names(&webhook, "initContainers"), ["istio-init"]);
    assert_eq!(
        differences(&normalize(&kube_inject), &normalize(&webhook)),
        Vec::<String>::new()
    );
}

/// The side-by-side benchmark's pods (2, 8, 32, 64 KiB and the load mix's, as the oracle's
/// `--bench` sends them) come out of revhook as out of Istio's injector, field by field: the
/// README's ratios compare the same work.
#[test]
fn the_benchmarks_pods_are_injected_alike() {
    let Some(oracle) = oracle() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(&oracle.bin)
        .args(["--bench", "--benchtime", "1ns", "--bench-dump"])
        .arg(dir.path())
        .arg("--fixtures")
        .arg(repo().join("tests/fixtures"))
        .output()
        .expect("run istio-oracle --bench");
    assert!(
        out.status.success(),
        "istio-oracle --bench: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dump")
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "2KiB.json",
            "32KiB.json",
            "64KiB.json",
            "8KiB.json",
            "mix-inject.json",
            "mix-opt-out.json"
        ]
    );
    let pods: Vec<Value> = names
        .iter()
        .map(|name| {
            let review: Value =
                serde_json::from_slice(&std::fs::read(dir.path().join(name)).expect("review"))
                    .expect("an AdmissionReview");
            review["request"]["object"].clone()
        })
        .collect();
    let (istio, revhook) = both(oracle, &pods);
    for ((name, istio), revhook) in names.iter().zip(&istio).zip(&revhook) {
        let expected = if name.contains("opt-out") {
            Expect::Skipped
        } else {
            Expect::Injected
        };
        assert_eq!(istio.kind(), expected, "{name}: Istio {istio:?}");
        assert_eq!(compare(istio, revhook), None, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// The differential test

fn fixtures_dir() -> PathBuf {
    repo().join("tests/fixtures/oracle")
}

/// Saved regression cases: `<name>.json` (the input; `<name>.istio.yaml`,
/// `<name>.revhook.yaml` and `<name>.diff.txt` beside it are what was seen when it was saved).
fn saved_cases() -> Vec<(String, Value)> {
    let Ok(entries) = std::fs::read_dir(fixtures_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Value)> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("fixture");
            let name = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).expect("fixture is JSON"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Injected(v) | Outcome::Skipped(v) => {
            revhook::core::yaml::to_string(v).expect("yaml")
        }
        Outcome::Refused(e) => format!("# refused\n# {}\n", e.trim().replace('\n', "\n# ")),
    }
}

/// Saves a regression case (input and both outputs); returns its name.
fn save_fixture(doc: &Value, istio: &Outcome, revhook: &Outcome, diff: &[String]) -> String {
    let input = serde_json::to_string_pretty(doc).expect("json");
    let name = format!("case-{:016x}", fnv(&input));
    let dir = fixtures_dir();
    std::fs::create_dir_all(&dir).expect("fixtures dir");
    std::fs::write(dir.join(format!("{name}.json")), input + "\n").expect("write");
    std::fs::write(dir.join(format!("{name}.istio.yaml")), outcome_text(istio)).expect("write");
    std::fs::write(
        dir.join(format!("{name}.revhook.yaml")),
        outcome_text(revhook),
    )
    .expect("write");
    std::fs::write(dir.join(format!("{name}.diff.txt")), diff.join("\n") + "\n").expect("write");
    name
}

fn both(oracle: &Oracle, docs: &[Value]) -> (Vec<Outcome>, Vec<Outcome>) {
    let istio = run_oracle(oracle, docs);
    let revhook = run_revhook(oracle, docs, &istio);
    (istio, revhook)
}

#[test]
fn revhook_injects_what_istio_injects() {
    let Some(oracle) = oracle() else { return };
    let mut failures = Vec::new();

    // Saved regressions first.
    let saved = saved_cases();
    let saved_docs: Vec<Value> = saved.iter().map(|(_, d)| d.clone()).collect();
    let (istio, revhook) = both(oracle, &saved_docs);
    for ((name, _), (i, r)) in saved.iter().zip(istio.iter().zip(&revhook)) {
        if let Some(d) = compare(i, r) {
            failures.push(format!("saved case {name}:\n  {}", d.join("\n  ")));
        }
    }

    // Then generated ones; the first difference is shrunk and saved.
    let (seed, trees) = generate(case_count());
    let cases: Vec<Case> = trees.iter().map(|t| t.current()).collect();
    let docs: Vec<Value> = cases.iter().map(|c| c.doc.clone()).collect();
    let started = std::time::Instant::now();
    let (istio, revhook) = both(oracle, &docs);
    let differing: Vec<usize> = (0..docs.len())
        .filter(|&i| compare(&istio[i], &revhook[i]).is_some())
        .collect();
    eprintln!(
        "istio oracle vs revhook: {} saved and {} generated cases (seed {seed}) in {:.2}s: {} generated differ",
        saved.len(),
        docs.len(),
        started.elapsed().as_secs_f64(),
        differing.len()
    );
    if let Some(&first) = differing.first() {
        let tree = trees.into_iter().nth(first).expect("tree");
        let minimal = shrink(tree, |c| {
            let (i, r) = both(oracle, std::slice::from_ref(&c.doc));
            compare(&i[0], &r[0]).is_some()
        });
        let (i, r) = both(oracle, std::slice::from_ref(&minimal.doc));
        let diff = compare(&i[0], &r[0]).unwrap_or_default();
        let name = save_fixture(&minimal.doc, &i[0], &r[0], &diff);
        failures.push(format!(
            "{} of {} generated cases differ (seed {seed}); the first, shrunk, is saved as tests/fixtures/oracle/{name}.json:\n  {}",
            differing.len(),
            docs.len(),
            diff.join("\n  ")
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------------------
// The normalization itself

#[test]
fn quantities_compare_by_value() {
    for (a, b) in [
        ("1", "1000m"),
        ("0.5", "500m"),
        ("1Gi", "1073741824"),
        ("1Gi", "1024Mi"),
        ("2000m", "2"),
        ("1e3", "1k"),
        ("0.5Gi", "512Mi"),
    ] {
        assert_eq!(parse_quantity(a), parse_quantity(b), "{a} = {b}");
        assert!(parse_quantity(a).is_some(), "{a} parses");
    }
    assert_ne!(parse_quantity("1G"), parse_quantity("1Gi"));
    assert_eq!(parse_quantity("12XB"), None);
    assert_eq!(parse_quantity("1n"), Some(1));
}

#[test]
fn normalization_drops_only_representation() {
    let istio = json!({
        "metadata": {"creationTimestamp": null, "annotations": {"s": "{\"a\":1,\"b\":[1,2]}"}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "2"}}, "securityContext": {},
            "env": [{"name": "J", "value": "[{\"x\": 1, \"y\": 2}]"}]}]},
        "status": {}
    });
    let revhook = json!({
        "metadata": {"annotations": {"s": "{\"b\": [1, 2], \"a\": 1}"}},
        "spec": {"containers": [{"env": [{"value": "[{\"y\":2,\"x\":1}]", "name": "J"}], "name": "c",
            "resources": {"limits": {"cpu": "2000m"}}}]}
    });
    assert_eq!(normalize(&istio), normalize(&revhook));
    let mut other = revhook.clone();
    other["spec"]["containers"][0]["resources"]["limits"]["cpu"] = json!("2001m");
    assert_eq!(
        differences(&normalize(&istio), &normalize(&other)),
        vec![format!(
            ".spec.containers[0].resources.limits.cpu: istio \"q:2000000000\" / revhook \"q:2001000000\""
        )]
    );
    let mut order = revhook;
    order["spec"]["containers"][0]["env"] =
        json!([{"name": "J", "value": "[{\"x\":1}]"}, {"name": "K", "value": "1"}]);
    assert!(!differences(&normalize(&istio), &normalize(&order)).is_empty());
}
