//! Merging objects: apimachinery's `mergeMap` and the directives that live in an object
//! (`$patch`, `$retainKeys`, `$deleteFromPrimitiveList/<key>`, `$setElementOrder/<key>`).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::keys::{go_equal, GoType};
use super::schema::{Field, LookupError, Schema};
use super::{list, Path, StrategicError, Work};

pub(super) const PATCH: &str = "$patch";
pub(super) const DELETE: &str = "delete";
pub(super) const REPLACE: &str = "replace";
pub(super) const MERGE: &str = "merge";
const RETAIN_KEYS: &str = "$retainKeys";
const RETAIN_KEYS_STRATEGY: &str = "retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

type Object = Map<String, Value>;

/// `mergeMap` with `MergeParallelList` and `IgnoreUnmatchedNulls` (what
/// `StrategicMergeMapPatch` uses): `patch` into `original`, whose Go type is `ty`.
pub(super) fn merge_map(
    original: &mut Object,
    mut patch: Object,
    ty: Schema,
    path: &Path,
    work: &mut Work,
) -> Result<(), StrategicError> {
    work.add(1);
    if let Some(directive) = patch.get(PATCH) {
        return match directive.as_str() {
            Some(REPLACE) => {
                patch.remove(PATCH);
                *original = patch;
                Ok(())
            }
            Some(DELETE) => {
                original.clear();
                Ok(())
            }
            _ => Err(StrategicError::UnknownDirective {
                path: path.key(PATCH).to_string(),
                value: directive.to_string(),
            }),
        };
    }
    apply_retain_keys(original, &mut patch, path, work)?;
    // `$setElementOrder/<list>` reorders a list with rules that read slices through aliases Go
    // mutates underneath; kubectl writes it, injection templates do not: refuse.
    if let Some(key) = patch.keys().find(|k| k.starts_with(SET_ELEMENT_ORDER)) {
        return Err(StrategicError::Unsupported {
            path: path.key(key).to_string(),
            directive: SET_ELEMENT_ORDER.into(),
        });
    }
    merge_fields(original, patch, ty, path, work)
}

/// One patch entry, with the key of `original` it acts on.
struct Entry {
    target: String,
    value: Value,
    delete_list: bool,
}

/// The loop over the patch's keys. Go visits them in random order; only a key `x` together
/// with `$deleteFromPrimitiveList/x` act on the same field, so those two are tried in both
/// orders, and a result that depends on the order is refused.
fn merge_fields(
    original: &mut Object,
    patch: Object,
    ty: Schema,
    path: &Path,
    work: &mut Work,
) -> Result<(), StrategicError> {
    let mut entries = Vec::with_capacity(patch.len());
    for (key, value) in patch {
        work.add(1);
        entries.push(entry(key, value, path)?);
    }
    let mut plain: HashSet<&str> = HashSet::new();
    let mut deleting: HashSet<&str> = HashSet::new();
    for e in &entries {
        if e.delete_list {
            deleting.insert(&e.target);
        } else {
            plain.insert(&e.target);
        }
    }
    let shared: HashSet<String> = plain
        .intersection(&deleting)
        .map(|t| (*t).to_owned())
        .collect();
    // target -> (its value, its deletion list)
    let mut pairs: HashMap<String, (Option<Value>, Option<Value>)> = HashMap::new();
    for e in entries {
        if shared.contains(&e.target) {
            let slot = pairs.entry(e.target).or_default();
            if e.delete_list {
                slot.1 = Some(e.value);
            } else {
                slot.0 = Some(e.value);
            }
            continue;
        }
        merge_field(original, &e.target, e.value, e.delete_list, ty, path, work)?;
    }
    for (target, pair) in pairs {
        if let (Some(value), Some(deletions)) = pair {
            merge_field_both_orders(original, &target, value, deletions, ty, path, work)?;
        }
    }
    Ok(())
}

/// `preprocessDeletionListForMerging`: `$deleteFromPrimitiveList/x` acts on `x` as a deletion
/// list (on itself when `x` is empty, as Go has it).
fn entry(key: String, value: Value, path: &Path) -> Result<Entry, StrategicError> {
    if !key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
        return Ok(Entry {
            target: key,
            value,
            delete_list: false,
        });
    }
    let target = match key.split_once('/') {
        Some((DELETE_FROM_PRIMITIVE_LIST, "")) => key.clone(),
        Some((DELETE_FROM_PRIMITIVE_LIST, target)) => target.to_owned(),
        _ => {
            return Err(StrategicError::BadDeleteListKey {
                path: path.to_string(),
                key,
            })
        }
    };
    Ok(Entry {
        target,
        value,
        delete_list: true,
    })
}

/// `x` and `$deleteFromPrimitiveList/x` in one patch: Go applies them in map order.
fn merge_field_both_orders(
    original: &mut Object,
    target: &str,
    value: Value,
    deletions: Value,
    ty: Schema,
    path: &Path,
    work: &mut Work,
) -> Result<(), StrategicError> {
    let start = original.get(target).cloned();
    work.add(2 * (size(start.as_ref()) + size(Some(&value)) + size(Some(&deletions))));
    let mut run = |first: (Value, bool), second: (Value, bool)| {
        let mut field = Object::new();
        if let Some(start) = start.clone() {
            field.insert(target.to_owned(), start);
        }
        merge_field(&mut field, target, first.0, first.1, ty, path, work)?;
        merge_field(&mut field, target, second.0, second.1, ty, path, work)?;
        Ok::<_, StrategicError>(field.remove(target))
    };
    let merged_first = run((value.clone(), false), (deletions.clone(), true));
    let deleted_first = run((deletions, true), (value, false));
    let same = match (&merged_first, &deleted_first) {
        (Ok(Some(a)), Ok(Some(b))) => go_equal(a, b),
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => true,
        _ => false,
    };
    if !same {
        return Err(StrategicError::GoUndefined {
            path: path.key(target).to_string(),
            reason: "the list and its $deleteFromPrimitiveList give a result that depends on Go's map order",
        });
    }
    match merged_first? {
        Some(v) => original.insert(target.to_owned(), v),
        None => original.remove(target),
    };
    Ok(())
}

/// How many values a tree holds (the cost of cloning it).
fn size(v: Option<&Value>) -> usize {
    match v {
        None => 0,
        Some(Value::Array(items)) => 1 + items.iter().map(|v| size(Some(v))).sum::<usize>(),
        Some(Value::Object(m)) => 1 + m.values().map(|v| size(Some(v))).sum::<usize>(),
        Some(_) => 1,
    }
}

/// The body of `mergeMap`'s loop for one key.
fn merge_field(
    original: &mut Object,
    key: &str,
    value: Value,
    delete_list: bool,
    ty: Schema,
    path: &Path,
    work: &mut Work,
) -> Result<(), StrategicError> {
    work.add(1);
    let here = path.key(key);
    if value.is_null() {
        original.remove(key);
        return Ok(());
    }
    let Some(current) = original.get_mut(key) else {
        if !delete_list {
            set_new(original, key, value, work);
        }
        return Ok(());
    };
    if GoType::of(current) != GoType::of(&value) {
        if !delete_list {
            set_new(original, key, value, work);
        }
        return Ok(());
    }
    match (current, value) {
        (Value::Object(current), Value::Object(value)) => {
            let (sub, field) = ty.lookup_struct(key).map_err(|e| lookup_error(e, &here))?;
            if strategy(field, &here)? == REPLACE {
                *current = value;
                Ok(())
            } else {
                merge_map(current, value, sub, &here, work)
            }
        }
        (Value::Array(current), Value::Array(value)) => {
            let (elem, field) = ty.lookup_slice(key).map_err(|e| lookup_error(e, &here))?;
            if strategy(field, &here)? == MERGE || delete_list {
                let merge_key = field.merge_key;
                let original_list = std::mem::take(current);
                *current = list::merge_lists(
                    original_list,
                    value,
                    elem,
                    merge_key,
                    delete_list,
                    &here,
                    work,
                )?;
            } else {
                *current = value;
            }
            Ok(())
        }
        (current, value) => {
            // Same scalar type: the patch's value (a scalar has no directives to remove).
            *current = value;
            Ok(())
        }
    }
}

/// A value the original lacks (or holds with another type): the patch's, without its nulls
/// and without objects carrying `$patch` (Go's `discardNullValuesFromPatch` and
/// `removeDirectives`).
fn set_new(original: &mut Object, key: &str, mut value: Value, work: &mut Work) {
    if without_nulls_and_directives(&mut value, work) {
        original.insert(key.to_owned(), value);
    } else {
        original.remove(key);
    }
}

/// Go's `discardNullValuesFromPatch` then `removeDirectives`, in one walk and in place (the
/// value is the template's, already owned): `false` where Go drops the value, an object with
/// a `$patch` key at any depth.
fn without_nulls_and_directives(value: &mut Value, work: &mut Work) -> bool {
    work.add(1);
    match value {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            if m.contains_key(PATCH) {
                return false;
            }
            m.retain(|_, v| without_nulls_and_directives(v, work));
            true
        }
        Value::Array(items) => {
            items.retain_mut(|v| without_nulls_and_directives(v, work));
            true
        }
        _ => true,
    }
}

/// `applyRetainKeysDirective`: every key the patch sets must be listed, and the original
/// keeps only listed keys.
fn apply_retain_keys(
    original: &mut Object,
    patch: &mut Object,
    path: &Path,
    work: &mut Work,
) -> Result<(), StrategicError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let here = path.key(RETAIN_KEYS);
    let Value::Array(retain) = retain else {
        return Err(StrategicError::BadRetainKeys {
            path: here.to_string(),
            reason: "not a list",
        });
    };
    let mut keep: HashSet<&str> = HashSet::with_capacity(retain.len());
    for item in &retain {
        work.add(1);
        match item {
            Value::String(s) => {
                keep.insert(s);
            }
            // Go puts every item in a map[interface{}]: a map or slice cannot be hashed.
            Value::Object(_) | Value::Array(_) => {
                return Err(StrategicError::GoPanics {
                    path: here.to_string(),
                    reason: "a $retainKeys item is an object or list (unhashable)",
                })
            }
            _ => {}
        }
    }
    for (k, v) in patch.iter() {
        work.add(1);
        let exempt = v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER);
        if !exempt && !keep.contains(k.as_str()) {
            return Err(StrategicError::BadRetainKeys {
                path: path.key(k).to_string(),
                reason: "the patch sets a field that $retainKeys does not list",
            });
        }
    }
    work.add(original.len());
    original.retain(|k, _| keep.contains(k.as_str()));
    Ok(())
}

/// The field's strategy for merging, without `retainKeys` (`extractRetainKeysPatchStrategy`).
fn strategy(field: &Field, path: &Path) -> Result<&'static str, StrategicError> {
    let parts: Vec<&'static str> = field.strategy.split(',').collect();
    match parts.as_slice() {
        [RETAIN_KEYS_STRATEGY] => Ok(""),
        [one] => Ok(one),
        [RETAIN_KEYS_STRATEGY, other] | [other, RETAIN_KEYS_STRATEGY] => Ok(other),
        _ => Err(StrategicError::BadStrategy {
            path: path.to_string(),
            strategy: field.strategy,
        }),
    }
}

fn lookup_error(e: LookupError, path: &Path) -> StrategicError {
    let path = path.to_string();
    match e {
        LookupError::NotStruct { kind } => StrategicError::NotAStruct { path, kind },
        LookupError::UnknownField { ty } => StrategicError::UnknownField { path, ty },
        LookupError::NotSlice { .. } => StrategicError::NotAList { path },
        LookupError::SliceOfSlice => StrategicError::SliceOfSlice { path },
    }
}
