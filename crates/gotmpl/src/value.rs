//! The values a template sees, modelled on what Go's `reflect` sees in istiod: Go maps
//! (sorted iteration, exact-key lookup), struct-like objects (Go field names resolved to
//! lower-camel JSON keys, absent fields are zero values), slices and scalars.

use std::collections::BTreeMap;
use std::sync::Arc;

/// One template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Go's nil / "no value" (a missing map key, a nil pointer or interface).
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<Value>),
    Map(GoMap),
    Struct(GoStruct),
}

/// The element type of a Go map, which decides what `index` returns for a missing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MapElem {
    /// `map[string]any`: a missing key is nil.
    #[default]
    Any,
    /// `map[string]string`: a missing key is `""`.
    String,
}

/// A Go `map[string]T`: iteration (range, printing, JSON) is in sorted key order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GoMap {
    pub entries: BTreeMap<String, Value>,
    pub elem: MapElem,
}

impl GoMap {
    pub fn new(elem: MapElem) -> Self {
        GoMap {
            entries: BTreeMap::new(),
            elem,
        }
    }

    /// What Go's `index` gives for a key that is not there.
    pub fn zero_elem(&self) -> Value {
        match self.elem {
            MapElem::Any => Value::Nil,
            MapElem::String => Value::String(String::new()),
        }
    }
}

/// A field's value, owned by the struct or shared with other renders: the parts of a
/// template's data that do not change from one render to the next (a revision's values and
/// mesh config) are built once and shared, so a render does not copy them.
#[derive(Debug, Clone)]
pub enum FieldValue {
    Own(Value),
    Shared(Arc<Value>),
}

impl std::ops::Deref for FieldValue {
    type Target = Value;

    fn deref(&self) -> &Value {
        match self {
            FieldValue::Own(v) => v,
            FieldValue::Shared(v) => v,
        }
    }
}

impl PartialEq for FieldValue {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl FieldValue {
    /// The value, copied out of a shared one only when it is shared.
    pub fn into_value(self) -> Value {
        match self {
            FieldValue::Own(v) => v,
            FieldValue::Shared(v) => Arc::unwrap_or_clone(v),
        }
    }
}

/// One field of a struct-like object.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The JSON key (lower-camel of the Go name).
    pub(crate) key: Box<str>,
    /// `key_hash(key)`: lookups compare this first (they run hundreds of times a render).
    pub(crate) hash: u32,
    pub value: FieldValue,
    /// Whether the source JSON held the key: absent fields are zero values for the template
    /// but are left out of `structToJSON`, as Go's `omitempty` would leave them.
    pub present: bool,
}

/// A Go struct built from a JSON object. Fields are kept in declaration order (declared
/// fields of the schema first, then any other keys of the object in sorted order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GoStruct {
    pub type_name: Arc<str>,
    pub fields: Vec<Field>,
    /// A field it does not have is an error (`can't evaluate field X`), as in Go, rather than
    /// nil. Set for structs whose every field is declared (see `Schema::strict_structure`).
    pub strict: bool,
}

impl Field {
    pub fn new(key: &str, value: Value, present: bool) -> Self {
        Field {
            key: key.into(),
            hash: key_hash(key),
            value: FieldValue::Own(value),
            present,
        }
    }

    /// A field whose value is shared with other structs (built once, read by many renders).
    pub fn shared(key: &str, value: Arc<Value>, present: bool) -> Self {
        Field {
            key: key.into(),
            hash: key_hash(key),
            value: FieldValue::Shared(value),
            present,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// FNV-1a: a cheap hash of a field key, worked out once per key at build and parse time.
pub(crate) fn key_hash(key: &str) -> u32 {
    key.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

impl GoStruct {
    /// The field with this JSON key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.get_hashed(key, key_hash(key))
    }

    pub(crate) fn get_hashed(&self, key: &str, hash: u32) -> Option<&Value> {
        self.fields
            .iter()
            .find(|f| f.hash == hash && &*f.key == key)
            .map(|f| &*f.value)
    }
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// Go's truth: false, 0, nil, and empty strings, lists and maps are false; structs true.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.entries.is_empty(),
            Value::Struct(_) => true,
        }
    }

    /// The Go type name used in error messages.
    pub fn type_name(&self) -> &str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(m) => match m.elem {
                MapElem::Any => "map[string]interface {}",
                MapElem::String => "map[string]string",
            },
            Value::Struct(s) => &s.type_name,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

/// The JSON key Go's encoders use for a Go field name: the leading run of capitals is
/// lowered (`UID` → `uid`, `APIVersion` → `apiVersion`, `Spec` → `spec`), the rest is kept
/// (`HostIP` → `hostIP`).
pub fn lower_camel(go_name: &str) -> String {
    let chars: Vec<char> = go_name.chars().collect();
    let run = chars.iter().take_while(|c| c.is_uppercase()).count();
    let lower_upto = if run == chars.len() || run <= 1 {
        run
    } else {
        // "APIVersion": the last capital of the run starts the next word.
        run - 1
    };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < lower_upto {
                c.to_lowercase().next().unwrap_or(*c)
            } else {
                *c
            }
        })
        .collect()
}

/// How to turn a JSON value into the Go value istiod would hold.
#[derive(Debug, Clone)]
pub enum Schema {
    /// `interface{}` filled by `encoding/json`: objects become `map[string]any`, every
    /// number a float64.
    Any,
    String,
    /// A protobuf enum, as its name; absent (protobuf JSON leaves out the zero value) is
    /// the name of value 0, e.g. `REDIRECT` for `InterceptionMode`.
    Enum(Arc<str>),
    Int,
    Float,
    Bool,
    /// A `[]T`; absent is an empty (nil) slice.
    List(Box<Schema>),
    /// A `map[string]T`; absent is an empty (nil) map.
    Map(Box<Schema>),
    /// A struct value (absent: every declared field zero).
    Struct(Arc<StructSchema>),
    /// A pointer to T: absent is nil.
    Ptr(Box<Schema>),
    /// A struct whose fields are not declared: objects (also nested) become structs,
    /// integral numbers ints; absent is nil. For proto messages and k8s objects whose
    /// fields the templates only read.
    Object,
}

/// The declared fields of a struct, in Go declaration order.
#[derive(Debug)]
pub struct StructSchema {
    pub name: Arc<str>,
    pub fields: Vec<(String, Schema)>,
    /// Every field is declared: others in the JSON are dropped (as `encoding/json` drops
    /// unknown keys) and naming one in a template is an error.
    pub strict: bool,
}

impl Schema {
    /// A struct schema from `(GoName, schema)` pairs; JSON keys are lower-camel of the names.
    /// Fields not declared are still read from the JSON (as [`Schema::Object`]), and one
    /// that is absent is nil: for large types (Kubernetes, protobuf) declared in part.
    pub fn structure(name: &str, fields: Vec<(&str, Schema)>) -> Schema {
        Self::struct_schema(name, fields, false)
    }

    /// A struct whose fields are all declared: a template naming another fails as in Go.
    pub fn strict_structure(name: &str, fields: Vec<(&str, Schema)>) -> Schema {
        Self::struct_schema(name, fields, true)
    }

    fn struct_schema(name: &str, fields: Vec<(&str, Schema)>, strict: bool) -> Schema {
        Schema::Struct(Arc::new(StructSchema {
            name: Arc::from(name),
            fields: fields
                .into_iter()
                .map(|(n, s)| (lower_camel(n), s))
                .collect(),
            strict,
        }))
    }

    pub fn list(of: Schema) -> Schema {
        Schema::List(Box::new(of))
    }

    pub fn map(of: Schema) -> Schema {
        Schema::Map(Box::new(of))
    }

    pub fn ptr(to: Schema) -> Schema {
        Schema::Ptr(Box::new(to))
    }

    /// The value Go holds when the JSON has no such key.
    pub fn zero(&self) -> Value {
        match self {
            Schema::Any | Schema::Ptr(_) | Schema::Object => Value::Nil,
            Schema::String => Value::String(String::new()),
            Schema::Enum(zero) => Value::String(zero.to_string()),
            Schema::Int => Value::Int(0),
            Schema::Float => Value::Float(0.0),
            Schema::Bool => Value::Bool(false),
            Schema::List(_) => Value::List(Vec::new()),
            Schema::Map(of) => Value::Map(GoMap::new(elem_of(of))),
            Schema::Struct(s) => Value::Struct(GoStruct {
                type_name: s.name.clone(),
                fields: s
                    .fields
                    .iter()
                    .map(|(k, f)| Field::new(k.as_str(), f.zero(), false))
                    .collect(),
                strict: s.strict,
            }),
        }
    }
}

fn elem_of(of: &Schema) -> MapElem {
    match of {
        Schema::String => MapElem::String,
        _ => MapElem::Any,
    }
}

/// Builds the Go value for `json` as `schema` describes it. A JSON value of another shape
/// than the schema expects is converted as `Any` would, rather than rejected: the template
/// then sees what is there.
pub fn from_json(json: &serde_json::Value, schema: &Schema) -> Value {
    use serde_json::Value as J;
    match (schema, json) {
        (_, J::Null) => schema.zero(),
        (Schema::Ptr(inner), _) => from_json(json, inner),
        (Schema::String | Schema::Enum(_), J::String(s)) => Value::String(s.clone()),
        (Schema::Int, J::Number(n)) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0))),
        (Schema::Float, J::Number(n)) => Value::Float(n.as_f64().unwrap_or(0.0)),
        (Schema::Bool, J::Bool(b)) => Value::Bool(*b),
        (Schema::List(of), J::Array(items)) => {
            Value::List(items.iter().map(|i| from_json(i, of)).collect())
        }
        (Schema::Map(of), J::Object(obj)) => Value::Map(GoMap {
            entries: obj
                .iter()
                .map(|(k, v)| (k.clone(), from_json(v, of)))
                .collect(),
            elem: elem_of(of),
        }),
        (Schema::Struct(s), J::Object(obj)) => Value::Struct(struct_from_json(s, obj)),
        (Schema::Object, J::Object(obj)) => Value::Struct(object_from_json(obj)),
        (Schema::Object, J::Array(items)) => Value::List(
            items
                .iter()
                .map(|i| from_json(i, &Schema::Object))
                .collect(),
        ),
        (Schema::Object, J::Number(n)) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        _ => any_from_json(json),
    }
}

fn struct_from_json(
    s: &StructSchema,
    obj: &serde_json::Map<String, serde_json::Value>,
) -> GoStruct {
    let mut fields: Vec<Field> = s
        .fields
        .iter()
        .map(|(key, schema)| match obj.get(key) {
            Some(v) => Field::new(key.as_str(), from_json(v, schema), true),
            None => Field::new(key.as_str(), schema.zero(), false),
        })
        .collect();
    if !s.strict {
        for (k, v) in obj {
            if !s.fields.iter().any(|(key, _)| key == k) {
                fields.push(Field::new(k.as_str(), from_json(v, &Schema::Object), true));
            }
        }
    }
    GoStruct {
        type_name: s.name.clone(),
        fields,
        strict: s.strict,
    }
}

fn object_from_json(obj: &serde_json::Map<String, serde_json::Value>) -> GoStruct {
    GoStruct {
        type_name: Arc::from("struct"),
        fields: obj
            .iter()
            .map(|(k, v)| Field::new(k.as_str(), from_json(v, &Schema::Object), true))
            .collect(),
        strict: false,
    }
}

/// `encoding/json` into `interface{}`: maps, float64 numbers.
pub fn any_from_json(json: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Value::String(s.clone()),
        J::Array(a) => Value::List(a.iter().map(any_from_json).collect()),
        J::Object(o) => Value::Map(GoMap {
            entries: o
                .iter()
                .map(|(k, v)| (k.clone(), any_from_json(v)))
                .collect(),
            elem: MapElem::Any,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lower_camel_follows_go_json_tags() {
        assert_eq!(lower_camel("Spec"), "spec");
        assert_eq!(lower_camel("InitContainers"), "initContainers");
        assert_eq!(lower_camel("UID"), "uid");
        assert_eq!(lower_camel("IP"), "ip");
        assert_eq!(lower_camel("APIVersion"), "apiVersion");
        assert_eq!(lower_camel("URLPath"), "urlPath");
        assert_eq!(lower_camel("HostIP"), "hostIP");
        assert_eq!(lower_camel("TlsSettings"), "tlsSettings");
    }

    #[test]
    fn absent_struct_fields_are_zero_values() {
        let s = Schema::structure(
            "T",
            vec![
                ("Name", Schema::String),
                ("Port", Schema::Int),
                ("Labels", Schema::map(Schema::String)),
                ("Tracing", Schema::ptr(Schema::Object)),
            ],
        );
        let v = from_json(&json!({"port": 8, "extra": {"a": 1}}), &s);
        let Value::Struct(st) = v else {
            panic!("not a struct")
        };
        assert_eq!(st.get("name"), Some(&Value::str("")));
        assert_eq!(st.get("port"), Some(&Value::Int(8)));
        assert_eq!(
            st.get("labels"),
            Some(&Value::Map(GoMap::new(MapElem::String)))
        );
        assert_eq!(st.get("tracing"), Some(&Value::Nil));
        assert!(matches!(st.get("extra"), Some(Value::Struct(_))));
    }

    #[test]
    fn shared_fields_read_like_owned_ones() {
        let values = Arc::new(any_from_json(&json!({"global": {"hub": "h"}})));
        let st = GoStruct {
            type_name: Arc::from("T"),
            fields: vec![
                Field::shared("values", Arc::clone(&values), true),
                Field::new("revision", Value::str("r"), true),
            ],
            strict: true,
        };
        assert_eq!(st.get("values"), Some(&*values));
        assert_eq!(st.get("revision"), Some(&Value::str("r")));
        assert_eq!(
            Field::shared("v", Arc::clone(&values), true),
            Field::new("v", (*values).clone(), true)
        );
        assert_eq!(Arc::strong_count(&values), 2);
    }

    #[test]
    fn any_numbers_are_floats() {
        assert_eq!(any_from_json(&json!(3)), Value::Float(3.0));
    }
}
