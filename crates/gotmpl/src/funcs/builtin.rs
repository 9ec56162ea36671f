//! Go's predefined template functions.

// Every function has the one `BuiltinFn` signature (`&mut Vec`, so that a function can
// move an argument out and the executor can reuse the vector), even where a slice would do.
#![allow(clippy::ptr_arg)]

use super::{check_len, int_arg, owned, string, want_args, want_at_least, BuiltinFn, Ctx, V};
use crate::gofmt::{sprint, sprintf, sprintln};
use crate::value::Value;
use std::borrow::Cow;
use std::cmp::Ordering;

pub(super) const TABLE: &[(&str, BuiltinFn)] = &[
    ("not", not),
    ("len", len),
    ("index", index),
    ("slice", slice),
    ("print", print),
    ("printf", printf),
    ("println", println),
    ("html", html),
    ("js", js),
    ("urlquery", urlquery),
    ("eq", eq),
    ("ne", ne),
    ("lt", lt),
    ("le", le),
    ("gt", gt),
    ("ge", ge),
];

fn not<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    owned(Value::Bool(!args[0].is_true()))
}

fn len<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 1)?;
    let n = match &*args[0] {
        Value::String(s) => s.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.entries.len(),
        Value::Nil => return Err("len of nil pointer".into()),
        other => return Err(format!("len of type {}", other.type_name())),
    };
    owned(Value::Int(n as i64))
}

/// `index x 1 "k"`: maps by key (a missing key is the element type's zero value), lists
/// and strings by integer position.
fn index<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_at_least(args, 1)?;
    let mut it = args.drain(..);
    let mut item = it.next().unwrap_or(Cow::Owned(Value::Nil));
    for key in it {
        item = index_one(item, &key)?;
    }
    Ok(item)
}

fn index_one<'a>(item: V<'a>, key: &Value) -> Result<V<'a>, String> {
    match item {
        Cow::Borrowed(v) => index_ref(v, key),
        Cow::Owned(v) => index_ref(&v, key).map(|r| Cow::Owned(r.into_owned())),
    }
}

fn index_ref<'a>(v: &'a Value, key: &Value) -> Result<V<'a>, String> {
    match v {
        Value::Map(m) => match key {
            Value::String(k) => Ok(match m.entries.get(k) {
                Some(found) => Cow::Borrowed(found),
                None => Cow::Owned(m.zero_elem()),
            }),
            Value::Nil => Err("value is nil; should be of type string".into()),
            other => Err(format!(
                "value has type {}; should be string",
                other.type_name()
            )),
        },
        Value::List(l) => {
            let i = position(key, l.len())?;
            Ok(Cow::Borrowed(&l[i]))
        }
        Value::String(s) => {
            let i = position(key, s.len())?;
            Ok(Cow::Owned(Value::Int(s.as_bytes()[i] as i64)))
        }
        Value::Nil => Err("index of untyped nil".into()),
        other => Err(format!("can't index item of type {}", other.type_name())),
    }
}

fn position(key: &Value, len: usize) -> Result<usize, String> {
    match key {
        Value::Int(i) if *i >= 0 && (*i as usize) < len => Ok(*i as usize),
        Value::Int(i) => Err(format!("index out of range: {i}")),
        Value::Nil => Err("cannot index slice/array with nil".into()),
        other => Err(format!(
            "cannot index slice/array with type {}",
            other.type_name()
        )),
    }
}

/// `slice x 1 2`: `x[1:2]` of a string or list.
fn slice<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_at_least(args, 1)?;
    if args.len() > 4 {
        return Err(format!("too many slice indexes: {}", args.len() - 1));
    }
    let cap = match &*args[0] {
        Value::String(s) => s.len(),
        Value::List(l) => l.len(),
        Value::Nil => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut idx = [0usize, cap, cap];
    for (n, a) in args[1..].iter().enumerate() {
        let i = int_arg(a)?;
        if i < 0 || i as usize > cap {
            return Err(format!("index out of range: {i}"));
        }
        idx[n] = i as usize;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    match &*args[0] {
        Value::String(s) => {
            if args.len() == 4 {
                return Err("cannot 3-index slice a string".into());
            }
            let bytes = &s.as_bytes()[idx[0]..idx[1]];
            string(String::from_utf8_lossy(bytes).into_owned())
        }
        Value::List(l) => owned(Value::List(l[idx[0]..idx[1]].to_vec())),
        _ => Err("can't slice".into()),
    }
}

fn refs<'v>(args: &'v [V]) -> Vec<&'v Value> {
    args.iter().map(|a| &**a).collect()
}

fn print<'a>(ctx: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let s = sprint(&refs(args));
    check_len(ctx, s.len())?;
    string(s)
}

fn printf<'a>(ctx: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_at_least(args, 1)?;
    let format = super::str_arg(&args[0])?;
    let s = sprintf(format, &refs(&args[1..]));
    check_len(ctx, s.len())?;
    string(s)
}

fn println<'a>(ctx: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let s = sprintln(&refs(args));
    check_len(ctx, s.len())?;
    string(s)
}

/// The one string Go's escapers work on: a lone string as it is, else `fmt.Sprint` of the
/// operands, a nil operand printing as `<no value>`.
fn eval_args(args: &[V]) -> String {
    static NO_VALUE: Value = Value::Nil;
    let no_value = Value::String("<no value>".into());
    match args {
        [one] => match &**one {
            Value::String(s) => s.clone(),
            other => sprint(&[if *other == NO_VALUE { &no_value } else { other }]),
        },
        many => {
            let operands: Vec<&Value> = many
                .iter()
                .map(|a| if **a == NO_VALUE { &no_value } else { &**a })
                .collect();
            sprint(&operands)
        }
    }
}

fn html<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let s = eval_args(args);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{fffd}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    string(out)
}

fn js<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let s = eval_args(args);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    string(out)
}

fn urlquery<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    let s = eval_args(args);
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    string(out)
}

/// Go's `eq` over basic kinds: same-kind values compare, nil equals only nil, values of
/// different kinds are an error ("incompatible types for comparison").
pub(crate) fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Nil, Value::Nil) => Ok(true),
        (Value::Nil, _) | (_, Value::Nil) => Ok(false),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Int(x), Value::Int(y)) => Ok(x == y),
        (Value::Float(x), Value::Float(y)) => Ok(x == y),
        (Value::String(x), Value::String(y)) => Ok(x == y),
        (Value::Struct(x), Value::Struct(y)) if x.type_name == y.type_name => Ok(x == y),
        (Value::List(_) | Value::Map(_), _) | (_, Value::List(_) | Value::Map(_)) => Err(format!(
            "non-comparable types {}: {}",
            crate::gofmt::sprint_one(a),
            a.type_name()
        )),
        _ => Err("incompatible types for comparison".into()),
    }
}

fn eq<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    if args.len() < 2 {
        return Err("missing argument for comparison".into());
    }
    for b in &args[1..] {
        if equal(&args[0], b)? {
            return owned(Value::Bool(true));
        }
    }
    owned(Value::Bool(false))
}

fn ne<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    owned(Value::Bool(!equal(&args[0], &args[1])?))
}

fn order(a: &Value, b: &Value) -> Result<Ordering, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x
            .partial_cmp(y)
            .ok_or_else(|| "invalid type for comparison".to_string()),
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Int(_), Value::Float(_))
        | (Value::Float(_), Value::Int(_))
        | (Value::Int(_) | Value::Float(_), Value::String(_))
        | (Value::String(_), Value::Int(_) | Value::Float(_)) => {
            Err("incompatible types for comparison".into())
        }
        _ => Err("invalid type for comparison".into()),
    }
}

fn compare<'a>(args: &mut Vec<V<'a>>, ok: fn(Ordering) -> bool) -> Result<V<'a>, String> {
    want_args(args, 2)?;
    owned(Value::Bool(ok(order(&args[0], &args[1])?)))
}

fn lt<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    compare(args, |o| o == Ordering::Less)
}

fn le<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    compare(args, |o| o != Ordering::Greater)
}

fn gt<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    compare(args, |o| o == Ordering::Greater)
}

fn ge<'a>(_: &Ctx, args: &mut Vec<V<'a>>) -> Result<V<'a>, String> {
    compare(args, |o| o != Ordering::Less)
}
