//! Normalizing only representation, then naming every field that still differs.
//!
//! Representation, and nothing else:
//! - absent ≡ `null` ≡ `{}` ≡ `[]` for an object's field (Go's `omitempty` and zero values:
//!   `creationTimestamp: null`, `resources: {}`, `status: {}`, `emptyDir: {}`);
//! - Kubernetes quantities by value (`1Gi` ≡ `1073741824`, `100m` ≡ `0.1`, `2` ≡ `"2"`) under
//!   `limits`, `requests`, `overhead`, `divisor` and `sizeLimit`; a `divisor` of zero is Go's
//!   serialization of an unset divisor (≤ 1.28 goldens print `divisor: "0"`) and is absent;
//! - a number by value (`2` ≡ `2.0`);
//! - JSON inside an env var's `value` or an annotation's value, parsed (so its spacing and key
//!   order do not matter); it stays marked as embedded JSON, so `"{}"` never equals absent;
//! - key order (objects compare as maps).
//!
//! Sequence order is kept (containers, env and volume order are part of the result).

use serde_json::{Map, Value};

/// Marks a string that held JSON: `{"<json>": parsed}`.
pub const EMBEDDED: &str = "<json>";

pub fn normalize(value: &Value) -> Value {
    normalize_in(value, Context::Other)
}

#[derive(Clone, Copy, PartialEq)]
enum Context {
    Other,
    /// The map under `limits`/`requests`/`overhead`: every value is a quantity.
    Quantities,
    /// The map under `annotations`: every value may be JSON.
    Annotations,
    /// An element of an `env` sequence: its `value` may be JSON.
    EnvVar,
    /// The elements of an `env` sequence.
    EnvList,
}

fn normalize_in(value: &Value, context: Context) -> Value {
    match value {
        // Already normalized embedded JSON.
        Value::Object(map) if map.contains_key(EMBEDDED) => value.clone(),
        Value::Object(map) => Value::Object(normalize_object(map, context)),
        Value::Array(items) => {
            let element = if context == Context::EnvList {
                Context::EnvVar
            } else {
                Context::Other
            };
            Value::Array(items.iter().map(|v| normalize_in(v, element)).collect())
        }
        Value::Number(n) => number(n),
        other => other.clone(),
    }
}

fn normalize_object(map: &Map<String, Value>, context: Context) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, child) in map {
        let normalized = match (context, key.as_str()) {
            (Context::Quantities, _) => quantity(child),
            (Context::Annotations, _) => embedded_json(child),
            (Context::EnvVar, "value") => embedded_json(child),
            (_, "limits" | "requests" | "overhead") if child.is_object() => {
                normalize_in(child, Context::Quantities)
            }
            (_, "divisor") => match quantity(child) {
                Value::String(q) if q == "0" => Value::Null,
                q => q,
            },
            (_, "sizeLimit") => quantity(child),
            (_, "annotations") if child.is_object() => normalize_in(child, Context::Annotations),
            (_, "env") if child.is_array() => normalize_in(child, Context::EnvList),
            _ => normalize_in(child, Context::Other),
        };
        if !is_absent(&normalized) {
            out.insert(key.clone(), normalized);
        }
    }
    out
}

fn is_absent(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn number(n: &serde_json::Number) -> Value {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
        _ => Value::Number(n.clone()),
    }
}

/// A string holding a JSON object or array, parsed and marked; anything else as it is.
fn embedded_json(value: &Value) -> Value {
    let Value::String(text) = value else {
        return normalize(value);
    };
    let trimmed = text.trim();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return value.clone();
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(parsed) => {
            let mut marked = Map::new();
            marked.insert(EMBEDDED.to_owned(), normalize(&parsed));
            Value::Object(marked)
        }
        Err(_) => value.clone(),
    }
}

/// A quantity as its exact value in nano-units (`"2"` → `"2"`, `"100m"` → `"0.1"`), or the
/// value unchanged if it is not a quantity.
fn quantity(value: &Value) -> Value {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => return normalize(other),
    };
    match parse_quantity(&text) {
        Some(nanos) => Value::String(format_nanos(nanos)),
        None => value.clone(),
    }
}

/// Kubernetes quantity grammar: a signed decimal number, then a binary suffix (Ki … Ei), a
/// decimal suffix (n u m "" k M G T P E) or a decimal exponent (e3, E-2). In nano-units.
pub fn parse_quantity(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
        || fraction.len() > 18
    {
        return None;
    }
    // value = mantissa / 10^scale
    let mantissa: i128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = fraction.len() as i32;
    let (multiplier, exponent): (i128, i32) = match suffix {
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "" => (1, 0),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        s if s.starts_with(['e', 'E']) => (1, s[1..].parse().ok()?),
        _ => return None,
    };
    // nanos = mantissa * multiplier * 10^(exponent + 9 - scale), rounded up like Kubernetes.
    let power = exponent + 9 - scale;
    let base = mantissa.checked_mul(multiplier)?;
    let nanos = if power >= 0 {
        base.checked_mul(10i128.checked_pow(power as u32)?)?
    } else {
        let divisor = 10i128.checked_pow((-power) as u32)?;
        (base + divisor - 1) / divisor
    };
    Some(if negative { -nanos } else { nanos })
}

fn format_nanos(nanos: i128) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    let (whole, fraction) = (abs / 1_000_000_000, abs % 1_000_000_000);
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let fraction = format!("{fraction:09}");
    format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
}

/// One field that differs after normalization.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub path: String,
    pub ours: Option<Value>,
    pub theirs: Option<Value>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or("(absent)".to_owned(), short);
        write!(
            f,
            "{}: revhook {} | istio {}",
            self.path,
            show(&self.ours),
            show(&self.theirs)
        )
    }
}

/// A value in at most 70 characters.
pub fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 70 {
        return text;
    }
    let cut: String = text.chars().take(67).collect();
    format!("{cut}...")
}

/// Every field where two normalized values differ. Sequences whose elements all carry a
/// unique `name` are compared by name (then their order), others by position.
pub fn differences(ours: &Value, theirs: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    diff_into("", ours, theirs, &mut out);
    out
}

fn diff_into(path: &str, ours: &Value, theirs: &Value, out: &mut Vec<Difference>) {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let child = field_path(path, key);
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff_into(&child, x, y, out),
                    (Some(x), None) => one_sided(&child, x, Side::Ours, out),
                    (None, Some(y)) => one_sided(&child, y, Side::Theirs, out),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => match (names(a), names(b)) {
            (Some(na), Some(nb)) => diff_named(path, a, &na, b, &nb, out),
            _ => diff_positional(path, a, b, out),
        },
        (a, b) if a != b => out.push(Difference {
            path: path.to_owned(),
            ours: Some(a.clone()),
            theirs: Some(b.clone()),
        }),
        _ => {}
    }
}

#[derive(Clone, Copy)]
enum Side {
    Ours,
    Theirs,
}

/// A field only one side has: an object is reported leaf by leaf (so a missing annotation is
/// named, not the whole `metadata`), anything else whole.
fn one_sided(path: &str, value: &Value, side: Side, out: &mut Vec<Difference>) {
    match value {
        Value::Object(map) if !map.is_empty() && !map.contains_key(EMBEDDED) => {
            for (key, child) in map {
                one_sided(&field_path(path, key), child, side, out);
            }
            return;
        }
        _ => {}
    }
    let (ours, theirs) = match side {
        Side::Ours => (Some(value.clone()), None),
        Side::Theirs => (None, Some(value.clone())),
    };
    out.push(Difference {
        path: path.to_owned(),
        ours,
        theirs,
    });
}

fn diff_named(
    path: &str,
    a: &[Value],
    na: &[String],
    b: &[Value],
    nb: &[String],
    out: &mut Vec<Difference>,
) {
    for (name, x) in na.iter().zip(a) {
        let child = format!("{path}[{name}]");
        match nb.iter().position(|n| n == name) {
            Some(j) => diff_into(&child, x, &b[j], out),
            None => out.push(Difference {
                path: child,
                ours: Some(x.clone()),
                theirs: None,
            }),
        }
    }
    for (name, y) in nb.iter().zip(b) {
        if !na.contains(name) {
            out.push(Difference {
                path: format!("{path}[{name}]"),
                ours: None,
                theirs: Some(y.clone()),
            });
        }
    }
    let common = |from: &[String], other: &[String]| -> Vec<Value> {
        from.iter()
            .filter(|n| other.contains(n))
            .map(|n| Value::String(n.clone()))
            .collect()
    };
    let (order_a, order_b) = (common(na, nb), common(nb, na));
    if order_a != order_b {
        out.push(Difference {
            path: format!("{path} (order)"),
            ours: Some(Value::Array(order_a)),
            theirs: Some(Value::Array(order_b)),
        });
    }
}

fn diff_positional(path: &str, a: &[Value], b: &[Value], out: &mut Vec<Difference>) {
    for i in 0..a.len().max(b.len()) {
        let child = format!("{path}[{i}]");
        match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) => diff_into(&child, x, y, out),
            (x, y) => out.push(Difference {
                path: child,
                ours: x.cloned(),
                theirs: y.cloned(),
            }),
        }
    }
}

/// The `name` of every element, if every element has a distinct one.
fn names(items: &[Value]) -> Option<Vec<String>> {
    let names: Vec<String> = items
        .iter()
        .map(|v| v.get("name")?.as_str().map(str::to_owned))
        .collect::<Option<_>>()?;
    let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
    (distinct.len() == names.len() && !names.is_empty()).then_some(names)
}

fn field_path(parent: &str, key: &str) -> String {
    let plain = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_compare_by_value() {
        assert_eq!(parse_quantity("1Gi"), parse_quantity("1073741824"));
        assert_eq!(parse_quantity("100m"), parse_quantity("0.1"));
        assert_eq!(parse_quantity("2"), Some(2_000_000_000));
        assert_eq!(parse_quantity("1e3"), parse_quantity("1k"));
        assert_eq!(
            parse_quantity("128Mi"),
            Some(128 * (1 << 20) * 1_000_000_000)
        );
        assert_ne!(parse_quantity("100m"), parse_quantity("100M"));
        assert_eq!(parse_quantity("abc"), None);
        assert_eq!(parse_quantity(""), None);
        let a = normalize(&json!({"resources": {"limits": {"cpu": 2, "memory": "1Gi"}}}));
        let b = normalize(&json!({"resources": {"limits": {"cpu": "2000m", "memory": "1024Mi"}}}));
        assert_eq!(a, b);
        let c = normalize(&json!({"resources": {"limits": {"cpu": "3"}}}));
        assert_ne!(a, c);
    }

    #[test]
    fn zero_values_and_absence_are_one_representation() {
        let go = json!({
            "metadata": {"creationTimestamp": null, "name": "x"},
            "spec": {"containers": [{"name": "a", "resources": {}}], "initContainers": []},
            "status": {}
        });
        let ours = json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(normalize(&go), normalize(&ours));
        let divisor_zero = json!({"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}});
        let no_divisor = json!({"resourceFieldRef": {"resource": "limits.cpu"}});
        assert_eq!(normalize(&divisor_zero), normalize(&no_divisor));
        let divisor_one = json!({"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}});
        assert_ne!(normalize(&divisor_one), normalize(&no_divisor));
        // Element order and values are not representation.
        let swapped = json!({"spec": {"containers": [{"name": "b"}, {"name": "a"}]}});
        let straight = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_ne!(normalize(&swapped), normalize(&straight));
        assert_ne!(normalize(&json!({"a": ""})), normalize(&json!({})));
    }

    #[test]
    fn json_in_env_values_and_annotations_is_parsed() {
        let a = json!({
            "metadata": {"annotations": {"sidecar.istio.io/status": "{\"a\":1,\"b\":[\"x\"]}"}},
            "env": [{"name": "PROXY_CONFIG", "value": "{}\n"}, {"name": "PORTS", "value": "[\n {\"containerPort\":80}\n]"}]
        });
        let b = json!({
            "metadata": {"annotations": {"sidecar.istio.io/status": "{\"b\": [\"x\"], \"a\": 1}"}},
            "env": [{"name": "PROXY_CONFIG", "value": "{}"}, {"name": "PORTS", "value": "[{\"containerPort\": 80}]"}]
        });
        assert_eq!(normalize(&a), normalize(&b));
        // Embedded `{}` is a value, not an absent field.
        let absent = json!({"env": [{"name": "PROXY_CONFIG"}, {"name": "PORTS", "value": "[{\"containerPort\": 80}]"}]});
        assert_ne!(
            normalize(&absent),
            normalize(&json!({"env": b["env"].clone()}))
        );
        // Not JSON: compared as text.
        let text = json!({"metadata": {"annotations": {"a": "[not json"}}});
        assert_eq!(normalize(&text), text);
    }

    #[test]
    fn differences_name_the_field_by_container_and_env_names() {
        let ours = normalize(&json!({"spec": {"containers": [
            {"name": "app", "image": "a"},
            {"name": "istio-proxy", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
        ]}, "metadata": {"annotations": {"sidecar.istio.io/x": "1"}}}));
        let theirs = normalize(&json!({"spec": {"containers": [
            {"name": "istio-proxy", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]},
            {"name": "app", "image": "a"}
        ]}, "metadata": {"annotations": {}}}));
        let paths: Vec<String> = differences(&ours, &theirs)
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(
            paths,
            vec![
                "metadata.annotations[\"sidecar.istio.io/x\"]".to_owned(),
                "spec.containers[istio-proxy].env[B].value".to_owned(),
                "spec.containers (order)".to_owned(),
            ]
        );
        assert!(differences(&ours, &ours).is_empty());
    }
}
