//! What both benchmarks send: the load mix of fixture reviews, compacted as the API server
//! sends them, and the snapshot they are judged against.

// Each benchmark uses part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use revhook::core::snapshot::Snapshot;
use revhook::handler::Webhook;

/// One kind of request in the mix.
pub struct MixRequest {
    /// `inject`, `skip`, `deny` or `validate`.
    pub kind: &'static str,
    pub webhook: Webhook,
    /// The URL path the API server posts it to.
    pub path: &'static str,
    pub body: Vec<u8>,
}

/// The request mix (inject, skip, deny (stale), validate; or only one of them), compacted.
pub fn mix(only: Option<&str>) -> Vec<MixRequest> {
    [
        ("inject", Webhook::Inject, "pod-create-prod-stable.json"),
        (
            "skip",
            Webhook::Inject,
            "pod-create-unlabelled-namespace.json",
        ),
        ("deny", Webhook::Inject, "pod-create-stale-namespace.json"),
        ("validate", Webhook::Validate, "namespace-create.json"),
    ]
    .into_iter()
    .filter(|(kind, _, _)| only.is_none_or(|o| o == *kind))
    .map(|(kind, webhook, file)| MixRequest {
        kind,
        webhook,
        path: match webhook {
            Webhook::Inject => "/inject",
            Webhook::Validate => "/validate",
        },
        body: compact(&fixture(file)),
    })
    .collect()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).expect("fixture")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The config file the fixtures are written against.
pub fn config_path() -> PathBuf {
    fixtures().join("local-config.yaml")
}

/// The snapshot of [`config_path`].
pub fn fixture_snapshot() -> Snapshot {
    let text = std::fs::read_to_string(config_path()).expect("config");
    revhook::sources::config::parse(&text, "bench").expect("config parses")
}

/// The fixture without the whitespace between tokens, keys in their order: the API server
/// sends its reviews compact (Go's encoding/json), not pretty-printed like our files.
fn compact(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            out.push(b);
            (in_string, escaped) = match (escaped, b) {
                (true, _) => (true, false),
                (false, b'\\') => (true, true),
                (false, b'"') => (false, false),
                _ => (true, false),
            };
        } else if !b.is_ascii_whitespace() {
            in_string = b == b'"';
            out.push(b);
        }
    }
    let same = |j: &[u8]| serde_json::from_slice::<serde_json::Value>(j).expect("fixture is JSON");
    assert_eq!(same(&out), same(json), "compacting changed the fixture");
    out
}
