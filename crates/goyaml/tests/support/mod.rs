//! Shared by the black-box tests: where the YAML corpus is, and generators of YAML texts and
//! JSON values.
#![allow(dead_code)]

pub mod gen;

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn is_yaml(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".injected")
}

fn yaml_files_in(dir: &Path, recurse: bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() {
            if recurse && name != "target" && name != ".git" && name != "go-oracle" {
                yaml_files_in(&p, recurse, out);
            }
        } else if is_yaml(&p) {
            out.push(p);
        }
    }
}

/// Istio's reference files (`inject/`, `inputs/`, the chart's `values.yaml` and `files/`
/// of every `istio-*` folder) and this repository's YAML fixtures, sorted; `None` when
/// `../shared/reference` is missing.
pub fn corpus_files() -> Option<Vec<PathBuf>> {
    let root = workspace();
    let reference = root.join("../shared/reference");
    let versions = std::fs::read_dir(&reference).ok()?;
    let mut files = Vec::new();
    for v in versions.flatten() {
        if !v.file_name().to_string_lossy().starts_with("istio-") {
            continue;
        }
        let v = v.path();
        for sub in ["inject", "inputs", "chart/files"] {
            yaml_files_in(&v.join(sub), false, &mut files);
        }
        let values = v.join("chart/values.yaml");
        if values.exists() {
            files.push(values);
        }
    }
    for sub in ["manifests", "tests", "src", "crates"] {
        yaml_files_in(&root.join(sub), true, &mut files);
    }
    files.sort();
    Some(files)
}
