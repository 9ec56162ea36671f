//! `toYaml`: what `sigs.k8s.io/yaml.Marshal` gives. That marshals to JSON and re-reads the
//! JSON as YAML, so every mapping comes out with sorted keys and integral numbers come out
//! as integers. The YAML emitter itself is behind this one function so that it can be
//! swapped for another crate without touching the rest.

use crate::value::Value;

/// The YAML document for `v`, ending in a newline (`null\n` for nil).
pub fn to_yaml(v: &Value) -> Result<String, String> {
    serde_yaml::to_string(&to_yaml_value(v)).map_err(|e| e.to_string())
}

fn to_yaml_value(v: &Value) -> serde_yaml::Value {
    use serde_yaml::Value as Y;
    match v {
        Value::Nil => Y::Null,
        Value::Bool(b) => Y::Bool(*b),
        Value::Int(i) => Y::Number((*i).into()),
        Value::Float(f) => float_to_yaml(*f),
        Value::String(s) => Y::String(s.clone()),
        Value::List(items) => Y::Sequence(items.iter().map(to_yaml_value).collect()),
        Value::Map(m) => Y::Mapping(
            m.entries
                .iter()
                .map(|(k, v)| (Y::String(k.clone()), to_yaml_value(v)))
                .collect(),
        ),
        Value::Struct(s) => {
            let mut fields: Vec<(&str, &Value)> = s
                .fields
                .iter()
                .filter(|f| f.present)
                .map(|f| (&*f.key, &f.value))
                .collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            Y::Mapping(
                fields
                    .into_iter()
                    .map(|(k, v)| (Y::String(k.to_string()), to_yaml_value(v)))
                    .collect(),
            )
        }
    }
}

fn float_to_yaml(f: f64) -> serde_yaml::Value {
    // JSON writes 2.0 as `2`, which YAML reads back as an integer.
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        serde_yaml::Value::Number((f as i64).into())
    } else {
        serde_yaml::Value::Number(f.into())
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
