//! The `--config` file: revisions, tags, mesh settings and (for local use) namespace labels.
//!
//! ```yaml
//! mesh:                       # optional; Istio's defaults
//!   trustDomain: cluster.local
//!   clusterId: Kubernetes
//!   meshId: cluster.local
//!   network: ""               # values.global.network: the proxies' network
//!   istioNamespace: istio-system
//!   # trustDomain, clusterId, meshId and network, when given, apply to every revision, also
//!   # over a revision's own injector values and mesh file

//! revisions:                  # required, at least one
//!   - name: asm-1-23          # the istio.io/rev value
//!     # The revision's own injector: its `istio-sidecar-injector-<rev>` ConfigMap (templates
//!     # and values) and its `istio-<rev>` mesh ConfigMap (or a MeshConfig), as
//!     # `kubectl get configmap -o yaml` prints them; paths relative to this file. Without
//!     # `injector`, revhook's own sidecar template is used.
//!     injector: asm-1-23/istio-sidecar-injector.yaml   # optional
//!     mesh: asm-1-23/istio.yaml                         # optional
//!     istioVersion: "1.23"    # optional: whose rules apply (else from values.global.tag)
//!     image: docker.io/istio/proxyv2:1.23.0   # optional with `injector`: overrides its image
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
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::core::injector::{
    self, IdentityOverride, InjectorProblem, InjectorSource, IstioVersion, RevisionOverlay,
};
use crate::core::labels::NamespaceLabels;
use crate::core::revisions::{MeshSettings, Revision, RevisionTable, TableError};

use crate::core::snapshot::Snapshot;
use crate::core::yaml::YamlError;

/// The configuration compiled into the binary (two canary revisions), used when no file is given.
pub const EMBEDDED: &str = include_str!("../default-config.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file is not YAML or not of the config's shape: the field's path (when
    /// known) and the parser's message with the line and column.
    #[error("{origin}: {}{source}", field_prefix(path))]
    Config {
        origin: String,
        path: String,
        // Boxed: the parser's error is large, and every Result of this module carries it.
        source: Box<serde_saphyr::Error>,
    },
    /// A Kubernetes YAML file (an injector ConfigMap) that cannot be read as Go reads it.
    #[error("{origin}: {source}")]
    Yaml { origin: String, source: YamlError },
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
    #[error("{origin}: {field}: {value:?} is not an Istio version such as 1.23")]
    Version {
        origin: String,
        field: String,
        value: String,
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
    network: Option<String>,
    istio_namespace: Option<String>,
}

impl MeshSection {
    /// The identity fields the file gives explicitly.
    fn identity(&self) -> IdentityOverride {
        IdentityOverride {
            trust_domain: self.trust_domain.clone(),
            cluster_id: self.cluster_id.clone(),
            mesh_id: self.mesh_id.clone(),
            network: self.network.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevisionSection {
    name: String,
    /// An injector ConfigMap file (relative to the config file).
    injector: Option<String>,
    /// A mesh ConfigMap or MeshConfig file (relative to the config file).
    mesh: Option<String>,
    istio_version: Option<String>,
    image: Option<String>,
    discovery_address: Option<String>,
    cni: Option<bool>,
    native_sidecar: Option<bool>,
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

/// The config file's fields. Read with serde-saphyr rather than as JSON values: a typed
/// field sees the scalar's own text (`istioVersion: 1.20` stays "1.20"), and its errors carry
/// the line and column; serde_path_to_error adds the field's path (`revisions[0].cni`).
fn config_file(text: &str, origin: &str) -> Result<ConfigFile, ConfigError> {
    let options = serde_saphyr::options! { with_snippet: false };
    let mut track = serde_path_to_error::Track::new();
    serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        ConfigFile::deserialize(serde_path_to_error::Deserializer::new(de, &mut track))
    })
    .map_err(|source| ConfigError::Config {
        origin: origin.to_owned(),
        path: track.path().to_string(),
        source: Box::new(source),
    })
}

/// `revisions[0].image: ` before a message, nothing for an error of the whole file.
fn field_prefix(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// Parses a config file's text into a snapshot. `origin` names the file in errors; the
/// injector and mesh files revisions name are read relative to `base` (none for text that
/// is not from a file).
pub fn parse(text: &str, origin: &str) -> Result<Snapshot, ConfigError> {
    parse_in(text, origin, None)
}

pub fn parse_in(text: &str, origin: &str, base: Option<&Path>) -> Result<Snapshot, ConfigError> {
    let file = config_file(text, origin)?;
    if file.revisions.is_empty() {
        return Err(ConfigError::NoRevisions {
            origin: origin.to_owned(),
        });
    }
    let identity = file.mesh.identity();
    let mesh = mesh_settings(file.mesh);
    let mut revisions = Vec::with_capacity(file.revisions.len());
    for (i, section) in file.revisions.into_iter().enumerate() {
        revisions.push(revision(section, i, &mesh, &identity, origin, base)?);
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
pub fn load(path: &Path) -> Result<Snapshot, ConfigError> {
    let text = read(path)?;
    parse_in(&text, &path.display().to_string(), path.parent())
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
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
        network: m.network.unwrap_or(d.network),
        istio_namespace: m.istio_namespace.unwrap_or(d.istio_namespace),
        native_sidecars_auto: d.native_sidecars_auto,
    }
}

fn overlay(s: &RevisionSection, identity: &IdentityOverride) -> RevisionOverlay {
    let p = &s.proxy;
    RevisionOverlay {
        image: s.image.clone(),
        discovery_address: s.discovery_address.clone(),
        cni: s.cni,
        multus: s.cni == Some(true) && s.cni_provider == CniProvider::Multus,
        native_sidecar: s.native_sidecar,
        cpu: p.cpu.clone(),
        memory: p.memory.clone(),
        cpu_limit: p.cpu_limit.clone(),
        memory_limit: p.memory_limit.clone(),
        log_level: p.log_level.clone(),
        component_log_level: p.component_log_level.clone(),
        concurrency: p.concurrency,
        identity: identity.clone(),
    }
}

fn revision(
    s: RevisionSection,
    index: usize,
    mesh: &MeshSettings,
    identity: &IdentityOverride,
    origin: &str,
    base: Option<&Path>,
) -> Result<Revision, ConfigError> {
    let field = |f: &str| format!("revisions[{index}].{f}");
    let version = match &s.istio_version {
        None => None,
        Some(v) => Some(IstioVersion::parse(v).ok_or_else(|| ConfigError::Version {
            origin: origin.to_owned(),
            field: field("istioVersion"),
            value: v.clone(),
        })?),
    };
    let source = match &s.injector {
        None => {
            if s.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
                return Err(ConfigError::Empty {
                    origin: origin.to_owned(),
                    field: field("image"),
                });
            }
            injector::embedded_source(&s.name, mesh, &overlay(&s, identity))
        }
        Some(path) => own_injector_source(&s, path, identity, base)?,
    };
    let source = source.map(|mut src| {
        src.version = version.or(src.version);
        src
    });
    Ok(Revision::from_source(&s.name, source))
}

/// A revision's own injector from its files: the ConfigMap, its mesh file, then the
/// section's conveniences, then the identity the file's `mesh:` section gives explicitly (its
/// other fields are for revhook's own template: a revision's own mesh file says its istiod
/// address).
fn own_injector_source(
    s: &RevisionSection,
    path: &str,
    identity: &IdentityOverride,
    base: Option<&Path>,
) -> Result<Result<InjectorSource, InjectorProblem>, ConfigError> {
    let resolve = |p: &str| -> PathBuf {
        match base {
            Some(dir) => dir.join(p),
            None => PathBuf::from(p),
        }
    };
    let injector_text = read(&resolve(path))?;
    let mesh_text = match &s.mesh {
        Some(m) => Some(read(&resolve(m))?),
        None => None,
    };
    Ok(injector_source_from_files(
        &injector_text,
        mesh_text.as_deref(),
        &overlay(s, identity),
    ))
}

/// A snapshot of one revision from its injector ConfigMap file (and mesh file), as
/// `istioctl kube-inject --injectConfigFile --meshConfigFile` takes them: the revision named
/// as the ConfigMap names it, the `default` tag pointing at it.
pub fn from_injector_files(
    injector_text: &str,
    mesh_text: Option<&str>,
    native_sidecars: Option<bool>,
    version: Option<IstioVersion>,
    origin: &str,
) -> Result<Snapshot, ConfigError> {
    let doc = injector::configmap_holding(injector_text, "config").map_err(|source| {
        ConfigError::Yaml {
            origin: origin.to_owned(),
            source,
        }
    })?;
    let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
        serde_json::from_value(doc["metadata"].clone()).unwrap_or_default();
    let values: serde_json::Value = doc["data"]["values"]
        .as_str()
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    let name = crate::core::mapping::revision_name(&meta, &values);
    let source = injector_source_from_files(injector_text, mesh_text, &RevisionOverlay::default())
        .map(|mut s| {
            s.native_sidecars = native_sidecars.unwrap_or(s.native_sidecars);
            s.version = version;
            s
        });
    let revision = Revision::from_source(&name, source);
    let tags: Vec<(String, String)> = if name == crate::core::revisions::DEFAULT_TAG {
        Vec::new()
    } else {
        vec![(crate::core::revisions::DEFAULT_TAG.to_owned(), name.clone())]
    };
    let table = RevisionTable::new([revision], tags).map_err(|source| ConfigError::Table {
        origin: origin.to_owned(),
        field: "metadata".to_owned(),
        source,
    })?;
    Ok(Snapshot::new(
        table,
        MeshSettings::default(),
        HashMap::new(),
        origin,
    ))
}

/// The source of a revision from an injector ConfigMap and a mesh file's texts.
pub fn injector_source_from_files(
    injector_text: &str,
    mesh_text: Option<&str>,
    overlay: &RevisionOverlay,
) -> Result<InjectorSource, InjectorProblem> {
    let (config, values) = injector::configmap_parts(injector_text)?;
    let native = serde_json::from_str::<serde_json::Value>(&values)
        .ok()
        .and_then(|v| match &v["pilot"]["env"]["ENABLE_NATIVE_SIDECARS"] {
            serde_json::Value::String(s) if s == "true" => Some(true),
            serde_json::Value::Bool(b) => Some(*b),
            _ => None,
        })
        .unwrap_or(false);
    let mut source = InjectorSource {
        config,
        values,
        mesh: Vec::new(),
        native_sidecars: native,
        version: None,
    };
    if let Some(text) = mesh_text {
        source.mesh.push(injector::mesh_text(text)?);
    }
    injector::apply_overlay(&mut source, overlay)?;
    Ok(source)
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
        assert!(snap
            .table
            .revision("asm-1-23")
            .is_some_and(|r| r.injector.is_ok()));
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
        let inj = rev.injector.as_ref().expect("usable");
        assert_eq!(inj.values["istio_cni"]["enabled"], true);
        let requests = &inj.values["global"]["proxy"]["resources"]["requests"];
        assert_eq!(requests["cpu"], "50m");
        assert_eq!(requests["memory"], "128Mi");
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
    fn the_mesh_sections_identity_applies_to_every_revision_given_or_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("injector.yaml"),
            injector::EMBEDDED_INJECTOR,
        )
        .expect("write injector");
        std::fs::write(
            dir.path().join("mesh.yaml"),
            "trustDomain: own.example\ndefaultConfig: {discoveryAddress: istiod-own.istio-system.svc:15012}\n",
        )
        .expect("write mesh");
        let revisions = "revisions:
  - {name: own, injector: injector.yaml, mesh: mesh.yaml, istioVersion: \"1.23\"}
  - {name: embedded, image: example/proxyv2:1.23.0}
";
        let identity = |snap: &Snapshot, rev: &str| {
            snap.table
                .revision(rev)
                .and_then(|r| r.injector.as_ref().ok())
                .map(|i| i.identity())
                .expect("usable")
        };
        // Without a mesh section: the own revision's mesh file, Istio's defaults for the rest.
        let plain = parse_in(revisions, "f.yaml", Some(dir.path())).expect("parses");
        let own = identity(&plain, "own");
        assert_eq!(
            (
                own.trust_domain.as_str(),
                own.cluster_id.as_str(),
                own.mesh_id.as_str(),
                own.network.as_str()
            ),
            ("own.example", "Kubernetes", "own.example", "")
        );
        let embedded = identity(&plain, "embedded");
        assert_eq!(embedded.trust_domain, "cluster.local");
        // With one: the identity it gives wins everywhere; the istiod address stays the file's.
        let text = format!(
            "mesh: {{trustDomain: corp.example, clusterId: cluster-7, meshId: corp-mesh, network: net-a}}\n{revisions}"
        );
        let snap = parse_in(&text, "f.yaml", Some(dir.path())).expect("parses");
        for rev in ["own", "embedded"] {
            let id = identity(&snap, rev);
            assert_eq!(
                (
                    id.trust_domain.as_str(),
                    id.cluster_id.as_str(),
                    id.mesh_id.as_str(),
                    id.network.as_str()
                ),
                ("corp.example", "cluster-7", "corp-mesh", "net-a"),
                "{rev}"
            );
        }
        assert_eq!(
            snap.table
                .revision("own")
                .map(|r| r.discovery_address.as_str()),
            Some("istiod-own.istio-system.svc:15012")
        );
        assert_eq!(snap.mesh.network, "net-a");
    }

    #[test]
    fn errors_name_the_field_and_the_line() {
        let err = parse("revisions:\n  - name: a\n    imag: x\n", "f.yaml").expect_err("typo");
        let msg = err.to_string();
        assert!(msg.starts_with("f.yaml: revisions[0]"), "{msg}");
        assert!(msg.contains("imag") && msg.contains("line 3"), "{msg}");

        let err = parse("revisions:\n  - name: a\n", "f.yaml").expect_err("missing image");
        assert_eq!(
            err.to_string(),
            "f.yaml: revisions[0].image: must not be empty"
        );

        let err = parse("revisions: []\n", "f.yaml").expect_err("empty");
        assert!(err.to_string().contains("at least one revision"), "{err}");

        let err = parse(
            "revisions:\n  - name: a\n    image: x\n    proxy: {concurrency: -1}\n",
            "f.yaml",
        )
        .expect_err("negative");
        let msg = err.to_string();
        assert!(
            msg.starts_with("f.yaml: revisions[0].proxy.concurrency: ") && msg.contains("line 4"),
            "{msg}"
        );

        let err = parse("revisions: [\n", "f.yaml").expect_err("not yaml");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    /// A typed field reads the scalar's text: an unquoted version is not a number.
    #[test]
    fn versions_need_no_quotes() {
        let snap = parse(
            "revisions:\n  - {name: a, image: x, istioVersion: 1.30, cni: yes}\n",
            "f.yaml",
        )
        .expect("parses");
        let rev = snap.table.revision("a").expect("revision");
        let inj = rev.injector.as_ref().expect("usable");
        assert_eq!(Some(inj.version), IstioVersion::parse("1.30"));
        assert_ne!(IstioVersion::parse("1.30"), IstioVersion::parse("1.3"));
        assert_eq!(inj.values["istio_cni"]["enabled"], true);
    }

    #[test]
    fn tag_named_like_revision_is_refused_naming_the_tag() {
        let text = "revisions:\n  - {name: a, image: x}\ntags:\n  a: a\n";
        let msg = parse(text, "f.yaml").expect_err("collision").to_string();
        assert!(msg.contains("tags.a"), "{msg}");
    }
}
