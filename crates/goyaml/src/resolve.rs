//! YAML 1.1 scalar resolution as go-yaml v2's `resolve` does it, the scalar values it gives
//! Go (int, uint64, float64, bool, nil, string), and how `sigs.k8s.io/yaml` turns them into
//! JSON values and mapping keys.

use crate::gofloat;

pub const STR: &str = "tag:yaml.org,2002:str";
pub const BOOL: &str = "tag:yaml.org,2002:bool";
pub const INT: &str = "tag:yaml.org,2002:int";
pub const FLOAT: &str = "tag:yaml.org,2002:float";
pub const NULL: &str = "tag:yaml.org,2002:null";
pub const TIMESTAMP: &str = "tag:yaml.org,2002:timestamp";
pub const BINARY: &str = "tag:yaml.org,2002:binary";
pub const MERGE: &str = "tag:yaml.org,2002:merge";

/// A resolved scalar: what go-yaml stores in an `interface{}`. `Str` means the scalar's
/// own text (kept by the caller, to avoid a copy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str,
}

/// Why a tagged scalar cannot be decoded (go-yaml fails the whole document).
pub enum TagError {
    /// "cannot decode !!str `x` as a !!int" and the like.
    Mismatch,
    /// A `!!timestamp` tag: go-yaml parses it with Go's time layouts, not done here.
    Timestamp,
}

/// Resolution of a plain scalar without a tag.
pub fn plain(text: &str) -> Resolved {
    resolve_untyped(text, false)
}

/// Resolution of a scalar with an explicit (long-form) tag, checked as go-yaml checks it.
pub fn tagged(tag: &str, text: &str) -> Result<Resolved, TagError> {
    match tag {
        STR => Ok(Resolved::Str),
        TIMESTAMP => Err(TagError::Timestamp),
        BOOL | INT | FLOAT | NULL => {
            let r = resolve_untyped(text, true);
            match (tag, r) {
                (BOOL, Resolved::Bool(_)) | (NULL, Resolved::Null) => Ok(r),
                (INT, Resolved::Int(_) | Resolved::Uint(_)) => Ok(r),
                (FLOAT, Resolved::Float(_)) => Ok(r),
                (FLOAT, Resolved::Int(i)) => Ok(Resolved::Float(i as f64)),
                _ => Err(TagError::Mismatch),
            }
        }
        // Tags go-yaml does not resolve leave the text a string (`!!binary` is decoded by
        // the caller).
        _ => Ok(Resolved::Str),
    }
}

fn resolve_untyped(text: &str, tagged: bool) -> Resolved {
    let b = text.as_bytes();
    let Some(&first) = b.first() else {
        return Resolved::Null;
    };
    match first {
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' => {
            keyword(text).unwrap_or(Resolved::Str)
        }
        b'.' => keyword(text)
            .or_else(|| dot_float(text))
            .unwrap_or(Resolved::Str),
        b'+' | b'-' | b'0'..=b'9' => keyword(text)
            .or_else(|| number(text, tagged))
            .unwrap_or(Resolved::Str),
        _ => Resolved::Str,
    }
}

fn keyword(text: &str) -> Option<Resolved> {
    Some(match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Resolved::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Resolved::Bool(false)
        }
        "~" | "null" | "Null" | "NULL" => Resolved::Null,
        ".nan" | ".NaN" | ".NAN" => Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Resolved::Float(f64::NEG_INFINITY),
        _ => return None,
    })
}

/// `strconv.ParseFloat` on a text starting with '.': digits, an optional exponent, and
/// underscores where Go's number syntax allows them (between digits).
fn dot_float(text: &str) -> Option<Resolved> {
    let cleaned: std::borrow::Cow<str> = if text.contains('_') {
        if !underscores_ok(text.as_bytes()) {
            return None;
        }
        text.replace('_', "").into()
    } else {
        text.into()
    };
    let rest = &cleaned.as_bytes()[1..];
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || !valid_exponent(&rest[digits..]) {
        return None;
    }
    finite(&cleaned)
}

/// Go's `strconv.underscoreOK` for a number without a base prefix: every `_` between two
/// digits.
fn underscores_ok(b: &[u8]) -> bool {
    let mut saw = b'^';
    for &c in b {
        if c.is_ascii_digit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else if saw == b'_' {
            return false;
        } else {
            saw = b'!';
        }
    }
    saw != b'_'
}

fn valid_exponent(b: &[u8]) -> bool {
    match b.split_first() {
        None => true,
        Some((b'e' | b'E', rest)) => {
            let rest = match rest.first() {
                Some(b'+' | b'-') => &rest[1..],
                _ => rest,
            };
            !rest.is_empty() && rest.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

/// A float that `strconv.ParseFloat` accepts without a range error.
fn finite(text: &str) -> Option<Resolved> {
    let t = text.strip_prefix('+').unwrap_or(text);
    match t.parse::<f64>() {
        Ok(f) if f.is_finite() => Some(Resolved::Float(f)),
        _ => None,
    }
}

/// go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(b: &[u8]) -> bool {
    let b = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let rest = &b[int_digits..];
    let rest = if int_digits == 0 {
        let Some((b'.', frac)) = rest.split_first() else {
            return false;
        };
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        &frac[n..]
    } else if let Some((b'.', frac)) = rest.split_first() {
        &frac[frac.iter().take_while(|c| c.is_ascii_digit()).count()..]
    } else {
        rest
    };
    valid_exponent(rest)
}

/// The 'D'/'S' branch of go-yaml's `resolve`: integers (any base Go's `ParseInt(s, 0, 64)`
/// reads, after removing `_`), then uint64, then YAML-style floats, then `0b` forms.
fn number(text: &str, _tagged: bool) -> Option<Resolved> {
    let plain: std::borrow::Cow<str> = if text.contains('_') {
        text.replace('_', "").into()
    } else {
        text.into()
    };
    let p = plain.as_bytes();
    if let Some(i) = parse_int(p, 0) {
        return Some(Resolved::Int(i));
    }
    if let Some(u) = parse_uint(p, 0) {
        return Some(Resolved::Uint(u));
    }
    if yaml_style_float(p) {
        if let Some(f) = finite(&plain) {
            return Some(f);
        }
    }
    if let Some(bin) = p.strip_prefix(b"0b") {
        if let Some(i) = parse_int(bin, 2) {
            return Some(Resolved::Int(i));
        }
        if let Some(u) = parse_uint(bin, 2) {
            return Some(Resolved::Uint(u));
        }
    } else if let Some(bin) = p.strip_prefix(b"-0b") {
        let mut neg = Vec::with_capacity(bin.len() + 1);
        neg.push(b'-');
        neg.extend_from_slice(bin);
        if let Some(i) = parse_int(&neg, 2) {
            return Some(Resolved::Int(i));
        }
    }
    None
}

/// Go's `strconv.ParseUint(s, base, 64)` for base 0 (prefixes `0x`, `0o`, `0b`, `0`) or 2.
fn parse_uint(s: &[u8], base: u32) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let (base, digits) = if base == 0 {
        if s[0] == b'0' {
            let prefix = if s.len() >= 3 {
                s[1].to_ascii_lowercase()
            } else {
                0
            };
            match prefix {
                b'b' => (2, &s[2..]),
                b'o' => (8, &s[2..]),
                b'x' => (16, &s[2..]),
                _ => (8, &s[1..]),
            }
        } else {
            (10, s)
        }
    } else {
        (base, s)
    };
    let mut n: u64 = 0;
    for &c in digits {
        let d = (c as char).to_digit(36)?;
        if d >= base {
            return None;
        }
        n = n.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// Go's `strconv.ParseInt(s, base, 64)`.
fn parse_int(s: &[u8], base: u32) -> Option<i64> {
    let (neg, rest) = match s.first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let u = parse_uint(rest, base)?;
    if neg {
        if u > 1 << 63 {
            None
        } else {
            Some((u as i64).wrapping_neg())
        }
    } else {
        i64::try_from(u).ok()
    }
}

/// The mapping key `sigs.k8s.io/yaml` makes of a resolved key, or `None` for the key types
/// it refuses (nil, uint64).
pub fn key_string(r: Resolved, text: &str) -> Option<String> {
    Some(match r {
        Resolved::Str => text.to_owned(),
        Resolved::Int(i) => i.to_string(),
        Resolved::Bool(b) => b.to_string(),
        Resolved::Float(f) => match gofloat::format_g(f, true).as_str() {
            "+Inf" => ".inf".into(),
            "-Inf" => "-.inf".into(),
            "NaN" => ".nan".into(),
            s => s.to_owned(),
        },
        Resolved::Null | Resolved::Uint(_) => return None,
    })
}

/// Decodes `!!binary` content as Go's `base64.StdEncoding.DecodeString` (which skips CR and
/// LF), then reads the bytes as `encoding/json` writes them: each invalid UTF-8 byte U+FFFD.
pub fn binary(text: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut pad = 0;
    let mut count = 0;
    for c in text.bytes() {
        if c == b'\r' || c == b'\n' {
            continue;
        }
        count += 1;
        if c == b'=' {
            pad += 1;
            continue;
        }
        if pad > 0 {
            return None;
        }
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = bits << 6 | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
        }
    }
    let data_chars = count - pad;
    if count % 4 != 0 || pad > 2 || (pad > 0 && (data_chars % 4) + pad != 4) {
        return None;
    }
    Some(go_lossy_utf8(&out))
}

fn go_lossy_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                out.push_str(std::str::from_utf8(&rest[..good]).unwrap_or_default());
                out.push('\u{FFFD}');
                rest = &rest[good + 1..];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Resolved::*;

    #[test]
    fn yaml_1_1_resolution() {
        for (text, want) in [
            ("", Null),
            ("~", Null),
            ("yes", Bool(true)),
            ("Off", Bool(false)),
            ("y", Bool(true)),
            ("yEs", Str),
            ("0x1F", Int(31)),
            ("0o17", Int(15)),
            ("0777", Int(511)),
            ("08", Float(8.0)),
            ("1_000", Int(1000)),
            ("-0b101", Int(-5)),
            ("0b-1", Int(-1)),
            ("1e3", Float(1000.0)),
            ("1e999", Str),
            (".5", Float(0.5)),
            ("._5", Str),
            (".2_2", Float(0.22)),
            (".2__2", Str),
            (".2_", Str),
            ("+.5", Float(0.5)),
            ("18446744073709551615", Uint(u64::MAX)),
            ("-9223372036854775809", Float(-9223372036854775809.0)),
            ("1.2.3", Str),
            ("2001-12-14", Str),
            ("+", Str),
            ("<<", Str),
        ] {
            assert_eq!(plain(text), want, "{text:?}");
        }
        assert!(matches!(plain(".nan"), Float(f) if f.is_nan()));
    }

    #[test]
    fn keys_as_sigs_yaml_writes_them() {
        assert_eq!(key_string(Float(1.5), "").as_deref(), Some("1.5"));
        assert_eq!(key_string(Float(0.1), "").as_deref(), Some("0.1"));
        assert_eq!(
            key_string(Float(f64::INFINITY), "").as_deref(),
            Some(".inf")
        );
        assert_eq!(key_string(Null, ""), None);
    }

    #[test]
    fn binary_like_go() {
        assert_eq!(binary("aGVsbG8=").as_deref(), Some("hello"));
        assert_eq!(binary("aGVs\nbG8=").as_deref(), Some("hello"));
        assert_eq!(binary("aGVsbG8"), None);
        assert_eq!(binary("/w==").as_deref(), Some("\u{FFFD}"));
    }
}
