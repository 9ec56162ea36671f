//! A revision's injector, as its istiod holds it: the injector ConfigMap's `config` (policy,
//! selectors, templates, aliases) with every template parsed once, its `values`, its mesh
//! config, and the settings istiod takes from its environment (native sidecars, the Istio
//! version whose rules apply).
//!
//! Built once per snapshot; shared by every request that resolves to the revision. A revision
//! whose injector cannot be built is kept with the reason ([`InjectorProblem`]) so that pods
//! selecting it are refused with that reason instead of being injected with a guess.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use gotmpl::{FuncMap, Template};
use serde::Deserialize;
use serde_json::Value;

use super::images;
use super::mesh::{self, MeshError};
use super::selector::{LabelSelector, SelectorError};
use super::yaml::{self, YamlError};

/// The template istiod runs when the config names none.
pub const SIDECAR_TEMPLATE: &str = "sidecar";

/// istiod's `policy`: whether pods that say nothing are injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InjectionPolicy {
    #[default]
    Enabled,
    Disabled,
}

/// An Istio minor version (`1.27` is `IstioVersion(27)`); rules that changed between
/// versions (how `sidecar.istio.io/inject` is read, native sidecars) follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IstioVersion(pub u32);

impl IstioVersion {
    /// The newest rules, for a revision whose version cannot be told.
    pub const NEWEST: IstioVersion = IstioVersion(u32::MAX);

    /// `1.23`, `1.23.2`, `1.23.2-distroless`, `1.23.2-asm.1`, `asm-1-23`, `1-23-2`: the minor.
    pub fn parse(text: &str) -> Option<IstioVersion> {
        let text = text.trim();
        let text = text.strip_prefix("asm-").unwrap_or(text);
        let text = text.strip_prefix('v').unwrap_or(text);
        let mut parts = text.split(['.', '-']);
        let major = parts.next()?;
        let minor: String = parts
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if major != "1" || minor.is_empty() {
            return None;
        }
        minor.parse().ok().map(IstioVersion)
    }
}

impl fmt::Display for IstioVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == IstioVersion::NEWEST {
            f.write_str("newest")
        } else {
            write!(f, "1.{}", self.0)
        }
    }
}

/// The injector ConfigMap's `config` key, as istiod's `Config` reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectorConfig {
    #[serde(default)]
    pub policy: InjectionPolicy,
    #[serde(default)]
    pub default_templates: Vec<String>,
    #[serde(default, rename = "templates")]
    pub raw_templates: BTreeMap<String, String>,
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub never_inject_selector: Vec<LabelSelector>,
    #[serde(default)]
    pub always_inject_selector: Vec<LabelSelector>,
    #[serde(default)]
    pub injected_annotations: BTreeMap<String, String>,
}

impl InjectorConfig {
    /// Parses the `config` text; `defaultTemplates` defaults to `[sidecar]` as in istiod.
    pub fn parse(text: &str) -> Result<InjectorConfig, InjectorProblem> {
        let value = yaml::parse(text).map_err(InjectorProblem::ConfigYaml)?;
        let value = match value {
            Value::Null => Value::Object(Default::default()),
            // A key with nothing under it (`injectedAnnotations:` in Istio's chart) is YAML's
            // null, which Go reads as the empty value.
            Value::Object(mut m) => {
                m.retain(|_, v| !v.is_null());
                Value::Object(m)
            }
            other => other,
        };
        let mut config: InjectorConfig = serde_json::from_value(value)
            .map_err(|e| InjectorProblem::ConfigShape(e.to_string()))?;
        if config.default_templates.is_empty() {
            config.default_templates = vec![SIDECAR_TEMPLATE.to_owned()];
        }
        for s in config
            .never_inject_selector
            .iter()
            .chain(&config.always_inject_selector)
        {
            s.validate().map_err(InjectorProblem::Selector)?;
        }
        Ok(config)
    }

    /// The templates to run for a pod: its `inject.istio.io/templates` (comma-separated), else
    /// the defaults; each name expanded through `aliases` once (not recursively).
    pub fn templates_for(&self, annotation: Option<&str>) -> Vec<String> {
        let names: Vec<String> = match annotation {
            Some(list) => list.split(',').map(|n| n.trim().to_owned()).collect(),
            None => self.default_templates.clone(),
        };
        names
            .into_iter()
            .flat_map(|n| match self.aliases.get(&n) {
                Some(expanded) => expanded.clone(),
                None => vec![n],
            })
            .collect()
    }
}

/// Why a revision's injector cannot be used. Pods selecting the revision are refused with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectorProblem {
    #[error("injector config is not YAML: {0}")]
    ConfigYaml(YamlError),
    #[error("injector config: {0}")]
    ConfigShape(String),
    #[error("injector config selector: {0}")]
    Selector(SelectorError),
    #[error("injector values are not JSON: {0}")]
    Values(String),
    #[error("mesh config: {0}")]
    Mesh(String),
    #[error("injection template {name:?} cannot be parsed: {error}")]
    TemplateParse { name: String, error: String },
    #[error("injection template {name:?} cannot be executed: {error}")]
    TemplateRun { name: String, error: String },
    #[error("default template {0:?} is not in the injector config")]
    MissingDefaultTemplate(String),
}

impl From<YamlError> for InjectorProblem {
    fn from(e: YamlError) -> Self {
        InjectorProblem::ConfigYaml(e)
    }
}

impl From<MeshError> for InjectorProblem {
    fn from(e: MeshError) -> Self {
        InjectorProblem::Mesh(e.to_string())
    }
}

/// What a revision's injector is built from.
#[derive(Debug, Clone)]
pub struct InjectorSource {
    /// The ConfigMap's `config` text.
    pub config: String,
    /// The ConfigMap's `values` text (JSON).
    pub values: String,
    /// Mesh config YAML texts, applied in order over Istio's defaults (the `istio[-<rev>]`
    /// ConfigMap's `mesh`, then AKS's `istio-shared-configmap-<rev>`).
    pub mesh: Vec<String>,
    /// Whether the proxy runs as a Kubernetes native sidecar when the pod does not say.
    pub native_sidecars: bool,
    /// The Istio version whose rules apply; `None`: from `values.global.tag`, else the newest.
    pub version: Option<IstioVersion>,
}

/// revhook's own injector ConfigMap (its sidecar template and values), for revisions that
/// name no injector of their own.
pub const EMBEDDED_INJECTOR: &str = include_str!("../default-injector.yaml");

/// The document of a file that holds `data.<key>`: a file may be one ConfigMap, or a stream
/// of several (`helm template` of istio-discovery, or `istio-oracle --print-configmaps`, gives
/// the injector and the mesh ConfigMaps together), in which the first ConfigMap holding the
/// key is taken. A single document is taken whatever it holds, so its own shape is reported.
pub fn configmap_holding(text: &str, key: &str) -> Result<Value, yaml::YamlError> {
    let mut docs = yaml::documents(text)?;
    let holding = docs
        .iter()
        .position(|d| d["kind"] == "ConfigMap" && !d["data"][key].is_null());
    Ok(match holding {
        Some(at) => docs.swap_remove(at),
        None if docs.is_empty() => Value::Null,
        None => docs.swap_remove(0),
    })
}

/// The `config` and `values` of an injector ConfigMap given as YAML (as `kubectl get -o yaml`
/// or `helm template` prints it).
pub fn configmap_parts(text: &str) -> Result<(String, String), InjectorProblem> {
    let doc = configmap_holding(text, "config").map_err(InjectorProblem::ConfigYaml)?;
    let data = &doc["data"];
    let part = |key: &str| match &data[key] {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Err(InjectorProblem::ConfigShape(format!(
            "the ConfigMap has no data.{key}"
        ))),
        _ => Err(InjectorProblem::ConfigShape(format!(
            "data.{key} is not a string"
        ))),
    };
    Ok((part("config")?, part("values")?))
}

/// The mesh config a file holds: an `istio` ConfigMap's `data.mesh`, or a MeshConfig itself.
pub fn mesh_text(text: &str) -> Result<String, InjectorProblem> {
    let doc = configmap_holding(text, "mesh").map_err(|e| InjectorProblem::Mesh(e.to_string()))?;
    if doc["kind"] == "ConfigMap" {
        return match &doc["data"]["mesh"] {
            Value::String(s) => Ok(s.clone()),
            Value::Null => Ok(String::new()),
            _ => Err(InjectorProblem::Mesh("data.mesh is not a string".into())),
        };
    }
    Ok(text.to_owned())
}

/// What a config file may set on a revision on top of its injector's values and mesh config
/// (the conveniences revhook's config file always had).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevisionOverlay {
    /// A full image reference for the proxy and its init container.
    pub image: Option<String>,
    pub discovery_address: Option<String>,
    pub cni: Option<bool>,
    pub multus: bool,
    pub native_sidecar: Option<bool>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub cpu_limit: Option<String>,
    pub memory_limit: Option<String>,
    pub log_level: Option<String>,
    pub component_log_level: Option<String>,
    pub concurrency: Option<u32>,
    /// The mesh identity a config file's `mesh:` section gives explicitly: over the
    /// revision's own values and mesh config.
    pub identity: IdentityOverride,
}

/// Trust domain, cluster ID, mesh ID and network, each when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityOverride {
    pub trust_domain: Option<String>,
    pub cluster_id: Option<String>,
    pub mesh_id: Option<String>,
    pub network: Option<String>,
}

/// Who a revision's proxies are in the mesh, as its templates read it: the mesh config's
/// `trustDomain`; `values.global.multiCluster.clusterName` (else `Kubernetes`);
/// `values.global.meshID` (else the trust domain); `values.global.network` (else none).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshIdentity {
    pub trust_domain: String,
    pub cluster_id: String,
    pub mesh_id: String,
    pub network: String,
}

/// The source of a revision that uses revhook's own injector, with the mesh settings and
/// the overlay applied.
pub fn embedded_source(
    revision: &str,
    mesh: &super::revisions::MeshSettings,
    overlay: &RevisionOverlay,
) -> Result<InjectorSource, InjectorProblem> {
    let (config, values) = configmap_parts(EMBEDDED_INJECTOR)?;
    let mut source = InjectorSource {
        config,
        values,
        mesh: Vec::new(),
        native_sidecars: false,
        version: None,
    };
    apply_mesh_settings(&mut source, revision, mesh)?;
    apply_overlay(&mut source, overlay)?;
    Ok(source)
}

fn set(values: &mut Value, path: &[&str], v: Value) {
    let mut at = values;
    for key in path {
        if !at.is_object() {
            *at = Value::Object(Default::default());
        }
        at = &mut at[*key];
    }
    *at = v;
}

fn edit_values(
    source: &mut InjectorSource,
    f: impl FnOnce(&mut Value),
) -> Result<(), InjectorProblem> {
    let mut values = parse_values(&source.values)?;
    f(&mut values);
    source.values = values.to_string();
    Ok(())
}

/// The mesh identity and the revision's place: its name, Istio namespace, istiod address,
/// trust domain, cluster and mesh IDs.
pub fn apply_mesh_settings(
    source: &mut InjectorSource,
    revision: &str,
    mesh: &super::revisions::MeshSettings,
) -> Result<(), InjectorProblem> {
    let rev_value = if revision == "default" { "" } else { revision };
    edit_values(source, |v| {
        set(v, &["revision"], Value::from(rev_value));
        set(
            v,
            &["global", "istioNamespace"],
            Value::from(mesh.istio_namespace.as_str()),
        );
        set(v, &["global", "meshID"], Value::from(mesh.mesh_id.as_str()));
        // Istio's default is no cluster name (the template says `Kubernetes`); a name set
        // here makes istiod's cluster ID an explicit proxy setting.
        let default_cluster = super::revisions::MeshSettings::default().cluster_id;
        if mesh.cluster_id != default_cluster {
            set(
                v,
                &["global", "multiCluster", "clusterName"],
                Value::from(mesh.cluster_id.as_str()),
            );
        }
        if !mesh.network.is_empty() {
            set(
                v,
                &["global", "network"],
                Value::from(mesh.network.as_str()),
            );
        }
    })?;
    let address = super::revisions::default_discovery_address(revision, &mesh.istio_namespace);
    let layer = serde_json::json!({
        "trustDomain": mesh.trust_domain,
        "rootNamespace": mesh.istio_namespace,
        "defaultConfig": {"discoveryAddress": address},
    });
    source.mesh.push(layer.to_string());
    Ok(())
}

/// `registry/path` and `tag` of `registry/path/name:tag` (a digest reference has no tag).
fn hub_and_tag(image: &str) -> Option<(&str, &str)> {
    let (hub, rest) = image.rsplit_once('/')?;
    let (_, tag) = rest.split_once(':')?;
    (!hub.is_empty() && !tag.is_empty() && !rest.contains('@')).then_some((hub, tag))
}

/// The config file's conveniences, as the values and mesh settings Istio's charts use.
pub fn apply_overlay(
    source: &mut InjectorSource,
    o: &RevisionOverlay,
) -> Result<(), InjectorProblem> {
    edit_values(source, |v| {
        if let Some(image) = &o.image {
            set(
                v,
                &["global", "proxy", "image"],
                Value::from(image.as_str()),
            );
            set(
                v,
                &["global", "proxy_init", "image"],
                Value::from(image.as_str()),
            );
            // Its registry path and tag become the hub and tag, which a pod's bare
            // `sidecar.istio.io/proxyImage` name is combined with.
            if let Some((hub, tag)) = hub_and_tag(image) {
                set(v, &["global", "hub"], Value::from(hub));
                set(v, &["global", "tag"], Value::from(tag));
            }
        }
        if let Some(cni) = o.cni {
            set(v, &["istio_cni", "enabled"], Value::from(cni));
            set(v, &["pilot", "cni", "enabled"], Value::from(cni));
        }
        if o.multus {
            for path in [
                &["istio_cni", "provider"][..],
                &["cni", "provider"],
                &["pilot", "cni", "provider"],
            ] {
                set(v, path, Value::from("multus"));
            }
        }
        let proxy = ["global", "proxy"];
        for (field, value) in [
            (&["resources", "requests", "cpu"][..], &o.cpu),
            (&["resources", "requests", "memory"], &o.memory),
            (&["resources", "limits", "cpu"], &o.cpu_limit),
            (&["resources", "limits", "memory"], &o.memory_limit),
            (&["logLevel"], &o.log_level),
            (&["componentLogLevel"], &o.component_log_level),
        ] {
            if let Some(x) = value {
                let path: Vec<&str> = proxy.iter().chain(field).copied().collect();
                set(v, &path, Value::from(x.as_str()));
            }
        }
        let id = &o.identity;
        for (path, value) in [
            (
                &["global", "multiCluster", "clusterName"][..],
                &id.cluster_id,
            ),
            (&["global", "meshID"], &id.mesh_id),
            (&["global", "network"], &id.network),
        ] {
            if let Some(x) = value {
                set(v, path, Value::from(x.as_str()));
            }
        }
    })?;
    if let Some(domain) = &o.identity.trust_domain {
        source
            .mesh
            .push(serde_json::json!({ "trustDomain": domain }).to_string());
    }
    let mut pc = serde_json::Map::new();
    if let Some(a) = &o.discovery_address {
        pc.insert("discoveryAddress".into(), Value::from(a.as_str()));
    }
    if let Some(c) = o.concurrency {
        pc.insert("concurrency".into(), Value::from(c));
    }
    if !pc.is_empty() {
        source
            .mesh
            .push(serde_json::json!({ "defaultConfig": pc }).to_string());
    }
    if let Some(native) = o.native_sidecar {
        source.native_sidecars = native;
    }
    Ok(())
}

/// The proxy image the values name (a reference as it is, else `ProxyImage` of the values).
pub fn values_proxy_image(values: &Value) -> String {
    match values["global"]["proxy"]["image"].as_str() {
        Some(image) if image.contains(['/', ':', '@']) => image.to_owned(),
        _ => images::proxy_image(values, &Value::Null, None),
    }
}

/// A revision's injector, ready to render pods.
pub struct Injector {
    pub config: InjectorConfig,
    templates: HashMap<String, Template>,
    /// The values as JSON (what `ProxyImage` and the post-processing read).
    pub values: Value,
    /// The values as the templates see them (`map[string]any`), built once.
    pub values_tmpl: Arc<gotmpl::Value>,
    /// The mesh config (protobuf JSON), defaults applied.
    pub mesh: Value,
    pub mesh_tmpl: Arc<gotmpl::Value>,
    /// `mesh.defaultConfig` as the templates see it, for pods without a proxy config annotation.
    pub proxy_config_tmpl: Arc<gotmpl::Value>,
    pub native_sidecars: bool,
    pub version: IstioVersion,
    funcs: Arc<FuncMap>,
}

impl fmt::Debug for Injector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.templates.keys().collect();
        names.sort();
        f.debug_struct("Injector")
            .field("templates", &names)
            .field("default_templates", &self.config.default_templates)
            .field("native_sidecars", &self.native_sidecars)
            .field("version", &self.version)
            .finish()
    }
}

impl Injector {
    /// Parses the config, values and mesh config and every template; the first problem
    /// makes the injector unusable (istiod, too, refuses a config with a template it cannot
    /// parse).
    pub fn build(source: &InjectorSource) -> Result<Injector, InjectorProblem> {
        let config = InjectorConfig::parse(&source.config)?;
        let values = parse_values(&source.values)?;
        let mut mesh = mesh::default_mesh_config();
        for layer in &source.mesh {
            mesh = mesh::apply_mesh_config(layer, &mesh)?;
        }
        let version = source
            .version
            .or_else(|| tag_version(&values))
            .unwrap_or(IstioVersion::NEWEST);
        let funcs = Arc::new(func_map(&values, source.native_sidecars, version));
        let templates = parse_templates(&config, &funcs)?;
        for name in &config.default_templates {
            if !templates.contains_key(name) && !config.aliases.contains_key(name) {
                return Err(InjectorProblem::MissingDefaultTemplate(name.clone()));
            }
        }
        let proxy_config = mesh["defaultConfig"].clone();
        Ok(Injector {
            values_tmpl: Arc::new(gotmpl::from_json(
                &values,
                &gotmpl::Schema::map(gotmpl::Schema::Any),
            )),
            mesh_tmpl: Arc::new(gotmpl::from_json(&mesh, &gotmpl::istio::mesh_config())),
            proxy_config_tmpl: Arc::new(proxy_config_value(&proxy_config)),
            config,
            templates,
            values,
            mesh,
            native_sidecars: source.native_sidecars,
            version,
            funcs,
        })
    }

    /// A parsed template by name.
    pub fn template(&self, name: &str) -> Option<&Template> {
        self.templates.get(name)
    }

    /// The names of the templates, sorted (for messages).
    pub fn template_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.templates.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// `mesh.defaultConfig` with a pod's `proxy.istio.io/config` applied, as the templates see it.
    pub fn proxy_config_with(&self, annotation: &str) -> Result<gotmpl::Value, MeshError> {
        let merged = mesh::merge_proxy_config(annotation, &self.mesh["defaultConfig"])?;
        Ok(proxy_config_value(&merged))
    }

    /// The proxy image a pod without image annotations gets: a reference (with a registry
    /// path, tag or digest) in `values.global.proxy.image` as it is, else istiod's `ProxyImage`.
    pub fn default_proxy_image(&self) -> String {
        match self.values["global"]["proxy"]["image"].as_str() {
            Some(image) if image.contains(['/', ':', '@']) => image.to_owned(),
            _ => images::proxy_image(&self.values, &self.mesh["defaultConfig"]["image"], None),
        }
    }

    /// The revision's place in the mesh, as its templates read it.
    pub fn identity(&self) -> MeshIdentity {
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let global = &self.values["global"];
        let trust_domain = text(&self.mesh["trustDomain"])
            .or_else(|| text(&global["trustDomain"]))
            .unwrap_or_else(|| "cluster.local".to_owned());
        MeshIdentity {
            cluster_id: text(&global["multiCluster"]["clusterName"])
                .unwrap_or_else(|| "Kubernetes".to_owned()),
            mesh_id: text(&global["meshID"]).unwrap_or_else(|| trust_domain.clone()),
            network: text(&global["network"]).unwrap_or_default(),
            trust_domain,
        }
    }

    /// `host:port` of the revision's istiod, as its mesh config names it.
    pub fn discovery_address(&self) -> &str {
        self.mesh["defaultConfig"]["discoveryAddress"]
            .as_str()
            .unwrap_or_default()
    }

    /// The status port agents listen on (`defaultConfig.statusPort`, 15020 by default).
    pub fn status_port(&self) -> i64 {
        self.mesh["defaultConfig"]["statusPort"]
            .as_i64()
            .unwrap_or(15020)
    }

    /// istiod's `COMPLIANCE_POLICY` (template data `.CompliancePolicy`): istiod reads it from
    /// its environment, which the chart sets from `values.pilot.env`.
    pub fn compliance_policy(&self) -> &str {
        self.values["pilot"]["env"]["COMPLIANCE_POLICY"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn funcs(&self) -> &Arc<FuncMap> {
        &self.funcs
    }
}

fn proxy_config_value(pc: &Value) -> gotmpl::Value {
    gotmpl::from_json(pc, &gotmpl::istio::proxy_config())
}

fn parse_values(text: &str) -> Result<Value, InjectorProblem> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(InjectorProblem::Values("not a JSON object".into())),
        Err(e) => Err(InjectorProblem::Values(e.to_string())),
    }
}

/// The version `values.global.tag` names, when it names one.
fn tag_version(values: &Value) -> Option<IstioVersion> {
    match &values["global"]["tag"] {
        Value::String(s) => IstioVersion::parse(s),
        Value::Number(n) => IstioVersion::parse(&n.to_string()),
        _ => None,
    }
}

/// The functions a revision's templates run with: Istio's, with `env` reading the revision's
/// istiod environment (its `values.pilot.env`, plus the native sidecar switch templates
/// before 1.27 read from there), `protoToJSON` leaving out Istio's proxy config defaults, and
/// the version's own `appendMultusNetwork`.
fn func_map(values: &Value, native_sidecars: bool, version: IstioVersion) -> FuncMap {
    let mut env: HashMap<String, String> = values["pilot"]["env"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    env.insert("ENABLE_NATIVE_SIDECARS".into(), native_sidecars.to_string());
    let mut funcs = FuncMap::istio();
    funcs.set_env(env);
    funcs.set_proxy_config_defaults(proxy_config_value(&mesh::default_proxy_config()));
    funcs.set_legacy_multus(version < IstioVersion(26));
    funcs
}

fn parse_templates(
    config: &InjectorConfig,
    funcs: &Arc<FuncMap>,
) -> Result<HashMap<String, Template>, InjectorProblem> {
    config
        .raw_templates
        .iter()
        .map(|(name, text)| {
            Template::parse(name, text, funcs)
                .map(|t| (name.clone(), t))
                .map_err(|e| InjectorProblem::TemplateParse {
                    name: name.clone(),
                    error: e.to_string(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(config: &str) -> InjectorSource {
        InjectorSource {
            config: config.to_owned(),
            values: r#"{"global": {"hub": "docker.io/istio", "tag": "1.23.2"}}"#.into(),
            mesh: vec![],
            native_sidecars: false,
            version: None,
        }
    }

    /// `helm template` and the oracle give both ConfigMaps in one stream, in either order:
    /// each reader takes the one holding its key; a lone document is read as before.
    #[test]
    fn a_stream_of_configmaps_gives_each_reader_its_own() {
        let mesh_cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\n\
                       data:\n  mesh: |\n    trustDomain: corp.example\n";
        let injector_cm =
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio-sidecar-injector}\n\
                           data:\n  config: 'templates: {sidecar: x}'\n  values: '{}'\n";
        for stream in [
            format!("# Source: a\n---\n{mesh_cm}---\n{injector_cm}"),
            format!("{injector_cm}---\n{mesh_cm}"),
        ] {
            assert_eq!(
                configmap_parts(&stream).expect("injector found"),
                ("templates: {sidecar: x}".to_owned(), "{}".to_owned())
            );
            assert_eq!(
                mesh_text(&stream).expect("mesh found"),
                "trustDomain: corp.example\n"
            );
        }
        assert_eq!(
            mesh_text("trustDomain: corp.example\n").expect("a MeshConfig itself"),
            "trustDomain: corp.example\n"
        );
        assert_eq!(
            configmap_parts(mesh_cm),
            Err(InjectorProblem::ConfigShape(
                "the ConfigMap has no data.config".into()
            )),
            "a lone ConfigMap without the key is named for what it lacks"
        );
    }

    #[test]
    fn versions_are_read_from_tags_and_revision_names() {
        for (text, minor) in [
            ("1.23", 23),
            ("1.23.2", 23),
            ("1.23.2-distroless", 23),
            ("1.22.1-asm.3", 22),
            ("asm-1-29", 29),
            ("1-27-0", 27),
            ("v1.26.1", 26),
        ] {
            assert_eq!(
                IstioVersion::parse(text),
                Some(IstioVersion(minor)),
                "{text}"
            );
        }
        for text in ["latest", "2.0", "1.x", "", "default"] {
            assert_eq!(IstioVersion::parse(text), None, "{text}");
        }
    }

    #[test]
    fn identity_is_read_as_the_templates_read_it() {
        let (config, _) = configmap_parts(EMBEDDED_INJECTOR).expect("embedded");
        let mut s = source(&config);
        let inj = Injector::build(&s).expect("builds");
        assert_eq!(
            inj.identity(),
            MeshIdentity {
                trust_domain: "cluster.local".into(),
                cluster_id: "Kubernetes".into(),
                mesh_id: "cluster.local".into(),
                network: String::new(),
            },
            "Istio's defaults"
        );
        s.mesh.push("trustDomain: corp.example\n".into());
        let inj = Injector::build(&s).expect("builds");
        assert_eq!(
            inj.identity().mesh_id,
            "corp.example",
            "the mesh ID defaults to the trust domain"
        );
        s.values =
            r#"{"global": {"hub": "h", "tag": "1.23.2", "meshID": "corp-mesh", "network": "net-a",
            "multiCluster": {"clusterName": "cluster-7"}}}"#
                .into();
        let inj = Injector::build(&s).expect("builds");
        assert_eq!(
            inj.identity(),
            MeshIdentity {
                trust_domain: "corp.example".into(),
                cluster_id: "cluster-7".into(),
                mesh_id: "corp-mesh".into(),
                network: "net-a".into(),
            }
        );
    }

    #[test]
    fn config_defaults_to_the_sidecar_template_and_enabled_policy() {
        let c = InjectorConfig::parse("templates: {sidecar: x}").expect("config");
        assert_eq!(c.default_templates, ["sidecar"]);
        assert_eq!(c.policy, InjectionPolicy::Enabled);
        let c = InjectorConfig::parse("").expect("empty config");
        assert_eq!(c.default_templates, ["sidecar"]);
    }

    #[test]
    fn templates_for_a_pod_follow_its_annotation_and_aliases() {
        let c = InjectorConfig::parse(
            "defaultTemplates: [sidecar, extra]\naliases: {gw: [gateway, extra]}\ntemplates: {}",
        )
        .expect("config");
        assert_eq!(c.templates_for(None), ["sidecar", "extra"]);
        assert_eq!(
            c.templates_for(Some("gw, sidecar")),
            ["gateway", "extra", "sidecar"]
        );
    }

    #[test]
    fn an_injector_parses_every_template_once() {
        let inj = Injector::build(&source(
            "templates:\n  sidecar: |\n    spec: {}\n  gateway: |\n    spec: {}\n",
        ))
        .expect("injector");
        assert_eq!(inj.template_names(), ["gateway", "sidecar"]);
        assert_eq!(inj.version, IstioVersion(23));
        assert_eq!(inj.status_port(), 15020);
        assert_eq!(inj.mesh["trustDomain"], "cluster.local");
    }

    #[test]
    fn a_template_that_does_not_parse_makes_the_injector_unusable() {
        let err = Injector::build(&source(
            "templates:\n  sidecar: |\n    {{ nosuchfunc .Values }}\n",
        ))
        .expect_err("unknown function");
        let msg = err.to_string();
        assert!(
            msg.contains("\"sidecar\"") && msg.contains("nosuchfunc"),
            "{msg}"
        );
    }

    #[test]
    fn missing_default_templates_and_bad_values_are_problems() {
        let err = Injector::build(&source("defaultTemplates: [gone]\ntemplates: {}"))
            .expect_err("missing");
        assert!(matches!(err, InjectorProblem::MissingDefaultTemplate(ref n) if n == "gone"));
        let mut s = source("templates: {}");
        s.values = "{nope".into();
        assert!(matches!(
            Injector::build(&s),
            Err(InjectorProblem::Values(_))
        ));
        let mut s = source("templates: {}");
        s.mesh = vec!["defaultConfig: 3".into()];
        assert!(matches!(Injector::build(&s), Err(InjectorProblem::Mesh(_))));
    }

    #[test]
    fn env_is_the_revisions_istiod_environment() {
        let mut s = source(
            "templates:\n  sidecar: '{{ env \"PILOT_X\" \"d\" }} {{ env \"ENABLE_NATIVE_SIDECARS\" \"d\" }}'\n",
        );
        s.values = r#"{"pilot": {"env": {"PILOT_X": "on"}}}"#.into();
        s.native_sidecars = true;
        let inj = Injector::build(&s).expect("injector");
        let out = inj
            .template("sidecar")
            .expect("template")
            .render(&gotmpl::Value::Nil)
            .expect("render");
        assert_eq!(out, "on true");
    }
}
