//! envtest: a real control plane (etcd, kube-apiserver, kube-controller-manager) on loopback
//! for one test, and revhook run as the built binary against it.
//!
//! Binaries come from `KUBEBUILDER_ASSETS` (controller-runtime's convention: a directory with
//! `kube-apiserver`, `etcd` and optionally `kube-controller-manager`; `setup-envtest use 1.32
//! -p path` prints one). Without it a test prints how to get one and returns; with `CI=true` a
//! missing asset fails the test instead, so CI can never pass by skipping.
//!
//! Everything a test starts is a [`Proc`]: killed by PID when it is dropped, which also happens
//! when the test panics; a panicking test prints the end of each process's log.
//!
//! Only public interfaces are used (the API server's REST API through kube-rs, revhook's
//! command line and admin port), never revhook's library, so refactoring revhook does not
//! break these tests.

#![allow(dead_code)]

pub mod istiod;
pub mod objects;
pub mod web;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;

const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The directory of envtest binaries and what it holds.
#[derive(Debug, Clone)]
pub struct Assets {
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
    pub kube_controller_manager: Option<PathBuf>,
}

const HOW_TO_GET_ASSETS: &str = "set KUBEBUILDER_ASSETS to a directory with kube-apiserver, etcd and kube-controller-manager \
(`go install sigs.k8s.io/controller-runtime/tools/setup-envtest@latest && setup-envtest use 1.32 -p path`; \
here: `bash .ci/run` builds target/kubebuilder-assets from ../shared/envtest and Debian's etcd-server)";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The assets, or `None` (after saying why) when this machine has none. Under `CI=true` a
/// missing asset panics: CI must run these tests, not skip them.
pub fn assets() -> Option<Assets> {
    match find_assets() {
        Ok(assets) => Some(assets),
        Err(why) if in_ci() => panic!("envtest: {why}; {HOW_TO_GET_ASSETS}"),
        Err(why) => {
            eprintln!("envtest: skipped: {why}; {HOW_TO_GET_ASSETS}");
            None
        }
    }
}

fn find_assets() -> Result<Assets, String> {
    let dir = std::env::var_os("KUBEBUILDER_ASSETS")
        .map(PathBuf::from)
        .ok_or("KUBEBUILDER_ASSETS is not set")?;
    let need = |name: &str| {
        let path = dir.join(name);
        if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!("{} is missing or not executable", path.display()))
        }
    };
    let kube_apiserver = need("kube-apiserver")?;
    let etcd = need("etcd")?;
    let kube_controller_manager = need("kube-controller-manager").ok();
    Ok(Assets {
        kube_apiserver,
        etcd,
        kube_controller_manager,
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `kubectl` on PATH (the client users run against the cluster), else the one `.ci/run`
/// builds into `target/tools/bin`, or `None` after saying why the test skips; under `CI=true`
/// a missing kubectl fails the test.
pub fn kubectl() -> Option<PathBuf> {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/kubectl");
    let found = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("kubectl"))
                .find(|p| is_executable(p))
        })
        .or_else(|| is_executable(&built).then_some(built));
    match found {
        Some(path) => Some(path),
        None if in_ci() => {
            panic!("envtest: kubectl is not on PATH (build one: go build -C tests/tools/kubectl -o \"$PWD/target/tools/bin/kubectl\" .)")
        }
        None => {
            eprintln!("envtest: skipped: kubectl is not on PATH");
            None
        }
    }
}

/// Copies bytes both ways between two connections until either side closes.
fn relay(a: TcpStream, b: TcpStream) {
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    };
    if let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) {
        pipe(a, b2);
        pipe(b, a2);
    }
}

/// A free loopback port (bound, read, released: the child binds it a moment later).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A child process killed (by its PID) when this is dropped.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_owned(),
            log,
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics with the log's tail when the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, tail(&self.log, 40));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM (what the kubelet sends a container being stopped).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.child.id());
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills and reaps the process now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} (pid {}) log tail:\n{}",
                self.name,
                self.child.id(),
                tail(&self.log, 25)
            );
        }
        self.stop();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// PEM material the test makes for the control plane.
struct Pki {
    ca_pem: String,
    serving_cert: String,
    serving_key: String,
    sa_key: String,
    sa_pub: String,
}

/// A CA and a leaf signed by it (for the API server, or for revhook's webhook; or a client
/// certificate, for the API server calling webhooks).
#[derive(Debug, Clone)]
pub struct Tls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Tls {
    /// A fresh CA and a serving certificate for `dns` names and 127.0.0.1.
    pub fn generate(cn: &str, dns: &[&str]) -> Tls {
        Self::generate_for(cn, dns, false)
    }

    /// A fresh CA and a client certificate (extended key usage clientAuth) named `cn`.
    pub fn generate_client(cn: &str) -> Tls {
        Self::generate_for(cn, &[], true)
    }

    fn generate_for(cn: &str, dns: &[&str], client: bool) -> Tls {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose, SanType,
        };
        let now = time::OffsetDateTime::now_utc();
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{cn} test CA"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params.not_before = now - time::Duration::minutes(5);
        ca_params.not_after = now + time::Duration::days(2);
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        if client {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        } else {
            params.subject_alt_names = dns
                .iter()
                .map(|d| SanType::DnsName((*d).try_into().expect("DNS name")))
                .chain([SanType::IpAddress([127, 0, 0, 1].into())])
                .collect();
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(1);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("leaf");
        Tls {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }

    /// Writes ca.crt, tls.crt, tls.key into `dir`.
    pub fn write(&self, dir: &Path) {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join("ca.crt"), &self.ca_pem).expect("write");
        std::fs::write(dir.join("tls.crt"), &self.cert_pem).expect("write");
        std::fs::write(dir.join("tls.key"), &self.key_pem).expect("write");
    }
}

impl Pki {
    fn generate() -> Pki {
        let serving = Tls::generate(
            "kube-apiserver",
            &[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
            ],
        );
        let sa = rcgen::KeyPair::generate().expect("service account key");
        Pki {
            ca_pem: serving.ca_pem,
            serving_cert: serving.cert_pem,
            serving_key: serving.key_pem,
            sa_key: sa.serialize_pem(),
            sa_pub: sa.public_key_pem(),
        }
    }
}

/// What the API server runs with beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Start kube-controller-manager (Deployments → ReplicaSets → Pods).
    pub controller_manager: bool,
}

/// The AdmissionConfiguration that makes the API server present `cert` to every mutating and
/// validating webhook, and the kubeconfig it names, written into `dir`; returns the
/// AdmissionConfiguration's path.
pub fn write_admission_config(dir: &Path, cert: &Tls) -> PathBuf {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let kubeconfig = dir.join("webhook-client.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: '*'\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&cert.cert_pem),
            b64(&cert.key_pem)
        ),
    )
    .expect("write webhook kubeconfig");
    let config = dir.join("admission-config.yaml");
    let plugin = |name: &str| {
        format!(
            "- name: {name}\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: WebhookAdmissionConfiguration\n    kubeConfigFile: {}\n",
            kubeconfig.display()
        )
    };
    std::fs::write(
        &config,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n{}{}",
            plugin("MutatingAdmissionWebhook"),
            plugin("ValidatingAdmissionWebhook")
        ),
    )
    .expect("write admission configuration");
    config
}

/// etcd, kube-apiserver and (optionally) kube-controller-manager for one test.
pub struct ControlPlane {
    pub url: String,
    pub ca_pem: String,
    pub admin_token: String,
    /// An admin kubeconfig (the controller manager uses it too).
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
    // Dropped in reverse order of start: controller manager, API server, etcd.
    procs: Vec<Proc>,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        while let Some(mut p) = self.procs.pop() {
            p.stop();
            drop(p);
        }
    }
}

/// A scratch directory in memory when there is one: etcd fsyncs every write, and on a shared
/// disk that is most of a test's time.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("revhook-envtest-");
        b
    };
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shm) {
            return dir;
        }
    }
    builder.tempdir().expect("temp dir")
}

impl ControlPlane {
    /// Starts a control plane, or returns `None` (skip) when no assets exist and not in CI.
    pub async fn start(opts: Options) -> Option<ControlPlane> {
        Self::start_presenting(opts, None).await
    }

    /// [`start`](Self::start), the API server presenting `webhook_client_cert` to every
    /// webhook it calls: an AdmissionConfiguration (`--admission-control-config-file`) whose
    /// kubeconfig holds it for user `*`, as the README documents for `serve --client-ca`.
    pub async fn start_presenting(
        opts: Options,
        webhook_client_cert: Option<&Tls>,
    ) -> Option<ControlPlane> {
        let assets = assets()?;
        if opts.controller_manager && assets.kube_controller_manager.is_none() {
            let why = "kube-controller-manager is not in KUBEBUILDER_ASSETS";
            if in_ci() {
                panic!("envtest: {why}; {HOW_TO_GET_ASSETS}");
            }
            eprintln!("envtest: skipped: {why}; {HOW_TO_GET_ASSETS}");
            return None;
        }
        Some(Self::start_with(&assets, &opts, webhook_client_cert).await)
    }

    async fn start_with(
        assets: &Assets,
        opts: &Options,
        webhook_client_cert: Option<&Tls>,
    ) -> ControlPlane {
        let started = Instant::now();
        let dir = scratch_dir();
        let root = dir.path().to_owned();
        let pki = Pki::generate();
        let write = |name: &str, text: &str| {
            let path = root.join(name);
            std::fs::write(&path, text).expect("write control plane file");
            path
        };
        let ca = write("ca.pem", &pki.ca_pem);
        let cert = write("apiserver.pem", &pki.serving_cert);
        let key = write("apiserver-key.pem", &pki.serving_key);
        let sa_key = write("sa.key", &pki.sa_key);
        let sa_pub = write("sa.pub", &pki.sa_pub);
        let admin_token = random_token();
        let tokens = write(
            "tokens.csv",
            &format!("{admin_token},envtest-admin,envtest-admin,system:masters\n"),
        );

        let mut procs = Vec::new();
        let etcd_port = free_port();
        let etcd_peer = free_port();
        let mut etcd = Command::new(&assets.etcd);
        etcd.args([
            "--name=envtest",
            &format!("--data-dir={}", root.join("etcd").display()),
            &format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            &format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            &format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
            &format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
            &format!("--initial-cluster=envtest=http://127.0.0.1:{etcd_peer}"),
            "--log-level=warn",
        ]);
        procs.push(Proc::spawn("etcd", etcd, &root));

        let api_port = free_port();
        let url = format!("https://127.0.0.1:{api_port}");
        let mut api = Command::new(&assets.kube_apiserver);
        if let Some(cert) = webhook_client_cert {
            let config = write_admission_config(&root, cert);
            api.arg(format!(
                "--admission-control-config-file={}",
                config.display()
            ));
        }
        api.args([
            &format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            &format!("--secure-port={api_port}"),
            &format!("--cert-dir={}", root.join("apiserver-certs").display()),
            &format!("--tls-cert-file={}", cert.display()),
            &format!("--tls-private-key-file={}", key.display()),
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            &format!("--token-auth-file={}", tokens.display()),
            "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
            &format!("--service-account-key-file={}", sa_pub.display()),
            &format!("--service-account-signing-key-file={}", sa_key.display()),
            "--service-account-issuer=https://kubernetes.default.svc",
            "--api-audiences=https://kubernetes.default.svc",
            "--endpoint-reconciler-type=none",
            "--enable-aggregator-routing=true",
            "--v=1",
        ]);
        procs.push(Proc::spawn("kube-apiserver", api, &root));

        let kubeconfig = root.join("admin.kubeconfig");
        write_kubeconfig(&kubeconfig, &url, &pki.ca_pem, &admin_token);
        let mut cp = ControlPlane {
            url,
            ca_pem: pki.ca_pem,
            admin_token,
            kubeconfig,
            dir,
            procs,
        };
        cp.wait_ready().await;

        if opts.controller_manager {
            let kcm_path = assets
                .kube_controller_manager
                .as_ref()
                .expect("checked by start");
            let mut kcm = Command::new(kcm_path);
            kcm.args([
                &format!("--kubeconfig={}", cp.kubeconfig.display()),
                "--leader-elect=false",
                &format!("--service-account-private-key-file={}", sa_key.display()),
                &format!("--root-ca-file={}", ca.display()),
                "--use-service-account-credentials=false",
                "--controllers=*",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--v=1",
            ]);
            cp.procs
                .push(Proc::spawn("kube-controller-manager", kcm, &root));
        }
        eprintln!(
            "envtest: control plane at {} ready in {:.1}s (dir {})",
            cp.url,
            started.elapsed().as_secs_f64(),
            root.display()
        );
        cp
    }

    /// Polls `/readyz` until the API server says ok.
    async fn wait_ready(&mut self) {
        let client = self.client().await;
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            for p in &mut self.procs {
                p.assert_running();
            }
            let req = hyper::http::Request::get("/readyz")
                .body(Vec::new())
                .expect("request");
            match client.request_text(req).await {
                Ok(text) if text.trim() == "ok" => return,
                Ok(text) => last = text,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("kube-apiserver not ready after {READY_TIMEOUT:?}: {last}");
    }

    /// An admin client (group `system:masters`).
    pub async fn client(&self) -> Client {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// A kubeconfig for this API server with `token` (revhook's, or a ServiceAccount's).
    pub fn kubeconfig_with_token(&self, name: &str, token: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        write_kubeconfig(&path, &self.url, &self.ca_pem, token);
        path
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// An admin kubeconfig for a process inside `ns`: the API server listens on the host's
    /// loopback, which a network namespace cannot reach, so a forwarder (threads of the test
    /// process, apart from its async runtime) listens on the host end of the namespace's veth
    /// pair and relays to it; TLS still verifies the API server's certificate (for
    /// `localhost`).
    pub fn kubeconfig_in(&self, ns: &NetNs, name: &str) -> PathBuf {
        self.kubeconfig_in_gated(ns, name, Arc::new(AtomicBool::new(true)))
    }

    /// [`kubeconfig_in`](Self::kubeconfig_in) through a forwarder that holds every new
    /// connection while `open` is false (the API server slow to answer a starting revhook).
    pub fn kubeconfig_in_gated(&self, ns: &NetNs, name: &str, open: Arc<AtomicBool>) -> PathBuf {
        let api: SocketAddr = self
            .url
            .trim_start_matches("https://")
            .parse()
            .expect("API server address");
        let listener =
            TcpListener::bind(SocketAddr::new(ns.host_ip, 0)).expect("bind the API forwarder");
        let port = listener.local_addr().expect("forwarder address").port();
        std::thread::spawn(move || {
            for inbound in listener.incoming().flatten() {
                let open = open.clone();
                std::thread::spawn(move || {
                    while !open.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    if let Ok(outbound) = TcpStream::connect(api) {
                        relay(inbound, outbound);
                    }
                });
            }
        });
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        write_kubeconfig_named(
            &path,
            &format!("https://{}:{port}", ns.host_ip),
            &self.ca_pem,
            &self.admin_token,
            Some("localhost"),
        );
        path
    }

    /// Panics when a control-plane process has died (its log tail says why).
    pub fn assert_running(&mut self) {
        for p in &mut self.procs {
            p.assert_running();
        }
    }
}

pub async fn client_from_kubeconfig(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

fn write_kubeconfig(path: &Path, url: &str, ca_pem: &str, token: &str) {
    write_kubeconfig_named(path, url, ca_pem, token, None);
}

/// A kubeconfig whose TLS verification names `tls_server_name` instead of the URL's host.
fn write_kubeconfig_named(
    path: &Path,
    url: &str,
    ca_pem: &str,
    token: &str,
    tls_server_name: Option<&str>,
) {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let server_name = tls_server_name
        .map(|n| format!("    tls-server-name: {n}\n"))
        .unwrap_or_default();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: envtest\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n{server_name}users:\n- name: user\n  user:\n    token: {token}\ncontexts:\n- name: envtest\n  context:\n    cluster: envtest\n    user: user\ncurrent-context: envtest\n"
    );
    std::fs::write(path, text).expect("write kubeconfig");
}

fn random_token() -> String {
    // A throwaway per-run secret; the keypair's randomness is as good a source as any.
    let key = rcgen::KeyPair::generate().expect("key");
    let der = key.serialized_der();
    der[der.len() - 24..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// revhook (`serve`) run as the built binary.
pub struct Revhook {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub tls: Tls,
    pub proc: Proc,
}

/// How to start revhook.
#[derive(Default)]
pub struct RevhookOptions<'a> {
    /// The kubeconfig it reads (through `KUBECONFIG`); `None` leaves it to `args`.
    pub kubeconfig: Option<&'a Path>,
    /// Flags after `serve --listen --admin-listen --tls-cert --tls-key`.
    pub args: Vec<String>,
    /// Wait for `/readyz` (true) or only for `/healthz` (false).
    pub wait_ready: bool,
    /// Serving certificate and CA; a fresh pair when `None`.
    pub tls: Option<Tls>,
    /// Run inside this network namespace, listening on its address (else on 127.0.0.1).
    pub netns: Option<&'a NetNs>,
}

impl Revhook {
    pub fn start(name: &str, dir: &Path, opts: RevhookOptions<'_>) -> Revhook {
        let tls = opts.tls.unwrap_or_else(|| {
            Tls::generate(
                "revhook",
                &[
                    "localhost",
                    "revhook.revhook-system.svc",
                    "revhook.revhook-system.svc.cluster.local",
                ],
            )
        });
        let certs = dir.join(format!("{name}-certs"));
        tls.write(&certs);
        let (addr, admin, mut cmd) = match opts.netns {
            // A fresh namespace has every port free: the shipped ports.
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_revhook")]);
                (
                    SocketAddr::new(ns.inner_ip, 15017),
                    SocketAddr::new(ns.inner_ip, 15014),
                    cmd,
                )
            }
            None => (
                SocketAddr::from(([127, 0, 0, 1], free_port())),
                SocketAddr::from(([127, 0, 0, 1], free_port())),
                Command::new(env!("CARGO_BIN_EXE_revhook")),
            ),
        };
        cmd.arg("serve")
            .arg(format!("--listen={addr}"))
            .arg(format!("--admin-listen={admin}"))
            .arg(format!("--tls-cert={}", certs.join("tls.crt").display()))
            .arg(format!("--tls-key={}", certs.join("tls.key").display()))
            .args(&opts.args)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env("RUST_LOG", "info");
        match opts.kubeconfig {
            Some(k) => cmd.env("KUBECONFIG", k),
            None => cmd.env_remove("KUBECONFIG"),
        };
        let proc = Proc::spawn(name, cmd, dir);
        let mut revhook = Revhook {
            addr,
            admin,
            tls,
            proc,
        };
        let path = if opts.wait_ready {
            "/readyz"
        } else {
            "/healthz"
        };
        revhook.wait_admin(path, READY_TIMEOUT);
        revhook
    }

    /// The CA certificate file revhook serves under (for `--ca-cert`).
    pub fn ca_path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}-certs")).join("ca.crt")
    }

    /// Polls an admin path until it answers 200.
    pub fn wait_admin(&mut self, path: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            self.proc.assert_running();
            match http_get(self.admin, path) {
                Ok((200, _)) => return,
                Ok((code, body)) => last = format!("{code} {body}"),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "revhook {path} not 200 after {timeout:?}: {last}\n{}",
            tail(&self.proc.log, 30)
        );
    }

    /// Status code and body of an admin path (plain HTTP).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path).expect("admin request")
    }

    /// `https://127.0.0.1:<port><path>`, for a webhook's `clientConfig.url`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }
}

/// A network namespace with a veth pair to the host: the address inside it is a real,
/// non-loopback address (what an Endpoints object accepts), reachable only from this host.
/// Deleted (with its veth pair) on drop.
pub struct NetNs {
    pub name: String,
    /// The host side of the veth pair.
    pub host_ip: std::net::IpAddr,
    /// The address inside the namespace.
    pub inner_ip: std::net::IpAddr,
    host_if: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NetNs {
    /// Creates the namespace, or says why it cannot (needs root and `ip`). Under `CI=true`
    /// that is a failure; elsewhere the caller skips.
    pub fn create() -> Option<NetNs> {
        match Self::try_create() {
            Ok(ns) => Some(ns),
            Err(why) if in_ci() => panic!("envtest: cannot create a network namespace: {why}"),
            Err(why) => {
                eprintln!(
                    "envtest: skipped: cannot create a network namespace ({why}); run as root"
                );
                None
            }
        }
    }

    fn try_create() -> Result<NetNs, String> {
        // Tests of one binary run in parallel and may each want several namespaces: one at a
        // time picks a subnet and creates its namespace, each under a name of its own.
        static CREATING: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
        let mut created = CREATING.lock().unwrap_or_else(|e| e.into_inner());
        let n = *created;
        *created += 1;
        let pid = std::process::id() + n * 4;
        // 198.18.0.0/15 is reserved for benchmarking (RFC 2544): never a real network. A /30
        // not already on an interface of this machine (other test runs may hold one).
        let used = Command::new("ip")
            .args(["-br", "addr"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .map_err(|e| format!("ip -br addr: {e}"))?;
        let subnet = (0..64u32)
            .map(|i| (pid + i * 4) % 256)
            .find(|n| !used.contains(&format!("198.18.{n}.")))
            .ok_or("no free 198.18.x.0/30")?;
        let (pid, n) = (std::process::id(), n);
        let name = format!("revhook-envtest-{pid}-{n}");
        // Interface names are at most 15 bytes.
        let host_if = format!("rvh{}x{n}h", pid % 100_000);
        let inner_if = format!("rvh{}x{n}n", pid % 100_000);
        let host_ip = format!("198.18.{subnet}.1");
        let inner_ip = format!("198.18.{subnet}.2");
        ip(&["netns", "add", &name])?;
        let ns = NetNs {
            name: name.clone(),
            host_ip: host_ip.parse().map_err(|e| format!("{e}"))?,
            inner_ip: inner_ip.parse().map_err(|e| format!("{e}"))?,
            host_if: host_if.clone(),
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &inner_if,
        ])?;
        ip(&["link", "set", &inner_if, "netns", &name])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])?;
        ip(&["link", "set", &host_if, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &format!("{inner_ip}/30"), "dev", &inner_if])?;
        inside(&["link", "set", &inner_if, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace destroys the inner end, and with it the pair.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

/// The namespace of the barrier's probe pods: no injection labels, so only revhook's
/// `object.inject` webhook (pod label `sidecar.istio.io/inject=true`) and its workload
/// validation select them.
const PROBE_NAMESPACE: &str = "envtest-probe";

static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Revhook {
    /// Waits until the API server calls this revhook's /inject and /validate for a pod.
    ///
    /// The API server loads webhook configurations (and their caBundle) through an informer:
    /// for a moment after a configuration is written, requests are admitted without calling
    /// the webhook, or fail TLS with the old caBundle. Server-side dry-run pods, which call
    /// webhooks and store nothing, are sent until revhook's log shows both calls for one of
    /// them (a pod for the mutating configuration, a namespace of the same name for the
    /// validating one); the verdicts do not matter (revhook may not be synced, or refuse).
    pub async fn wait_for_api_server_calls(&mut self, client: &Client) {
        use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
        use kube::api::{Api, PostParams};
        let ns: Namespace = objects::typed(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PROBE_NAMESPACE}}));
        let sa: ServiceAccount = objects::typed(serde_json::json!({
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "probe"}}));
        // AlreadyExists is fine: the second barrier of a test reuses them.
        let _ = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await;
        let _ = Api::<ServiceAccount>::namespaced(client.clone(), PROBE_NAMESPACE)
            .create(&PostParams::default(), &sa)
            .await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), PROBE_NAMESPACE);
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            self.proc.assert_running();
            let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("envtest-probe-{}-{n}", std::process::id());
            let pod: Pod = objects::typed(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": {"sidecar.istio.io/inject": "true"}},
                "spec": {"serviceAccountName": "probe", "containers": [{"name": "app", "image": "probe"}]}
            }));
            // Namespaces are validated only (no mutating webhook selects them), and a pod
            // /inject refuses never reaches /validate: one probe for each configuration.
            let probe_ns: Namespace = objects::typed(serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
            let _ = pods.create(&dry_run, &pod).await;
            let _ = Api::<Namespace>::all(client.clone())
                .create(&dry_run, &probe_ns)
                .await;
            if self.saw_calls(&name) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "the API server never called revhook's webhooks for a probe pod:\n{}",
            tail(&self.proc.log, 30)
        );
    }

    /// Whether revhook logged an /inject and a /validate request for objects named `name`
    /// (text or JSON log format).
    fn saw_calls(&self, name: &str) -> bool {
        let log = self.proc.log_text();
        let called = |webhook: &str| {
            let text = format!("webhook=\"{webhook}\"");
            let json = format!("\"webhook\":\"{webhook}\"");
            log.lines()
                .any(|l| l.contains(name) && (l.contains(&text) || l.contains(&json)))
        };
        called("inject") && called("validate")
    }
}

/// A minimal HTTP/1.1 GET (the admin port is plain HTTP on loopback).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// Polls `f` every 200 ms until it returns `Some`, or panics with `what` and the last value
/// seen after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("(never tried)");
    while Instant::now() < deadline {
        match f().await {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}; last: {last}");
}
