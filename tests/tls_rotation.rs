//! Serving-certificate rotation as clients of other TLS stacks see it (issue #17, items 6–7):
//! a pair that must not be served (expired, or missing a served name) is refused while
//! requests keep succeeding, and a rotation to a new CA, with a caBundle holding both CAs,
//! fails no request from curl (OpenSSL) or from a Go client (the API server's TLS stack).
//!
//! curl and go are external tools: without them these checks skip with a message, except with
//! `CI=true`, where a missing tool fails the test (`.ci/run` installs curl; go is expected at
//! /usr/local/go/bin/go or on PATH).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hyper::StatusCode;

/// A tool the test needs, or `None` (skip) outside CI; in CI a missing tool is a failure.
fn tool(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    let found = candidates
        .iter()
        .map(PathBuf::from)
        .chain(std::env::var_os("PATH").into_iter().flat_map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        }))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is required in CI (CI=true) and was not found"
        );
        eprintln!("SKIP: {name} not found; this check did not run");
    }
    found
}

/// Builds tests/tls_client/main.go into `dir`.
fn build_go_client(go: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("tls_client");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls_client/main.go");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-build-cache");
    let status = Command::new(go)
        .arg("build")
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .env("GOCACHE", &cache)
        .env("GOFLAGS", "-mod=mod")
        // A single-file build: the repository's go.work (for tests/istio-oracle) is not for it.
        .env("GOWORK", "off")
        .env("GO111MODULE", "on")
        .env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", "local")
        .env("GOPATH", dir.join("gopath"))
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .expect("run go build");
    assert!(status.success(), "go build of {} failed", source.display());
    out
}

/// Runs one curl request on a fresh process (so no TLS session is reused); true on 200.
fn curl_once(curl: &Path, url: &str, bundle: &Path) -> Result<(), String> {
    let out = Command::new(curl)
        .args(["-sS", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--max-time", "5", "--cacert"])
        .arg(bundle)
        .arg(url)
        .output()
        .map_err(|e| e.to_string())?;
    let code = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && code == "200" {
        Ok(())
    } else {
        Err(format!(
            "curl exit {:?}, status {code}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs the Go client for `count` requests; returns (ok, failed, stderr).
fn go_requests(client: &Path, url: &str, bundle: &Path, count: u32) -> (u32, u32, String) {
    let out = Command::new(client)
        .arg(url)
        .arg(bundle)
        .arg(count.to_string())
        .arg("20ms")
        .output()
        .expect("run Go client");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let words: Vec<&str> = stdout.split_whitespace().collect();
    match words.as_slice() {
        ["ok", ok, "failed", failed] => (
            ok.parse().expect("ok count"),
            failed.parse().expect("failed count"),
            stderr,
        ),
        _ => panic!("Go client printed {stdout:?}; stderr {stderr}"),
    }
}

/// Waits until a handshake trusting only `ca` succeeds: the server now serves its pair.
async fn wait_until_served(server: &TestServer, ca: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if connect(server.addr, ca, Proto::Http1).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the rotated certificate was never served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_to_a_new_ca_fails_no_curl_or_go_request() {
    let curl = tool("curl", &[]);
    let go = tool("go", &["/usr/local/go/bin/go"]);
    if curl.is_none() && go.is_none() {
        return;
    }
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("tempdir");
    let go_client = go.as_deref().map(|go| build_go_client(go, work.path()));
    let rotated = revhook::tls::generate_dev(&[], &[], 1, 2).expect("new CA");
    // What the webhook configuration's caBundle holds during a rotation: old CA, then new.
    let bundle = work.path().join("bundle.pem");
    std::fs::write(
        &bundle,
        format!("{}{}", server.certs.ca_cert, rotated.ca_cert),
    )
    .expect("bundle");
    let url = format!("https://127.0.0.1:{}/healthz", server.addr.port());

    // Clients keep making new connections across the rotation.
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    if let Some(curl) = curl.clone() {
        let (url, bundle, failures, done, stop) = (
            url.clone(),
            bundle.clone(),
            failures.clone(),
            done.clone(),
            stop.clone(),
        );
        threads.push(std::thread::spawn(move || {
            for _ in 0..400 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match curl_once(&curl, &url, &bundle) {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failures.lock().expect("lock").push(e);
                        0
                    }
                };
            }
        }));
    }
    let go_during = go_client.clone().map(|client| {
        let (url, bundle) = (url.clone(), bundle.clone());
        std::thread::spawn(move || go_requests(&client, &url, &bundle, 60))
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    rotated.write(server.dir.path()).expect("rotate");
    wait_until_served(&server, &rotated.ca_cert).await;
    // Some more after the new pair is certainly served.
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("curl thread");
    }
    let failures = failures.lock().expect("lock").clone();
    assert!(failures.is_empty(), "curl failures: {failures:?}");
    if curl.is_some() {
        assert!(done.load(Ordering::Relaxed) >= 10, "curl ran");
    }
    if let Some(during) = go_during {
        let (ok, failed, stderr) = during.join().expect("go thread");
        assert_eq!(failed, 0, "Go client failures during rotation: {stderr}");
        assert_eq!(ok, 60);
    }
    // After the rotation, against the new certificate only, both clients again.
    if let Some(curl) = &curl {
        for _ in 0..20 {
            curl_once(curl, &url, &bundle).expect("curl after rotation");
        }
    }
    if let Some(client) = &go_client {
        let (ok, failed, stderr) = go_requests(client, &url, &bundle, 20);
        assert_eq!((ok, failed), (20, 0), "Go client after rotation: {stderr}");
    }
    assert!(
        connect(server.addr, &server.certs.ca_cert, Proto::Http1)
            .await
            .is_err(),
        "the old certificate is no longer served"
    );
}

/// A self-signed pair for `names`, valid from `from` to `to` (seconds from now).
fn pair_with(names: &[&str], from: i64, to: i64) -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.not_before = now + time::Duration::seconds(from);
    params.not_after = now + time::Duration::seconds(to);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem())
}

/// The files as a Kubernetes Secret volume holds them: `tls.crt` and `tls.key` are symlinks
/// through `..data`, which is re-pointed in one rename, so a reader never sees a new key with
/// an old certificate.
struct SecretVolume {
    dir: PathBuf,
}

impl SecretVolume {
    /// Turns the server's plain files into that layout, keeping their contents.
    fn adopt(dir: &Path) -> SecretVolume {
        let volume = SecretVolume {
            dir: dir.to_path_buf(),
        };
        let cert = std::fs::read_to_string(dir.join("tls.crt")).expect("cert");
        let key = std::fs::read_to_string(dir.join("tls.key")).expect("key");
        volume.publish(0, &cert, &key);
        for name in ["tls.crt", "tls.key"] {
            let tmp = dir.join(format!("{name}.link"));
            std::os::unix::fs::symlink(format!("..data/{name}"), &tmp).expect("symlink");
            std::fs::rename(&tmp, dir.join(name)).expect("rename");
        }
        volume
    }

    fn publish(&self, version: usize, cert: &str, key: &str) {
        let data = self.dir.join(format!("..v{version}"));
        std::fs::create_dir(&data).expect("version dir");
        std::fs::write(data.join("tls.crt"), cert).expect("cert");
        std::fs::write(data.join("tls.key"), key).expect("key");
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..v{version}"), &tmp).expect("symlink");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
    }
}

fn reload_errors(server: &TestServer) -> usize {
    let metrics = server.app().metrics.render();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"revhook_cert_reloads_total{result="error"} "#))
        .map_or(0, |n| n.trim().parse().expect("count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_or_narrower_certificates_are_refused_and_no_request_fails() {
    let server = TestServer::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let addr = server.addr;
    let ca = server.certs.ca_cert.clone();
    let mut tasks = Vec::new();
    for i in 0..2 {
        let (stop, ok, failed, ca) = (stop.clone(), ok.clone(), failed.clone(), ca.clone());
        tasks.push(tokio::spawn(async move {
            let proto = if i == 0 { Proto::Http1 } else { Proto::Http2 };
            // A new connection per request: each is a handshake with whatever is served.
            while !stop.load(Ordering::Relaxed) {
                let reply = match connect(addr, &ca, proto).await {
                    Ok(mut client) => client.send(get("/healthz")).await,
                    Err(e) => Err(e),
                };
                match reply {
                    Ok(r) if r.status == StatusCode::OK => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let volume = SecretVolume::adopt(server.dir.path());
    let cases = [
        (
            "expired",
            pair_with(&["localhost", "127.0.0.1"], -7200, -3600),
        ),
        (
            "not yet valid",
            pair_with(&["localhost", "127.0.0.1"], 3600, 7200),
        ),
        (
            "drops 127.0.0.1",
            pair_with(&["localhost", "other.example"], -60, 3600),
        ),
    ];
    for (n, (name, (pem, key_pem))) in cases.iter().enumerate() {
        volume.publish(n + 1, pem, key_pem);
        let deadline = Instant::now() + Duration::from_secs(10);
        while reload_errors(&server) < n + 1 {
            assert!(Instant::now() < deadline, "{name}: never refused");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Several more polls: the refusal sticks and the old pair keeps serving.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(reload_errors(&server), n + 1, "{name}: reported once");
        assert!(
            connect(addr, &ca, Proto::Http1).await.is_ok(),
            "{name}: the original certificate is still served"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(ok.load(Ordering::Relaxed) > 20, "load ran");
    let metrics = server.app().metrics.render();
    // Every series exists from the start: nothing swapped in is a count of zero.
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"revhook_cert_reloads_total{result="ok"} 0"#),
        "nothing was swapped in: {metrics}"
    );
}

fn get(path: &str) -> hyper::Request<http_body_util::Full<bytes::Bytes>> {
    hyper::Request::get(path)
        .header("host", "localhost")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request")
}
