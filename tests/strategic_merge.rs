//! revhook's strategic merge (`revhook::inject::strategic`) held against apimachinery's own,
//! run by the Go oracle in `tests/smp-oracle` (built once per test run into the target dir):
//! - the schema table against the struct tags Go's reflection reads;
//! - fixed cases from `tests/fixtures/strategic/` (each with the expected pod or error, checked
//!   on the Rust side always and against Go when Go is there);
//! - generated pods and patches (containers, env, ports, volume mounts, volumes, labels,
//!   finalizers, nulls, duplicate keys, directives, wrong types), every one equal as JSON
//!   (numbers compared as Go's float64), all batched through one oracle process.
//!
//! Go is an external tool: without it the Go checks skip with a message, except with
//! `CI=true`, where that is a failure. `REVHOOK_SMP_CASES` sets the number of generated cases
//! (default 300), `REVHOOK_SMP_SEED` their seed (default fixed).
//! `REVHOOK_SMP_WRITE_SCHEMA=1` rewrites `src/inject/strategic/pod_types.rs` from Go.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use revhook::inject::strategic::{self, merge_pod, StrategicError};
use serde_json::{json, Value};

// === the oracle ===

/// The Go toolchain, or `None` (skip) outside CI; in CI a missing Go is a failure.
fn find_go() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    let found = on_path
        .into_iter()
        .map(|dir| dir.join("go"))
        .chain([PathBuf::from("/usr/local/go/bin/go")])
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "go is required in CI (CI=true) and was not found"
        );
        eprintln!("SKIP: go not found; the comparison with apimachinery did not run");
    }
    found
}

/// `tests/smp-oracle`, built once per test run.
fn oracle() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let go = find_go()?;
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("smp-oracle");
            let status = Command::new(go)
                .args(["build", "-o"])
                .arg(&out)
                .arg(".")
                .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smp-oracle"))
                .env("GOFLAGS", "-mod=readonly")
                .env("GOTOOLCHAIN", "local")
                .env("CGO_ENABLED", "0")
                .status()
                .expect("run go build");
            assert!(status.success(), "go build of tests/smp-oracle failed");
            Some(out)
        })
        .as_deref()
}

/// What apimachinery made of one case.
#[derive(Debug, Clone)]
enum Go {
    Merged(Value),
    Error(String),
    Panic(String),
}

impl std::fmt::Display for Go {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Go::Merged(v) => write!(f, "merged: {v}"),
            Go::Error(e) => write!(f, "error: {e}"),
            Go::Panic(p) => write!(f, "panic: {p}"),
        }
    }
}

/// Runs every case through one oracle process.
fn go_merge(oracle: &Path, cases: &[(Value, Value)]) -> Vec<Go> {
    let mut input = String::new();
    for (pod, patch) in cases {
        writeln!(input, "{}", json!({"pod": pod, "patch": patch})).expect("write to string");
    }
    let mut child = Command::new(oracle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start smp-oracle");
    let mut stdin = child.stdin.take().expect("oracle stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("smp-oracle output");
    writer.join().expect("writer thread").expect("write cases");
    assert!(output.status.success(), "smp-oracle failed");
    let lines: Vec<Go> = String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("oracle line");
            if let Some(merged) = v.get("ok") {
                Go::Merged(merged.clone())
            } else if let Some(e) = v.get("error").and_then(Value::as_str) {
                Go::Error(e.to_owned())
            } else if let Some(p) = v.get("panic").and_then(Value::as_str) {
                Go::Panic(p.to_owned())
            } else {
                panic!("oracle line without an outcome: {line}")
            }
        })
        .collect();
    assert_eq!(lines.len(), cases.len(), "one oracle line per case");
    lines
}

/// Equality as Go sees the JSON: numbers are float64.
fn go_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| go_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| go_equal(v, w)))
        }
        _ => a == b,
    }
}

fn rust_merge(pod: &Value, patch: &Value) -> Result<Value, StrategicError> {
    let mut merged = pod.clone();
    merge_pod(&mut merged, patch.clone()).map(|()| merged)
}

/// Where revhook refuses on purpose (Go's answer is not a function of the input, or the
/// directive is not supported); any Go outcome is accepted there, and counted.
fn is_refusal(e: &StrategicError) -> bool {
    matches!(
        e,
        StrategicError::GoUndefined { .. } | StrategicError::Unsupported { .. }
    )
}

#[derive(Debug, Default)]
struct Tally {
    merged: usize,
    failed: usize,
    panicked: usize,
    refused: usize,
}

/// Compares one case; `Err` describes a disagreement.
fn compare(rust: &Result<Value, StrategicError>, go: &Go, tally: &mut Tally) -> Result<(), String> {
    match (rust, go) {
        (Ok(r), Go::Merged(g)) if go_equal(r, g) => {
            tally.merged += 1;
            Ok(())
        }
        (Err(e), _) if is_refusal(e) => {
            tally.refused += 1;
            Ok(())
        }
        (Err(StrategicError::GoPanics { .. }), Go::Panic(_)) => {
            tally.panicked += 1;
            Ok(())
        }
        (Err(_), Go::Error(_) | Go::Panic(_)) => {
            tally.failed += 1;
            Ok(())
        }
        (Ok(r), Go::Merged(g)) => Err(format!("results differ\n rust: {r}\n   go: {g}")),
        (Ok(r), go) => Err(format!("rust merged, go failed\n rust: {r}\n   go: {go:?}")),
        (Err(e), go) => Err(format!(
            "rust failed, go did not\n rust: {e}\n   go: {go:?}"
        )),
    }
}

// === the schema table ===

#[test]
fn schema_table_is_what_apimachinery_reads_from_the_struct_tags() {
    let Some(oracle) = oracle() else { return };
    let out = Command::new(oracle)
        .arg("schema")
        .output()
        .expect("run smp-oracle schema");
    assert!(out.status.success(), "smp-oracle schema failed");
    let go: Value = serde_json::from_slice(&out.stdout).expect("schema JSON");
    if std::env::var_os("REVHOOK_SMP_WRITE_SCHEMA").is_some() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/inject/strategic/pod_types.rs");
        std::fs::write(&path, rust_table(&go)).expect("write the table");
        eprintln!("wrote {}; rebuild and run again", path.display());
        return;
    }
    let ours = strategic::describe_schema();
    let (Value::Array(go), Value::Array(ours)) = (&go, &ours) else {
        panic!("both schemas are lists")
    };
    for (i, (g, o)) in go.iter().zip(ours).enumerate() {
        assert_eq!(
            g, o,
            "type {i} differs (REVHOOK_SMP_WRITE_SCHEMA=1 rewrites the table)"
        );
    }
    assert_eq!(go.len(), ours.len(), "number of types");
    let merge_lists = go
        .iter()
        .flat_map(|t| t["fields"].as_array().into_iter().flatten())
        .filter(|f| f["strategy"].as_str().is_some_and(|s| s.contains("merge")))
        .count();
    eprintln!(
        "schema: {} Go types reachable from Pod, {merge_lists} fields merged by strategy",
        go.len()
    );
}

/// The Rust source of `pod_types.rs` for Go's schema dump.
fn rust_table(go: &Value) -> String {
    let mut out = String::from(
        "//! The Go types reachable from `corev1.Pod` (k8s.io/api v0.37.2, see\n\
         //! `tests/smp-oracle/go.mod`), with the `patchStrategy` and `patchMergeKey` tags of their\n\
         //! fields, as apimachinery's reflection reads them: written by\n\
         //! `REVHOOK_SMP_WRITE_SCHEMA=1 cargo test --test strategic_merge schema` from\n\
         //! `smp-oracle schema`, and that test fails when the two differ.\n\n\
         use super::schema::{Field, Kind, Ty};\n\n\
         const fn f(name: &'static str, ty: u16, strategy: &'static str, merge_key: &'static str, omit_empty: bool) -> Field {\n    \
         Field { name, ty, strategy, merge_key, omit_empty }\n}\n\n\
         #[rustfmt::skip]\npub(super) static TYPES: &[Ty] = &[\n",
    );
    for (i, t) in go.as_array().expect("types").iter().enumerate() {
        let name = t["name"].as_str().expect("name");
        let elem = &t["elem"];
        let kind = match t["kind"].as_str().expect("kind") {
            "struct" => {
                let mut fields = String::new();
                for f in t["fields"].as_array().into_iter().flatten() {
                    writeln!(
                        fields,
                        "        f({}, {}, {}, {}, {}),",
                        f["name"], f["type"], f["strategy"], f["mergeKey"], f["omitEmpty"]
                    )
                    .expect("write");
                }
                if fields.is_empty() {
                    "Kind::Struct(&[])".to_owned()
                } else {
                    format!("Kind::Struct(&[\n{fields}    ])")
                }
            }
            "ptr" => format!("Kind::Pointer({elem})"),
            "slice" => format!("Kind::Slice({elem})"),
            "array" => format!("Kind::Array({elem})"),
            "map" => format!("Kind::Map({elem})"),
            leaf => format!("Kind::Leaf({leaf:?})"),
        };
        writeln!(out, "    /* {i} */ Ty {{ name: {name:?}, kind: {kind} }},").expect("write");
    }
    out.push_str("];\n");
    out
}

// === fixed cases ===

/// `tests/fixtures/strategic/*.json`: `{"about", "pod", "patch"}` and either `"expect"` (the
/// merged pod) or `"error"` (the `StrategicError` variant); `"go": "merges"` marks a refusal
/// where Go gives an answer (the default for errors is that Go fails too).
#[test]
fn fixed_cases_merge_as_expected_and_as_apimachinery_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/strategic");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 20, "fixtures missing from {}", dir.display());
    let cases: Vec<(String, Value)> = paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("read fixture");
            let name = p.file_stem().expect("name").to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).expect("fixture JSON"))
        })
        .collect();
    let mut failures = Vec::new();
    for (name, case) in &cases {
        let got = rust_merge(&case["pod"], &case["patch"]);
        match (
            &got,
            case.get("expect"),
            case.get("error").and_then(Value::as_str),
        ) {
            (Ok(got), Some(want), None) if go_equal(got, want) => {}
            (Err(e), None, Some(variant)) if format!("{e:?}").starts_with(variant) => {}
            _ => failures.push(format!("{name}: got {got:?}")),
        }
    }
    assert!(failures.is_empty(), "fixtures:\n{}", failures.join("\n"));

    let Some(oracle) = oracle() else { return };
    let inputs: Vec<(Value, Value)> = cases
        .iter()
        .map(|(_, c)| (c["pod"].clone(), c["patch"].clone()))
        .collect();
    for ((name, case), go) in cases.iter().zip(go_merge(oracle, &inputs)) {
        let go_merges = case.get("go").and_then(Value::as_str) == Some("merges");
        match (&go, case.get("expect")) {
            (Go::Merged(g), Some(want)) if go_equal(g, want) => {}
            (Go::Merged(_), None) if go_merges => {}
            (Go::Error(_) | Go::Panic(_), None) if !go_merges => {}
            _ => failures.push(format!("{name}: apimachinery gives {go}")),
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures against Go:\n{}",
        failures.join("\n")
    );
    eprintln!("{} fixed cases agree with apimachinery", cases.len());
}

// === generated cases ===

fn pick(names: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::sample::select(names).prop_map(Value::from).boxed()
}

/// A merge key: mostly from a small set (so pod and patch collide), now and then a value Go
/// compares differently (null, a number, an object).
fn key_value(names: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        40 => pick(names),
        1 => Just(Value::Null),
        1 => Just(json!(7)),
        1 => Just(json!({})),
    ]
    .boxed()
}

/// An object from optional fields; `nulls` lets any field be null.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>, nulls: bool) -> BoxedStrategy<Value> {
    let parts: Vec<BoxedStrategy<Option<(&'static str, Value)>>> = fields
        .into_iter()
        .map(|(name, value)| {
            let value = if nulls {
                prop_oneof![8 => value, 1 => Just(Value::Null)].boxed()
            } else {
                value
            };
            prop::option::weighted(0.6, value.prop_map(move |v| (name, v))).boxed()
        })
        .collect();
    parts
        .prop_map(|parts| {
            Value::Object(
                parts
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            )
        })
        .boxed()
}

/// A list item keyed by `key`: usually with its key, rarely without.
fn keyed(
    key: &'static str,
    names: &'static [&'static str],
    fields: Vec<(&'static str, BoxedStrategy<Value>)>,
    nulls: bool,
) -> BoxedStrategy<Value> {
    (
        prop::option::weighted(0.97, key_value(names)),
        object(fields, nulls),
    )
        .prop_map(move |(k, mut item)| {
            if let (Some(k), Value::Object(m)) = (k, &mut item) {
                m.insert(key.to_owned(), k);
            }
            item
        })
        .boxed()
}

/// A list of keyed items; in a patch also `$patch` items, and now and then an item of
/// another type.
fn keyed_list(
    key: &'static str,
    key_value: BoxedStrategy<Value>,
    item: BoxedStrategy<Value>,
    patch: bool,
) -> BoxedStrategy<Value> {
    let directive = prop_oneof![
        12 => key_value.prop_map(move |k| json!({"$patch": "delete", key: k})),
        4 => Just(json!({"$patch": "replace"})),
        1 => Just(json!({"$patch": "merge"})),
        1 => Just(json!({"$patch": "bogus", key: "x"})),
    ];
    let entry = if patch {
        prop_oneof![30 => item, 4 => directive, 1 => Just(json!("junk")), 1 => Just(Value::Null)]
            .boxed()
    } else {
        prop_oneof![60 => item, 1 => Just(json!("junk")), 1 => Just(Value::Null)].boxed()
    };
    prop::collection::vec(entry, 0..5)
        .prop_map(Value::Array)
        .boxed()
}

fn string_map(keys: &'static [&'static str], nulls: bool) -> BoxedStrategy<Value> {
    let value = if nulls {
        prop_oneof![6 => "[a-c]{0,2}".prop_map(Value::from), 1 => Just(Value::Null)].boxed()
    } else {
        "[a-c]{0,2}".prop_map(Value::from).boxed()
    };
    prop::collection::btree_map(prop::sample::select(keys), value, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
        .boxed()
}

const CONTAINERS: &[&str] = &["app", "istio-proxy", "istio-validation", "web"];
const ENV: &[&str] = &["A", "B", "PROXY_CONFIG", "ISTIO_META_POD_PORTS"];
const MOUNTS: &[&str] = &[
    "/etc/istio/proxy",
    "/var/run/secrets/tokens",
    "/data",
    "/tmp",
];
const VOLUMES: &[&str] = &["istio-envoy", "istio-data", "istio-token", "data"];

fn env_var(patch: bool) -> BoxedStrategy<Value> {
    let value_from = object(
        vec![(
            "fieldRef",
            object(
                vec![("fieldPath", pick(&["metadata.name", "spec.nodeName"]))],
                patch,
            ),
        )],
        patch,
    );
    keyed(
        "name",
        ENV,
        vec![
            ("value", "[xy]{0,2}".prop_map(Value::from).boxed()),
            ("valueFrom", value_from),
        ],
        patch,
    )
}

fn port_number() -> BoxedStrategy<Value> {
    prop_oneof![
        20 => prop::sample::select(&[80, 8080, 15090, 15021][..]).prop_map(Value::from),
        2 => Just(json!(80.0)),
        1 => Just(json!("80")),
        1 => Just(json!({})),
    ]
    .boxed()
}

fn port(patch: bool) -> BoxedStrategy<Value> {
    let number = port_number();
    let item = object(
        vec![
            ("name", pick(&["http", "http-envoy-prom", "metrics"])),
            ("protocol", pick(&["TCP", "UDP"])),
        ],
        patch,
    );
    (prop::option::weighted(0.97, number), item)
        .prop_map(|(n, mut item)| {
            if let (Some(n), Value::Object(m)) = (n, &mut item) {
                m.insert("containerPort".into(), n);
            }
            item
        })
        .boxed()
}

fn container(patch: bool) -> BoxedStrategy<Value> {
    let mounts = keyed(
        "mountPath",
        MOUNTS,
        vec![
            ("name", pick(VOLUMES)),
            ("readOnly", any::<bool>().prop_map(Value::from).boxed()),
        ],
        patch,
    );
    let resources = object(
        vec![
            ("limits", string_map(&["cpu", "memory"], patch)),
            ("requests", string_map(&["cpu", "memory"], patch)),
        ],
        patch,
    );
    let security = object(
        vec![
            (
                "runAsUser",
                pick(&["1337"]).prop_map(|_| json!(1337)).boxed(),
            ),
            ("privileged", any::<bool>().prop_map(Value::from).boxed()),
        ],
        patch,
    );
    keyed(
        "name",
        CONTAINERS,
        vec![
            ("image", pick(&["proxyv2:1.29", "app:1", "auto"])),
            (
                "args",
                prop::collection::vec(pick(&["proxy", "sidecar", "--v"]), 0..3)
                    .prop_map(Value::Array)
                    .boxed(),
            ),
            (
                "env",
                keyed_list("name", key_value(ENV), env_var(patch), patch),
            ),
            (
                "ports",
                keyed_list("containerPort", port_number(), port(patch), patch),
            ),
            (
                "volumeMounts",
                keyed_list("mountPath", key_value(MOUNTS), mounts, patch),
            ),
            ("resources", resources),
            ("securityContext", security),
        ],
        patch,
    )
}

fn volume(patch: bool) -> BoxedStrategy<Value> {
    let source = prop_oneof![
        Just(("emptyDir", json!({"medium": "Memory"}))),
        Just(("emptyDir", json!({}))),
        Just(("configMap", json!({"name": "istio-ca-root-cert"}))),
        Just(("secret", json!({"secretName": "certs"}))),
        Just((
            "downwardAPI",
            json!({"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]})
        )),
    ];
    let retain = prop::option::weighted(
        0.15,
        prop::sample::subsequence(
            &["name", "emptyDir", "configMap", "secret", "downwardAPI"][..],
            0..4,
        ),
    );
    (keyed("name", VOLUMES, vec![], patch), source, retain)
        .prop_map(move |(mut v, (kind, src), retain)| {
            if let Value::Object(m) = &mut v {
                m.insert(kind.into(), src);
                if let (true, Some(retain)) = (patch, retain) {
                    m.insert("$retainKeys".into(), json!(retain));
                }
            }
            v
        })
        .boxed()
}

fn metadata(patch: bool) -> BoxedStrategy<Value> {
    let finalizers = prop::collection::vec(pick(&["a", "b", "c"]), 0..4).prop_map(Value::Array);
    let owners = keyed(
        "uid",
        &["u1", "u2"],
        vec![("name", pick(&["rs-1", "rs-2"]))],
        patch,
    );
    let mut fields = vec![
        ("name", pick(&["pod-a"])),
        (
            "labels",
            string_map(&["app", "istio.io/rev", "version"], patch),
        ),
        (
            "annotations",
            string_map(
                &[
                    "sidecar.istio.io/inject",
                    "prometheus.io/port",
                    "kubectl.kubernetes.io/default-container",
                ],
                patch,
            ),
        ),
        ("finalizers", finalizers.boxed()),
        (
            "ownerReferences",
            keyed_list("uid", key_value(&["u1", "u2"]), owners, patch),
        ),
    ];
    if patch {
        let deletions = prop::collection::vec(pick(&["a", "b"]), 0..2).prop_map(Value::Array);
        fields.push(("$deleteFromPrimitiveList/finalizers", deletions.boxed()));
    }
    object(fields, patch)
}

fn pod_like(patch: bool) -> BoxedStrategy<Value> {
    let spec = object(
        vec![
            (
                "containers",
                keyed_list("name", key_value(CONTAINERS), container(patch), patch),
            ),
            (
                "initContainers",
                keyed_list("name", key_value(CONTAINERS), container(patch), patch),
            ),
            (
                "volumes",
                keyed_list("name", key_value(VOLUMES), volume(patch), patch),
            ),
            (
                "imagePullSecrets",
                keyed_list(
                    "name",
                    key_value(&["pull"]),
                    keyed("name", &["pull"], vec![], patch),
                    patch,
                ),
            ),
            ("serviceAccountName", pick(&["default", "bookinfo"])),
            (
                "tolerations",
                prop::collection::vec(object(vec![("key", pick(&["k"]))], patch), 0..2)
                    .prop_map(Value::Array)
                    .boxed(),
            ),
            // not a field of PodSpec: merged by Go only while one side lacks it
            (
                "x-unknown",
                prop_oneof![Just(json!({"a": 1})), Just(json!([1])), Just(json!("s"))].boxed(),
            ),
            // wrong types for known fields
            (
                "hostname",
                prop_oneof![Just(json!("h")), Just(json!({"a": 1})), Just(json!(["h"]))].boxed(),
            ),
        ],
        patch,
    );
    let mut fields = vec![("metadata", metadata(patch)), ("spec", spec)];
    if patch {
        // at the root it names `finalizers`, which Pod does not have
        fields.push((
            "$deleteFromPrimitiveList/finalizers",
            pick(&["a"]).prop_map(|v| json!([v])).boxed(),
        ));
    }
    object(fields, patch)
}

fn case_count() -> usize {
    std::env::var("REVHOOK_SMP_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

#[test]
fn generated_pods_and_patches_merge_as_apimachinery_does() {
    let Some(oracle) = oracle() else { return };
    let seed: u64 = std::env::var("REVHOOK_SMP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(14);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = (pod_like(false), pod_like(true));
    let cases: Vec<(Value, Value)> = (0..case_count())
        .map(|_| strategy.new_tree(&mut runner).expect("generate").current())
        .collect();
    let started = std::time::Instant::now();
    let rust: Vec<Result<Value, StrategicError>> = cases
        .iter()
        .map(|(pod, patch)| rust_merge(pod, patch))
        .collect();
    let rust_time = started.elapsed();
    let started = std::time::Instant::now();
    let go = go_merge(oracle, &cases);
    let go_time = started.elapsed();
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for (i, ((pod, patch), (r, g))) in cases.iter().zip(rust.iter().zip(&go)).enumerate() {
        if let Err(why) = compare(r, g, &mut tally) {
            failures.push(format!("case {i}: {why}\n  pod: {pod}\n  patch: {patch}"));
        }
    }
    eprintln!(
        "{} generated cases (seed {seed}): {tally:?}; rust {rust_time:?}, go (one process) {go_time:?}",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree with apimachinery:\n{}",
        failures.len(),
        cases.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    // The generator must reach both outcomes, or the comparison proves little.
    assert!(
        tally.merged * 4 > cases.len(),
        "too few cases merged: {tally:?}"
    );
    assert!(
        tally.failed + tally.panicked > 0,
        "no failing case generated: {tally:?}"
    );
}
