//! JSON as Go's `encoding/json.Marshal` writes it (compact, map keys sorted, `<>&` escaped
//! as `\u003c`...), and JSON parsing into Go's `interface{}` shapes.

use crate::value::Value;
use std::fmt::Write;

/// `json.Marshal(v)` of a template value. Struct-like values write the fields their
/// source held (the `omitempty` view), in declaration order.
pub fn to_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v);
    out
}

pub fn write_json(out: &mut String, v: &Value) {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => write_json_float(out, *f),
        Value::String(s) => write_json_string(out, s),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, item)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, k);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
        Value::Struct(s) => {
            out.push('{');
            let mut first = true;
            for f in s.fields.iter().filter(|f| f.present) {
                if !first {
                    out.push(',');
                }
                first = false;
                write_json_string(out, &f.key);
                out.push(':');
                write_json(out, &f.value);
            }
            out.push('}');
        }
    }
}

/// Go's float encoding: `%f`-like digits, exponent form below 1e-6 or from 1e21.
fn write_json_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        // Go fails to marshal these; null keeps the output valid JSON.
        out.push_str("null");
        return;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Go writes "1e+21" (two exponent digits) but cleans "1e-07" to "1e-7".
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        match e.strip_prefix('-') {
            Some(d) => {
                let _ = write!(out, "{m}e-{d}");
            }
            None => {
                let _ = write!(out, "{m}e+{e:0>2}");
            }
        }
    } else {
        // Rust's Display is the shortest round-trip digits without exponent, as Go's 'f', -1.
        let _ = write!(out, "{f}");
    }
}

pub fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{GoMap, MapElem};

    #[test]
    fn marshals_like_go() {
        let mut m = GoMap::new(MapElem::Any);
        m.entries.insert("b".into(), Value::Float(1.0));
        m.entries.insert("a".into(), Value::str("<x&y>"));
        m.entries.insert("c".into(), Value::Float(1e21));
        m.entries.insert("d".into(), Value::Float(1e-7));
        m.entries.insert("e".into(), Value::Float(1234567.0));
        assert_eq!(
            to_json(&Value::Map(m)),
            r#"{"a":"\u003cx\u0026y\u003e","b":1,"c":1e+21,"d":1e-7,"e":1234567}"#
        );
    }
}
