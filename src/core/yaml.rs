//! YAML text to JSON values, in one place, so that every reader of YAML (injector and mesh
//! ConfigMaps, template output, annotations) parses it the same way: as istiod does, with
//! `sigs.k8s.io/yaml` (go-yaml v2, YAML 1.1 scalars), which the `goyaml` crate reproduces.

/// YAML that could not be read, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(String);

/// One YAML document as a JSON value (an empty document is `null`).
pub fn parse(text: &str) -> Result<serde_json::Value, YamlError> {
    goyaml::from_str(text).map_err(|e| YamlError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_become_json() {
        assert_eq!(
            parse("a: 1\nb: [x, 'y']\n").expect("yaml"),
            json!({"a": 1, "b": ["x", "y"]})
        );
        assert_eq!(parse("").expect("empty"), serde_json::Value::Null);
        assert!(parse("a: [").is_err());
    }
}
