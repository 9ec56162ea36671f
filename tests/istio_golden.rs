//! Istio's own golden injection cases, every version in `../shared/reference/istio-<version>/`
//! (1.22.0 … 1.30.0 and master), through revhook both ways, compared field by field.
//!
//! For each version: the cases are read from its `inject_test.go` and `inject/` directory
//! ([`cases`]); each case's injector and mesh ConfigMaps are rendered from that version's chart
//! with `helm template` the way its test rendered them ([`settings`]; proved equal to the
//! settings Istio's test itself wrote for 1.22–1.24); then `revhook inject -f` and
//! `revhook replay --apply` run each input as Istio's test runs kube-inject and the webhook
//! ([`run`], [`workload`]), and every field of the result is compared with the golden after
//! normalizing only representation ([`normalize`]).
//!
//! Needs `../shared` and Helm (PATH or `target/tools/bin/helm`): without them the tests skip
//! with a message, and under `CI=true` they fail. `REVHOOK_GOLDEN_DETAIL=1` prints every
//! differing field (else the first few per run); `REVHOOK_GOLDEN_VERSIONS=1.27.0,master` runs
//! only those versions; `REVHOOK_GOLDEN_BIN` runs another binary with the same flags.

#[path = "istio_golden/cases.rs"]
mod cases;
#[path = "istio_golden/gotable.rs"]
mod gotable;
#[path = "istio_golden/normalize.rs"]
mod normalize;
#[path = "istio_golden/reference.rs"]
mod reference;
#[path = "istio_golden/run.rs"]
mod run;
#[path = "istio_golden/settings.rs"]
mod settings;
#[path = "istio_golden/workload.rs"]
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use cases::{Case, Settings, TestFn};
use normalize::{differences, normalize};
use reference::Version;
use run::{Exception, Outcome, RunResult, Way};
use serde_json::Value;
use settings::Renderer;

/// Where revhook deliberately differs from istiod, with why: the one place they are listed.
/// An exception allows differences only in the fields it names, on the way it names.
const EXCEPTIONS: &[Exception] = &[
    Exception {
        golden: "cronjob.yaml.injected",
        way: Way::KubeInject,
        fields: &[
            "spec.jobTemplate.metadata",
            "spec.jobTemplate.spec.template.metadata",
        ],
        reason: "istioctl kube-inject writes the injected labels and annotations on the \
                 CronJob's jobTemplate metadata (the Job's), where the pods never see them; \
                 revhook writes them on the pod template",
    },
    Exception {
        golden: "cronjob-old-version.yaml.injected",
        way: Way::KubeInject,
        fields: &[
            "spec.jobTemplate.metadata",
            "spec.jobTemplate.spec.template.metadata",
        ],
        reason: "as cronjob.yaml.injected (the same CronJob without native sidecars)",
    },
    Exception {
        golden: "daemonset.yaml.injected",
        way: Way::KubeInject,
        fields: &[
            "status",
        ],
        reason: WORKLOAD_ZERO_VALUES,
    },
    Exception {
        golden: "daemonset-old-version.yaml.injected",
        way: Way::KubeInject,
        fields: &["status"],
        reason: WORKLOAD_ZERO_VALUES,
    },
    Exception {
        golden: "replicaset.yaml.injected",
        way: Way::KubeInject,
        fields: &[
            "status",
        ],
        reason: WORKLOAD_ZERO_VALUES,
    },
    Exception {
        golden: "replicaset-old-version.yaml.injected",
        way: Way::KubeInject,
        fields: &[
            "status",
        ],
        reason: WORKLOAD_ZERO_VALUES,
    },
    Exception {
        golden: "replicationcontroller.yaml.injected",
        way: Way::KubeInject,
        fields: &[
            "status",
        ],
        reason: WORKLOAD_ZERO_VALUES,
    },
    Exception {
        golden: "statefulset.yaml.injected",
        way: Way::KubeInject,
        fields: &[
            "status",
        ],
        reason: WORKLOAD_ZERO_VALUES,
    },
    Exception {
        golden: "statefulset-old-version.yaml.injected",
        way: Way::KubeInject,
        fields: &[
            "status",
        ],
        reason: WORKLOAD_ZERO_VALUES,
    },
    Exception {
        golden: "deploymentconfig.yaml.injected",
        way: Way::KubeInject,
        fields: &[
            "status",
            "spec.test",
            "spec.paused",
            "spec.minReadySeconds",
        ],
        reason: WORKLOAD_ZERO_VALUES,
    },
    Exception {
        golden: "deploymentconfig-multi.yaml.injected",
        way: Way::KubeInject,
        fields: &[
            "items[1].status",
            "items[1].spec.test",
            "items[1].spec.paused",
            "items[1].spec.minReadySeconds",
        ],
        reason: WORKLOAD_ZERO_VALUES,
    },
    Exception {
        golden: "deploymentconfig-with-canonical-service-label.yaml.injected",
        way: Way::KubeInject,
        fields: &[
            "status",
            "spec.test",
            "spec.paused",
            "spec.minReadySeconds",
        ],
        reason: WORKLOAD_ZERO_VALUES,
    },
    Exception {
        golden: "hello-openshift.yaml.injected",
        way: Way::Webhook,
        fields: &[
            "spec.containers[istio-proxy].securityContext.runAsUser",
            "spec.containers[istio-proxy].securityContext.runAsGroup",
            "spec.initContainers[istio-proxy].securityContext.runAsUser",
            "spec.initContainers[istio-proxy].securityContext.runAsGroup",
            "spec.initContainers[istio-validation].securityContext.runAsUser",
            "spec.initContainers[istio-validation].securityContext.runAsGroup",
            "spec.initContainers[istio-validation].args[6]",
        ],
        reason: OPENSHIFT_UID,
    },
    Exception {
        golden: "hello-openshift-custom-injection.yaml.injected",
        way: Way::Webhook,
        fields: &[
            "spec.containers[istio-proxy].securityContext.runAsUser",
            "spec.containers[istio-proxy].securityContext.runAsGroup",
            "spec.initContainers[istio-proxy].securityContext.runAsUser",
            "spec.initContainers[istio-proxy].securityContext.runAsGroup",
            "spec.initContainers[istio-validation].securityContext.runAsUser",
            "spec.initContainers[istio-validation].securityContext.runAsGroup",
            "spec.initContainers[istio-validation].args[6]",
            "metadata.annotations[\"proxy.istio.io/overrides\"][\"<json>\"].containers[istio-proxy].securityContext.runAsUser",
            "metadata.annotations[\"proxy.istio.io/overrides\"][\"<json>\"].initContainers[istio-proxy].securityContext.runAsUser",
        ],
        reason: OPENSHIFT_UID,
    },
];

/// Why kube-inject's output differs outside the pod template.
const WORKLOAD_ZERO_VALUES: &str =
    "istioctl kube-inject decodes the workload into its Go type and encodes it again, so \
                 fields outside the pod template gain Go's zero values (status: {replicas: 0, \
                 ...}) and lose zero-valued omitempty ones; revhook leaves everything outside \
                 the pod template as the manifest has it";

/// Why OpenShift's proxy UID differs.
const OPENSHIFT_UID: &str =
    "istiod on OpenShift runs the proxy as the first UID of the namespace's \
                 openshift.io/sa.scc.uid-range annotation; revhook reads namespaces' labels, \
                 not their annotations, and injects the templates' UID (README: OpenShift is \
                 supported in guard mode only)";

fn versions() -> Option<Vec<Version>> {
    let root = reference::root()?;
    Some(reference::versions(&root))
}

/// Every (version, case) of the reference sets.
fn all_cases(versions: &[Version]) -> Vec<(&Version, Case)> {
    versions
        .iter()
        .flat_map(|v| cases::discover(v).into_iter().map(move |c| (v, c)))
        .collect()
}

#[test]
fn settings_render_as_istios_own_test_rendered_them() {
    let Some(versions) = versions() else { return };
    let Some(helm) = reference::helm() else {
        return;
    };
    let renderer = Renderer::new(&helm);
    let started = Instant::now();
    let mut proved = 0;
    let mut mismatches = Vec::new();
    for version in versions.iter().filter(|v| v.inputs_dir().is_dir()) {
        let expected = inputs_cases(version);
        let present = inputs_prefixes(version);
        let named: BTreeSet<String> = expected.keys().cloned().collect();
        assert_eq!(
            named, present,
            "{}: inputs/ holds settings for other cases than the test's table says",
            version.label
        );
        let mut differing = 0;
        for (prefix, settings) in &expected {
            let chart = renderer.chart(version, settings);
            let ours = settings::parsed_data(&chart);
            let theirs = settings::istio_inputs(version, prefix);
            let before = mismatches.len();
            for (what, a, b) in [
                ("template", &ours.0, &theirs.0),
                ("values", &ours.1, &theirs.1),
                ("mesh", &ours.2, &theirs.2),
            ] {
                for d in differences(a, b) {
                    mismatches.push(format!("{} {prefix} {what}: {d}", version.label));
                }
            }
            differing += usize::from(mismatches.len() > before);
        }
        println!(
            "{}: rendered settings equal Istio's inputs/ (config, values, mesh) for {} of {} \
             (default + {} cases)",
            version.label,
            expected.len() - differing,
            expected.len(),
            expected.len() - 1
        );
        proved += 1;
    }
    println!(
        "{proved} versions proved in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        proved >= 3,
        "expected inputs/ in 1.22–1.24, found {proved} versions with it"
    );
    assert!(
        mismatches.is_empty(),
        "rendered settings differ from Istio's:\n{}",
        mismatches.join("\n")
    );
}

/// The settings Istio's test wrote to `inputs/`: `default` and `<input>.<case#>` for every
/// `TestInjection` case with `--set` flags or an overlay (the mesh edit is applied later).
fn inputs_cases(version: &Version) -> BTreeMap<String, Settings> {
    let mut expected = BTreeMap::from([("default".to_owned(), Settings::default())]);
    for case in cases::discover(version) {
        if case.test == TestFn::Injection && case.settings.renders_chart() {
            let settings = Settings {
                mesh_edit: None,
                ..case.settings.clone()
            };
            expected.insert(format!("{}.{}", case.input, case.index), settings);
        }
    }
    expected
}

fn inputs_prefixes(version: &Version) -> BTreeSet<String> {
    let dir = version.inputs_dir();
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".values.gen.yaml").map(str::to_owned))
        .collect()
}

#[test]
fn cases_are_discovered_from_each_versions_directory_and_test_table() {
    let Some(versions) = versions() else { return };
    let mut problems = Vec::new();
    let mut table = String::from(
        "| version | explicit | default | older-version | cases | kube-inject | webhook | must fail | native by default | need a feature |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for version in &versions {
        let cases = cases::discover(version);
        check_discovery(version, &cases, &mut problems);
        let count = |f: &dyn Fn(&Case) -> bool| cases.iter().filter(|c| f(c)).count();
        let explicit = count(&|c| c.test == TestFn::Injection && c.explicit);
        let older = count(&|c| c.test == TestFn::InjectionOlderVersion);
        let native_default = cases
            .iter()
            .find(|c| !c.explicit)
            .is_some_and(|c| c.native_sidecars);
        let _ = writeln!(
            table,
            "| {} | {explicit} | {} | {older} | {} | {} | {} | {} | {} | {} |",
            version.label,
            count(&|c| !c.explicit),
            cases.len(),
            count(&|c| c.kube_inject),
            count(&|c| c.webhook),
            count(&|c| c.expected_error.is_some()),
            if native_default { "yes" } else { "no" },
            count(&|c| !c.features.is_empty()),
        );
        let (md_explicit, md_older) = cases::source_md_counts(version);
        if md_explicit != Some(explicit) || md_older.unwrap_or(0) != older {
            problems.push(format!(
                "{}: inject_test.go has {explicit} TestInjection and {older} \
                 TestInjectionOlderVersion entries, SOURCE.md says {md_explicit:?} and {md_older:?}",
                version.label
            ));
        }
    }
    print!("{table}");
    assert!(
        problems.is_empty(),
        "discovery problems:\n{}",
        problems.join("\n")
    );
}

/// Istio's own rules for its case table, and what this test needs from every case.
fn check_discovery(version: &Version, cases: &[Case], problems: &mut Vec<String>) {
    let dir = version.inject_dir();
    let label = &version.label;
    let goldens: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".injected"))
        .collect();
    let wanted: BTreeSet<String> = cases.iter().filter_map(|c| c.golden.clone()).collect();
    for stale in goldens.difference(&wanted) {
        problems.push(format!("{label}: golden {stale} belongs to no case"));
    }
    for case in cases {
        let name = case.name();
        if !dir.join(&case.input).is_file() {
            problems.push(format!("{label} {name}: input {} missing", case.input));
        }
        match (&case.golden, &case.expected_error) {
            (Some(golden), None) if !dir.join(golden).is_file() => {
                problems.push(format!("{label} {name}: golden missing"));
            }
            (None, None) => problems.push(format!("{label} {name}: neither golden nor error")),
            _ => {}
        }
        if let Some(overlay) = &case.settings.overlay {
            if !dir.join(overlay).is_file() {
                problems.push(format!("{label} {name}: overlay {overlay} missing"));
            }
        }
        if !case.kube_inject && !case.webhook && case.expected_error.is_none() {
            problems.push(format!("{label} {name}: runs neither way"));
        }
        if case.webhook {
            let input = read_docs(&dir.join(&case.input));
            let golden = run::golden_docs(version, case);
            let pods = |docs: &[Value]| {
                docs.iter()
                    .flat_map(workload::injectable_parts)
                    .map(|p| workload::object_to_pod(&p))
                    .collect::<Vec<_>>()
            };
            let (input_pods, golden_pods) = (pods(&input), pods(&golden));
            if input_pods.is_empty() || input_pods.len() != golden_pods.len() {
                problems.push(format!(
                    "{label} {name}: {} input pods for {} golden pods",
                    input_pods.len(),
                    golden_pods.len()
                ));
            }
            if input_pods
                .iter()
                .chain(&golden_pods)
                .any(|p| !p["spec"]["containers"].is_array())
            {
                problems.push(format!("{label} {name}: a pod without containers"));
            }
        }
    }
}

fn read_docs(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    workload::yaml_docs(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_golden_survives_normalization_and_a_changed_field_is_named() {
    let Some(versions) = versions() else { return };
    let mut goldens = 0;
    for (version, case) in all_cases(&versions) {
        let Some(golden) = &case.golden else { continue };
        for doc in read_docs(&version.inject_dir().join(golden)) {
            let normalized = normalize(&doc);
            assert_eq!(
                normalize(&normalized),
                normalized,
                "{golden}: not idempotent"
            );
            assert!(
                differences(&normalized, &normalize(&doc)).is_empty(),
                "{golden}"
            );
            goldens += 1;
        }
    }
    assert!(goldens > 500, "only {goldens} golden documents read");
    // A real golden with one field changed differs in exactly that field.
    let (version, case) = all_cases(&versions)
        .into_iter()
        .find(|(_, c)| c.golden.as_deref() == Some("hello.yaml.injected"))
        .unwrap_or_else(|| panic!("no hello.yaml.injected"));
    let mut doc = read_docs(
        &version
            .inject_dir()
            .join(case.golden.as_deref().unwrap_or("")),
    )
    .remove(0);
    let original = normalize(&doc);
    doc["spec"]["template"]["spec"]["containers"][0]["image"] = "other:1".into();
    let found: Vec<String> = differences(&normalize(&doc), &original)
        .into_iter()
        .map(|d| d.path)
        .collect();
    assert_eq!(found, vec!["spec.template.spec.containers[hello].image"]);
}

#[test]
fn settings_render_for_every_case_of_every_version() {
    let Some(versions) = versions() else { return };
    let Some(helm) = reference::helm() else {
        return;
    };
    let renderer = Renderer::new(&helm);
    let cases = all_cases(&versions);
    let started = Instant::now();
    let jobs: Vec<(&Version, &Settings)> = cases.iter().map(|(v, c)| (*v, &c.settings)).collect();
    let (rendered, stats) = renderer.render_all(&jobs);
    println!(
        "{} cases, {} distinct settings from {} distinct chart renders ({} run by helm now, \
         the rest cached) in {:.1} s",
        cases.len(),
        stats.settings,
        stats.helm_inputs,
        stats.helm_runs,
        started.elapsed().as_secs_f64()
    );
    for ((label, settings), files) in &rendered {
        let injector: Value = read_yaml(&files.injector);
        let config: Value =
            revhook::core::yaml::parse(injector["data"]["config"].as_str().unwrap_or(""))
                .unwrap_or_else(|e| panic!("{label}: config: {e}"));
        assert!(
            config["templates"]["sidecar"].is_string(),
            "{label} {settings:?}: no sidecar template"
        );
        let values: Value = serde_json::from_str(injector["data"]["values"].as_str().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{label}: values: {e}"));
        assert!(values["global"].is_object(), "{label}: no global values");
        let mesh = mesh_of(&files.mesh);
        if let Some(edit) = settings.mesh_edit {
            let unedited = Settings {
                mesh_edit: None,
                ..settings.clone()
            };
            let plain = mesh_of(
                &renderer
                    .render(version_of(&versions, label), &unedited)
                    .mesh,
            );
            let changed = differences(&mesh, &plain);
            assert!(
                !changed.is_empty(),
                "{label}: mesh edit {} changed nothing",
                cases::MESH_EDITS[edit].go
            );
        }
    }
}

fn version_of<'a>(versions: &'a [Version], label: &str) -> &'a Version {
    versions
        .iter()
        .find(|v| v.label == label)
        .unwrap_or_else(|| panic!("no version {label}"))
}

fn read_yaml(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    revhook::core::yaml::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn mesh_of(path: &std::path::Path) -> Value {
    let configmap = read_yaml(path);
    revhook::core::yaml::parse(configmap["data"]["mesh"].as_str().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{}: mesh: {e}", path.display()))
}

/// The target: every case of every version equal to Istio's golden, both ways, except the
/// documented [`EXCEPTIONS`].
#[test]
fn every_case_of_every_version_equals_istio_both_ways() {
    let Some(versions) = versions() else { return };
    let Some(helm) = reference::helm() else {
        return;
    };
    let started = Instant::now();
    let renderer = Renderer::new(&helm);
    let cases = all_cases(&versions);
    let jobs: Vec<(&Version, &Settings)> = cases.iter().map(|(v, c)| (*v, &c.settings)).collect();
    let (rendered, stats) = renderer.render_all(&jobs);
    let settings_time = started.elapsed();
    // REVHOOK_GOLDEN_BIN runs another binary with the same flags (an oracle, say).
    let bin = std::env::var_os("REVHOOK_GOLDEN_BIN").map_or_else(
        || env!("CARGO_BIN_EXE_revhook").into(),
        std::path::PathBuf::from,
    );
    let only = std::env::var("REVHOOK_GOLDEN_VERSIONS").ok();
    let cases: Vec<(&Version, Case)> = cases
        .into_iter()
        .filter(|(v, _)| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|l| l == v.label))
        })
        .collect();
    let results = Mutex::new(Vec::new());
    settings::parallel(&cases, |(version, case)| {
        let files = &rendered[&(version.label.clone(), case.settings.clone())];
        let runs = run::run_case(&bin, version, case, files, EXCEPTIONS);
        results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(runs);
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|r| {
        (
            version_of(&versions, &r.version).minor,
            r.case.test,
            r.case.index,
            r.way,
        )
    });
    let failures = report(&versions, &results);
    println!(
        "settings: {} distinct ({} helm runs) in {:.1} s; {} runs of revhook; total {:.1} s",
        stats.settings,
        stats.helm_runs,
        settings_time.as_secs_f64(),
        results.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures == 0,
        "{failures} runs differ from Istio or fail (table above)"
    );
}

/// Prints the per-version table and every run that is not equal; returns how many fail.
fn report(versions: &[Version], results: &[RunResult]) -> usize {
    let detail = std::env::var_os("REVHOOK_GOLDEN_DETAIL").is_some();
    let mut out = String::from(
        "| version | cases | runs | equal | excepted | differing | errors | failed as expected |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for version in versions {
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.version == version.label)
            .collect();
        if runs.is_empty() {
            continue;
        }
        let cases: BTreeSet<(TestFn, usize)> =
            runs.iter().map(|r| (r.case.test, r.case.index)).collect();
        let count = |f: fn(&Outcome) -> bool| runs.iter().filter(|r| f(&r.outcome)).count();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            version.label,
            cases.len(),
            runs.len(),
            count(|o| matches!(o, Outcome::Equal)),
            count(|o| matches!(o, Outcome::Excepted(_))),
            count(|o| matches!(o, Outcome::Differs(_))),
            count(|o| matches!(o, Outcome::Error(_))),
            count(|o| matches!(o, Outcome::FailedAsExpected)),
        );
    }
    let mut failures = 0;
    let mut by_path: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in results {
        let head = format!("- {} {} ({})", r.version, r.case.name(), r.way);
        let needs = if r.case.features.is_empty() {
            String::new()
        } else {
            format!(" [needs {:?}]", r.case.features)
        };
        match &r.outcome {
            Outcome::Differs(diffs) => {
                failures += 1;
                let _ = writeln!(out, "{head}{needs}: {} fields differ", diffs.len());
                let shown = if detail { diffs.len() } else { 6 };
                for d in diffs.iter().take(shown) {
                    let _ = writeln!(out, "    {d}");
                }
                if diffs.len() > shown {
                    let _ = writeln!(out, "    ... and {} more", diffs.len() - shown);
                }
                for d in diffs {
                    *by_path.entry(d.path.clone()).or_default() += 1;
                }
            }
            Outcome::Error(e) => {
                failures += 1;
                errors
                    .entry(e.clone())
                    .or_default()
                    .push(format!("{head}{needs}"));
            }
            Outcome::Excepted(why) => {
                let _ = writeln!(out, "{head}: excepted: {why}");
            }
            Outcome::Equal | Outcome::FailedAsExpected => {}
        }
    }
    // One line per distinct error, with the first few runs that hit it.
    for (error, runs) in &errors {
        let _ = writeln!(out, "error in {} runs: {error}", runs.len());
        for run in runs.iter().take(if detail { runs.len() } else { 3 }) {
            let _ = writeln!(out, "    {run}");
        }
        if !detail && runs.len() > 3 {
            let _ = writeln!(out, "    ... and {} more", runs.len() - 3);
        }
    }
    let mut common: Vec<(&String, &usize)> = by_path.iter().collect();
    common.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if !common.is_empty() {
        let _ = writeln!(out, "Most frequent differing fields:");
        for (path, n) in common.into_iter().take(20) {
            let _ = writeln!(out, "    {n:4}  {path}");
        }
    }
    print!("{out}");
    failures
}
