//! The file source: revisions, tags and namespace labels from `--config FILE` (or the
//! embedded default), reloaded when the file's contents change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::snapshot::Snapshot;
use crate::metrics::Metrics;

use super::config;
use super::SharedSnapshot;

const MIN_RELOAD_INTERVAL: Duration = Duration::from_millis(10);

/// The snapshot and the exact bytes it was parsed from (the reload baseline).
pub fn load_snapshot(path: Option<&Path>) -> Result<(Snapshot, Vec<u8>), config::ConfigError> {
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

/// Reloads the config file when its contents change; a bad file keeps the last good snapshot.
pub async fn watch_config(
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
