//! The `--config` file: revisions, tags, mesh settings and (for local use) namespace labels.
//!
//! ```yaml
//! mesh:                       # optional; Istio's defaults
//!   trustDomain: cluster.local
//!   clusterId: Kubernetes
//!   meshId: cluster.local
//!   istioNamespace: istio-system
//! revisions:                  # required, at least one
//!   - name: asm-1-23          # the istio.io/rev value
//!     image: docker.io/istio/proxyv2:1.23.0
//!     discoveryAddress: istiod-asm-1-23.istio-system.svc:15012   # optional
//!     cni: false              # optional: Istio CNI does the redirection
//!     nativeSidecar: false    # optional: proxy as a restartable init container
//!     cniProvider: default    # optional, with cni: `multus` adds the istio-cni network
//!     proxy:                  # optional; Istio's defaults
//!       cpu: 100m
//!       memory: 128Mi
//!       cpuLimit: "2"
//!       memoryLimit: 1Gi
//!       logLevel: warning
//!       componentLogLevel: misc:error
//!       concurrency: 2
//! tags:                       # optional: tag -> revision
//!   default: asm-1-23
//!   prod-stable: asm-1-23
//! namespaces:                 # optional: namespace -> labels, for local use and replay
//!   shop: { istio.io/rev: prod-stable }
//! ```

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::core::labels::NamespaceLabels;
use crate::core::revisions::{
    default_discovery_address, MeshSettings, ProxyDefaults, Revision, RevisionTable, TableError,
};

use crate::core::snapshot::Snapshot;

/// The configuration compiled into the binary (two canary revisions), used when no file is given.
pub const EMBEDDED: &str = include_str!("../default-config.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// serde_yaml names the field path and the line and column.
    #[error("{origin}: {source}")]
    Yaml {
        origin: String,
        source: serde_yaml::Error,
    },
    #[error("{origin}: {field}: {source}")]
    Table {
        origin: String,
        field: String,
        source: TableError,
    },
    #[error("{origin}: revisions: at least one revision is required")]
    NoRevisions { origin: String },
    #[error("{origin}: {field}: must not be empty")]
    Empty { origin: String, field: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    mesh: MeshSection,
    revisions: Vec<RevisionSection>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MeshSection {
    trust_domain: Option<String>,
    cluster_id: Option<String>,
    mesh_id: Option<String>,
    istio_namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevisionSection {
    name: String,
    image: String,
    discovery_address: Option<String>,
    #[serde(default)]
    cni: bool,
    #[serde(default)]
    native_sidecar: bool,
    /// `default` or `multus` (with `cni: true`).
    #[serde(default)]
    cni_provider: CniProvider,
    #[serde(default)]
    proxy: ProxySection,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CniProvider {
    #[default]
    Default,
    Multus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProxySection {
    cpu: Option<String>,
    memory: Option<String>,
    cpu_limit: Option<String>,
    memory_limit: Option<String>,
    log_level: Option<String>,
    component_log_level: Option<String>,
    concurrency: Option<u32>,
}

/// Parses a config file's text into a snapshot. `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<Snapshot, ConfigError> {
    let file: ConfigFile = serde_yaml::from_str(text).map_err(|source| ConfigError::Yaml {
        origin: origin.to_owned(),
        source,
    })?;
    if file.revisions.is_empty() {
        return Err(ConfigError::NoRevisions {
            origin: origin.to_owned(),
        });
    }
    let mesh = mesh_settings(file.mesh);
    let mut revisions = Vec::with_capacity(file.revisions.len());
    for (i, section) in file.revisions.into_iter().enumerate() {
        if section.image.trim().is_empty() {
            return Err(ConfigError::Empty {
                origin: origin.to_owned(),
                field: format!("revisions[{i}].image"),
            });
        }
        revisions.push(revision(section, &mesh));
    }
    let table = RevisionTable::new(revisions, file.tags).map_err(|source| {
        let field = match &source {
            TableError::TagNamedLikeRevision(t) => format!("tags.{t}"),
            TableError::DuplicateRevision(r) => format!("revisions (name {r:?})"),
            TableError::InvalidName(n) => format!("name {n:?}"),
        };
        ConfigError::Table {
            origin: origin.to_owned(),
            field,
            source,
        }
    })?;
    let namespaces: HashMap<String, NamespaceLabels> = file
        .namespaces
        .iter()
        .map(|(ns, labels)| {
            let pairs = labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            (ns.clone(), NamespaceLabels::from_pairs(pairs))
        })
        .collect();
    Ok(Snapshot::new(table, mesh, namespaces, origin))
}

/// Reads and parses a config file.
pub fn load(path: &std::path::Path) -> Result<Snapshot, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// The embedded default configuration.
pub fn embedded() -> Result<Snapshot, ConfigError> {
    parse(EMBEDDED, "embedded default config")
}

fn mesh_settings(m: MeshSection) -> MeshSettings {
    let d = MeshSettings::default();
    MeshSettings {
        trust_domain: m.trust_domain.unwrap_or(d.trust_domain),
        cluster_id: m.cluster_id.unwrap_or(d.cluster_id),
        mesh_id: m.mesh_id.unwrap_or(d.mesh_id),
        istio_namespace: m.istio_namespace.unwrap_or(d.istio_namespace),
    }
}

fn revision(s: RevisionSection, mesh: &MeshSettings) -> Revision {
    let d = ProxyDefaults::default();
    let p = s.proxy;
    Revision {
        discovery_address: s
            .discovery_address
            .unwrap_or_else(|| default_discovery_address(&s.name, &mesh.istio_namespace)),
        name: s.name,
        proxy_image: s.image,
        cni: s.cni,
        native_sidecar: s.native_sidecar,
        multus: s.cni && s.cni_provider == CniProvider::Multus,
        proxy: ProxyDefaults {
            cpu_request: p.cpu.unwrap_or(d.cpu_request),
            memory_request: p.memory.unwrap_or(d.memory_request),
            cpu_limit: p.cpu_limit.unwrap_or(d.cpu_limit),
            memory_limit: p.memory_limit.unwrap_or(d.memory_limit),
            log_level: p.log_level.unwrap_or(d.log_level),
            component_log_level: p.component_log_level.unwrap_or(d.component_log_level),
            concurrency: p.concurrency,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_has_two_revisions_and_three_tags() {
        let snap = embedded().expect("embedded config parses");
        let names: Vec<_> = snap.table.revisions().map(|r| r.name.clone()).collect();
        assert_eq!(names, vec!["asm-1-22", "asm-1-23"]);
        assert_eq!(snap.table.tag_target("default"), Some("asm-1-22"));
        assert_eq!(snap.table.tag_target("prod-stable"), Some("asm-1-22"));
        assert_eq!(snap.table.tag_target("prod-canary"), Some("asm-1-23"));
        assert!(snap.sidecar("asm-1-23").is_some());
    }

    #[test]
    fn full_schema_parses_with_overrides() {
        let text = r#"
mesh: { trustDomain: example.org, istioNamespace: aks-istio-system }
revisions:
  - name: asm-1-23
    image: example/proxyv2:1.23.0
    cni: true
    proxy: { cpu: 50m, concurrency: 2 }
tags: { prod-stable: asm-1-23 }
namespaces:
  shop: { istio.io/rev: prod-stable, team: a }
"#;
        let snap = parse(text, "test.yaml").expect("parses");
        let rev = snap.table.revision("asm-1-23").expect("revision");
        assert!(rev.cni);
        assert_eq!(rev.proxy.cpu_request, "50m");
        assert_eq!(rev.proxy.memory_request, "128Mi");
        assert_eq!(
            rev.discovery_address,
            "istiod-asm-1-23.aks-istio-system.svc:15012"
        );
        assert_eq!(snap.mesh.trust_domain, "example.org");
        assert_eq!(
            snap.namespace("shop").and_then(|n| n.rev.as_deref()),
            Some("prod-stable")
        );
    }

    #[test]
    fn errors_name_the_field_and_the_line() {
        let err = parse("revisions:\n  - name: a\n    imag: x\n", "f.yaml").expect_err("typo");
        let msg = err.to_string();
        assert!(msg.starts_with("f.yaml: revisions[0]"), "{msg}");
        assert!(msg.contains("imag") && msg.contains("line 3"), "{msg}");

        let err = parse("revisions:\n  - name: a\n", "f.yaml").expect_err("missing image");
        assert!(err.to_string().contains("missing field `image`"), "{err}");

        let err = parse("revisions: []\n", "f.yaml").expect_err("empty");
        assert!(err.to_string().contains("at least one revision"), "{err}");
    }

    #[test]
    fn tag_named_like_revision_is_refused_naming_the_tag() {
        let text = "revisions:\n  - {name: a, image: x}\ntags:\n  a: a\n";
        let msg = parse(text, "f.yaml").expect_err("collision").to_string();
        assert!(msg.contains("tags.a"), "{msg}");
    }
}
