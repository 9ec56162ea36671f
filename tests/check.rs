//! `revhook check` over dump fixtures: a base dump of a healthy mid-upgrade cluster and, in
//! `cases/`, small overlays that each add one problem (objects that replace or join the
//! base's, and `# remove:` lines). Each case says in its header which findings it expects
//! (`# expect: CODES`, `# expect ARGS: CODES` for extra flags), so a new file is a new case.
//! Exit codes, output formats, the gates and the migration progress's JSON on top.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use revhook::core::yaml;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check")
}

/// One case: its expectations and the dump it makes, written where `check` can read it.
struct Case {
    name: String,
    /// (extra args, expected codes) per `# expect` line.
    expect: Vec<(Vec<String>, BTreeSet<String>)>,
    dump: PathBuf,
    _dir: tempfile::TempDir,
}

/// (kind, namespace, name) of a dumped object.
fn key(o: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        s(&o["kind"]),
        s(&o["metadata"]["namespace"]),
        s(&o["metadata"]["name"]),
    )
}

/// `Kind/namespace/name` or `Kind/name`.
fn removal(spec: &str) -> (String, String, String) {
    let parts: Vec<&str> = spec.trim().split('/').collect();
    match parts.as_slice() {
        [kind, name] => ((*kind).into(), String::new(), (*name).into()),
        [kind, ns, name] => ((*kind).into(), (*ns).into(), (*name).into()),
        _ => panic!("bad remove line {spec:?}"),
    }
}

fn codes_list(list: &str) -> BTreeSet<String> {
    match list.trim() {
        "none" => BTreeSet::new(),
        codes => codes.split(',').map(|c| c.trim().to_owned()).collect(),
    }
}

fn load_case(name: &str) -> Case {
    let path = fixtures().join("cases").join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let base: Value =
        yaml::parse(&std::fs::read_to_string(fixtures().join("base.yaml")).expect("base"))
            .expect("base yaml");
    let mut items: Vec<Value> = base["items"].as_array().expect("items").clone();
    let mut expect = Vec::new();
    let mut stream = false;
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let line = line.trim_start_matches('#').trim();
        if let Some(rest) = line.strip_prefix("expect") {
            let (args, list) = rest.split_once(':').expect("expect ARGS: CODES");
            let args = args.split_whitespace().map(str::to_owned).collect();
            expect.push((args, codes_list(list)));
        } else if let Some(spec) = line.strip_prefix("remove:") {
            let gone = removal(spec);
            let before = items.len();
            items.retain(|o| key(o) != gone);
            assert_eq!(
                items.len() + 1,
                before,
                "{name}: nothing to remove for {spec}"
            );
        } else if line == "format: stream" {
            stream = true;
        }
    }
    assert!(
        !expect.is_empty(),
        "{name}: a case must say what it expects"
    );
    let body = text.split_once("\n---\n").map_or("", |(_, b)| b);
    for doc in yaml::documents(body).expect("overlay yaml") {
        match items.iter_mut().find(|o| key(o) == key(&doc)) {
            Some(existing) => *existing = doc,
            None => items.push(doc),
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = dir.path().join(format!("{name}.yaml"));
    let text = if stream {
        items
            .iter()
            .map(|o| yaml::to_string(o).expect("yaml"))
            .collect::<Vec<_>>()
            .join("---\n")
    } else {
        let mut list = base.clone();
        list["items"] = Value::Array(items);
        yaml::to_string(&list).expect("yaml")
    };
    std::fs::write(&dump, text).expect("write dump");
    Case {
        name: name.to_owned(),
        expect,
        dump,
        _dir: dir,
    }
}

fn case_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join("cases"))
        .expect("cases dir")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".yaml"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

fn check(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_revhook"))
        .arg("check")
        .args(args)
        .output()
        .expect("revhook check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn codes(case: &Case, extra: &[String]) -> BTreeSet<String> {
    let path = case.dump.display().to_string();
    let mut args = vec![
        "--from-file",
        path.as_str(),
        "-o",
        "json",
        "--fail-on",
        "warning",
    ];
    args.extend(extra.iter().map(String::as_str));
    let (_, stdout, stderr) = check(&args);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{}: {e}: {stdout} {stderr}", case.name));
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] != "info" || f["code"] == "REVHOOK-REVISION-UNUSED")
        .map(|f| f["code"].as_str().expect("code").to_owned())
        .collect()
}

#[test]
fn each_problem_is_found_exactly_where_it_is() {
    let names = case_names();
    assert!(names.len() >= 40, "cases: {names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let case = load_case(name);
        for (args, want) in &case.expect {
            let got = codes(&case, args);
            if &got != want {
                failures.push(format!("{name} {args:?}: want {want:?}, got {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn exit_codes_follow_fail_on() {
    let clean_case = load_case("clean");
    let clean = clean_case.dump.display().to_string();
    assert_eq!(check(&["--from-file", &clean]).0, Some(0));
    let stale_case = load_case("stale-namespace");
    let stale = stale_case.dump.display().to_string();
    assert_eq!(
        check(&["--from-file", &stale]).0,
        Some(1),
        "an error fails by default"
    );
    let old_case = load_case("old-proxy-image");
    let old = old_case.dump.display().to_string();
    assert_eq!(
        check(&["--from-file", &old]).0,
        Some(0),
        "a warning passes --fail-on error"
    );
    assert_eq!(
        check(&["--from-file", &old, "--fail-on", "warning"]).0,
        Some(1)
    );
    let (code, _, stderr) = check(&["--from-file", "/nonexistent/dump.yaml"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, _) = check(&["--from-file", &clean, "--fail-on", "sometimes"]);
    assert_eq!(code, Some(2), "usage errors exit 2");
}

#[test]
fn findings_carry_fixes_istio_codes_and_a_summary() {
    let case = load_case("old-proxy-image");
    let path = case.dump.display().to_string();
    let (_, stdout, _) = check(&["--from-file", &path, "-o", "json"]);
    let report: Value = serde_json::from_str(&stdout).expect("json");
    let f = &report["findings"][0];
    assert_eq!(f["code"], "REVHOOK-PROXY-IMAGE");
    assert_eq!(f["istio_code"], "IST0158");
    assert_eq!(
        f["fix"], "kubectl rollout restart deployment/web -n shop",
        "one restart per workload"
    );
    assert!(f["message"]
        .as_str()
        .expect("message")
        .starts_with("2 pod(s)"));
    let revisions = report["revisions"].as_array().expect("summary");
    assert_eq!(revisions[0]["revision"], "asm-1-22");
    assert_eq!(
        revisions[0]["tags"],
        serde_json::json!(["default", "prod-stable"])
    );
    assert_eq!(revisions[0]["namespaces"], serde_json::json!(["shop"]));
    assert_eq!(revisions[0]["pods"], 2);

    let (_, table, _) = check(&["--from-file", &path]);
    assert!(
        table.contains("REVHOOK-PROXY-IMAGE")
            && table.contains("IST0158")
            && table.contains("fix: kubectl rollout restart"),
        "{table}"
    );
    let (_, yaml, _) = check(&["--from-file", &path, "-o", "yaml"]);
    assert!(yaml.contains("code: REVHOOK-PROXY-IMAGE"), "{yaml}");
}

/// `check -o json` on a case with extra flags: exit code and the report.
fn json(case: &Case, extra: &[&str]) -> (Option<i32>, Value) {
    let path = case.dump.display().to_string();
    let mut args = vec!["--from-file", path.as_str(), "-o", "json"];
    args.extend(extra);
    let (code, stdout, stderr) = check(&args);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{}: {e}: {stdout} {stderr}", case.name));
    (code, report)
}

#[test]
fn migration_progress_has_stable_fields_per_namespace_and_revision() {
    let case = load_case("pods-on-previous-revision");
    let (code, report) = json(&case, &[]);
    assert_eq!(code, Some(0), "warnings pass --fail-on error");
    let shop = report["progress"]
        .as_array()
        .expect("progress")
        .iter()
        .find(|p| p["namespace"] == "shop")
        .expect("shop's progress");
    assert_eq!(
        shop,
        &serde_json::json!({
            "namespace": "shop",
            "revision": "asm-1-23",
            "pods": 2,
            "on_target": 0,
            "left": 2,
            "restarts": [{
                "workload": "Deployment/shop/web",
                "command": "kubectl rollout restart deployment/web -n shop",
                "pods": 2
            }]
        })
    );
    let canary = &report["revisions"][1];
    assert_eq!(canary["revision"], "asm-1-23");
    assert_eq!(canary["target_pods"], 3);
    assert_eq!(canary["left"], 2);
    assert_eq!(canary["service"], "istio-system/istiod-asm-1-23");
    assert_eq!(
        canary["deployment"],
        serde_json::json!({"name": "istiod-asm-1-23", "replicas": 2, "ready": 2})
    );
    assert_eq!(canary["ready_endpoints"], 2);
    assert!(report.get("gate").is_none(), "no gate asked");
}

#[test]
fn the_removal_gate_exits_1_while_anything_is_on_the_revision() {
    let base = load_case("clean");
    let (code, report) = json(&base, &["--before-remove", "asm-1-22"]);
    assert_eq!(code, Some(1));
    let gate = &report["gate"];
    assert_eq!(gate["kind"], "before-remove");
    assert_eq!(gate["revision"], "asm-1-22");
    assert_eq!(gate["clear"], false);
    let blocking: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == "REVHOOK-GATE-REMOVE")
        .map(|f| f["object"].as_str().expect("object"))
        .collect();
    assert_eq!(
        blocking,
        [
            "Deployment/shop/web",
            "Namespace/shop",
            "Tag/default",
            "Tag/prod-stable"
        ]
    );
    assert_eq!(gate["left"], blocking.len());

    let unused = load_case("unused-revision");
    let (code, report) = json(&unused, &["--before-remove", "asm-1-24"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["gate"]["left"], 0);
    assert_eq!(report["gate"]["clear"], true);
    assert_eq!(
        report["gate"]["removal"],
        serde_json::json!([
            "kubectl delete service,deployment,horizontalpodautoscaler,poddisruptionbudget istiod-asm-1-24 -n istio-system --ignore-not-found",
            "kubectl delete configmap istio-sidecar-injector-asm-1-24 -n istio-system"
        ])
    );
    let path = unused.dump.display().to_string();
    let (_, table, _) = check(&["--from-file", &path, "--before-remove", "asm-1-24"]);
    assert!(
        table.contains("GATE before removing revision asm-1-24: 0 left (clear)")
            && table.contains("then remove the revision:"),
        "{table}"
    );
}

#[test]
fn the_tag_move_gate_counts_pods_left_until_restarted() {
    let before = load_case("clean");
    let (code, report) = json(&before, &["--before-tag-move", "prod-stable=asm-1-23"]);
    assert_eq!(code, Some(1));
    let gate = &report["gate"];
    assert_eq!(gate["kind"], "before-tag-move");
    assert_eq!(gate["tag"], "prod-stable");
    assert_eq!(gate["left"], 2);
    assert_eq!(gate["progress"][0]["namespace"], "shop");
    assert_eq!(gate["progress"][0]["left"], 2);
    let after = load_case("gate-tag-moved-and-restarted");
    let (code, report) = json(&after, &["--before-tag-move", "prod-stable=asm-1-23"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["gate"]["left"], 0);
    let path = before.dump.display().to_string();
    let (code, _, stderr) = check(&["--from-file", &path, "--before-tag-move", "prod-stable"]);
    assert_eq!(
        code,
        Some(2),
        "a malformed TAG=REVISION is a usage error: {stderr}"
    );
    let (code, _, _) = check(&[
        "--from-file",
        &path,
        "--before-remove",
        "asm-1-22",
        "--before-tag-move",
        "prod-stable=asm-1-23",
    ]);
    assert_eq!(code, Some(2), "one gate at a time");
}

#[test]
fn the_readme_lists_every_code_check_can_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let start = readme
        .find("## Troubleshooting an upgrade: `revhook check`")
        .expect("the check section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut codes = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("src/check")).expect("src/check") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("source");
        for (i, _) in text.match_indices("\"REVHOOK-") {
            let code: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '-')
                .collect();
            codes.insert(code);
        }
    }
    assert!(codes.len() >= 30, "found only {codes:?}");
    let missing: Vec<&String> = codes
        .iter()
        .filter(|c| !section.contains(c.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "codes not in the README's check table: {missing:?}"
    );
}

#[test]
fn refusals_are_classified_with_the_guides_fixes() {
    let case = load_case("refused-causes");
    let (code, report) = json(&case, &[]);
    assert_eq!(code, Some(1), "{report}");
    let fixes: std::collections::BTreeMap<&str, &str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == "REVHOOK-PODS-REFUSED")
        .map(|f| {
            (
                f["object"].as_str().expect("object"),
                f["fix"].as_str().expect("a fix"),
            )
        })
        .collect();
    let want = [
        (
            "StatefulSet/shop/cache",
            "the injector's pods are not ready",
        ),
        ("DaemonSet/shop/agent", "caBundle does not match"),
        ("Job/payments/report", "Service istiod-asm-1-21 is gone"),
        (
            "ReplicaSet/payments/api-9a8",
            "kubectl delete validatingwebhookconfiguration istio-validator-asm-1-20-istio-system",
        ),
    ];
    assert_eq!(
        fixes.len(),
        want.len(),
        "the quota refusal is not a webhook's: {fixes:?}"
    );
    for (object, fix) in want {
        assert!(
            fixes.get(object).is_some_and(|f| f.contains(fix)),
            "{object}: want a fix with {fix:?}, got {:?}",
            fixes.get(object)
        );
    }
}
