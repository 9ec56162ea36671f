//! Test harness: starts the real revhook server on an ephemeral loopback port with
//! certificates made by the test, and talks to it like the API server does (TLS trusting only
//! the generated CA, HTTP/1.1 or HTTP/2 by ALPN).

#![allow(dead_code)]

pub mod manifest;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use revhook::core::policy::Policy;
use revhook::run::{self, Running, ServeOptions};
use revhook::server::Limits;
use revhook::tls::{self, DevCerts};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use tokio::sync::oneshot;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub certs: DevCerts,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    running: Option<Running>,
}

pub struct Options {
    pub config: String,
    pub policy: Policy,
    pub limits: Limits,
    pub admin: bool,
    pub namespace_lookup: Option<std::sync::Arc<dyn revhook::core::lookup::NamespaceLookup>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: String::from_utf8(fixture("local-config.yaml")).expect("utf8"),
            policy: Policy::default(),
            limits: Limits::default(),
            admin: false,
            namespace_lookup: None,
        }
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Options::default()).await
    }

    /// Serves a snapshot built by the test (cluster-mode mapping, say).
    pub async fn start_fixed(
        snapshot: Arc<revhook::sources::SharedSnapshot>,
        opts: Options,
    ) -> TestServer {
        Self::start_source(Some(snapshot), opts).await
    }

    pub async fn start_with(opts: Options) -> TestServer {
        Self::start_source(None, opts).await
    }

    async fn start_source(
        fixed: Option<Arc<revhook::sources::SharedSnapshot>>,
        opts: Options,
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = tls::generate_dev(&[], &[], 1, 2).expect("certs");
        certs.write(dir.path()).expect("write certs");
        let config_path = dir.path().join("revhook.yaml");
        std::fs::write(&config_path, &opts.config).expect("write config");
        let (tx, rx) = oneshot::channel::<()>();
        let serve = ServeOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            admin_listen: opts.admin.then(|| "127.0.0.1:0".parse().expect("addr")),
            tls_cert: Some(dir.path().join("tls.crt")),
            tls_key: Some(dir.path().join("tls.key")),
            certs_dir: dir.path().to_path_buf(),
            source: match fixed {
                Some(snapshot) => revhook::sources::Source::Fixed(snapshot),
                None => revhook::sources::Source::File(Some(config_path.clone())),
            },
            ca_bundle: None,
            policy: opts.policy,
            limits: opts.limits,
            reload_interval: Duration::from_millis(100),
            namespace_lookup: opts.namespace_lookup.clone(),
            client_ca: None,
        };
        let running = run::start(serve, async {
            let _ = rx.await;
        })
        .await
        .expect("server starts");
        TestServer {
            addr: running.addr,
            admin_addr: running.admin_addr,
            certs,
            dir,
            config_path,
            shutdown: Some(tx),
            running: Some(running),
        }
    }

    pub fn app(&self) -> &revhook::server::App {
        &self.running.as_ref().expect("running").app
    }

    /// Starts shutdown and returns a handle that resolves when the server has drained.
    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let running = self.running.take().expect("running");
        tokio::spawn(running.wait())
    }

    pub async fn client(&self, proto: Proto) -> Client {
        connect(self.addr, &self.certs.ca_cert, proto)
            .await
            .expect("connect")
    }

    /// Rewrites the config file and waits until the server has loaded it.
    pub async fn set_config(&self, text: &str) {
        let before = self.app().snapshot.load();
        std::fs::write(&self.config_path, text).expect("write config");
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if !Arc::ptr_eq(&before, &self.app().snapshot.load()) {
                return;
            }
        }
        panic!("config was not reloaded");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http1,
    Http2,
}

pub enum Client {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

pub fn client_tls(ca_pem: &str, proto: Proto) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("ca pem")).expect("add root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![match proto {
        Proto::Http1 => b"http/1.1".to_vec(),
        Proto::Http2 => b"h2".to_vec(),
    }];
    Arc::new(config)
}

pub async fn connect(addr: SocketAddr, ca_pem: &str, proto: Proto) -> Result<Client, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(client_tls(ca_pem, proto));
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let negotiated = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let io = TokioIo::new(stream);
    match proto {
        Proto::Http1 => {
            assert_eq!(negotiated.as_deref(), Some(&b"http/1.1"[..]));
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Ok(Client::H1(send))
        }
        Proto::Http2 => {
            assert_eq!(negotiated.as_deref(), Some(&b"h2"[..]));
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Ok(Client::H2(send))
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Reply, String> {
        let resp = match self {
            Client::H1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await.map_err(|e| e.to_string())?
            }
            Client::H2(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await.map_err(|e| e.to_string())?
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub async fn post(&mut self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.post_typed(path, "application/json", body).await
    }

    pub async fn post_typed(
        &mut self,
        path: &str,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Reply {
        let req = Request::post(path)
            .header("host", "localhost")
            .header("content-type", content_type)
            .body(Full::new(body.into()))
            .expect("request");
        self.send(req).await.expect("response")
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        let req = Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .expect("request");
        self.send(req).await.expect("response")
    }
}

/// The `response` of an AdmissionReview reply, checked for shape.
pub fn admission_response(reply: &Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "body: {}", reply.text());
    let v = reply.json();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    v["response"].clone()
}

/// Decodes and applies a response's patch to `object`.
pub fn apply_patch(response: &Value, object: &Value) -> Value {
    assert_eq!(response["patchType"], "JSONPatch");
    let b64 = response["patch"]
        .as_str()
        .expect("patch is a base64 string");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&raw).expect("JSON Patch");
    let mut out = object.clone();
    json_patch::patch(&mut out, &patch).expect("patch applies");
    out
}

/// A review with `request.object` replaced (and a fresh uid).
pub fn review_with_object(review: &[u8], object: &Value, uid: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(review).expect("review");
    v["request"]["object"] = object.clone();
    v["request"]["uid"] = Value::String(uid.to_owned());
    serde_json::to_vec(&v).expect("json")
}

pub fn request_object(review: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(review).expect("review");
    v["request"]["object"].clone()
}

/// A raw TLS connection, for requests a well-behaved client would not send.
pub async fn raw_tls(
    server: &TestServer,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(client_tls(&server.certs.ca_cert, Proto::Http1))
        .connect(name, tcp)
        .await
        .expect("tls")
}

/// Reads until the end of the response head (or 5 s, or the connection closes).
pub async fn read_head(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = tls.read(&mut buf).await {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The image of the pod's `istio-proxy` container, if it has one.
pub fn proxy_image(pod: &Value) -> Option<String> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "istio-proxy")?["image"]
        .as_str()
        .map(str::to_owned)
}

/// Where a `revhook --log-format json serve` child listens, read from its `listening` log line.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    pub addr: SocketAddr,
    /// `--admin-listen`, when the child was given one.
    pub admin: Option<SocketAddr>,
}

/// Reads the child's stderr until its `listening` line, and keeps reading it for the child's
/// whole life so its logging never blocks on a full pipe.
pub fn listening(stderr: std::process::ChildStderr) -> Listening {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let Ok(log) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let fields = &log["fields"];
            if fields["message"] == "listening" {
                let addr = fields["addr"].as_str().unwrap_or_default().to_owned();
                let admin = fields["admin"].as_str().unwrap_or_default().to_owned();
                let _ = tx.send((addr, admin));
            }
        }
    });
    let (addr, admin) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("revhook serve logged `listening`");
    // The admin address is logged as Rust's Debug of an Option.
    let admin = admin
        .strip_prefix("Some(")
        .and_then(|a| a.strip_suffix(')'))
        .map(|a| a.parse().expect("admin address"));
    Listening {
        addr: addr.parse().expect("webhook address"),
        admin,
    }
}
