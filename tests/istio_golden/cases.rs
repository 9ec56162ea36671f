//! Istio's golden cases of one version, discovered the way its own test discovers them.
//!
//! Source of truth: that version's `inject_test.go` (read with [`gotable`]), not `SOURCE.md`'s
//! summary of it: the Go file is Istio's own, unchanged, and carries the exact mesh edits and
//! setup calls. `TestInjection`'s `cases` are the explicit entries; then, as Istio's test does,
//! every `X.yaml` in `inject/` (not `*.iop.yaml`) whose `X.yaml.injected` no explicit entry
//! names is a default case `X.yaml → X.yaml.injected`; then `TestInjectionOlderVersion`'s cases
//! (1.27+). A new file in `inject/` is a new case; a field, mesh edit or setup call this file
//! does not know fails loudly.

use std::collections::BTreeSet;

use super::gotable::{self, GoCase, GoValue};
use super::reference::Version;

/// The Istio test function a case comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TestFn {
    Injection,
    InjectionOlderVersion,
}

impl TestFn {
    pub fn go_name(self) -> &'static str {
        match self {
            TestFn::Injection => "TestInjection",
            TestFn::InjectionOlderVersion => "TestInjectionOlderVersion",
        }
    }
}

/// What a case's `setup` function switches on, beyond the injector and mesh settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// istiod runs with `PLATFORM=openshift`; the fake namespace `test-ns` carries the UID and
    /// supplemental-group range `1000620000/10000`.
    OpenShift,
    /// istiod runs with `COMPLIANCE_POLICY=<policy>` (template data `.CompliancePolicy`).
    CompliancePolicy(String),
}

/// A `setup` call, by its (whitespace-collapsed) Go text.
#[derive(Debug, Clone, Copy)]
enum Setup {
    NativeSidecars(bool),
    OpenShift,
    CompliancePolicy(&'static str),
}

/// Every distinct `setup` body in the reference sets. An unknown one fails discovery.
const SETUPS: &[(&str, Setup)] = &[
    (
        r#"test.SetEnvForTest(t, features.EnableNativeSidecars.Name, "true")"#,
        Setup::NativeSidecars(true),
    ),
    (
        r#"test.SetEnvForTest(t, features.EnableNativeSidecars.Name, "false")"#,
        Setup::NativeSidecars(false),
    ),
    (
        "test.SetForTest(t, &features.EnableNativeSidecars, features.NativeSidecarModeDisabled)",
        Setup::NativeSidecars(false),
    ),
    (
        "test.SetForTest(t, &features.EnableNativeSidecars, features.NativeSidecarModeEnabled)",
        Setup::NativeSidecars(true),
    ),
    (
        "test.SetEnvForTest(t, platform.Platform.Name, platform.OpenShift)",
        Setup::OpenShift,
    ),
    (
        r#"test.SetForTest(t, &common_features.CompliancePolicy, "fips-140-3")"#,
        Setup::CompliancePolicy("fips-140-3"),
    ),
];

/// A case's `mesh` edit: Istio's Go code, and the same edit as a YAML overlay on `data.mesh`
/// (mappings merge key by key, sequences append: `m.X = append(m.X, ...)`).
#[derive(Debug)]
pub struct MeshEdit {
    pub go: &'static str,
    pub overlay: &'static str,
}

/// Every distinct `mesh` edit in the reference sets. An unknown one fails discovery.
///
/// The edits run after the mesh ConfigMap was applied over `DefaultMeshConfig()`; as overlays
/// they are applied to `data.mesh` before revhook applies it over the same defaults. That is
/// the same config because the chart's mesh holds none of the edited fields, `defaultConfig`
/// is merged field by field (`MergeProxyConfig`, `proxyMetadata` key by key), and
/// `extensionProviders` are appended to the defaults by name (`ApplyMeshConfig`).
pub const MESH_EDITS: &[MeshEdit] = &[
    MeshEdit {
        go: "m.DefaultConfig.InterceptionMode = meshapi.ProxyConfig_TPROXY",
        overlay: "defaultConfig:\n  interceptionMode: TPROXY\n",
    },
    MeshEdit {
        go: "m.DefaultConfig.DrainDuration = durationpb.New(time.Second * 23)",
        overlay: "defaultConfig:\n  drainDuration: 23s\n",
    },
    MeshEdit {
        go: r#"if m.DefaultConfig.ProxyMetadata == nil { m.DefaultConfig.ProxyMetadata = map[string]string{} } m.DefaultConfig.ProxyMetadata["ISTIO_META_TLS_CLIENT_KEY"] = "/etc/identity/client/keys/client-key.pem""#,
        overlay: "defaultConfig:\n  proxyMetadata:\n    ISTIO_META_TLS_CLIENT_KEY: /etc/identity/client/keys/client-key.pem\n",
    },
    MeshEdit {
        // An empty message, set: `.ProxyConfig.Tracing` is non-nil (true in a template `if`).
        go: "m.DefaultConfig.Tracing = &meshapi.Tracing{}",
        overlay: "defaultConfig:\n  tracing: {}\n",
    },
    MeshEdit {
        go: "m.InboundTrafficPolicy = &meshapi.MeshConfig_InboundTrafficPolicy{ Mode: meshapi.MeshConfig_InboundTrafficPolicy_LOCALHOST, }",
        overlay: "inboundTrafficPolicy:\n  mode: LOCALHOST\n",
    },
    MeshEdit {
        go: r#"m.ExtensionProviders = append(m.ExtensionProviders, &meshapi.MeshConfig_ExtensionProvider{ Name: "otel", Provider: &meshapi.MeshConfig_ExtensionProvider_Opentelemetry{ Opentelemetry: &meshapi.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider{ Service: "otel-collector.observability.svc.cluster.local", Port: 4317, ServiceAttributeEnrichment: meshapi.MeshConfig_ExtensionProvider_OTEL_SEMANTIC_CONVENTIONS, }, }, })"#,
        overlay: "extensionProviders:\n- name: otel\n  opentelemetry:\n    service: otel-collector.observability.svc.cluster.local\n    port: 4317\n    serviceAttributeEnrichment: OTEL_SEMANTIC_CONVENTIONS\n",
    },
];

/// The injector and mesh settings a case is rendered with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Settings {
    /// `--set` flags in IstioOperator paths (`values.global.x=y`, `components.cni.enabled=true`).
    pub set_flags: Vec<String>,
    /// A `*.iop.yaml` overlay in `inject/`.
    pub overlay: Option<String>,
    /// Index into [`MESH_EDITS`].
    pub mesh_edit: Option<usize>,
}

impl Settings {
    /// Whether Istio's test renders the chart for this case (else it reuses the defaults).
    pub fn renders_chart(&self) -> bool {
        !self.set_flags.is_empty() || self.overlay.is_some()
    }
}

/// One golden case.
#[derive(Debug, Clone)]
pub struct Case {
    pub test: TestFn,
    /// Position in Istio's `cases` (explicit entries first, then default cases).
    pub index: usize,
    pub input: String,
    /// `None` for the cases that must fail (they name no golden).
    pub golden: Option<String>,
    pub settings: Settings,
    pub native_sidecars: bool,
    pub features: Vec<Feature>,
    pub kube_inject: bool,
    pub webhook: bool,
    pub expected_error: Option<String>,
    pub expected_log: Option<String>,
    /// Named in the test's table (not a default case).
    pub explicit: bool,
}

impl Case {
    /// `[07] traffic-params.yaml.injected`, as Istio names its subtests.
    pub fn name(&self) -> String {
        let prefix = match self.test {
            TestFn::Injection => String::new(),
            TestFn::InjectionOlderVersion => "older ".to_owned(),
        };
        match &self.golden {
            Some(golden) => format!("{prefix}[{:02}] {golden}", self.index),
            None => format!("{prefix}[{:02}] {}", self.index, self.input),
        }
    }
}

/// Every case of one version, `TestInjection` (explicit, then default) then
/// `TestInjectionOlderVersion`.
pub fn discover(version: &Version) -> Vec<Case> {
    let path = version.inject_test_go();
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body = gotable::func_body(&src, TestFn::Injection.go_name())
        .unwrap_or_else(|| panic!("{}: no TestInjection", path.display()));
    let mut cases = explicit_cases(version, TestFn::Injection, body);
    let already_tested: BTreeSet<String> = cases
        .iter()
        .map(|c| {
            c.golden
                .clone()
                .unwrap_or_else(|| format!("{}.injected", c.input))
        })
        .collect();
    let native_default = native_sidecars_default(body);
    for input in inputs(version) {
        let golden = format!("{input}.injected");
        if already_tested.contains(&golden) {
            continue;
        }
        cases.push(Case {
            test: TestFn::Injection,
            index: cases.len(),
            input,
            golden: Some(golden),
            settings: Settings::default(),
            native_sidecars: native_default,
            features: vec![],
            kube_inject: true,
            webhook: true,
            expected_error: None,
            expected_log: None,
            explicit: false,
        });
    }
    if let Some(body) = gotable::func_body(&src, TestFn::InjectionOlderVersion.go_name()) {
        cases.extend(explicit_cases(version, TestFn::InjectionOlderVersion, body));
    }
    cases
}

/// The `X.yaml` inputs in `inject/` (overlays excluded), sorted as `os.ReadDir` lists them.
pub fn inputs(version: &Version) -> Vec<String> {
    let dir = version.inject_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml") && !n.ends_with(".iop.yaml"))
        .collect();
    names.sort();
    names
}

/// Native sidecars when no setup says otherwise. Up to 1.26 the feature is off by default
/// (`ENABLE_NATIVE_SIDECARS=false`) and the test has no Nodes; from 1.27 it is `auto` and the
/// test's fake cluster holds Nodes: on when every kubelet is at 1.33 or newer (Istio's
/// `DetectNativeSidecar`), which `TestInjection` has and `TestInjectionOlderVersion` has not.
fn native_sidecars_default(body: &str) -> bool {
    let declared = &body[..body.find("cases :=").unwrap_or(body.len())];
    let minors = gotable::kubelet_minors(declared);
    !minors.is_empty() && minors.iter().all(|&m| m >= 33)
}

fn explicit_cases(version: &Version, test: TestFn, body: &str) -> Vec<Case> {
    let native_default = native_sidecars_default(body);
    gotable::cases(body)
        .into_iter()
        .enumerate()
        .map(|(index, fields)| explicit_case(version, test, index, fields, native_default))
        .collect()
}

fn explicit_case(
    version: &Version,
    test: TestFn,
    index: usize,
    mut fields: GoCase,
    native_default: bool,
) -> Case {
    let context = format!("{} {} case {index}", version.label, test.go_name());
    let mut take_str = |name: &str| match fields.remove(name) {
        None => None,
        Some(GoValue::Str(s)) => Some(s),
        Some(other) => panic!("{context}: {name} is not a string: {other:?}"),
    };
    let input = take_str("in").unwrap_or_else(|| panic!("{context}: no `in`"));
    let golden = take_str("want");
    let overlay = take_str("inFilePath");
    let expected_error = take_str("expectedError");
    let expected_log = take_str("expectedLog");
    let mut set_flags = match fields.remove("setFlags") {
        None => vec![],
        Some(GoValue::Strings(flags)) => flags,
        Some(other) => panic!("{context}: setFlags is not a []string: {other:?}"),
    };
    let mut flag = |name: &str| match fields.remove(name) {
        None => false,
        Some(GoValue::Bool(b)) => b,
        Some(other) => panic!("{context}: {name} is not a bool: {other:?}"),
    };
    let skip_webhook = flag("skipWebhook");
    let skip_injection = flag("skipInjection");
    let mesh_edit = fields.remove("mesh").map(|v| mesh_edit_index(&context, &v));
    let mut native_sidecars = native_default;
    let mut features = vec![];
    if let Some(setup) = fields.remove("setup") {
        match setup_of(&context, &setup) {
            Setup::NativeSidecars(on) => native_sidecars = on,
            Setup::OpenShift => features.push(Feature::OpenShift),
            Setup::CompliancePolicy(p) => {
                // istiod reads COMPLIANCE_POLICY from its environment; revhook reads the
                // revision's istiod environment from the values that set it (pilot.env).
                set_flags.push(format!("values.pilot.env.COMPLIANCE_POLICY={p}"));
                features.push(Feature::CompliancePolicy(p.to_owned()));
            }
        }
    }
    assert!(
        fields.is_empty(),
        "{context}: fields this test does not know: {:?}",
        fields.keys().collect::<Vec<_>>()
    );
    let erroring = expected_error.is_some();
    Case {
        test,
        index,
        input,
        golden,
        settings: Settings {
            set_flags,
            overlay,
            mesh_edit,
        },
        native_sidecars,
        features,
        kube_inject: !skip_injection,
        // Istio runs no webhook check for the cases that must fail.
        webhook: !skip_webhook && !erroring,
        expected_error,
        expected_log,
        explicit: true,
    }
}

fn mesh_edit_index(context: &str, value: &GoValue) -> usize {
    let GoValue::Func(body) = value else {
        panic!("{context}: mesh is not a func: {value:?}")
    };
    MESH_EDITS
        .iter()
        .position(|e| gotable::collapse_whitespace(e.go) == *body)
        .unwrap_or_else(|| {
            panic!("{context}: a mesh edit with no overlay in MESH_EDITS (add one): {body}")
        })
}

fn setup_of(context: &str, value: &GoValue) -> Setup {
    let GoValue::Func(body) = value else {
        panic!("{context}: setup is not a func: {value:?}")
    };
    SETUPS
        .iter()
        .find(|(go, _)| gotable::collapse_whitespace(go) == *body)
        .map(|(_, setup)| *setup)
        .unwrap_or_else(|| panic!("{context}: a setup call SETUPS does not know (add it): {body}"))
}

/// The explicit-entry counts `SOURCE.md` states for this version (`TestInjection`,
/// `TestInjectionOlderVersion`), to cross-check the Go reader against the written summary.
pub fn source_md_counts(version: &Version) -> (Option<usize>, Option<usize>) {
    let path = version.source_md();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let count_after = |marker: &str| {
        text.lines()
            .find(|l| l.starts_with("### ") && l.contains(marker))
            .and_then(|l| l.rsplit_once('(')?.1.strip_suffix(')')?.parse().ok())
    };
    (
        count_after("entries in `TestInjection`"),
        count_after("`TestInjectionOlderVersion`"),
    )
}
