//! A pod as JSON, and the container-list moves istiod makes on it (`FindContainer`,
//! `modifyContainers`, `moveContainer`).

use serde_json::{Map, Value};

pub use crate::core::labels::{CORE_DUMP_NAME, INIT_NAME, PROXY_NAME, VALIDATION_NAME};

/// The first container of a list with this name.
pub fn find_container<'v>(list: &'v Value, name: &str) -> Option<&'v Value> {
    list.as_array()?.iter().find(|c| c["name"] == name)
}

/// The first container named `name` among the pod's containers, else its init containers
/// (istiod's `FindContainerFromPod`).
pub fn find_in_pod<'v>(pod: &'v Value, name: &str) -> Option<&'v Value> {
    find_container(&pod["spec"]["containers"], name)
        .or_else(|| find_container(&pod["spec"]["initContainers"], name))
}

/// Like [`find_in_pod`], mutably.
pub fn find_in_pod_mut<'v>(pod: &'v mut Value, name: &str) -> Option<&'v mut Value> {
    let spec = pod.get_mut("spec")?;
    let in_containers = list_has(spec.get("containers"), name);
    let key = if in_containers {
        "containers"
    } else {
        "initContainers"
    };
    spec.get_mut(key)?
        .as_array_mut()?
        .iter_mut()
        .find(|c| c["name"] == name)
}

fn list_has(list: Option<&Value>, name: &str) -> bool {
    list.and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|c| c["name"] == name))
}

/// The pod's `spec.<key>` list when it has one (indexing a `Value` mutably would create the
/// key, and a `null` list would end up in the patch).
pub fn existing_list_mut<'v>(pod: &'v mut Value, key: &str) -> Option<&'v mut Vec<Value>> {
    pod.get_mut("spec")?.get_mut(key)?.as_array_mut()
}

/// The pod's annotations when it has any.
pub fn existing_annotations_mut(pod: &mut Value) -> Option<&mut Map<String, Value>> {
    pod.get_mut("metadata")?
        .get_mut("annotations")?
        .as_object_mut()
}

/// The pod's `spec.<key>` list, created empty when absent.
pub fn list_mut<'v>(pod: &'v mut Value, key: &str) -> Option<&'v mut Vec<Value>> {
    let spec = object_mut(pod)?
        .entry("spec")
        .or_insert_with(|| Value::Object(Map::new()));
    object_mut(spec)?
        .entry(key)
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
}

/// The value as an object, turned into an empty one when it is null.
pub fn object_mut(v: &mut Value) -> Option<&mut Map<String, Value>> {
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut()
}

/// The pod's `metadata`, created when absent.
pub fn meta_object(pod: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = object_mut(pod)?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    object_mut(meta)
}

/// The pod's `metadata.<key>` map (labels or annotations), created when absent.
pub fn meta_map_mut<'v>(pod: &'v mut Value, key: &str) -> Option<&'v mut Map<String, Value>> {
    let meta = object_mut(pod)?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let map = object_mut(meta)?
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    object_mut(map)
}

/// An annotation of the pod.
pub fn annotation<'v>(pod: &'v Value, key: &str) -> Option<&'v str> {
    pod["metadata"]["annotations"][key].as_str()
}

/// Where `modifyContainers` puts the container it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    First,
    Last,
    Remove,
}

/// istiod's `modifyContainers`: every container named `name` is taken out; the last of them
/// goes first or last (or nowhere). A list without one is left as it is.
pub fn modify_containers(pod: &mut Value, key: &str, name: &str, how: Move) {
    let Some(list) = pod
        .get_mut("spec")
        .and_then(|s| s.get_mut(key))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    if !list.iter().any(|c| c["name"] == name) {
        return;
    }
    let mut found = None;
    list.retain_mut(|c| {
        if c["name"] == name {
            found = Some(std::mem::take(c));
            false
        } else {
            true
        }
    });
    match (how, found) {
        (Move::First, Some(c)) => list.insert(0, c),
        (Move::Last, Some(c)) => list.push(c),
        _ => {}
    }
}

/// istiod's `moveContainer`: the first container named `name` leaves `from` for the end of `to`.
pub fn move_container(pod: &mut Value, from: &str, to: &str, name: &str) {
    let taken = pod
        .get_mut("spec")
        .and_then(|s| s.get_mut(from))
        .and_then(Value::as_array_mut)
        .and_then(|list| {
            let i = list.iter().position(|c| c["name"] == name)?;
            Some(list.remove(i))
        });
    if let (Some(c), Some(list)) = (taken, list_mut(pod, to)) {
        list.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(pod: &Value, key: &str) -> Vec<String> {
        pod["spec"][key]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn modify_moves_the_named_container() {
        let mut pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "istio-proxy"}, {"name": "b"}]}});
        modify_containers(&mut pod, "containers", PROXY_NAME, Move::Last);
        assert_eq!(names(&pod, "containers"), ["a", "b", "istio-proxy"]);
        modify_containers(&mut pod, "containers", PROXY_NAME, Move::First);
        assert_eq!(names(&pod, "containers"), ["istio-proxy", "a", "b"]);
        modify_containers(&mut pod, "containers", PROXY_NAME, Move::Remove);
        assert_eq!(names(&pod, "containers"), ["a", "b"]);
        modify_containers(&mut pod, "initContainers", PROXY_NAME, Move::First);
        assert!(pod["spec"].get("initContainers").is_none());
    }

    #[test]
    fn move_container_appends_to_the_other_list() {
        let mut pod = json!({"spec": {"containers": [{"name": "istio-proxy", "image": "x"}, {"name": "app"}]}});
        move_container(&mut pod, "containers", "initContainers", PROXY_NAME);
        assert_eq!(names(&pod, "containers"), ["app"]);
        assert_eq!(names(&pod, "initContainers"), ["istio-proxy"]);
        assert_eq!(
            find_in_pod(&pod, PROXY_NAME).map(|c| &c["image"]),
            Some(&json!("x"))
        );
        let c = find_in_pod_mut(&mut pod, PROXY_NAME).expect("proxy");
        c["image"] = json!("y");
        assert_eq!(pod["spec"]["initContainers"][0]["image"], "y");
    }

    #[test]
    fn maps_are_created_on_demand() {
        let mut pod = json!({});
        meta_map_mut(&mut pod, "labels")
            .expect("labels")
            .insert("a".into(), json!("b"));
        assert_eq!(pod["metadata"]["labels"]["a"], "b");
        assert_eq!(annotation(&pod, "x"), None);
    }
}
