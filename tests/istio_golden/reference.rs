//! Where Istio's reference sets and the Helm CLI are, and what happens when they are not there:
//! under `CI=true` a missing one fails the test, elsewhere the test says why it skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One `../shared/reference/istio-<version>/` folder: one commit of istio/istio.
#[derive(Debug, Clone)]
pub struct Version {
    /// `1.22.0` … `1.30.0`, or `master`.
    pub label: String,
    /// Minor version, `master` sorting after every release.
    pub minor: u32,
    pub dir: PathBuf,
}

impl Version {
    pub fn inject_dir(&self) -> PathBuf {
        self.dir.join("inject")
    }
    pub fn inputs_dir(&self) -> PathBuf {
        self.dir.join("inputs")
    }
    pub fn chart_dir(&self) -> PathBuf {
        self.dir.join("chart")
    }
    pub fn inject_test_go(&self) -> PathBuf {
        self.dir.join("inject_test.go")
    }
    pub fn source_md(&self) -> PathBuf {
        self.dir.join("SOURCE.md")
    }
}

/// The reference root, or `None` (skip) outside CI; in CI its absence is a failure.
pub fn root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference");
    if root.is_dir() {
        return Some(root);
    }
    missing(&format!(
        "Istio's reference sets not found at {} (they live in shared/ beside the project)",
        root.display()
    ))
}

/// Every `istio-<version>/` folder (not the older `istio-1.23.0-inject/` duplicate), oldest first.
pub fn versions(root: &Path) -> Vec<Version> {
    let mut versions: Vec<Version> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let label = name.strip_prefix("istio-")?.to_owned();
            let minor = minor_of(&label)?;
            Some(Version {
                label,
                minor,
                dir: entry.path(),
            })
        })
        .collect();
    versions.sort_by_key(|v| v.minor);
    assert!(
        !versions.is_empty(),
        "no istio-<version>/ folder in {}",
        root.display()
    );
    versions
}

/// `1.22.0` → 22, `master` → after every release; anything else (`1.23.0-inject`) is not a set.
fn minor_of(label: &str) -> Option<u32> {
    if label == "master" {
        return Some(u32::MAX);
    }
    let mut parts = label.split('.');
    let (major, minor, patch) = (parts.next()?, parts.next()?, parts.next()?);
    if major != "1" || parts.next().is_some() || patch.parse::<u32>().is_err() {
        return None;
    }
    minor.parse().ok()
}

/// The Helm CLI: `helm` on PATH, else `target/tools/bin/helm` (where CI builds it).
pub fn helm() -> Option<PathBuf> {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/helm");
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("helm"))
        .find(|candidate| candidate.is_file());
    let found = on_path.or_else(|| built.is_file().then_some(built));
    match found {
        Some(helm) if runs(&helm) => Some(helm),
        _ => missing(
            "the Helm CLI was found neither on PATH nor at target/tools/bin/helm \
             (.ci/run builds it there)",
        ),
    }
}

fn runs(helm: &Path) -> bool {
    Command::new(helm)
        .arg("version")
        .output()
        .is_ok_and(|out| out.status.success())
}

fn missing<T>(message: &str) -> Option<T> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{message} (required under CI=true)"
    );
    eprintln!("SKIPPED: {message}");
    None
}

#[cfg(test)]
mod tests {
    use super::minor_of;

    #[test]
    fn version_labels_order_releases_before_master() {
        assert_eq!(minor_of("1.22.0"), Some(22));
        assert_eq!(minor_of("1.30.0"), Some(30));
        assert_eq!(minor_of("master"), Some(u32::MAX));
        assert_eq!(minor_of("1.23.0-inject"), None);
        assert_eq!(minor_of("2.0.0"), None);
    }
}
