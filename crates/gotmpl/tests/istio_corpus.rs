//! Every Istio version's stock injection templates, from `../shared/reference/istio-*/`
//! (the read-only reference data beside the repository):
//!
//! * every `chart/files/*.yaml` parses with the Istio function set;
//! * the sidecar, gateway, grpc-agent and grpc-simple templates of every version render over
//!   `inject/hello.yaml`'s pod, that version's chart defaults and a default mesh config, into
//!   YAML with an `istio-proxy` container (grpc-simple: its `grpc-bootstrap-init`);
//! * for 1.22–1.24, whose tests committed the settings they rendered with
//!   (`inputs/default.{template,values,mesh}.gen.yaml`), the `istio-proxy` container we
//!   render matches the one in `hello.yaml.injected`, field by field (args, env, ports).
//!
//! Without `../shared` the test is skipped, except under `CI=true`, where that is a failure.

mod support;

use gotmpl::{from_json, istio, FuncMap, Template};
use serde_json::{json, Value as J};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::{
    chart_values, default_mesh, default_proxy_config, hello_deployment, minor_of, template_data,
    yaml_file,
};

fn reference_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing",
        dir.display()
    );
    eprintln!("{} missing: skipping the Istio corpus", dir.display());
    None
}

/// The version folders that have chart templates, oldest first.
fn versions(reference: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(reference)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("chart/files").is_dir())
        .collect();
    dirs.sort_by_key(|p| version_key(p));
    dirs
}

fn version_key(p: &Path) -> (u32, u32) {
    let name = p.file_name().unwrap().to_string_lossy().to_string();
    let v = name.trim_start_matches("istio-");
    let mut parts = v.split('.');
    match (
        parts.next().and_then(|s| s.parse().ok()),
        parts.next().and_then(|s| s.parse().ok()),
    ) {
        (Some(a), Some(b)) => (a, b),
        _ => (u32::MAX, 0),
    }
}

fn funcs() -> Arc<FuncMap> {
    let mut f = FuncMap::istio();
    f.set_proxy_config_defaults(from_json(&default_proxy_config(), &istio::proxy_config()));
    Arc::new(f)
}

/// A container of a rendered pod patch by name (in containers or, for native sidecars,
/// init containers).
fn container<'j>(spec: &'j J, name: &str) -> Option<&'j J> {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(k).and_then(J::as_array))
        .flatten()
        .find(|c| c["name"] == name)
}

fn render(funcs: &Arc<FuncMap>, src: &str, data: &gotmpl::Value) -> Result<J, String> {
    render_expecting(funcs, src, data, "istio-proxy")
}

/// Renders, parses the output as YAML and checks it has the named container.
fn render_expecting(
    funcs: &Arc<FuncMap>,
    src: &str,
    data: &gotmpl::Value,
    container_name: &str,
) -> Result<J, String> {
    let t = Template::parse("inject", src, funcs).map_err(|e| e.to_string())?;
    let out = t.render(data).map_err(|e| e.to_string())?;
    let doc: J = goyaml::from_str(&out).map_err(|e| format!("not YAML: {e}\n{out}"))?;
    if container(&doc["spec"], container_name).is_none() {
        return Err(format!("no {container_name} container in:\n{out}"));
    }
    Ok(doc)
}

/// The templates that render over `SidecarTemplateData`, and a container each must give.
const POD_TEMPLATES: &[(&str, &str)] = &[
    ("injection-template.yaml", "istio-proxy"),
    ("gateway-injection-template.yaml", "istio-proxy"),
    ("grpc-agent.yaml", "istio-proxy"),
    ("grpc-simple.yaml", "grpc-bootstrap-init"),
];

#[derive(Default)]
struct Row {
    parsed: usize,
    files: usize,
    executed: Vec<String>,
    golden: Option<String>,
}

#[test]
fn stock_templates_of_every_version() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let funcs = funcs();
    let versions = versions(&reference);
    assert!(
        versions.len() >= 10,
        "found only {} versions",
        versions.len()
    );
    let mut table: BTreeMap<(u32, u32), (String, Row)> = BTreeMap::new();
    let mut failures = Vec::new();
    for version in &versions {
        let name = version.file_name().unwrap().to_string_lossy().to_string();
        let mut row = Row::default();
        parse_all(&funcs, version, &mut row, &mut failures);
        let data = template_data(
            minor_of(version),
            &hello_deployment(version),
            &chart_values(version),
            &default_mesh(),
            false,
        );
        for (file, container_name) in POD_TEMPLATES {
            let src = std::fs::read_to_string(version.join("chart/files").join(file)).unwrap();
            match render_expecting(&funcs, &src, &data, container_name) {
                Ok(_) => row
                    .executed
                    .push(file.trim_end_matches(".yaml").to_string()),
                Err(e) => failures.push(format!("{name} {file}: {e}")),
            }
        }
        if version.join("inputs").is_dir() {
            match compare_with_golden(&funcs, version) {
                Ok(n) => row.golden = Some(format!("hello.yaml: {n} fields equal")),
                Err(e) => failures.push(format!("{name} golden: {e}")),
            }
        } else {
            match compare_with_chart_defaults(&funcs, version) {
                Ok(n) => {
                    row.golden = Some(format!("hello.yaml: {n} fields equal (chart defaults)"))
                }
                Err(e) => failures.push(format!("{name} golden (chart defaults): {e}")),
            }
        }
        table.insert(version_key(version), (name, row));
    }
    println!("| version | templates parsed | executed (hello pod) | golden |");
    println!("|---|---|---|---|");
    for (name, row) in table.values() {
        println!(
            "| {name} | {}/{} | {} | {} |",
            row.parsed,
            row.files,
            row.executed.join(", "),
            row.golden.as_deref().unwrap_or("-")
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn parse_all(funcs: &Arc<FuncMap>, version: &Path, row: &mut Row, failures: &mut Vec<String>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(version.join("chart/files"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "{}: only {} files",
        version.display(),
        files.len()
    );
    for f in files {
        row.files += 1;
        let src = std::fs::read_to_string(&f).unwrap();
        match Template::parse("inject", &src, funcs) {
            Ok(_) => row.parsed += 1,
            Err(e) => failures.push(format!("{}: {e}", f.display())),
        }
    }
}

/// Renders hello.yaml with the settings Istio's own test used and compares the
/// istio-proxy and istio-init containers with the golden ones; returns how many fields
/// were compared.
/// istiod decodes the rendered YAML into `corev1.Pod` and encodes it again; a
/// `resourceFieldRef`'s `divisor` (a Quantity, not `omitempty`) then comes out as `"0"`.
/// Likewise a probe's zero `initialDelaySeconds` (`omitempty`) is dropped. The golden holds
/// that re-encoded form, so ours gets the same treatment before comparing.
fn as_go_reserializes(container: &mut J) {
    if let Some(env) = container.get_mut("env").and_then(J::as_array_mut) {
        for e in env {
            if let Some(J::Object(r)) = e.pointer_mut("/valueFrom/resourceFieldRef") {
                r.entry("divisor").or_insert(json!("0"));
            }
        }
    }
    for probe in ["readinessProbe", "startupProbe", "livenessProbe"] {
        if let Some(J::Object(p)) = container.get_mut(probe) {
            p.retain(|_, v| *v != json!(0));
        }
    }
}

fn compare_with_golden(funcs: &Arc<FuncMap>, version: &Path) -> Result<usize, String> {
    let inputs = version.join("inputs");
    let config = yaml_file(&inputs.join("default.template.gen.yaml"));
    let src = config["templates"]["sidecar"]
        .as_str()
        .ok_or("no sidecar template")?;
    let values = yaml_file(&inputs.join("default.values.gen.yaml"));
    let mesh = yaml_file(&inputs.join("default.mesh.gen.yaml"));
    let data = template_data(
        minor_of(version),
        &hello_deployment(version),
        &values,
        &mesh,
        false,
    );
    compare_rendered(funcs, version, src, &data)
}

/// 1.25 and later render their settings at test time (no `inputs/`): the chart defaults and
/// a default mesh stand in for them. Whether the test cluster gave native sidecars is read
/// off the golden's status annotation.
fn compare_with_chart_defaults(funcs: &Arc<FuncMap>, version: &Path) -> Result<usize, String> {
    let src = std::fs::read_to_string(version.join("chart/files/injection-template.yaml")).unwrap();
    let values = chart_values(version);
    let text = std::fs::read_to_string(version.join("inject/hello.yaml.injected")).unwrap();
    let native = text.contains(r#""initContainers":["istio-init","istio-proxy"]"#);
    let data = template_data(
        minor_of(version),
        &hello_deployment(version),
        &values,
        &default_mesh(),
        native,
    );
    compare_rendered(funcs, version, &src, &data)
}

fn compare_rendered(
    funcs: &Arc<FuncMap>,
    version: &Path,
    src: &str,
    data: &gotmpl::Value,
) -> Result<usize, String> {
    let rendered = render(funcs, src, data)?;
    let text = std::fs::read_to_string(version.join("inject/hello.yaml.injected")).unwrap();
    let golden_doc = goyaml::documents(&text)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("empty golden")?;
    let golden_spec = &golden_doc["spec"]["template"]["spec"];
    let mut compared = 0;
    let mut diffs = Vec::new();
    for name in ["istio-proxy", "istio-init"] {
        let golden = container(golden_spec, name).ok_or(format!("golden has no {name}"))?;
        let mut ours = container(&rendered["spec"], name)
            .ok_or(format!("we rendered no {name}"))?
            .clone();
        as_go_reserializes(&mut ours);
        compare_container(name, &ours, golden, &mut compared, &mut diffs);
    }
    if diffs.is_empty() {
        Ok(compared)
    } else {
        Err(diffs.join("\n"))
    }
}

fn compare_container(
    name: &str,
    ours: &J,
    golden: &J,
    compared: &mut usize,
    diffs: &mut Vec<String>,
) {
    // Not `resources`: istiod re-encodes Quantities canonically ("2000m" → "2"), which is
    // the merge pipeline's business, not the template engine's.
    let fields = [
        "args",
        "env",
        "ports",
        "image",
        "imagePullPolicy",
        "readinessProbe",
        "startupProbe",
        "securityContext",
        "volumeMounts",
        "lifecycle",
    ];
    for field in fields {
        let (o, g) = (&ours[field], &golden[field]);
        match (o.as_array(), g.as_array()) {
            (Some(oa), Some(ga)) => {
                for (i, gi) in ga.iter().enumerate() {
                    *compared += 1;
                    if oa.get(i) != Some(gi) {
                        diffs.push(format!(
                            "{name} {field}[{i}]: ours {:?}, golden {gi}",
                            oa.get(i)
                        ));
                    }
                }
                if oa.len() != ga.len() {
                    diffs.push(format!(
                        "{name} {field}: {} entries, golden {}",
                        oa.len(),
                        ga.len()
                    ));
                }
            }
            _ => {
                *compared += 1;
                if o != g {
                    diffs.push(format!("{name} {field}: ours {o}, golden {g}"));
                }
            }
        }
    }
}

/// One row of a version's case table (`SOURCE.md`): case number, input, golden, settings.
struct Case {
    number: String,
    input: String,
    golden: String,
    settings: String,
}

fn case_table(version: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(version.join("SOURCE.md")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            // "| 7 | `in.yaml` | `in.yaml.injected` | settings |"
            if cells.len() < 5 || cells[1].parse::<u32>().is_err() {
                return None;
            }
            let unquote = |s: &str| s.trim_matches('`').to_string();
            Some(Case {
                number: cells[1].to_string(),
                input: unquote(cells[2]),
                golden: unquote(cells[3]),
                settings: cells[4].to_string(),
            })
        })
        .collect()
}

/// The settings Istio's test rendered a case with: its own `inputs/` files, or the default
/// ones for cases run with defaults (for 1.25+, which render them at test time, the chart's
/// templates and defaults and a default mesh). None for cases changed in other ways.
fn case_settings(version: &Path, case: &Case) -> Option<(J, J, J)> {
    let inputs = version.join("inputs");
    if !inputs.is_dir() {
        if case.settings != "defaults" {
            return None;
        }
        let files = version.join("chart/files");
        let read = |f: &str| std::fs::read_to_string(files.join(f)).unwrap_or_default();
        let config = json!({"templates": {
            "sidecar": read("injection-template.yaml"),
            "gateway": read("gateway-injection-template.yaml"),
            "grpc-agent": read("grpc-agent.yaml"),
            "grpc-simple": read("grpc-simple.yaml"),
        }});
        return Some((config, chart_values(version), default_mesh()));
    }
    let prefix = format!("{}.{}", case.input, case.number);
    let prefix = if inputs.join(format!("{prefix}.template.gen.yaml")).exists() {
        prefix
    } else if case.settings == "defaults" {
        "default".to_string()
    } else {
        return None;
    };
    let file = |kind: &str| yaml_file(&inputs.join(format!("{prefix}.{kind}.gen.yaml")));
    Some((file("template"), file("values"), file("mesh")))
}

/// Whether the golden's containers are the template's output alone. Not so when the input
/// declares `istio-*` containers itself (istiod merges them over the template's, and
/// post-processing adjusts iptables args to their user), nor for the OpenShift cases, whose
/// proxy UID comes from the namespace's annotations.
fn engine_decides(case: &Case, workload: &J) -> bool {
    let spec = &workload["spec"]["template"]["spec"];
    let declares_istio = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(k).and_then(J::as_array))
        .flatten()
        .any(|c| c["name"].as_str().is_some_and(|n| n.starts_with("istio-")));
    !declares_istio && !case.input.contains("openshift")
}

/// The template a pod asks for (`inject.istio.io/templates`), else `sidecar`.
fn template_name(workload: &J) -> &str {
    workload["spec"]["template"]["metadata"]["annotations"]["inject.istio.io/templates"]
        .as_str()
        .unwrap_or("sidecar")
}

/// The pod (metadata and spec) a workload input holds, with its type and name.
fn workload_pod(doc: &J) -> Option<J> {
    let kind = doc["kind"].as_str()?;
    let pod = match kind {
        "Pod" => json!({"metadata": doc["metadata"], "spec": doc["spec"]}),
        "Deployment" | "DaemonSet" | "StatefulSet" | "ReplicaSet" | "Job" => {
            doc["spec"]["template"].clone()
        }
        _ => return None,
    };
    Some(json!({
        "kind": kind,
        "apiVersion": doc["apiVersion"],
        "metadata": {"name": doc["metadata"]["name"]},
        "spec": {"template": pod}
    }))
}

fn first_doc(path: &Path) -> Option<J> {
    let text = std::fs::read_to_string(path).ok()?;
    goyaml::documents(&text).ok()?.into_iter().next()
}

/// Every golden whose settings we have (1.22–1.24: committed in `inputs/`; later: the cases
/// run with defaults): the istio containers' args, image and ports must be what the golden
/// holds. (Env, probes
/// and resources are left out here: istiod's post-processing rewrites them for these
/// inputs, e.g. app probers.)
#[test]
fn goldens_rendered_with_their_committed_settings() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let funcs = funcs();
    let mut checked = 0;
    let mut failures = Vec::new();
    for version in &versions(&reference) {
        let name = version.file_name().unwrap().to_string_lossy().to_string();
        let (mut version_checked, mut skipped) = (0, 0);
        for case in case_table(version) {
            let Some((config, values, mesh)) = case_settings(version, &case) else {
                continue;
            };
            let golden_path = version.join("inject").join(&case.golden);
            let (Some(input), Some(golden)) = (
                first_doc(&version.join("inject").join(&case.input)),
                first_doc(&golden_path),
            ) else {
                continue;
            };
            let Some(workload) = workload_pod(&input) else {
                continue;
            };
            if !engine_decides(&case, &workload) {
                skipped += 1;
                continue;
            }
            let Some(src) = config["templates"][template_name(&workload)].as_str() else {
                failures.push(format!(
                    "{name} #{}: no template {}",
                    case.number,
                    template_name(&workload)
                ));
                continue;
            };
            // Native sidecars are what the test cluster's version gave; the golden's status
            // annotation records it.
            let native =
                serde_json::to_string(&golden["spec"]["template"]["metadata"]["annotations"])
                    .unwrap_or_default()
                    .contains(r#"\"initContainers\":[\"istio-init\",\"istio-proxy\"]"#)
                    || serde_json::to_string(&golden["metadata"]["annotations"])
                        .unwrap_or_default()
                        .contains(r#"\"initContainers\":[\"istio-init\",\"istio-proxy\"]"#);
            let data = template_data(minor_of(version), &workload, &values, &mesh, native);
            let label = format!("{name} #{} {} → {}", case.number, case.input, case.golden);
            let rendered = match Template::parse("inject", src, &funcs)
                .map_err(|e| e.to_string())
                .and_then(|t| t.render(&data).map_err(|e| e.to_string()))
            {
                Ok(out) => goyaml::from_str(&out).map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            let rendered = match rendered {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{label}: {e}"));
                    continue;
                }
            };
            let golden_spec = match golden["kind"].as_str() {
                Some("Pod") => &golden["spec"],
                _ => &golden["spec"]["template"]["spec"],
            };
            let names: Vec<&str> = ["containers", "initContainers"]
                .iter()
                .filter_map(|k| golden_spec.get(k).and_then(J::as_array))
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .filter(|n| n.starts_with("istio-"))
                .collect();
            for cname in names {
                let (Some(ours), Some(theirs)) = (
                    container(&rendered["spec"], cname),
                    container(golden_spec, cname),
                ) else {
                    failures.push(format!("{label}: we rendered no {cname}"));
                    continue;
                };
                for field in ["args", "image", "ports"] {
                    if ours[field] != theirs[field] {
                        failures.push(format!(
                            "{label}: {cname} {field}: ours {}, golden {}",
                            ours[field], theirs[field]
                        ));
                    }
                }
            }
            version_checked += 1;
        }
        println!(
            "{name}: {version_checked} goldens compared, {skipped} left to the merge pipeline"
        );
        // Fewer cases run with plain defaults after 1.24 than have committed settings before.
        let enough = if version.join("inputs").is_dir() {
            10
        } else {
            3
        };
        assert!(
            version_checked >= enough,
            "{name}: only {version_checked} goldens usable"
        );
        checked += version_checked;
    }
    assert!(checked > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
