//! Istio's custom injection: the pod's own `istio-proxy` / `istio-init` fields merged over the
//! generated container.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::core::pod;

use super::InjectError;

/// Istio's custom injection: a container named `istio-proxy` (or an init container named
/// `istio-init`) in the pod spec holds overrides for the generated one. Its fields win;
/// `image: auto` keeps the revision's image; `env` entries merge by name.
pub(super) fn merge_custom(
    generated: &str,
    raw_pod: &str,
    array: &'static str,
    index: usize,
) -> Result<String, InjectError> {
    let mut base: Value = serde_json::from_str(generated).map_err(InjectError::Template)?;
    let user = pod::raw_container(raw_pod, array, index).map_err(|source| {
        InjectError::CustomContainer {
            array,
            index,
            source,
        }
    })?;
    let (Value::Object(base_map), Value::Object(user_map)) = (&mut base, user) else {
        return Err(InjectError::NotAnObject { array, index });
    };
    for (key, value) in user_map {
        match key.as_str() {
            "image" if value == "auto" => {}
            "env" => merge_env(base_map, value),
            _ => {
                base_map.insert(key, value);
            }
        }
    }
    Ok(base.to_string())
}

/// Merges the user's env entries into the generated ones by name: a user entry replaces the
/// generated entry of its name, others are appended. Linear in both lists: a name index, not a
/// search per entry (a hostile pod may carry tens of thousands).
fn merge_env(base: &mut Map<String, Value>, user_env: Value) {
    let Value::Array(user_env) = user_env else {
        return;
    };
    let env = base
        .entry("env")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = env.as_array_mut() else {
        return;
    };
    let mut by_name: HashMap<Option<String>, usize> = HashMap::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        // The first entry of a name is the one a later entry replaces.
        by_name.entry(env_name(e)).or_insert(i);
    }
    for entry in user_env {
        match by_name.get(&env_name(&entry)) {
            Some(&i) => list[i] = entry,
            None => {
                by_name.insert(env_name(&entry), list.len());
                list.push(entry);
            }
        }
    }
}

/// An env entry's name; entries without a string name match each other, as `Value`
/// comparison of two absent names did.
fn env_name(entry: &Value) -> Option<String> {
    entry.get("name").map(|n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_merges_by_name_replacing_in_place_and_appending_new_names() {
        let mut base = json!({"env": [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "2"},
        ]});
        let user = json!([
            {"name": "B", "value": "user"},
            {"name": "C", "value": "3"},
            {"name": "C", "value": "4"},
        ]);
        let Value::Object(map) = &mut base else {
            panic!("object")
        };
        merge_env(map, user);
        assert_eq!(
            base["env"],
            json!([
                {"name": "A", "value": "1"},
                {"name": "B", "value": "user"},
                {"name": "C", "value": "4"},
            ])
        );
    }

    #[test]
    fn a_custom_proxy_with_many_env_entries_merges_each_once() {
        // 40k entries took 9.7 s with a search per entry; the index makes it one pass.
        let mut base = json!({"env": [{"name": "E0", "value": "generated"}]});
        let user: Vec<Value> = (0..40_000)
            .map(|i| json!({"name": format!("E{i}"), "value": "user"}))
            .collect();
        let Value::Object(map) = &mut base else {
            panic!("object")
        };
        merge_env(map, Value::Array(user));
        let env = base["env"].as_array().expect("env");
        assert_eq!(env.len(), 40_000);
        assert_eq!(env[0], json!({"name": "E0", "value": "user"}));
        assert_eq!(env[39_999]["name"], "E39999");
    }
}
