//! A stand-in for a revision's istiod injector, called by the API server like the real one
//! (`clientConfig.url` on loopback, TLS with its own CA, HTTP/1.1 or HTTP/2). It answers every
//! pod with what an injection looks like from outside: an `istio-proxy` container and the
//! `sidecar.istio.io/status` annotation, and it records the path of each call.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

use super::Tls;

/// The image the stub puts in its `istio-proxy` container.
pub const STUB_PROXY_IMAGE: &str = "stub-istiod/proxyv2";

pub struct StubIstiod {
    pub addr: SocketAddr,
    pub tls: Tls,
    calls: Arc<Mutex<Vec<String>>>,
}

impl StubIstiod {
    /// Starts it on a loopback port, on the current tokio runtime.
    pub async fn start(revision: &str) -> StubIstiod {
        let tls = Tls::generate("istiod", &["localhost"]);
        let certs = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("stub certificate");
        let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).expect("stub key");
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("stub TLS config");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stub istiod");
        let addr = listener.local_addr().expect("addr");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (seen, revision) = (calls.clone(), revision.to_owned());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, seen, revision) = (acceptor.clone(), seen.clone(), revision.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        answer(req, seen.clone(), revision.clone())
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StubIstiod { addr, tls, calls }
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// The paths the API server called, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    calls: Arc<Mutex<Vec<String>>>,
    revision: String,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    calls
        .lock()
        .expect("calls")
        .push(req.uri().path().to_owned());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let uid = review["request"]["uid"].clone();
    // As istiod: an injected pod (a reinvocation) is left as it is.
    let injected = review["request"]["object"]["metadata"]["annotations"]
        .get("sidecar.istio.io/status")
        .is_some();
    let response = if injected {
        json!({"uid": uid, "allowed": true})
    } else {
        injection(uid, &revision)
    };
    let reply = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
    let mut response = Response::new(Full::new(Bytes::from(reply.to_string())));
    response.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("header value"),
    );
    Ok(response)
}

/// An allowed response whose patch adds the proxy container and the status annotation.
fn injection(uid: Value, revision: &str) -> Value {
    let status = json!({"containers": ["istio-proxy"], "revision": revision}).to_string();
    let patch = json!([
        {"op": "add", "path": "/spec/containers/-",
         "value": {"name": "istio-proxy", "image": STUB_PROXY_IMAGE}},
        {"op": "add", "path": "/metadata/annotations",
         "value": {"sidecar.istio.io/status": status}}
    ]);
    json!({
        "uid": uid, "allowed": true, "patchType": "JSONPatch",
        "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string())
    })
}

/// The Istio release whose istio-discovery chart the tests render (the first with the tag's
/// istiod Service, as istioctl 1.28+ writes it).
pub const ISTIO_CHART: &str = "../shared/reference/istio-1.29.0/chart";

/// Helm and Istio's chart, to render what istioctl renders; `None` (after saying why) when
/// either is missing outside CI, a panic under `CI=true`.
pub fn helm_and_chart() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let chart = root.join(ISTIO_CHART);
    let helm = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([root.join("target/tools/bin")])
        .map(|d| d.join("helm"))
        .find(|h| h.is_file());
    let missing = match (&helm, chart.join("Chart.yaml").is_file()) {
        (None, _) => "helm is not on PATH nor in target/tools/bin (bash .ci/run builds it)",
        (_, false) => "Istio's chart is missing from ../shared/reference",
        _ => return helm.map(|h| (h, chart)),
    };
    if super::in_ci() {
        panic!("{missing}");
    }
    eprintln!("skipped: {missing}");
    None
}

/// `helm template istiod <chart> -n <namespace> --set ... --show-only templates/<template>`:
/// the objects Istio's chart renders (what istioctl renders with the same values).
pub fn render(
    (helm, chart): &(std::path::PathBuf, std::path::PathBuf),
    namespace: &str,
    values: &[String],
    template: &str,
) -> Vec<Value> {
    let mut cmd = std::process::Command::new(helm);
    cmd.args(["template", "istiod"]).arg(chart).args([
        "-n",
        namespace,
        "--show-only",
        &format!("templates/{template}"),
    ]);
    for v in values {
        cmd.args(["--set", v]);
    }
    let out = cmd.output().expect("run helm");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    super::objects::yaml_docs(&String::from_utf8_lossy(&out.stdout))
}
