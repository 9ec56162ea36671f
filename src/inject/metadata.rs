//! What an injection writes in the pod's metadata: Istio's labels (canonical name and
//! revision, TLS mode), the revision and status annotations, default container, Multus
//! networks, and Prometheus' merged scrape settings.

use crate::core::json::push_json_str;
use crate::core::labels;
use crate::core::pod::{self, PodIn};
use crate::core::sidecar::RenderedSidecar;

use super::patch::PatchWriter;
use super::workload::Workload;

pub(super) fn add_metadata(
    pod: &PodIn<'_>,
    sidecar: &RenderedSidecar,
    status_json: &str,
    workload: &Workload,
    app: &[&pod::ContainerIn<'_>],
    prometheus: &Prometheus,
    w: &mut PatchWriter,
) {
    let meta = pod.meta();
    if pod.metadata_in.is_none() {
        w.add_raw("/metadata", "{}");
    }
    // Label values are at most 63 characters; Istio truncates.
    let canonical_name = truncate_label(
        meta.label(labels::CANONICAL_NAME)
            .or_else(|| meta.label("app.kubernetes.io/name"))
            .or_else(|| meta.label("app"))
            .unwrap_or(&workload.name),
    );
    let canonical_rev = truncate_label(
        meta.label(labels::CANONICAL_REVISION)
            .or_else(|| meta.label("app.kubernetes.io/version"))
            .or_else(|| meta.label("version"))
            .unwrap_or("latest"),
    );
    let tls_mode = meta.label(labels::TLS_MODE).unwrap_or("istio");
    let new_labels = [
        (labels::TLS_MODE, Val::Str(tls_mode)),
        (labels::CANONICAL_NAME, Val::Str(canonical_name)),
        (labels::CANONICAL_REVISION, Val::Str(canonical_rev)),
    ];
    write_map(w, "/metadata/labels", meta.labels.is_some(), &new_labels);

    let first_app = app.first().map(|c| c.name.as_ref());
    // Room for every annotation below, so the list is allocated once.
    let mut annotations: Vec<(&str, Val<'_>)> = Vec::with_capacity(8);
    annotations.extend([
        (labels::ISTIO_REV, Val::Str(sidecar.revision.name.as_str())),
        (labels::SIDECAR_STATUS, Val::Json(status_json)),
    ]);
    if let Some(first) = first_app {
        for key in [labels::DEFAULT_CONTAINER, labels::DEFAULT_LOGS_CONTAINER] {
            if meta.annotation(key).is_none() {
                annotations.push((key, Val::Str(first)));
            }
        }
    }
    let networks = sidecar
        .revision
        .multus
        .then(|| append_multus_network(meta.annotation(MULTUS_NETWORKS)));
    if let Some(networks) = &networks {
        annotations.push((MULTUS_NETWORKS, Val::Str(networks)));
    }
    if prometheus.merge {
        annotations.extend([
            ("prometheus.io/path", Val::Str("/stats/prometheus")),
            ("prometheus.io/port", Val::Str("15020")),
            ("prometheus.io/scrape", Val::Str("true")),
        ]);
    }
    write_map(
        w,
        "/metadata/annotations",
        meta.annotations.is_some(),
        &annotations,
    );
}

const MULTUS_NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
const ISTIO_CNI_NETWORK: &str = "default/istio-cni";

/// Adds Istio's CNI network attachment to a pod's Multus networks, in the form the annotation
/// already uses (a comma-separated list, or a JSON array).
pub(super) fn append_multus_network(existing: Option<&str>) -> String {
    let existing = existing.unwrap_or_default().trim();
    if existing.is_empty() {
        return ISTIO_CNI_NETWORK.to_owned();
    }
    if existing.contains(ISTIO_CNI_NETWORK) {
        return existing.to_owned();
    }
    match existing.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        Some(inner) if inner.trim().is_empty() => {
            format!("[{{\"name\": \"{ISTIO_CNI_NETWORK}\"}}]")
        }
        Some(inner) => format!("[{inner}, {{\"name\": \"{ISTIO_CNI_NETWORK}\"}}]"),
        None => format!("{existing}, {ISTIO_CNI_NETWORK}"),
    }
}

/// A map value: a plain string, or one already serialized as a JSON string literal.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Json(&'a str),
}

/// Cuts a label value to 63 characters, ending on an alphanumeric as a label value must.
fn truncate_label(value: &str) -> &str {
    match value.char_indices().nth(63) {
        Some((i, _)) => value[..i].trim_end_matches(|c: char| !c.is_ascii_alphanumeric()),
        None => value,
    }
}

/// Adds `entries` under `path`: one op per key when the map exists, else the whole map.
fn write_map(w: &mut PatchWriter, path: &str, exists: bool, entries: &[(&str, Val<'_>)]) {
    if exists {
        for (k, v) in entries {
            match v {
                Val::Str(s) => w.add_key_str(path, k, s),
                Val::Json(j) => w.add_key_raw(path, k, j),
            }
        }
        return;
    }
    w.add_with(path, |obj| {
        obj.push('{');
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                obj.push(',');
            }
            push_json_str(obj, k);
            obj.push(':');
            match v {
                Val::Str(s) => push_json_str(obj, s),
                Val::Json(j) => obj.push_str(j),
            }
        }
        obj.push('}');
    });
}

/// Istio's metrics merge: the agent serves merged metrics on 15020, and the app's own scrape
/// settings move into `ISTIO_PROMETHEUS_ANNOTATIONS` for the agent to follow.
pub(super) struct Prometheus {
    merge: bool,
    pub(super) original: Option<String>,
}

pub(super) fn prometheus_annotations(pod: &PodIn<'_>) -> Prometheus {
    let meta = pod.meta();
    let opted_out = meta.annotation("prometheus.istio.io/merge-metrics") == Some("false")
        || meta.annotation("prometheus.io/scrape") == Some("false");
    if opted_out {
        return Prometheus {
            merge: false,
            original: None,
        };
    }
    let mut original = serde_json::Map::new();
    for key in ["scrape", "path", "port"] {
        if let Some(v) = meta.annotation(&format!("prometheus.io/{key}")) {
            original.insert(key.to_owned(), serde_json::Value::String(v.to_owned()));
        }
    }
    Prometheus {
        merge: true,
        original: (!original.is_empty()).then(|| serde_json::Value::Object(original).to_string()),
    }
}

pub(super) fn pod_ports_json(app: &[&pod::ContainerIn<'_>]) -> String {
    let mut out = Vec::with_capacity(128);
    out.push(b'[');
    for (i, port) in app
        .iter()
        .flat_map(|c| c.ports.as_deref().unwrap_or_default())
        .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        // Serializing a borrowed struct into memory cannot fail.
        let _ = serde_json::to_writer(&mut out, port);
    }
    out.push(b']');
    // serde_json writes UTF-8.
    String::from_utf8(out).unwrap_or_default()
}
