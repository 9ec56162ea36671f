//! `revhook serve` wiring: certificates, snapshot source, server, background reloads.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cabundle::{self, CaBundleOptions};
use crate::core::lookup::NamespaceLookup;
use crate::core::policy::Policy;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::server::{self, App, Limits};
use crate::sources::{self, Source};
use crate::tls::{self, CertFiles, CertStore, Reloader};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Source(#[from] sources::SourceError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--tls-cert and --tls-key go together")]
    HalfPair,
}

/// Everything `serve` needs, independent of the CLI.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Where dev certificates are generated when no cert flags are given.
    pub certs_dir: PathBuf,
    pub source: Source,
    /// Keep the webhook configurations' `caBundle` current (cluster source only).
    pub ca_bundle: Option<CaBundleOptions>,
    pub policy: Policy,
    pub limits: Limits,
    pub reload_interval: Duration,
    /// Overrides how unknown namespaces are looked up (tests; the cluster source sets its own).
    pub namespace_lookup: Option<Arc<dyn NamespaceLookup>>,
    /// `--client-ca`: accept only clients with a certificate signed by a CA in this file.
    pub client_ca: Option<PathBuf>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 15017)),
            admin_listen: None,
            tls_cert: None,
            tls_key: None,
            certs_dir: PathBuf::from("certs"),
            source: Source::File(None),
            ca_bundle: None,
            policy: Policy::default(),
            limits: Limits::default(),
            reload_interval: Duration::from_secs(2),
            namespace_lookup: None,
            client_ca: None,
        }
    }
}

/// A server that is up.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub app: Arc<App>,
    pub certs: Arc<CertStore>,
    server: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits for the server to finish draining (after its shutdown future resolved).
    pub async fn wait(self) {
        let _ = self.server.await;
        for task in self.background {
            task.abort();
        }
    }
}

/// Cert and key paths: the flags, or dev certificates generated into `certs_dir` on first run.
fn cert_paths(opts: &ServeOptions) -> Result<CertFiles, ServeError> {
    match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => Ok(CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => {
            let files = CertFiles {
                cert: opts.certs_dir.join("tls.crt"),
                key: opts.certs_dir.join("tls.key"),
            };
            if !files.cert.exists() || !files.key.exists() {
                let dev = tls::generate_dev(&tls::service_names("revhook-system"), &[], 365, 3650)?;
                dev.write(&opts.certs_dir)?;
                tracing::info!(dir = %opts.certs_dir.display(), "generated dev CA and serving certificate");
            }
            Ok(files)
        }
        _ => Err(ServeError::HalfPair),
    }
}

/// Starts the server; it runs until `shutdown` resolves, then drains.
pub async fn start(
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, ServeError> {
    let metrics = Metrics::new();
    let health = Arc::new(Health::default());

    let files = cert_paths(&opts)?;
    let pair_bytes = tls::read_pair(&files.cert, &files.key)?;
    let certs = CertStore::new(tls::load_pair(&pair_bytes.0, &pair_bytes.1, "serving")?);
    let clients = match &opts.client_ca {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| tls::TlsError::Read {
                path: path.display().to_string(),
                source,
            })?;
            Some(tls::client_verifier(
                &pem,
                &format!("--client-ca {}", path.display()),
            )?)
        }
        None => None,
    };
    let tls_config = Arc::new(tls::server_config_for(certs.clone(), clients)?);
    metrics.serving_cert(&certs.current());
    health.set_certs_loaded();

    let source = sources::start(&opts.source, &health, &metrics, opts.reload_interval).await?;
    let mut background = source.tasks;
    let namespace_lookup = opts.namespace_lookup.clone().or(source.namespace_lookup);
    if let (Some(client), Some(ca)) = (source.client, opts.ca_bundle.clone()) {
        background.push(tokio::spawn(cabundle::run(client, ca, metrics.clone())));
    }
    let snapshot = source.snapshot;

    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: opts.listen,
        source,
    })?;
    let admin = match opts.admin_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|source| ServeError::Listen { addr: a, source })?,
        ),
        None => None,
    };
    let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());

    let mut app = App::new(
        snapshot,
        opts.policy,
        metrics.clone(),
        health,
        opts.limits.clone(),
    );
    app.namespace_lookup = namespace_lookup;
    let app = Arc::new(app);
    background.push(tokio::spawn(Reloader::new(files, pair_bytes).run(
        certs.clone(),
        opts.reload_interval,
        metrics,
    )));
    tracing::info!(%addr, admin = ?admin_addr, "listening");
    let server = tokio::spawn(server::serve(
        listener,
        admin,
        app.clone(),
        tls_config,
        shutdown,
    ));
    Ok(Running {
        addr,
        admin_addr,
        app,
        certs,
        server,
        background,
    })
}
