//! YAML as Go's `sigs.k8s.io/yaml` reads and writes it.
//!
//! istiod parses the output of its injection templates with `sigs.k8s.io/yaml`, which runs
//! go-yaml **v2** (YAML 1.1 scalar resolution: `yes`/`on` are booleans, `0777` is octal, ...)
//! and converts the result to JSON; Istio's `toYaml` template function writes with
//! `sigs.k8s.io/yaml.Marshal`. This crate does both, so revhook reads and writes exactly the
//! JSON and text Go would:
//!
//! - [`from_str`]: the JSON value `yaml.YAMLToJSON` gives for the first document of a text.
//! - [`documents`]: every document of a `---` stream, each converted the same way.
//! - [`to_string`]: the text `yaml.Marshal` gives for a JSON value.
//!
//! The reader is a scanner and parser of the same design as libyaml (which go-yaml v2
//! ports), so it accepts and refuses the same texts, working on the borrowed input without
//! copying scalars that need no unescaping. Anchors, aliases and merge keys are supported
//! with go-yaml's limit on alias expansion; `!!timestamp` tags and nesting deeper than
//! [`MAX_DEPTH`] are refused with [`ErrorKind::Unsupported`] / [`ErrorKind::TooDeep`].

mod emit;
mod error;
mod fast;
mod gofloat;
mod load;
mod resolve;
mod scan;
mod unicode_tables;

pub use error::{Error, ErrorKind};

/// Deepest nesting of collections accepted. go-yaml allows 10000, but a `serde_json::Value`
/// that deep overflows the stack when dropped; real manifests nest a few dozen levels.
pub const MAX_DEPTH: usize = 1000;

/// The JSON value `sigs.k8s.io/yaml.YAMLToJSON(text)` gives: the first document only (an
/// empty text or one with no document is `null`); the rest of the text is not read.
pub fn from_str(text: &str) -> Result<serde_json::Value, Error> {
    load::first_document(text)
}

/// [`from_str`] by the full reader alone, without its fast path for plain block YAML: for
/// tests that hold the two to the same answers.
#[doc(hidden)]
pub fn from_str_full(text: &str) -> Result<serde_json::Value, Error> {
    load::full_first_document(text)
}

/// Whether the fast path reads `text` by itself (for tests and benchmarks).
#[doc(hidden)]
pub fn fast_path_reads(text: &str) -> bool {
    scan::Scanner::new(text).is_ok_and(|s| fast::only_document(s).is_some())
}

/// Every document of a YAML stream, each as [`from_str`] converts one: what go-yaml v2's
/// `Decoder` yields document by document, passed through `sigs.k8s.io/yaml`'s conversion. An
/// empty text has no documents; an empty document (`---` followed by nothing) is `null`.
pub fn documents(text: &str) -> Result<Vec<serde_json::Value>, Error> {
    load::all_documents(text)
}

/// The text `sigs.k8s.io/yaml.Marshal` gives for `value` (which marshals to JSON and writes
/// that with go-yaml v2): keys in go-yaml's order, strings quoted where YAML 1.1 would read
/// them as something else, multi-line strings as `|-` blocks, long strings folded at 80
/// columns, numbers as Go prints them. Ends with a newline.
///
/// Where Go's `Marshal` fails (see [`try_to_string`]) this is `""`, which is what Istio's
/// `toYaml` template function renders then.
pub fn to_string(value: &serde_json::Value) -> String {
    emit::to_string(value)
}

/// [`to_string`], or the error where Go's `Marshal` fails: a mapping key longer than
/// go-yaml's 1024-character simple-key limit once JSON-quoted ([`ErrorKind::Conversion`]),
/// or nesting deeper than [`MAX_DEPTH`] ([`ErrorKind::TooDeep`]; Go allows 10000).
pub fn try_to_string(value: &serde_json::Value) -> Result<String, Error> {
    emit::try_to_string(value)
}
