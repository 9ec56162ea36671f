//! Unit tests of the merge's own contract: its API edges, error paths, the map-order check, and
//! that its work grows linearly with hostile inputs (counted steps, no timing). Agreement with
//! apimachinery itself is `tests/strategic_merge.rs`.

use serde_json::{json, Value};

use super::*;

fn merged(pod: Value, patch: Value) -> Result<Value, StrategicError> {
    let mut pod = pod;
    merge_pod(&mut pod, patch).map(|()| pod)
}

#[test]
fn one_container_merges_with_the_container_schema() {
    let mut proxy = json!({
        "name": "istio-proxy",
        "image": "proxyv2",
        "env": [{"name": "A", "value": "1"}],
        "volumeMounts": [{"mountPath": "/etc/istio/proxy", "name": "istio-envoy"}]
    });
    let custom = json!({
        "name": "istio-proxy",
        "image": "custom",
        "env": [{"name": "B", "value": "2"}],
        "volumeMounts": [{"mountPath": "/custom", "name": "c"}]
    });
    merge(&mut proxy, custom, Schema::container()).unwrap();
    assert_eq!(
        proxy,
        json!({
            "name": "istio-proxy",
            "image": "custom",
            "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
            "volumeMounts": [
                {"mountPath": "/custom", "name": "c"},
                {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"}
            ]
        })
    );
    // The container schema is not the pod's: `spec` is no field of a container.
    let mut container = json!({"name": "a", "spec": {"x": 1}});
    let err = merge(
        &mut container,
        json!({"spec": {"y": 2}}),
        Schema::container(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            StrategicError::UnknownField {
                ty: "Container",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn documents_that_are_not_objects() {
    assert_eq!(
        merged(json!({"a": 1}), Value::Null),
        Ok(json!({"a": 1})),
        "a null patch changes nothing"
    );
    assert_eq!(
        merged(Value::Null, json!({"metadata": {"name": "a", "x": null}})),
        Ok(json!({"metadata": {"name": "a"}})),
        "a null pod is an empty one"
    );
    let err = merged(json!({}), json!(["x"])).unwrap_err();
    assert!(
        matches!(err, StrategicError::NotAnObject { what: "patch", .. }),
        "{err}"
    );
    let err = merged(json!("pod"), json!({})).unwrap_err();
    assert!(
        matches!(err, StrategicError::NotAnObject { what: "target", .. }),
        "{err}"
    );
}

#[test]
fn errors_name_the_place_in_the_patch() {
    let pod = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}});
    let patch = json!({"spec": {"containers": [{"name": "a", "ports": [{"protocol": "TCP"}]}]}});
    let err = merged(pod, patch).unwrap_err();
    assert_eq!(
        err,
        StrategicError::MissingMergeKey {
            path: "/spec/containers/0/ports/0".into(),
            key: "containerPort"
        }
    );
    let err = merged(
        json!({"metadata": {"a/b": {}}}),
        json!({"metadata": {"a/b": {"c": 1}}}),
    );
    assert_eq!(
        err,
        Err(StrategicError::UnknownField {
            path: "/metadata/a~1b".into(),
            ty: "ObjectMeta"
        })
    );
}

#[test]
fn a_list_and_its_deletion_list_are_tried_in_both_orders() {
    let pod = json!({"metadata": {"finalizers": ["a", "b"]}});
    // Both orders agree: merged.
    let patch =
        json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}});
    assert_eq!(
        merged(pod.clone(), patch),
        Ok(json!({"metadata": {"finalizers": ["c", "b"]}}))
    );
    // Adding and deleting one value: Go's answer depends on its map order.
    let patch =
        json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["c"]}});
    assert!(matches!(
        merged(pod.clone(), patch),
        Err(StrategicError::GoUndefined { .. })
    ));
    // A null list: deleted before, or re-added after, the merge.
    let patch =
        json!({"metadata": {"finalizers": null, "$deleteFromPrimitiveList/finalizers": ["x"]}});
    assert_eq!(merged(pod, patch), Ok(json!({"metadata": {}})));
}

#[test]
fn deletion_list_forms() {
    let pod = json!({"metadata": {"finalizers": ["a", "b"]}});
    let err = merged(
        pod.clone(),
        json!({"metadata": {"$deleteFromPrimitiveListX": ["a"]}}),
    );
    assert!(matches!(err, Err(StrategicError::BadDeleteListKey { .. })));
    // An empty list name: Go takes the whole key as the list's name; a deletion list never adds.
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/": ["z"]}});
    assert_eq!(merged(pod.clone(), patch.clone()), Ok(pod.clone()));
    let mut with_it = pod;
    with_it["metadata"]["$deleteFromPrimitiveList/"] = json!(["z"]);
    assert!(matches!(
        merged(with_it, patch),
        Err(StrategicError::UnknownField {
            ty: "ObjectMeta",
            ..
        })
    ));
}

// === linear work ===

/// How many values a document holds.
fn nodes(v: &Value) -> u64 {
    match v {
        Value::Array(items) => 1 + items.iter().map(nodes).sum::<u64>(),
        Value::Object(m) => 1 + m.values().map(nodes).sum::<u64>(),
        _ => 1,
    }
}

/// Merges the case of size `n` and returns (steps taken, input size); errors are fine (hostile
/// inputs fail), the work to find them is what counts.
fn work_for(case: &dyn Fn(usize) -> (Value, Value), n: usize) -> (u64, u64) {
    let (mut pod, patch) = case(n);
    let size = nodes(&pod) + nodes(&patch);
    let mut work = Work::default();
    let _ = merge_counting(&mut pod, patch, Schema::POD, &mut work);
    (work.0, size)
}

fn containers(names: impl Iterator<Item = Value>, extra: &dyn Fn(usize) -> Value) -> Value {
    Value::Array(
        names
            .enumerate()
            .map(|(i, name)| {
                let mut c = extra(i);
                c["name"] = name;
                c
            })
            .collect(),
    )
}

/// A pod and a patch of size `n`.
type Case = Box<dyn Fn(usize) -> (Value, Value)>;

fn hostile_cases() -> Vec<(&'static str, Case)> {
    vec![
        (
            "containers half shared, each with env and ports",
            Box::new(|n| {
                let extra = |i: usize| {
                    json!({"env": [{"name": format!("E{i}"), "value": "v"}, {"name": "X"}],
                           "ports": [{"containerPort": i}, {"containerPort": 80}]})
                };
                let pod = containers((0..n).map(|i| json!(format!("c{i}"))), &extra);
                let patch = containers((0..n).map(|i| json!(format!("c{}", 2 * i))), &extra);
                (
                    json!({"spec": {"containers": pod}}),
                    json!({"spec": {"containers": patch}}),
                )
            }),
        ),
        (
            "every item with one key",
            Box::new(|n| {
                let pod = containers((0..n).map(|_| json!("same")), &|_| json!({}));
                let patch = containers((0..n).map(|_| json!("same")), &|i| json!({"image": i}));
                (
                    json!({"spec": {"containers": pod}}),
                    json!({"spec": {"containers": patch}}),
                )
            }),
        ),
        (
            "deletions of every key, and of object keys",
            Box::new(|n| {
                let pod = containers((0..n).map(|i| json!(format!("c{i}"))), &|_| json!({}));
                let mut deletes: Vec<Value> = (0..n)
                    .map(|i| json!({"$patch": "delete", "name": format!("c{i}")}))
                    .collect();
                deletes.extend((0..n).map(|_| json!({"$patch": "delete", "name": {}})));
                (
                    json!({"spec": {"containers": pod}}),
                    json!({"spec": {"containers": deletes}}),
                )
            }),
        ),
        (
            "finalizers with a deletion list",
            Box::new(|n| {
                let pod: Vec<Value> = (0..n).map(|i| json!(format!("f{i}"))).collect();
                let add: Vec<Value> = (0..n).map(|i| json!(format!("f{}", 2 * i))).collect();
                let del: Vec<Value> = (0..n).map(|i| json!(format!("f{}", 3 * i))).collect();
                (
                    json!({"metadata": {"finalizers": pod}}),
                    json!({"metadata": {"finalizers": add, "$deleteFromPrimitiveList/finalizers": del}}),
                )
            }),
        ),
        (
            "labels with nulls and $retainKeys",
            Box::new(|n| {
                let labels: serde_json::Map<String, Value> =
                    (0..n).map(|i| (format!("l{i}"), json!("v"))).collect();
                let mut patch: serde_json::Map<String, Value> = (0..n)
                    .map(|i| {
                        (
                            format!("l{}", 2 * i),
                            if i % 2 == 0 { Value::Null } else { json!("w") },
                        )
                    })
                    .collect();
                let keep: Vec<Value> = (0..2 * n).map(|i| json!(format!("l{i}"))).collect();
                patch.insert("$retainKeys".into(), Value::Array(keep));
                (
                    json!({"metadata": {"labels": labels}}),
                    json!({"metadata": {"labels": patch}}),
                )
            }),
        ),
        (
            "many lists paired with deletion lists",
            Box::new(|n| {
                let mut patch = serde_json::Map::new();
                for i in 0..n {
                    patch.insert(format!("k{i}"), json!(["a", "b"]));
                    patch.insert(format!("$deleteFromPrimitiveList/k{i}"), json!(["a"]));
                }
                (json!({"metadata": {}}), json!({"metadata": patch}))
            }),
        ),
    ]
}

#[test]
fn work_grows_linearly_with_hostile_inputs() {
    for (name, case) in hostile_cases() {
        let sizes = [500, 1000, 2000, 4000];
        let runs: Vec<(u64, u64)> = sizes.iter().map(|&n| work_for(&*case, n)).collect();
        for (pair, ns) in runs.windows(2).zip(sizes.windows(2)) {
            let (small, large) = (pair[0], pair[1]);
            // Doubling the input may at most double the work, with slack for rounding; a
            // quadratic step would quadruple it.
            assert!(
                large.0 * 10 <= small.0 * 22,
                "{name}: work {} at n={} but {} at n={}",
                small.0,
                ns[0],
                large.0,
                ns[1]
            );
        }
        for (work, size) in runs {
            assert!(work <= 20 * size, "{name}: {work} steps for {size} values");
            assert!(
                work >= size / 4,
                "{name}: {work} steps for {size} values: not counted?"
            );
        }
    }
}
