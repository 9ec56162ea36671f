//! One case through the `revhook` binary, both ways, compared field by field with its golden.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use super::cases::Case;
use super::normalize::{differences, normalize, Difference};
use super::reference::Version;
use super::settings::Rendered;
use super::workload::{
    admission_review, go_shaped, injectable_parts, object_to_pod, request_namespace, yaml_docs,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Way {
    /// `revhook inject -f` (Istio's `IntoResourceFile`, which wrote the golden).
    KubeInject,
    /// `revhook replay --apply` on an AdmissionReview per pod (Istio's webhook check).
    Webhook,
}

impl std::fmt::Display for Way {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Way::KubeInject => "kube-inject",
            Way::Webhook => "webhook",
        })
    }
}

/// A case's documented difference: the fields it may differ in on one way, and why.
pub struct Exception {
    pub golden: &'static str,
    pub way: Way,
    /// Field paths (and everything below them) allowed to differ.
    pub fields: &'static [&'static str],
    pub reason: &'static str,
}

#[derive(Debug)]
pub enum Outcome {
    Equal,
    /// Differs only where a documented exception allows (the reason).
    Excepted(&'static str),
    Differs(Vec<Difference>),
    /// Failed with the expected message.
    FailedAsExpected,
    Error(String),
}

pub struct RunResult {
    pub version: String,
    pub case: Case,
    pub way: Way,
    pub outcome: Outcome,
}

/// Runs one case every way Istio's test runs it.
pub fn run_case(
    bin: &Path,
    version: &Version,
    case: &Case,
    rendered: &Rendered,
    exceptions: &[Exception],
) -> Vec<RunResult> {
    let mut results = Vec::new();
    let mut record = |way: Way, outcome: Outcome| {
        let outcome = match outcome {
            Outcome::Differs(diffs) => except(case, way, diffs, exceptions),
            other => other,
        };
        results.push(RunResult {
            version: version.label.clone(),
            case: case.clone(),
            way,
            outcome,
        });
    };
    if case.kube_inject {
        record(Way::KubeInject, kube_inject(bin, version, case, rendered));
    }
    if case.webhook {
        record(Way::Webhook, webhook(bin, version, case, rendered));
    }
    results
}

fn except(case: &Case, way: Way, diffs: Vec<Difference>, exceptions: &[Exception]) -> Outcome {
    let exception = exceptions
        .iter()
        .find(|e| e.way == way && case.golden.as_deref() == Some(e.golden));
    match exception {
        Some(e)
            if diffs
                .iter()
                .all(|d| e.fields.iter().any(|f| under(&d.path, f))) =>
        {
            Outcome::Excepted(e.reason)
        }
        _ => Outcome::Differs(diffs),
    }
}

/// `path` is `field` or below it.
fn under(path: &str, field: &str) -> bool {
    path.strip_prefix(field)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[', ' ']))
}

fn common_args<'a>(
    cmd: &'a mut Command,
    version: &Version,
    case: &Case,
    rendered: &Rendered,
) -> &'a mut Command {
    cmd.arg("--injector")
        .arg(&rendered.injector)
        .arg("--mesh")
        .arg(&rendered.mesh)
        .arg("--native-sidecars")
        .arg(case.native_sidecars.to_string());
    // The goldens' values say `tag: latest`: which version's rules apply is said here (an
    // oracle given by REVHOOK_GOLDEN_BIN is that version's own code and takes no such flag).
    if std::env::var_os("REVHOOK_GOLDEN_BIN").is_none() && version.label != "master" {
        cmd.arg("--istio-version")
            .arg(format!("1.{}", version.minor));
    }
    cmd
}

fn kube_inject(bin: &Path, version: &Version, case: &Case, rendered: &Rendered) -> Outcome {
    let input = version.inject_dir().join(&case.input);
    let mut cmd = Command::new(bin);
    cmd.args(["inject", "-f"]).arg(&input);
    let out = match common_args(&mut cmd, version, case, rendered).output() {
        Ok(out) => out,
        Err(e) => return Outcome::Error(format!("could not run revhook: {e}")),
    };
    if let Some(fragment) = &case.expected_error {
        return expected_failure(&out, fragment);
    }
    if !out.status.success() {
        return Outcome::Error(failure(&out));
    }
    if let Some(missing) = missing_warning(&out, case) {
        return Outcome::Error(missing);
    }
    let ours = match yaml_docs(&String::from_utf8_lossy(&out.stdout)) {
        Ok(docs) => docs,
        Err(e) => return Outcome::Error(format!("output is not YAML: {e}")),
    };
    let theirs = golden_docs(version, case);
    compare_documents(&ours, &theirs)
}

fn webhook(bin: &Path, version: &Version, case: &Case, rendered: &Rendered) -> Outcome {
    let input = read(&version.inject_dir().join(&case.input));
    let parts: Vec<Value> = docs_or_panic(&input, &case.input)
        .iter()
        .flat_map(injectable_parts)
        .collect();
    let wants: Vec<Value> = golden_docs(version, case)
        .iter()
        .flat_map(injectable_parts)
        .collect();
    if parts.len() != wants.len() {
        return Outcome::Error(format!(
            "{} pods in the input, {} in the golden",
            parts.len(),
            wants.len()
        ));
    }
    let mut diffs = Vec::new();
    for (i, (part, want)) in parts.iter().zip(&wants).enumerate() {
        let review = admission_review(
            &go_shaped(object_to_pod(part)),
            &request_namespace(part),
            &format!("istio-golden-{i}"),
        );
        let got = match replay(bin, version, case, rendered, &review) {
            Ok(pod) => pod,
            Err(e) => return Outcome::Error(e),
        };
        let prefix = if parts.len() > 1 {
            format!("[pod {i}] ")
        } else {
            String::new()
        };
        diffs.extend(
            differences(&normalize(&got), &normalize(&object_to_pod(want)))
                .into_iter()
                .map(|d| Difference {
                    path: format!("{prefix}{}", d.path),
                    ..d
                }),
        );
    }
    verdict(diffs)
}

fn replay(
    bin: &Path,
    version: &Version,
    case: &Case,
    rendered: &Rendered,
    review: &Value,
) -> Result<Value, String> {
    let mut file = tempfile::NamedTempFile::new().map_err(|e| format!("temp file: {e}"))?;
    file.write_all(review.to_string().as_bytes())
        .map_err(|e| format!("temp file: {e}"))?;
    let mut cmd = Command::new(bin);
    cmd.args(["replay", "--apply"]);
    let out = common_args(&mut cmd, version, case, rendered)
        .arg(file.path())
        .output()
        .map_err(|e| format!("could not run revhook: {e}"))?;
    if !out.status.success() {
        return Err(failure(&out));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("output is not one JSON pod: {e}"))
}

fn compare_documents(ours: &[Value], theirs: &[Value]) -> Outcome {
    if ours.len() != theirs.len() {
        return Outcome::Differs(vec![Difference {
            path: "(documents)".to_owned(),
            ours: Some(ours.len().into()),
            theirs: Some(theirs.len().into()),
        }]);
    }
    let many = ours.len() > 1;
    let diffs = ours
        .iter()
        .zip(theirs)
        .enumerate()
        .flat_map(|(i, (o, t))| {
            differences(&normalize(o), &normalize(t))
                .into_iter()
                .map(move |d| Difference {
                    path: if many {
                        format!("[doc {i}] {}", d.path)
                    } else {
                        d.path.clone()
                    },
                    ..d
                })
        })
        .collect();
    verdict(diffs)
}

fn verdict(diffs: Vec<Difference>) -> Outcome {
    if diffs.is_empty() {
        Outcome::Equal
    } else {
        Outcome::Differs(diffs)
    }
}

fn expected_failure(out: &Output, fragment: &str) -> Outcome {
    if out.status.success() {
        return Outcome::Error(format!(
            "expected an error mentioning {fragment:?}, but it succeeded"
        ));
    }
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    if stderr.contains(fragment) {
        Outcome::FailedAsExpected
    } else {
        Outcome::Error(format!(
            "expected an error mentioning {fragment:?}, got: {}",
            failure(out)
        ))
    }
}

/// Istio's kube-inject logs a warning for some cases (a host-network pod it leaves alone);
/// revhook's wording is its own, but it must warn and name the same workload.
fn missing_warning(out: &Output, case: &Case) -> Option<String> {
    let log = case.expected_log.as_deref()?;
    let workload = log.split('"').nth(1).unwrap_or(log);
    let stderr = String::from_utf8_lossy(&out.stderr);
    (!stderr.contains(workload)).then(|| {
        format!(
            "expected a warning naming {workload:?} (istioctl logs {log:?}), stderr: {stderr:?}"
        )
    })
}

fn failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let message: String = stderr.lines().take(3).collect::<Vec<_>>().join(" / ");
    format!("exit {}: {}", out.status.code().unwrap_or(-1), message)
}

pub fn golden_docs(version: &Version, case: &Case) -> Vec<Value> {
    let golden = case.golden.as_deref().unwrap_or_default();
    docs_or_panic(&read(&version.inject_dir().join(golden)), golden)
}

fn docs_or_panic(text: &str, name: &str) -> Vec<Value> {
    yaml_docs(text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_paths_cover_their_fields_only() {
        assert!(under(
            "spec.jobTemplate.metadata",
            "spec.jobTemplate.metadata"
        ));
        assert!(under(
            "spec.jobTemplate.metadata.annotations[\"istio.io/rev\"]",
            "spec.jobTemplate.metadata"
        ));
        assert!(!under(
            "spec.jobTemplate.metadataX",
            "spec.jobTemplate.metadata"
        ));
        assert!(!under("spec.jobTemplate.spec", "spec.jobTemplate.metadata"));
    }
}
