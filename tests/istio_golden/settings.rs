//! The injector and mesh ConfigMaps a case was rendered with, made the way that version's test
//! made them: the version's `istio-discovery` chart rendered by `helm template` with the values
//! Istio's operator passes for `profile=empty`, `components.pilot.enabled=true`, the case's
//! `--set` flags and `*.iop.yaml` overlay; then the case's mesh edit on `data.mesh`.
//!
//! Operator translation (what reaches the two ConfigMaps), read in istio/istio `operator/`:
//! - 1.22–1.23 (`operator/pkg/translate/translate.go`, `setComponentProperties`): every
//!   component's enablement and namespace are written into the values: `global.enabled`
//!   (the base component, off in `empty`), `global.namespace`, `pilot.enabled`,
//!   `pilot.namespace`, and CNI's as `istio_cni.enabled` (CNI "calls itself istio_cni for
//!   enablement outside of the chart"). So `components.cni.enabled` → `istio_cni.enabled`.
//! - 1.24–master (`operator/pkg/render/manifest.go`, `translateIstioOperatorToHelm`):
//!   `pilot.enabled` and `pilot.cni.enabled` from the components; the chart's
//!   `zzy_descope_legacy.yaml` lifts `pilot.*` to the top, where the injector ConfigMap picks
//!   `cni`. So `components.cni.enabled` → `pilot.cni.enabled`.
//! - Always: `values.X=v` → Helm value `X` (typed as the operator types it: int, float, bool,
//!   else string with `\,` unescaped), the overlay's `spec.values` under the flags, user
//!   values last. The `default` profile the operator layers under `empty` sets hub, tag,
//!   `global.istioNamespace` and `global.configValidation` to the chart's own defaults in
//!   every version here, so it adds nothing; the compiled-in hub/tag are `unknown` in tests.
//!
//! Rendered files are cached under the target dir, keyed by a hash of everything the render
//! read (Helm's version, every file of the chart, the values, the mesh edit).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::cases::{Settings, MESH_EDITS};
use super::reference::Version;

/// The files one case hands to revhook.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The `istio-sidecar-injector` ConfigMap, as `helm template` printed it.
    pub injector: PathBuf,
    /// The `istio` ConfigMap, with the case's mesh edit applied to `data.mesh`.
    pub mesh: PathBuf,
}

/// The two ConfigMaps of one chart render.
pub struct ChartOutput {
    pub injector_text: String,
    pub injector: Value,
    pub mesh_text: String,
    pub mesh: Value,
}

/// What one `render_all` did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub settings: usize,
    pub helm_inputs: usize,
    pub helm_runs: usize,
}

pub struct Renderer {
    helm: PathBuf,
    helm_version: String,
    cache: PathBuf,
    chart_digests: Mutex<BTreeMap<PathBuf, u64>>,
    helm_runs: AtomicUsize,
}

impl Renderer {
    pub fn new(helm: &Path) -> Renderer {
        let out = Command::new(helm)
            .arg("version")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", helm.display()));
        Renderer {
            helm: helm.to_owned(),
            helm_version: String::from_utf8_lossy(&out.stdout).into_owned(),
            cache: Path::new(env!("CARGO_TARGET_TMPDIR")).join("istio-golden-settings"),
            chart_digests: Mutex::default(),
            helm_runs: AtomicUsize::new(0),
        }
    }

    /// Renders every distinct (version, settings) once, Helm runs in parallel.
    pub fn render_all(
        &self,
        jobs: &[(&Version, &Settings)],
    ) -> (BTreeMap<(String, Settings), Rendered>, Stats) {
        let runs_before = self.helm_runs.load(Ordering::Relaxed);
        let distinct: BTreeMap<(String, Settings), &Version> = jobs
            .iter()
            .map(|(v, s)| ((v.label.clone(), (*s).clone()), *v))
            .collect();
        // Settings that differ only in the mesh edit share one chart render.
        let charts: BTreeMap<(String, Settings), &Version> = distinct
            .iter()
            .map(|((label, s), v)| {
                let chart_only = Settings {
                    mesh_edit: None,
                    ..s.clone()
                };
                ((label.clone(), chart_only), *v)
            })
            .collect();
        let chart_jobs: Vec<(&Version, &Settings)> =
            charts.iter().map(|((_, s), v)| (*v, s)).collect();
        parallel(&chart_jobs, |(version, settings)| {
            self.chart(version, settings);
        });
        let rendered = distinct
            .iter()
            .map(|(key, version)| (key.clone(), self.render(version, &key.1)))
            .collect();
        let stats = Stats {
            settings: distinct.len(),
            helm_inputs: charts.len(),
            helm_runs: self.helm_runs.load(Ordering::Relaxed) - runs_before,
        };
        (rendered, stats)
    }

    /// The files for one case: the chart's ConfigMaps, the mesh edit applied.
    pub fn render(&self, version: &Version, settings: &Settings) -> Rendered {
        let chart_key = self.chart_key(version, settings);
        let overlay = settings.mesh_edit.map_or("", |i| MESH_EDITS[i].overlay);
        let dir = self.cache.join(format!(
            "{}-{:016x}",
            version.label,
            digest(&[chart_key.as_bytes(), overlay.as_bytes()])
        ));
        let rendered = Rendered {
            injector: dir.join("injector.yaml"),
            mesh: dir.join("mesh.yaml"),
        };
        if rendered.injector.is_file() && rendered.mesh.is_file() {
            return rendered;
        }
        let chart = self.chart(version, settings);
        let mesh_text = match settings.mesh_edit {
            None => chart.mesh_text,
            Some(i) => edited_mesh(chart.mesh, MESH_EDITS[i].overlay),
        };
        write(&rendered.injector, &chart.injector_text);
        write(&rendered.mesh, &mesh_text);
        rendered
    }

    /// The chart's two ConfigMaps for these settings (the mesh edit is not the chart's).
    pub fn chart(&self, version: &Version, settings: &Settings) -> ChartOutput {
        let values = revhook::core::yaml::to_string(&operator_values(version, settings))
            .unwrap_or_else(|e| panic!("values: {e}"));
        let dir = self.cache.join(self.chart_key(version, settings));
        let output = dir.join("helm.yaml");
        if !output.is_file() {
            let values_file = dir.join("values.yaml");
            write(&values_file, &values);
            let text = self.helm_template(&version.chart_dir(), &values_file);
            write(&output, &text);
        }
        let text = std::fs::read_to_string(&output)
            .unwrap_or_else(|e| panic!("{}: {e}", output.display()));
        configmaps(&text)
            .unwrap_or_else(|e| panic!("{} ({}): {e}", version.label, output.display()))
    }

    fn chart_key(&self, version: &Version, settings: &Settings) -> String {
        let values = revhook::core::yaml::to_string(&operator_values(version, settings))
            .unwrap_or_else(|e| panic!("values: {e}"));
        let chart = self.chart_digest(&version.chart_dir());
        format!(
            "{}-chart-{:016x}",
            version.label,
            digest(&[
                self.helm_version.as_bytes(),
                &chart.to_le_bytes(),
                values.as_bytes()
            ])
        )
    }

    fn chart_digest(&self, chart: &Path) -> u64 {
        let mut digests = self.chart_digests.lock().unwrap_or_else(|e| e.into_inner());
        *digests
            .entry(chart.to_owned())
            .or_insert_with(|| directory_digest(chart))
    }

    fn helm_template(&self, chart: &Path, values: &Path) -> String {
        self.helm_runs.fetch_add(1, Ordering::Relaxed);
        let out = Command::new(&self.helm)
            .args(["template", "istiod"])
            .arg(chart)
            .args(["--namespace", "istio-system"])
            .args(["--show-only", "templates/istiod-injector-configmap.yaml"])
            .args(["--show-only", "templates/configmap.yaml"])
            .arg("--values")
            .arg(values)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", self.helm.display()));
        assert!(
            out.status.success(),
            "helm template {}: {}",
            chart.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("helm output: {e}"))
    }
}

/// The Helm values Istio's operator passes to the `istio-discovery` chart for these settings.
pub fn operator_values(version: &Version, settings: &Settings) -> Value {
    let mut cni = false;
    let mut user = json!({});
    if let Some(overlay) = &settings.overlay {
        merge(&mut user, overlay_values(version, overlay), false);
    }
    for flag in &settings.set_flags {
        let (path, raw) = flag
            .split_once('=')
            .unwrap_or_else(|| panic!("--set without '=': {flag}"));
        if path == "components.cni.enabled" {
            cni = operator_scalar(raw) == Value::Bool(true);
        } else if let Some(helm_path) = path.strip_prefix("values.") {
            set_path(&mut user, helm_path, operator_scalar(raw));
        } else {
            panic!(
                "{}: an operator flag with no translation here: {flag}",
                version.label
            );
        }
    }
    let mut values = component_values(version, cni);
    merge(&mut values, user, false);
    values
}

/// Component enablement as that version's operator writes it (see the module comment).
fn component_values(version: &Version, cni: bool) -> Value {
    if version.minor < 24 {
        json!({
            "global": {"enabled": false, "namespace": "istio-system"},
            "istio_cni": {"enabled": cni},
            "pilot": {"enabled": true, "namespace": "istio-system"},
        })
    } else {
        json!({"pilot": {"enabled": true, "cni": {"enabled": cni}}})
    }
}

/// An overlay's `spec.values`; an overlay setting anything else has no translation here.
fn overlay_values(version: &Version, file: &str) -> Value {
    let path = version.inject_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let iop: Value =
        revhook::core::yaml::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = iop["spec"].as_object().cloned().unwrap_or_default();
    let other: Vec<&String> = spec.keys().filter(|k| *k != "values").collect();
    assert!(
        other.is_empty(),
        "{}: spec fields with no translation here: {other:?}",
        path.display()
    );
    spec.get("values").cloned().unwrap_or_else(|| json!({}))
}

/// A `--set` value typed as the operator types it (`values.Map.SetPaths`/`parseValue`).
pub fn operator_scalar(raw: &str) -> Value {
    if let Ok(i) = raw.parse::<i64>() {
        return json!(i);
    }
    if let Ok(f) = raw.parse::<f64>() {
        return json!(f);
    }
    match raw {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => return json!(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => return json!(false),
        _ => {}
    }
    json!(raw.replace("\\,", ","))
}

fn set_path(root: &mut Value, path: &str, value: Value) {
    assert!(
        !path.contains('['),
        "list paths are not translated here: {path}"
    );
    let mut node = root;
    let mut keys = path.split('.').peekable();
    while let Some(key) = keys.next() {
        let map = match node {
            Value::Object(map) => map,
            other => {
                *other = json!({});
                other.as_object_mut().unwrap_or_else(|| unreachable!())
            }
        };
        if keys.peek().is_none() {
            map.insert(key.to_owned(), value);
            return;
        }
        node = map.entry(key.to_owned()).or_insert_with(|| json!({}));
    }
}

/// Deep merge: mappings key by key; sequences replaced, or appended when `append`.
pub fn merge(base: &mut Value, overlay: Value, append: bool) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (k, v) in overlay {
                match base.get_mut(&k) {
                    Some(existing) => merge(existing, v, append),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(overlay)) if append => base.extend(overlay),
        (base, overlay) => *base = overlay,
    }
}

/// The mesh ConfigMap with `overlay` merged into its `data.mesh`, as YAML.
fn edited_mesh(mut configmap: Value, overlay: &str) -> String {
    let mesh_text = configmap["data"]["mesh"].as_str().unwrap_or_default();
    let mut mesh: Value =
        revhook::core::yaml::parse(mesh_text).unwrap_or_else(|e| panic!("data.mesh: {e}"));
    if mesh.is_null() {
        mesh = json!({});
    }
    let overlay: Value =
        revhook::core::yaml::parse(overlay).unwrap_or_else(|e| panic!("mesh overlay: {e}"));
    merge(&mut mesh, overlay, true);
    configmap["data"]["mesh"] = Value::String(
        revhook::core::yaml::to_string(&mesh).unwrap_or_else(|e| panic!("mesh: {e}")),
    );
    revhook::core::yaml::to_string(&configmap).unwrap_or_else(|e| panic!("mesh ConfigMap: {e}"))
}

/// The injector and mesh ConfigMaps from `helm template` output, each with its own text.
pub fn configmaps(text: &str) -> Result<ChartOutput, String> {
    let mut injector = None;
    let mut mesh = None;
    for doc in split_documents(text) {
        let value: Value = revhook::core::yaml::parse(&doc).map_err(|e| e.to_string())?;
        if value["kind"] != "ConfigMap" {
            continue;
        }
        match value["metadata"]["name"].as_str() {
            Some("istio-sidecar-injector") => injector = Some((doc, value)),
            Some("istio") => mesh = Some((doc, value)),
            _ => {}
        }
    }
    let (injector_text, injector) = injector.ok_or("no istio-sidecar-injector ConfigMap")?;
    let (mesh_text, mesh) = mesh.ok_or("no istio ConfigMap")?;
    Ok(ChartOutput {
        injector_text,
        injector,
        mesh_text,
        mesh,
    })
}

/// Splits a YAML stream at `---` lines, dropping documents with nothing but comments.
pub fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
            continue;
        }
        let current = docs.last_mut().unwrap_or_else(|| unreachable!());
        current.push_str(line);
        current.push('\n');
    }
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// Runs `work` over `jobs` on a few threads (the machine is shared: at most 4).
pub fn parallel<T: Sync>(jobs: &[T], work: impl Fn(&T) + Sync) {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                work(job);
            });
        }
    });
}

/// A hash of byte strings, each length-prefixed. A cache key under `target/`, not a security
/// boundary: std's SipHash with fixed keys, stable for a given toolchain.
fn digest(parts: &[&[u8]]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for part in parts {
        hasher.write_usize(part.len());
        hasher.write(part);
    }
    hasher.finish()
}

/// Every file under `dir` (relative path and bytes), in path order.
fn directory_digest(dir: &Path) -> u64 {
    let mut files = BTreeSet::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry
                .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
                .path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path);
            }
        }
    }
    let mut hasher = DefaultHasher::new();
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file.strip_prefix(dir).unwrap_or(&file).to_string_lossy();
        hasher.write(&digest(&[name.as_bytes(), &bytes]).to_le_bytes());
    }
    hasher.finish()
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    // Write then rename, so a reader never sees half a file from a parallel writer; the
    // partial file is the writer's own (tests of one process render the same charts at once).
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nth = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let partial = path.with_extension(format!("partial-{}-{nth}", std::process::id()));
    std::fs::write(&partial, text).unwrap_or_else(|e| panic!("{}: {e}", partial.display()));
    std::fs::rename(&partial, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Values Istio's test wrote to `inputs/` (1.22–1.24) for one case: `(template, values, mesh)`.
pub fn istio_inputs(version: &Version, prefix: &str) -> (Value, Value, Value) {
    let read = |kind: &str| {
        let path = version
            .inputs_dir()
            .join(format!("{prefix}.{kind}.gen.yaml"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        revhook::core::yaml::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    (read("template"), read("values"), read("mesh"))
}

/// `data.config`, `data.values`, `data.mesh` of a render, parsed.
pub fn parsed_data(chart: &ChartOutput) -> (Value, Value, Value) {
    let field = |cm: &Value, key: &str| cm["data"][key].as_str().unwrap_or_default().to_owned();
    let yaml = |text: String| -> Value {
        revhook::core::yaml::parse(&text).unwrap_or_else(|e| panic!("rendered YAML: {e}"))
    };
    let values: Value = serde_json::from_str(&field(&chart.injector, "values"))
        .unwrap_or_else(|e| panic!("rendered values JSON: {e}"));
    (
        yaml(field(&chart.injector, "config")),
        values,
        yaml(field(&chart.mesh, "mesh")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_flags_are_typed_as_the_operator_types_them() {
        assert_eq!(operator_scalar("0"), json!(0));
        assert_eq!(operator_scalar("300"), json!(300));
        assert_eq!(operator_scalar("true"), json!(true));
        assert_eq!(operator_scalar("Never"), json!("Never"));
        assert_eq!(operator_scalar("4,5,6"), json!("4,5,6"));
        assert_eq!(operator_scalar(r"a\,b"), json!("a,b"));
        assert_eq!(
            operator_scalar("127.0.0.1/24,10.96.0.1/24"),
            json!("127.0.0.1/24,10.96.0.1/24")
        );
    }

    #[test]
    fn merge_replaces_scalars_and_appends_sequences_only_when_asked() {
        let mut base = json!({"a": {"b": 1, "c": [1]}, "d": "x"});
        merge(
            &mut base,
            json!({"a": {"b": 2, "c": [2]}, "e": null}),
            false,
        );
        assert_eq!(base, json!({"a": {"b": 2, "c": [2]}, "d": "x", "e": null}));
        merge(&mut base, json!({"a": {"c": [3]}}), true);
        assert_eq!(base["a"]["c"], json!([2, 3]));
    }

    #[test]
    fn set_path_builds_nested_values() {
        let mut values = json!({});
        set_path(&mut values, "global.proxy.statusPort", json!(123));
        set_path(&mut values, "global.network", json!("n1"));
        assert_eq!(
            values,
            json!({"global": {"proxy": {"statusPort": 123}, "network": "n1"}})
        );
    }

    #[test]
    fn documents_split_at_separator_lines_only() {
        let docs = split_documents(
            "---\n# Source: a\nkind: A\n---\n# only a comment\n---\nkind: B\nx: \"---\"\n",
        );
        assert_eq!(docs.len(), 2);
        assert!(docs[1].contains("x: \"---\""));
    }

    #[test]
    fn mesh_edits_are_valid_yaml_overlays() {
        for edit in MESH_EDITS {
            let overlay: Value = revhook::core::yaml::parse(edit.overlay).expect(edit.go);
            assert!(
                overlay.as_object().is_some_and(|m| !m.is_empty()),
                "{}",
                edit.go
            );
        }
        let configmap = json!({"data": {"mesh": "defaultConfig:\n  discoveryAddress: x\n"}});
        let edited: Value =
            revhook::core::yaml::parse(&edited_mesh(configmap, MESH_EDITS[0].overlay))
                .expect("yaml");
        let mesh: Value =
            revhook::core::yaml::parse(edited["data"]["mesh"].as_str().expect("mesh"))
                .expect("mesh yaml");
        assert_eq!(
            mesh,
            json!({"defaultConfig": {"discoveryAddress": "x", "interceptionMode": "TPROXY"}})
        );
    }
}
