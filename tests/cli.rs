//! The `revhook` binary: `serve` under SIGTERM, `replay`, `certs`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn revhook() -> Command {
    Command::new(env!("CARGO_BIN_EXE_revhook"))
}

#[test]
fn replay_prints_one_response_per_fixture() {
    let out = revhook()
        .args(["replay", "--config"])
        .arg(fixture_path("local-config.yaml"))
        .arg(fixture_path("pod-create-prod-stable.json"))
        .arg(fixture_path("pod-create-stale-namespace.json"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("JSON documents");
    assert_eq!(docs.len(), 2);
    assert_eq!(
        docs[0]["response"]["uid"],
        "4b6c9a43-2f0e-4d7b-9d3e-1f5c2a7e8b01"
    );
    assert_eq!(docs[0]["response"]["patchType"], "JSONPatch");
    assert_eq!(docs[1]["response"]["allowed"], false);
}

#[test]
fn replay_apply_reads_stdin_and_prints_the_injected_object() {
    let out = revhook()
        .args(["replay", "--apply", "--config"])
        .arg(fixture_path("local-config.yaml"))
        .arg("-")
        .stdin(std::fs::File::open(fixture_path("pod-create-prod-stable.json")).expect("fixture"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_slice(&out.stdout).expect("a Pod");
    let names: Vec<String> = pod
        .spec
        .expect("spec")
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["checkout", "istio-proxy"]);
}

#[test]
fn replay_fails_on_a_malformed_fixture_but_runs_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\"",
    )
    .expect("write");
    let out = revhook()
        .arg("replay")
        .arg(&bad)
        .arg(fixture_path("pod-create-pod-rev-canary.json"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.json") && stderr.contains("not an AdmissionReview"),
        "{stderr}"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("the good fixture's response");
    assert_eq!(
        doc["response"]["uid"],
        "8d4f6b21-3e5a-4c7d-b0e9-1a2c3d4e5f66"
    );
}

#[test]
fn certs_writes_a_ca_and_serving_pair_and_prints_the_ca_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = revhook()
        .args([
            "certs",
            "--dns",
            "revhook.mesh.svc",
            "--ip",
            "10.0.0.7",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = String::from_utf8(out.stdout).expect("utf8");
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(bundle.trim())
        .expect("base64 caBundle");
    assert_eq!(
        pem,
        std::fs::read(dir.path().join("ca.crt")).expect("ca.crt")
    );
    let cert = std::fs::read(dir.path().join("tls.crt")).expect("tls.crt");
    let key = std::fs::read(dir.path().join("tls.key")).expect("tls.key");
    revhook::tls::load_pair(&cert, &key, "written").expect("a usable pair");
}

/// Starts `revhook serve` on an ephemeral port and returns the child and its address.
fn spawn_serve(dir: &std::path::Path) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = revhook()
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--drain-timeout",
            "5s",
            "--certs-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let addr = listening(child.stderr.take().expect("stderr")).addr;
    (child, addr)
}

#[tokio::test]
async fn serve_exits_zero_on_sigterm_after_finishing_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr) = spawn_serve(dir.path());
    let ca =
        std::fs::read_to_string(dir.path().join("ca.crt")).expect("dev CA generated on first run");
    let mut client = connect(addr, &ca, Proto::Http2).await.expect("connect");
    let reply = client
        .post("/inject", fixture("pod-create-pod-rev-canary.json"))
        .await;
    assert_eq!(admission_response(&reply)["patchType"], "JSONPatch");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not exit within the drain deadline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.code(), Some(0));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[test]
fn text_logs_carry_no_colour_codes_when_not_on_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = revhook()
        .args(["serve", "--listen", "127.0.0.1:0", "--certs-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let line = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("listening"));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a listening line");
    assert!(
        !line.contains('\u{1b}'),
        "escape codes in piped logs: {line:?}"
    );
}
