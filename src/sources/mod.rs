//! What fills the snapshot: config files, the cluster's watchers, one-shot listings. Each
//! source builds a whole new `Snapshot` and swaps it in atomically.

pub mod cluster;
pub mod config;
pub mod file;
pub mod listing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use crate::core::lookup::NamespaceLookup;
use crate::core::snapshot::Snapshot;
use crate::health::Health;
use crate::metrics::Metrics;

use cluster::{ApiNamespaceLookup, ClusterOptions};

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

/// A source that is filling its snapshot.
pub struct Started {
    pub snapshot: Arc<SharedSnapshot>,
    /// Where to ask for a namespace the snapshot does not know yet (cluster source).
    pub namespace_lookup: Option<Arc<dyn NamespaceLookup>>,
    /// The cluster client, for the tasks beside the source (caBundle upkeep).
    pub client: Option<kube::Client>,
    pub tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot reach the Kubernetes API: {0}")]
    Kube(#[from] cluster::ClientError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
}

/// Starts `source`: its first snapshot, and the tasks that keep it current. `health` is
/// marked synced once the source knows what is installed (at once for files).
pub async fn start(
    source: &Source,
    health: &Arc<Health>,
    metrics: &Metrics,
    reload_interval: Duration,
) -> Result<Started, SourceError> {
    let mut started = Started {
        snapshot: Arc::new(SharedSnapshot::new(Snapshot::empty("starting"))),
        namespace_lookup: None,
        client: None,
        tasks: Vec::new(),
    };
    match source {
        Source::File(path) => {
            let (initial, config_bytes) = file::load_snapshot(path.as_deref())?;
            started.snapshot.store(initial);
            health.set_synced(true);
            let loaded = started.snapshot.load();
            tracing::info!(origin = %loaded.origin, revisions = loaded.table.revisions().count(), "revisions loaded");
            if let Some(path) = path.clone() {
                started.tasks.push(tokio::spawn(file::watch_config(
                    path,
                    config_bytes,
                    started.snapshot.clone(),
                    reload_interval,
                    metrics.clone(),
                )));
            }
        }
        Source::Fixed(snapshot) => {
            health.set_synced(true);
            started.snapshot = snapshot.clone();
        }
        Source::Cluster(opts) => {
            let client = cluster::client(opts).await?;
            // Not ready until every watch has listed once: until then nothing is known.
            started.snapshot.store(Snapshot::empty("cluster (syncing)"));
            started.tasks.extend(cluster::start(
                client.clone(),
                opts.clone(),
                started.snapshot.clone(),
                health.clone(),
                metrics.clone(),
            ));
            started.namespace_lookup = Some(Arc::new(ApiNamespaceLookup::new(client.clone())));
            started.client = Some(client);
        }
    }
    Ok(started)
}

/// The current snapshot, shared by the server and the sources that update it.
#[derive(Debug)]
pub struct SharedSnapshot(ArcSwap<Snapshot>);

impl SharedSnapshot {
    pub fn new(snapshot: Snapshot) -> Self {
        SharedSnapshot(ArcSwap::from_pointee(snapshot))
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Swaps in a new snapshot, logging each revision that cannot inject (its pods will be
    /// refused with the same reason).
    pub fn store(&self, snapshot: Snapshot) {
        for rev in snapshot.table.revisions() {
            if let Err(problem) = &rev.injector {
                tracing::error!(
                    revision = %rev.name,
                    origin = %snapshot.origin,
                    "revision cannot inject, its pods are refused: {problem}"
                );
            }
        }
        self.0.store(Arc::new(snapshot));
    }
}
