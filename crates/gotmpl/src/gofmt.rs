//! Go's `fmt` as templates use it: `%v` printing of values, `strconv.Quote`, float64
//! formatting, and `Sprintf` with the verbs templates use.

use crate::value::{GoStruct, Value};
use std::fmt::Write;

/// How nil prints: `<no value>` as template text, `<nil>` inside fmt.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum NilAs {
    NoValue,
    Nil,
}

/// Appends `v` as Go's `fmt.Print` would (`%v`).
pub fn write_value(out: &mut String, v: &Value, nil: NilAs) {
    match v {
        Value::Nil => out.push_str(match nil {
            NilAs::NoValue => "<no value>",
            NilAs::Nil => "<nil>",
        }),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => write_float_g(out, *f),
        Value::String(s) => out.push_str(s),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, item, NilAs::Nil);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, item)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_value(out, item, NilAs::Nil);
            }
            out.push(']');
        }
        Value::Struct(s) => write_struct(out, s),
    }
}

fn write_struct(out: &mut String, s: &GoStruct) {
    out.push('{');
    for (i, f) in s.fields.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(out, &f.value, NilAs::Nil);
    }
    out.push('}');
}

/// `%v` of a value as a new string (fmt.Sprint of one operand).
pub fn sprint_one(v: &Value) -> String {
    let mut s = String::new();
    write_value(&mut s, v, NilAs::Nil);
    s
}

/// Go's `fmt.Sprint(args...)`: spaces between operands when neither side is a string.
pub fn sprint(args: &[&Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = matches!(a, Value::String(_));
        if i > 0 && !is_str && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        write_value(&mut out, a, NilAs::Nil);
    }
    out
}

/// Go's `fmt.Sprintln(args...)`: always spaces, then a newline.
pub fn sprintln(args: &[&Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(&mut out, a, NilAs::Nil);
    }
    out.push('\n');
    out
}

/// Appends a float64 as `%v` prints it.
pub fn write_float_g(out: &mut String, f: f64) {
    out.push_str(&format_float_g(f));
}

/// Go's `%v` for float64: shortest round-trip digits; `%e` form (`1e+06`, `1.5e-07`) when
/// the decimal exponent is below -4 or at least 6 (`strconv.FormatFloat(f, 'g', -1, 64)`).
pub fn format_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.5e-7", "1e6".
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if !is_go_printable(c) => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`, approximately: without Unicode tables we treat as unprintable the
/// controls, the spaces other than U+0020, the format characters, private use and the
/// non-characters that Go escapes in `%q`.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    !(c.is_control()
        || matches!(u, 0xA0 | 0xAD | 0x1680 | 0x180E | 0x3000 | 0xFEFF)
        || (0x2000..=0x200F).contains(&u)
        || (0x2028..=0x202F).contains(&u)
        || (0x205F..=0x206F).contains(&u)
        || (0xFFF9..=0xFFFB).contains(&u)
        || (0xE000..=0xF8FF).contains(&u)
        || u >= 0xF0000
        || (u & 0xFFFE) == 0xFFFE)
}

/// One parsed `%` directive.
#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %d %v %q %t %f %x %X %o %c %e %g %%`,
/// with flags, width and precision; wrong types and missing or extra operands print as Go
/// prints them (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA int=1)`).
pub fn sprintf(format: &str, args: &[&Value]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut argi = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = read_num(&mut chars);
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            spec.prec = Some(read_num(&mut chars).unwrap_or(0));
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        let body = format_one(verb, &spec, arg);
        pad(&mut out, &body, &spec, verb);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}={}", go_type(a), sprint_one(a));
        }
        out.push(')');
    }
    out
}

fn read_num(chars: &mut std::iter::Peekable<std::str::CharIndices>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(&(_, d)) = chars.peek() {
        let Some(v) = d.to_digit(10) else { break };
        n = Some(
            n.unwrap_or(0)
                .saturating_mul(10)
                .saturating_add(v as usize)
                .min(1 << 16),
        );
        chars.next();
    }
    n
}

fn go_type(v: &Value) -> &str {
    match v {
        Value::Nil => "<nil>",
        other => other.type_name(),
    }
}

fn bad_verb(verb: char, v: &Value) -> String {
    match v {
        Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", go_type(v), sprint_one(v)),
    }
}

fn format_one(verb: char, spec: &Spec, v: &Value) -> String {
    if verb != 'v' {
        if let Some(s) = format_elements(verb, v) {
            return s;
        }
    }
    match (verb, v) {
        ('v', Value::Float(f)) if spec.prec.is_some() => format_float_verb('g', spec, *f),
        ('v', _) => with_sign(
            sprint_one(v),
            spec,
            matches!(v, Value::Int(_) | Value::Float(_)),
        ),
        ('s', Value::String(s)) => truncate(s, spec.prec),
        ('q', Value::String(s)) => quote(s),
        ('q', Value::Int(i)) => quote_rune(*i),
        ('t', Value::Bool(b)) => b.to_string(),
        ('d', Value::Int(i)) => with_sign(i.to_string(), spec, true),
        ('x', Value::Int(i)) => format!("{}{:x}", if *i < 0 { "-" } else { "" }, i.unsigned_abs()),
        ('X', Value::Int(i)) => format!("{}{:X}", if *i < 0 { "-" } else { "" }, i.unsigned_abs()),
        ('o', Value::Int(i)) => format!("{}{:o}", if *i < 0 { "-" } else { "" }, i.unsigned_abs()),
        ('b', Value::Int(i)) => format!("{}{:b}", if *i < 0 { "-" } else { "" }, i.unsigned_abs()),
        ('c', Value::Int(i)) => char::from_u32(*i as u32).unwrap_or('\u{fffd}').to_string(),
        ('x', Value::String(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
        ('X', Value::String(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
        ('f' | 'F' | 'e' | 'E' | 'g' | 'G', Value::Float(f)) => format_float_verb(verb, spec, *f),
        _ => bad_verb(verb, v),
    }
}

/// Go applies a verb other than `%v` to each element of a list, map or struct:
/// `%s` of `[1 2]` is `[%!s(int=1) %!s(int=2)]`, `%d` of it `[1 2]`.
fn format_elements(verb: char, v: &Value) -> Option<String> {
    let plain = Spec::default();
    let one = |e: &Value| format_one(verb, &plain, e);
    Some(match v {
        Value::List(items) => {
            format!("[{}]", items.iter().map(one).collect::<Vec<_>>().join(" "))
        }
        Value::Map(m) => {
            let parts: Vec<String> = m
                .entries
                .iter()
                .map(|(k, e)| format!("{}:{}", one(&Value::String(k.clone())), one(e)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        Value::Struct(st) => {
            let parts: Vec<String> = st.fields.iter().map(|f| one(&f.value)).collect();
            format!("{{{}}}", parts.join(" "))
        }
        _ => return None,
    })
}

/// Go's `strconv.QuoteRune` (`%q` of an integer).
fn quote_rune(i: i64) -> String {
    let c = u32::try_from(i)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{fffd}');
    match c {
        '\'' => "'\\''".to_string(),
        '"' => "'\"'".to_string(),
        c => {
            let q = quote(&c.to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

fn with_sign(s: String, spec: &Spec, numeric: bool) -> String {
    if numeric && !s.starts_with('-') {
        if spec.plus {
            return format!("+{s}");
        }
        if spec.space {
            return format!(" {s}");
        }
    }
    s
}

fn truncate(s: &str, prec: Option<usize>) -> String {
    match prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

fn format_float_verb(verb: char, spec: &Spec, f: f64) -> String {
    let s = match verb {
        'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), f),
        'e' | 'E' => {
            let s = go_exp(&format!("{:.*e}", spec.prec.unwrap_or(6), f));
            if verb == 'E' {
                s.to_uppercase()
            } else {
                s
            }
        }
        _ => match spec.prec {
            None => format_float_g(f),
            Some(p) => format_g_prec(f, p.max(1)),
        },
    };
    with_sign(s, spec, true)
}

/// Rust's `1.5e-7` to Go's `1.5e-07`.
fn go_exp(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s.to_string(),
    }
}

fn format_g_prec(f: f64, p: usize) -> String {
    let sci = format!("{:.*e}", p - 1, f);
    let exp: i32 = sci
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let (m, _) = sci.split_once('e').unwrap_or((&sci, ""));
        let m = trim_frac_zeros(m);
        go_exp(&format!("{m}e{exp}"))
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_frac_zeros(&format!("{f:.decimals$}")).to_string()
    }
}

fn trim_frac_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn pad(out: &mut String, body: &str, spec: &Spec, verb: char) {
    let len = body.chars().count();
    let width = spec.width.unwrap_or(0);
    if len >= width {
        out.push_str(body);
        return;
    }
    let fill = width - len;
    if spec.minus {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero
        && matches!(
            verb,
            'd' | 'f' | 'F' | 'e' | 'g' | 'x' | 'X' | 'o' | 'b' | 'v'
        )
    {
        let (sign, digits) = match body.strip_prefix(['-', '+']) {
            Some(rest) => (&body[..1], rest),
            None => ("", body),
        };
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(digits);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        for (f, want) in [
            (2.0, "2"),
            (0.5, "0.5"),
            (1e6, "1e+06"),
            (1.5e-7, "1.5e-07"),
            (15020.0, "15020"),
            (123456.0, "123456"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-3.25, "-3.25"),
            (1e21, "1e+21"),
        ] {
            assert_eq!(format_float_g(f), want, "{f}");
        }
    }
}
