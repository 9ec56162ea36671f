//! Kubernetes strategic merge patch for `corev1.Pod`, as istiod overlays a rendered injection
//! template on the admitted pod (`applyOverlayYAML` → apimachinery's
//! `StrategicMergeMapPatchUsingLookupPatchMeta` with the patch metadata of `corev1.Pod`).
//!
//! The result is apimachinery's, including the order of merged lists and where it fails; the
//! differential test `tests/strategic_merge.rs` holds it against the Go code itself. Go's
//! numbers are `float64` on both sides, so merge keys compare as floats here too.
//!
//! Where Go's own answer is not a function of its input (it panics, or depends on map
//! iteration order or slice capacity) and for `$setElementOrder`, which no injection template
//! writes, the merge refuses with a typed error instead of guessing.
//!
//! Cost is linear in the size of pod and patch (up to the `log n` of `serde_json::Map`): list
//! items are matched through hash maps of their merge keys, and lists are ordered by bucketing
//! on positions, where Go scans lists inside loops.

mod keys;
mod list;
mod map;
mod pod_types;
mod schema;
#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::{Map, Value};

pub use schema::{describe as describe_schema, Schema};

/// The pod as istiod's Go code writes it once decoded into a `corev1.Pod` (see
/// [`Schema::as_go_encodes`]).
pub fn as_go_encodes(pod: &mut Value) {
    Schema::POD.as_go_encodes(pod);
}

/// Applies `patch` (a partial Pod) to `pod` in place, as apimachinery's strategic merge does
/// for `corev1.Pod`. A `null` patch changes nothing. On error the pod is left partly merged (as
/// Go leaves its map): discard it.
pub fn merge_pod(pod: &mut Value, patch: Value) -> Result<(), StrategicError> {
    merge(pod, patch, Schema::POD)
}

/// Applies `patch` to `target`, an object of the Go type `schema` (e.g. one container with
/// [`Schema::container`]), with the same semantics as [`merge_pod`].
pub fn merge(target: &mut Value, patch: Value, schema: Schema) -> Result<(), StrategicError> {
    merge_counting(target, patch, schema, &mut Work::default())
}

/// Steps taken by one merge: every item and key visited, every lookup. The unit tests hold it
/// linear in the input's size.
#[derive(Debug, Default)]
pub(crate) struct Work(pub(crate) u64);

impl Work {
    fn add(&mut self, steps: usize) {
        self.0 = self.0.saturating_add(steps as u64);
    }
}

fn merge_counting(
    target: &mut Value,
    patch: Value,
    schema: Schema,
    work: &mut Work,
) -> Result<(), StrategicError> {
    let root = Path::Root;
    let patch = match patch {
        Value::Object(patch) => patch,
        Value::Null => return Ok(()),
        other => {
            return Err(StrategicError::NotAnObject {
                path: root.to_string(),
                what: "patch",
                found: keys::GoType::of(&other).name(),
            })
        }
    };
    if target.is_null() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(original) = target else {
        return Err(StrategicError::NotAnObject {
            path: root.to_string(),
            what: "target",
            found: keys::GoType::of(target).name(),
        });
    };
    map::merge_map(original, patch, schema, &root, work)
}

/// Why a patch could not be applied. `path` is a JSON Pointer into the patch (list items by
/// their position in the patch's list, or in the merged list where the item is the pod's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicError {
    #[error("at {path:?}: the {what} is {found}, not an object")]
    NotAnObject {
        path: String,
        what: &'static str,
        found: &'static str,
    },
    #[error("at {path:?}: both sides are objects or lists, but Pod's type {ty} has no such field")]
    UnknownField { path: String, ty: &'static str },
    #[error("at {path:?}: both sides are objects, but the schema has a {kind} here, not a struct")]
    NotAStruct { path: String, kind: &'static str },
    #[error("at {path:?}: both sides are lists, but the schema has no list here")]
    NotAList { path: String },
    #[error("at {path:?}: the schema has a list of lists here")]
    SliceOfSlice { path: String },
    #[error("at {path:?}: unexpected patch strategy {strategy:?} in the schema")]
    BadStrategy {
        path: String,
        strategy: &'static str,
    },
    #[error("at {path:?}: a list item has no merge key {key:?}")]
    MissingMergeKey { path: String, key: &'static str },
    #[error("at {path:?}: the list's items are not all of one type")]
    MixedList { path: String },
    #[error("at {path:?}: lists of lists cannot be merged")]
    ListOfLists { path: String },
    #[error("at {path:?}: a list of objects without a merge key (element type: {kind})")]
    NoMergeKey { path: String, kind: &'static str },
    #[error("at {path:?}: unknown $patch directive {value}")]
    UnknownDirective { path: String, value: String },
    #[error("at {path:?}: `$patch: merge` in a list is not supported (apimachinery refuses it)")]
    MergeDirectiveInList { path: String },
    #[error("at {path:?}: malformed $deleteFromPrimitiveList key {key:?}")]
    BadDeleteListKey { path: String, key: String },
    #[error("at {path:?}: invalid $retainKeys: {reason}")]
    BadRetainKeys { path: String, reason: &'static str },
    #[error("at {path:?}: the {directive} directive is not supported (refused, not ignored)")]
    Unsupported { path: String, directive: String },
    #[error("at {path:?}: apimachinery panics on this input ({reason}); refused")]
    GoPanics { path: String, reason: &'static str },
    #[error("at {path:?}: apimachinery's result is not defined by this input ({reason}); refused")]
    GoUndefined { path: String, reason: &'static str },
    #[error("at {path:?}: internal error: {reason}")]
    Internal { path: String, reason: &'static str },
}

/// Where the merge is, kept on the stack and written out only for an error.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    fn index(&'a self, index: usize) -> Path<'a> {
        Path::Index(self, index)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(parent, key) => {
                write!(f, "{parent}/")?;
                // JSON Pointer escaping (RFC 6901).
                f.write_str(&key.replace('~', "~0").replace('/', "~1"))
            }
            Path::Index(parent, index) => write!(f, "{parent}/{index}"),
        }
    }
}
