//! `revhook serve` wiring: certificates, snapshot source, server, background reloads.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cabundle::{self, CaBundleOptions};
use crate::inject::decide::Policy;
use crate::metrics::Metrics;
use crate::server::{self, App, Health, Limits};
use crate::state::cluster::{self, ApiNamespaceLookup, ClusterOptions, NamespaceLookup};
use crate::state::{config, SharedSnapshot, Snapshot};
use crate::tls::{self, CertFiles, CertStore, Reloader};

const MIN_RELOAD_INTERVAL: Duration = Duration::from_millis(10);

/// Where revisions, tags and namespace labels come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `--config FILE`, or the embedded default when `None`.
    File(Option<PathBuf>),
    /// Istio's own objects, watched live.
    Cluster(ClusterOptions),
    /// A snapshot built elsewhere (tests, embedding); it is served as it is.
    Fixed(Arc<SharedSnapshot>),
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot reach the Kubernetes API: {0}")]
    Kube(#[from] cluster::ClientError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
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
pub fn cert_paths(opts: &ServeOptions) -> Result<CertFiles, ServeError> {
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

/// The snapshot and the exact bytes it was parsed from (the reload baseline).
fn load_snapshot(path: Option<&Path>) -> Result<(Snapshot, Vec<u8>), config::ConfigError> {
    let Some(path) = path else {
        return Ok((config::embedded()?, Vec::new()));
    };
    let bytes = std::fs::read(path).map_err(|source| config::ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    Ok((config::parse(&text, &path.display().to_string())?, bytes))
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
    let tls_config = Arc::new(tls::server_config(certs.clone())?);
    metrics.serving_cert(&certs.current());
    health.set_certs_loaded();

    let mut background = vec![];
    let mut namespace_lookup = opts.namespace_lookup.clone();
    let snapshot = match &opts.source {
        Source::File(path) => {
            let (initial, config_bytes) = load_snapshot(path.as_deref())?;
            let snapshot = Arc::new(SharedSnapshot::new(initial));
            health.set_synced(true);
            tracing::info!(origin = %snapshot.load().origin, revisions = snapshot.load().table.revisions().count(), "revisions loaded");
            if let Some(path) = path.clone() {
                background.push(tokio::spawn(watch_config(
                    path,
                    config_bytes,
                    snapshot.clone(),
                    opts.reload_interval,
                    metrics.clone(),
                )));
            }
            snapshot
        }
        Source::Fixed(snapshot) => {
            health.set_synced(true);
            snapshot.clone()
        }
        Source::Cluster(cluster_opts) => {
            let client = cluster::client(cluster_opts).await?;
            // Not ready until every watch has listed once: until then nothing is known.
            let snapshot = Arc::new(SharedSnapshot::new(Snapshot::empty("cluster (syncing)")));
            background.extend(cluster::start(
                client.clone(),
                cluster_opts.clone(),
                snapshot.clone(),
                health.clone(),
                metrics.clone(),
            ));
            namespace_lookup
                .get_or_insert_with(|| Arc::new(ApiNamespaceLookup::new(client.clone())));
            if let Some(ca) = opts.ca_bundle.clone() {
                background.push(tokio::spawn(cabundle::run(client, ca, metrics.clone())));
            }
            snapshot
        }
    };

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

/// Reloads the config file when its contents change; a bad file keeps the last good snapshot.
async fn watch_config(
    path: PathBuf,
    mut last: Vec<u8>,
    snapshot: Arc<SharedSnapshot>,
    interval: Duration,
    metrics: Metrics,
) {
    let mut confirmed = Instant::now();
    // False while the file on disk is one we could not load: the snapshot is then behind it.
    let mut current = true;
    // tokio panics on a zero period; `--reload-interval 0s` means "as often as sensible".
    let mut tick = tokio::time::interval(interval.max(MIN_RELOAD_INTERVAL));
    loop {
        tick.tick().await;
        let Ok(now) = std::fs::read(&path) else {
            metrics.set_snapshot_staleness(confirmed.elapsed());
            continue;
        };
        if now == last {
            if current {
                confirmed = Instant::now();
            }
            metrics.set_snapshot_staleness(confirmed.elapsed());
            continue;
        }
        let parsed = config::parse(&String::from_utf8_lossy(&now), &path.display().to_string());
        last = now;
        match parsed {
            Ok(new) => {
                tracing::info!(path = %path.display(), "config reloaded");
                snapshot.store(new);
                metrics.snapshot_update("ok");
                confirmed = Instant::now();
                current = true;
            }
            Err(error) => {
                tracing::error!(%error, "config reload failed; keeping the previous revisions");
                metrics.snapshot_update("error");
                current = false;
            }
        }
        metrics.set_snapshot_staleness(confirmed.elapsed());
    }
}
