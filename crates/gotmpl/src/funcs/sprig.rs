//! The sprig (`Masterminds/sprig/v3`, `TxtFuncMap`) functions that Istio's stock templates
//! call, plus a few common, cheap ones. Each follows sprig's Go code, including its
//! quirks (nil operands skipped by `quote`/`join`, `default` on sprig's `empty`).

// Every function has the one `BuiltinFn` signature (`&mut Vec`, so that a function can
// move an argument out and the executor can reuse the vector), even where a slice would do.
#![allow(clippy::ptr_arg)]

use super::{
    check_depth, check_len, check_list_len, int_arg, is_empty, owned, str_arg, string, strval,
    want_args, want_at_least, BuiltinFn, Ctx, V,
};
use crate::gofmt::quote as go_quote;
use crate::json::to_json;
use crate::value::{GoMap, MapElem, Value};

pub(super) const TABLE: &[(&str, BuiltinFn)] = &[
    ("default", default),
    ("empty", empty),
    ("coalesce", coalesce),
    ("ternary", ternary),
    ("quote", quote),
    ("squote", squote),
    ("cat", cat),
    ("toString", to_string),
    ("join", join),
    ("splitList", split_list),
    ("list", list),
    ("append", append),
    ("push", append),
    ("first", first),
    ("slice", slice),
    ("last", last),
    ("dict", dict),
    ("hasKey", has_key),
    ("indent", indent),
    ("nindent", nindent),
    ("trim", trim),
    ("trimAll", trim_all),
    ("trimPrefix", trim_prefix),
    ("trimSuffix", trim_suffix),
    ("trunc", trunc),
    ("lower", lower),
    ("upper", upper),
    ("replace", replace),
    ("hasPrefix", has_prefix),
    ("hasSuffix", has_suffix),
    ("contains", contains),
    ("toJson", to_json_fn),
    ("b64enc", b64enc),
    ("b64dec", b64dec),
    ("add", add),
    ("add1", add1),
    ("sub", sub),
    ("mul", mul),
    ("div", div),
    ("mod", modulo),
    ("max", max),
    ("min", min),
    ("int", to_int),
    ("int64", to_int),
    ("float64", to_float64),
    ("atoi", atoi),
    ("has", has),
    ("keys", keys),
    ("sortAlpha", sort_alpha),
    ("uniq", uniq),
    ("compact", compact),
    ("until", until),
    ("repeat", repeat),
    ("nospace", nospace),
    ("toStrings", to_strings),
    ("fail", fail),
];

/// `default d given`: `given` unless it is empty (or absent), then `d`.
fn default<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_at_least(args, 1)?;
    if args.len() >= 2 && !is_empty(&args[1]) {
        return Ok(args.swap_remove(1));
    }
    Ok(args.swap_remove(0))
}

fn empty<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    owned(Value::Bool(is_empty(&args[0])))
}

fn coalesce<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    for a in args.drain(..) {
        if !is_empty(&a) {
            return Ok(a);
        }
    }
    owned(Value::Nil)
}

/// `ternary vt vf cond`.
fn ternary<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 3)?;
    let cond = match &*args[2] {
        Value::Bool(b) => *b,
        other => {
            return Err(format!(
                "wrong type for value; expected bool; got {}",
                other.type_name()
            ))
        }
    };
    args.truncate(2);
    Ok(args.swap_remove(if cond { 0 } else { 1 }))
}

fn quote<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let parts: Vec<String> = args
        .iter()
        .filter(|a| !matches!(***a, Value::Nil))
        .map(|a| go_quote(&strval(a)))
        .collect();
    string(parts.join(" "))
}

fn squote<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let parts: Vec<String> = args
        .iter()
        .filter(|a| !matches!(***a, Value::Nil))
        .map(|a| format!("'{}'", strval(a)))
        .collect();
    string(parts.join(" "))
}

fn cat<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let parts: Vec<String> = args
        .iter()
        .filter(|a| !matches!(***a, Value::Nil))
        .map(|a| strval(a))
        .collect();
    string(parts.join(" "))
}

fn to_string<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    string(strval(&args[0]))
}

/// Sprig's `strslice`: the strings of a list (nil elements dropped), or the one value.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::Nil => Vec::new(),
        Value::List(items) => items
            .iter()
            .filter(|i| !matches!(i, Value::Nil))
            .map(strval)
            .collect(),
        other => vec![strval(other)],
    }
}

fn join<'a>(ctx: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let sep = str_arg(&args[0])?;
    let s = strslice(&args[1]).join(sep);
    check_len(ctx, s.len())?;
    string(s)
}

fn split_list<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let sep = str_arg(&args[0])?;
    let s = str_arg(&args[1])?;
    let count = if sep.is_empty() {
        s.chars().count()
    } else {
        s.matches(sep).count() + 1
    };
    check_list_len(count)?;
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep).map(Value::str).collect()
    };
    owned(Value::List(parts))
}

fn list<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    check_depth(args.iter().map(|a| &**a))?;
    owned(Value::List(
        args.drain(..).map(|a| a.into_owned()).collect(),
    ))
}

/// `append list v`: a new list with `v` at the end.
fn append<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let mut it = args.drain(..);
    let (Some(l), Some(v)) = (it.next(), it.next()) else {
        return Err("wrong number of args".into());
    };
    match l.into_owned() {
        Value::List(mut items) => {
            check_list_len(items.len() + 1)?;
            check_depth([&*v])?;
            items.push(v.into_owned());
            owned(Value::List(items))
        }
        other => Err(format!("Cannot push on type {}", other.type_name())),
    }
}

/// Sprig's `slice list [start [end]]`, which replaces Go's builtin: lists only, and an
/// empty list gives nil.
fn slice<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_at_least(args, 1)?;
    let items = match &*args[0] {
        Value::List(items) => items,
        other => {
            return Err(format!(
                "list should be type of slice or array but {}",
                match other {
                    Value::Map(_) => "map",
                    Value::Struct(_) => "struct",
                    Value::Nil => "invalid",
                    Value::Bool(_) => "bool",
                    Value::Int(_) => "int",
                    Value::Float(_) => "float64",
                    Value::String(_) => "string",
                    Value::List(_) => "slice",
                }
            ))
        }
    };
    if items.is_empty() {
        return owned(Value::Nil);
    }
    let start = args.get(1).map(|v| int_arg(v)).transpose()?.unwrap_or(0);
    let end = args
        .get(2)
        .map(|v| int_arg(v))
        .transpose()?
        .unwrap_or(items.len() as i64);
    if start < 0 || end < start || end as usize > items.len() {
        return Err(format!("slice bounds out of range [{start}:{end}]"));
    }
    owned(Value::List(items[start as usize..end as usize].to_vec()))
}

fn first<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    match &*args[0] {
        Value::List(items) => owned(items.first().cloned().unwrap_or(Value::Nil)),
        Value::Nil => owned(Value::Nil),
        other => Err(format!("Cannot find first on type {}", other.type_name())),
    }
}

fn last<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    match &*args[0] {
        Value::List(items) => owned(items.last().cloned().unwrap_or(Value::Nil)),
        Value::Nil => owned(Value::Nil),
        other => Err(format!("Cannot find last on type {}", other.type_name())),
    }
}

/// `dict k1 v1 k2 v2`: a `map[string]any` (an odd last key maps to "").
fn dict<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    check_depth(args.iter().map(|a| &**a))?;
    let mut m = GoMap::new(MapElem::Any);
    let mut it = args.drain(..);
    while let Some(k) = it.next() {
        let v = it
            .next()
            .map_or(Value::String(String::new()), |v| v.into_owned());
        m.entries.insert(strval(&k), v);
    }
    owned(Value::Map(m))
}

fn has_key<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let key = str_arg(&args[1])?;
    match &*args[0] {
        Value::Map(m) => owned(Value::Bool(m.entries.contains_key(key))),
        Value::Nil => owned(Value::Bool(false)),
        other => Err(format!(
            "wrong type for value; expected map[string]interface {{}}; got {}",
            other.type_name()
        )),
    }
}

/// Sprig's `indent`: every line, the first too, gets `n` spaces.
pub(super) fn pad_lines(ctx: &Ctx, n: i64, s: &str, first: bool) -> Result<String, String> {
    let n = n.max(0) as usize;
    let lines = s.matches('\n').count() + 1;
    check_len(ctx, s.len().saturating_add(n.saturating_mul(lines)))?;
    let pad = " ".repeat(n);
    let body = s.replace('\n', &format!("\n{pad}"));
    Ok(if first { format!("{pad}{body}") } else { body })
}

fn indent<'a>(ctx: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    string(pad_lines(
        ctx,
        int_arg(&args[0])?,
        str_arg(&args[1])?,
        true,
    )?)
}

fn nindent<'a>(ctx: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let body = pad_lines(ctx, int_arg(&args[0])?, str_arg(&args[1])?, true)?;
    string(format!("\n{body}"))
}

fn two_strs<'v>(args: &'v [V]) -> Result<(&'v str, &'v str), String> {
    want_args(args, 2)?;
    Ok((str_arg(&args[0])?, str_arg(&args[1])?))
}

fn trim<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    string(str_arg(&args[0])?.trim().to_string())
}

/// `trimAll cutset s`: Go's `strings.Trim(s, cutset)`.
fn trim_all<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let (cutset, s) = two_strs(args)?;
    string(s.trim_matches(|c| cutset.contains(c)).to_string())
}

fn trim_prefix<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let (p, s) = two_strs(args)?;
    string(s.strip_prefix(p).unwrap_or(s).to_string())
}

fn trim_suffix<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let (p, s) = two_strs(args)?;
    string(s.strip_suffix(p).unwrap_or(s).to_string())
}

/// `trunc n s`: the first n bytes (or, for negative n, the last -n).
fn trunc<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let c = int_arg(&args[0])?;
    let s = str_arg(&args[1])?;
    let len = s.len() as i64;
    let (from, to) = if c < 0 && len + c > 0 {
        ((len + c) as usize, s.len())
    } else if c >= 0 && len > c {
        (0, c as usize)
    } else {
        (0, s.len())
    };
    string(String::from_utf8_lossy(&s.as_bytes()[from..to]).into_owned())
}

fn lower<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    string(str_arg(&args[0])?.to_lowercase())
}

fn upper<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    string(str_arg(&args[0])?.to_uppercase())
}

/// `replace old new s`.
fn replace<'a>(ctx: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 3)?;
    let (old, new, s) = (str_arg(&args[0])?, str_arg(&args[1])?, str_arg(&args[2])?);
    let count = if old.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(old).count()
    };
    check_len(ctx, s.len().saturating_add(count.saturating_mul(new.len())))?;
    string(s.replace(old, new))
}

fn has_prefix<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let (p, s) = two_strs(args)?;
    owned(Value::Bool(s.starts_with(p)))
}

fn has_suffix<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let (p, s) = two_strs(args)?;
    owned(Value::Bool(s.ends_with(p)))
}

/// `contains substr s` (sprig's and Istio's agree on the order).
pub(super) fn contains<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let (needle, haystack) = two_strs(args)?;
    owned(Value::Bool(haystack.contains(needle)))
}

fn to_json_fn<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    string(to_json(&args[0]))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64enc<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    let bytes = str_arg(&args[0])?.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    string(out)
}

/// `b64dec s`; like sprig, invalid input gives the decoder's error text as the result.
fn b64dec<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    let s = str_arg(&args[0])?;
    match decode_b64(s) {
        Some(bytes) => string(String::from_utf8_lossy(&bytes).into_owned()),
        None => string("illegal base64 data at input byte 0".into()),
    }
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    if !s.len().is_multiple_of(4) || s.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in body.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// `cast.ToInt64`, as sprig's arithmetic converts every operand: floats truncate, strings
/// parse (`"0x10"`, `"3.0"`), bools are 0/1, anything else 0.
fn cast_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => *b as i64,
        Value::String(s) => parse_int_like_cast(s).unwrap_or(0),
        _ => 0,
    }
}

fn parse_int_like_cast(s: &str) -> Option<i64> {
    // cast trims a zero decimal part ("3.0" → "3") before strconv.ParseInt(s, 0, 0).
    let s = match s.split_once('.') {
        Some((int, frac)) if !frac.is_empty() && frac.bytes().all(|b| b == b'0') => int,
        _ => s,
    };
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = body.to_ascii_lowercase();
    let v = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()?
    } else {
        lower.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

fn cast_float(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => *b as i64 as f64,
        Value::String(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn int_result<'a>(i: i64) -> Result<V<'a>, String> {
    owned(Value::Int(i))
}

fn add<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    int_result(
        args.iter()
            .fold(0i64, |acc, a| acc.wrapping_add(cast_int(a))),
    )
}

fn add1<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    int_result(cast_int(&args[0]).wrapping_add(1))
}

fn two_ints(args: &[V]) -> Result<(i64, i64), String> {
    want_args(args, 2)?;
    Ok((cast_int(&args[0]), cast_int(&args[1])))
}

fn sub<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let (a, b) = two_ints(args)?;
    int_result(a.wrapping_sub(b))
}

fn mul<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_at_least(args, 1)?;
    int_result(
        args.iter()
            .fold(1i64, |acc, a| acc.wrapping_mul(cast_int(a))),
    )
}

fn div<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let (a, b) = two_ints(args)?;
    match a.checked_div(b) {
        Some(q) => int_result(q),
        None => Err("runtime error: integer divide by zero".into()),
    }
}

fn modulo<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let (a, b) = two_ints(args)?;
    match a.checked_rem(b) {
        Some(r) => int_result(r),
        None => Err("runtime error: integer divide by zero".into()),
    }
}

fn max<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_at_least(args, 1)?;
    int_result(args.iter().map(|a| cast_int(a)).max().unwrap_or(0))
}

fn min<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_at_least(args, 1)?;
    int_result(args.iter().map(|a| cast_int(a)).min().unwrap_or(0))
}

fn to_int<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    int_result(cast_int(&args[0]))
}

fn to_float64<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    owned(Value::Float(cast_float(&args[0])))
}

/// `atoi s`: `strconv.Atoi`, 0 when it fails.
fn atoi<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    int_result(str_arg(&args[0])?.parse().unwrap_or(0))
}

/// `has needle list`.
fn has<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let found = match &*args[1] {
        Value::List(items) => items.iter().any(|i| *i == *args[0]),
        Value::Nil => false,
        other => return Err(format!("Cannot find has on type {}", other.type_name())),
    };
    owned(Value::Bool(found))
}

/// `keys m...`: the keys of the maps (sorted here; Go's map order is random, so templates
/// sort them with `sortAlpha` anyway).
fn keys<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let mut out = Vec::new();
    for a in args.iter() {
        match &**a {
            Value::Map(m) => out.extend(m.entries.keys().map(|k| Value::String(k.clone()))),
            other => {
                return Err(format!(
                    "wrong type for value; expected map[string]interface {{}}; got {}",
                    other.type_name()
                ))
            }
        }
    }
    owned(Value::List(out))
}

fn sort_alpha<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    let mut strs = match &*args[0] {
        Value::List(_) => strslice(&args[0]),
        other => vec![strval(other)],
    };
    strs.sort();
    owned(Value::List(strs.into_iter().map(Value::String).collect()))
}

fn list_arg<'v>(v: &'v Value, func: &str) -> Result<&'v [Value], String> {
    match v {
        Value::List(items) => Ok(items),
        other => Err(format!("Cannot {func} on type {}", other.type_name())),
    }
}

fn uniq<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    let mut out: Vec<Value> = Vec::new();
    for i in list_arg(&args[0], "find uniq")? {
        if !out.contains(i) {
            out.push(i.clone());
        }
    }
    owned(Value::List(out))
}

fn compact<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    let items = list_arg(&args[0], "compact")?;
    owned(Value::List(
        items.iter().filter(|i| !is_empty(i)).cloned().collect(),
    ))
}

fn until<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    let n = int_arg(&args[0])?;
    check_list_len(n.max(0) as usize)?;
    owned(Value::List((0..n.max(0)).map(Value::Int).collect()))
}

fn repeat<'a>(ctx: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    let n = int_arg(&args[0])?.max(0) as usize;
    let s = str_arg(&args[1])?;
    check_len(ctx, s.len().saturating_mul(n))?;
    string(s.repeat(n))
}

fn nospace<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    string(
        str_arg(&args[0])?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    )
}

fn to_strings<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    owned(Value::List(
        strslice(&args[0]).into_iter().map(Value::String).collect(),
    ))
}

/// `fail msg`: the render fails with `msg`.
fn fail<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    Err(str_arg(&args[0])?.to_string())
}
