//! Prometheus metrics, served as text on `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `inject`, `validate`, or the HTTP path class for errors.
    path: &'static str,
    /// `allowed`, `patched`, `denied`, or `error`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// Cheap to clone: every field is a handle to shared atomics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<PathLabels, Histogram>,
    cert_reloads: Family<ResultLabels, Counter>,
    unknown_kinds: Family<KindLabels, Counter>,
    snapshot_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    snapshot_updates: Family<ResultLabels, Counter>,
    ca_bundle_writes: Counter,
    /// The webhooks' series, looked up once: every admission request updates them, and a
    /// family lookup hashes the labels under a lock.
    webhooks: Arc<[WebhookSeries]>,
}

/// One webhook path's request counters (by outcome) and latency histogram.
struct WebhookSeries {
    path: &'static str,
    outcomes: Vec<(&'static str, Counter)>,
    latency: Histogram,
}

const WEBHOOK_PATHS: [&str; 2] = ["inject", "validate"];
const OUTCOMES: [&str; 4] = ["patched", "allowed", "denied", "error"];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("revhook");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Admission and HTTP requests by path and outcome",
            requests.clone(),
        );
        let latency = Family::<PathLabels, Histogram>::new_with_constructor(|| {
            // 50 µs .. ~1.6 s: the handler is microseconds, the API server's budget is seconds.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.000_05, 2.0, 16,
            ))
        });
        registry.register(
            "request_duration_seconds",
            "Time from request headers to response, by path",
            latency.clone(),
        );
        let cert_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "cert_reloads",
            "Serving certificate reloads by result",
            cert_reloads.clone(),
        );
        let unknown_kinds = Family::<KindLabels, Counter>::default();
        registry.register(
            "validate_unknown_kind",
            "Objects of kinds /validate has no rules for",
            unknown_kinds.clone(),
        );
        let snapshot_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "snapshot_staleness_seconds",
            "Seconds since the revisions snapshot was last confirmed current by its source",
            snapshot_age.clone(),
        );
        let snapshot_updates = Family::<ResultLabels, Counter>::default();
        registry.register(
            "snapshot_updates",
            "Snapshot rebuilds by result (ok, error)",
            snapshot_updates.clone(),
        );
        let ca_bundle_writes = Counter::default();
        registry.register(
            "ca_bundle_writes",
            "Webhook caBundle fields revhook rewrote (--manage-ca-bundle)",
            ca_bundle_writes.clone(),
        );
        // Created up front, so each series exists (at zero) from the first scrape on.
        let webhooks = WEBHOOK_PATHS
            .iter()
            .map(|&path| WebhookSeries {
                path,
                outcomes: OUTCOMES
                    .iter()
                    .map(|&outcome| {
                        let counter = requests.get_or_create(&RequestLabels { path, outcome });
                        (outcome, counter.clone())
                    })
                    .collect(),
                latency: latency.get_or_create(&PathLabels { path }).clone(),
            })
            .collect();
        Metrics {
            registry: Arc::new(registry),
            webhooks,
            ca_bundle_writes,
            requests,
            latency,
            cert_reloads,
            unknown_kinds,
            snapshot_age,
            snapshot_updates,
        }
    }

    pub fn request(&self, path: &'static str, outcome: &'static str, elapsed: Duration) {
        if let Some(series) = self.webhooks.iter().find(|s| s.path == path) {
            if let Some((_, counter)) = series.outcomes.iter().find(|(o, _)| *o == outcome) {
                counter.inc();
                series.latency.observe(elapsed.as_secs_f64());
                return;
            }
        }
        self.requests
            .get_or_create(&RequestLabels { path, outcome })
            .inc();
        self.latency
            .get_or_create(&PathLabels { path })
            .observe(elapsed.as_secs_f64());
    }

    pub fn cert_reload(&self, result: &'static str) {
        self.cert_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn unknown_kind(&self, kind: &str) {
        self.unknown_kinds
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub fn snapshot_update(&self, result: &'static str) {
        self.snapshot_updates
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn ca_bundle_written(&self, webhooks: u64) {
        self.ca_bundle_writes.inc_by(webhooks);
    }

    pub fn set_snapshot_staleness(&self, age: Duration) {
        self.snapshot_age.set(age.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_histograms_render() {
        let m = Metrics::new();
        m.request("inject", "patched", Duration::from_micros(30));
        m.request("inject", "patched", Duration::from_micros(30));
        m.unknown_kind("ConfigMap");
        let text = m.render();
        assert!(
            text.contains(r#"revhook_requests_total{path="inject",outcome="patched"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"revhook_request_duration_seconds_count{path="inject"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"revhook_validate_unknown_kind_total{kind="ConfigMap"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"revhook_requests_total{path="validate",outcome="denied"} 0"#),
            "webhook series exist before their first request: {text}"
        );
        m.request("healthz", "ok", Duration::from_micros(3));
        let text = m.render();
        assert!(
            text.contains(r#"revhook_requests_total{path="healthz",outcome="ok"} 1"#),
            "{text}"
        );
    }
}
