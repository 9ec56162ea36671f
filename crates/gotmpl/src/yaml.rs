//! `toYaml`: what `sigs.k8s.io/yaml.Marshal` gives. That marshals the value to JSON and
//! writes the JSON with go-yaml v2, which `goyaml` does byte for byte: mapping keys in
//! go-yaml's order, numbers as `encoding/json` prints them, strings quoted and folded as
//! go-yaml does.

use crate::value::Value;
use serde_json::{Map, Number, Value as J};

/// The YAML document for `v`, ending in a newline (`null\n` for nil), or why Go's
/// `Marshal` fails on it (a NaN or infinite float, which JSON cannot hold; what go-yaml
/// cannot read back).
pub fn to_yaml(v: &Value) -> Result<String, String> {
    goyaml::try_to_string(&as_json(v)?).map_err(|e| e.to_string())
}

/// The JSON value `encoding/json` makes of a template value: struct-like values hold the
/// fields their source held (the `omitempty` view).
fn as_json(v: &Value) -> Result<J, String> {
    Ok(match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => {
            J::Number(Number::from_f64(*f).ok_or_else(|| format!("json: unsupported value: {f}"))?)
        }
        Value::String(s) => J::String(s.clone()),
        Value::List(items) => J::Array(items.iter().map(as_json).collect::<Result<_, _>>()?),
        Value::Map(m) => J::Object(
            m.entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), as_json(v)?)))
                .collect::<Result<Map<_, _>, String>>()?,
        ),
        Value::Struct(st) => J::Object(
            st.fields
                .iter()
                .filter(|f| f.present)
                .map(|f| Ok((f.key().to_owned(), as_json(&f.value)?)))
                .collect::<Result<Map<_, _>, String>>()?,
        ),
    })
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
        m.entries.insert("d".into(), Value::str("yes"));
        assert_eq!(
            to_yaml(&Value::Map(m)).unwrap(),
            "a:\n- x\nb: 2\nc: 0.5\nd: \"yes\"\n"
        );
        assert_eq!(to_yaml(&Value::Nil).unwrap(), "null\n");
        assert!(to_yaml(&Value::Float(f64::NAN)).is_err());
    }
}
