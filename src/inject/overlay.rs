//! TEMPORARY: a small strategic merge for the Pod fields Istio's templates touch, until the
//! full implementation (`strategic.rs`, with apimachinery's patch metadata for every Pod
//! field) lands. Same signature, so swapping is one line.

use std::collections::HashMap;

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
#[error("strategic merge: {0}")]
pub struct StrategicError(String);

/// Merge keys of the lists Istio's templates produce.
fn merge_key(path: &[&str]) -> Option<&'static str> {
    match path {
        [.., "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets"] => Some("name"),
        [.., "env"] => Some("name"),
        [.., "ports"] => Some("containerPort"),
        [.., "volumeMounts"] => Some("mountPath"),
        _ => None,
    }
}

pub fn merge_pod(pod: &mut Value, patch: Value) -> Result<(), StrategicError> {
    let mut path = Vec::new();
    merge_value(pod, patch, &mut path)
}

fn merge_value(
    target: &mut Value,
    patch: Value,
    path: &mut Vec<&str>,
) -> Result<(), StrategicError> {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => merge_map(t, p, path),
        (t, p) => {
            *t = p;
            Ok(())
        }
    }
}

fn merge_map(
    target: &mut Map<String, Value>,
    patch: Map<String, Value>,
    path: &mut Vec<&str>,
) -> Result<(), StrategicError> {
    for (k, v) in patch {
        if v.is_null() {
            target.remove(&k);
            continue;
        }
        let key: &str = &k;
        // Keys outlive the recursion only as owned copies; the path needs names only.
        let name: &'static str = match key {
            "containers" => "containers",
            "initContainers" => "initContainers",
            "ephemeralContainers" => "ephemeralContainers",
            "volumes" => "volumes",
            "imagePullSecrets" => "imagePullSecrets",
            "env" => "env",
            "ports" => "ports",
            "volumeMounts" => "volumeMounts",
            _ => "-",
        };
        path.push(name);
        match (target.get_mut(&k), v) {
            (Some(Value::Array(t)), Value::Array(p)) => match merge_key(path) {
                Some(mk) => {
                    let merged = merge_list(std::mem::take(t), p, mk, path)?;
                    *t = merged;
                }
                None => *t = p,
            },
            (Some(t @ Value::Object(_)), v @ Value::Object(_)) => merge_value(t, v, path)?,
            (_, v) => {
                target.insert(k.clone(), v);
            }
        }
        path.pop();
    }
    Ok(())
}

fn key_of(v: &Value, mk: &str) -> Option<String> {
    v.get(mk).map(|k| match k {
        Value::Number(n) => n.as_f64().map(|f| f.to_string()).unwrap_or_default(),
        other => other.to_string(),
    })
}

/// apimachinery's merge of keyed lists: patch items in patch order, server-only items
/// interleaved by their server order (`mergeSortedSlice`).
fn merge_list(
    server: Vec<Value>,
    patch: Vec<Value>,
    mk: &str,
    path: &mut Vec<&str>,
) -> Result<Vec<Value>, StrategicError> {
    let server_index: HashMap<String, usize> = server
        .iter()
        .enumerate()
        .filter_map(|(i, v)| key_of(v, mk).map(|k| (k, i)))
        .collect();
    let mut server: Vec<Option<Value>> = server.into_iter().map(Some).collect();
    let mut patched: Vec<(Option<usize>, Value)> = Vec::with_capacity(patch.len());
    for item in patch {
        let Some(key) = key_of(&item, mk) else {
            return Err(StrategicError(format!("list item without merge key {mk}")));
        };
        match server_index.get(&key) {
            Some(&i) => {
                let mut base = server[i].take().unwrap_or(Value::Null);
                merge_value(&mut base, item, path)?;
                patched.push((Some(i), base));
            }
            None => patched.push((None, item)),
        }
    }
    let server_only: Vec<(usize, Value)> = server
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    let mut out = Vec::with_capacity(server_only.len() + patched.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patched.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (Some((li, _)), Some((Some(ri), _))) if li < ri => {
                out.extend(left.next().map(|(_, v)| v));
            }
            (Some(_), Some(_)) | (None, Some(_)) => out.extend(right.next().map(|(_, v)| v)),
            (Some(_), None) => out.extend(left.next().map(|(_, v)| v)),
            (None, None) => break,
        }
    }
    Ok(out)
}
