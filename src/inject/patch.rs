//! RFC 6902 operations written straight into one JSON buffer.

use crate::core::json::{push_json_str, push_json_str_body, NEEDS_ESCAPE};

/// Appends a JSON Pointer segment inside a JSON string: RFC 6901 escapes (`~0`, `~1`) and
/// JSON escapes in one pass, without a temporary.
fn push_segment(buf: &mut String, segment: &str) {
    let mut start = 0;
    for (i, b) in segment.bytes().enumerate() {
        let replacement = match b {
            b'~' => "~0",
            b'/' => "~1",
            _ if NEEDS_ESCAPE[usize::from(b)] => {
                buf.push_str(&segment[start..i]);
                push_json_str_body(buf, &segment[i..i + 1]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.push_str(&segment[start..i]);
        buf.push_str(replacement);
        start = i + 1;
    }
    buf.push_str(&segment[start..]);
}

/// A JSON Patch being written: `[{"op":...},...]`.
#[derive(Debug)]
pub struct PatchWriter {
    buf: String,
    ops: usize,
}

impl Default for PatchWriter {
    fn default() -> Self {
        Self::with_capacity(4096)
    }
}

impl PatchWriter {
    pub fn with_capacity(cap: usize) -> Self {
        let mut buf = String::with_capacity(cap);
        buf.push('[');
        PatchWriter { buf, ops: 0 }
    }

    fn begin(&mut self, op: &str, path_parent: &str, key: Option<&str>) {
        if self.ops > 0 {
            self.buf.push(',');
        }
        self.ops += 1;
        self.buf.push_str("{\"op\":\"");
        self.buf.push_str(op);
        self.buf.push_str("\",\"path\":");
        self.buf.push('"');
        push_json_str_body(&mut self.buf, path_parent);
        if let Some(key) = key {
            self.buf.push('/');
            push_segment(&mut self.buf, key);
        }
        self.buf.push('"');
    }

    /// `add` with a JSON value that `write_value` writes straight into the patch (no
    /// intermediate string for values assembled from parts).
    pub fn add_with(&mut self, path: &str, write_value: impl FnOnce(&mut String)) {
        self.begin("add", path, None);
        self.buf.push_str(",\"value\":");
        write_value(&mut self.buf);
        self.buf.push('}');
    }

    /// `add` of a JSON array of already-serialized values.
    pub fn add_array<'v>(&mut self, path: &str, values: impl IntoIterator<Item = &'v str>) {
        self.add_with(path, |buf| {
            buf.push('[');
            for (i, v) in values.into_iter().enumerate() {
                if i > 0 {
                    buf.push(',');
                }
                buf.push_str(v);
            }
            buf.push(']');
        });
    }

    /// `add` with an already-serialized JSON value.
    pub fn add_raw(&mut self, path: &str, json: &str) {
        self.begin("add", path, None);
        self.buf.push_str(",\"value\":");
        self.buf.push_str(json);
        self.buf.push('}');
    }

    /// `add` of a string value under `parent/key` (key escaped here).
    pub fn add_key_str(&mut self, parent: &str, key: &str, value: &str) {
        self.begin("add", parent, Some(key));
        self.buf.push_str(",\"value\":");
        push_json_str(&mut self.buf, value);
        self.buf.push('}');
    }

    /// `add` of an already-serialized JSON value under `parent/key` (key escaped here).
    pub fn add_key_raw(&mut self, parent: &str, key: &str, json: &str) {
        self.begin("add", parent, Some(key));
        self.buf.push_str(",\"value\":");
        self.buf.push_str(json);
        self.buf.push('}');
    }

    pub fn replace_raw(&mut self, path: &str, json: &str) {
        self.begin("replace", path, None);
        self.buf.push_str(",\"value\":");
        self.buf.push_str(json);
        self.buf.push('}');
    }

    pub fn remove(&mut self, path: &str) {
        self.begin("remove", path, None);
        self.buf.push('}');
    }

    pub fn finish(mut self) -> String {
        self.buf.push(']');
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped_for_pointer_and_json_at_once() {
        let mut w = PatchWriter::default();
        w.add_key_str("/metadata/labels", "a/b~c\"d", "v");
        let ops: serde_json::Value = serde_json::from_str(&w.finish()).expect("json");
        assert_eq!(ops[0]["path"], "/metadata/labels/a~1b~0c\"d");
    }

    #[test]
    fn json_strings_match_serde() {
        for s in ["plain", "q\"uote", "back\\slash", "ctl\u{1}\n\t", "ünï"] {
            let mut buf = String::new();
            push_json_str(&mut buf, s);
            assert_eq!(serde_json::from_str::<String>(&buf).expect("valid json"), s);
        }
    }

    #[test]
    fn writes_a_patch_json_patch_applies() {
        let mut w = PatchWriter::default();
        w.add_key_str("/metadata/labels", "security.istio.io/tlsMode", "istio");
        w.add_raw("/spec/containers/-", r#"{"name":"istio-proxy"}"#);
        w.remove("/spec/volumes/0");
        w.add_array(
            "/spec/initContainers",
            ["{\"name\":\"a\"}", "{\"name\":\"b\"}"],
        );
        w.add_array("/spec/hostAliases", []);
        let patch: json_patch::Patch = serde_json::from_str(&w.finish()).expect("patch");
        let mut doc = serde_json::json!({"metadata":{"labels":{}},"spec":{"containers":[],"volumes":[{"name":"v"}]}});
        json_patch::patch(&mut doc, &patch).expect("applies");
        assert_eq!(
            doc["metadata"]["labels"]["security.istio.io/tlsMode"],
            "istio"
        );
        assert_eq!(doc["spec"]["containers"][0]["name"], "istio-proxy");
        assert_eq!(doc["spec"]["volumes"], serde_json::json!([]));
        assert_eq!(
            doc["spec"]["initContainers"],
            serde_json::json!([{"name": "a"}, {"name": "b"}])
        );
        assert_eq!(doc["spec"]["hostAliases"], serde_json::json!([]));
    }
}
