//! Differential tests against Go itself: `tests/go-oracle` (Go's `sigs.k8s.io/yaml` and
//! go-yaml v2, fetched through the Go module proxy) answers the same questions as this
//! crate, and every answer must agree:
//!
//! - every YAML file of Istio's reference data in `../shared/reference/istio-*/` and of this
//!   repository, read as its first document and as a stream;
//! - generated YAML texts (values written in varied styles) and mutations of them;
//! - `to_string` against `yaml.Marshal` over generated JSON values.
//!
//! Go refusing a text means we must refuse it too; Go accepting it means we give the same
//! JSON. The oracle is built once per run into the target dir. Without Go or `../shared`
//! the test is skipped with a message, except under `CI=true`, where that is a failure.
//! `GOYAML_ORACLE_CASES` sets the number of generated cases per kind (default 400).

mod support;

use goyaml::ErrorKind;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use support::gen;

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn skip_or_fail(what: &str) {
    assert!(!in_ci(), "CI=true but {what}");
    eprintln!("{what}: skipping the Go oracle (CI=true makes this a failure)");
}

fn find_go() -> Option<PathBuf> {
    [PathBuf::from("go"), PathBuf::from("/usr/local/go/bin/go")]
        .into_iter()
        .find(|go| {
            Command::new(go)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// The oracle binary, built once per test run; `None` (after a message) without Go.
fn oracle() -> Option<&'static Path> {
    static ORACLE: OnceLock<Option<PathBuf>> = OnceLock::new();
    ORACLE
        .get_or_init(|| {
            let go = find_go()?;
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join("goyaml-go-oracle");
            let out = Command::new(go)
                .args(["build", "-o"])
                .arg(&bin)
                .arg(".")
                .current_dir(root.join("tests/go-oracle"))
                .output()
                .expect("run go build");
            assert!(
                out.status.success(),
                "building the Go oracle failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(bin)
        })
        .as_deref()
}

fn oracle_or_skip() -> Option<&'static Path> {
    let o = oracle();
    if o.is_none() {
        skip_or_fail("no Go toolchain");
    }
    o
}

/// Asks the oracle every request at once; one answer per request.
fn ask(bin: &Path, requests: &[Value]) -> Vec<Value> {
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Go oracle");
    let mut stdin = child.stdin.take().unwrap();
    let body: String = requests.iter().map(|r| format!("{r}\n")).collect();
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "Go oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), requests.len(), "one answer per request");
    answers
}

#[derive(Default)]
struct Tally {
    agreed_values: usize,
    agreed_errors: usize,
    refused: Vec<String>,
    failures: Vec<String>,
}

impl Tally {
    fn report(&self, what: &str) {
        eprintln!(
            "{what}: {} same values, {} refused by both, {} refused here only as unsupported",
            self.agreed_values,
            self.agreed_errors,
            self.refused.len()
        );
        let shown: Vec<&String> = self.failures.iter().take(12).collect();
        assert!(
            self.failures.is_empty(),
            "{what}: {} disagreements with Go, first ones:\n{}",
            self.failures.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n\n")
        );
    }
}

fn short(text: &str) -> String {
    if text.len() > 600 {
        let mut end = 600;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}…", &text[..end])
    } else {
        format!("{text:?}")
    }
}

/// Equal values, where floats may differ in the last bit: Go writes the shortest text for a
/// float64 and `serde_json` (without `float_roundtrip`) does not always read it back to the
/// nearest float.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x == y || (x.to_bits() as i64 - y.to_bits() as i64).abs() <= 1
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b)))
        }
        _ => a == b,
    }
}

/// Compares a reading of `text` with Go's answer (`json` for one document, `docs` for a
/// stream).
fn compare(
    tally: &mut Tally,
    name: &str,
    text: &str,
    ours: Result<Value, goyaml::Error>,
    go: &Value,
) {
    let go_value = go.get("json").or_else(|| go.get("docs")).cloned();
    match (ours, go.get("error")) {
        (Ok(v), None) => {
            let want = go_value.unwrap_or(Value::Null);
            if same(&v, &want) {
                tally.agreed_values += 1;
            } else {
                tally.failures.push(format!(
                    "{name}: values differ for {}\n  ours {v}\n  go   {want}",
                    short(text)
                ));
            }
        }
        (Err(_), Some(_)) => tally.agreed_errors += 1,
        (Err(e), None) if matches!(e.kind, ErrorKind::Unsupported | ErrorKind::TooDeep) => {
            tally.refused.push(format!("{name}: {e}"));
        }
        (Err(e), None) => tally.failures.push(format!(
            "{name}: we refuse ({e}) what Go reads as {} in {}",
            go_value.unwrap_or(Value::Null),
            short(text)
        )),
        (Ok(v), Some(e)) => tally.failures.push(format!(
            "{name}: Go refuses ({e}) what we read as {v} in {}",
            short(text)
        )),
    }
}

/// Reads every text both ways (first document, stream) here and in Go.
fn differential(bin: &Path, what: &str, cases: &[(String, String)]) -> Tally {
    let mut requests = Vec::new();
    for (_, text) in cases {
        requests.push(json!({"mode": "first", "input": text}));
        requests.push(json!({"mode": "stream", "input": text}));
    }
    let answers = ask(bin, &requests);
    let mut tally = Tally::default();
    for ((name, text), go) in cases.iter().zip(answers.chunks(2)) {
        compare(&mut tally, name, text, goyaml::from_str(text), &go[0]);
        let docs = goyaml::documents(text).map(Value::Array);
        compare(&mut tally, &format!("{name} (stream)"), text, docs, &go[1]);
    }
    eprintln!("{what}: {} texts", cases.len());
    tally
}

fn case_count() -> usize {
    std::env::var("GOYAML_ORACLE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn generate<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

#[test]
fn istio_reference_and_repository_yaml_read_as_go_reads_them() {
    let Some(bin) = oracle_or_skip() else { return };
    let Some(files) = support::corpus_files() else {
        skip_or_fail("../shared/reference is missing");
        return;
    };
    assert!(
        files.len() > 1000,
        "only {} reference files found",
        files.len()
    );
    let cases: Vec<(String, String)> = files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.display().to_string(), text)
        })
        .collect();
    let tally = differential(bin, "reference and repository YAML", &cases);
    assert!(
        tally.refused.is_empty(),
        "refused as unsupported: {:?}",
        tally.refused
    );
    assert!(tally.agreed_values > 2000, "too few values compared");
    tally.report("reference and repository YAML");
}

#[test]
fn generated_yaml_reads_as_go_reads_it() {
    let Some(bin) = oracle_or_skip() else { return };
    let n = case_count();
    let texts = generate(gen::yaml_text(), n);
    let mut cases: Vec<(String, String)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("generated #{i}"), t.clone()))
        .collect();
    let mutated = generate(gen::mutated_yaml_text(), n);
    cases.extend(
        mutated
            .into_iter()
            .enumerate()
            .map(|(i, t)| (format!("mutated #{i}"), t)),
    );
    cases.extend(
        gen::EDGE_CASES
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("edge case #{i}"), (*t).to_owned())),
    );
    let tally = differential(bin, "generated YAML", &cases);
    assert!(
        tally.agreed_values > n / 2,
        "too few generated texts were YAML"
    );
    tally.report("generated YAML");
}

#[test]
fn to_string_writes_what_go_marshal_writes() {
    let Some(bin) = oracle_or_skip() else { return };
    let n = case_count();
    let mut values = generate(gen::json_value(), n);
    values.extend(gen::edge_values());
    let requests: Vec<Value> = values
        .iter()
        .map(|v| json!({"mode": "marshal", "input": v.to_string()}))
        .collect();
    let answers = ask(bin, &requests);
    let mut failures = Vec::new();
    let mut refused = 0;
    for (v, go) in values.iter().zip(&answers) {
        let Some(want) = go.get("yaml").and_then(Value::as_str) else {
            // Go's Marshal fails; so must we (and `to_string` is "", as Istio's toYaml).
            match goyaml::try_to_string(v) {
                Err(_) if goyaml::to_string(v).is_empty() => refused += 1,
                other => failures.push(format!("Go refuses {v} ({go}); we give {other:?}")),
            }
            continue;
        };
        let ours = goyaml::to_string(v);
        if ours != want {
            failures.push(format!("for {v}\n  ours {ours:?}\n  go   {want:?}"));
        }
        // What we write reads back as the value (where Go keeps it exactly).
        if gen::exact_in_go(v) {
            match goyaml::from_str(&ours) {
                Ok(back) if back == *v => {}
                other => failures.push(format!("{ours:?} reads back as {other:?}, not {v}")),
            }
        }
    }
    eprintln!("marshal: {refused} values refused by Go and by us");
    eprintln!("marshal: {} values", values.len());
    assert!(
        failures.is_empty(),
        "{} disagreements with Go's Marshal, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
