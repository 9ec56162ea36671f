//! Operations as mesh operators run them: the real binary's `/metrics` (per-revision series,
//! Istio's names, `promtool check metrics`), the alert rules (`promtool check rules` and
//! `promtool test rules`), the PrometheusRule and ServiceMonitor, the Grafana dashboard's
//! queries, shell completions and the kubectl plugin name.
//!
//! promtool comes from Debian's `prometheus` package. Without it the promtool steps are
//! skipped with a note, except under `CI=true`, where a missing promtool is a failure.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{connect, fixture, Proto};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_revhook");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `revhook serve` as a child process, on ports the OS picked.
struct Served {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    ca: String,
    dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn start(config: &str) -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("revhook.yaml");
        std::fs::write(&config_path, config).expect("config");
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(["--log-format", "json", "--reload-interval", "100ms"])
            .arg("--certs-dir")
            .arg(dir.path().join("certs"))
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start revhook serve");
        let stderr = child.stderr.take().expect("stderr");
        let at = common::listening(stderr);
        let (addr, admin) = (at.addr, at.admin.expect("admin address"));
        let ca = std::fs::read_to_string(dir.path().join("certs/ca.crt")).expect("dev CA");
        Served {
            child,
            addr,
            admin,
            ca,
            dir,
        }
    }

    fn set_config(&self, config: &str) {
        std::fs::write(self.dir.path().join("revhook.yaml"), config).expect("config");
    }

    /// `GET /metrics` on the admin port, over plain HTTP/1.1.
    fn metrics(&self) -> String {
        let mut tcp = std::net::TcpStream::connect(self.admin).expect("admin port");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut tcp, &mut out).expect("read");
        let (head, body) = out.split_once("\r\n\r\n").expect("HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        body.to_owned()
    }

    async fn inject(&self, review: &str) -> Value {
        self.post("/inject", review).await
    }

    async fn post(&self, path: &str, review: &str) -> Value {
        let mut client = connect(self.addr, &self.ca, Proto::Http1)
            .await
            .expect("TLS connect");
        common::admission_response(&client.post(path, fixture(review)).await)
    }
}

/// The value of one sample line, by its exact series text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Sample names in an exposition (`revhook_x_total`, `revhook_y_bucket`, ...).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Metric names a PromQL expression reads: identifiers with revhook's or Istio's prefix.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("revhook_") || w.starts_with("sidecar_injection_"))
        .map(str::to_owned)
        .collect()
}

/// promtool, or `None` (a skip) outside CI; in CI its absence fails the test.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is not installed, and CI=true: .ci/run installs Debian's prometheus package"
        );
        eprintln!("SKIP: promtool not installed (apt-get install prometheus)");
    }
    found
}

fn run_promtool(promtool: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(promtool)
        .args(args)
        .current_dir(repo("manifests/monitoring"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

fn config() -> String {
    String::from_utf8(fixture("local-config.yaml")).expect("utf8")
}

#[tokio::test]
async fn metrics_of_the_real_server_pass_promtool_and_exist_at_zero() {
    let served = Served::start(&config());
    let text = served.metrics();
    // Before any request: Istio's names, and every revision and tag of the config, at zero.
    for series in [
        "sidecar_injection_requests_total",
        "sidecar_injection_success_total",
        "sidecar_injection_failure_total",
        "sidecar_injection_skip_total",
        "sidecar_injection_time_seconds_count",
        r#"revhook_injections_total{revision="asm-1-22",tag=""}"#,
        r#"revhook_injections_total{revision="asm-1-22",tag="prod-stable"}"#,
        r#"revhook_injections_total{revision="asm-1-23",tag="prod-canary"}"#,
        r#"revhook_injection_denials_total{reason="stale",revision="unknown",tag=""}"#,
        r#"revhook_injection_skips_total{reason="pod-opt-out",revision="",tag=""}"#,
        r#"revhook_validation_denials_total{reason="stale",revision="unknown"}"#,
        r#"revhook_cert_reloads_total{result="ok"}"#,
        r#"revhook_snapshot_updates_total{result="error"}"#,
        r#"revhook_validate_unknown_kind_total{kind="other"}"#,
        "revhook_ca_bundle_writes_total",
    ] {
        assert_eq!(
            sample(&text, series),
            Some(0.0),
            "{series} at zero:\n{text}"
        );
    }
    let not_after = sample(
        &text,
        "revhook_serving_certificate_expiration_timestamp_seconds",
    )
    .expect("certificate expiry gauge");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    // Dev certificates are valid for 365 days.
    let days = (not_after - now) / 86_400.0;
    assert!((364.0..=366.0).contains(&days), "expires in {days} days");
    if let Some(promtool) = promtool() {
        run_promtool(&promtool, &["check", "metrics"], Some(&text));
    }
}

#[tokio::test]
async fn injections_denials_and_skips_are_counted_per_revision_and_tag() {
    let served = Served::start(&config());
    for review in [
        "pod-create-prod-stable.json",
        "pod-create-pod-rev-canary.json",
        "pod-create-stale-namespace.json",
        "pod-create-opt-out.json",
    ] {
        served.inject(review).await;
    }
    let text = served.metrics();
    for (series, value) in [
        (
            r#"revhook_injections_total{revision="asm-1-22",tag="prod-stable"}"#,
            1.0,
        ),
        (
            r#"revhook_injections_total{revision="asm-1-23",tag="prod-canary"}"#,
            1.0,
        ),
        (
            // asm-1-20 was never installed while this server ran: no series of its own.
            r#"revhook_injection_denials_total{reason="stale",revision="unknown",tag=""}"#,
            1.0,
        ),
        (
            r#"revhook_injection_skips_total{reason="pod-opt-out",revision="",tag=""}"#,
            1.0,
        ),
        ("sidecar_injection_requests_total", 4.0),
        ("sidecar_injection_success_total", 4.0),
        ("sidecar_injection_skip_total", 1.0),
        ("sidecar_injection_failure_total", 0.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}:\n{text}");
    }
    assert!(!text.contains("asm-1-20"), "{text}");
    served.post("/validate", "validate/unknown-kind.json").await;
    served
        .post("/validate", "validate/namespace-stale-rev.json")
        .await;
    let text = served.metrics();
    assert_eq!(
        sample(
            &text,
            r#"revhook_validation_denials_total{reason="stale",revision="unknown"}"#
        ),
        Some(1.0),
        "{text}"
    );
    if let Some(promtool) = promtool() {
        run_promtool(&promtool, &["check", "metrics"], Some(&text));
    }

    // The canary upgrade finishes: asm-1-22 and its tag are removed while the shop namespace
    // still names it. Its stale denials carry the removed revision's name.
    served.set_config(
        "revisions:\n  - name: asm-1-23\n    image: img:1.23\ntags:\n  default: asm-1-23\n  prod-canary: asm-1-23\nnamespaces:\n  shop: { istio.io/rev: asm-1-22 }\n",
    );
    let stale = r#"revhook_injection_denials_total{reason="stale",revision="asm-1-22",tag=""}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(&served.metrics(), stale).is_none() {
        assert!(Instant::now() < deadline, "config never reloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = served.inject("pod-create-prod-stable.json").await;
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(sample(&served.metrics(), stale), Some(1.0));
}

#[test]
fn alert_rules_pass_promtool_and_fire_on_synthetic_series() {
    let Some(promtool) = promtool() else {
        return;
    };
    let checked = run_promtool(&promtool, &["check", "rules", "rules.yaml"], None);
    assert!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
    let tested = run_promtool(&promtool, &["test", "rules", "tests/rules_test.yaml"], None);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

fn yaml(path: &str) -> serde_json::Value {
    revhook::core::yaml::parse(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_alert_has_a_summary_and_a_revhook_check_runbook() {
    let rules = yaml("manifests/monitoring/rules.yaml");
    let alerts: Vec<&serde_json::Value> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .collect();
    let names: BTreeSet<&str> = alerts.iter().filter_map(|a| a["alert"].as_str()).collect();
    let expected = [
        "RevhookCertificateExpiresSoon",
        "RevhookInjectionFailures",
        "RevhookSnapshotStale",
        "RevhookStaleRevisionDenied",
        "RevhookWebhookLatencyHigh",
    ];
    assert_eq!(names, expected.into_iter().collect());
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap_or_default();
        let annotations = &alert["annotations"];
        assert!(annotations["summary"].as_str().is_some(), "{name}: summary");
        let runbook = annotations["runbook"].as_str().unwrap_or_default();
        assert!(runbook.contains("`revhook check`"), "{name}: {runbook}");
    }
}

#[test]
fn the_prometheusrule_carries_exactly_the_rules_file() {
    let rules = yaml("manifests/monitoring/rules.yaml");
    let crd = yaml("manifests/monitoring/prometheusrule.yaml");
    assert_eq!(crd["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(crd["kind"], "PrometheusRule");
    assert_eq!(crd["spec"]["groups"], rules["groups"]);
}

#[test]
fn the_servicemonitor_scrapes_the_admin_port_of_revhooks_service() {
    let monitor = yaml("manifests/monitoring/servicemonitor.yaml");
    let service = yaml("manifests/base/service.yaml");
    let base = yaml("manifests/base/kustomization.yaml");
    assert_eq!(monitor["kind"], "ServiceMonitor");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    let port = endpoint["port"].as_str().expect("port name");
    let ports = service["spec"]["ports"].as_array().expect("ports");
    assert!(
        ports.iter().any(|p| p["name"] == port),
        "{port} on the Service"
    );
    // The Service gets its labels from the base kustomization's `labels`.
    let service_labels = &base["labels"][0]["pairs"];
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(&service_labels[k], v, "{k:?}");
    }
    let namespaces = &monitor["spec"]["namespaceSelector"]["matchNames"];
    assert_eq!(namespaces[0], service["metadata"]["namespace"]);
    let component = yaml("manifests/monitoring/kustomization.yaml");
    assert_eq!(component["kind"], "Component");
    let resources: Vec<&str> = component["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(resources, ["servicemonitor.yaml", "prometheusrule.yaml"]);
    let files = &component["configMapGenerator"][0]["files"];
    assert_eq!(files[0], "revhook-dashboard.json");
}

#[tokio::test]
async fn dashboard_and_alerts_query_only_metrics_revhook_exports() {
    let dashboard: Value =
        serde_json::from_str(&read("manifests/monitoring/revhook-dashboard.json"))
            .expect("dashboard JSON");
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let panels = dashboard["panels"].as_array().expect("panels");
    let queries: Vec<(&str, &str)> = panels
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| Some((title, t["expr"].as_str()?)))
        })
        .collect();
    let titles: BTreeSet<&str> = queries.iter().map(|(t, _)| *t).collect();
    for wanted in [
        "Injections per revision",
        "Pod denials by reason",
        "Webhook latency percentiles",
        "Snapshot age",
        "Serving certificate expires in",
    ] {
        assert!(titles.contains(wanted), "panel {wanted:?} in {titles:?}");
    }
    let rules = yaml("manifests/monitoring/rules.yaml");
    let rule_exprs: Vec<String> = rules["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["expr"].as_str().map(str::to_owned))
        .collect();
    let exported = sample_names(&Served::start(&config()).metrics());
    let exprs = queries
        .iter()
        .map(|(_, e)| *e)
        .chain(rule_exprs.iter().map(String::as_str));
    let mut read = 0;
    for expr in exprs {
        let named = metrics_in(expr);
        assert!(!named.is_empty(), "names no revhook metric: {expr}");
        for metric in named {
            assert!(
                exported.contains(&metric),
                "{metric} is not on /metrics ({expr})"
            );
            read += 1;
        }
    }
    assert!(read >= queries.len() + rule_exprs.len());
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F _revhook"),
        ("zsh", "#compdef revhook"),
        ("fish", "complete -c revhook"),
    ] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .expect("revhook completions");
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {marker}");
        for subcommand in ["serve", "check", "tags", "completions"] {
            assert!(
                script.contains(subcommand),
                "{shell} completes {subcommand}"
            );
        }
    }
    let bash = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .expect("bash completions");
    let syntax = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(&bash.stdout)?;
            c.wait()
        })
        .expect("bash -n");
    assert!(syntax.success(), "the bash script parses");
}

#[test]
fn works_as_a_kubectl_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = dir.path().join("kubectl-revhook");
    std::fs::copy(BIN, &plugin).expect("install as kubectl-revhook");
    let help = Command::new(&plugin)
        .args(["check", "--help"])
        .output()
        .expect("kubectl-revhook check --help");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Usage: kubectl revhook check"), "{help}");
    let checked = Command::new(&plugin)
        .args(["check", "--from-file"])
        .arg(repo("tests/fixtures/check/clean.yaml"))
        .output()
        .expect("kubectl-revhook check");
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.code().is_some(), "{stderr}");
    assert!(
        !stderr.contains("unrecognized") && !stderr.contains("Usage:"),
        "the plugin's arguments parse: {stderr}"
    );
    let completion = Command::new(&plugin)
        .args(["completions", "bash"])
        .output()
        .expect("kubectl-revhook completions bash");
    let script = String::from_utf8_lossy(&completion.stdout);
    assert!(script.contains("kubectl-revhook"), "{script}");
}
