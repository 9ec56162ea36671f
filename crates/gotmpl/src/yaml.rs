//! `toYaml`: what `sigs.k8s.io/yaml.Marshal` gives. That marshals to JSON and re-reads the
//! JSON as YAML, so every mapping comes out with sorted keys and integral numbers come out
//! as integers. The YAML emitter itself is behind this one function so that it can be
//! swapped for another crate without touching the rest.

use crate::value::Value;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// The YAML document for `v`, ending in a newline (`null\n` for nil).
pub fn to_yaml(v: &Value) -> Result<String, String> {
    serde_yaml::to_string(&AsYaml(v)).map_err(|e| e.to_string())
}

/// Serializes a value straight into the emitter (no intermediate YAML tree), with what
/// the JSON round trip of `sigs.k8s.io/yaml` does: mapping keys sorted, integral numbers
/// as integers, struct fields as their source JSON held them.
struct AsYaml<'v>(&'v Value);

impl Serialize for AsYaml<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            // JSON writes 2.0 as `2`, which YAML reads back as an integer.
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => s.serialize_i64(*f as i64),
            Value::Float(f) => s.serialize_f64(*f),
            Value::String(x) => s.serialize_str(x),
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(&AsYaml(i))?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.entries.len()))?;
                for (k, v) in &m.entries {
                    map.serialize_entry(k, &AsYaml(v))?;
                }
                map.end()
            }
            Value::Struct(st) => {
                let mut fields: Vec<(&str, &Value)> = st
                    .fields
                    .iter()
                    .filter(|f| f.present)
                    .map(|f| (f.key(), &*f.value))
                    .collect();
                fields.sort_by(|a, b| a.0.cmp(b.0));
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, &AsYaml(v))?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{GoMap, MapElem};

    #[test]
    fn sorted_keys_and_integral_floats() {
        let mut m = GoMap::new(MapElem::Any);
        m.entries.insert("b".into(), Value::Float(2.0));
        m.entries
            .insert("a".into(), Value::List(vec![Value::str("x")]));
        m.entries.insert("c".into(), Value::Float(0.5));
        assert_eq!(to_yaml(&Value::Map(m)).unwrap(), "a:\n- x\nb: 2\nc: 0.5\n");
        assert_eq!(to_yaml(&Value::Nil).unwrap(), "null\n");
    }
}
