//! Merging lists with the `merge` strategy: apimachinery's `mergeSlice`.
//!
//! Lists of objects are merged by their merge key (`$patch: delete|replace` items first), lists
//! of scalars are united; then the result is ordered as Go orders it (`normalizeElementOrder`):
//! the patch's items in the patch's order, the pod's other items in the pod's order, and the
//! two interleaved by `mergeSortedSlice`. Where Go scans a list for every item, this looks
//! the item up in a hash index ([`FirstIndex`]), and where Go sorts, this buckets by
//! position.

use std::collections::HashSet;

use serde_json::Value;

use super::keys::{FirstIndex, GoKey, GoType, Scalar, Uncomparable};
use super::map::{merge_map, DELETE, MERGE, PATCH, REPLACE};
use super::schema::Schema;
use super::{Path, StrategicError, Work};

/// `mergeSlice(original, patch, schema = elem, mergeKey, isDeleteList)`.
pub(super) fn merge_lists(
    original: Vec<Value>,
    patch: Vec<Value>,
    elem: Schema,
    merge_key: &'static str,
    delete_list: bool,
    path: &Path,
    work: &mut Work,
) -> Result<Vec<Value>, StrategicError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let ty = element_type(&original, &patch, path, work)?;
    if ty != GoType::Map {
        if delete_list {
            return Ok(delete_from_list(original, &patch, work));
        }
        if !merge_key.is_empty() {
            // Go merges the scalars, then partitions them as objects (it picks the partition
            // by the merge key, not by the items).
            return Err(StrategicError::NotAnObject {
                path: path.to_string(),
                what: "list item",
                found: ty.name(),
            });
        }
        return merge_scalars(original, patch, path, work);
    }
    if merge_key.is_empty() {
        return Err(StrategicError::NoMergeKey {
            path: path.to_string(),
            kind: elem.kind_name(),
        });
    }
    merge_objects(original, patch, elem, merge_key, path, work)
}

/// `sliceElementType`: every item of both lists has one Go type, and it is not a list.
fn element_type(
    original: &[Value],
    patch: &[Value],
    path: &Path,
    work: &mut Work,
) -> Result<GoType, StrategicError> {
    let mut items = original.iter().chain(patch);
    let Some(first) = items.next() else {
        return Err(StrategicError::Internal {
            path: path.to_string(),
            reason: "element type of two empty lists",
        });
    };
    let ty = match GoType::of(first) {
        // reflect.TypeOf(nil).Kind() dereferences a nil interface.
        GoType::Nil => {
            return Err(StrategicError::GoPanics {
                path: path.to_string(),
                reason: "the first item of the lists is null",
            })
        }
        GoType::Slice => {
            return Err(StrategicError::ListOfLists {
                path: path.to_string(),
            })
        }
        ty => ty,
    };
    for item in items {
        work.add(1);
        if GoType::of(item) != ty {
            return Err(StrategicError::MixedList {
                path: path.to_string(),
            });
        }
    }
    Ok(ty)
}

/// `deleteFromSlice`: the original's items that the deletion list does not name.
fn delete_from_list(original: Vec<Value>, patch: &[Value], work: &mut Work) -> Vec<Value> {
    let doomed: HashSet<GoKey> = patch.iter().map(GoKey::of).collect();
    work.add(original.len() + patch.len());
    original
        .into_iter()
        .filter(|v| !doomed.contains(&GoKey::of(v)))
        .collect()
}

/// Scalars with the merge strategy (e.g. `finalizers`): the union without duplicates.
fn merge_scalars(
    original: Vec<Value>,
    patch: Vec<Value>,
    path: &Path,
    work: &mut Work,
) -> Result<Vec<Value>, StrategicError> {
    work.add(original.len() + patch.len());
    let original_keys: Vec<GoKey> = original.iter().map(GoKey::of).collect();
    let server = FirstIndex::new(&original_keys);
    if server.distinct() != original.len() {
        // Go deduplicates `append(original, patch...)` in place by swaps; when that append did
        // not reallocate (it depends on the decoded slice's spare capacity) or the patch is
        // empty, the swaps rewrite the original that later orders the result.
        return Err(StrategicError::GoUndefined {
            path: path.to_string(),
            reason: "the pod's list repeats a value; Go's order then follows in-place swaps through a slice that may share the pod's, depending on its capacity",
        });
    }
    let patch_keys: Vec<GoKey> = patch.iter().map(GoKey::of).collect();
    let in_patch = FirstIndex::new(&patch_keys);
    let mut seen: HashSet<GoKey> = original_keys.iter().cloned().collect();
    let mut patch_items = Vec::new();
    let mut server_only = Vec::new();
    for (item, key) in original.into_iter().zip(original_keys) {
        if in_patch.contains(&key) {
            patch_items.push((item, key));
        } else {
            server_only.push((item, key));
        }
    }
    for (item, key) in patch.into_iter().zip(patch_keys) {
        if seen.insert(key.clone()) {
            patch_items.push((item, key));
        }
    }
    let patch_items = sort_by_first_index(patch_items, &in_patch, path, work)?;
    let server_only = sort_by_first_index(server_only, &server, path, work)?;
    merge_sorted(server_only, patch_items, &server, path, work)
}

/// Lists of objects merged by `merge_key`.
fn merge_objects(
    original: Vec<Value>,
    patch: Vec<Value>,
    elem: Schema,
    merge_key: &'static str,
    path: &Path,
    work: &mut Work,
) -> Result<Vec<Value>, StrategicError> {
    let (original, patch) = apply_special_items(original, patch, merge_key, path, work)?;
    // Go validates the (post-deletion) original against the merge key when it orders the
    // result, which every merge that does not fail earlier reaches.
    let server_keys = keys_of(&original, merge_key, path, work)?;
    let patch_keys = keys_of(&patch, merge_key, path, work)?;
    let server = FirstIndex::new(&server_keys);
    let in_patch = FirstIndex::new(&patch_keys);
    let merged = merge_by_key(
        original,
        server_keys,
        patch,
        patch_keys,
        elem,
        merge_key,
        path,
        work,
    )?;

    // `partitionMapsByPresentInList(merged, patch)`.
    let mut patch_items = Vec::new();
    let mut server_only = Vec::new();
    for (item, key) in merged {
        work.add(1);
        let found = in_patch
            .find(&key)
            .map_err(|Uncomparable| uncomparable_keys(path))?;
        if found.is_some() {
            patch_items.push((item, key));
        } else {
            server_only.push((item, key));
        }
    }
    let patch_items = order_objects(patch_items, &in_patch, path, work)?;
    let server_only = order_objects(server_only, &server, path, work)?;
    merge_sorted(server_only, patch_items, &server, path, work)
}

/// `mergeSliceWithSpecialElements`: items with `$patch` delete the original's items with their
/// key (`delete`) or make the patch's other items the whole list (`replace`).
fn apply_special_items(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &'static str,
    path: &Path,
    work: &mut Work,
) -> Result<(Vec<Value>, Vec<Value>), StrategicError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    let mut doomed: HashSet<Scalar> = HashSet::new();
    let mut doomed_uncomparable = Vec::new();
    for (i, item) in patch.into_iter().enumerate() {
        work.add(1);
        let Some(directive) = item.get(PATCH) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some(DELETE) => match item.get(merge_key).map(GoKey::of) {
                Some(GoKey::Scalar(key)) => {
                    doomed.insert(key);
                }
                Some(other) => doomed_uncomparable.push(other),
                None => {
                    return Err(StrategicError::MissingMergeKey {
                        path: path.index(i).to_string(),
                        key: merge_key,
                    })
                }
            },
            Some(REPLACE) => replace = true,
            Some(MERGE) => {
                return Err(StrategicError::MergeDirectiveInList {
                    path: path.index(i).to_string(),
                })
            }
            _ => {
                return Err(StrategicError::UnknownDirective {
                    path: path.index(i).key(PATCH).to_string(),
                    value: directive.to_string(),
                })
            }
        }
    }
    // `deleteMatchingEntries` scans the original for items whose key `==` the deleted one:
    // a map (slice) key panics on meeting any original map (slice) key.
    if !doomed_uncomparable.is_empty() {
        work.add(original.len());
        let kinds: HashSet<GoKey> = original
            .iter()
            .filter_map(|item| item.get(merge_key).map(GoKey::of))
            .filter(|key| !matches!(key, GoKey::Scalar(_)))
            .collect();
        if doomed_uncomparable.iter().any(|key| kinds.contains(key)) {
            return Err(uncomparable_keys(path));
        }
    }
    if replace {
        return Ok((plain, Vec::new()));
    }
    work.add(original.len());
    let kept = original
        .into_iter()
        .filter(|item| match item.get(merge_key).map(GoKey::of) {
            Some(GoKey::Scalar(key)) => !doomed.contains(&key),
            _ => true,
        })
        .collect();
    Ok((kept, plain))
}

/// Every item's merge key (each must have one: Go's `validateMergeKeyInLists`).
fn keys_of(
    items: &[Value],
    merge_key: &'static str,
    path: &Path,
    work: &mut Work,
) -> Result<Vec<GoKey>, StrategicError> {
    work.add(items.len());
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.get(merge_key)
                .map(GoKey::of)
                .ok_or_else(|| StrategicError::MissingMergeKey {
                    path: path.index(i).to_string(),
                    key: merge_key,
                })
        })
        .collect()
}

/// `mergeSliceWithoutSpecialElements`: each patch item is merged into the first original item
/// with an equal key, or appended (as it is: nulls and directives inside stay, as in Go).
#[allow(clippy::too_many_arguments)]
fn merge_by_key(
    mut original: Vec<Value>,
    original_keys: Vec<GoKey>,
    patch: Vec<Value>,
    patch_keys: Vec<GoKey>,
    elem: Schema,
    merge_key: &'static str,
    path: &Path,
    work: &mut Work,
) -> Result<Vec<(Value, GoKey)>, StrategicError> {
    let mut live = FirstIndex::new(&original_keys);
    let mut keys = original_keys;
    for (i, (item, key)) in patch.into_iter().zip(patch_keys).enumerate() {
        work.add(1);
        let found = live
            .find(&key)
            .map_err(|Uncomparable| uncomparable_keys(path))?;
        let Some(at) = found else {
            live.push(&key);
            keys.push(key);
            original.push(item);
            continue;
        };
        let here = path.index(i);
        let (Some(Value::Object(target)), Value::Object(item)) = (original.get_mut(at), item)
        else {
            return Err(StrategicError::Internal {
                path: here.to_string(),
                reason: "list item is not an object",
            });
        };
        merge_map(target, item, elem, &here, work)?;
        // The patch's key equals the item's, so the merge keeps it, unless the patch's key
        // was null: then it is deleted, and Go fails on the keyless item when it partitions
        // the merged list.
        if !target.contains_key(merge_key) {
            return Err(StrategicError::MissingMergeKey {
                path: here.to_string(),
                key: merge_key,
            });
        }
    }
    Ok(original.into_iter().zip(keys).collect())
}

/// `normalizeSliceOrder` for objects: items carrying `$patch: delete` (possible only inside
/// the pod's own content) go last, the rest are ordered by their first position in `order`.
fn order_objects(
    items: Vec<(Value, GoKey)>,
    order: &FirstIndex,
    path: &Path,
    work: &mut Work,
) -> Result<Vec<(Value, GoKey)>, StrategicError> {
    let (deletions, rest): (Vec<_>, Vec<_>) = items
        .into_iter()
        .partition(|(item, _)| item.get(PATCH).and_then(Value::as_str) == Some(DELETE));
    let mut sorted = sort_by_first_index(rest, order, path, work)?;
    sorted.extend(deletions);
    Ok(sorted)
}

/// Go's `sort.SliceStable` by `index(order, item)`. Every item is in `order` here, so that is
/// a stable sort on positions: buckets. With fewer than two items Go compares nothing (and so
/// never reaches a panicking comparison).
fn sort_by_first_index(
    items: Vec<(Value, GoKey)>,
    order: &FirstIndex,
    path: &Path,
    work: &mut Work,
) -> Result<Vec<(Value, GoKey)>, StrategicError> {
    if items.len() < 2 {
        return Ok(items);
    }
    work.add(items.len() + order.len());
    let mut buckets: Vec<Vec<(Value, GoKey)>> = Vec::new();
    buckets.resize_with(order.len(), Vec::new);
    for (item, key) in items {
        let at = order
            .find(&key)
            .map_err(|Uncomparable| uncomparable_keys(path))?
            .ok_or_else(|| StrategicError::Internal {
                path: path.to_string(),
                reason: "an item to order is missing from its order list",
            })?;
        buckets[at].push((item, key));
    }
    Ok(buckets.into_iter().flatten().collect())
}

/// `mergeSortedSlice(left = server-only items, right = patch items, serverOrder)`: take the
/// server item first only when both are in the server order and it comes first there.
fn merge_sorted(
    left: Vec<(Value, GoKey)>,
    right: Vec<(Value, GoKey)>,
    server: &FirstIndex,
    path: &Path,
    work: &mut Work,
) -> Result<Vec<Value>, StrategicError> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        work.add(1);
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((_, l)), Some((_, r))) => {
                let find = |k| {
                    server
                        .find(k)
                        .map_err(|Uncomparable| uncomparable_keys(path))
                };
                let (l, r) = (find(l)?, find(r)?);
                matches!((l, r), (Some(l), Some(r)) if l < r)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next.map(|(item, _)| item));
    }
    Ok(out)
}

fn uncomparable_keys(path: &Path) -> StrategicError {
    StrategicError::GoPanics {
        path: path.to_string(),
        reason: "merge keys that are objects or lists are compared with ==",
    }
}
