//! The JSON Patch (RFC 6902) from the pod as admitted to the injected pod.
//!
//! Objects are compared key by key. Lists keep their common head and tail: what changed in
//! between is patched element by element where both have one and added or removed past
//! that, so an injected container is one `add`, a rewritten probe a few `replace`s inside its
//! container, and the injected init containers put in front of the pod's own are two `add`s,
//! not a rewrite of every element behind them. Linear in the size of the two pods.

use std::fmt::Write as _;

use serde_json::Value;

use crate::core::json::push_json_str;

/// The patch turning `from` into `to`, as a JSON array.
pub fn diff(from: &Value, to: &Value) -> String {
    let mut w = Writer {
        out: String::with_capacity(4096),
        first: true,
        path: String::new(),
    };
    w.out.push('[');
    w.value(from, to);
    w.out.push(']');
    w.out
}

struct Writer {
    out: String,
    first: bool,
    /// The JSON Pointer of the value being compared.
    path: String,
}

impl Writer {
    fn value(&mut self, from: &Value, to: &Value) {
        match (from, to) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, va) in a {
                    match b.get(k) {
                        Some(vb) => {
                            if va != vb {
                                self.at_key(k, |w| w.value(va, vb));
                            }
                        }
                        None => self.at_key(k, |w| w.op("remove", None)),
                    }
                }
                for (k, vb) in b {
                    if !a.contains_key(k) {
                        self.at_key(k, |w| w.op("add", Some(vb)));
                    }
                }
            }
            (Value::Array(a), Value::Array(b)) => self.list(a, b),
            _ if from == to => {}
            _ => self.op("replace", Some(to)),
        }
    }

    fn list(&mut self, a: &[Value], b: &[Value]) {
        let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let max_tail = a.len().min(b.len()) - head;
        let tail = a
            .iter()
            .rev()
            .zip(b.iter().rev())
            .take(max_tail)
            .take_while(|(x, y)| x == y)
            .count();
        let old_mid = &a[head..a.len() - tail];
        let new_mid = &b[head..b.len() - tail];
        let both = old_mid.len().min(new_mid.len());
        for i in 0..both {
            self.at_index(head + i, |w| w.value(&old_mid[i], &new_mid[i]));
        }
        for (i, v) in new_mid.iter().enumerate().skip(both) {
            self.at_index(head + i, |w| w.op("add", Some(v)));
        }
        for _ in both..old_mid.len() {
            self.at_index(head + both, |w| w.op("remove", None));
        }
    }

    fn at_key(&mut self, key: &str, f: impl FnOnce(&mut Self)) {
        let len = self.path.len();
        self.path.push('/');
        for c in key.chars() {
            match c {
                '~' => self.path.push_str("~0"),
                '/' => self.path.push_str("~1"),
                c => self.path.push(c),
            }
        }
        f(self);
        self.path.truncate(len);
    }

    fn at_index(&mut self, index: usize, f: impl FnOnce(&mut Self)) {
        let len = self.path.len();
        let _ = write!(self.path, "/{index}");
        f(self);
        self.path.truncate(len);
    }

    fn op(&mut self, op: &str, value: Option<&Value>) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push_str("{\"op\":\"");
        self.out.push_str(op);
        self.out.push_str("\",\"path\":");
        push_json_str(&mut self.out, &self.path);
        if let Some(v) = value {
            self.out.push_str(",\"value\":");
            // Writing a Value into a String cannot fail.
            let _ = write!(self.out, "{v}");
        }
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(from: &Value, patch: &str) -> Value {
        let patch: json_patch::Patch = serde_json::from_str(patch).expect("patch");
        let mut doc = from.clone();
        json_patch::patch(&mut doc, &patch).expect("applies");
        doc
    }

    fn check(from: Value, to: Value) -> String {
        let p = diff(&from, &to);
        assert_eq!(apply(&from, &p), to, "{p}");
        p
    }

    #[test]
    fn equal_documents_give_an_empty_patch() {
        assert_eq!(
            check(json!({"a": [1, {"b": 2}]}), json!({"a": [1, {"b": 2}]})),
            "[]"
        );
    }

    #[test]
    fn keys_are_added_removed_replaced_and_escaped() {
        let p = check(
            json!({"metadata": {"annotations": {"a/b": "1", "gone": "x"}}, "n": 1}),
            json!({"metadata": {"annotations": {"a/b": "2", "new~": "y"}}, "n": "1"}),
        );
        assert!(p.contains("/metadata/annotations/a~1b"), "{p}");
        assert!(p.contains("/metadata/annotations/new~0"), "{p}");
    }

    #[test]
    fn elements_inserted_in_front_are_adds_not_rewrites() {
        let p = check(
            json!({"initContainers": [{"name": "a"}, {"name": "b"}]}),
            json!({"initContainers": [{"name": "istio-init"}, {"name": "istio-proxy"}, {"name": "a"}, {"name": "b"}]}),
        );
        assert_eq!(p.matches("\"op\"").count(), 2, "{p}");
        assert!(
            p.contains(r#""op":"add","path":"/initContainers/0""#),
            "{p}"
        );
    }

    #[test]
    fn a_changed_element_is_patched_inside() {
        let p = check(
            json!({"containers": [{"name": "app", "image": "x", "readinessProbe": {"httpGet": {"port": 8080}}}]}),
            json!({"containers": [{"name": "app", "image": "x", "readinessProbe": {"httpGet": {"port": 15020}}}, {"name": "istio-proxy"}]}),
        );
        assert!(
            p.contains("/containers/0/readinessProbe/httpGet/port"),
            "{p}"
        );
        assert!(!p.contains(r#""path":"/containers/0","#), "{p}");
    }

    #[test]
    fn removals_and_shrinking_lists() {
        check(json!([1, 2, 3, 4, 5]), json!([1, 5]));
        check(json!([1, 2]), json!([3]));
        check(json!({"a": [1, 2, 3]}), json!({"a": []}));
        check(json!(null), json!({"a": 1}));
    }
}
