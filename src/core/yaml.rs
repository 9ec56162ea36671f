//! YAML text to JSON values and back, in one place, so that every reader of Kubernetes and
//! Istio YAML (injector and mesh ConfigMaps, template output, the `proxy.istio.io/config`
//! annotation, manifests) and every writer of YAML for people does it the same way: the way
//! Go's `sigs.k8s.io/yaml` does (go-yaml v2, YAML 1.1 scalars), through the `goyaml` crate.
//! istiod and kubectl read these texts with Go, so `on`, `0777` or `1e3` must mean here what
//! they mean there.
//!
//! Hostile input stays cheap: the reader is linear in the text (it never rescans open flow
//! collections) and refuses nesting deeper than [`goyaml::MAX_DEPTH`] levels
//! ([`YamlErrorKind::TooDeep`]) before building anything that deep.

pub use goyaml::ErrorKind as YamlErrorKind;

/// YAML that could not be read or written, with the line and column where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(transparent)]
pub struct YamlError(#[from] goyaml::Error);

impl YamlError {
    /// Why the text was refused (Go refuses it too, or it nests too deep, ...).
    pub fn kind(&self) -> YamlErrorKind {
        self.0.kind
    }

    /// The 1-based line where the text went wrong.
    pub fn line(&self) -> usize {
        self.0.line
    }
}

/// The first document of a text as a JSON value, as `yaml.YAMLToJSON` gives it (an empty
/// text is `null`; the rest of the text is not read, as go-yaml's `Unmarshal` does not).
pub fn parse(text: &str) -> Result<serde_json::Value, YamlError> {
    Ok(goyaml::from_str(text)?)
}

/// The documents of a `---` stream (or one JSON value), as `kubectl apply -f` takes them:
/// empty documents (nothing, or only comments, between two `---`) are left out.
pub fn documents(text: &str) -> Result<Vec<serde_json::Value>, YamlError> {
    let mut docs = goyaml::documents(text)?;
    docs.retain(|d| !d.is_null());
    Ok(docs)
}

/// The text `yaml.Marshal` writes for a value (keys sorted, strings quoted where YAML 1.1
/// would read them as something else), ending with a newline.
pub fn to_string(value: &serde_json::Value) -> Result<String, YamlError> {
    Ok(goyaml::try_to_string(value)?)
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
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").expect_err("unclosed");
        assert_eq!(err.kind(), YamlErrorKind::Syntax);
        assert_eq!(err.line(), 3, "{err}");
    }

    /// What Go reads: YAML 1.1 booleans and octal, `1e3` an integral number (JSON `1000`),
    /// an integer too large for int64 a float, timestamps strings.
    #[test]
    fn scalars_are_read_as_go_reads_them() {
        let v = parse(
            "a: on\nb: 'on'\nc: 0777\nd: 1e3\ne: 2001-12-14\nf: 99999999999999999999\ng: y\n",
        )
        .expect("yaml");
        assert_eq!(
            v,
            json!({"a": true, "b": "on", "c": 511, "d": 1000, "e": "2001-12-14",
                   "f": 1e20, "g": true})
        );
    }

    #[test]
    fn streams_skip_empty_documents_and_comments() {
        let text = "# header\n---\na: 1\n---\n# only a comment\n---\n---\nb: 2\n...\n";
        assert_eq!(
            documents(text).expect("stream"),
            vec![json!({"a": 1}), json!({"b": 2})]
        );
        assert!(documents("").expect("empty").is_empty());
        assert_eq!(
            documents("{\"a\": [1]}").expect("json"),
            vec![json!({"a": [1]})]
        );
    }

    #[test]
    fn written_as_go_writes_it() {
        let v = json!({"b": "true", "a": "15020", "c": "x\ny", "d": [1, "on"], "e": {}});
        assert_eq!(
            to_string(&v).expect("yaml"),
            "a: \"15020\"\nb: \"true\"\nc: |-\n  x\n  y\nd:\n- 1\n- \"on\"\ne: {}\n"
        );
    }

    /// A `proxy.istio.io/config` annotation can be 256 KiB of anything a pod's author writes:
    /// nested flow collections are refused at the depth limit, after reading as far as that
    /// depth, instead of being scanned again at every token (libyaml's quadratic step).
    #[test]
    fn hostile_nesting_is_refused_as_too_deep() {
        for unit in ["{a: ", "[", "- ", "{", "[a, "] {
            let text = unit.repeat(128 * 1024 / unit.len());
            let err = parse(&text).expect_err(unit);
            assert_eq!(err.kind(), YamlErrorKind::TooDeep, "{unit:?}: {err}");
        }
    }
}
