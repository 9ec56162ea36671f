//! `revhook check` over dump fixtures that each hold one problem (and a clean one): every
//! finding appears exactly when it should; exit codes and output formats.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/check")
        .join(name)
        .display()
        .to_string()
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

fn codes(file: &str, extra: &[&str]) -> BTreeSet<String> {
    let path = fixture(file);
    let mut args = vec![
        "--from-file",
        path.as_str(),
        "-o",
        "json",
        "--fail-on",
        "warning",
    ];
    args.extend_from_slice(extra);
    let (_, stdout, stderr) = check(&args);
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{file}: {e}: {stdout} {stderr}"));
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
    let expected: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).expect("expected"))
            .expect("json");
    assert!(expected.len() >= 14);
    for (file, want) in &expected {
        let want: BTreeSet<String> = want
            .as_array()
            .expect("codes")
            .iter()
            .map(|c| c.as_str().expect("code").to_owned())
            .collect();
        assert_eq!(codes(file, &[]), want, "{file}");
    }
}

#[test]
fn aks_hints_only_with_platform_aks() {
    assert!(codes("aks-injection-label.yaml", &[]).is_empty());
    let aks = codes("aks-injection-label.yaml", &["--platform", "aks"]);
    assert!(aks.contains("REVHOOK-AKS-INJECTION-LABEL"), "{aks:?}");
}

#[test]
fn exit_codes_follow_fail_on() {
    let clean = fixture("clean.yaml");
    assert_eq!(check(&["--from-file", &clean]).0, Some(0));
    let stale = fixture("stale-namespace.yaml");
    assert_eq!(
        check(&["--from-file", &stale]).0,
        Some(1),
        "an error fails by default"
    );
    let old = fixture("old-proxy-image.yaml");
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
    let path = fixture("old-proxy-image.yaml");
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
