//! Go's view of JSON values: their dynamic type, `==` on `interface{}` (numbers as `float64`;
//! maps and slices cannot be compared and make Go panic), and a hash index that answers
//! "where is the first item equal to this one" as Go's linear scans do.

use std::collections::HashMap;

use serde_json::{Number, Value};

/// The Go type encoding/json decodes a JSON value to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GoType {
    Nil,
    Bool,
    Float64,
    String,
    Slice,
    Map,
}

impl GoType {
    pub(super) fn of(v: &Value) -> GoType {
        match v {
            Value::Null => GoType::Nil,
            Value::Bool(_) => GoType::Bool,
            Value::Number(_) => GoType::Float64,
            Value::String(_) => GoType::String,
            Value::Array(_) => GoType::Slice,
            Value::Object(_) => GoType::Map,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            GoType::Nil => "null",
            GoType::Bool => "a boolean",
            GoType::Float64 => "a number",
            GoType::String => "a string",
            GoType::Slice => "a list",
            GoType::Map => "an object",
        }
    }
}

/// A value Go can compare and hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Scalar {
    Nil,
    Bool(bool),
    /// The `float64`'s bits, with -0 as 0 (Go's `==` has them equal).
    Float(u64),
    String(String),
}

/// A value as Go's `==` sees it: comparable, or a map or slice (comparing two of the same
/// kind panics; comparing to anything else is false).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum GoKey {
    Scalar(Scalar),
    Map,
    Slice,
}

impl GoKey {
    pub(super) fn of(v: &Value) -> GoKey {
        match v {
            Value::Null => GoKey::Scalar(Scalar::Nil),
            Value::Bool(b) => GoKey::Scalar(Scalar::Bool(*b)),
            Value::Number(n) => GoKey::Scalar(Scalar::Float(float_bits(n))),
            Value::String(s) => GoKey::Scalar(Scalar::String(s.clone())),
            Value::Array(_) => GoKey::Slice,
            Value::Object(_) => GoKey::Map,
        }
    }
}

fn float_bits(n: &Number) -> u64 {
    // Without serde_json's arbitrary_precision every number has an f64 view.
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f == 0.0 {
        0
    } else {
        f.to_bits()
    }
}

/// Comparing two maps or two slices with `==` panics in Go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Uncomparable;

/// For a list of keys: the first position of each comparable key, and whether a map or a
/// slice is among them, so a lookup answers what Go's front-to-back scan with `==` would.
#[derive(Debug, Default)]
pub(super) struct FirstIndex {
    first: HashMap<Scalar, usize>,
    has_map: bool,
    has_slice: bool,
    len: usize,
}

impl FirstIndex {
    pub(super) fn new<'k>(keys: impl IntoIterator<Item = &'k GoKey>) -> FirstIndex {
        let mut index = FirstIndex::default();
        for key in keys {
            index.push(key);
        }
        index
    }

    /// Adds the key of the next position.
    pub(super) fn push(&mut self, key: &GoKey) {
        match key {
            GoKey::Scalar(s) => {
                self.first.entry(s.clone()).or_insert(self.len);
            }
            GoKey::Map => self.has_map = true,
            GoKey::Slice => self.has_slice = true,
        }
        self.len += 1;
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// How many different comparable keys there are.
    pub(super) fn distinct(&self) -> usize {
        self.first.len()
    }

    pub(super) fn contains(&self, key: &GoKey) -> bool {
        matches!(self.find(key), Ok(Some(_)))
    }

    /// The first position whose key `==` `key`. A map (slice) key can equal nothing, and the
    /// scan panics on reaching any map (slice) key, which it does unless there is none.
    pub(super) fn find(&self, key: &GoKey) -> Result<Option<usize>, Uncomparable> {
        match key {
            GoKey::Scalar(s) => Ok(self.first.get(s).copied()),
            GoKey::Map if self.has_map => Err(Uncomparable),
            GoKey::Slice if self.has_slice => Err(Uncomparable),
            GoKey::Map | GoKey::Slice => Ok(None),
        }
    }
}

/// Deep equality with Go's numbers (as `float64`); for telling whether two results agree.
pub(super) fn go_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => float_bits(x) == float_bits(y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| go_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| go_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_as_float64() {
        assert_eq!(GoKey::of(&json!(80)), GoKey::of(&json!(80.0)));
        assert_eq!(GoKey::of(&json!(0)), GoKey::of(&json!(-0.0)));
        // 2^53 + 1 has no float64 of its own: Go decodes both to 2^53.
        let big: Value = serde_json::from_str("9007199254740993").unwrap();
        assert_eq!(GoKey::of(&big), GoKey::of(&json!(9007199254740992u64)));
        assert_ne!(GoKey::of(&json!("80")), GoKey::of(&json!(80)));
        assert!(go_equal(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!go_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }

    #[test]
    fn first_index_is_a_front_to_back_scan() {
        let keys = [json!("a"), json!({}), json!("b"), json!("a")].map(|v| GoKey::of(&v));
        let index = FirstIndex::new(&keys);
        assert_eq!(index.find(&GoKey::of(&json!("a"))), Ok(Some(0)));
        assert_eq!(index.find(&GoKey::of(&json!("b"))), Ok(Some(2)));
        assert_eq!(index.find(&GoKey::of(&json!("c"))), Ok(None));
        assert_eq!(index.find(&GoKey::Map), Err(Uncomparable));
        assert_eq!(index.find(&GoKey::Slice), Ok(None));
        assert_eq!(index.len(), 4);
    }
}
