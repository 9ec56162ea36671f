//! The patch metadata apimachinery reads from the Go types' struct tags
//! (`strategicpatch.PatchMetaFromStruct`), over the table of types reachable from `corev1.Pod`
//! in `pod_types.rs`.
//!
//! A lookup behaves as Go's does, including where it fails: a field the type does not have,
//! a map merged where the schema has no struct, a list merged where the field is no list.

use super::pod_types::TYPES;

/// A Go type of the Pod schema: where a merge is, in apimachinery's eyes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema(pub(super) u16);

/// One Go type, as much of it as the merge reads.
#[derive(Debug)]
pub(super) struct Ty {
    /// Go's `reflect.Type.Name()` (its `String()` for unnamed types).
    pub name: &'static str,
    pub kind: Kind,
}

#[derive(Debug)]
pub(super) enum Kind {
    /// Fields in the order encoding/json lists them (case-insensitive lookups take the first).
    Struct(&'static [Field]),
    Pointer(u16),
    Slice(u16),
    // No Go array is reachable from Pod today; the generator writes one if a version has it.
    #[allow(dead_code)]
    Array(u16),
    Map(u16),
    /// A scalar; the text is Go's kind name (`string`, `int32`, `bool`, …).
    Leaf(&'static str),
}

/// One field of a struct: its JSON name, its type and its `patchStrategy`/`patchMergeKey` tags.
#[derive(Debug)]
pub(super) struct Field {
    pub name: &'static str,
    pub ty: u16,
    pub strategy: &'static str,
    pub merge_key: &'static str,
    /// `omitempty`: encoding/json leaves the field out when it holds its zero value.
    pub omit_empty: bool,
}

/// Why a lookup failed, in Go's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LookupError {
    /// `merging an object in json but data type is not struct`
    NotStruct { kind: &'static str },
    /// `unable to find api field in struct X for the json field "k"`
    UnknownField { ty: &'static str },
    /// `expected slice or array type, but got: <kind of the parent>`
    NotSlice { kind: &'static str },
    /// `unexpected slice of slice`
    SliceOfSlice,
}

impl Schema {
    /// `corev1.Pod`.
    pub const POD: Schema = Schema(0);

    /// `corev1.Container`, the element of `spec.containers` (for overlaying one container).
    pub fn container() -> Schema {
        Schema::POD.field_type("spec").slice_elem("containers")
    }

    fn ty(self) -> &'static Ty {
        &TYPES[usize::from(self.0)]
    }

    /// Go's `Kind().String()`: what `PatchMetaFromStruct.Name()` returns.
    pub(super) fn kind_name(self) -> &'static str {
        match self.ty().kind {
            Kind::Struct(_) => "struct",
            Kind::Pointer(_) => "ptr",
            Kind::Slice(_) => "slice",
            Kind::Array(_) => "array",
            Kind::Map(_) => "map",
            Kind::Leaf(kind) => kind,
        }
    }

    /// `LookupPatchMetadataForStruct`: the field's own type (a pointer stays a pointer) and
    /// tags. The schema is dereferenced once, as Go does.
    pub(super) fn lookup_struct(self, key: &str) -> Result<(Schema, &'static Field), LookupError> {
        let this = match self.ty().kind {
            Kind::Pointer(elem) => Schema(elem),
            _ => self,
        };
        let Kind::Struct(fields) = this.ty().kind else {
            return Err(LookupError::NotStruct {
                kind: this.kind_name(),
            });
        };
        let field = fields
            .iter()
            .find(|f| f.name == key)
            .or_else(|| fields.iter().find(|f| go_fold_equal(f.name, key)))
            .ok_or(LookupError::UnknownField { ty: this.ty().name })?;
        Ok((Schema(field.ty), field))
    }

    /// `LookupPatchMetadataForSlice`: the element type of the field's list.
    pub(super) fn lookup_slice(self, key: &str) -> Result<(Schema, &'static Field), LookupError> {
        let (field_ty, field) = self.lookup_struct(key)?;
        let elem = match field_ty.ty().kind {
            Kind::Slice(elem) | Kind::Array(elem) => {
                if matches!(Schema(elem).ty().kind, Kind::Slice(_) | Kind::Array(_)) {
                    return Err(LookupError::SliceOfSlice);
                }
                elem
            }
            Kind::Pointer(target) => match Schema(target).ty().kind {
                Kind::Slice(elem) | Kind::Array(elem) => elem,
                _ => target,
            },
            _ => {
                return Err(LookupError::NotSlice {
                    kind: self.kind_name(),
                })
            }
        };
        Ok((Schema(elem), field))
    }

    /// A field's type, for naming well-known places of the table (a unit test checks them).
    fn field_type(self, key: &str) -> Schema {
        self.lookup_struct(key).map_or(self, |(ty, _)| ty)
    }

    fn slice_elem(self, key: &str) -> Schema {
        self.lookup_slice(key).map_or(self, |(ty, _)| ty)
    }
}

impl Schema {
    /// The pod as Go's encoding/json writes it after decoding it into these types (istiod
    /// decodes the merged pod into a `corev1.Pod` and encodes it again): `null` fields are
    /// left out, and so are `omitempty` fields holding their zero value (`0`, `false`, `""`,
    /// an empty list or map). Fields the types do not have are kept as they are: a newer API
    /// server's fields are the pod's, not revhook's to drop.
    pub fn as_go_encodes(self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match (&self.ty().kind, value) {
            (Kind::Pointer(elem), v) => Schema(*elem).as_go_encodes(v),
            (Kind::Struct(fields), Value::Object(map)) => {
                map.retain(|key, v| {
                    let Some(field) = fields
                        .iter()
                        .find(|f| f.name == key)
                        .or_else(|| fields.iter().find(|f| go_fold_equal(f.name, key)))
                    else {
                        return true;
                    };
                    Schema(field.ty).as_go_encodes(v);
                    !(v.is_null() || (field.omit_empty && Schema(field.ty).is_go_zero(v)))
                });
            }
            (Kind::Slice(elem) | Kind::Array(elem), Value::Array(items)) => {
                for item in items {
                    Schema(*elem).as_go_encodes(item);
                }
            }
            (Kind::Map(elem), Value::Object(map)) => {
                for v in map.values_mut() {
                    Schema(*elem).as_go_encodes(v);
                }
            }
            _ => {}
        }
    }

    /// Whether `v` is the zero value of this type as `omitempty` sees it (pointers, structs
    /// and unknown shapes never are).
    fn is_go_zero(self, v: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (&self.ty().kind, v) {
            (Kind::Leaf(_), Value::String(s)) => s.is_empty(),
            (Kind::Leaf(_), Value::Bool(b)) => !b,
            (Kind::Leaf(_), Value::Number(n)) => n.as_f64() == Some(0.0),
            (Kind::Slice(_) | Kind::Map(_), Value::Array(a)) => a.is_empty(),
            (Kind::Map(_), Value::Object(m)) => m.is_empty(),
            _ => false,
        }
    }
}

/// The table as JSON, in the shape `tests/smp-oracle schema` prints from Go's reflection, so
/// a test can hold the two side by side.
#[doc(hidden)]
pub fn describe() -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let types = TYPES.iter().map(|ty| {
        let mut out = Map::new();
        out.insert("name".into(), json!(ty.name));
        let (kind, elem) = match ty.kind {
            Kind::Struct(_) => ("struct", None),
            Kind::Pointer(e) => ("ptr", Some(e)),
            Kind::Slice(e) => ("slice", Some(e)),
            Kind::Array(e) => ("array", Some(e)),
            Kind::Map(e) => ("map", Some(e)),
            Kind::Leaf(kind) => (kind, None),
        };
        out.insert("kind".into(), json!(kind));
        if let Some(elem) = elem {
            out.insert("elem".into(), json!(elem));
        }
        if let Kind::Struct(fields) = ty.kind {
            if !fields.is_empty() {
                let fields = fields.iter().map(|f| {
                    json!({"name": f.name, "type": f.ty, "strategy": f.strategy, "mergeKey": f.merge_key, "omitEmpty": f.omit_empty})
                });
                out.insert("fields".into(), Value::Array(fields.collect()));
            }
        }
        Value::Object(out)
    });
    Value::Array(types.collect())
}

/// The case-insensitive match of Go's encoding/json (the forked copy in apimachinery) for an
/// ASCII field name: letters match in either case, other bytes exactly, and `k`/`s` also
/// match the Kelvin sign (U+212A) and the long s (U+017F), as Unicode folding has it.
fn go_fold_equal(field: &str, key: &str) -> bool {
    let mut key = key.chars();
    for f in field.chars() {
        let Some(k) = key.next() else {
            return false;
        };
        let same = f == k
            || (f.is_ascii_alphabetic() && k.is_ascii() && f.eq_ignore_ascii_case(&k))
            || (matches!(f, 'k' | 'K') && k == '\u{212a}')
            || (matches!(f, 's' | 'S') && k == '\u{17f}');
        if !same {
            return false;
        }
    }
    key.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_matches_go() {
        assert!(go_fold_equal("containers", "Containers"));
        assert!(go_fold_equal("containers", "CONTAINERS"));
        assert!(go_fold_equal("mountPath", "mountpath"));
        assert!(go_fold_equal("kind", "\u{212a}ind"));
        assert!(go_fold_equal("spec", "\u{17f}pec"));
        assert!(!go_fold_equal("spec", "spe"));
        assert!(!go_fold_equal("spec", "specs"));
        assert!(!go_fold_equal("host_network", "host-network"));
        assert!(!go_fold_equal("name", "n\u{e1}me"));
    }

    #[test]
    fn encoding_leaves_out_nulls_and_empty_omitempty_fields_only() {
        let mut pod = serde_json::json!({
            "metadata": {"name": "p", "generateName": "", "labels": {}, "uid": null},
            "spec": {
                "hostNetwork": false,
                "containers": [{
                    "name": "a", "image": "",
                    "ports": [{"containerPort": 0, "hostPort": 0}],
                    "readinessProbe": {"initialDelaySeconds": 0, "periodSeconds": 15},
                    "securityContext": {"runAsUser": 0, "privileged": false},
                    "env": [{"name": "E", "value": ""}],
                    "newerField": 0
                }]
            }
        });
        Schema::POD.as_go_encodes(&mut pod);
        assert_eq!(
            pod,
            serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{
                    "name": "a",
                    // containerPort has no omitempty; hostPort has.
                    "ports": [{"containerPort": 0}],
                    "readinessProbe": {"periodSeconds": 15},
                    // Pointers keep their zero: runAsUser 0 means root.
                    "securityContext": {"runAsUser": 0, "privileged": false},
                    "env": [{"name": "E"}],
                    "newerField": 0
                }]}
            })
        );
    }

    #[test]
    fn pod_lookups() {
        let (spec, _) = Schema::POD.lookup_struct("spec").unwrap();
        let (container, field) = spec.lookup_slice("containers").unwrap();
        assert_eq!((field.strategy, field.merge_key), ("merge", "name"));
        assert_eq!(container, Schema::container());
        let (_, env) = container.lookup_slice("env").unwrap();
        assert_eq!((env.strategy, env.merge_key), ("merge", "name"));
        let (_, ports) = container.lookup_slice("Ports").unwrap();
        assert_eq!(ports.merge_key, "containerPort");
        let (_, volumes) = spec.lookup_slice("volumes").unwrap();
        assert_eq!(volumes.strategy, "merge,retainKeys");
        assert_eq!(
            spec.lookup_struct("nope").err(),
            Some(LookupError::UnknownField { ty: "PodSpec" })
        );
        assert_eq!(
            spec.lookup_slice("hostname").err(),
            Some(LookupError::NotSlice { kind: "struct" })
        );
        let (labels, _) = Schema::POD
            .lookup_struct("metadata")
            .unwrap()
            .0
            .lookup_struct("labels")
            .unwrap();
        assert_eq!(
            labels.lookup_struct("a").err(),
            Some(LookupError::NotStruct { kind: "map" })
        );
    }
}
